//! Deletes a webhook endpoint and its deliveries.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpointId};

use super::{
    AdminCheck, AdminsOnly, admin_only,
    ports::{WebhookStore, WebhookWriteError},
};
use crate::StoreError;

/// Why the endpoint was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteEndpointError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error("webhook endpoint not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct DeleteEndpoint {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
}

impl DeleteEndpoint {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>, admins: AdminCheck) -> Self {
        Self { store, admins }
    }

    /// Deletes the endpoint `id`: nothing more is delivered to it.
    ///
    /// # Errors
    /// See [`DeleteEndpointError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        id: WebhookEndpointId,
    ) -> Result<(), DeleteEndpointError> {
        admin_only::<DeleteEndpointError>(&self.admins, actor).await?;
        match self.store.delete(id).await {
            Ok(()) => Ok(()),
            Err(WebhookWriteError::NotFound | WebhookWriteError::Stale) => {
                Err(DeleteEndpointError::NotFound)
            }
            Err(WebhookWriteError::Store(error)) => Err(error.into()),
        }
    }
}
