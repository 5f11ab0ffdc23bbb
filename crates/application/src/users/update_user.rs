//! Changes a user's e-mail, name, password or role.
//!
//! A new password or e-mail address for one's own account needs the current password: a stolen
//! access token (or an unlocked screen) alone must not be enough to take the account over.
//! Admins changing another user's password or e-mail address do not need that user's password
//! (they manage accounts, and the user may have forgotten it); for their own account they need
//! their own, like everyone.

use std::{fmt, sync::Arc};

use orderly_domain::{Actor, Email, Password, PasswordHash, Role, User, UserId, UserName};

use crate::{
    StoreError, WRITE_ATTEMPTS,
    auth::admin_check::AdminCheck,
    ports::{Clock, PasswordHasher, RefreshTokens, UserRepository, UserWriteError},
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
    /// The password the account has now, as the caller claims it: needed for a new password or
    /// e-mail address of one's own account, ignored otherwise.
    pub current_password: Option<CurrentPassword>,
}

/// A password as the client sent it to prove who they are: not parsed (a value outside today's
/// length rules is simply not the password) and never printed.
#[derive(Clone)]
pub struct CurrentPassword(String);

impl CurrentPassword {
    /// Wraps the password as sent.
    #[must_use]
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    /// The password, for the hasher.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CurrentPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentPassword(<redacted>)")
    }
}

/// Whether `input` changes `user`'s credentials on their own behalf, which needs their current
/// password: a new password (whatever it is), or an e-mail address other than the stored one.
/// An admin changing another user's needs none, and a name or role change never does.
fn needs_current_password(actor: &Actor, input: &UpdateUserInput, user: &User) -> bool {
    let credentials_change =
        input.password.is_some() || input.email.as_ref().is_some_and(|email| email != user.email());
    credentials_change && actor.user_id() == Some(user.id())
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
    /// A new password or e-mail address for one's own account, without the current password;
    /// nothing was hashed or changed (HTTP 403).
    #[error("changing your own password or e-mail address needs your current password")]
    CurrentPasswordRequired,
    /// The current password given is not the account's; nothing was changed (HTTP 403).
    #[error("the current password is wrong")]
    WrongCurrentPassword,
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

impl From<UserWriteError> for UpdateUserError {
    fn from(error: UserWriteError) -> Self {
        match error {
            UserWriteError::NotFound => Self::NotFound,
            UserWriteError::Stale => Self::Conflict,
            UserWriteError::EmailTaken => Self::DuplicateEmail,
            UserWriteError::LastAdmin => Self::LastAdmin,
            UserWriteError::Store(store) => Self::Store(store),
            // Only a delete is refused for what references the user.
            other @ UserWriteError::StillReferenced(_) => {
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
    admins: AdminCheck,
    clock: Arc<dyn Clock>,
}

impl UpdateUser {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        refresh_tokens: Arc<dyn RefreshTokens>,
        admins: AdminCheck,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, hasher, refresh_tokens, admins, clock }
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
    /// A new password or e-mail address for the actor's own account is checked against
    /// `current_password` (with the bounded hasher, after the cheaper checks and before the new
    /// password is hashed); it is checked again only if the stored password changed between
    /// two attempts. See the module documentation for admins. An admin's powers (another
    /// user's account, any role change) are those of the role the database holds now (ADR 0027).
    ///
    /// # Errors
    /// See [`UpdateUserError`]. Nothing is stored on error; only the sessions of a password or
    /// role change that then fails to store may already be ended.
    #[tracing::instrument(name = "update_user", skip_all, fields(user = %input.id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        input: UpdateUserInput,
    ) -> Result<User, UpdateUserError> {
        let actor = &self.admins.recheck(actor).await?.ok_or(UpdateUserError::NotFound)?;
        if !may_access(actor, input.id) {
            return Err(UpdateUserError::NotFound);
        }
        let mut password_hash = None;
        // The stored hash the current password was last verified against.
        let mut verified: Option<PasswordHash> = None;
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
            if needs_current_password(actor, &input, &user)
                && verified.as_ref() != Some(user.password_hash())
            {
                let current = input
                    .current_password
                    .as_ref()
                    .ok_or(UpdateUserError::CurrentPasswordRequired)?;
                if !self.hasher.verify(current.expose(), Some(user.password_hash())).await? {
                    return Err(UpdateUserError::WrongCurrentPassword);
                }
                verified = Some(user.password_hash().clone());
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
                Err(UserWriteError::Stale) => match input.expected_version {
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
