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

use crate::ports::Clock;

/// Only admins manage webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only admins manage webhook endpoints")]
pub struct AdminsOnly;

fn admin_only(actor: &Actor) -> Result<(), AdminsOnly> {
    if actor.is_admin() { Ok(()) } else { Err(AdminsOnly) }
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
    /// The use cases over `store`, checking URLs with `guard` and making secrets with `secrets`.
    #[must_use]
    pub fn new(
        store: Arc<dyn WebhookStore>,
        guard: Arc<dyn UrlGuard>,
        secrets: Arc<dyn SecretGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            create: create_endpoint::CreateEndpoint::new(
                store.clone(),
                guard.clone(),
                secrets.clone(),
                clock.clone(),
            ),
            get: get_endpoint::GetEndpoint::new(store.clone()),
            list: list_endpoints::ListEndpoints::new(store.clone()),
            update: update_endpoint::UpdateEndpoint::new(store.clone(), guard, clock.clone()),
            delete: delete_endpoint::DeleteEndpoint::new(store.clone()),
            rotate_secret: rotate_secret::RotateSecret::new(store.clone(), secrets, clock.clone()),
            deliveries: list_deliveries::ListDeliveries::new(store.clone()),
            retry: retry_delivery::RetryDelivery::new(store, clock),
        }
    }
}
