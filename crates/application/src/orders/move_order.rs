//! Moves an order on behalf of a user: cancel, ship or deliver. Paying is [`PayOrder`]'s, as it
//! asks the provider for money first.
//!
//! [`PayOrder`]: crate::orders::pay_order::PayOrder

use std::sync::Arc;

use orderly_domain::{Actor, OrderAction, OrderStatus, TransitionError};

use crate::{
    StoreError,
    idempotency::{IdempotencyRefusal, Keys, Outcome, Receipt},
    orders::{
        moves::{self, MoveRequest, Moved, common_refusals},
        settle_payments::Settlement,
    },
    ports::{Clock, IdempotencyStore, OrderRepository, PaymentGateway},
};

/// Why the move was not made.
#[derive(Debug, thiserror::Error)]
pub enum MoveOrderError {
    /// No such order, or another customer's.
    #[error("order not found")]
    NotFound,
    /// No such move from the current status (including repeating one that already happened).
    #[error("cannot {action} an order that is {from}")]
    InvalidTransition {
        /// The current status.
        from: OrderStatus,
        /// The refused action.
        action: OrderAction,
        /// What the actor may do instead.
        allowed: Vec<OrderAction>,
    },
    /// The move exists but not for this actor.
    #[error("not permitted to {action} an order that is {from}")]
    Forbidden {
        /// The current status.
        from: OrderStatus,
        /// The refused action.
        action: OrderAction,
    },
    /// The client's version is not the current one (HTTP 412).
    #[error("the order has changed since version {expected}; it is now at version {current}")]
    VersionMismatch {
        /// What the client sent.
        expected: u64,
        /// What is stored.
        current: u64,
    },
    /// Another request moved the order at the same moment.
    #[error("the order was changed concurrently")]
    Conflict,
    /// The idempotency key cannot be used now.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (`pay` asked of this use case is one: it is [`PayOrder`]'s).
    ///
    /// [`PayOrder`]: crate::orders::pay_order::PayOrder
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

common_refusals!(MoveOrderError);

impl From<TransitionError> for MoveOrderError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::Invalid { from, action, allowed } => {
                Self::InvalidTransition { from, action, allowed }
            }
            TransitionError::NotPermitted { from, action } => Self::Forbidden { from, action },
            TransitionError::PaymentOverdue { .. }
            | TransitionError::NotDue { .. }
            | TransitionError::PaymentRequired
            | TransitionError::AlreadyPaid(_) => {
                Self::Unexpected(anyhow::Error::new(error).context("moving an order"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct MoveOrder {
    orders: Arc<dyn OrderRepository>,
    settlement: Settlement,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

impl MoveOrder {
    #[must_use]
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentGateway>,
        idempotency: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let settlement = Settlement::new(orders.clone(), payments, clock.clone());
        let keys = Keys::new(idempotency, clock.clone());
        Self { orders, settlement, keys, clock }
    }

    /// Applies `action` and returns the order as stored with the new history entry. A move that
    /// releases a payment (an admin cancelling a paid order) is stored first, then the refund or
    /// void is asked of the provider; what the provider fails stays owed on the order
    /// (`payment.status` shows it) and the background job asks again.
    ///
    /// # Errors
    /// See [`MoveOrderError`]; nothing is stored on error, and the idempotency key is free
    /// again.
    #[tracing::instrument(name = "move_order", skip_all, fields(order = %request.id, %action))]
    pub async fn execute(
        &self,
        actor: &Actor,
        action: OrderAction,
        mut request: MoveRequest,
    ) -> Result<Outcome<Moved>, MoveOrderError> {
        let idempotency = request.idempotency.take();
        self.keys.run(idempotency, |receipt| self.apply(actor, action, request, receipt)).await
    }

    /// The effect: stores the move with `receipt`'s record (when a key was sent), then settles.
    async fn apply(
        &self,
        actor: &Actor,
        action: OrderAction,
        request: MoveRequest,
        receipt: Option<Receipt<Moved>>,
    ) -> Result<Moved, MoveOrderError> {
        let mut order =
            moves::load(&self.orders, actor, request.id, request.expected_version).await?;
        let loaded = order.version();
        let mut entry = order.apply(action, actor, request.reason, self.clock.now())?;
        entry.request_id = request.request_id;
        let completion = receipt.map(|receipt| receipt.completion(&(order.clone(), entry.clone())));
        match self.orders.save_transition(&order, &entry, loaded, completion).await {
            Ok(()) => Ok(moves::settle_stored(&self.settlement, order, entry).await),
            Err(crate::ports::OrderWriteError::Stale) => {
                Err(moves::lost_race(&self.orders, request.id, request.expected_version)
                    .await
                    .into())
            }
            Err(other) => Err(other.into()),
        }
    }
}
