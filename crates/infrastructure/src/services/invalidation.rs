//! Invalidations between instances through Redis pub/sub, shared by the per-instance caches that
//! must drop an entry everywhere when any instance changes what it holds: the product cache
//! (ADR 0025) and the account cache (ADR 0027); and the health of Redis that every Redis user of
//! an instance shares (ADR 0029).
//!
//! - A change is one `PUBLISH` of `<origin> <id>,<id>,...` on the cache's channel. While Redis
//!   is healthy the writer awaits it for at most [`PUBLISH_TIMEOUT`]; while it is not, the
//!   publish is sent in the background and the writer does not wait at all. An instance skips
//!   its own messages.
//! - Every instance keeps one subscription to the channel and tells its cache (a [`Listener`])
//!   when it is made, what each message names, and when it is lost, so that the cache starts
//!   empty whenever it (re)subscribes.
//! - A subscription that hears nothing cannot tell a quiet channel from a Redis that stopped
//!   answering, so it sends a `PING` every [`PING_EVERY`]: the answer proves that every message
//!   published before the `PING` was sent has been heard. A cache serves only while the last
//!   answered `PING` was sent less than [`LIVENESS`] ago and Redis is healthy
//!   ([`Invalidations::is_live`]); a `PING` unanswered within [`PING_TIMEOUT`] drops the
//!   subscription (and makes it again).
//! - [`RedisHealth`]: one state per Redis URL in the process, which every timed-out or failed
//!   call marks unhealthy and every answered one marks healthy, whoever makes it (a `PING` of a
//!   subscription, a `PUBLISH`, a rate-limit check).
//!
//! Why a write through one instance is never read stale through another when Redis hangs:
//! [`LIVENESS`] is shorter than every timeout that can mark Redis unhealthy. A write whose
//! `PUBLISH` is not answered waits [`PUBLISH_TIMEOUT`]; a write that skips the wait does so
//! because some call timed out, at least [`PING_TIMEOUT`] after Redis stopped answering. Either
//! way the other instances' last answered `PING` is by then older than [`LIVENESS`], so they
//! read the database.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::{FutureExt as _, StreamExt as _};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::AbortHandle;
use uuid::Uuid;

/// How long a write waits for its invalidation to reach Redis (while Redis is healthy) before
/// it gives up. Longer than [`LIVENESS`]: see the module's documentation.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(300);
/// How long making the subscription (connecting, `SUBSCRIBE` and the first `PING`) may take
/// before it is tried again.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between two attempts to (re)subscribe.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// How often a subscription proves that it is live.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(100);
/// How long a subscription's `PING` may go unanswered before the subscription is given up.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(300);
/// A cache serves only while the last `PING` its subscription had answered was sent less than
/// this long ago. Shorter than every timeout that marks Redis unhealthy ([`PING_TIMEOUT`],
/// [`PUBLISH_TIMEOUT`], the rate limiter's).
pub(crate) const LIVENESS: Duration = Duration::from_millis(250);

/// Milliseconds on a monotonic clock of the process.
fn now_ms() -> u64 {
    static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    u64::try_from(ORIGIN.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1)
}

/// The last known health of one Redis, shared by every user of its URL in this process (the
/// rate limiter, the caches' publishers and subscriptions), so that a hang one of them meets
/// stops all of them from waiting on it, and `/metrics` reads it without asking Redis.
#[derive(Debug)]
pub(crate) struct RedisHealth {
    healthy: AtomicBool,
    /// When the last outcome was reported ([`now_ms`]; 0: never).
    reported_ms: AtomicU64,
    url: String,
}

impl RedisHealth {
    /// The health of the Redis at `url`: the same state for every caller in the process while
    /// one of them holds it. Unknown (unhealthy) until a call reports.
    pub(crate) fn of(url: &str) -> Arc<Self> {
        static STATES: std::sync::LazyLock<Mutex<HashMap<String, Weak<RedisHealth>>>> =
            std::sync::LazyLock::new(Mutex::default);
        let mut states = STATES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(health) = states.get(url).and_then(Weak::upgrade) {
            return health;
        }
        states.retain(|_, health| health.strong_count() > 0);
        let health = Arc::new(Self {
            healthy: AtomicBool::new(false),
            reported_ms: AtomicU64::new(0),
            url: redact(url),
        });
        states.insert(url.to_owned(), Arc::downgrade(&health));
        health
    }

    /// Whether the last call to Redis was answered in time.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// How long ago the last outcome was reported; `None` when none was.
    pub(crate) fn reported_ago(&self) -> Option<Duration> {
        match self.reported_ms.load(Ordering::SeqCst) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// Records the outcome of a call: answered in time or not. Logs the changes.
    pub(crate) fn report(&self, answered: bool) {
        self.reported_ms.store(now_ms(), Ordering::SeqCst);
        let was = self.healthy.swap(answered, Ordering::SeqCst);
        if was && !answered {
            tracing::warn!(
                redis = %self.url,
                "Redis failed or did not answer in time: caches bypassed, rate limits per \
                 instance, writes do not wait on it"
            );
        } else if !was && answered {
            tracing::info!(redis = %self.url, "Redis answers");
        }
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

/// A cache that hears invalidations: what the subscriber tells it.
#[async_trait]
pub(crate) trait Listener: Send + Sync + 'static {
    /// The subscription is made (again): messages may have been missed before it, so the cache
    /// starts empty and may serve from now on (while [`Invalidations::is_live`]).
    async fn subscribed(&self);
    /// Another instance changed these ids; `None` for a message that does not parse (drop
    /// everything: better too much than too little).
    async fn received(&self, ids: Option<Vec<Uuid>>);
    /// The subscription is lost (closed, or a `PING` unanswered): until the next
    /// [`Listener::subscribed`], invalidations go unheard, so the cache must not serve.
    async fn lost(&self);
}

/// Which cache the messages are for, as logs name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topic {
    /// "product cache", "account cache".
    pub(crate) name: &'static str,
    /// The setting that bounds a stale entry when a message is lost ("PRODUCT_CACHE_TTL").
    pub(crate) ttl_setting: &'static str,
}

/// One cache's channel: publishes its invalidations and keeps its subscription (stopped when
/// this is dropped).
pub(crate) struct Invalidations {
    topic: Topic,
    client: redis::Client,
    publisher: ConnectionManager,
    channel: String,
    /// This instance, so that it skips its own messages.
    origin: String,
    health: Arc<RedisHealth>,
    /// When the last `PING` the subscription had answered was sent ([`now_ms`]; 0: none yet).
    answered_ping_ms: Arc<AtomicU64>,
    subscriber: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations")
            .field("topic", &self.topic.name)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Drop for Invalidations {
    fn drop(&mut self) {
        if let Some(task) = self.subscriber.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Invalidations {
    /// The channel `channel` on the Redis at `url`. Nothing is connected yet: publishing
    /// connects lazily, and [`Invalidations::listen`] starts the subscription.
    ///
    /// # Errors
    /// When `url` is not a valid Redis URL.
    pub(crate) fn new(topic: Topic, url: &str, channel: impl Into<String>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .with_context(|| format!("invalid Redis URL for the {}", topic.name))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(0);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .with_context(|| {
                format!("cannot set up the Redis connection for the {}", topic.name)
            })?;
        Ok(Self {
            topic,
            client,
            publisher,
            channel: channel.into(),
            origin: Uuid::now_v7().simple().to_string(),
            health: RedisHealth::of(url),
            answered_ping_ms: Arc::new(AtomicU64::new(0)),
            subscriber: Mutex::new(None),
        })
    }

    /// Subscribes on behalf of `listener`, for as long as it lives and this channel is not
    /// dropped: every lost subscription is made again, after [`RESUBSCRIBE_DELAY`].
    pub(crate) fn listen<L: Listener>(&self, listener: Weak<L>) {
        let task = tokio::spawn(subscribe(
            listener,
            Subscription {
                client: self.client.clone(),
                channel: self.channel.clone(),
                origin: self.origin.clone(),
                topic: self.topic,
                health: Arc::clone(&self.health),
                answered_ping_ms: Arc::clone(&self.answered_ping_ms),
            },
        ));
        if let Ok(mut subscriber) = self.subscriber.lock()
            && let Some(previous) = subscriber.replace(task.abort_handle())
        {
            previous.abort();
        }
    }

    /// Whether a cache may serve now: Redis is healthy and the subscription proved, less than
    /// [`LIVENESS`] ago, that it hears every message.
    pub(crate) fn is_live(&self) -> bool {
        let answered = self.answered_ping_ms.load(Ordering::SeqCst);
        answered != 0
            && self.health.is_healthy()
            && now_ms().saturating_sub(answered) < millis(LIVENESS)
    }

    /// Tells the other instances that `ids` changed. Failures are logged, not returned: the
    /// change is stored. While Redis is healthy the call waits for the `PUBLISH` for at most
    /// [`PUBLISH_TIMEOUT`]; while it is not, the `PUBLISH` is sent in the background and the
    /// call returns at once (the other instances do not serve from their caches then).
    pub(crate) async fn publish(&self, ids: impl IntoIterator<Item = Uuid>) {
        let message = encode(&self.origin, ids);
        let publishing = publish(
            self.publisher.clone(),
            self.channel.clone(),
            message,
            Arc::clone(&self.health),
            self.topic,
        );
        if self.health.is_healthy() {
            publishing.await;
        } else {
            tokio::spawn(publishing);
        }
    }
}

/// One `PUBLISH`, for at most [`PUBLISH_TIMEOUT`]; its outcome goes to `health`.
async fn publish(
    mut publisher: ConnectionManager,
    channel: String,
    message: String,
    health: Arc<RedisHealth>,
    topic: Topic,
) {
    let published = tokio::time::timeout(
        PUBLISH_TIMEOUT,
        redis::cmd("PUBLISH").arg(&channel).arg(message).query_async::<u64>(&mut publisher),
    )
    .await;
    health.report(matches!(published, Ok(Ok(_))));
    let Topic { name, ttl_setting } = topic;
    match published {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(
            error = %error,
            "could not publish a {name} invalidation; other instances bypass their cache while \
             Redis fails, or follow within {ttl_setting}"
        ),
        Err(_) => tracing::warn!(
            "publishing a {name} invalidation timed out; other instances bypass their cache \
             while Redis hangs, or follow within {ttl_setting}"
        ),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `<origin> <id>,<id>,...`
fn encode(origin: &str, ids: impl IntoIterator<Item = Uuid>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.simple().to_string()).collect();
    format!("{origin} {}", ids.join(","))
}

/// The ids of a message from another instance (`Err` when one does not parse); `None` for this
/// instance's own messages.
fn decode(origin: &str, message: &str) -> Option<Result<Vec<Uuid>, ()>> {
    let (from, ids) = message.split_once(' ').unwrap_or(("", message));
    if from == origin {
        return None;
    }
    Some(ids.split(',').map(|id| Uuid::parse_str(id).map_err(|_| ())).collect())
}

/// What the subscriber task needs of its [`Invalidations`].
struct Subscription {
    client: redis::Client,
    channel: String,
    origin: String,
    topic: Topic,
    health: Arc<RedisHealth>,
    answered_ping_ms: Arc<AtomicU64>,
}

impl Subscription {
    /// Sends a `PING` and waits at most [`PING_TIMEOUT`] for its answer; on an answer, hands
    /// `listener` every message that came before it, then records the `PING` as answered.
    async fn ping<L: Listener>(
        &self,
        sink: &mut redis::aio::PubSubSink,
        messages: &mut redis::aio::PubSubStream,
        listener: &L,
    ) -> bool {
        let sent = now_ms();
        let answered = matches!(
            tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await,
            Ok(Ok(_))
        );
        self.health.report(answered);
        if answered {
            // The messages before the answer are already queued: hear them before claiming
            // that nothing published before `sent` was missed.
            while let Some(Some(message)) = messages.next().now_or_never() {
                self.deliver(&message, listener).await;
            }
            self.answered_ping_ms.fetch_max(sent, Ordering::SeqCst);
        }
        answered
    }

    async fn deliver<L: Listener>(&self, message: &redis::Msg, listener: &L) {
        let payload: String = message.get_payload().unwrap_or_default();
        if let Some(ids) = decode(&self.origin, &payload) {
            listener.received(ids.ok()).await;
        }
    }

    /// The subscription is not (or no longer) live: no cache serves on its last `PING`.
    fn forget_liveness(&self) {
        self.answered_ping_ms.store(0, Ordering::SeqCst);
    }
}

/// Keeps a subscription for `listener`, for as long as it lives, and proves it live every
/// [`PING_EVERY`].
async fn subscribe<L: Listener>(listener: Weak<L>, subscription: Subscription) {
    let name = subscription.topic.name;
    let channel = subscription.channel.clone();
    loop {
        if listener.strong_count() == 0 {
            return;
        }
        let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
            let mut pubsub = subscription.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub.split())
        })
        .await;
        match subscribed {
            Ok(Ok((mut sink, mut messages))) => {
                let Some(cache) = listener.upgrade() else { return };
                // Live once the first `PING` is answered; the cache starts empty either way.
                let mut live = subscription.ping(&mut sink, &mut messages, &*cache).await;
                cache.subscribed().await;
                tracing::debug!(%channel, "{name} subscribed to invalidations");
                drop(cache);
                let mut ticks = tokio::time::interval(PING_EVERY);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while live {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(cache) = listener.upgrade() else { return };
                            match message {
                                Some(message) => subscription.deliver(&message, &*cache).await,
                                None => live = false,
                            }
                        }
                        _ = ticks.tick() => {
                            let Some(cache) = listener.upgrade() else { return };
                            live = subscription.ping(&mut sink, &mut messages, &*cache).await;
                        }
                    }
                }
                subscription.forget_liveness();
                subscription.health.report(false);
                let Some(cache) = listener.upgrade() else { return };
                cache.lost().await;
                tracing::warn!(
                    "{name} lost its Redis subscription (closed, or a PING unanswered within \
                     {PING_TIMEOUT:?}); bypassed until it is back"
                );
            }
            Ok(Err(error)) => {
                subscription.health.report(false);
                tracing::debug!(error = %error, "{name} cannot subscribe to Redis yet");
            }
            Err(_) => {
                subscription.health.report(false);
                tracing::debug!("subscribing the {name} to Redis timed out");
            }
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_origin_and_ids() {
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let message = encode("me", ids);
        assert_eq!(decode("me", &message), None);
        assert_eq!(decode("other", &message), Some(Ok(ids.to_vec())));
        assert_eq!(decode("other", "x not-a-uuid"), Some(Err(())));
    }

    #[test]
    fn liveness_is_shorter_than_every_timeout_that_marks_redis_unhealthy() {
        assert!(LIVENESS < PING_TIMEOUT && LIVENESS < PUBLISH_TIMEOUT);
        assert!(PING_EVERY < LIVENESS);
    }

    #[test]
    fn one_health_per_url_and_the_last_outcome_wins() {
        let url = format!("redis://health-test-{}:6379", Uuid::now_v7().simple());
        let (first, second) = (RedisHealth::of(&url), RedisHealth::of(&url));
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!first.is_healthy() && first.reported_ago().is_none(), "unknown at first");
        second.report(true);
        assert!(first.is_healthy());
        first.report(false);
        assert!(!second.is_healthy());
        assert_eq!(redact("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
    }
}
