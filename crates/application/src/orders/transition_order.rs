//! Moves an order through its state machine on behalf of a user: pay, cancel, ship, deliver.

use std::sync::Arc;

use orderly_domain::{
    Actor, Order, OrderAction, OrderId, OrderStatus, OrderTransition, Reason, TransitionError,
};

use crate::{
    StoreError, WriteError,
    idempotency::{Begin, Claimed, IdempotencyRefusal, Idempotent, Keys, Outcome},
    orders::{
        find_visible,
        settle_payments::{Settled, Settlement},
    },
    ports::{Clock, IdempotencyStore, OrderRepository, PaymentError, PaymentGateway},
};

/// A move as stored: the order after it and its history entry.
pub type Moved = (Order, OrderTransition);

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
    /// The client's idempotency key, if it sent one: the move is made at most once per key.
    pub idempotency: Option<Idempotent<Moved>>,
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
    /// The payment was authorized, but another request cancelled (or the system expired) the
    /// order meanwhile: the authorization is recorded on the order and released (voided), so
    /// nothing is charged.
    #[error(
        "the order was {status} while it was being paid; the payment was released, nothing was charged"
    )]
    PaidTooLate {
        /// What the order became.
        status: OrderStatus,
    },
    /// The payment provider refused the payment (recorded on the order as a failed payment).
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// The payment provider cannot be reached; nothing was charged.
    #[error("the payment gateway is unavailable")]
    PaymentUnavailable {
        /// When to try again, when the gateway knows (its circuit breaker is open).
        retry_after: Option<std::time::Duration>,
        /// What went wrong.
        #[source]
        source: anyhow::Error,
    },
    /// The idempotency key cannot be used now.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
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
            TransitionError::NotDue { .. }
            | TransitionError::PaymentRequired
            | TransitionError::AlreadyPaid(_) => {
                Self::Unexpected(anyhow::Error::new(error).context("moving an order"))
            }
        }
    }
}

impl From<PaymentError> for TransitionOrderError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Declined(reason) => Self::PaymentDeclined(reason),
            PaymentError::Unavailable { retry_after, source } => {
                Self::PaymentUnavailable { retry_after, source }
            }
            PaymentError::Unexpected(source) => Self::Unexpected(source),
            PaymentError::AlreadyCaptured => {
                Self::Unexpected(anyhow::Error::new(error).context("paying an order"))
            }
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
    settlement: Settlement,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

impl TransitionOrder {
    #[must_use]
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentGateway>,
        idempotency: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let settlement = Settlement::new(orders.clone(), payments.clone(), clock.clone());
        let keys = Keys::new(idempotency, clock.clone());
        Self { orders, payments, settlement, keys, clock }
    }

    /// Applies the move and returns the order as stored with the new history entry.
    ///
    /// `pay` authorizes the total with the provider once the move is known to be legal, stores
    /// the move and the authorization in one transaction, then captures. A move that releases a
    /// payment (an admin cancelling a paid order) is stored first, then the refund or void is
    /// asked of the provider. A settlement the provider fails stays owed on the order
    /// (`payment.status` shows it) and the background job asks again.
    ///
    /// # Errors
    /// See [`TransitionOrderError`]. Nothing is stored on error, with two exceptions: a declined
    /// payment is recorded on the order as failed, and an authorization that lost the race to a
    /// cancellation or expiry is recorded on the order and voided
    /// ([`TransitionOrderError::PaidTooLate`]). The idempotency key is free again after an
    /// error.
    pub async fn execute(
        &self,
        actor: &Actor,
        mut input: TransitionOrderInput,
    ) -> Result<Outcome<Moved>, TransitionOrderError> {
        let claimed = match self.keys.begin(input.idempotency.take()).await?? {
            Begin::Replay(response) => return Ok(Outcome::Replayed(response)),
            Begin::Proceed(claimed) => claimed,
        };
        match self.run(actor, input, claimed.as_ref()).await {
            Ok(moved) => Ok(Outcome::Done(moved)),
            Err(error) => {
                self.keys.release(claimed.as_ref()).await;
                Err(error)
            }
        }
    }

    async fn run(
        &self,
        actor: &Actor,
        input: TransitionOrderInput,
        claimed: Option<&Claimed<Moved>>,
    ) -> Result<Moved, TransitionOrderError> {
        let mut order = find_visible(&self.orders, actor, input.id)
            .await?
            .ok_or(TransitionOrderError::NotFound)?;
        let loaded = order.version();
        if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
            return Err(TransitionOrderError::VersionMismatch { expected, current: loaded });
        }
        let now = self.clock.now();
        let mut entry = if input.action == OrderAction::Pay {
            order.check(OrderAction::Pay, actor, now)?;
            let reference = self.authorize(&mut order).await?;
            match order.pay(actor, input.reason, reference.clone(), now) {
                Ok(entry) => entry,
                Err(error) => {
                    self.release(order.id(), &reference).await;
                    return Err(error.into());
                }
            }
        } else {
            order.apply(input.action, actor, input.reason, now)?
        };
        entry.request_id = input.request_id;
        let completion = claimed.map(|claimed| {
            claimed.completion(&(order.clone(), entry.clone()), self.clock.as_ref())
        });
        match self.orders.save_transition(&order, &entry, loaded, completion).await {
            Ok(()) => {
                let saved = order.version();
                self.settlement.settle(&mut order).await;
                let moved = (order, entry);
                if moved.0.version() != saved {
                    self.keys.update(claimed, &moved).await;
                }
                Ok(moved)
            }
            Err(WriteError::Stale) => {
                let reference = (input.action == OrderAction::Pay)
                    .then(|| order.payment().and_then(|p| p.reference()).map(str::to_owned))
                    .flatten();
                Err(self.after_lost_race(&order, input.expected_version, reference).await)
            }
            Err(WriteError::NotFound) => {
                // The order is gone: the authorization was recorded nowhere.
                if input.action == OrderAction::Pay
                    && let Some(reference) = order.payment().and_then(|p| p.reference())
                {
                    self.release(order.id(), reference).await;
                }
                Err(TransitionOrderError::NotFound)
            }
            // A store failure may have committed or not: the authorization is left for the
            // provider to let lapse rather than voided under a payment that may be recorded.
            Err(other) => Err(other.into()),
        }
    }

    /// Asks the provider to hold the order's total. A decline is recorded on the order (a failed
    /// payment), which also moves its version on, so the next attempt reaches the provider
    /// afresh.
    async fn authorize(&self, order: &mut Order) -> Result<String, TransitionOrderError> {
        let attempt = order.version();
        match self.payments.authorize(order.id(), attempt, order.total()).await {
            Ok(reference) => Ok(reference),
            Err(PaymentError::Declined(reason)) => {
                let mut declined = order.clone();
                if declined.record_declined_payment(self.clock.now()).is_ok()
                    && let Err(error) = self.orders.save_payment(&declined, attempt).await
                {
                    tracing::warn!(order_id = %order.id(), error = %format!("{error:#}"),
                        "a declined payment could not be recorded on the order");
                }
                Err(TransitionOrderError::PaymentDeclined(reason))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Voids an authorization this request holds but will not record. Best effort: a failure is
    /// logged with the reference, for a person to release by hand.
    async fn release(&self, id: OrderId, reference: &str) {
        if let Err(error) = self.payments.void(id, reference).await {
            tracing::error!(order_id = %id, %reference, error = %format!("{error:#}"),
                "an unrecorded authorization could not be voided; release it by hand");
        }
    }

    /// Another request moved the order between loading and saving. An authorization this request
    /// holds is never left charged: if the order was cancelled or expired, the authorization is
    /// recorded on it and voided; if another payment won, this one is voided. Otherwise a client
    /// that sent `If-Match` is told its version is no longer current, with the current one
    /// (HTTP 412), whichever moment the other request won at.
    async fn after_lost_race(
        &self,
        lost: &Order,
        expected_version: Option<u64>,
        reference: Option<String>,
    ) -> TransitionOrderError {
        let id = lost.id();
        if reference.is_none() && expected_version.is_none() {
            return TransitionOrderError::Conflict;
        }
        let mut current = match self.orders.find_by_id(id).await {
            Ok(Some(order)) => order,
            found => {
                // The authorization was not recorded (the save was refused): void it.
                if let Some(reference) = &reference {
                    self.release(id, reference).await;
                }
                return match found {
                    Err(error) => error.into(),
                    Ok(_) => TransitionOrderError::NotFound,
                };
            }
        };
        if let Some(reference) = reference {
            let winner = current.payment().and_then(|payment| payment.reference());
            if winner == Some(reference.as_str()) {
                // A concurrent `pay` of the same attempt won with the same authorization.
                return TransitionOrderError::Conflict;
            }
            let amount = lost.total();
            let version = current.version();
            if current
                .record_late_authorization(reference.clone(), amount, self.clock.now())
                .is_ok()
            {
                if let Err(error) = self.orders.save_payment(&current, version).await {
                    tracing::warn!(order_id = %id, error = %format!("{error:#}"),
                        "a late authorization could not be recorded; voiding it directly");
                    self.release(id, &reference).await;
                } else if let Settled::Deferred(_) = self.settlement.settle(&mut current).await {
                    tracing::warn!(order_id = %id, "the late authorization is voided by the job");
                }
                return TransitionOrderError::PaidTooLate { status: current.status() };
            }
            self.release(id, &reference).await;
        }
        match expected_version {
            Some(expected) => {
                TransitionOrderError::VersionMismatch { expected, current: current.version() }
            }
            None => TransitionOrderError::Conflict,
        }
    }
}
