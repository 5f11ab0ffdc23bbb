use std::time::Duration;

use async_trait::async_trait;
use orderly_domain::{Money, OrderId};

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused (card declined, limit reached): the customer must act. Retrying the
    /// same call gives the same answer.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider could not be reached or kept failing after the adapter's bounded retries.
    /// Whether the call took effect is unknown; repeating it with the same order is safe,
    /// because every call carries an idempotency key derived from the order.
    #[error("the payment gateway is unavailable")]
    Unavailable {
        /// When a retry may succeed, when the adapter knows (its circuit breaker is open).
        retry_after: Option<Duration>,
        /// What went wrong.
        #[source]
        source: anyhow::Error,
    },
    /// Asked to release a hold, the provider answered that the money was already taken (a
    /// capture whose answer was lost, say): the money must be given back with a refund.
    #[error("the payment was already captured, so its hold cannot be released")]
    AlreadyCaptured,
    /// Anything else (a malformed answer, a refused request): a bug or a misconfiguration.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl PaymentError {
    /// A gateway that cannot be reached, with no hint of when it will be back.
    #[must_use]
    pub fn unavailable(source: anyhow::Error) -> Self {
        Self::Unavailable { retry_after: None, source }
    }
}

/// Moves money for orders with a card provider, in two steps: an authorization holds the amount,
/// a capture takes it; a void releases a hold that was never captured, a refund gives captured
/// money back.
///
/// Implementations MUST send the provider an idempotency key derived from the order and the
/// operation (`{order id}-authorize-{attempt}`, `{order id}-capture`, `-void`, `-refund`), so
/// that repeating a call after a lost answer never moves money twice; and MUST bound every call
/// in time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Holds `amount` for `order`. Returns the provider's reference of the payment.
    ///
    /// `attempt` tells attempts apart: the same attempt repeated (a retry after a lost answer)
    /// must get the same authorization back, while a new attempt after a decline must reach the
    /// provider afresh. Callers pass the order's version, which a recorded decline moves on.
    ///
    /// # Errors
    /// [`PaymentError::Declined`] when the provider refuses the payment,
    /// [`PaymentError::Unavailable`] when it cannot be reached, [`PaymentError::Unexpected`]
    /// otherwise.
    async fn authorize(
        &self,
        order: OrderId,
        attempt: u64,
        amount: Money,
    ) -> Result<String, PaymentError>;

    /// Takes the money held by the authorization `reference`.
    ///
    /// # Errors
    /// As [`PaymentGateway::authorize`].
    async fn capture(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError>;

    /// Releases the hold of an authorization that will never be captured. A hold already
    /// released is released: repeating a void answers `Ok`.
    ///
    /// # Errors
    /// [`PaymentError::AlreadyCaptured`] when the provider says the money was taken (the caller
    /// refunds it instead); otherwise as [`PaymentGateway::authorize`].
    async fn void(&self, order: OrderId, reference: &str) -> Result<(), PaymentError>;

    /// Gives captured money back.
    ///
    /// # Errors
    /// As [`PaymentGateway::authorize`].
    async fn refund(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError>;
}
