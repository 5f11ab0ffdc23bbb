//! Delivers an event to an endpoint again, as an admin asks (the receiver lost it, or was
//! fixed after the retries ran out): one more attempt, made at once.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookDelivery, WebhookDeliveryId, WebhookEndpointId};

use super::{AdminCheck, AdminsOnly, admin_only, ports::WebhookStore};
use crate::{StoreError, ports::Clock};

/// Why the delivery was not retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryDeliveryError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    /// No such delivery of that endpoint.
    #[error("webhook delivery not found")]
    NotFound,
    /// The endpoint is disabled: enable it first.
    #[error("the endpoint is disabled; enable it before retrying its deliveries")]
    EndpointDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct RetryDelivery {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
    clock: Arc<dyn Clock>,
}

impl RetryDelivery {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>, admins: AdminCheck, clock: Arc<dyn Clock>) -> Self {
        Self { store, admins, clock }
    }

    /// Schedules one more attempt of delivery `id` of `endpoint`, due now.
    ///
    /// # Errors
    /// See [`RetryDeliveryError`].
    #[tracing::instrument(name = "webhooks.retry", skip_all, fields(delivery = %id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        endpoint: WebhookEndpointId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, RetryDeliveryError> {
        admin_only::<RetryDeliveryError>(&self.admins, actor).await?;
        let owner = self.store.find(endpoint).await?.ok_or(RetryDeliveryError::NotFound)?;
        let mut delivery = self
            .store
            .find_delivery(id)
            .await?
            .filter(|delivery| delivery.endpoint_id() == endpoint)
            .ok_or(RetryDeliveryError::NotFound)?;
        if !owner.is_enabled() {
            return Err(RetryDeliveryError::EndpointDisabled);
        }
        delivery.redeliver(self.clock.now());
        self.store.save_delivery(&delivery).await?;
        Ok(delivery)
    }
}
