//! Lists orders: a customer's own, or all of them (filtered) for an admin.

use std::sync::Arc;

use orderly_domain::{Actor, Order};

use crate::{
    StoreError,
    pagination::{InvalidCursor, ListRequest, Listed},
    ports::{OrderFilter, OrderQueries},
};

/// The cursor scope of order lists.
pub const SCOPE: &str = "orders";

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListOrdersError {
    /// The system has no orders of its own to list.
    #[error("only users may list orders")]
    Forbidden,
    /// The cursor is not one this list handed out.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct ListOrders {
    queries: Arc<dyn OrderQueries>,
}

impl ListOrders {
    #[must_use]
    pub fn new(queries: Arc<dyn OrderQueries>) -> Self {
        Self { queries }
    }

    /// One page of orders, newest first. For a customer the filter's `user_id` is always
    /// themselves, whatever was asked; an admin may filter by any user and status.
    ///
    /// # Errors
    /// See [`ListOrdersError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        mut filter: OrderFilter,
        request: ListRequest,
    ) -> Result<Listed<Order>, ListOrdersError> {
        let user_id = actor.user_id().ok_or(ListOrdersError::Forbidden)?;
        if !actor.is_admin() {
            filter.user_id = Some(user_id);
        }
        let page = self.queries.list(filter, request.into_page_request(SCOPE)?).await?;
        Ok(page.into_listed(SCOPE))
    }
}
