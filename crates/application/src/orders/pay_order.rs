//! Pays an order: the provider holds the total, the order moves to paid with that authorization
//! in one transaction, then the money is captured.

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderAction, OrderId, OrderStatus, TransitionError};

use crate::{
    StoreError,
    idempotency::{IdempotencyRefusal, Keys, Outcome, Receipt},
    orders::{
        moves::{self, MoveRequest, Moved, common_refusals},
        settle_payments::{Settled, Settlement},
    },
    ports::{
        Clock, IdempotencyStore, OrderRepository, OrderWriteError, PaymentError, PaymentGateway,
    },
};

/// Why the order was not paid.
#[derive(Debug, thiserror::Error)]
pub enum PayOrderError {
    /// No such order, or another customer's.
    #[error("order not found")]
    NotFound,
    /// The order is not waiting for payment (including one already paid).
    #[error("cannot {action} an order that is {from}")]
    InvalidTransition {
        /// The current status.
        from: OrderStatus,
        /// The refused action (`pay`).
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
    /// Paying exists but not for this actor.
    #[error("not permitted to {action} an order that is {from}")]
    Forbidden {
        /// The current status.
        from: OrderStatus,
        /// The refused action (`pay`).
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
    /// The payment provider did not answer: the authorization asked for stays recorded
    /// `pending` (it may hold money); a retry asks for the same one.
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

common_refusals!(PayOrderError);

impl From<TransitionError> for PayOrderError {
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
                Self::Unexpected(anyhow::Error::new(error).context("paying an order"))
            }
        }
    }
}

impl From<PaymentError> for PayOrderError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Declined(reason) => Self::PaymentDeclined(reason),
            PaymentError::Unavailable { retry_after, source } => {
                Self::PaymentUnavailable { retry_after, source }
            }
            PaymentError::Unexpected(source) => Self::Unexpected(source),
            PaymentError::AlreadyCaptured => {
                Self::Unexpected(anyhow::Error::new(error).context("authorizing a payment"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct PayOrder {
    orders: Arc<dyn OrderRepository>,
    payments: Arc<dyn PaymentGateway>,
    settlement: Settlement,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

impl PayOrder {
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

    /// Pays the order and returns it as stored with the new history entry.
    ///
    /// The total is authorized with the provider once paying is known to be legal; the move and
    /// the authorization are stored in one transaction; then the money is captured. A capture
    /// the provider fails stays owed on the order (`payment.status` shows it) and the
    /// background job asks again.
    ///
    /// # Errors
    /// See [`PayOrderError`]. On error the order keeps what is known of its payment: the
    /// authorization asked for stays recorded `pending` when the provider did not answer
    /// ([`PayOrderError::PaymentUnavailable`], or an unexpected answer); a declined payment is
    /// recorded as failed; an authorization that lost the race to a cancellation or expiry is
    /// recorded on the order and voided ([`PayOrderError::PaidTooLate`]). Nothing else is
    /// stored. The idempotency key is free again after an error.
    #[tracing::instrument(name = "pay_order", skip_all, fields(order = %request.id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        mut request: MoveRequest,
    ) -> Result<Outcome<Moved>, PayOrderError> {
        let idempotency = request.idempotency.take();
        self.keys.run(idempotency, |receipt| self.pay(actor, request, receipt)).await
    }

    /// The effect: authorizes, stores the move with `receipt`'s record (when a key was sent),
    /// then settles.
    async fn pay(
        &self,
        actor: &Actor,
        request: MoveRequest,
        receipt: Option<Receipt<Moved>>,
    ) -> Result<Moved, PayOrderError> {
        let mut order =
            moves::load(&self.orders, actor, request.id, request.expected_version).await?;
        let now = self.clock.now();
        order.check(OrderAction::Pay, actor, now)?;
        let attempt = order.payment_attempt();
        self.record_asked(&mut order, attempt, request.expected_version).await?;
        let loaded = order.version();
        let reference = self.authorize(&mut order, attempt).await?;
        let mut entry = match order.pay(actor, request.reason, reference.clone(), now) {
            Ok(entry) => entry,
            Err(error) => {
                self.release(order.id(), &reference).await;
                return Err(error.into());
            }
        };
        entry.request_id = request.request_id;
        let completion = receipt.map(|receipt| receipt.completion(&(order.clone(), entry.clone())));
        match self.orders.save_transition(&order, &entry, loaded, completion).await {
            Ok(()) => Ok(moves::settle_stored(&self.settlement, order, entry).await),
            Err(OrderWriteError::Stale) => {
                Err(self.after_lost_race(&order, request.expected_version, reference).await)
            }
            Err(OrderWriteError::NotFound) => {
                // The order is gone: the authorization was recorded nowhere.
                self.release(order.id(), &reference).await;
                Err(PayOrderError::NotFound)
            }
            // A store failure may have committed or not: the authorization is left for the
            // provider to let lapse rather than voided under a payment that may be recorded.
            Err(other) => Err(other.into()),
        }
    }

    /// Records on the order, before the provider is asked, that an authorization is asked with
    /// `attempt` (ADR 0026): if the answer is lost, the order shows a `pending` payment that the
    /// customer's retry or reconciliation asks for again, instead of a hold nobody knows of.
    async fn record_asked(
        &self,
        order: &mut Order,
        attempt: u64,
        expected_version: Option<u64>,
    ) -> Result<(), PayOrderError> {
        let loaded = order.version();
        let mut asked = order.clone();
        asked.record_authorization_asked(attempt, self.clock.now()).map_err(|error| {
            PayOrderError::Unexpected(anyhow::Error::new(error).context("recording a payment"))
        })?;
        if asked.version() == loaded {
            return Ok(());
        }
        match self.orders.save_payment(&asked, loaded).await {
            Ok(()) => {
                *order = asked;
                Ok(())
            }
            Err(OrderWriteError::Stale) => {
                Err(moves::lost_race(&self.orders, order.id(), expected_version).await.into())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Asks the provider to hold the order's total with `attempt`. A decline is recorded on the
    /// order (a failed payment), which also moves its version on, so the next attempt reaches
    /// the provider afresh. An answer that does not come leaves the payment `pending`.
    async fn authorize(&self, order: &mut Order, attempt: u64) -> Result<String, PayOrderError> {
        match self.payments.authorize(order.id(), attempt, order.total()).await {
            Ok(reference) => Ok(reference),
            Err(PaymentError::Declined(reason)) => {
                let loaded = order.version();
                let mut declined = order.clone();
                if declined.record_declined_payment(self.clock.now()).is_ok()
                    && let Err(error) = self.orders.save_payment(&declined, loaded).await
                {
                    tracing::warn!(order_id = %order.id(), error = %format!("{error:#}"),
                        "a declined payment could not be recorded on the order");
                }
                Err(PayOrderError::PaymentDeclined(reason))
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

    /// Another request moved the order between loading and saving. The authorization this
    /// request holds is never left charged: if the order was cancelled or expired, it is
    /// recorded on the order and voided; if another payment won, this one is voided. Otherwise a
    /// client that sent `If-Match` is told its version is no longer current (HTTP 412).
    async fn after_lost_race(
        &self,
        lost: &Order,
        expected_version: Option<u64>,
        reference: String,
    ) -> PayOrderError {
        let id = lost.id();
        let mut current = match self.orders.find_by_id(id).await {
            Ok(Some(order)) => order,
            found => {
                // The authorization was not recorded (the save was refused): void it.
                self.release(id, &reference).await;
                return match found {
                    Err(error) => error.into(),
                    Ok(_) => PayOrderError::NotFound,
                };
            }
        };
        let winner = current.payment().and_then(|payment| payment.reference());
        if winner == Some(reference.as_str()) {
            // A concurrent `pay` of the same attempt won with the same authorization.
            return PayOrderError::Conflict;
        }
        let version = current.version();
        if current
            .record_late_authorization(reference.clone(), lost.total(), self.clock.now())
            .is_ok()
        {
            if let Err(error) = self.orders.save_payment(&current, version).await {
                tracing::warn!(order_id = %id, error = %format!("{error:#}"),
                    "a late authorization could not be recorded; voiding it directly");
                self.release(id, &reference).await;
            } else if let Settled::Deferred(_) = self.settlement.settle(&mut current).await {
                tracing::warn!(order_id = %id, "the late authorization is voided by the job");
            }
            return PayOrderError::PaidTooLate { status: current.status() };
        }
        self.release(id, &reference).await;
        match expected_version {
            Some(expected) => {
                PayOrderError::VersionMismatch { expected, current: current.version() }
            }
            None => PayOrderError::Conflict,
        }
    }
}
