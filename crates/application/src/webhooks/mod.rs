//! Webhooks: admins register HTTP endpoints for the events they choose; workers deliver each
//! event the outbox records to every endpoint that wants it, signed per Standard Webhooks, and
//! retry on the domain's schedule (ADR 0034).
//!
//! The ports live here, beside the use cases ([`ports`]); [`Webhooks`] is the group the
//! composition root builds and the HTTP layer calls, [`deliver::DeliverWebhooks`] the worker's.

pub mod create_endpoint;
pub mod delete_endpoint;
pub mod deliver;
pub mod get_endpoint;
pub mod list_deliveries;
pub mod list_endpoints;
pub mod ports;
pub mod retry_delivery;
pub mod rotate_secret;
pub mod update_endpoint;

use std::sync::Arc;

use orderly_domain::Actor;
pub use ports::{DeliveryQueue, SecretGenerator, UrlGuard, WebhookSender, WebhookStore};

pub use crate::auth::admin_check::AdminCheck;
use crate::{StoreError, ports::Clock};

/// Only admins manage webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only admins manage webhook endpoints")]
pub struct AdminsOnly;

/// Confirms in the database that `actor` is an admin now (ADR 0027), or refuses.
async fn admin_only<E: From<AdminsOnly> + From<StoreError>>(
    admins: &AdminCheck,
    actor: &Actor,
) -> Result<(), E> {
    match admins.recheck(actor).await? {
        Some(actor) if actor.is_admin() => Ok(()),
        _ => Err(AdminsOnly.into()),
    }
}

/// Every webhook use case an admin calls.
#[derive(Clone)]
pub struct Webhooks {
    pub create: create_endpoint::CreateEndpoint,
    pub get: get_endpoint::GetEndpoint,
    pub list: list_endpoints::ListEndpoints,
    pub update: update_endpoint::UpdateEndpoint,
    pub delete: delete_endpoint::DeleteEndpoint,
    pub rotate_secret: rotate_secret::RotateSecret,
    pub deliveries: list_deliveries::ListDeliveries,
    pub retry: retry_delivery::RetryDelivery,
}

impl Webhooks {
    /// The use cases over `store`, confirming admins with `admins`, checking URLs with `guard`
    /// and making secrets with `secrets`.
    #[must_use]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        admins: AdminCheck,
        guard: Arc<dyn UrlGuard>,
        secrets: Arc<dyn SecretGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let a = || admins.clone();
        Self {
            create: create_endpoint::CreateEndpoint::new(
                store.clone(),
                a(),
                guard.clone(),
                secrets.clone(),
                clock.clone(),
            ),
            get: get_endpoint::GetEndpoint::new(store.clone(), a()),
            list: list_endpoints::ListEndpoints::new(store.clone(), a()),
            update: update_endpoint::UpdateEndpoint::new(store.clone(), a(), guard, clock.clone()),
            delete: delete_endpoint::DeleteEndpoint::new(store.clone(), a()),
            rotate_secret: rotate_secret::RotateSecret::new(
                store.clone(),
                a(),
                secrets,
                clock.clone(),
            ),
            deliveries: list_deliveries::ListDeliveries::new(store.clone(), a()),
            retry: retry_delivery::RetryDelivery::new(store, a(), clock),
        }
    }
}
