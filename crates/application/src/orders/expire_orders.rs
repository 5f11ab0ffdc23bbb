//! Expires orders whose payment deadline passed, releasing their stock. Run by a background job;
//! safe on several instances at once: each batch is claimed (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so instances share the work instead of racing for it), and each save
//! is still guarded by the order's version, so an order a request moved first is skipped.

use std::sync::Arc;

use orderly_domain::{Actor, OrderAction};

use crate::{
    StoreError,
    ports::{Clock, OrderRepository, OrderWriteError, OverdueCursor},
};

/// How many overdue orders one claim (one transaction) takes.
pub const EXPIRY_BATCH: u32 = 100;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Orders this run expired.
    pub expired: usize,
    /// Orders another instance or request moved first, or that no longer need expiring.
    pub skipped: usize,
    /// Stored orders that cannot be read back (logged with their ids, left as they are).
    pub unreadable: usize,
}

/// The use case.
#[derive(Clone)]
pub struct ExpireOrders {
    orders: Arc<dyn OrderRepository>,
    clock: Arc<dyn Clock>,
    batch: u32,
}

impl ExpireOrders {
    /// The use case with batches of [`EXPIRY_BATCH`] orders.
    #[must_use]
    pub fn new(orders: Arc<dyn OrderRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { orders, clock, batch: EXPIRY_BATCH }
    }

    /// The same use case with batches of `batch` orders (at least one).
    #[must_use]
    pub fn with_batch(self, batch: u32) -> Self {
        Self { batch: batch.max(1), ..self }
    }

    /// Expires every order overdue now, one claimed batch after another, each batch committed
    /// on its own. An order that cannot be expired is skipped with its reason logged; an order
    /// that cannot be read is logged and does not hold up the others.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; batches committed before the failure stay expired.
    pub async fn execute(&self) -> Result<ExpiryReport, StoreError> {
        let now = self.clock.now();
        let mut report = ExpiryReport::default();
        let mut after: Option<OverdueCursor> = None;
        loop {
            let mut batch = self.orders.claim_overdue(now, after, self.batch).await?;
            let claimed = batch.orders.len();
            let mut expired = 0;
            for order in batch.orders {
                let mut order = match order {
                    Ok(order) => order,
                    Err(unreadable) => {
                        tracing::error!(
                            order_id = %unreadable.id,
                            error = %format!("{:#}", unreadable.error),
                            "an overdue order cannot be read back; left as it is"
                        );
                        report.unreadable += 1;
                        continue;
                    }
                };
                let loaded = order.version();
                let entry = match order.apply(OrderAction::Expire, &Actor::System, None, now) {
                    Ok(entry) => entry,
                    Err(refusal) => {
                        tracing::info!(order_id = %order.id(), reason = %refusal, "order not expired");
                        report.skipped += 1;
                        continue;
                    }
                };
                match batch.claim.save_expiry(&order, &entry, loaded).await {
                    Ok(()) => expired += 1,
                    Err(reason @ (OrderWriteError::Stale | OrderWriteError::NotFound)) => {
                        tracing::info!(order_id = %order.id(), reason = %reason, "order not expired");
                        report.skipped += 1;
                    }
                    Err(OrderWriteError::Store(error)) => return Err(error),
                }
            }
            batch.claim.commit().await?;
            report.expired += expired;
            match batch.next {
                Some(next) if claimed >= self.batch as usize => after = Some(next),
                _ => return Ok(report),
            }
        }
    }
}
