//! Deletes a user who has no orders (orders are kept for accounting) and is not the last admin.

use std::sync::Arc;

use orderly_domain::{Actor, UserId};

use crate::{
    StoreError,
    auth::admin_check::AdminCheck,
    ports::{UserReferrer, UserRepository, UserWriteError},
    users::may_access,
};

/// Why the user could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    /// No such user, or not one the actor may see.
    #[error("user not found")]
    NotFound,
    /// The user has orders, which must be kept.
    #[error("the user has orders and cannot be deleted")]
    HasOrders,
    /// The user is the only admin: deleting them would leave nobody to run the shop.
    #[error("the last administrator cannot be deleted")]
    LastAdmin,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else, including a delete refused for records the store cannot name (a
    /// reference the adapter does not know of: a bug, never reported as [`Self::HasOrders`]).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<UserWriteError> for DeleteUserError {
    fn from(error: UserWriteError) -> Self {
        match error {
            UserWriteError::NotFound => Self::NotFound,
            UserWriteError::StillReferenced(UserReferrer::Orders) => Self::HasOrders,
            UserWriteError::LastAdmin => Self::LastAdmin,
            UserWriteError::Store(store) => Self::Store(store),
            // Records the store cannot name keep the user: a reference the adapter was never
            // taught, to be logged as the bug it is rather than answered as orders.
            other @ UserWriteError::StillReferenced(UserReferrer::Unrecognised) => {
                Self::Unexpected(anyhow::Error::new(other).context("deleting a user"))
            }
            // A delete is not version-guarded and writes no e-mail address.
            other @ (UserWriteError::EmailTaken | UserWriteError::Stale) => {
                Self::Unexpected(anyhow::Error::new(other).context("deleting a user"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct DeleteUser {
    users: Arc<dyn UserRepository>,
    admins: AdminCheck,
}

impl DeleteUser {
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>, admins: AdminCheck) -> Self {
        Self { users, admins }
    }

    /// Deletes the user `id`: themselves, or anyone for an admin (as the database has them
    /// now, ADR 0027).
    ///
    /// # Errors
    /// See [`DeleteUserError`].
    pub async fn execute(&self, actor: &Actor, id: UserId) -> Result<(), DeleteUserError> {
        let actor = self.admins.recheck(actor).await?.ok_or(DeleteUserError::NotFound)?;
        if !may_access(&actor, id) {
            return Err(DeleteUserError::NotFound);
        }
        self.users.delete(id).await?;
        Ok(())
    }
}
