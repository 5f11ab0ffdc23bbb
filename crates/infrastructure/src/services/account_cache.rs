//! A short-lived, bounded cache in front of an [`AccountDirectory`]: the access-token check
//! runs on every authenticated request, and this keeps it to one database read per account per
//! `ttl` on each instance (ADR 0013), while a change to an account reaches every instance at
//! once (ADR 0027).
//!
//! - A change stored through [`ForgettingUsers`] drops the account's entry on this instance at
//!   once and, with Redis, on every other instance through one `PUBLISH` on
//!   `<prefix>:accounts:invalidated` that the write awaits for at most 300 ms, and not at all
//!   while Redis is unhealthy ([`Invalidations`], shared with the product cache).
//! - A read that raced a change does not put what it read in the cache: a generation counter,
//!   moved by every invalidation, is checked around the database read (the read is then
//!   answered but not kept) and after the insertion (the entry is taken out again).
//! - With Redis, entries are served only while this instance's subscription is up and proved
//!   live by a `PING` answered less than 250 ms ago, and Redis is healthy (ADR 0029; otherwise
//!   every check reads the database); the cache is emptied whenever the subscription is made or
//!   lost, since messages may have been missed.
//! - Whatever happens to Redis, an entry lives at most `ttl` (`AUTH_CACHE_TTL`): the bound on a
//!   stale answer without Redis, or when a message is lost. With Redis up, the bound is the time
//!   a message takes (milliseconds).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use moka::future::Cache;
use orderly_application::{
    StoreError,
    ports::{AccountDirectory, AccountStatus, UserRepository, UserWriteError},
};
use orderly_domain::{Email, User, UserId};
use uuid::Uuid;

use super::invalidation::{Invalidations, Listener, Topic};

/// Accounts kept at most; beyond, the least used are dropped.
const CAPACITY: u64 = 100_000;

/// How the account cache's messages and warnings are named.
const TOPIC: Topic = Topic { name: "account cache", ttl_setting: "AUTH_CACHE_TTL" };

/// [`AccountDirectory`] with a per-instance cache whose entries live `ttl`. Absent accounts are
/// cached too, so a flood of a deleted account's tokens does not reach the database either.
/// Failures are not cached.
pub struct CachedAccounts {
    inner: Arc<dyn AccountDirectory>,
    cache: Option<Arc<Entries>>,
}

impl std::fmt::Debug for CachedAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAccounts")
            .field("cached", &self.cache.is_some())
            .field("shared", &self.cache.as_ref().is_some_and(|cache| cache.bus.is_some()))
            .finish()
    }
}

/// The cached statuses and what keeps them correct.
struct Entries {
    statuses: Cache<UserId, Option<AccountStatus>>,
    /// Moved by every invalidation, local or received.
    generation: AtomicU64,
    /// Whether entries may be served and stored: always without Redis; with Redis, while the
    /// subscription is up.
    serving: AtomicBool,
    /// With Redis: where invalidations are published and heard.
    bus: Option<Invalidations>,
}

/// Why a missed read did not fill the cache.
#[derive(Debug)]
enum Miss {
    Store(StoreError),
    /// An invalidation came in during the read: what it read may be stale.
    Raced,
}

impl CachedAccounts {
    /// Caches `inner`'s answers for `ttl` on this instance only (zero: no cache, every check
    /// reads `inner`): other instances see this one's changes within `ttl`.
    #[must_use]
    pub fn new(inner: Arc<dyn AccountDirectory>, ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| Arc::new(Entries::new(ttl, None)));
        Self { inner, cache }
    }

    /// Caches `inner`'s answers for `ttl`, with invalidations shared through the Redis at
    /// `url` on `channel`: every instance on the same Redis and channel drops an account when
    /// any of them changes it. Redis need not be up: until the subscription is made (and
    /// whenever it is lost) the cache is bypassed. No cache when `ttl` is zero.
    ///
    /// # Errors
    /// When `url` is not a valid Redis URL.
    pub fn shared(
        inner: Arc<dyn AccountDirectory>,
        ttl: Duration,
        url: &str,
        channel: impl Into<String>,
    ) -> anyhow::Result<Self> {
        if ttl.is_zero() {
            return Ok(Self { inner, cache: None });
        }
        let entries = Arc::new(Entries::new(ttl, Some(Invalidations::new(TOPIC, url, channel)?)));
        if let Some(bus) = &entries.bus {
            bus.listen(Arc::downgrade(&entries));
        }
        Ok(Self { inner, cache: Some(entries) })
    }

    /// Drops what is cached about `id` here and, with Redis, on the other instances: the next
    /// check of the account reads the store. Call it once the change is stored.
    pub async fn forget(&self, id: UserId) {
        let Some(entries) = &self.cache else { return };
        entries.evict(&[id]).await;
        if let Some(bus) = &entries.bus {
            bus.publish([id.into_uuid()]).await;
        }
    }

    /// Whether cached answers are served now (with Redis: while subscribed).
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.cache.as_ref().is_some_and(|entries| entries.serves())
    }
}

impl Entries {
    fn new(ttl: Duration, bus: Option<Invalidations>) -> Self {
        Self {
            statuses: Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build(),
            generation: AtomicU64::new(0),
            serving: AtomicBool::new(bus.is_none()),
            bus,
        }
    }

    /// Whether entries may be served now: without Redis, always; with Redis, while subscribed
    /// and the subscription is live (its last `PING` answered within
    /// [`super::invalidation::LIVENESS`], Redis healthy).
    fn serves(&self) -> bool {
        self.serving.load(Ordering::SeqCst) && self.bus.as_ref().is_none_or(Invalidations::is_live)
    }

    async fn evict(&self, ids: &[UserId]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for id in ids {
            self.statuses.invalidate(id).await;
        }
    }

    /// Stops or starts serving; either way the entries are dropped, since invalidations may
    /// have been missed while the subscription was down.
    fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.statuses.invalidate_all();
    }
}

#[async_trait]
impl Listener for Entries {
    async fn subscribed(&self) {
        self.set_serving(true);
    }

    async fn received(&self, ids: Option<Vec<Uuid>>) {
        match ids {
            Some(ids) => {
                let ids: Vec<UserId> = ids.into_iter().map(UserId::from_uuid).collect();
                self.evict(&ids).await;
            }
            None => self.set_serving(true),
        }
    }

    async fn lost(&self) {
        self.set_serving(false);
    }
}

/// A [`UserRepository`] that drops an account's cached status once a change to it is stored,
/// so that a deletion, a new role, password or e-mail address takes effect at once on this
/// instance and, with Redis, on the others within the time a message takes (without Redis,
/// within the cache's lifetime).
pub struct ForgettingUsers {
    users: Arc<dyn UserRepository>,
    accounts: Arc<CachedAccounts>,
}

impl std::fmt::Debug for ForgettingUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgettingUsers").field("accounts", &self.accounts).finish_non_exhaustive()
    }
}

impl ForgettingUsers {
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>, accounts: Arc<CachedAccounts>) -> Self {
        Self { users, accounts }
    }
}

#[async_trait]
impl UserRepository for ForgettingUsers {
    async fn insert(&self, user: &User) -> Result<(), UserWriteError> {
        self.users.insert(user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.users.find_by_id(id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.users.find_by_email(email).await
    }

    async fn update(&self, user: &User, expected_version: u64) -> Result<(), UserWriteError> {
        self.users.update(user, expected_version).await?;
        self.accounts.forget(user.id()).await;
        Ok(())
    }

    async fn delete(&self, id: UserId) -> Result<(), UserWriteError> {
        self.users.delete(id).await?;
        self.accounts.forget(id).await;
        Ok(())
    }
}

#[async_trait]
impl AccountDirectory for CachedAccounts {
    async fn status(&self, id: UserId) -> Result<Option<AccountStatus>, StoreError> {
        let Some(entries) = &self.cache else { return self.inner.status(id).await };
        if !entries.serves() {
            return self.inner.status(id).await;
        }
        let before = entries.generation.load(Ordering::SeqCst);
        // Concurrent misses for one account share a single read.
        let read = entries
            .statuses
            .try_get_with(id, async {
                let generation = entries.generation.load(Ordering::SeqCst);
                let status = self.inner.status(id).await.map_err(Miss::Store)?;
                if entries.generation.load(Ordering::SeqCst) != generation {
                    return Err(Miss::Raced);
                }
                Ok(status)
            })
            .await;
        match read {
            Ok(status) => {
                // An invalidation between the read's check and its insertion (or during a
                // hit): the entry may predate it, take it out.
                if entries.generation.load(Ordering::SeqCst) != before {
                    entries.statuses.invalidate(&id).await;
                }
                Ok(status)
            }
            Err(shared) => match Arc::try_unwrap(shared) {
                Ok(Miss::Store(error)) => Err(error),
                Ok(Miss::Raced) => self.inner.status(id).await,
                Err(shared) => match &*shared {
                    Miss::Raced => self.inner.status(id).await,
                    Miss::Store(error) => Err(copy(error)),
                },
            },
        }
    }
}

/// A store error shared by the callers of one read, for each of them: same variant, same text.
fn copy(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(_) => StoreError::Unavailable(anyhow::anyhow!("{error:#}")),
        StoreError::Contention(_) => StoreError::Contention(anyhow::anyhow!("{error:#}")),
        StoreError::Unexpected(_) => StoreError::Unexpected(anyhow::anyhow!("{error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use orderly_domain::Role;

    use super::*;

    /// A directory that counts its reads and answers what `role` holds (`None`: deleted).
    struct Counting {
        reads: AtomicUsize,
        role: std::sync::Mutex<Option<Role>>,
    }

    impl Counting {
        fn new(role: Role) -> Arc<Self> {
            Arc::new(Self { reads: AtomicUsize::new(0), role: std::sync::Mutex::new(Some(role)) })
        }

        fn set(&self, role: Option<Role>) {
            *self.role.lock().expect("not poisoned") = role;
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl AccountDirectory for Counting {
        async fn status(&self, _: UserId) -> Result<Option<AccountStatus>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let role = *self.role.lock().expect("not poisoned");
            Ok(role.map(|role| AccountStatus { role, session_epoch: 0 }))
        }
    }

    #[tokio::test]
    async fn answers_are_cached_until_forgotten() {
        let store = Counting::new(Role::Admin);
        let accounts = CachedAccounts::new(store.clone(), Duration::from_secs(60));
        let id = UserId::new();
        assert_eq!(accounts.status(id).await.expect("read").map(|s| s.role), Some(Role::Admin));
        store.set(Some(Role::Customer));
        assert_eq!(accounts.status(id).await.expect("hit").map(|s| s.role), Some(Role::Admin));
        assert_eq!(store.reads(), 1, "the second answer came from the cache");
        accounts.forget(id).await;
        assert_eq!(accounts.status(id).await.expect("read").map(|s| s.role), Some(Role::Customer));
        store.set(None);
        accounts.forget(id).await;
        assert_eq!(accounts.status(id).await.expect("read"), None);
        assert_eq!(store.reads(), 3);
    }

    #[tokio::test]
    async fn a_zero_ttl_reads_every_time() {
        let store = Counting::new(Role::Customer);
        let accounts = CachedAccounts::new(store.clone(), Duration::ZERO);
        let id = UserId::new();
        accounts.status(id).await.expect("read");
        accounts.status(id).await.expect("read");
        assert_eq!(store.reads(), 2);
        assert!(!accounts.is_serving());
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_is_answered_but_not_kept() {
        /// A directory whose read is overtaken by an invalidation of the account.
        struct Overtaken {
            entries: std::sync::Mutex<Option<Arc<Entries>>>,
            reads: AtomicUsize,
        }
        #[async_trait]
        impl AccountDirectory for Overtaken {
            async fn status(&self, id: UserId) -> Result<Option<AccountStatus>, StoreError> {
                if self.reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    let entries = self.entries.lock().expect("not poisoned").clone();
                    if let Some(entries) = entries {
                        entries.evict(&[id]).await;
                    }
                }
                Ok(Some(AccountStatus { role: Role::Admin, session_epoch: 0 }))
            }
        }
        let store = Arc::new(Overtaken {
            entries: std::sync::Mutex::new(None),
            reads: AtomicUsize::new(0),
        });
        let accounts = CachedAccounts::new(store.clone(), Duration::from_secs(60));
        *store.entries.lock().expect("not poisoned") = accounts.cache.clone();
        let id = UserId::new();
        assert!(accounts.status(id).await.expect("answered").is_some());
        assert_eq!(store.reads.load(Ordering::SeqCst), 2, "the raced read was read again");
        accounts.status(id).await.expect("answered");
        assert_eq!(store.reads.load(Ordering::SeqCst), 3, "nothing from the raced read was kept");
        accounts.status(id).await.expect("answered");
        assert_eq!(store.reads.load(Ordering::SeqCst), 3, "a read that did not race is kept");
    }
}
