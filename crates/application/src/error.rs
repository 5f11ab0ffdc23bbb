//! Failures shared by every use case that reaches a store.

/// A store (database) call failed for a reason unrelated to the data asked for.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the connection: try again later (HTTP 503).
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The store aborted the work because of concurrent writers (serialization failure, lock
    /// timeout, busy database): retrying the same request may succeed.
    #[error("the database is busy with conflicting work")]
    Contention(#[source] anyhow::Error),
    /// Anything else: a bug or corrupted data (HTTP 500, full cause chain logged).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The unique key a write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// A user's e-mail address.
    Email,
    /// A product's SKU.
    Sku,
}

/// Why a repository refused to write an aggregate.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A unique key is already taken by another record.
    #[error("{0:?} is already taken")]
    Duplicate(UniqueKey),
    /// There is no record to update or delete.
    #[error("the record does not exist")]
    NotFound,
    /// The record changed since it was read (its version moved on): reload and retry.
    #[error("the record was changed by someone else")]
    Stale,
    /// Other records still reference this one, so it cannot be deleted.
    #[error("the record is still referenced")]
    Referenced,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
