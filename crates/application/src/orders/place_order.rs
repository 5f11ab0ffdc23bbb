//! Places an order: validates and merges the lines, prices them from the catalogue, and lets the
//! repository reserve the stock and store everything in one transaction.

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderError, OrderLines, ProductId, Quantity, time::TimeDelta};

use crate::{
    StoreError,
    ports::{Clock, OrderRepository, PlaceOrderFailure, ProductRepository},
};

/// What to order, as the customer listed it (duplicates allowed; they are merged).
#[derive(Debug, Clone)]
pub struct PlaceOrderInput {
    pub lines: Vec<(ProductId, Quantity)>,
    /// Recorded in the order's history, for tracing.
    pub request_id: Option<String>,
}

/// Why the order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Only logged-in users place orders.
    #[error("only users may place orders")]
    Forbidden,
    /// A line names a product that does not exist.
    #[error("product {product_id} does not exist")]
    ProductNotFound {
        /// The product concerned.
        product_id: ProductId,
    },
    /// A line names an archived product.
    #[error("product {product_id} is no longer sold")]
    ProductUnavailable {
        /// The product concerned.
        product_id: ProductId,
    },
    /// Not enough stock for a line.
    #[error("product {product_id} has {available} left, {requested} requested")]
    InsufficientStock {
        /// The product concerned.
        product_id: ProductId,
        /// Units asked for.
        requested: u32,
        /// Units left.
        available: u32,
    },
    /// The customer's account no longer exists.
    #[error("the customer's account no longer exists")]
    UnknownCustomer,
    /// The lines break an order rule (none, too many, mixed currencies, total too large).
    #[error(transparent)]
    Invalid(OrderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OrderError> for PlaceOrderError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::UnknownProduct { product_id } => Self::ProductNotFound { product_id },
            OrderError::ProductArchived { product_id } => Self::ProductUnavailable { product_id },
            other => Self::Invalid(other),
        }
    }
}

impl From<PlaceOrderFailure> for PlaceOrderError {
    fn from(failure: PlaceOrderFailure) -> Self {
        match failure {
            PlaceOrderFailure::InsufficientStock { product_id, requested, available } => {
                Self::InsufficientStock { product_id, requested, available }
            }
            PlaceOrderFailure::ProductUnavailable { product_id } => {
                Self::ProductUnavailable { product_id }
            }
            PlaceOrderFailure::UnknownCustomer => Self::UnknownCustomer,
            PlaceOrderFailure::Store(store) => Self::Store(store),
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct PlaceOrder {
    products: Arc<dyn ProductRepository>,
    orders: Arc<dyn OrderRepository>,
    clock: Arc<dyn Clock>,
    payment_timeout: TimeDelta,
}

impl PlaceOrder {
    /// `payment_timeout` is how long a new order waits for payment before it may expire.
    #[must_use]
    pub fn new(
        products: Arc<dyn ProductRepository>,
        orders: Arc<dyn OrderRepository>,
        clock: Arc<dyn Clock>,
        payment_timeout: TimeDelta,
    ) -> Self {
        Self { products, orders, clock, payment_timeout }
    }

    /// Places the order for `actor` and returns it, pending payment.
    ///
    /// # Errors
    /// See [`PlaceOrderError`]; on error nothing is stored and no stock is reserved.
    pub async fn execute(
        &self,
        actor: &Actor,
        input: PlaceOrderInput,
    ) -> Result<Order, PlaceOrderError> {
        let user_id = actor.user_id().ok_or(PlaceOrderError::Forbidden)?;
        let lines = OrderLines::new(input.lines)?;
        let ids: Vec<ProductId> = lines.product_ids().collect();
        let products = self.products.find_many(&ids).await?;
        let now = self.clock.now();
        let (order, mut placed) =
            Order::place(user_id, &lines, &products, now, now + self.payment_timeout)?;
        placed.request_id = input.request_id;
        self.orders.place(&order, &placed).await?;
        Ok(order)
    }
}
