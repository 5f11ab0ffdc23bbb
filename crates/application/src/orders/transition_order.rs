//! Moves an order through its state machine on behalf of a user: pay, cancel, ship, deliver.

use std::sync::Arc;

use orderly_domain::{
    Actor, Order, OrderAction, OrderId, OrderStatus, OrderTransition, Reason, TransitionError,
};

use crate::{
    StoreError, WriteError,
    orders::find_visible,
    ports::{Clock, OrderRepository, PaymentError, PaymentGateway, PaymentReceipt},
};

/// The move to make.
#[derive(Debug, Clone)]
pub struct TransitionOrderInput {
    pub id: OrderId,
    pub action: OrderAction,
    pub reason: Option<Reason>,
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    /// Recorded in the order's history, for tracing.
    pub request_id: Option<String>,
}

/// Why the move was not made.
#[derive(Debug, thiserror::Error)]
pub enum TransitionOrderError {
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
    /// The payment deadline has passed; the order is about to expire.
    #[error("the payment deadline {due_at} has passed")]
    PaymentOverdue {
        /// The deadline.
        due_at: orderly_domain::time::Timestamp,
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
    /// The payment went through, but another request cancelled (or the system expired) the
    /// order meanwhile: the payment is recorded on the order and its refund flagged.
    #[error(
        "the order was {status} while it was being paid; the payment is recorded on it for a refund"
    )]
    PaidTooLate {
        /// What the order became.
        status: OrderStatus,
    },
    /// The payment provider refused the payment.
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// The payment provider cannot be reached.
    #[error("the payment gateway is unavailable")]
    PaymentUnavailable(#[source] anyhow::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<TransitionError> for TransitionOrderError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::Invalid { from, action, allowed } => {
                Self::InvalidTransition { from, action, allowed }
            }
            TransitionError::NotPermitted { from, action } => Self::Forbidden { from, action },
            TransitionError::PaymentOverdue { due_at, allowed } => {
                Self::PaymentOverdue { due_at, allowed }
            }
            TransitionError::NotDue { .. } => {
                Self::Unexpected(anyhow::Error::new(error).context("a user expired an order"))
            }
        }
    }
}

impl From<PaymentError> for TransitionOrderError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Declined(reason) => Self::PaymentDeclined(reason),
            PaymentError::Unavailable(source) => Self::PaymentUnavailable(source),
            PaymentError::Unexpected(source) => Self::Unexpected(source),
        }
    }
}

impl From<WriteError> for TransitionOrderError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::Stale => Self::Conflict,
            WriteError::Store(store) => Self::Store(store),
            other @ (WriteError::Duplicate(_)
            | WriteError::StillReferenced
            | WriteError::MissingParent
            | WriteError::LastAdmin) => {
                Self::Unexpected(anyhow::Error::new(other).context("saving a transition"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct TransitionOrder {
    orders: Arc<dyn OrderRepository>,
    payments: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
}

impl TransitionOrder {
    #[must_use]
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { orders, payments, clock }
    }

    /// Applies the move and returns the order as stored with the new history entry.
    ///
    /// For `pay`, the gateway is charged after the move is known to be legal and before it is
    /// stored; the charge is idempotent per order (see [`PaymentGateway::charge`]), so a retry
    /// after a failed save never charges twice.
    ///
    /// # Errors
    /// See [`TransitionOrderError`]. Nothing is stored on error, with one exception: a payment
    /// that lost the race to a cancellation or expiry is recorded on the order for a refund
    /// ([`TransitionOrderError::PaidTooLate`]).
    pub async fn execute(
        &self,
        actor: &Actor,
        input: TransitionOrderInput,
    ) -> Result<(Order, OrderTransition), TransitionOrderError> {
        let mut order = find_visible(&self.orders, actor, input.id)
            .await?
            .ok_or(TransitionOrderError::NotFound)?;
        let loaded = order.version();
        if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
            return Err(TransitionOrderError::VersionMismatch { expected, current: loaded });
        }
        let mut entry = order.apply(input.action, actor, input.reason, self.clock.now())?;
        entry.request_id = input.request_id;
        let payment = if input.action == OrderAction::Pay {
            Some(self.payments.charge(order.id(), order.total()).await?)
        } else {
            None
        };
        match self.orders.save_transition(&order, &entry, loaded, payment.clone()).await {
            Ok(()) => Ok((order, entry)),
            Err(WriteError::Stale) => {
                Err(self.after_lost_race(order.id(), input.expected_version, payment).await)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Another request moved the order between loading and saving. If money was taken for an
    /// order that is now cancelled or expired, it is recorded for a refund rather than lost.
    /// Otherwise a client that sent `If-Match` is told its version is no longer current, with
    /// the current one (HTTP 412), whichever moment the other request won at.
    async fn after_lost_race(
        &self,
        id: OrderId,
        expected_version: Option<u64>,
        payment: Option<PaymentReceipt>,
    ) -> TransitionOrderError {
        if payment.is_none() && expected_version.is_none() {
            return TransitionOrderError::Conflict;
        }
        let current = match self.orders.find_by_id(id).await {
            Ok(Some(order)) => order,
            Ok(None) => return TransitionOrderError::NotFound,
            Err(error) => return error.into(),
        };
        if let Some(payment) = payment
            && matches!(current.status(), OrderStatus::Cancelled | OrderStatus::Expired)
        {
            return match self.orders.record_refund_due(id, payment).await {
                Ok(()) => TransitionOrderError::PaidTooLate { status: current.status() },
                Err(error) => error.into(),
            };
        }
        match expected_version {
            Some(expected) => {
                TransitionOrderError::VersionMismatch { expected, current: current.version() }
            }
            // Another payment of the same order won; the gateway charged it once (idempotent).
            None => TransitionOrderError::Conflict,
        }
    }
}
