//! Lists the deliveries of an endpoint, newest first.

use std::sync::Arc;

use orderly_domain::{Actor, DeliveryStatus, WebhookDelivery, WebhookEndpointId};

use super::{AdminCheck, AdminsOnly, admin_only, ports::WebhookStore};
use crate::{
    StoreError,
    pagination::{InvalidCursor, ListRequest, Listed},
};

/// Why the list was not read.
#[derive(Debug, thiserror::Error)]
pub enum ListDeliveriesError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error("webhook endpoint not found")]
    NotFound,
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct ListDeliveries {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
}

impl ListDeliveries {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>, admins: AdminCheck) -> Self {
        Self { store, admins }
    }

    /// One page of the deliveries of `endpoint`, of `status` if given.
    ///
    /// # Errors
    /// See [`ListDeliveriesError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        endpoint: WebhookEndpointId,
        status: Option<DeliveryStatus>,
        request: ListRequest,
    ) -> Result<Listed<WebhookDelivery>, ListDeliveriesError> {
        admin_only::<ListDeliveriesError>(&self.admins, actor).await?;
        if self.store.find(endpoint).await?.is_none() {
            return Err(ListDeliveriesError::NotFound);
        }
        let scope = format!("webhook-deliveries:{endpoint}:{}", status.map_or("", |s| s.as_str()));
        let page = request.into_page_request(&scope)?;
        Ok(self.store.deliveries(endpoint, status, page).await?.into_listed(&scope))
    }
}
