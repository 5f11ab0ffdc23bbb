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
    /// Other records still reference this one, so it cannot be deleted (a delete refused by a
    /// foreign key).
    #[error("the record is still referenced by others")]
    StillReferenced,
    /// A record this write refers to does not exist (an insert or update refused by a foreign
    /// key).
    #[error("a record this one refers to does not exist")]
    MissingParent,
    /// The write would leave no administrator: the last admin can be neither deleted nor
    /// demoted. Checked atomically with the write.
    #[error("the last administrator cannot be removed")]
    LastAdmin,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a use case tries a change that no `If-Match` guards when a concurrent writer
/// keeps moving the record's version (a stock reservation moves a product's): each try re-reads
/// the record and re-applies the change (last writer wins). Past this bound the use case gives
/// up with its `Conflict` error.
pub const WRITE_ATTEMPTS: usize = 5;
