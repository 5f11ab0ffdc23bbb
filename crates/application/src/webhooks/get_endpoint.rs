//! Reads one webhook endpoint.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpoint, WebhookEndpointId};

use super::{AdminsOnly, admin_only, ports::WebhookStore};
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
}

impl GetEndpoint {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>) -> Self {
        Self { store }
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
        admin_only(actor)?;
        self.store.find(id).await?.ok_or(GetEndpointError::NotFound)
    }
}
