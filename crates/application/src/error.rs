//! Failures shared by every use case that reaches a store.
//!
//! What a refused write means is not shared: each repository port has its own error enum beside
//! it, with only the refusals its aggregate can meet (`UserWriteError`, `ProductWriteError`,
//! `OrderWriteError`, `ReviewWriteError`), each wrapping this [`StoreError`].

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

/// How many times a use case tries a change that no `If-Match` guards when a concurrent writer
/// keeps moving the record's version (a stock reservation moves a product's): each try re-reads
/// the record and re-applies the change (last writer wins). Past this bound the use case gives
/// up with its `Conflict` error.
pub const WRITE_ATTEMPTS: usize = 5;
