//! Exchanges a refresh token for new tokens (the OAuth2 refresh_token grant), rotating it.

use std::sync::Arc;

use crate::{
    StoreError,
    auth::TokenPair,
    ports::{AccessTokens, Claims, Clock, RefreshTokenError, RefreshTokens, UserRepository},
};

/// Why the refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshSessionError {
    /// Unknown, expired or revoked token, or its user is gone (OAuth2 `invalid_grant`).
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// The token was used before: the session is revoked (also `invalid_grant` on the wire).
    #[error("the refresh token was already used; the session has been revoked")]
    Reused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RefreshTokenError> for RefreshSessionError {
    fn from(error: RefreshTokenError) -> Self {
        match error {
            RefreshTokenError::Invalid => Self::InvalidGrant,
            RefreshTokenError::Reused => Self::Reused,
            RefreshTokenError::Store(store) => Self::Store(store),
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct RefreshSession {
    users: Arc<dyn UserRepository>,
    access_tokens: Arc<dyn AccessTokens>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    clock: Arc<dyn Clock>,
}

impl RefreshSession {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        access_tokens: Arc<dyn AccessTokens>,
        refresh_tokens: Arc<dyn RefreshTokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, access_tokens, refresh_tokens, clock }
    }

    /// Rotates `refresh_token` and issues a new access token with the user's current role.
    ///
    /// # Errors
    /// See [`RefreshSessionError`].
    pub async fn execute(&self, refresh_token: &str) -> Result<TokenPair, RefreshSessionError> {
        let now = self.clock.now();
        let (user_id, next) = self.refresh_tokens.rotate(refresh_token, now).await?;
        let user =
            self.users.find_by_id(user_id).await?.ok_or(RefreshSessionError::InvalidGrant)?;
        let access = self.access_tokens.issue(Claims::for_user(&user), now)?;
        Ok(TokenPair { access, refresh_token: next, user_id, role: user.role() })
    }
}
