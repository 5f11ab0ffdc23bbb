//! Reads one user: themselves, or anyone for an admin.

use std::sync::Arc;

use orderly_domain::{Actor, User, UserId};

use crate::{StoreError, auth::admin_check::AdminCheck, ports::UserRepository, users::may_access};

/// Why the user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    /// No such user, or not one the actor may see.
    #[error("user not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct GetUser {
    users: Arc<dyn UserRepository>,
    admins: AdminCheck,
}

impl GetUser {
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>, admins: AdminCheck) -> Self {
        Self { users, admins }
    }

    /// The user `id` as seen by `actor`.
    ///
    /// # Errors
    /// [`GetUserError::NotFound`] when the user does not exist or is someone else's (for a
    /// customer, or for an admin the database no longer holds as one, ADR 0027);
    /// [`GetUserError::Store`] when the store fails.
    pub async fn execute(&self, actor: &Actor, id: UserId) -> Result<User, GetUserError> {
        let actor = self.admins.recheck(actor).await?.ok_or(GetUserError::NotFound)?;
        if !may_access(&actor, id) {
            return Err(GetUserError::NotFound);
        }
        self.users.find_by_id(id).await?.ok_or(GetUserError::NotFound)
    }
}
