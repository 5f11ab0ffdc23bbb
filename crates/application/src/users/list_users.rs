//! Lists users: admins only.

use std::sync::Arc;

use orderly_domain::{Actor, User};

use crate::{
    StoreError,
    pagination::{InvalidCursor, ListRequest, Listed},
    ports::UserQueries,
};

/// The cursor scope of the user list.
pub const SCOPE: &str = "users";

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    /// Only admins list users.
    #[error("only administrators may list users")]
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
pub struct ListUsers {
    queries: Arc<dyn UserQueries>,
}

impl ListUsers {
    #[must_use]
    pub fn new(queries: Arc<dyn UserQueries>) -> Self {
        Self { queries }
    }

    /// One page of users in creation order.
    ///
    /// # Errors
    /// [`ListUsersError::Forbidden`] for non-admins, [`ListUsersError::InvalidCursor`] for a
    /// foreign cursor, [`ListUsersError::Store`] when the store fails.
    pub async fn execute(
        &self,
        actor: &Actor,
        request: ListRequest,
    ) -> Result<Listed<User>, ListUsersError> {
        if !actor.is_admin() {
            return Err(ListUsersError::Forbidden);
        }
        let page = self.queries.list(request.into_page_request(SCOPE)?).await?;
        Ok(page.into_listed(SCOPE))
    }
}
