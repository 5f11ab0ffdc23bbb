//! Changes a user's e-mail, name, password or role.

use std::sync::Arc;

use orderly_domain::{Actor, Email, Password, Role, User, UserId, UserName};

use crate::{
    StoreError, WRITE_ATTEMPTS, WriteError,
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
    /// Other requests kept changing the user while this change was tried
    /// [`WRITE_ATTEMPTS`] times; retrying may succeed.
    #[error("the user was changed concurrently")]
    Conflict,
    /// The new e-mail address belongs to another user.
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// The change would demote the only admin.
    #[error("the last administrator cannot be demoted")]
    LastAdmin,
    /// Too many passwords are being hashed at the moment; nothing was changed (HTTP 503).
    #[error("too many passwords are being hashed at the moment")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<crate::ports::HashError> for UpdateUserError {
    fn from(error: crate::ports::HashError) -> Self {
        match error {
            crate::ports::HashError::Busy => Self::Busy,
            crate::ports::HashError::Failed(source) => Self::Unexpected(source),
        }
    }
}

impl From<WriteError> for UpdateUserError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::Stale => Self::Conflict,
            WriteError::Duplicate(_) => Self::DuplicateEmail,
            WriteError::LastAdmin => Self::LastAdmin,
            WriteError::Store(store) => Self::Store(store),
            other @ (WriteError::StillReferenced | WriteError::MissingParent) => {
                Self::Unexpected(anyhow::Error::new(other).context("updating a user"))
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
    /// With `expected_version` (`If-Match`), a concurrent change is a
    /// [`UpdateUserError::VersionMismatch`] naming the current version. Without it the last
    /// writer wins: the user is re-read and the change re-applied, up to [`WRITE_ATTEMPTS`]
    /// times. A new password is hashed once, however many attempts it takes.
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
        let mut password_hash = None;
        let mut sessions_ended = false;
        let mut attempt = 1;
        loop {
            let mut user =
                self.users.find_by_id(input.id).await?.ok_or(UpdateUserError::NotFound)?;
            if input.role.is_some_and(|role| role != user.role()) && !actor.is_admin() {
                return Err(UpdateUserError::Forbidden);
            }
            let loaded = user.version();
            if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
                return Err(UpdateUserError::VersionMismatch { expected, current: loaded });
            }
            // Hashing is deliberately slow: it is done once, after the checks, never per attempt.
            if let (Some(password), None) = (&input.password, &password_hash) {
                password_hash = Some(self.hasher.hash(password).await?);
            }
            let now = self.clock.now();
            if let Some(email) = input.email.clone() {
                user.change_email(email, now);
            }
            if let Some(name) = input.name.clone() {
                user.rename(name, now);
            }
            let role_changes = input.role.is_some_and(|role| role != user.role());
            if let Some(role) = input.role {
                user.change_role(role, now);
            }
            let password_changes = password_hash.is_some();
            if let Some(hash) = password_hash.clone() {
                user.change_password(hash, now);
            }
            // Sessions end before the change is stored: if storing then fails, the worst outcome
            // is a user who logs in again, never a changed password or role with old sessions
            // alive.
            if (role_changes || password_changes) && !sessions_ended {
                self.refresh_tokens.revoke_all(user.id(), now).await?;
                sessions_ended = true;
            }
            if user.version() == loaded {
                return Ok(user);
            }
            match self.users.update(&user, loaded).await {
                Ok(()) => return Ok(user),
                Err(WriteError::Stale) => match input.expected_version {
                    Some(expected) => return Err(self.version_mismatch(input.id, expected).await),
                    None if attempt < WRITE_ATTEMPTS => attempt += 1,
                    None => return Err(UpdateUserError::Conflict),
                },
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// The answer to a write guarded by `If-Match` that lost to a concurrent change: the version
    /// the client named, and the one stored now (for the `ETag` of the answer).
    async fn version_mismatch(&self, id: UserId, expected: u64) -> UpdateUserError {
        match self.users.find_by_id(id).await {
            Ok(Some(current)) => {
                UpdateUserError::VersionMismatch { expected, current: current.version() }
            }
            Ok(None) => UpdateUserError::NotFound,
            Err(error) => error.into(),
        }
    }
}
