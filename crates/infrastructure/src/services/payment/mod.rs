//! Payment gateways (ADR 0010, ADR 0022): the in-process simulation (the default), the adapter
//! of a Stripe-shaped REST provider with time-outs, retries and a circuit breaker, and the
//! wrapper that traces and counts every call of either.
//!
//! Every call sends the provider an idempotency key derived from the order and the operation
//! ([`idempotency_key`]), so that a retry, here or by the use case, never moves money twice.

mod breaker;
mod http;
mod metered;
mod simulated;

use orderly_domain::OrderId;

pub use breaker::{BreakerMonitor, BreakerState};
pub use http::{HttpGatewaySettings, HttpPaymentGateway};
pub use metered::MeteredPaymentGateway;
pub use simulated::SimulatedPaymentGateway;

/// The four things a gateway is asked to do, as spans, keys and metric labels name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Authorize,
    Capture,
    Void,
    Refund,
}

impl Operation {
    /// Every operation, in the order the metrics list them.
    pub(crate) const ALL: [Self; 4] = [Self::Authorize, Self::Capture, Self::Void, Self::Refund];

    /// `authorize`, `capture`, `void` or `refund`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// The idempotency key of `operation` on `order`: `{order uuid}-{operation}`, the same on every
/// attempt and every instance, so the provider performs each operation once per order.
#[must_use]
pub(crate) fn idempotency_key(order: OrderId, operation: Operation) -> String {
    format!("{}-{}", order.as_uuid(), operation.as_str())
}

/// The key of one authorization attempt: a retry of the same attempt gets the same hold back,
/// a new attempt after a decline reaches the provider afresh.
pub(crate) fn authorize_key(order: OrderId, attempt: u64) -> String {
    format!("{}-{attempt}", idempotency_key(order, Operation::Authorize))
}
