use async_trait::async_trait;
use orderly_application::ports::{PaymentError, PaymentGateway, PaymentReceipt};
use orderly_domain::{Money, OrderId};

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
}
