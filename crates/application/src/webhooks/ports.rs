//! The ports of webhooks: the endpoints and their deliveries as admins manage them, the queue a
//! delivery worker takes them from, and the outbound side (the guard that decides which hosts
//! may be called, the sender, the secret generator).

use std::time::Duration;

use async_trait::async_trait;
use orderly_domain::{
    DeliveryStatus, Uuid, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId,
    WebhookSecret, WebhookUrl, time::Timestamp,
};

use crate::{
    StoreError,
    pagination::{Page, PageRequest},
};

/// Why the store refused to write an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum WebhookWriteError {
    /// There is no such endpoint.
    #[error("the webhook endpoint does not exist")]
    NotFound,
    /// The endpoint changed since it was read (its version moved on).
    #[error("the webhook endpoint was changed by someone else")]
    Stale,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores endpoints and their deliveries.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn insert(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    /// The endpoint `id`, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find(&self, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// One page of the endpoints, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(&self, page: PageRequest) -> Result<Page<WebhookEndpoint>, StoreError>;

    /// Writes `endpoint` if the stored row is still at its `stored_version`. When the write
    /// disables it, its pending deliveries fail in the same transaction.
    ///
    /// # Errors
    /// [`WebhookWriteError::NotFound`] when it is gone, [`WebhookWriteError::Stale`] when its
    /// version moved on, [`WebhookWriteError::Store`] otherwise.
    async fn update(&self, endpoint: &WebhookEndpoint) -> Result<(), WebhookWriteError>;

    /// Deletes the endpoint `id` and its deliveries.
    ///
    /// # Errors
    /// [`WebhookWriteError::NotFound`] when there is no such endpoint,
    /// [`WebhookWriteError::Store`] otherwise.
    async fn delete(&self, id: WebhookEndpointId) -> Result<(), WebhookWriteError>;

    /// One page of the deliveries of `endpoint`, newest first, of `status` if given.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn deliveries(
        &self,
        endpoint: WebhookEndpointId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>, StoreError>;

    /// The delivery `id`, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find_delivery(
        &self,
        id: WebhookDeliveryId,
    ) -> Result<Option<WebhookDelivery>, StoreError>;

    /// Writes a delivery's state (attempts, status, next attempt).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a delivery deleted with its endpoint is not one).
    async fn save_delivery(&self, delivery: &WebhookDelivery) -> Result<(), StoreError>;
}

/// A delivery due now, with its endpoint as it was when claimed.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub endpoint: WebhookEndpoint,
}

/// What delivery workers take their work from.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Takes up to `limit` events of the outbox that webhooks have not seen yet, oldest first,
    /// and in one transaction schedules a delivery of each to every endpoint that
    /// [`wants`](WebhookEndpoint::wants) it (its body the event's CloudEvents envelope, copied:
    /// the outbox forgets events after its retention) and marks the events seen. Safe on several
    /// instances (on PostgreSQL the events are claimed with `FOR UPDATE SKIP LOCKED`).
    /// Returns how many events were taken.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; nothing is scheduled then.
    async fn fan_out(&self, limit: u32, now: Timestamp) -> Result<u32, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` of enabled endpoints, oldest due
    /// first, by moving their next attempt to `lease_until`: another worker does not take them
    /// meanwhile, and a worker that dies leaves them to be taken again then.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; nothing is claimed then.
    async fn claim_due(
        &self,
        limit: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Deletes the finished (succeeded or failed) deliveries made before `before`; returns how
    /// many.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn purge_finished(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// A host the outbound guard refuses to call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// It resolves to a loopback, private, link-local, shared, multicast or metadata address.
    #[error("{0}")]
    NotPublic(String),
    /// It does not resolve.
    #[error("{0}")]
    Unresolvable(String),
}

impl orderly_domain::RuleError for UrlRefused {
    fn code(&self) -> &'static str {
        match self {
            Self::NotPublic(_) => NOT_PUBLIC,
            Self::Unresolvable(_) => UNRESOLVABLE,
        }
    }
}

/// The field code of a URL whose host is not on the public internet.
pub const NOT_PUBLIC: &str = "not_public";
/// The field code of a URL whose host does not resolve.
pub const UNRESOLVABLE: &str = "unresolvable";

/// Decides which URLs webhooks may be sent to (server-side request forgery).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UrlGuard: Send + Sync {
    /// Resolves the URL's host and refuses it unless every address is public (or the operator
    /// allows private networks).
    ///
    /// # Errors
    /// [`UrlRefused`] naming why.
    async fn check(&self, url: &WebhookUrl) -> Result<(), UrlRefused>;
}

/// One delivery attempt as the sender makes it.
#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub url: WebhookUrl,
    /// `webhook-id`: the event's id, the same for every attempt.
    pub id: Uuid,
    /// `webhook-timestamp`.
    pub timestamp: Timestamp,
    /// The body (JSON).
    pub body: String,
    /// The secrets to sign with, each giving one `v1,` signature.
    pub secrets: Vec<WebhookSecret>,
}

/// What the receiver did with an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// It answered `status`; `retry_after` if it sent a `Retry-After`.
    Answered { status: u16, retry_after: Option<Duration> },
    /// The guard refused the address the host resolved to when connecting.
    Refused(String),
    /// No answer within the time-out, or the connection failed.
    Failed(String),
}

/// Sends signed deliveries (Standard Webhooks).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `message` signed with each of its secrets, without following redirects, within a
    /// time-out, reading at most a small part of the answer.
    async fn send(&self, message: &WebhookMessage) -> SendOutcome;
}

/// Makes signing secrets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A new random secret: `whsec_` and the base64 of its bytes.
    fn generate(&self) -> WebhookSecret;
}
