//! The delivery worker's use case: schedule the outbox's new events for the endpoints that want
//! them, then make the attempts that are due, several at once, and record what each came to
//! on the delivery (the retry schedule) and on its endpoint (failing since when; disabled after
//! a 410 or five days of failures).

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream};
use orderly_domain::{
    AttemptOutcome, DeliveryStatus, DisabledReason, WebhookEndpoint, WebhookEndpointId,
    time::TimeDelta,
};

use super::ports::{
    DeliveryQueue, DueDelivery, SendOutcome, WebhookMessage, WebhookSender, WebhookStore,
    WebhookWriteError,
};
use crate::{StoreError, WRITE_ATTEMPTS, ports::Clock};

/// How many events one run schedules, and how many due deliveries it claims.
pub const DELIVERY_BATCH: u32 = 50;
/// How many attempts run at once.
pub const CONCURRENT_ATTEMPTS: usize = 16;
/// How long a claimed delivery is kept from other workers: longer than an attempt may take.
pub const LEASE: Duration = Duration::from_secs(60);

/// What one attempt came to, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The receiver took it.
    Succeeded,
    /// It failed and will be tried again.
    Retrying,
    /// It failed for good (retries exhausted, 410, endpoint disabled).
    Failed,
}

impl Attempted {
    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Events scheduled for delivery.
    pub scheduled: u32,
    /// The attempts made, by outcome.
    pub attempts: Vec<Attempted>,
    /// Endpoints this run disabled, and why.
    pub disabled: Vec<(WebhookEndpointId, DisabledReason)>,
    /// Whether a batch came full (more is probably waiting: run again at once).
    pub full: bool,
}

/// The use case.
#[derive(Clone)]
pub struct DeliverWebhooks {
    queue: Arc<dyn DeliveryQueue>,
    store: Arc<dyn WebhookStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
}

impl DeliverWebhooks {
    #[must_use]
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        store: Arc<dyn WebhookStore>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { queue, store, sender, clock }
    }

    /// Schedules new events, then attempts the deliveries due now.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails. A delivery claimed but not recorded is attempted
    /// again once its lease ends (receivers deduplicate by `webhook-id`).
    pub async fn execute(&self) -> Result<DeliveryReport, StoreError> {
        let now = self.clock.now();
        let scheduled = self.queue.fan_out(DELIVERY_BATCH, now).await?;
        let lease = TimeDelta::from_std(LEASE).unwrap_or_default();
        let due = self.queue.claim_due(DELIVERY_BATCH, now, now + lease).await?;
        let full = scheduled >= DELIVERY_BATCH
            || u32::try_from(due.len()).is_ok_and(|claimed| claimed >= DELIVERY_BATCH);
        let results: Vec<_> = stream::iter(due)
            .map(|due| self.attempt(due))
            .buffer_unordered(CONCURRENT_ATTEMPTS)
            .collect()
            .await;
        let mut report = DeliveryReport { scheduled, full, ..DeliveryReport::default() };
        let mut failure = None;
        for result in results {
            match result {
                Ok((attempted, disabled)) => {
                    report.attempts.push(attempted);
                    report.disabled.extend(disabled);
                }
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            Some(error) if report.attempts.is_empty() => Err(error),
            Some(error) => {
                tracing::warn!(error = %format!("{error:#}"), "recording a webhook attempt failed; it is attempted again after its lease");
                Ok(report)
            }
            None => Ok(report),
        }
    }

    async fn attempt(
        &self,
        due: DueDelivery,
    ) -> Result<(Attempted, Option<(WebhookEndpointId, DisabledReason)>), StoreError> {
        let DueDelivery { mut delivery, endpoint } = due;
        let now = self.clock.now();
        let message = WebhookMessage {
            url: endpoint.url().clone(),
            id: delivery.parts().event_id,
            timestamp: now,
            body: delivery.parts().payload.clone(),
            secrets: endpoint.signing_secrets(now),
        };
        let outcome = match self.sender.send(&message).await {
            SendOutcome::Answered { status, retry_after } => {
                AttemptOutcome::Answered { status, retry_after }
            }
            SendOutcome::Refused(why) => {
                AttemptOutcome::NoAnswer { why: format!("refused: {why}") }
            }
            SendOutcome::Failed(why) => AttemptOutcome::NoAnswer { why },
        };
        let at = self.clock.now();
        let (disabled_now, still_enabled) = self.record_on_endpoint(&endpoint, &outcome).await?;
        delivery.attempted(&outcome, !still_enabled, at);
        self.store.save_delivery(&delivery).await?;
        tracing::info!(
            delivery = %delivery.id(),
            endpoint = %endpoint.id(),
            status = ?delivery.parts().response_status,
            error = delivery.parts().last_error.as_deref().unwrap_or(""),
            attempt = delivery.attempts(),
            "webhook attempt: {}",
            delivery.status().as_str(),
        );
        let attempted = match delivery.status() {
            DeliveryStatus::Succeeded => Attempted::Succeeded,
            DeliveryStatus::Pending => Attempted::Retrying,
            DeliveryStatus::Failed => Attempted::Failed,
        };
        Ok((attempted, disabled_now.map(|reason| (endpoint.id(), reason))))
    }

    /// Records the attempt on its endpoint (re-read, so that concurrent attempts and admins'
    /// changes are kept). Returns the reason if this disabled it, and whether it is enabled.
    async fn record_on_endpoint(
        &self,
        claimed: &WebhookEndpoint,
        outcome: &AttemptOutcome,
    ) -> Result<(Option<DisabledReason>, bool), StoreError> {
        if outcome.is_success() && claimed.failing_since().is_none() {
            return Ok((None, true));
        }
        for _ in 0..WRITE_ATTEMPTS {
            let Some(mut endpoint) = self.store.find(claimed.id()).await? else {
                return Ok((None, false));
            };
            let now = self.clock.now();
            let disabled = if outcome.is_success() {
                endpoint.delivered(now);
                false
            } else {
                endpoint.failed(outcome.is_gone(), now)
            };
            if endpoint.version() == endpoint.stored_version() {
                return Ok((None, endpoint.is_enabled()));
            }
            match self.store.update(&endpoint).await {
                Ok(()) => {
                    let reason = endpoint.disabled_reason().filter(|_| disabled);
                    if let Some(reason) = reason {
                        tracing::warn!(endpoint = %endpoint.id(), reason = reason.as_str(), "webhook endpoint disabled");
                    }
                    return Ok((reason, endpoint.is_enabled()));
                }
                Err(WebhookWriteError::NotFound) => return Ok((None, false)),
                Err(WebhookWriteError::Stale) => {}
                Err(WebhookWriteError::Store(error)) => return Err(error),
            }
        }
        // Others keep changing it; the delivery's own state is what matters now.
        Ok((None, true))
    }
}
