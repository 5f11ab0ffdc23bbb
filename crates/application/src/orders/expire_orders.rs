//! Expires orders whose payment deadline passed, releasing their stock. Run by a background job;
//! safe on several instances at once, because each save is guarded by the order's version: when
//! two instances race for one order, one wins and the other skips it.

use std::sync::Arc;

use orderly_domain::{Actor, OrderAction};

use crate::{
    StoreError, WriteError,
    ports::{Clock, OrderRepository},
};

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Orders this run expired.
    pub expired: usize,
    /// Orders another instance or request moved first.
    pub skipped: usize,
}

/// The use case.
#[derive(Clone)]
pub struct ExpireOrders {
    orders: Arc<dyn OrderRepository>,
    clock: Arc<dyn Clock>,
}

impl ExpireOrders {
    #[must_use]
    pub fn new(orders: Arc<dyn OrderRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { orders, clock }
    }

    /// Expires up to `batch` overdue orders.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; orders expired before the failure stay expired.
    pub async fn execute(&self, batch: u32) -> Result<ExpiryReport, StoreError> {
        let now = self.clock.now();
        let mut report = ExpiryReport::default();
        for mut order in self.orders.find_overdue(now, batch).await? {
            let loaded = order.version();
            let Ok(entry) = order.apply(OrderAction::Expire, &Actor::System, None, now) else {
                report.skipped += 1;
                continue;
            };
            match self.orders.save_transition(&order, &entry, loaded, None).await {
                Ok(()) => report.expired += 1,
                Err(WriteError::Stale | WriteError::NotFound) => report.skipped += 1,
                Err(WriteError::Store(error)) => return Err(error),
                Err(
                    other @ (WriteError::Duplicate(_)
                    | WriteError::StillReferenced
                    | WriteError::MissingParent
                    | WriteError::LastAdmin),
                ) => {
                    return Err(StoreError::Unexpected(
                        anyhow::Error::new(other).context("expiring an order"),
                    ));
                }
            }
        }
        Ok(report)
    }
}
