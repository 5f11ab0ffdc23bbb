//! Logs a user in with e-mail and password (the OAuth2 password grant).

use std::sync::Arc;

use orderly_domain::Email;

use crate::{
    StoreError,
    auth::TokenPair,
    ports::{AccessTokens, Claims, Clock, PasswordHasher, RefreshTokens, UserRepository},
};

/// The credentials as the client sent them: unparsed, because a malformed e-mail address must
/// fail exactly like a wrong password.
#[derive(Clone)]
pub struct AuthenticateInput {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for AuthenticateInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateInput").field("email", &self.email).finish_non_exhaustive()
    }
}

/// Why the login failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// Unknown e-mail or wrong password: deliberately the same answer for both.
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    /// Too many passwords are being hashed at the moment; nothing was changed (HTTP 503).
    #[error("too many passwords are being hashed at the moment")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (hasher or token signing failed).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<crate::ports::HashError> for AuthenticateError {
    fn from(error: crate::ports::HashError) -> Self {
        match error {
            crate::ports::HashError::Busy => Self::Busy,
            crate::ports::HashError::Failed(source) => Self::Unexpected(source),
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct Authenticate {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    access_tokens: Arc<dyn AccessTokens>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    clock: Arc<dyn Clock>,
}

impl Authenticate {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        access_tokens: Arc<dyn AccessTokens>,
        refresh_tokens: Arc<dyn RefreshTokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, hasher, access_tokens, refresh_tokens, clock }
    }

    /// Verifies the credentials and issues an access token and a new refresh-token family.
    ///
    /// # Errors
    /// [`AuthenticateError::InvalidCredentials`] for an unknown address or a wrong password (the
    /// hasher runs in both cases, so timing does not tell them apart); `Store` or `Unexpected`
    /// when a port fails.
    pub async fn execute(&self, input: AuthenticateInput) -> Result<TokenPair, AuthenticateError> {
        let user = match Email::parse(&input.email) {
            Ok(email) => self.users.find_by_email(&email).await?,
            Err(_) => None,
        };
        let matches = self
            .hasher
            .verify(&input.password, user.as_ref().map(|user| user.password_hash()))
            .await?;
        let user = user.filter(|_| matches).ok_or(AuthenticateError::InvalidCredentials)?;
        let now = self.clock.now();
        let access = self.access_tokens.issue(Claims::for_user(&user), now)?;
        let refresh_token = self.refresh_tokens.issue(user.id(), now).await?;
        Ok(TokenPair { access, refresh_token, user_id: user.id(), role: user.role() })
    }
}
