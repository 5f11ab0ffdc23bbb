use async_trait::async_trait;
use orderly_domain::{
    Order, OrderId, OrderStatus, OrderTransition, ProductId, UserId, time::Timestamp,
};

use crate::{
    StoreError,
    pagination::{Page, PageRequest},
    ports::Completion,
};

/// Why the store refused to write a placed order (placing one has its own
/// [`PlaceOrderFailure`]). Orders are never deleted and a write does not change what they refer
/// to: it can only find the order gone or moved on.
#[derive(Debug, thiserror::Error)]
pub enum OrderWriteError {
    /// There is no such order.
    #[error("the order does not exist")]
    NotFound,
    /// The order changed since it was read (its version or status moved on): another request
    /// won.
    #[error("the order was changed by someone else")]
    Stale,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// In one transaction: reserves stock for every item with a conditional decrement (in
    /// product-id order, never below zero), stores the order and its items, and writes the
    /// `placed` history entry, and records `completion` (the response to an idempotency key,
    /// only while its claim is held). All of it or none of it.
    ///
    /// # Errors
    /// [`PlaceOrderFailure::InsufficientStock`] when a line cannot be reserved,
    /// [`PlaceOrderFailure::ProductUnavailable`] when a product vanished or was archived,
    /// [`PlaceOrderFailure::UnknownCustomer`] when the order's user does not exist,
    /// [`PlaceOrderFailure::Store`] otherwise, with [`StoreError::Contention`] when the
    /// idempotency claim was lost. Nothing is written on error.
    async fn place(
        &self,
        order: &Order,
        placed: &OrderTransition,
        completion: Option<Completion>,
    ) -> Result<(), PlaceOrderFailure>;

    /// The order with this id, with its items.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing order is `Ok(None)`).
    async fn find_by_id(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// In one transaction: writes the order's new status and payment (only if the stored row
    /// still has `expected_version` and the entry's `from` status), appends `entry` to the
    /// history, gives the reserved stock back when [`OrderTransition::releases_stock`] says so,
    /// and records `completion` (the response to an idempotency key, only while its claim is
    /// held).
    ///
    /// # Errors
    /// [`OrderWriteError::NotFound`] when the order is gone, [`OrderWriteError::Stale`] when its
    /// version or status moved on (another request won), [`OrderWriteError::Store`] otherwise,
    /// with [`StoreError::Contention`] when the idempotency claim was lost.
    async fn save_transition(
        &self,
        order: &Order,
        entry: &OrderTransition,
        expected_version: u64,
        completion: Option<Completion>,
    ) -> Result<(), OrderWriteError>;

    /// Writes the order's payment, version and update time, only if the stored row still has
    /// `expected_version` (its status is not changed by this call).
    ///
    /// # Errors
    /// [`OrderWriteError::NotFound`] when the order is gone, [`OrderWriteError::Stale`] when its
    /// version moved on, [`OrderWriteError::Store`] otherwise.
    async fn save_payment(
        &self,
        order: &Order,
        expected_version: u64,
    ) -> Result<(), OrderWriteError>;

    /// Up to `limit` orders that still owe their payment provider work
    /// ([`Order::payment_due`]: a capture, a void, a refund or a reconciliation), last changed at or before
    /// `changed_before`, least recently changed first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find_payments_due(
        &self,
        changed_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError>;

    /// How many orders owe their provider work it failed [`SETTLEMENT_ATTEMPTS`] times in a row
    /// (`Payment::needs_attention`), for the gauge operators are alerted on.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    ///
    /// [`SETTLEMENT_ATTEMPTS`]: orderly_domain::order::SETTLEMENT_ATTEMPTS
    async fn count_payments_needing_attention(&self) -> Result<u64, StoreError>;

    /// Claims up to `limit` orders still pending payment whose deadline is at or before `now`,
    /// oldest deadline first (ties by id), starting after `after` when given: the expiry job's
    /// batch. The claim is a transaction that holds the orders until
    /// [`OverdueClaim::commit`] or until it is dropped; on PostgreSQL it takes their rows with
    /// `FOR UPDATE SKIP LOCKED`, so concurrent claims (other instances) get other orders, and
    /// orders a request is writing right now are left for a later run. A stored order that cannot
    /// be read back comes as an [`UnreadableOrder`] in its place and does not fail the others.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; nothing is claimed then.
    async fn claim_overdue(
        &self,
        now: Timestamp,
        after: Option<OverdueCursor>,
        limit: u32,
    ) -> Result<OverdueBatch, StoreError>;
}

/// A stored order the store cannot rebuild into an [`Order`] (corrupted data): reported with
/// its id, never served.
#[derive(Debug, thiserror::Error)]
#[error("order {id} cannot be read back")]
pub struct UnreadableOrder {
    /// The order's id, which is always readable.
    pub id: OrderId,
    /// Why the row does not make an order.
    #[source]
    pub error: anyhow::Error,
}

/// Where a batch of overdue orders ended, for the next batch to start after it: the last
/// claimed order's deadline and id, the claim's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverdueCursor {
    /// The last claimed order's payment deadline.
    pub due_at: Timestamp,
    /// The last claimed order's id.
    pub id: OrderId,
}

/// One batch of overdue orders claimed by [`OrderRepository::claim_overdue`].
pub struct OverdueBatch {
    /// The claimed orders in claim order; each unreadable one is an `Err` in its place.
    pub orders: Vec<Result<Order, UnreadableOrder>>,
    /// Where the next batch starts (`None` when nothing was claimed).
    pub next: Option<OverdueCursor>,
    /// The open claim, through which the orders are expired.
    pub claim: Box<dyn OverdueClaim>,
}

impl std::fmt::Debug for OverdueBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverdueBatch")
            .field("orders", &self.orders)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// The open transaction of one [`OverdueBatch`]: expiries saved through it become durable
/// together at [`OverdueClaim::commit`]. Dropped without a commit, none of them is written.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OverdueClaim: Send {
    /// Within the claim, with the same contract as [`OrderRepository::save_transition`]
    /// without a payment: writes the order's new status only if the stored row still has
    /// `expected_version` and the entry's `from` status, appends `entry` to the history, and
    /// gives the reserved stock back. The version guard stays the correctness guard where the
    /// claim locks nothing (SQLite) and against requests that wrote before the claim.
    ///
    /// # Errors
    /// [`OrderWriteError::NotFound`] when the order is gone, [`OrderWriteError::Stale`] when its
    /// version or status moved on, [`OrderWriteError::Store`] otherwise; on any error nothing of
    /// this order is written and the claim stays usable for the others.
    async fn save_expiry(
        &mut self,
        order: &Order,
        entry: &OrderTransition,
        expected_version: u64,
    ) -> Result<(), OrderWriteError>;

    /// Writes every expiry saved through the claim and releases the claimed orders.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails: then none of the batch's expiries is written.
    async fn commit(&mut self) -> Result<(), StoreError>;
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
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
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
