//! Lists one user's orders (`GET /users/{id}/orders`): themselves, or anyone for an admin.

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderStatus, UserId};

use crate::{
    StoreError,
    orders::list_orders::SCOPE,
    pagination::{InvalidCursor, ListRequest, Listed},
    ports::{OrderFilter, OrderQueries, UserRepository},
};

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListUserOrdersError {
    /// No such user, or another customer (whose existence is not revealed).
    #[error("user not found")]
    NotFound,
    /// The cursor is not one this list handed out.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct ListUserOrders {
    users: Arc<dyn UserRepository>,
    queries: Arc<dyn OrderQueries>,
}

impl ListUserOrders {
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>, queries: Arc<dyn OrderQueries>) -> Self {
        Self { users, queries }
    }

    /// One page of `user_id`'s orders, newest first, optionally in one status.
    ///
    /// # Errors
    /// See [`ListUserOrdersError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        user_id: UserId,
        status: Option<OrderStatus>,
        request: ListRequest,
    ) -> Result<Listed<Order>, ListUserOrdersError> {
        if !(actor.is_admin() || actor.user_id() == Some(user_id)) {
            return Err(ListUserOrdersError::NotFound);
        }
        // A user's orders exist only as long as the user does: an unknown id is a 404, not an
        // empty list.
        self.users.find_by_id(user_id).await?.ok_or(ListUserOrdersError::NotFound)?;
        let filter = OrderFilter { user_id: Some(user_id), status };
        let page = self.queries.list(filter, request.into_page_request(SCOPE)?).await?;
        Ok(page.into_listed(SCOPE))
    }
}
