//! Places an order: validates and merges the lines, prices them from the catalogue, and lets the
//! repository reserve the stock and store everything in one transaction.

use std::sync::Arc;

use orderly_domain::{
    Actor, Order, OrderError, OrderLines, ProductId, Quantity, UserId, time::TimeDelta,
};

use crate::{
    StoreError,
    idempotency::{IdempotencyRefusal, Idempotent, Keys, Outcome, Receipt},
    ports::{Clock, IdempotencyStore, OrderRepository, PlaceOrderFailure, ProductRepository},
};

/// What to order, as the customer listed it (duplicates allowed; they are merged).
#[derive(Debug, Clone)]
pub struct PlaceOrderInput {
    pub lines: Vec<(ProductId, Quantity)>,
    /// Recorded in the order's history, for tracing.
    pub request_id: Option<String>,
    /// The client's idempotency key, if it sent one: the order is placed at most once per key.
    pub idempotency: Option<Idempotent<Order>>,
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
    /// The idempotency key cannot be used now.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
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
    keys: Keys,
    clock: Arc<dyn Clock>,
    payment_timeout: TimeDelta,
}

impl PlaceOrder {
    /// `payment_timeout` is how long a new order waits for payment before it may expire.
    #[must_use]
    pub fn new(
        products: Arc<dyn ProductRepository>,
        orders: Arc<dyn OrderRepository>,
        idempotency: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
        payment_timeout: TimeDelta,
    ) -> Self {
        let keys = Keys::new(idempotency, clock.clone());
        Self { products, orders, keys, clock, payment_timeout }
    }

    /// Places the order for `actor` and returns it, pending payment; or, for an idempotency key
    /// used before with the same request, the first response.
    ///
    /// # Errors
    /// See [`PlaceOrderError`]; on error nothing is stored, no stock is reserved, and the
    /// idempotency key is free again.
    pub async fn execute(
        &self,
        actor: &Actor,
        input: PlaceOrderInput,
    ) -> Result<Outcome<Order>, PlaceOrderError> {
        let user_id = actor.user_id().ok_or(PlaceOrderError::Forbidden)?;
        let PlaceOrderInput { lines, request_id, idempotency } = input;
        let lines = OrderLines::new(lines)?;
        self.keys.run(idempotency, |receipt| self.place(user_id, lines, request_id, receipt)).await
    }

    /// The effect: prices the lines and has the repository reserve and store the order, with
    /// `receipt`'s record when a key was sent.
    async fn place(
        &self,
        user_id: UserId,
        lines: OrderLines,
        request_id: Option<String>,
        receipt: Option<Receipt<Order>>,
    ) -> Result<Order, PlaceOrderError> {
        let ids: Vec<ProductId> = lines.product_ids().collect();
        let products = self.products.find_many(&ids).await?;
        let now = self.clock.now();
        let (order, mut placed) =
            Order::place(user_id, &lines, &products, now, now + self.payment_timeout)?;
        placed.request_id = request_id;
        let completion = receipt.map(|receipt| receipt.completion(&order));
        self.orders.place(&order, &placed, completion).await?;
        Ok(order)
    }
}
