//! A short-lived, bounded cache in front of an [`AccountDirectory`]: the access-token check
//! runs on every authenticated request, and this keeps it to one database read per account per
//! `ttl` on each instance (ADR 0013).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use moka::future::Cache;
use orderly_application::{
    StoreError, WriteError,
    ports::{AccountDirectory, AccountStatus, UserRepository},
};
use orderly_domain::{Email, User, UserId};

/// Accounts kept at most; beyond, the least used are dropped.
const CAPACITY: u64 = 100_000;

/// [`AccountDirectory`] with a per-instance cache whose entries live `ttl`. Absent accounts are
/// cached too, so a flood of a deleted account's tokens does not reach the database either.
/// Failures are not cached.
pub struct CachedAccounts {
    inner: Arc<dyn AccountDirectory>,
    cache: Option<Cache<UserId, Option<AccountStatus>>>,
}

impl std::fmt::Debug for CachedAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAccounts").field("cached", &self.cache.is_some()).finish()
    }
}

impl CachedAccounts {
    /// Caches `inner`'s answers for `ttl` (zero: no cache, every check reads `inner`).
    #[must_use]
    pub fn new(inner: Arc<dyn AccountDirectory>, ttl: Duration) -> Self {
        let cache = (!ttl.is_zero())
            .then(|| Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build());
        Self { inner, cache }
    }

    /// Drops what is cached about `id`: the next check on this instance reads the store.
    pub async fn forget(&self, id: UserId) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&id).await;
        }
    }
}

/// A [`UserRepository`] that drops an account's cached status once a change to it is stored,
/// so that a deletion, demotion or new password takes effect at once on this instance (other
/// instances follow within the cache's lifetime).
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
    async fn insert(&self, user: &User) -> Result<(), WriteError> {
        self.users.insert(user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.users.find_by_id(id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.users.find_by_email(email).await
    }

    async fn update(&self, user: &User, expected_version: u64) -> Result<(), WriteError> {
        self.users.update(user, expected_version).await?;
        self.accounts.forget(user.id()).await;
        Ok(())
    }

    async fn delete(&self, id: UserId) -> Result<(), WriteError> {
        self.users.delete(id).await?;
        self.accounts.forget(id).await;
        Ok(())
    }
}

#[async_trait]
impl AccountDirectory for CachedAccounts {
    async fn status(&self, id: UserId) -> Result<Option<AccountStatus>, StoreError> {
        let Some(cache) = &self.cache else { return self.inner.status(id).await };
        // Concurrent misses for one account share a single read.
        cache.try_get_with(id, self.inner.status(id)).await.map_err(|shared: Arc<StoreError>| {
            match Arc::try_unwrap(shared) {
                Ok(error) => error,
                Err(shared) => match &*shared {
                    StoreError::Unavailable(_) => {
                        StoreError::Unavailable(anyhow::anyhow!("{shared:#}"))
                    }
                    StoreError::Contention(_) => {
                        StoreError::Contention(anyhow::anyhow!("{shared:#}"))
                    }
                    StoreError::Unexpected(_) => {
                        StoreError::Unexpected(anyhow::anyhow!("{shared:#}"))
                    }
                },
            }
        })
    }
}
