//! Deletes a user who has no orders (orders are kept for accounting) and is not the last admin.

use std::sync::Arc;

use orderly_domain::{Actor, UserId};

use crate::{
    StoreError, WriteError, auth::admin_check::AdminCheck, ports::UserRepository, users::may_access,
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
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<WriteError> for DeleteUserError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::StillReferenced => Self::HasOrders,
            WriteError::LastAdmin => Self::LastAdmin,
            WriteError::Store(store) => Self::Store(store),
            other @ (WriteError::Duplicate(_) | WriteError::Stale | WriteError::MissingParent) => {
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
