use async_trait::async_trait;
use orderly_domain::{
    Order, OrderId, OrderStatus, OrderTransition, ProductId, UserId, time::Timestamp,
};

use crate::{
    StoreError, WriteError,
    pagination::{Page, PageRequest},
    ports::PaymentReceipt,
};

/// Why the store refused to place an order.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderFailure {
    /// Not enough stock left for a line (checked by the conditional update itself).
    #[error("product {product_id} has {available} left, {requested} requested")]
    InsufficientStock {
        /// The product concerned.
        product_id: ProductId,
        /// Units asked for.
        requested: u32,
        /// Units left when the order was refused.
        available: u32,
    },
    /// The product disappeared or was archived between reading and reserving.
    #[error("product {product_id} is no longer available")]
    ProductUnavailable {
        /// The product concerned.
        product_id: ProductId,
    },
    /// The customer no longer exists (the account was deleted while a token was still valid).
    #[error("the customer does not exist")]
    UnknownCustomer,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores [`Order`] aggregates with their items and history.
#[mockall::automock]
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// In one transaction: reserves stock for every item with a conditional decrement (in
    /// product-id order, never below zero), stores the order and its items, and writes the
    /// `placed` history entry. All of it or none of it.
    ///
    /// # Errors
    /// [`PlaceOrderFailure::InsufficientStock`] when a line cannot be reserved,
    /// [`PlaceOrderFailure::ProductUnavailable`] when a product vanished or was archived,
    /// [`PlaceOrderFailure::UnknownCustomer`] when the order's user does not exist,
    /// [`PlaceOrderFailure::Store`] otherwise. Nothing is written on error.
    async fn place(&self, order: &Order, placed: &OrderTransition)
    -> Result<(), PlaceOrderFailure>;

    /// The order with this id, with its items.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing order is `Ok(None)`).
    async fn find_by_id(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// In one transaction: writes the order's new status (only if the stored row still has
    /// `expected_version` and the entry's `from` status), appends `entry` to the history,
    /// records `payment` when given, and gives the reserved stock back when
    /// [`OrderTransition::releases_stock`] says so.
    ///
    /// # Errors
    /// [`WriteError::NotFound`] when the order is gone, [`WriteError::Stale`] when its version or
    /// status moved on (another request won), [`WriteError::Store`] otherwise.
    async fn save_transition(
        &self,
        order: &Order,
        entry: &OrderTransition,
        expected_version: u64,
        payment: Option<PaymentReceipt>,
    ) -> Result<(), WriteError>;

    /// Records a payment that was taken for an order another request cancelled or expired in the
    /// meantime: stores the gateway's reference and flags the refund, so the money is never lost
    /// track of. Only cancelled and expired orders are changed.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn record_refund_due(
        &self,
        id: OrderId,
        payment: PaymentReceipt,
    ) -> Result<(), StoreError>;

    /// Up to `limit` orders still pending payment whose deadline is at or before `now`, oldest
    /// deadline first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find_overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<Order>, StoreError>;
}

/// Which orders a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub user_id: Option<UserId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// Reads lists of orders and their history.
#[mockall::automock]
#[async_trait]
pub trait OrderQueries: Send + Sync {
    /// Orders matching `filter`, newest first, with their items (no per-order queries).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(&self, filter: OrderFilter, page: PageRequest)
    -> Result<Page<Order>, StoreError>;

    /// Every history entry of the order, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn history(&self, id: OrderId) -> Result<Vec<OrderTransition>, StoreError>;
}
