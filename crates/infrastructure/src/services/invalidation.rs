//! Invalidations between instances through Redis pub/sub, shared by the per-instance caches that
//! must drop an entry everywhere when any instance changes what it holds: the product cache
//! (ADR 0025) and the account cache (ADR 0027).
//!
//! - A change is one `PUBLISH` of `<origin> <id>,<id>,...` on the cache's channel, awaited by
//!   the writer for at most [`PUBLISH_TIMEOUT`]; an instance skips its own messages.
//! - Every instance keeps one subscription to the channel and tells its cache (a [`Listener`])
//!   when it is made, what each message names, and when it is lost, so that the cache serves
//!   only while it can hear invalidations and starts empty whenever it (re)subscribes.

use std::{
    sync::{Mutex, Weak},
    time::Duration,
};

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::AbortHandle;
use uuid::Uuid;

/// How long a write waits for its invalidation to reach Redis before it gives up (and leaves
/// the other instances to the cache's TTL).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long making the subscription may take before it is tried again.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two attempts to (re)subscribe.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// A cache that hears invalidations: what the subscriber tells it.
#[async_trait]
pub(crate) trait Listener: Send + Sync + 'static {
    /// The subscription is made (again): messages may have been missed before it, so the cache
    /// starts empty and may serve from now on.
    async fn subscribed(&self);
    /// Another instance changed these ids; `None` for a message that does not parse (drop
    /// everything: better too much than too little).
    async fn received(&self, ids: Option<Vec<Uuid>>);
    /// The subscription is lost: until the next [`Listener::subscribed`], invalidations go
    /// unheard, so the cache must not serve.
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
            .set_number_of_retries(1);
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
            subscriber: Mutex::new(None),
        })
    }

    /// Subscribes on behalf of `listener`, for as long as it lives and this channel is not
    /// dropped: every lost subscription is made again, after [`RESUBSCRIBE_DELAY`].
    pub(crate) fn listen<L: Listener>(&self, listener: Weak<L>) {
        let task = tokio::spawn(subscribe(
            listener,
            self.client.clone(),
            self.channel.clone(),
            self.origin.clone(),
            self.topic,
        ));
        if let Ok(mut subscriber) = self.subscriber.lock()
            && let Some(previous) = subscriber.replace(task.abort_handle())
        {
            previous.abort();
        }
    }

    /// Tells the other instances that `ids` changed. Failures are logged, not returned: the
    /// change is stored, and the other instances follow within the cache's TTL.
    pub(crate) async fn publish(&self, ids: impl IntoIterator<Item = Uuid>) {
        let message = encode(&self.origin, ids);
        let mut publisher = self.publisher.clone();
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message)
                .query_async::<u64>(&mut publisher),
        )
        .await;
        let Topic { name, ttl_setting } = self.topic;
        match published {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(
                error = %error,
                "could not publish a {name} invalidation; other instances follow within \
                 {ttl_setting}"
            ),
            Err(_) => tracing::warn!(
                "publishing a {name} invalidation timed out; other instances follow within \
                 {ttl_setting}"
            ),
        }
    }
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

/// Keeps a subscription to `channel` for `listener`, for as long as it lives.
async fn subscribe<L: Listener>(
    listener: Weak<L>,
    client: redis::Client,
    channel: String,
    origin: String,
    topic: Topic,
) {
    let name = topic.name;
    loop {
        if listener.strong_count() == 0 {
            return;
        }
        let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                let Some(cache) = listener.upgrade() else { return };
                cache.subscribed().await;
                tracing::debug!(%channel, "{name} subscribed to invalidations");
                drop(cache);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(cache) = listener.upgrade() else { return };
                    let payload: String = message.get_payload().unwrap_or_default();
                    if let Some(ids) = decode(&origin, &payload) {
                        cache.received(ids.ok()).await;
                    }
                }
                let Some(cache) = listener.upgrade() else { return };
                cache.lost().await;
                tracing::warn!("{name} lost its Redis subscription; bypassed until it is back");
            }
            Ok(Err(error)) => {
                tracing::debug!(error = %error, "{name} cannot subscribe to Redis yet");
            }
            Err(_) => tracing::debug!("subscribing the {name} to Redis timed out"),
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
}
