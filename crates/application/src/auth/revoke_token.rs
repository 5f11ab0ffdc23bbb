//! Revokes a refresh token and its family (RFC 7009): logging out.

use std::sync::Arc;

use crate::{
    StoreError,
    ports::{Clock, RefreshTokens},
};

/// The use case.
#[derive(Clone)]
pub struct RevokeToken {
    refresh_tokens: Arc<dyn RefreshTokens>,
    clock: Arc<dyn Clock>,
}

impl RevokeToken {
    #[must_use]
    pub fn new(refresh_tokens: Arc<dyn RefreshTokens>, clock: Arc<dyn Clock>) -> Self {
        Self { refresh_tokens, clock }
    }

    /// Revokes the session of `token`; an unknown token is not an error (RFC 7009 section 2.2).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn execute(&self, token: &str) -> Result<(), StoreError> {
        self.refresh_tokens.revoke(token, self.clock.now()).await
    }
}
