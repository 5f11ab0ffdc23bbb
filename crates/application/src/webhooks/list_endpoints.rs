//! Lists the webhook endpoints, newest first.

use std::sync::Arc;

use orderly_domain::{Actor, WebhookEndpoint};

use super::{AdminCheck, AdminsOnly, admin_only, ports::WebhookStore};
use crate::{
    StoreError,
    pagination::{InvalidCursor, ListRequest, Listed},
};

/// The cursor scope of the list.
pub const SCOPE: &str = "webhook-endpoints";

/// Why the list was not read.
#[derive(Debug, thiserror::Error)]
pub enum ListEndpointsError {
    #[error(transparent)]
    Forbidden(#[from] AdminsOnly),
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct ListEndpoints {
    store: Arc<dyn WebhookStore>,
    admins: AdminCheck,
}

impl ListEndpoints {
    #[must_use]
    pub fn new(store: Arc<dyn WebhookStore>, admins: AdminCheck) -> Self {
        Self { store, admins }
    }

    /// One page of the endpoints.
    ///
    /// # Errors
    /// See [`ListEndpointsError`].
    pub async fn execute(
        &self,
        actor: &Actor,
        request: ListRequest,
    ) -> Result<Listed<WebhookEndpoint>, ListEndpointsError> {
        admin_only::<ListEndpointsError>(&self.admins, actor).await?;
        let page = request.into_page_request(SCOPE)?;
        Ok(self.store.list(page).await?.into_listed(SCOPE))
    }
}
