//! Reads one order with its items.

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderId};

use crate::{StoreError, orders::find_visible, ports::OrderRepository};

/// Why the order could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetOrderError {
    /// No such order, or another customer's.
    #[error("order not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct GetOrder {
    orders: Arc<dyn OrderRepository>,
}

impl GetOrder {
    #[must_use]
    pub fn new(orders: Arc<dyn OrderRepository>) -> Self {
        Self { orders }
    }

    /// The order `id` as seen by `actor`.
    ///
    /// # Errors
    /// [`GetOrderError::NotFound`] for a missing or foreign order, [`GetOrderError::Store`].
    pub async fn execute(&self, actor: &Actor, id: OrderId) -> Result<Order, GetOrderError> {
        find_visible(&self.orders, actor, id).await?.ok_or(GetOrderError::NotFound)
    }
}
