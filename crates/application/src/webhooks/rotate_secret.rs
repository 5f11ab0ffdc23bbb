//! Rotates an endpoint's signing secret: the new one signs from now on, the old one beside it
//! for a day (`PREVIOUS_SECRET_GRACE`), so receivers switch without refusing a delivery.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpoint, WebhookEndpointId};

use super::{
    AdminCheck, AdminsOnly, admin_only,
    ports::{SecretGenerator, WebhookStore, WebhookWriteError},
};
use crate::{StoreError, WRITE_ATTEMPTS, ports::Clock};

/// Why the secret was not rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateSecretError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error("webhook endpoint not found")]
    NotFound,
    #[error("the endpoint was changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct RotateSecret {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
}

impl RotateSecret {
    #[must_use]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        admins: AdminCheck,
        secrets: Arc<dyn SecretGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, admins, secrets, clock }
    }

    /// Rotates the secret of `id`; the endpoint returned holds the new secret, shown this once.
    ///
    /// # Errors
    /// See [`RotateSecretError`].
    #[tracing::instrument(name = "webhooks.rotate_secret", skip_all, fields(endpoint = %id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpoint, RotateSecretError> {
        admin_only::<RotateSecretError>(&self.admins, actor).await?;
        let secret = self.secrets.generate();
        for _ in 0..WRITE_ATTEMPTS {
            let mut endpoint = self.store.find(id).await?.ok_or(RotateSecretError::NotFound)?;
            endpoint.rotate(secret.clone(), self.clock.now());
            match self.store.update(&endpoint).await {
                Ok(()) => return Ok(endpoint),
                Err(WebhookWriteError::NotFound) => return Err(RotateSecretError::NotFound),
                Err(WebhookWriteError::Stale) => {}
                Err(WebhookWriteError::Store(error)) => return Err(error.into()),
            }
        }
        Err(RotateSecretError::Conflict)
    }
}
