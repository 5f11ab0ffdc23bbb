use async_trait::async_trait;
use orderly_domain::{Money, OrderId};

/// Proof that a payment went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    /// The gateway's reference for the charge.
    pub reference: String,
}

/// Why a charge failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The payment was refused (card declined, limit reached): the customer must act.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The gateway cannot be reached: try again later.
    #[error("the payment gateway is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Takes money for orders.
#[mockall::automock]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges `amount` for `order`. Implementations MUST pass the order id to the provider as
    /// the idempotency key, so that charging the same order again (a retry after a lost answer)
    /// never takes the money twice.
    ///
    /// # Errors
    /// [`PaymentError::Declined`] when the provider refuses the payment,
    /// [`PaymentError::Unavailable`] when it cannot be reached, [`PaymentError::Unexpected`]
    /// otherwise.
    async fn charge(&self, order: OrderId, amount: Money) -> Result<PaymentReceipt, PaymentError>;
}
