//! A gateway that moves no money: for development, tests and demos (ADR 0010).

use async_trait::async_trait;
use orderly_application::ports::{PaymentError, PaymentGateway};
use orderly_domain::{Money, OrderId};

/// Approves every authorization up to a limit, without taking real money. It behaves like a
/// provider where the flows need it: the reference is derived from the order (so authorizing
/// the same order again answers the same reference, as a provider does for a repeated
/// idempotency key), authorizations above `decline_above_minor` are declined (so the declined
/// path can be exercised end to end), and capture, void and refund succeed for the reference
/// this gateway gave the order and are refused for any other. It keeps no state.
#[derive(Debug, Clone)]
pub struct SimulatedPaymentGateway {
    decline_above_minor: i64,
}

impl SimulatedPaymentGateway {
    /// Approves authorizations up to `decline_above_minor` minor units.
    #[must_use]
    pub fn new(decline_above_minor: i64) -> Self {
        Self { decline_above_minor }
    }

    /// The reference of `order`'s payment.
    fn reference(order: OrderId) -> String {
        format!("sim_{}", order.as_uuid().simple())
    }

    /// A follow-up call must name the payment this gateway made for the order.
    fn check(order: OrderId, reference: &str) -> Result<(), PaymentError> {
        if reference == Self::reference(order) {
            Ok(())
        } else {
            Err(PaymentError::Unexpected(anyhow::anyhow!(
                "the simulated gateway has no payment `{reference}` for order {order}"
            )))
        }
    }
}

#[async_trait]
impl PaymentGateway for SimulatedPaymentGateway {
    async fn authorize(
        &self,
        order: OrderId,
        _attempt: u64,
        amount: Money,
    ) -> Result<String, PaymentError> {
        if amount.amount_minor() > self.decline_above_minor {
            return Err(PaymentError::Declined(format!(
                "amount {amount} exceeds the simulated card limit"
            )));
        }
        Ok(Self::reference(order))
    }

    async fn capture(&self, order: OrderId, reference: &str, _: Money) -> Result<(), PaymentError> {
        Self::check(order, reference)
    }

    async fn void(&self, order: OrderId, reference: &str) -> Result<(), PaymentError> {
        Self::check(order, reference)
    }

    async fn refund(&self, order: OrderId, reference: &str, _: Money) -> Result<(), PaymentError> {
        Self::check(order, reference)
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::Currency;

    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("valid")
    }

    #[tokio::test]
    async fn authorizations_are_idempotent_per_order_and_declined_above_the_limit() {
        let gateway = SimulatedPaymentGateway::new(10_000);
        let order = OrderId::new();
        let first = gateway.authorize(order, 1, eur(500)).await.expect("approved");
        let again = gateway.authorize(order, 1, eur(500)).await.expect("approved");
        assert_eq!(first, again);
        assert_ne!(first, gateway.authorize(OrderId::new(), 1, eur(500)).await.expect("approved"));
        let declined = gateway.authorize(order, 1, eur(10_001)).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))), "{declined:?}");
    }

    #[tokio::test]
    async fn follow_up_calls_succeed_for_the_orders_own_payment_only() {
        let gateway = SimulatedPaymentGateway::new(10_000);
        let order = OrderId::new();
        let reference = gateway.authorize(order, 1, eur(500)).await.expect("approved");
        gateway.capture(order, &reference, eur(500)).await.expect("captured");
        gateway.capture(order, &reference, eur(500)).await.expect("captured again");
        gateway.void(order, &reference).await.expect("voided");
        gateway.refund(order, &reference, eur(500)).await.expect("refunded");
        let other = OrderId::new();
        let refused = gateway.capture(other, &reference, eur(500)).await;
        assert!(matches!(refused, Err(PaymentError::Unexpected(_))), "{refused:?}");
        let refused = gateway.refund(order, "pi_unknown", eur(500)).await;
        assert!(matches!(refused, Err(PaymentError::Unexpected(_))), "{refused:?}");
    }
}
