//! Registers a webhook endpoint.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpoint, WebhookEndpointDraft};

use super::{
    AdminCheck, AdminsOnly, admin_only,
    ports::{SecretGenerator, UrlGuard, UrlRefused, WebhookStore},
};
use crate::{StoreError, ports::Clock};

/// Why the endpoint was not registered.
#[derive(Debug, thiserror::Error)]
pub enum CreateEndpointError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    /// The outbound guard refuses its URL.
    #[error(transparent)]
    UrlRefused(#[from] UrlRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct CreateEndpoint {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
    guard: Arc<dyn UrlGuard>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
}

impl CreateEndpoint {
    #[must_use]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        admins: AdminCheck,
        guard: Arc<dyn UrlGuard>,
        secrets: Arc<dyn SecretGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, admins, guard, secrets, clock }
    }

    /// Registers `draft` with a new secret; the endpoint returned holds the secret, which is
    /// shown to the admin this once.
    ///
    /// # Errors
    /// See [`CreateEndpointError`].
    #[tracing::instrument(name = "webhooks.create", skip_all)]
    pub async fn execute(
        &self,
        actor: &Actor,
        draft: WebhookEndpointDraft,
    ) -> Result<WebhookEndpoint, CreateEndpointError> {
        admin_only::<CreateEndpointError>(&self.admins, actor).await?;
        self.guard.check(&draft.url).await?;
        let endpoint = WebhookEndpoint::register(draft, self.secrets.generate(), self.clock.now());
        self.store.insert(&endpoint).await?;
        Ok(endpoint)
    }
}
