//! The outbox relay's broker: NATS JetStream (ADR 0033). Each event is a CloudEvents 1.0 JSON
//! envelope (structured mode) published to `<prefix>.<aggregate>.<id>`, its attributes also as
//! `ce-*` headers (binary-mode readers need not parse the body), with `Nats-Msg-Id` set to the
//! event's id: within the stream's duplicate window, JetStream stores a republished event once.
//! Published only when the stream acknowledged it.

use std::time::Duration;

use async_nats::{
    HeaderMap, ServerAddr,
    jetstream::{self, Context, stream},
};
use async_trait::async_trait;
use orderly_application::events::{EventPublisher, OutboxEvent, PublishError};
use orderly_domain::time::Timestamp;
use std::sync::atomic::{AtomicBool, Ordering};

pub use orderly_domain::event::EVENT_SOURCE;

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:4222` (credentials in the URL if any).
    pub url: String,
    /// The first token of every subject: `orderly` publishes to `orderly.order.<id>`.
    pub subject_prefix: String,
    /// The stream, created or updated at the first publish to cover `<prefix>.>`.
    pub stream: String,
    /// How long the stream keeps an event.
    pub max_age: Duration,
    /// How long the stream remembers an event id to drop a duplicate.
    pub duplicate_window: Duration,
    /// How long a publish waits for the stream's acknowledgement.
    pub publish_timeout: Duration,
}

/// [`EventPublisher`] on NATS JetStream.
#[derive(Debug)]
pub struct NatsPublisher {
    jetstream: Context,
    settings: NatsSettings,
    /// Whether the stream is known to exist with this configuration: set by a successful
    /// create-or-update, cleared by any failed publish (an operator may have deleted the stream,
    /// or NATS may have come back with empty storage), so the next publish ensures it again.
    stream: AtomicBool,
}

impl NatsPublisher {
    /// A publisher that connects in the background (the server starts while NATS is down, and
    /// the relay publishes once it is back).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub async fn connect(settings: NatsSettings) -> anyhow::Result<Self> {
        let address: ServerAddr = settings
            .url
            .parse()
            .map_err(|error| anyhow::anyhow!("NATS_URL is not a NATS URL: {error}"))?;
        let client = async_nats::ConnectOptions::new()
            .name("orderly")
            .retry_on_initial_connect()
            .connection_timeout(settings.publish_timeout)
            .connect(address)
            .await?;
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(settings.publish_timeout);
        Ok(Self { jetstream, settings, stream: AtomicBool::new(false) })
    }

    /// The subject of `event`: `<prefix>.<aggregate>.<id>`.
    #[must_use]
    pub fn subject(&self, event: &OutboxEvent) -> String {
        format!("{}.{}.{}", self.settings.subject_prefix, event.aggregate, event.aggregate_id)
    }

    /// Creates the stream, or updates it to this configuration.
    async fn ensure_stream(&self) -> Result<(), PublishError> {
        if self.stream.load(Ordering::Acquire) {
            return Ok(());
        }
        let config = stream::Config {
            name: self.settings.stream.clone(),
            subjects: vec![format!("{}.>", self.settings.subject_prefix)],
            max_age: self.settings.max_age,
            duplicate_window: self.settings.duplicate_window,
            ..stream::Config::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|error| unavailable(format!("creating the stream: {error}")))?;
        self.stream.store(true, Ordering::Release);
        Ok(())
    }
}

fn unavailable(message: String) -> PublishError {
    PublishError::Unavailable(anyhow::anyhow!(message))
}

/// The CloudEvents 1.0 JSON envelope of `event` (`data` as stored: already JSON).
///
/// # Errors
/// When the stored data is not JSON (it always is: the store writes serialized values).
pub fn envelope(event: &OutboxEvent) -> anyhow::Result<String> {
    let data: serde_json::Value = serde_json::from_str(&event.data)?;
    Ok(serde_json::to_string(&serde_json::json!({
        "specversion": "1.0",
        "id": event.id,
        "source": EVENT_SOURCE,
        "type": event.event_type,
        "subject": event.aggregate_id,
        "time": rfc3339(event.occurred_at),
        "datacontenttype": "application/json",
        "data": data,
    }))?)
}

/// `2027-01-15T08:00:00.123456Z`: microseconds, what the store keeps.
fn rfc3339(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn headers(event: &OutboxEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
    headers.insert("content-type", "application/cloudevents+json");
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", event.id.to_string().as_str());
    headers.insert("ce-source", EVENT_SOURCE);
    headers.insert("ce-type", event.event_type.as_str());
    headers.insert("ce-subject", event.aggregate_id.to_string().as_str());
    headers.insert("ce-time", rfc3339(event.occurred_at).as_str());
    headers
}

#[async_trait]
impl EventPublisher for NatsPublisher {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), PublishError> {
        self.ensure_stream().await?;
        let body = envelope(event).map_err(PublishError::Unavailable)?;
        let timeout = self.settings.publish_timeout;
        let acknowledged = tokio::time::timeout(timeout, async {
            self.jetstream
                .publish_with_headers(self.subject(event), headers(event), body.into())
                .await
                .map_err(|error| unavailable(format!("publishing: {error}")))?
                .await
                .map_err(|error| unavailable(format!("waiting for the acknowledgement: {error}")))
        })
        .await
        .map_err(|_| unavailable(format!("no acknowledgement within {timeout:?}")))
        .and_then(|acknowledged| acknowledged)
        .inspect_err(|_| self.stream.store(false, Ordering::Release))?;
        tracing::debug!(
            event.id = %event.id,
            event.r#type = %event.event_type,
            stream.sequence = acknowledged.sequence,
            duplicate = acknowledged.duplicate,
            "event published"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::Uuid;

    use super::*;

    #[test]
    fn the_envelope_is_cloudevents_json_with_the_stored_data_as_it_is() {
        let event = OutboxEvent {
            id: Uuid::from_u128(7),
            event_type: "orderly.order.paid.v1".to_owned(),
            aggregate: "order".to_owned(),
            aggregate_id: Uuid::from_u128(9),
            aggregate_version: 3,
            occurred_at: Timestamp::from_timestamp(1_800_000_000, 123_456_000).expect("valid"),
            data: r#"{"id":"x","version":3}"#.to_owned(),
        };
        let envelope: serde_json::Value =
            serde_json::from_str(&envelope(&event).expect("JSON")).expect("JSON");
        assert_eq!(
            envelope,
            serde_json::json!({
                "specversion": "1.0",
                "id": "00000000-0000-0000-0000-000000000007",
                "source": "/orderly",
                "type": "orderly.order.paid.v1",
                "subject": "00000000-0000-0000-0000-000000000009",
                "time": "2027-01-15T08:00:00.123456Z",
                "datacontenttype": "application/json",
                "data": {"id": "x", "version": 3},
            })
        );
        let headers = headers(&event);
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some("00000000-0000-0000-0000-000000000007")
        );
        assert_eq!(headers.get("ce-type").map(|v| v.as_str()), Some("orderly.order.paid.v1"));
    }
}
