//! Changes a user's e-mail, name, password or role.

use std::sync::Arc;

use orderly_domain::{Actor, Email, Password, Role, User, UserId, UserName};

use crate::{
    StoreError, WriteError,
    ports::{Clock, PasswordHasher, RefreshTokens, UserRepository},
    users::may_access,
};

/// What to change; `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub struct UpdateUserInput {
    pub id: UserId,
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    pub email: Option<Email>,
    pub name: Option<UserName>,
    pub password: Option<Password>,
    /// Admins only.
    pub role: Option<Role>,
}

/// Why the update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    /// No such user, or not one the actor may see.
    #[error("user not found")]
    NotFound,
    /// A customer tried to change a role.
    #[error("only administrators may change roles")]
    Forbidden,
    /// The client's version is not the current one (HTTP 412).
    #[error("the user has changed since version {expected}; it is now at version {current}")]
    VersionMismatch {
        /// What the client sent.
        expected: u64,
        /// What is stored.
        current: u64,
    },
    /// Another request changed the user at the same moment; retrying may succeed.
    #[error("the user was changed concurrently")]
    Conflict,
    /// The new e-mail address belongs to another user.
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<WriteError> for UpdateUserError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::Stale => Self::Conflict,
            WriteError::Duplicate(_) => Self::DuplicateEmail,
            WriteError::Store(store) => Self::Store(store),
            WriteError::Referenced => {
                Self::Unexpected(anyhow::Error::new(error).context("updating a user"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct UpdateUser {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    clock: Arc<dyn Clock>,
}

impl UpdateUser {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        refresh_tokens: Arc<dyn RefreshTokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, hasher, refresh_tokens, clock }
    }

    /// Applies the changes and returns the user as stored. A new password or a new role ends
    /// the user's sessions: their refresh tokens are revoked (access tokens run out by
    /// themselves within their short lifetime).
    ///
    /// # Errors
    /// See [`UpdateUserError`]. Nothing is stored on error; only the sessions of a password or
    /// role change that then fails to store may already be ended.
    pub async fn execute(
        &self,
        actor: &Actor,
        input: UpdateUserInput,
    ) -> Result<User, UpdateUserError> {
        if !may_access(actor, input.id) {
            return Err(UpdateUserError::NotFound);
        }
        let mut user = self.users.find_by_id(input.id).await?.ok_or(UpdateUserError::NotFound)?;
        if input.role.is_some_and(|role| role != user.role()) && !actor.is_admin() {
            return Err(UpdateUserError::Forbidden);
        }
        let loaded = user.version();
        if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
            return Err(UpdateUserError::VersionMismatch { expected, current: loaded });
        }
        let now = self.clock.now();
        if let Some(email) = input.email {
            user.change_email(email, now);
        }
        if let Some(name) = input.name {
            user.rename(name, now);
        }
        let role_changes = input.role.is_some_and(|role| role != user.role());
        if let Some(role) = input.role {
            user.change_role(role, now);
        }
        let password_changes = input.password.is_some();
        if let Some(password) = input.password {
            user.change_password(self.hasher.hash(&password).await?, now);
        }
        // Sessions end before the change is stored: if storing then fails, the worst outcome is
        // a user who logs in again, never a changed password or role with old sessions alive.
        if role_changes || password_changes {
            self.refresh_tokens.revoke_all(user.id(), now).await?;
        }
        if user.version() != loaded {
            self.users.update(&user, loaded).await?;
        }
        Ok(user)
    }
}
