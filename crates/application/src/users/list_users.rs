//! Lists users: admins only, as the database has them (ADR 0027).

use std::sync::Arc;

use orderly_domain::{Actor, User};

use crate::{
    StoreError,
    auth::admin_check::AdminCheck,
    pagination::{InvalidCursor, ListRequest, Listed},
    ports::UserQueries,
};

/// The cursor scope of the user list.
pub const SCOPE: &str = "users";

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    /// Only admins list users: the actor is not one as the database has it now (a demoted
    /// admin, or an account deleted since its token was checked).
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
    admins: AdminCheck,
}

impl ListUsers {
    #[must_use]
    pub fn new(queries: Arc<dyn UserQueries>, admins: AdminCheck) -> Self {
        Self { queries, admins }
    }

    /// One page of users in creation order.
    ///
    /// # Errors
    /// [`ListUsersError::Forbidden`] for non-admins (the role the database holds now; also for
    /// an account deleted since its token was checked), [`ListUsersError::InvalidCursor`] for a
    /// foreign cursor, [`ListUsersError::Store`] when the store fails.
    pub async fn execute(
        &self,
        actor: &Actor,
        request: ListRequest,
    ) -> Result<Listed<User>, ListUsersError> {
        let actor = self.admins.recheck(actor).await?.ok_or(ListUsersError::Forbidden)?;
        if !actor.is_admin() {
            return Err(ListUsersError::Forbidden);
        }
        let page = self.queries.list(request.into_page_request(SCOPE)?).await?;
        Ok(page.into_listed(SCOPE))
    }
}
