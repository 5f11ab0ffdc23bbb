//! The webhook delivery worker's background task (ADR 0034): schedules the outbox's new events
//! for the endpoints that want them and makes the attempts that are due, run after run (at once
//! while batches come full, every `OUTBOX_POLL_INTERVAL` otherwise), backing off while the
//! database fails; purges finished deliveries older than `OUTBOX_RETENTION`. Safe on several
//! instances (claims are leases that other workers skip).

use std::{sync::Arc, time::Duration};

use orderly_application::{
    events::retention_cutoff,
    ports::Clock,
    webhooks::{DeliveryQueue, deliver::DeliverWebhooks},
};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::task::JoinHandle;

/// The longest wait between two tries while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often finished deliveries past the retention are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// The worker's series.
#[derive(Clone)]
pub struct DeliveryMetrics {
    attempts: IntCounterVec,
    disabled: IntCounterVec,
    errors: IntCounter,
}

impl DeliveryMetrics {
    /// Registers `orderly_webhook_deliveries_total{outcome}`,
    /// `orderly_webhook_endpoints_disabled_total{reason}` and
    /// `orderly_webhook_worker_errors_total`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let attempts = IntCounterVec::new(
            Opts::new(
                "orderly_webhook_deliveries_total",
                "Webhook delivery attempts by outcome: succeeded (2xx), retrying (failed, tried \
                 again later), failed (retries exhausted, 410, or the endpoint disabled).",
            ),
            &["outcome"],
        )?;
        let disabled = IntCounterVec::new(
            Opts::new(
                "orderly_webhook_endpoints_disabled_total",
                "Webhook endpoints disabled by delivery: gone (answered 410) or failing (five \
                 days of failed deliveries).",
            ),
            &["reason"],
        )?;
        let errors = IntCounter::new(
            "orderly_webhook_worker_errors_total",
            "Webhook worker runs stopped by the database; deliveries wait and are retried.",
        )?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(disabled.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        for outcome in ["succeeded", "retrying", "failed"] {
            attempts.with_label_values(&[outcome]);
        }
        for reason in ["gone", "failing"] {
            disabled.with_label_values(&[reason]);
        }
        Ok(Self { attempts, disabled, errors })
    }
}

/// What the worker task needs.
pub struct DeliveryWorker {
    pub deliver: DeliverWebhooks,
    pub queue: Arc<dyn DeliveryQueue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Option<DeliveryMetrics>,
    pub retention: Duration,
    pub poll_interval: Duration,
}

impl DeliveryWorker {
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
            match self.deliver.execute().await {
                Ok(report) => {
                    if let Some(metrics) = &self.metrics {
                        for attempted in &report.attempts {
                            metrics.attempts.with_label_values(&[attempted.as_str()]).inc();
                        }
                        for (_, reason) in &report.disabled {
                            metrics.disabled.with_label_values(&[reason.as_str()]).inc();
                        }
                    }
                    if failing {
                        tracing::info!("the webhook worker reaches the database again");
                        failing = false;
                    }
                    backoff = self.poll_interval;
                    if !report.full {
                        tokio::time::sleep(self.poll_interval).await;
                    }
                }
                Err(error) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.errors.inc();
                    }
                    if !failing {
                        tracing::warn!(error = %format!("{error:#}"), "the webhook worker cannot reach the database; deliveries wait and are retried with backoff");
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn housekeep(&self) {
        let before = retention_cutoff(self.clock.as_ref(), self.retention);
        match self.queue.purge_finished(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged webhook deliveries past OUTBOX_RETENTION"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "purging webhook deliveries failed; retrying later")
            }
        }
    }
}
