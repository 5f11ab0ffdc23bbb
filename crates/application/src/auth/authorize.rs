//! Turns an access token into the actor it speaks for, as the account is now: a deleted
//! account's token is refused, a demoted admin acts with the new role, and a token issued before
//! a password change is refused (ADR 0013).

use std::sync::Arc;

use orderly_domain::Actor;

use crate::{
    StoreError,
    ports::{AccessTokens, AccountDirectory, Clock},
};

/// Why a token does not authorize anything.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Malformed, badly signed, expired, or for another audience.
    #[error("the access token is invalid or expired")]
    InvalidToken,
    /// The account was deleted.
    #[error("the account this access token belongs to no longer exists")]
    AccountGone,
    /// The password changed since the token was issued: every earlier session has ended.
    #[error("the session has ended; log in again")]
    SessionEnded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct Authorize {
    tokens: Arc<dyn AccessTokens>,
    accounts: Arc<dyn AccountDirectory>,
    clock: Arc<dyn Clock>,
}

impl Authorize {
    #[must_use]
    pub fn new(
        tokens: Arc<dyn AccessTokens>,
        accounts: Arc<dyn AccountDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { tokens, accounts, clock }
    }

    /// The actor `token` speaks for, with the account's current role.
    ///
    /// # Errors
    /// See [`AuthorizeError`].
    pub async fn execute(&self, token: &str) -> Result<Actor, AuthorizeError> {
        let claims = self
            .tokens
            .verify(token, self.clock.now())
            .map_err(|_| AuthorizeError::InvalidToken)?;
        let account =
            self.accounts.status(claims.user_id).await?.ok_or(AuthorizeError::AccountGone)?;
        if account.session_epoch != claims.session_epoch {
            return Err(AuthorizeError::SessionEnded);
        }
        Ok(Actor::User { id: claims.user_id, role: account.role })
    }
}
