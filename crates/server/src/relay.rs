//! The outbox relay's background task (ADR 0033): with `NATS_URL`, publishes the outbox's events
//! batch after batch (at once while batches come full, every `OUTBOX_POLL_INTERVAL` when the
//! outbox is empty), backs off exponentially while the broker or the database fails (never
//! losing an event: it stays in the outbox), and purges events published longer ago than
//! `OUTBOX_RETENTION`. Without `NATS_URL` it only purges events older than the retention, which
//! nothing will publish. Safe on several instances (the claim skips what another holds).

use std::{sync::Arc, time::Duration};

use orderly_application::{
    events::{Outbox, RelayEvents, retention_cutoff},
    ports::Clock,
};
use prometheus::{Gauge, IntCounter, IntCounterVec, Opts, Registry};
use tokio::task::JoinHandle;

/// The longest wait between two tries while the broker or the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the retention is applied and the lag measured.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(15);

/// The relay's series.
#[derive(Clone)]
pub struct RelayMetrics {
    published: IntCounterVec,
    errors: IntCounter,
    lag: Gauge,
}

impl RelayMetrics {
    /// Registers `orderly_events_published_total{type}`, `orderly_outbox_relay_errors_total` and
    /// `orderly_outbox_oldest_unpublished_age_seconds`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let published = IntCounterVec::new(
            Opts::new(
                "orderly_events_published_total",
                "Events the outbox relay published and the broker acknowledged, by type.",
            ),
            &["type"],
        )?;
        let errors = IntCounter::new(
            "orderly_outbox_relay_errors_total",
            "Relay runs stopped by the broker (unreachable, refusing, no acknowledgement) or the \
             database; the events stay in the outbox and are published after a backoff.",
        )?;
        let lag = Gauge::new(
            "orderly_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest event not yet published (0 when none): the relay's lag.",
        )?;
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        Ok(Self { published, errors, lag })
    }
}

/// What the relay task needs.
pub struct Relay {
    /// The use case; `None` without `NATS_URL` (events are kept, then purged, not published).
    pub relay: Option<RelayEvents>,
    pub outbox: Arc<dyn Outbox>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Option<RelayMetrics>,
    pub retention: Duration,
    pub poll_interval: Duration,
}

impl Relay {
    /// Starts the task.
    #[must_use]
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut backoff = self.poll_interval;
        let mut next_housekeeping = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            if tokio::time::Instant::now() >= next_housekeeping {
                self.housekeep().await;
                next_housekeeping = tokio::time::Instant::now() + HOUSEKEEPING_EVERY;
            }
            let Some(relay) = &self.relay else {
                tokio::time::sleep(HOUSEKEEPING_EVERY).await;
                continue;
            };
            let outcome = relay.execute().await;
            let failure = match &outcome {
                Ok(report) => {
                    if let Some(metrics) = &self.metrics {
                        for event_type in &report.published {
                            metrics.published.with_label_values(&[event_type]).inc();
                        }
                    }
                    report.failed.clone()
                }
                Err(error) => Some(format!("{error:#}")),
            };
            if let Some(why) = failure {
                if let Some(metrics) = &self.metrics {
                    metrics.errors.inc();
                }
                if !failing {
                    tracing::warn!(error = %why, "the outbox relay cannot publish; the events wait in the outbox and are retried with backoff");
                }
                failing = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if failing {
                tracing::info!("the outbox relay publishes again");
                failing = false;
            }
            backoff = self.poll_interval;
            if !outcome.is_ok_and(|report| report.full) {
                tokio::time::sleep(self.poll_interval).await;
            }
        }
    }

    /// Purges what the retention lets go, and measures the lag.
    async fn housekeep(&self) {
        let purged = match &self.relay {
            Some(relay) => relay.purge(self.retention).await,
            None => {
                let before = retention_cutoff(self.clock.as_ref(), self.retention);
                self.outbox.purge_written_before(before).await
            }
        };
        match purged {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged events past OUTBOX_RETENTION"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "purging the outbox failed; retrying later")
            }
        }
        if let (Some(metrics), Some(_)) = (&self.metrics, &self.relay) {
            match self.outbox.oldest_unpublished().await {
                Ok(oldest) => {
                    let age = oldest.map_or(0.0, |at| {
                        (self.clock.now() - at).num_milliseconds().max(0) as f64 / 1000.0
                    });
                    metrics.lag.set(age);
                }
                Err(error) => {
                    tracing::debug!(error = %format!("{error:#}"), "the outbox lag could not be read")
                }
            }
        }
    }
}
