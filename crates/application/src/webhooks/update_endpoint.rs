//! Changes a webhook endpoint: its URL, the events it receives, enabled or not.

use std::sync::Arc;

use orderly_domain::{Actor, EventFilter, WebhookEndpoint, WebhookEndpointId, WebhookUrl};

use super::{
    AdminCheck, AdminsOnly, admin_only,
    ports::{UrlGuard, UrlRefused, WebhookStore, WebhookWriteError},
};
use crate::{StoreError, WRITE_ATTEMPTS, ports::Clock};

/// What to change; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateEndpointInput {
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    pub url: Option<WebhookUrl>,
    pub event_types: Option<EventFilter>,
    /// Enabling also forgets its failures.
    pub enabled: Option<bool>,
}

/// Why the endpoint was not changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateEndpointError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error("webhook endpoint not found")]
    NotFound,
    /// The outbound guard refuses the new URL.
    #[error(transparent)]
    UrlRefused(#[from] UrlRefused),
    /// The client's version is not the current one (HTTP 412).
    #[error("the endpoint has changed since version {expected}; it is now at version {current}")]
    VersionMismatch { expected: u64, current: u64 },
    /// It kept changing (deliveries record failures on it) for [`WRITE_ATTEMPTS`] tries.
    #[error("the endpoint was changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct UpdateEndpoint {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
    guard: Arc<dyn UrlGuard>,
    clock: Arc<dyn Clock>,
}

impl UpdateEndpoint {
    #[must_use]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        admins: AdminCheck,
        guard: Arc<dyn UrlGuard>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, admins, guard, clock }
    }

    /// Applies the changes and returns the endpoint as stored. Without `expected_version` a
    /// concurrent change is re-read and the changes applied again (up to [`WRITE_ATTEMPTS`]).
    ///
    /// # Errors
    /// See [`UpdateEndpointError`].
    #[tracing::instrument(name = "webhooks.update", skip_all, fields(endpoint = %id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        id: WebhookEndpointId,
        input: UpdateEndpointInput,
    ) -> Result<WebhookEndpoint, UpdateEndpointError> {
        admin_only::<UpdateEndpointError>(&self.admins, actor).await?;
        if let Some(url) = &input.url {
            self.guard.check(url).await?;
        }
        for _ in 0..WRITE_ATTEMPTS {
            let mut endpoint = self.store.find(id).await?.ok_or(UpdateEndpointError::NotFound)?;
            if let Some(expected) = input.expected_version
                && expected != endpoint.version()
            {
                return Err(UpdateEndpointError::VersionMismatch {
                    expected,
                    current: endpoint.version(),
                });
            }
            let now = self.clock.now();
            if let Some(url) = &input.url {
                endpoint.move_to(url.clone(), now);
            }
            if let Some(event_types) = &input.event_types {
                endpoint.subscribe(event_types.clone(), now);
            }
            if let Some(enabled) = input.enabled {
                endpoint.set_enabled(enabled, now);
            }
            if endpoint.version() == endpoint.stored_version() {
                return Ok(endpoint);
            }
            match self.store.update(&endpoint).await {
                Ok(()) => return Ok(endpoint),
                Err(WebhookWriteError::NotFound) => return Err(UpdateEndpointError::NotFound),
                Err(WebhookWriteError::Stale) if input.expected_version.is_some() => {
                    let current = self.store.find(id).await?.map_or(0, |e| e.version());
                    let expected = input.expected_version.unwrap_or_default();
                    return Err(UpdateEndpointError::VersionMismatch { expected, current });
                }
                Err(WebhookWriteError::Stale) => {}
                Err(WebhookWriteError::Store(error)) => return Err(error.into()),
            }
        }
        Err(UpdateEndpointError::Conflict)
    }
}
