//! Reads an order's history: every status change with its actor and reason.

use std::sync::Arc;

use orderly_domain::{Actor, OrderId, OrderTransition};

use crate::{
    StoreError,
    orders::find_visible,
    ports::{OrderQueries, OrderRepository},
};

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OrderHistoryError {
    /// No such order, or another customer's.
    #[error("order not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct OrderHistory {
    orders: Arc<dyn OrderRepository>,
    queries: Arc<dyn OrderQueries>,
}

impl OrderHistory {
    #[must_use]
    pub fn new(orders: Arc<dyn OrderRepository>, queries: Arc<dyn OrderQueries>) -> Self {
        Self { orders, queries }
    }

    /// The history of order `id`, oldest first, starting with its placing.
    ///
    /// # Errors
    /// [`OrderHistoryError::NotFound`] for a missing or foreign order, [`OrderHistoryError::Store`].
    pub async fn execute(
        &self,
        actor: &Actor,
        id: OrderId,
    ) -> Result<Vec<OrderTransition>, OrderHistoryError> {
        find_visible(&self.orders, actor, id).await?.ok_or(OrderHistoryError::NotFound)?;
        Ok(self.queries.history(id).await?)
    }
}
