//! The two `RateLimiter` adapters (ADR 0012): `InMemoryRateLimiter` counts in this process with
//! `governor`; `RedisRateLimiter` runs the same GCRA atomically in Redis, so every instance
//! shares one limit, and falls back to an embedded `InMemoryRateLimiter` while Redis fails.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_trait::async_trait;
use governor::{
    DefaultKeyedRateLimiter, Quota, clock::Clock as _, middleware::StateInformationMiddleware,
};
use orderly_application::ports::{RateLimitDecision, RateLimitPolicy, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::invalidation::RedisHealth;

/// The key prefix `RedisRateLimiter` is meant to run with outside tests.
pub const DEFAULT_KEY_PREFIX: &str = "orderly:rl";

/// How often the in-process store drops the keys whose quota is entirely refilled.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How long each attempt to connect to Redis may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(300);
/// How long Redis may take to answer one command. Not shorter than the caches' liveness window
/// (ADR 0029): a timeout here marks Redis unhealthy for every Redis user of the process.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(300);
/// The most a request ever waits on Redis, whatever the connection is doing (connecting, loading
/// the script after a `NOSCRIPT`, a server that accepts connections but never answers).
const REDIS_BUDGET: Duration = Duration::from_millis(400);
/// How old the last known health of Redis may be before readiness asks Redis itself (at most
/// once per this period, however often it is asked).
const HEALTH_FRESH_FOR: Duration = Duration::from_secs(1);
/// After a Redis failure, checks go straight to the in-process store for this long.
const BACKOFF: Duration = Duration::from_secs(1);
/// Redis failures are logged at most once per this period; the log line counts the others.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// GCRA for one key, in Redis server time so that every instance agrees. `KEYS[1]` holds the
/// theoretical arrival time (TAT) in microseconds; it expires when the quota would be full
/// again, which is when a missing key means the same thing. `ARGV[1]`: the emission interval in
/// microseconds, `ARGV[2]`: the burst (quota). Returns allowed (0 or 1), remaining, reset (ms)
/// and retry-after (ms).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil((tat - now) / 1000), math.ceil((allow_at - now) / 1000)}
end
local until_full = new_tat - now
-- '%d': a plain number would be written with 14 significant digits, losing the microseconds.
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(until_full / 1000))
return {1, math.floor((tolerance - until_full) / interval), math.ceil(until_full / 1000), 0}
";

/// A rate limiter held in this process: limits hold per instance. One `governor` keyed limiter
/// per policy, created on the policy's first check. Keys whose quota is entirely refilled are
/// dropped by the checks themselves, at most every ten seconds, so memory follows the keys
/// active within one window, not every key ever seen.
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    limiters: Mutex<HashMap<String, Arc<PolicyLimiter>>>,
    sweep: Cooldown,
}

#[derive(Debug)]
struct PolicyLimiter {
    policy: RateLimitPolicy,
    limiter: DefaultKeyedRateLimiter<String, StateInformationMiddleware>,
}

impl InMemoryRateLimiter {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self { limiters: Mutex::new(HashMap::new()), sweep: Cooldown::new() }
    }

    fn decide(&self, policy: &RateLimitPolicy, key: &str) -> RateLimitDecision {
        if self.sweep.try_restart(SWEEP_EVERY) {
            self.forget_refilled_keys();
        }
        let interval = policy.interval();
        let limiter = &self.limiter_for(policy).limiter;
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                RateLimitDecision {
                    allowed: true,
                    remaining,
                    reset: interval * policy.quota.get().saturating_sub(remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(limiter.clock().now());
                RateLimitDecision {
                    allowed: false,
                    remaining: 0,
                    reset: retry_after + interval * (policy.quota.get() - 1),
                    retry_after,
                }
            }
        }
    }

    /// The policy's limiter; a new, empty one when the policy is new or its quota or window
    /// changed.
    fn limiter_for(&self, policy: &RateLimitPolicy) -> Arc<PolicyLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        match limiters.get(&policy.name) {
            Some(limiter) if limiter.policy == *policy => Arc::clone(limiter),
            _ => {
                let limiter = Arc::new(PolicyLimiter::new(policy));
                limiters.insert(policy.name.clone(), Arc::clone(&limiter));
                limiter
            }
        }
    }

    fn forget_refilled_keys(&self) {
        let limiters: Vec<_> = self
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for policy in limiters {
            policy.limiter.retain_recent();
            policy.limiter.shrink_to_fit();
        }
    }
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyLimiter {
    fn new(policy: &RateLimitPolicy) -> Self {
        // `with_period` refuses only a zero period (a window shorter than `quota` nanoseconds),
        // and governor counts any period as at least 1 ns anyway.
        let period = policy.interval().max(Duration::from_nanos(1));
        let quota = Quota::with_period(period).unwrap_or(Quota::per_second(NonZeroU32::MAX));
        Self {
            policy: policy.clone(),
            limiter: governor::RateLimiter::keyed(quota.allow_burst(policy.quota))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, policy: &RateLimitPolicy, key: &str) -> RateLimitDecision {
        self.decide(policy, key)
    }

    async fn store_healthy(&self) -> Option<bool> {
        None
    }
}

/// A rate limiter whose counts live in Redis, shared by every instance of the service.
///
/// Never fails a check (ADR 0012): when Redis errs or takes longer than 400 ms (300 ms for an
/// answer), the check is counted by an embedded `InMemoryRateLimiter` instead (limits then hold
/// per instance), the failure is logged at most every five seconds, and Redis is left alone for
/// one second before the next check tries it again, and for as long as the other Redis users of
/// the process find it failing (ADR 0029).
#[derive(Debug)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    fallback: InMemoryRateLimiter,
    redis_retry: Cooldown,
    failure_log: Cooldown,
    unlogged_failures: AtomicU64,
    /// The health of Redis shared with the caches of this process (ADR 0029).
    health: Arc<RedisHealth>,
    /// Throttles readiness's own `PING`s to one per [`HEALTH_FRESH_FOR`].
    probe: Cooldown,
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`), storing its keys under
    /// `<prefix>:<policy name>:<key>` ([`DEFAULT_KEY_PREFIX`] outside tests).
    ///
    /// Redis need not be up: the connection is made lazily and remade in the background after a
    /// failure. `connect` tries it once, for at most 400 ms, so that the first request does not
    /// pay for connecting; if that fails it logs the failure and the limiter starts on its
    /// fallback.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid Redis URL, or asks for TLS (`rediss://`), which this build
    /// does not include.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("invalid Redis URL for the rate limiter")?;
        // No retries inside the manager: a failed attempt falls back at once, and the limiter's
        // own back-off decides when Redis is tried again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .context("cannot set up the Redis connection for the rate limiter")?;
        let health = RedisHealth::of(url);
        let limiter = Self {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.into(),
            fallback: InMemoryRateLimiter::new(),
            redis_retry: Cooldown::new(),
            failure_log: Cooldown::new(),
            unlogged_failures: AtomicU64::new(0),
            health,
            probe: Cooldown::new(),
        };
        limiter.probe.restart(HEALTH_FRESH_FOR);
        if let Err(error) = limiter.ping().await {
            limiter.record_failure(&error);
        }
        Ok(limiter)
    }

    async fn check_in_redis(
        &self,
        policy: &RateLimitPolicy,
        key: &str,
    ) -> anyhow::Result<RateLimitDecision> {
        let interval_us = u64::try_from(policy.interval().as_micros()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}:{}:{key}", self.prefix, policy.name))
            .arg(interval_us)
            .arg(policy.quota.get());
        let (allowed, remaining, reset_ms, retry_after_ms): (bool, u32, u64, u64) =
            within_budget(invocation.invoke_async(&mut connection)).await?;
        Ok(RateLimitDecision {
            allowed,
            remaining,
            reset: Duration::from_millis(reset_ms),
            retry_after: Duration::from_millis(retry_after_ms),
        })
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut connection = self.connection.clone();
        let answered = within_budget(redis::cmd("PING").query_async::<()>(&mut connection)).await;
        self.health.report(answered.is_ok());
        answered
    }

    /// Whether a check should ask Redis: not during the back-off after its own failure, nor
    /// while another Redis user of this process has just found Redis failing or hanging (then
    /// requests do not wait on it at all).
    fn redis_worth_asking(&self) -> bool {
        self.redis_retry.is_over()
            && (self.health.is_healthy()
                || self.health.reported_ago().is_none_or(|ago| ago >= BACKOFF))
    }

    fn record_failure(&self, error: &anyhow::Error) {
        self.redis_retry.restart(BACKOFF);
        let unlogged = self.unlogged_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.failure_log.try_restart(LOG_EVERY) {
            self.unlogged_failures.fetch_sub(unlogged, Ordering::Relaxed);
            tracing::error!(
                error = %format!("{error:#}"),
                failures = unlogged,
                "the Redis rate-limit store failed; counting in this process until it answers"
            );
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, policy: &RateLimitPolicy, key: &str) -> RateLimitDecision {
        if self.redis_worth_asking() {
            match self.check_in_redis(policy, key).await {
                Ok(decision) => {
                    self.health.report(true);
                    return decision;
                }
                Err(error) => {
                    self.health.report(false);
                    self.record_failure(&error);
                }
            }
        }
        self.fallback.decide(policy, key)
    }

    /// The last known health of Redis, as any Redis user of this process last found it (ADR
    /// 0029): no round trip per call, so that a flood of scrapes does not become a flood of
    /// `PING`s. When nothing reported for [`HEALTH_FRESH_FOR`], one caller per period asks Redis
    /// (for at most 400 ms).
    async fn store_healthy(&self) -> Option<bool> {
        let stale = self.health.reported_ago().is_none_or(|ago| ago >= HEALTH_FRESH_FOR);
        if stale && self.probe.try_restart(HEALTH_FRESH_FOR) {
            return Some(self.ping().await.is_ok());
        }
        Some(self.health.is_healthy())
    }
}

/// Runs a Redis call for at most [`REDIS_BUDGET`].
async fn within_budget<T>(call: impl Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(REDIS_BUDGET, call)
        .await
        .with_context(|| format!("Redis did not answer within {REDIS_BUDGET:?}"))?
        .context("Redis refused or failed the call")
}

/// A lock-free "not before" instant: what the back-off, the log throttle and the sweep need.
#[derive(Debug)]
struct Cooldown {
    origin: Instant,
    /// Milliseconds after `origin` before which the cooldown is running.
    until_ms: AtomicU64,
}

impl Cooldown {
    /// A cooldown that is already over.
    fn new() -> Self {
        Self { origin: Instant::now(), until_ms: AtomicU64::new(0) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_over(&self) -> bool {
        self.now_ms() >= self.until_ms.load(Ordering::Relaxed)
    }

    /// Runs the cooldown for `period` from now.
    fn restart(&self, period: Duration) {
        let until = self.now_ms().saturating_add(millis(period));
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// When the cooldown is over, restarts it for `period` and says `true`; of several callers
    /// at once, only one gets `true`.
    fn try_restart(&self, period: Duration) -> bool {
        let now = self.now_ms();
        let until = self.until_ms.load(Ordering::Relaxed);
        now >= until
            && self
                .until_ms
                .compare_exchange(
                    until,
                    now.saturating_add(millis(period)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, quota: u32, window: Duration) -> RateLimitPolicy {
        RateLimitPolicy {
            name: name.to_owned(),
            quota: NonZeroU32::new(quota).expect("a non-zero quota"),
            window,
        }
    }

    /// Counts `n` requests of `key`, returning the decisions.
    async fn check_n(
        limiter: &dyn RateLimiter,
        policy: &RateLimitPolicy,
        key: &str,
        n: usize,
    ) -> Vec<RateLimitDecision> {
        let mut decisions = Vec::with_capacity(n);
        for _ in 0..n {
            decisions.push(limiter.check(policy, key).await);
        }
        decisions
    }

    /// The behaviour both adapters share: a burst of `quota`, then a refusal for about one
    /// interval. The window is long (interval 1 s) so that a slow machine cannot blur it.
    async fn a_burst_of_quota_passes_then_one_interval_must_pass(limiter: &dyn RateLimiter) {
        let policy = policy("burst", 3, Duration::from_secs(3));
        let decisions = check_n(limiter, &policy, "client", 4).await;

        let allowed: Vec<_> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false], "{decisions:#?}");
        let remaining: Vec<_> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0], "{decisions:#?}");
        for decision in &decisions[..3] {
            assert_eq!(decision.retry_after, Duration::ZERO, "{decision:?}");
        }
        let refused = decisions[3];
        let interval = policy.interval();
        assert!(
            refused.retry_after > interval / 2 && refused.retry_after <= interval,
            "retry-after should be about one interval ({interval:?}): {refused:?}"
        );
        assert!(
            refused.reset > policy.window / 2 && refused.reset <= policy.window,
            "reset should be about one window ({:?}): {refused:?}",
            policy.window
        );
    }

    async fn keys_and_policies_are_counted_apart(limiter: &dyn RateLimiter) {
        let login = policy("login", 2, Duration::from_secs(60));
        let signup = policy("signup", 2, Duration::from_secs(60));
        let spent = check_n(limiter, &login, "alice", 3).await;
        assert!(!spent[2].allowed, "the third request of alice should be refused: {spent:?}");

        let bob = limiter.check(&login, "bob").await;
        assert!(bob.allowed && bob.remaining == 1, "bob has his own quota: {bob:?}");
        let other_policy = limiter.check(&signup, "alice").await;
        assert!(
            other_policy.allowed && other_policy.remaining == 1,
            "alice has a separate quota per policy: {other_policy:?}"
        );
    }

    async fn a_spent_quota_refills_within_one_window(limiter: &dyn RateLimiter) {
        let policy = policy("refill", 2, Duration::from_millis(200));
        let spent = check_n(limiter, &policy, "client", 3).await;
        assert!(!spent[2].allowed, "the quota should be spent: {spent:?}");

        tokio::time::sleep(policy.window + Duration::from_millis(100)).await;
        let refilled = check_n(limiter, &policy, "client", 2).await;
        assert!(refilled.iter().all(|d| d.allowed), "{refilled:?}");
        assert_eq!(refilled[0].remaining, 1, "the whole quota should be back: {refilled:?}");
    }

    mod in_memory {
        use super::*;

        #[tokio::test]
        async fn a_burst_of_quota_is_allowed_then_refused_for_about_one_interval() {
            a_burst_of_quota_passes_then_one_interval_must_pass(&InMemoryRateLimiter::new()).await;
        }

        #[tokio::test]
        async fn different_keys_and_policies_are_independent() {
            keys_and_policies_are_counted_apart(&InMemoryRateLimiter::new()).await;
        }

        #[tokio::test]
        async fn a_spent_quota_is_refilled_after_the_window() {
            a_spent_quota_refills_within_one_window(&InMemoryRateLimiter::new()).await;
        }

        #[tokio::test]
        async fn a_policy_whose_quota_changes_starts_afresh_with_the_new_quota() {
            let limiter = InMemoryRateLimiter::new();
            let before = policy("search", 1, Duration::from_secs(60));
            let after = policy("search", 5, Duration::from_secs(60));
            assert!(limiter.check(&before, "client").await.allowed);

            let decision = limiter.check(&after, "client").await;
            assert!(decision.allowed && decision.remaining == 4, "{decision:?}");
        }

        #[tokio::test]
        async fn keys_whose_quota_is_refilled_are_forgotten() {
            let limiter = InMemoryRateLimiter::new();
            let policy = policy("sweep", 2, Duration::from_millis(100));
            limiter.check(&policy, "idle").await;
            let live_keys = || limiter.limiter_for(&policy).limiter.len();
            assert_eq!(live_keys(), 1);

            tokio::time::sleep(policy.window + Duration::from_millis(50)).await;
            limiter.forget_refilled_keys();
            assert_eq!(live_keys(), 0);
        }

        #[tokio::test]
        async fn it_has_no_shared_store_to_report_on() {
            assert_eq!(InMemoryRateLimiter::new().store_healthy().await, None);
        }
    }

    mod redis_store {
        use std::{
            io,
            net::{TcpListener, TcpStream},
            thread,
        };

        use super::*;

        fn redis_url() -> String {
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
        }

        /// A prefix of its own for each test, so tests never see each other's keys.
        fn test_prefix() -> String {
            format!("orderly-test:rl:{:016x}", getrandom::u64().expect("random bytes"))
        }

        /// A limiter on the test Redis, which must answer: a missing Redis fails the test.
        async fn limiter(prefix: &str) -> RedisRateLimiter {
            let limiter =
                RedisRateLimiter::connect(&redis_url(), prefix).await.expect("a valid Redis URL");
            assert_eq!(
                limiter.store_healthy().await,
                Some(true),
                "Redis must answer at TEST_REDIS_URL ({})",
                redis_url()
            );
            limiter
        }

        /// The TTL of a key in the test Redis, read directly: proof that a decision was
        /// counted there rather than by the fallback.
        async fn pttl(key: &str) -> i64 {
            let client = redis::Client::open(redis_url()).expect("a valid Redis URL");
            let mut connection =
                client.get_multiplexed_async_connection().await.expect("Redis answers");
            redis::cmd("PTTL").arg(key).query_async(&mut connection).await.expect("PTTL")
        }

        #[tokio::test]
        async fn a_burst_of_quota_is_allowed_then_refused_for_about_one_interval() {
            let prefix = test_prefix();
            a_burst_of_quota_passes_then_one_interval_must_pass(&limiter(&prefix).await).await;

            let ttl = pttl(&format!("{prefix}:burst:client")).await;
            assert!(ttl > 0 && ttl <= 3000, "the TAT expires when the quota is full: {ttl} ms");
        }

        #[tokio::test]
        async fn different_keys_and_policies_are_independent() {
            let prefix = test_prefix();
            keys_and_policies_are_counted_apart(&limiter(&prefix).await).await;

            for key in ["login:alice", "login:bob", "signup:alice"] {
                assert!(pttl(&format!("{prefix}:{key}")).await > 0, "{key} is stored in Redis");
            }
        }

        #[tokio::test]
        async fn a_spent_quota_is_refilled_after_the_window() {
            let prefix = test_prefix();
            a_spent_quota_refills_within_one_window(&limiter(&prefix).await).await;

            assert!(pttl(&format!("{prefix}:refill:client")).await > 0);
        }

        #[tokio::test]
        async fn two_instances_share_one_limit() {
            let prefix = test_prefix();
            let (first, second) = (limiter(&prefix).await, limiter(&prefix).await);
            let policy = policy("shared", 5, Duration::from_secs(60));

            let mut decisions = check_n(&first, &policy, "client", 3).await;
            decisions.extend(check_n(&second, &policy, "client", 3).await);

            let allowed = decisions.iter().filter(|d| d.allowed).count();
            assert_eq!(allowed, 5, "{decisions:#?}");
            assert!(!decisions[5].allowed, "the sixth request is the one refused");
        }

        #[tokio::test]
        async fn an_unreachable_redis_falls_back_to_limits_in_this_process_quickly() {
            let started = Instant::now();
            let limiter = RedisRateLimiter::connect("redis://127.0.0.1:1", test_prefix())
                .await
                .expect("connect does not need Redis");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "connect took {:?}",
                started.elapsed()
            );

            let policy = policy("fallback", 2, Duration::from_secs(60));
            for expected in [true, true, false] {
                let started = Instant::now();
                let decision = limiter.check(&policy, "client").await;
                let took = started.elapsed();
                assert!(took < Duration::from_millis(300), "a check took {took:?}");
                assert_eq!(decision.allowed, expected, "{decision:?}");
            }

            // Once the back-off is over, the check tries Redis again, fails, and still answers.
            tokio::time::sleep(BACKOFF + Duration::from_millis(100)).await;
            let started = Instant::now();
            let decision = limiter.check(&policy, "client").await;
            assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
            assert!(!decision.allowed, "the fallback still counts: {decision:?}");

            let started = Instant::now();
            assert_eq!(limiter.store_healthy().await, Some(false));
            assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        }

        #[tokio::test]
        async fn the_limiter_uses_redis_again_once_it_answers() {
            let redis = redis_url();
            let redis_address = match redis::Client::open(redis.as_str())
                .expect("a valid Redis URL")
                .get_connection_info()
                .addr()
            {
                redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
                other => panic!("this test needs a TCP Redis URL, not {other:?}"),
            };
            // A port that refuses connections until the proxy below starts listening on it.
            let proxy_address = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .to_string();
            assert!(redis.contains(&redis_address), "{redis} should spell {redis_address}");
            let proxied_url = redis.replacen(&redis_address, &proxy_address, 1);

            let prefix = test_prefix();
            let recovering = RedisRateLimiter::connect(&proxied_url, prefix.as_str())
                .await
                .expect("connect does not need Redis");
            assert_eq!(recovering.store_healthy().await, Some(false));

            let listener = TcpListener::bind(&proxy_address).expect("the proxy's port is free");
            thread::spawn(move || forward_to(&listener, &redis_address));

            // Each round spends a fresh key's quota of 1 in Redis directly; the recovering
            // limiter is refused that key only if it counts in Redis (its fallback has never
            // seen the key).
            let direct = limiter(&prefix).await;
            let policy = policy("recovery", 1, Duration::from_secs(60));
            let deadline = Instant::now() + Duration::from_secs(5);
            for round in 0.. {
                let key = format!("key-{round}");
                assert!(direct.check(&policy, &key).await.allowed);
                if !recovering.check(&policy, &key).await.allowed {
                    break;
                }
                assert!(Instant::now() < deadline, "the limiter never went back to Redis");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(recovering.store_healthy().await, Some(true));
        }

        /// Forwards every connection accepted on `listener` to `target`, both ways.
        fn forward_to(listener: &TcpListener, target: &str) {
            for client in listener.incoming() {
                let client = client.expect("an accepted connection");
                let server = TcpStream::connect(target).expect("Redis accepts the connection");
                let (mut client_in, mut server_out) =
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                thread::spawn(move || io::copy(&mut client_in, &mut server_out));
                let (mut server_in, mut client_out) = (server, client);
                thread::spawn(move || io::copy(&mut server_in, &mut client_out));
            }
        }
    }
}
