//! Traces and counts every call of a payment gateway (ADR 0018).

use std::sync::Arc;

use async_trait::async_trait;
use orderly_application::ports::{PaymentError, PaymentGateway};
use orderly_domain::{Money, OrderId};
use prometheus::{
    IntCounterVec, IntGauge, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tracing::Instrument as _;

use super::{BreakerMonitor, Operation};

/// Wraps any gateway: each call is a client span (`payment_gateway.authorize`,
/// `payment_gateway.capture`, `payment_gateway.void`, `payment_gateway.refund`, a child of the
/// request's) and is counted in `orderly_payment_gateway_calls_total{operation, outcome}`
/// (`approved`, `declined`, `unavailable`, `error`). It also reports
/// `orderly_payment_breaker_state` (0 closed, 1 half-open, 2 open), read from the gateway's
/// circuit breaker at each scrape; 0 for a gateway without one.
pub struct MeteredPaymentGateway {
    inner: Arc<dyn PaymentGateway>,
    calls: IntCounterVec,
}

/// The outcomes, in the order the counter's help lists them.
const OUTCOMES: [&str; 4] = ["approved", "declined", "unavailable", "error"];

impl MeteredPaymentGateway {
    /// Wraps `inner`, whose circuit breaker (if it has one) `breaker` watches, registering the
    /// series in `registry`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn new(
        inner: Arc<dyn PaymentGateway>,
        breaker: Option<BreakerMonitor>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new(
                "orderly_payment_gateway_calls_total",
                "Calls to the payment gateway, by operation (authorize, capture, void, refund) and \
                 outcome: approved, declined, unavailable (including calls the open circuit \
                 breaker refused), error.",
            ),
            &["operation", "outcome"],
        )?;
        for operation in Operation::ALL {
            for outcome in OUTCOMES {
                calls.with_label_values(&[operation.as_str(), outcome]);
            }
        }
        let state = IntGauge::new(
            "orderly_payment_breaker_state",
            "The payment gateway's circuit breaker: 0 closed, 1 half-open (the next call probes \
             the provider), 2 open (calls are refused without reaching it). 0 for the simulated \
             gateway.",
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(BreakerCollector { state, breaker }))?;
        Ok(Self { inner, calls })
    }

    /// Runs `call` in its client span and counts its outcome.
    async fn observe<T>(
        &self,
        operation: Operation,
        order: OrderId,
        call: impl Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        macro_rules! client_span {
            ($name:literal) => {
                tracing::info_span!(
                    $name,
                    otel.kind = "client",
                    order_id = %order,
                    outcome = tracing::field::Empty,
                )
            };
        }
        let span = match operation {
            Operation::Authorize => client_span!("payment_gateway.authorize"),
            Operation::Capture => client_span!("payment_gateway.capture"),
            Operation::Void => client_span!("payment_gateway.void"),
            Operation::Refund => client_span!("payment_gateway.refund"),
        };
        let result = call.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => OUTCOMES[0],
            // A void refused because the money was taken is a refusal too.
            Err(PaymentError::Declined(_) | PaymentError::AlreadyCaptured) => OUTCOMES[1],
            Err(PaymentError::Unavailable { .. }) => OUTCOMES[2],
            Err(PaymentError::Unexpected(_)) => OUTCOMES[3],
        };
        self.calls.with_label_values(&[operation.as_str(), outcome]).inc();
        span.record("outcome", outcome);
        result
    }
}

#[async_trait]
impl PaymentGateway for MeteredPaymentGateway {
    async fn authorize(
        &self,
        order: OrderId,
        attempt: u64,
        amount: Money,
    ) -> Result<String, PaymentError> {
        self.observe(Operation::Authorize, order, self.inner.authorize(order, attempt, amount))
            .await
    }

    async fn capture(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError> {
        self.observe(Operation::Capture, order, self.inner.capture(order, reference, amount)).await
    }

    async fn void(&self, order: OrderId, reference: &str) -> Result<(), PaymentError> {
        self.observe(Operation::Void, order, self.inner.void(order, reference)).await
    }

    async fn refund(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError> {
        self.observe(Operation::Refund, order, self.inner.refund(order, reference, amount)).await
    }
}

/// `orderly_payment_breaker_state`, read from the breaker when Prometheus scrapes.
struct BreakerCollector {
    state: IntGauge,
    breaker: Option<BreakerMonitor>,
}

impl Collector for BreakerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.state.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.state.set(self.breaker.as_ref().map_or(0, |breaker| breaker.state().as_gauge()));
        self.state.collect()
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::Currency;

    use super::*;
    use crate::services::SimulatedPaymentGateway;

    #[tokio::test]
    async fn calls_are_counted_by_operation_and_outcome() {
        let registry = Registry::new();
        let gateway = MeteredPaymentGateway::new(
            Arc::new(SimulatedPaymentGateway::new(10_000)),
            None,
            &registry,
        )
        .expect("registers");
        let eur = Currency::parse("EUR").expect("EUR");
        let money = |minor| Money::new(minor, eur).expect("valid");
        let order = OrderId::new();
        let reference = gateway.authorize(order, 1, money(500)).await.expect("approved");
        gateway.capture(order, &reference, money(500)).await.expect("captured");
        gateway.refund(order, &reference, money(500)).await.expect("refunded");
        let declined = gateway.authorize(OrderId::new(), 1, money(10_001)).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))));
        let unknown = gateway.void(order, "pi_unknown").await;
        assert!(matches!(unknown, Err(PaymentError::Unexpected(_))));

        let count = |operation: &str, outcome: &str| {
            gateway.calls.with_label_values(&[operation, outcome]).get()
        };
        assert_eq!((count("authorize", "approved"), count("authorize", "declined")), (1, 1));
        assert_eq!((count("capture", "approved"), count("refund", "approved")), (1, 1));
        assert_eq!((count("void", "error"), count("void", "approved")), (1, 0));
        let families = registry.gather();
        assert_eq!(families.len(), 2, "the calls and the breaker state");
        let calls = families
            .iter()
            .find(|family| family.name() == "orderly_payment_gateway_calls_total")
            .expect("the calls");
        assert_eq!(calls.get_metric().len(), 16, "every operation and outcome from the start");
        let state = families
            .iter()
            .find(|family| family.name() == "orderly_payment_breaker_state")
            .expect("the breaker state");
        assert_eq!(state.get_metric()[0].get_gauge().get_value(), 0.0, "no breaker: closed");
    }
}
