use std::{num::NonZeroU32, time::Duration};

use async_trait::async_trait;

/// A rate-limit policy: at most `quota` requests in a burst, refilled continuously so that
/// `quota` more are allowed per `window` (GCRA, the generic cell rate algorithm: one request
/// every `window / quota` on average, with bursts up to `quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// The policy's name, as clients see it in the `RateLimit-Policy` header (`auth-ip`, ...).
    pub name: String,
    /// Requests allowed in a burst, and per window.
    pub quota: NonZeroU32,
    /// The time in which a spent quota is entirely refilled.
    pub window: Duration,
}

impl RateLimitPolicy {
    /// The average time between two requests: `window / quota` (the GCRA emission interval).
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.window / self.quota.get()
    }
}

/// The outcome of counting one request against a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests still allowed right now after this one (0 when refused).
    pub remaining: u32,
    /// Time until the quota is entirely refilled (the `t` of the `RateLimit` header).
    pub reset: Duration,
    /// When refused: the time until one request is allowed again (`Retry-After`). Zero when
    /// allowed.
    pub retry_after: Duration,
}

/// Counts requests against rate-limit policies, per key (a client address, a user id, an
/// account name). One store per process, or one shared by every instance (Redis).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `key` against `policy` and says whether it may proceed.
    ///
    /// Infallible by contract: an adapter whose store fails follows its documented fallback
    /// (ADR 0012: the in-process store) and logs the failure; it never turns a store failure
    /// into a refusal or an error for the client.
    async fn check(&self, policy: &RateLimitPolicy, key: &str) -> RateLimitDecision;

    /// Whether the shared store (if any) answers, for `GET /ready`. `None` when the limiter
    /// has no external store.
    async fn store_healthy(&self) -> Option<bool>;
}
