use std::sync::Arc;

use async_trait::async_trait;
use orderly_application::ports::{PaymentError, PaymentGateway, PaymentReceipt};
use orderly_domain::{Money, OrderId};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// A payment gateway that approves every charge up to a limit, without taking real money: for
/// development, tests and demos. Idempotent per order like a real provider (the reference is
/// derived from the order id), and charges above `decline_above_minor` are declined, so the
/// declined path can be exercised end to end.
#[derive(Debug, Clone)]
pub struct SimulatedPaymentGateway {
    decline_above_minor: i64,
}

impl SimulatedPaymentGateway {
    /// Approves charges up to `decline_above_minor` minor units.
    #[must_use]
    pub fn new(decline_above_minor: i64) -> Self {
        Self { decline_above_minor }
    }
}

#[async_trait]
impl PaymentGateway for SimulatedPaymentGateway {
    async fn charge(&self, order: OrderId, amount: Money) -> Result<PaymentReceipt, PaymentError> {
        if amount.amount_minor() > self.decline_above_minor {
            return Err(PaymentError::Declined(format!(
                "amount {amount} exceeds the simulated card limit"
            )));
        }
        Ok(PaymentReceipt { reference: format!("sim_{}", order.as_uuid().simple()) })
    }
}

/// Wraps any gateway: each charge is a client span (`payment_gateway.charge`, a child of the
/// request's) and is counted by outcome in `orderly_payment_gateway_calls_total`
/// (`approved`, `declined`, `unavailable`, `error`). It also reports
/// `orderly_payment_breaker_state`, which stays 0 (closed): there is no circuit breaker yet.
pub struct MeteredPaymentGateway {
    inner: Arc<dyn PaymentGateway>,
    calls: IntCounterVec,
}

/// The outcomes, in the order the counter's help lists them.
const OUTCOMES: [&str; 4] = ["approved", "declined", "unavailable", "error"];

impl MeteredPaymentGateway {
    /// Wraps `inner`, registering the series in `registry`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn new(inner: Arc<dyn PaymentGateway>, registry: &Registry) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new(
                "orderly_payment_gateway_calls_total",
                "Charges sent to the payment gateway, by outcome: approved, declined, unavailable, error.",
            ),
            &["outcome"],
        )?;
        for outcome in OUTCOMES {
            calls.with_label_values(&[outcome]);
        }
        let breaker = IntGauge::new(
            "orderly_payment_breaker_state",
            "The payment gateway's circuit breaker: 0 closed, 1 half-open, 2 open. No breaker is built yet: always 0.",
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(breaker))?;
        Ok(Self { inner, calls })
    }
}

#[async_trait]
impl PaymentGateway for MeteredPaymentGateway {
    #[tracing::instrument(
        name = "payment_gateway.charge",
        skip_all,
        fields(otel.kind = "client", order_id = %order, outcome = tracing::field::Empty)
    )]
    async fn charge(&self, order: OrderId, amount: Money) -> Result<PaymentReceipt, PaymentError> {
        let result = self.inner.charge(order, amount).await;
        let outcome = match &result {
            Ok(_) => OUTCOMES[0],
            Err(PaymentError::Declined(_)) => OUTCOMES[1],
            Err(PaymentError::Unavailable(_)) => OUTCOMES[2],
            Err(PaymentError::Unexpected(_)) => OUTCOMES[3],
        };
        self.calls.with_label_values(&[outcome]).inc();
        tracing::Span::current().record("outcome", outcome);
        result
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::Currency;

    use super::*;

    #[tokio::test]
    async fn charges_are_idempotent_per_order_and_declined_above_the_limit() {
        let gateway = SimulatedPaymentGateway::new(10_000);
        let order = OrderId::new();
        let eur = Currency::parse("EUR").expect("EUR");
        let first = gateway.charge(order, Money::new(500, eur).expect("valid")).await.expect("ok");
        let again = gateway.charge(order, Money::new(500, eur).expect("valid")).await.expect("ok");
        assert_eq!(first, again);
        let declined = gateway.charge(order, Money::new(10_001, eur).expect("valid")).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))));
    }

    #[tokio::test]
    async fn charges_are_counted_by_outcome() {
        let registry = Registry::new();
        let gateway =
            MeteredPaymentGateway::new(Arc::new(SimulatedPaymentGateway::new(10_000)), &registry)
                .expect("registers");
        let eur = Currency::parse("EUR").expect("EUR");
        gateway.charge(OrderId::new(), Money::new(500, eur).expect("valid")).await.expect("ok");
        let declined =
            gateway.charge(OrderId::new(), Money::new(10_001, eur).expect("valid")).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))));
        let count = |outcome: &str| gateway.calls.with_label_values(&[outcome]).get();
        assert_eq!((count("approved"), count("declined"), count("unavailable")), (1, 1, 0));
        assert_eq!(registry.gather().len(), 2, "the calls and the breaker state");
    }
}
