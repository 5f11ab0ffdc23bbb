//! Registers a user: hashes the password and stores the user.

use std::sync::Arc;

use orderly_domain::{Email, Password, Role, User, UserName};

use crate::{
    StoreError,
    ports::{Clock, PasswordHasher, UserRepository, UserWriteError},
};

/// Who to register.
#[derive(Debug, Clone)]
pub struct RegisterUserInput {
    pub email: Email,
    pub name: UserName,
    pub password: Password,
    /// `Customer` for public sign-up; `Admin` only from the operator's command line.
    pub role: Role,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterUserError {
    /// The e-mail address belongs to another user.
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// Too many passwords are being hashed at the moment; nothing was changed (HTTP 503).
    #[error("too many passwords are being hashed at the moment")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (the hasher failed, an impossible repository answer).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<crate::ports::HashError> for RegisterUserError {
    fn from(error: crate::ports::HashError) -> Self {
        match error {
            crate::ports::HashError::Busy => Self::Busy,
            crate::ports::HashError::Failed(source) => Self::Unexpected(source),
        }
    }
}

impl From<UserWriteError> for RegisterUserError {
    fn from(error: UserWriteError) -> Self {
        match error {
            UserWriteError::EmailTaken => Self::DuplicateEmail,
            UserWriteError::Store(store) => Self::Store(store),
            // An insert touches no existing user: none of these can answer it.
            other @ (UserWriteError::NotFound
            | UserWriteError::Stale
            | UserWriteError::LastAdmin
            | UserWriteError::StillReferenced(_)) => {
                Self::Unexpected(anyhow::Error::new(other).context("inserting a new user"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct RegisterUser {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
}

impl RegisterUser {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, hasher, clock }
    }

    /// Registers the user and returns them.
    ///
    /// # Errors
    /// [`RegisterUserError::DuplicateEmail`] when the address is taken; `Store` or `Unexpected`
    /// when a port fails. Nothing is stored on error.
    pub async fn execute(&self, input: RegisterUserInput) -> Result<User, RegisterUserError> {
        let RegisterUserInput { email, name, password, role } = input;
        let hash = self.hasher.hash(&password).await?;
        let user = User::register(email, name, hash, role, self.clock.now());
        self.users.insert(&user).await?;
        Ok(user)
    }
}
