//! Reads one webhook endpoint.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpoint, WebhookEndpointId};

use super::{AdminCheck, AdminsOnly, admin_only, ports::WebhookStore};
use crate::StoreError;

/// Why the endpoint was not read.
#[derive(Debug, thiserror::Error)]
pub enum GetEndpointError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error("webhook endpoint not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct GetEndpoint {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
}

impl GetEndpoint {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>, admins: AdminCheck) -> Self {
        Self { store, admins }
    }

    /// The endpoint `id`.
    ///
    /// # Errors
    /// See [`GetEndpointError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpoint, GetEndpointError> {
        admin_only::<GetEndpointError>(&self.admins, actor).await?;
        self.store.find(id).await?.ok_or(GetEndpointError::NotFound)
    }
}
