//! Webhooks: HTTP endpoints that admins register to receive the events (`event`) they choose,
//! signed per Standard Webhooks, and the deliveries of those events with their retries.
//!
//! An endpoint owns its state: its URL, the event types it wants, whether it is enabled and why
//! not, its signing secret (and, for a day after a rotation, the one before), and since when it
//! has been failing. A delivery owns its attempts: the retry schedule ([`RETRY_SCHEDULE`]), the
//! `Retry-After` a receiver asked for, and when it gives up.

use std::time::Duration;

use crate::{EventType, id::typed_id, time::Timestamp};

typed_id!(
    /// Identifies a [`WebhookEndpoint`].
    WebhookEndpointId
);

typed_id!(
    /// Identifies a [`WebhookDelivery`].
    WebhookDeliveryId
);

/// Longest endpoint URL, in characters.
pub const WEBHOOK_URL_MAX_LEN: usize = 2048;

/// How long the secret before a rotation keeps signing deliveries beside the new one, so that
/// receivers can switch without refusing a delivery.
pub const PREVIOUS_SECRET_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// An endpoint whose deliveries have all failed for this long is disabled.
pub const DISABLE_AFTER_FAILING_FOR: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// When each attempt of a delivery is made, counted from the failure of the attempt before (the
/// first at once): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. After the last, the
/// delivery has failed.
pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
];

/// The longest wait a receiver's `Retry-After` can ask for: the schedule's longest step.
pub const MAX_RETRY_AFTER: Duration = RETRY_SCHEDULE[RETRY_SCHEDULE.len() - 1];

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookUrl {
    /// Empty, or longer than [`WEBHOOK_URL_MAX_LEN`].
    #[error("url must be 1 to {WEBHOOK_URL_MAX_LEN} characters long")]
    Length,
    /// Not an absolute `http://` or `https://` URL with a host, or with white space, control
    /// characters, an `@` (credentials) or a `#` (a fragment).
    #[error(
        "url must be an absolute http:// or https:// URL with a host, without credentials, \
         fragment or white space"
    )]
    Shape,
}

impl crate::RuleError for InvalidWebhookUrl {
    fn code(&self) -> &'static str {
        match self {
            Self::Length => crate::rule::LENGTH,
            Self::Shape => crate::rule::PATTERN,
        }
    }
}

/// Where deliveries are sent: an absolute `http://` or `https://` URL with a host and no
/// credentials (they would be stored and shown) or fragment (never sent). Whether its host may
/// be reached is decided by the outbound guard, which resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Parses a URL, exactly as given (no trimming: a URL is not prose).
    ///
    /// # Errors
    /// [`InvalidWebhookUrl`] naming the rule broken.
    pub fn parse(url: &str) -> Result<Self, InvalidWebhookUrl> {
        if url.is_empty() || url.chars().count() > WEBHOOK_URL_MAX_LEN {
            return Err(InvalidWebhookUrl::Length);
        }
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let rest = if lower.starts_with("https://") {
            &url[8..]
        } else if lower.starts_with("http://") {
            &url[7..]
        } else {
            return Err(InvalidWebhookUrl::Shape);
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let shaped = !authority.is_empty()
            && !authority.starts_with(':')
            && !url.contains(['@', '#'])
            // U+FEFF too: the schema's pattern states this rule with ECMA-262's `\s`.
            && !url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}');
        if shaped { Ok(Self(url.to_owned())) } else { Err(InvalidWebhookUrl::Shape) }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a list of event types was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownEventType {
    /// A name that is not an event type of the catalogue.
    #[error("`{0}` is not an event type (see docs/events.md)")]
    Unknown(String),
    /// More names than the catalogue has types.
    #[error("at most {} event types may be listed", EventType::ALL.len())]
    TooMany,
}

impl crate::RuleError for UnknownEventType {
    fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => crate::rule::ONE_OF,
            Self::TooMany => crate::rule::LENGTH,
        }
    }
}

/// The event types an endpoint receives: the listed ones, or every type when none is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter(Vec<EventType>);

impl EventFilter {
    /// Every type, those added to the catalogue later included.
    #[must_use]
    pub const fn all() -> Self {
        Self(Vec::new())
    }

    /// The types named, each once, in catalogue order; none named means all.
    ///
    /// # Errors
    /// [`UnknownEventType`] for the first name that is not in the catalogue, or when more
    /// names are given than the catalogue has types.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownEventType> {
        let mut types = Vec::new();
        for name in names {
            if types.len() == EventType::ALL.len() {
                return Err(UnknownEventType::TooMany);
            }
            let event_type =
                EventType::parse(name).ok_or_else(|| UnknownEventType::Unknown(name.to_owned()))?;
            types.push(event_type);
        }
        Ok(Self::of(types))
    }

    /// The given types, each once, in catalogue order.
    #[must_use]
    pub fn of(types: impl IntoIterator<Item = EventType>) -> Self {
        let wanted: Vec<EventType> = types.into_iter().collect();
        Self(EventType::ALL.into_iter().filter(|t| wanted.contains(t)).collect())
    }

    /// Whether an event of `event_type` goes to the endpoint.
    #[must_use]
    pub fn matches(&self, event_type: EventType) -> bool {
        self.0.is_empty() || self.0.contains(&event_type)
    }

    /// The types listed (empty: all).
    #[must_use]
    pub fn types(&self) -> &[EventType] {
        &self.0
    }
}

/// A signing secret: `whsec_` and the base64 of its random bytes (Standard Webhooks). Its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret as made by the secret generator or read back from the store.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, to sign with or to show once to the admin who made it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// An admin disabled it.
    Manual,
    /// It answered 410 Gone.
    Gone,
    /// Its deliveries failed for [`DISABLE_AFTER_FAILING_FOR`].
    Failing,
}

impl DisabledReason {
    /// Its name on the wire and in the store.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }

    /// The reason named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Manual, Self::Gone, Self::Failing].into_iter().find(|reason| reason.as_str() == name)
    }
}

/// What an admin registers.
#[derive(Debug, Clone)]
pub struct WebhookEndpointDraft {
    pub url: WebhookUrl,
    pub event_types: EventFilter,
    pub enabled: bool,
}

/// A stored endpoint's parts, for [`WebhookEndpoint::restore`].
#[derive(Debug, Clone)]
pub struct WebhookEndpointParts {
    pub id: WebhookEndpointId,
    pub url: WebhookUrl,
    pub event_types: EventFilter,
    pub disabled: Option<DisabledReason>,
    pub secret: WebhookSecret,
    /// The secret before the last rotation and until when it still signs.
    pub previous_secret: Option<(WebhookSecret, Timestamp)>,
    pub failing_since: Option<Timestamp>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint that receives events.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    parts: WebhookEndpointParts,
    stored_version: u64,
}

impl WebhookEndpoint {
    /// A new endpoint at version 1, signing with `secret`.
    #[must_use]
    pub fn register(draft: WebhookEndpointDraft, secret: WebhookSecret, now: Timestamp) -> Self {
        let WebhookEndpointDraft { url, event_types, enabled } = draft;
        let parts = WebhookEndpointParts {
            id: WebhookEndpointId::new(),
            url,
            event_types,
            disabled: (!enabled).then_some(DisabledReason::Manual),
            secret,
            previous_secret: None,
            failing_since: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        Self { parts, stored_version: 0 }
    }

    /// Rebuilds a stored endpoint.
    #[must_use]
    pub fn restore(parts: WebhookEndpointParts) -> Self {
        let stored_version = parts.version;
        Self { parts, stored_version }
    }

    #[must_use]
    pub fn id(&self) -> WebhookEndpointId {
        self.parts.id
    }
    #[must_use]
    pub fn url(&self) -> &WebhookUrl {
        &self.parts.url
    }
    #[must_use]
    pub fn event_types(&self) -> &EventFilter {
        &self.parts.event_types
    }
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.parts.disabled.is_none()
    }
    /// Why it is disabled (`None` while enabled).
    #[must_use]
    pub fn disabled_reason(&self) -> Option<DisabledReason> {
        self.parts.disabled
    }
    /// The current secret.
    #[must_use]
    pub fn secret(&self) -> &WebhookSecret {
        &self.parts.secret
    }
    /// The secret before the last rotation and until when it signs, even if that has passed.
    #[must_use]
    pub fn previous_secret(&self) -> Option<&(WebhookSecret, Timestamp)> {
        self.parts.previous_secret.as_ref()
    }
    /// Since when every delivery has failed (`None` after a success).
    #[must_use]
    pub fn failing_since(&self) -> Option<Timestamp> {
        self.parts.failing_since
    }
    #[must_use]
    pub fn version(&self) -> u64 {
        self.parts.version
    }
    /// The version the store holds (0 for a new endpoint): what a save replaces.
    #[must_use]
    pub fn stored_version(&self) -> u64 {
        self.stored_version
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.parts.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.parts.updated_at
    }

    /// The secrets a delivery made at `now` is signed with: the current one, and the previous
    /// one within [`PREVIOUS_SECRET_GRACE`] of the rotation.
    #[must_use]
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<WebhookSecret> {
        let mut secrets = vec![self.parts.secret.clone()];
        if let Some((previous, until)) = &self.parts.previous_secret
            && now < *until
        {
            secrets.push(previous.clone());
        }
        secrets
    }

    /// Whether an event of `event_type` that happened at `at` goes to this endpoint: it is
    /// enabled, wants the type, and existed then (an endpoint receives what happens after it is
    /// registered, not the past).
    #[must_use]
    pub fn wants(&self, event_type: EventType, at: Timestamp) -> bool {
        self.is_enabled() && self.parts.event_types.matches(event_type) && at >= self.created_at()
    }

    fn touch(&mut self, now: Timestamp) {
        self.parts.version = self.stored_version + 1;
        self.parts.updated_at = now;
    }

    /// Sends deliveries to `url` from now on.
    pub fn move_to(&mut self, url: WebhookUrl, now: Timestamp) {
        if url != self.parts.url {
            self.parts.url = url;
            self.touch(now);
        }
    }

    /// Receives the events `event_types` selects from now on.
    pub fn subscribe(&mut self, event_types: EventFilter, now: Timestamp) {
        if event_types != self.parts.event_types {
            self.parts.event_types = event_types;
            self.touch(now);
        }
    }

    /// Enables it (forgetting its failures) or disables it, as an admin asks.
    pub fn set_enabled(&mut self, enabled: bool, now: Timestamp) {
        if enabled && !self.is_enabled() {
            self.parts.disabled = None;
            self.parts.failing_since = None;
            self.touch(now);
        } else if !enabled && self.is_enabled() {
            self.parts.disabled = Some(DisabledReason::Manual);
            self.touch(now);
        }
    }

    /// Signs with `secret` from now on, and with the current one beside it for
    /// [`PREVIOUS_SECRET_GRACE`].
    pub fn rotate(&mut self, secret: WebhookSecret, now: Timestamp) {
        let grace = crate::time::TimeDelta::from_std(PREVIOUS_SECRET_GRACE).unwrap_or_default();
        let previous = std::mem::replace(&mut self.parts.secret, secret);
        self.parts.previous_secret = Some((previous, now + grace));
        self.touch(now);
    }

    /// A delivery succeeded at `now`: it is not failing any more.
    pub fn delivered(&mut self, now: Timestamp) {
        if self.parts.failing_since.is_some() {
            self.parts.failing_since = None;
            self.touch(now);
        }
    }

    /// A delivery attempt failed at `now`. Returns whether that disabled the endpoint: it has
    /// been failing for [`DISABLE_AFTER_FAILING_FOR`], or it answered 410 (`gone`).
    pub fn failed(&mut self, gone: bool, now: Timestamp) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let since = *self.parts.failing_since.get_or_insert(now);
        let limit = crate::time::TimeDelta::from_std(DISABLE_AFTER_FAILING_FOR).unwrap_or_default();
        let reason = if gone {
            Some(DisabledReason::Gone)
        } else {
            (now - since >= limit).then_some(DisabledReason::Failing)
        };
        self.parts.disabled = reason;
        self.touch(now);
        reason.is_some()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// An attempt is due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed, the receiver answered 410, or its endpoint was disabled.
    Failed,
}

impl DeliveryStatus {
    /// Its name on the wire and in the store.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// The status named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed].into_iter().find(|s| s.as_str() == name)
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered with `status`, and `retry_after` if it sent one.
    Answered { status: u16, retry_after: Option<Duration> },
    /// No answer: refused by the outbound guard, unreachable, timed out (`why`).
    NoAnswer { why: String },
}

impl AttemptOutcome {
    /// Whether the receiver took the event (2xx).
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Answered { status, .. } if (200..300).contains(status))
    }

    /// Whether the receiver said the endpoint is gone for good (410).
    #[must_use]
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Answered { status: 410, .. })
    }
}

/// A stored delivery's parts, for [`WebhookDelivery::restore`].
#[derive(Debug, Clone)]
pub struct WebhookDeliveryParts {
    pub id: WebhookDeliveryId,
    pub endpoint_id: WebhookEndpointId,
    /// The event's id: `webhook-id`, the same for every attempt.
    pub event_id: crate::Uuid,
    pub event_type: String,
    /// The body sent (the event's CloudEvents envelope), kept after the outbox forgets it.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed: the schedule's, or one more after each redelivery.
    pub max_attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub response_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    parts: WebhookDeliveryParts,
}

/// How many attempts the schedule allows.
#[allow(clippy::cast_possible_truncation)]
pub const SCHEDULED_ATTEMPTS: u32 = RETRY_SCHEDULE.len() as u32;

/// Longest error kept of an attempt, in characters.
pub const LAST_ERROR_MAX_LEN: usize = 500;

impl WebhookDelivery {
    /// A new delivery of an event to `endpoint_id`, its first attempt due at `now`.
    #[must_use]
    pub fn schedule(
        endpoint_id: WebhookEndpointId,
        event_id: crate::Uuid,
        event_type: String,
        payload: String,
        now: Timestamp,
    ) -> Self {
        Self {
            parts: WebhookDeliveryParts {
                id: WebhookDeliveryId::new(),
                endpoint_id,
                event_id,
                event_type,
                payload,
                status: DeliveryStatus::Pending,
                attempts: 0,
                max_attempts: SCHEDULED_ATTEMPTS,
                next_attempt_at: Some(now),
                last_attempt_at: None,
                response_status: None,
                last_error: None,
                created_at: now,
            },
        }
    }

    /// Rebuilds a stored delivery.
    #[must_use]
    pub fn restore(parts: WebhookDeliveryParts) -> Self {
        Self { parts }
    }

    /// Its parts, for the store.
    #[must_use]
    pub fn parts(&self) -> &WebhookDeliveryParts {
        &self.parts
    }
    #[must_use]
    pub fn id(&self) -> WebhookDeliveryId {
        self.parts.id
    }
    #[must_use]
    pub fn endpoint_id(&self) -> WebhookEndpointId {
        self.parts.endpoint_id
    }
    #[must_use]
    pub fn status(&self) -> DeliveryStatus {
        self.parts.status
    }
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.parts.attempts
    }
    #[must_use]
    pub fn next_attempt_at(&self) -> Option<Timestamp> {
        self.parts.next_attempt_at
    }

    /// Records an attempt made at `now` with `outcome`. A failure is retried after the
    /// schedule's next step, or after the receiver's `Retry-After` when that is longer (up to
    /// [`MAX_RETRY_AFTER`]); a 410, an `endpoint_disabled`, or the last allowed attempt fails
    /// the delivery.
    pub fn attempted(&mut self, outcome: &AttemptOutcome, endpoint_disabled: bool, now: Timestamp) {
        let parts = &mut self.parts;
        parts.attempts = parts.attempts.saturating_add(1);
        parts.last_attempt_at = Some(now);
        match outcome {
            AttemptOutcome::Answered { status, .. } => {
                parts.response_status = Some(*status);
                parts.last_error = None;
            }
            AttemptOutcome::NoAnswer { why } => {
                parts.response_status = None;
                parts.last_error = Some(why.chars().take(LAST_ERROR_MAX_LEN).collect());
            }
        }
        if outcome.is_success() {
            parts.status = DeliveryStatus::Succeeded;
            parts.next_attempt_at = None;
            return;
        }
        let step = usize::try_from(parts.attempts).unwrap_or(usize::MAX);
        let wait = match RETRY_SCHEDULE.get(step) {
            Some(wait) if parts.attempts < parts.max_attempts => {
                let asked = match outcome {
                    AttemptOutcome::Answered { retry_after, .. } => retry_after.unwrap_or_default(),
                    AttemptOutcome::NoAnswer { .. } => Duration::ZERO,
                };
                Some((*wait).max(asked.min(MAX_RETRY_AFTER)))
            }
            // A redelivery past the schedule: retried after its last step.
            None if parts.attempts < parts.max_attempts => Some(MAX_RETRY_AFTER),
            _ => None,
        };
        match wait.filter(|_| !outcome.is_gone() && !endpoint_disabled) {
            Some(wait) => {
                let wait = crate::time::TimeDelta::from_std(wait).unwrap_or_default();
                parts.status = DeliveryStatus::Pending;
                parts.next_attempt_at = Some(now + wait);
            }
            None => {
                parts.status = DeliveryStatus::Failed;
                parts.next_attempt_at = None;
            }
        }
    }

    /// An admin asks for the event again: one more attempt, due at `now`.
    pub fn redeliver(&mut self, now: Timestamp) {
        let parts = &mut self.parts;
        if parts.status != DeliveryStatus::Pending {
            parts.max_attempts = parts.attempts.saturating_add(1);
        }
        parts.status = DeliveryStatus::Pending;
        parts.next_attempt_at = Some(now);
    }

    /// Its endpoint was disabled or deleted: no more attempts.
    pub fn abandon(&mut self, why: &str) {
        if self.parts.status == DeliveryStatus::Pending {
            self.parts.status = DeliveryStatus::Failed;
            self.parts.next_attempt_at = None;
            self.parts.last_error = Some(why.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_timestamp(1_800_000_000 + seconds, 0).expect("valid")
    }

    fn endpoint(now: Timestamp) -> WebhookEndpoint {
        let draft = WebhookEndpointDraft {
            url: WebhookUrl::parse("https://hooks.example.com/orderly").expect("valid"),
            event_types: EventFilter::all(),
            enabled: true,
        };
        WebhookEndpoint::register(draft, WebhookSecret::new("whsec_a".into()), now)
    }

    fn failing(status: u16) -> AttemptOutcome {
        AttemptOutcome::Answered { status, retry_after: None }
    }

    #[test]
    fn urls_must_be_absolute_http_urls_without_credentials_or_fragments() {
        for good in [
            "https://hooks.example.com/x?y=1",
            "http://127.0.0.1:8080/hook",
            "HTTPS://[::1]:9/",
            "https://example.com",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for (bad, error) in [
            ("", InvalidWebhookUrl::Length),
            ("ftp://example.com/", InvalidWebhookUrl::Shape),
            ("https://", InvalidWebhookUrl::Shape),
            ("https:///path", InvalidWebhookUrl::Shape),
            ("https://user:pw@example.com/", InvalidWebhookUrl::Shape),
            ("https://example.com/@x", InvalidWebhookUrl::Shape),
            ("https://:80/", InvalidWebhookUrl::Shape),
            ("https://example.com/#top", InvalidWebhookUrl::Shape),
            ("https://example.com/a b", InvalidWebhookUrl::Shape),
            (" https://example.com/", InvalidWebhookUrl::Shape),
            ("https://example.com/\u{feff}", InvalidWebhookUrl::Shape),
            ("https://example.com/\u{85}", InvalidWebhookUrl::Shape),
            ("example.com/hook", InvalidWebhookUrl::Shape),
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(error), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(WEBHOOK_URL_MAX_LEN));
        assert_eq!(WebhookUrl::parse(&long), Err(InvalidWebhookUrl::Length));
    }

    #[test]
    fn a_filter_lists_known_types_once_and_an_empty_one_takes_all() {
        let filter = EventFilter::parse([
            "orderly.order.paid.v1",
            "orderly.order.placed.v1",
            "orderly.order.paid.v1",
        ])
        .expect("known");
        assert_eq!(filter.types(), [EventType::OrderPlaced, EventType::OrderPaid]);
        assert!(filter.matches(EventType::OrderPaid));
        assert!(!filter.matches(EventType::UserDeleted));
        assert!(EventFilter::all().matches(EventType::UserDeleted));
        assert_eq!(
            EventFilter::parse(["orderly.order.paid.v9"]),
            Err(UnknownEventType::Unknown("orderly.order.paid.v9".into()))
        );
        let too_many = vec!["orderly.order.paid.v1"; EventType::ALL.len() + 1];
        assert_eq!(EventFilter::parse(too_many), Err(UnknownEventType::TooMany));
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_for_a_day() {
        let mut endpoint = endpoint(at(0));
        endpoint.rotate(WebhookSecret::new("whsec_b".into()), at(10));
        let names = |now| {
            endpoint.signing_secrets(now).iter().map(|s| s.expose().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(at(10)), ["whsec_b", "whsec_a"]);
        assert_eq!(names(at(10 + 86_399)), ["whsec_b", "whsec_a"]);
        assert_eq!(names(at(10 + 86_400)), ["whsec_b"]);
        assert_eq!(format!("{:?}", endpoint.secret()), "WebhookSecret(..)");
    }

    #[test]
    fn an_endpoint_failing_for_five_days_is_disabled_and_a_success_resets_the_count() {
        let mut endpoint = endpoint(at(0));
        assert!(!endpoint.failed(false, at(100)));
        endpoint.delivered(at(200));
        assert_eq!(endpoint.failing_since(), None);
        assert!(!endpoint.failed(false, at(300)));
        assert!(!endpoint.failed(false, at(300 + 5 * 86_400 - 1)));
        assert!(endpoint.failed(false, at(300 + 5 * 86_400)));
        assert_eq!(endpoint.disabled_reason(), Some(DisabledReason::Failing));
        assert!(!endpoint.wants(EventType::OrderPaid, at(300 + 5 * 86_400)));
        endpoint.set_enabled(true, at(1_000_000));
        assert!(endpoint.is_enabled() && endpoint.failing_since().is_none());
    }

    #[test]
    fn a_gone_answer_disables_at_once() {
        let mut endpoint = endpoint(at(0));
        assert!(endpoint.failed(true, at(1)));
        assert_eq!(endpoint.disabled_reason(), Some(DisabledReason::Gone));
    }

    #[test]
    fn an_endpoint_wants_what_it_subscribed_to_after_it_was_registered() {
        let mut endpoint = endpoint(at(100));
        assert!(!endpoint.wants(EventType::OrderPaid, at(99)));
        assert!(endpoint.wants(EventType::OrderPaid, at(100)));
        endpoint.subscribe(EventFilter::of([EventType::UserDeleted]), at(101));
        assert!(!endpoint.wants(EventType::OrderPaid, at(102)));
        endpoint.set_enabled(false, at(103));
        assert!(!endpoint.wants(EventType::UserDeleted, at(104)));
    }

    #[test]
    fn failures_follow_the_schedule_then_the_delivery_fails() {
        let mut delivery = WebhookDelivery::schedule(
            WebhookEndpointId::new(),
            crate::Uuid::nil(),
            "orderly.order.paid.v1".into(),
            "{}".into(),
            at(0),
        );
        let mut now = at(0);
        for expected in &RETRY_SCHEDULE[1..] {
            delivery.attempted(&failing(500), false, now);
            let next = delivery.next_attempt_at().expect("retried");
            assert_eq!((next - now).to_std().expect("ahead"), *expected);
            assert_eq!(delivery.status(), DeliveryStatus::Pending);
            now = next;
        }
        delivery.attempted(&failing(500), false, now);
        assert_eq!((delivery.status(), delivery.attempts()), (DeliveryStatus::Failed, 8));
        delivery.redeliver(at(1_000_000));
        assert_eq!(delivery.next_attempt_at(), Some(at(1_000_000)));
        delivery.attempted(&failing(503), false, at(1_000_000));
        assert_eq!(delivery.status(), DeliveryStatus::Failed, "a redelivery is one attempt");
    }

    #[test]
    fn retry_after_lengthens_a_wait_and_a_410_or_success_ends_it() {
        let mut delivery = WebhookDelivery::schedule(
            WebhookEndpointId::new(),
            crate::Uuid::nil(),
            "t".into(),
            "{}".into(),
            at(0),
        );
        let asked =
            AttemptOutcome::Answered { status: 429, retry_after: Some(Duration::from_secs(120)) };
        delivery.attempted(&asked, false, at(0));
        assert_eq!(delivery.next_attempt_at(), Some(at(120)));
        let huge = AttemptOutcome::Answered {
            status: 503,
            retry_after: Some(Duration::from_secs(10 * 86_400)),
        };
        delivery.attempted(&huge, false, at(120));
        assert_eq!(delivery.next_attempt_at(), Some(at(120 + 36_000)), "capped at 10 h");
        delivery.attempted(&failing(410), false, at(40_000));
        assert_eq!(delivery.status(), DeliveryStatus::Failed);
        delivery.redeliver(at(50_000));
        delivery.attempted(&failing(204), false, at(50_000));
        assert_eq!(delivery.status(), DeliveryStatus::Succeeded);
        assert_eq!(delivery.parts().response_status, Some(204));
    }
}
