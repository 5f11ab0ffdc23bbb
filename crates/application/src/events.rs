//! Relaying the outbox: the events the store wrote with each change (ADR 0032) are published to
//! a broker afterwards, each at least once, one resource's events in the order they happened
//! (ADR 0033). The ports are here, beside their one use case: the outbox as a relay sees it,
//! and the publisher.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_domain::{Uuid, time::Timestamp};

use crate::{StoreError, ports::Clock};

/// An event written to the outbox, as a relay publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id (UUIDv7): consumers deduplicate by it, and so does the broker.
    pub id: Uuid,
    /// Its type's name (`orderly.order.paid.v1`).
    pub event_type: String,
    /// The kind of resource (`order`, `product`, `user`).
    pub aggregate: String,
    /// The resource's id (CloudEvents' `subject`).
    pub aggregate_id: Uuid,
    /// The resource's version the change made.
    pub aggregate_version: u64,
    /// When the change was made.
    pub occurred_at: Timestamp,
    /// The resource's representation (JSON text).
    pub data: String,
}

/// The unpublished events a relay claimed, and the claim that marks them published.
pub struct OutboxBatch {
    /// The events, oldest first, at most one per resource: a resource's next event is claimable
    /// only once the one before it is published, so its events are published in order.
    pub events: Vec<OutboxEvent>,
    /// The open claim (on PostgreSQL, row locks that other instances skip).
    pub claim: Box<dyn OutboxClaim>,
}

impl std::fmt::Debug for OutboxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxBatch").field("events", &self.events).finish_non_exhaustive()
    }
}

/// The outbox as a relay sees it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` unpublished events, oldest first, at most one per resource (the
    /// oldest unpublished of each). On PostgreSQL the claim holds their rows with
    /// `FOR UPDATE SKIP LOCKED` until it ends, so instances relaying together get different
    /// events; on SQLite nothing is locked, and a second relay may publish an event again (the
    /// broker drops the duplicate by its id).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; nothing is claimed then.
    async fn claim(&self, limit: u32) -> Result<OutboxBatch, StoreError>;

    /// Deletes events published at or before `before` and already scheduled for webhook
    /// delivery; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn purge_published(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Deletes every event that happened before `before` and was scheduled for webhook delivery,
    /// published or not: without a broker nothing publishes them, and the outbox must not grow
    /// for ever.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn purge_written_before(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// When the oldest unpublished event happened, if any (the relay's lag).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn oldest_unpublished(&self) -> Result<Option<Timestamp>, StoreError>;
}

/// The open claim of one [`OutboxBatch`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OutboxClaim: Send {
    /// Marks the events `ids` published at `at` and ends the claim.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails: the events stay unpublished and are published
    /// again by a later run (the broker drops the duplicates).
    async fn finish(self: Box<Self>, ids: &[Uuid], at: Timestamp) -> Result<(), StoreError>;
}

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not answer, refused, or did not acknowledge in time: try again later.
    #[error("the broker is unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

/// Where events go (a broker).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `event` and waits for the broker's acknowledgement that it is stored. Publishing
    /// an event again is harmless: the broker drops a duplicate by the event's id.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] unless acknowledged.
    async fn publish(&self, event: &OutboxEvent) -> Result<(), PublishError>;
}

/// How many events one claim takes.
pub const RELAY_BATCH: u32 = 100;

/// What one run published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Events published and marked, by type, in publishing order.
    pub published: Vec<String>,
    /// Whether the batch was full (more are probably waiting: run again at once).
    pub full: bool,
    /// The broker's refusal that stopped the run, if one did.
    pub failed: Option<String>,
}

/// The use case: publish one claimed batch.
#[derive(Clone)]
pub struct RelayEvents {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    batch: u32,
}

impl RelayEvents {
    /// The use case with batches of [`RELAY_BATCH`] events.
    #[must_use]
    pub fn new(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { outbox, publisher, clock, batch: RELAY_BATCH }
    }

    /// The same use case with batches of `batch` events (at least one).
    #[must_use]
    pub fn with_batch(self, batch: u32) -> Self {
        Self { batch: batch.max(1), ..self }
    }

    /// Claims a batch, publishes its events in order and marks those the broker acknowledged.
    /// The first refusal stops the batch (the others are claimed again later, after a backoff
    /// the caller chooses): an event is never published before an earlier one of its resource,
    /// and never marked without its acknowledgement.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails. Events published but not marked are published
    /// again by a later run; the broker drops the duplicates.
    pub async fn execute(&self) -> Result<RelayReport, StoreError> {
        let OutboxBatch { events, claim } = self.outbox.claim(self.batch).await?;
        let full = u32::try_from(events.len()).is_ok_and(|claimed| claimed >= self.batch);
        let mut report = RelayReport { full, ..RelayReport::default() };
        let mut published = Vec::with_capacity(events.len());
        for event in &events {
            match self.publisher.publish(event).await {
                Ok(()) => {
                    published.push(event.id);
                    report.published.push(event.event_type.clone());
                }
                Err(error) => {
                    report.failed = Some(format!("{error:#}"));
                    report.full = false;
                    break;
                }
            }
        }
        claim.finish(&published, self.clock.now()).await?;
        Ok(report)
    }

    /// Deletes the events published more than `retention` before now.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64, StoreError> {
        self.outbox.purge_published(retention_cutoff(self.clock.as_ref(), retention)).await
    }
}

/// The instant `retention` before now: what happened before it may go.
#[must_use]
pub fn retention_cutoff(clock: &dyn Clock, retention: std::time::Duration) -> Timestamp {
    orderly_domain::time::TimeDelta::from_std(retention)
        .ok()
        .and_then(|retention| clock.now().checked_sub_signed(retention))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use mockall::Sequence;

    use super::*;
    use crate::ports::MockClock;

    fn event(n: u128, event_type: &str) -> OutboxEvent {
        OutboxEvent {
            id: Uuid::from_u128(n),
            event_type: event_type.to_owned(),
            aggregate: "order".to_owned(),
            aggregate_id: Uuid::from_u128(1000 + n),
            aggregate_version: 1,
            occurred_at: Timestamp::default(),
            data: "{}".to_owned(),
        }
    }

    fn clock() -> Arc<dyn Clock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::default());
        Arc::new(clock)
    }

    fn outbox_with(events: Vec<OutboxEvent>, marked: Vec<Uuid>) -> Arc<dyn Outbox> {
        let mut claim = MockOutboxClaim::new();
        claim
            .expect_finish()
            .withf(move |ids, _| ids == marked.as_slice())
            .times(1)
            .returning(|_, _| Ok(()));
        let mut outbox = MockOutbox::new();
        let mut claim = Some(claim);
        outbox.expect_claim().times(1).returning(move |_| {
            let claim = claim.take().expect("claimed once");
            Ok(OutboxBatch { events: events.clone(), claim: Box::new(claim) })
        });
        Arc::new(outbox)
    }

    #[tokio::test]
    async fn every_acknowledged_event_is_marked_in_order() {
        let events = vec![event(1, "orderly.order.placed.v1"), event(2, "orderly.user.deleted.v1")];
        let outbox = outbox_with(events.clone(), vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        let mut publisher = MockEventPublisher::new();
        let mut order = Sequence::new();
        for expected in events {
            publisher
                .expect_publish()
                .withf(move |event| event.id == expected.id)
                .times(1)
                .in_sequence(&mut order)
                .returning(|_| Ok(()));
        }
        let relay = RelayEvents::new(outbox, Arc::new(publisher), clock()).with_batch(2);
        let report = relay.execute().await.expect("relayed");
        assert_eq!(report.published, ["orderly.order.placed.v1", "orderly.user.deleted.v1"]);
        assert!(report.full && report.failed.is_none());
    }

    #[tokio::test]
    async fn a_refusal_stops_the_batch_and_only_what_was_acknowledged_is_marked() {
        let events = vec![event(1, "a"), event(2, "b"), event(3, "c")];
        let outbox = outbox_with(events, vec![Uuid::from_u128(1)]);
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().withf(|e| e.id == Uuid::from_u128(1)).returning(|_| Ok(()));
        publisher
            .expect_publish()
            .withf(|e| e.id == Uuid::from_u128(2))
            .times(1)
            .returning(|_| Err(PublishError::Unavailable(anyhow::anyhow!("no ack"))));
        let relay = RelayEvents::new(outbox, Arc::new(publisher), clock()).with_batch(3);
        let report = relay.execute().await.expect("the store works");
        assert_eq!(report.published, ["a"]);
        assert!(!report.full, "a failed run is not a full one: the caller backs off");
        assert!(report.failed.as_deref().is_some_and(|why| why.contains("no ack")));
    }
}
