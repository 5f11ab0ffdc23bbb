//! Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a client that retries a
//! request with the same key gets the first response back instead of a second effect.
//!
//! A key is claimed before the effect (so a duplicate in flight is refused), and its response is
//! recorded in the same transaction as the effect (so an effect never exists without its
//! response, nor a response without its effect). A failed request releases its claim: the key is
//! not burnt. See ADR 0023.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use orderly_domain::{
    UserId,
    time::{TimeDelta, Timestamp},
};

use crate::StoreError;

/// Longest accepted key, in characters.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// How long a claim holds its key while the request runs. A claim older than this is taken
/// to be abandoned (its process died) and may be claimed again: safe, because the response of
/// an effect that did commit is recorded with it, and a completion checks it still holds the
/// claim.
pub const IDEMPOTENCY_LEASE: TimeDelta = TimeDelta::seconds(60);

/// A key refused: empty, too long, or with a character outside visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters (`!` to `~`, no spaces)"
)]
pub struct InvalidIdempotencyKey;

/// A client's idempotency key: 1 to [`IDEMPOTENCY_KEY_MAX_LEN`] visible ASCII characters (`!` to
/// `~`; no spaces, which HTTP may trim). The header value is the key as sent: a client that
/// quotes it as the draft's structured-field string (`"abc"`) simply has a key with quotes, the
/// same on every retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks the key.
    ///
    /// # Errors
    /// [`InvalidIdempotencyKey`] when empty, too long or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let printable = raw.bytes().all(|byte| (0x21..=0x7e).contains(&byte));
        if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_MAX_LEN || !printable {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request that carries an idempotency key: the key, scoped to the caller, and a fingerprint
/// of what was asked (method, path and body), so the same key with another request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub user_id: UserId,
    pub key: IdempotencyKey,
    /// A digest of method, path and body (64 hex characters).
    pub fingerprint: String,
}

/// What a replay sends again, recorded with the effect: the first response in a form only the
/// layer that made it reads (the HTTP layer keeps status, headers and body in it). Opaque here:
/// the application stores it and hands it back, and never looks inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay(String);

impl Replay {
    #[must_use]
    pub fn new(payload: impl Into<String>) -> Self {
        Self(payload.into())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Proof of a claim: only its holder completes or releases the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(pub orderly_domain::Uuid);

/// The record of a successful effect: written by the repository in the effect's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub request: IdempotentRequest,
    pub lease: Lease,
    /// What a replay sends again.
    pub response: Replay,
    /// When the effect happened.
    pub at: Timestamp,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its earlier claim was abandoned): go ahead, holding this lease.
    Started(Lease),
    /// The key was used for this same request, which succeeded: send its response again.
    Replay(Replay),
    /// The key is held by the same request still running: try again later.
    InFlight {
        /// When the running request's claim lapses at the latest.
        retry_after: Duration,
    },
    /// The key was used for a different request (HTTP 422).
    Mismatch,
}

/// Stores idempotency records.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `request`'s key for [`IDEMPOTENCY_LEASE`] from `now`, atomically: of two
    /// concurrent claims of one key, one starts and the other is told it is in flight.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn claim(&self, request: &IdempotentRequest, now: Timestamp)
    -> Result<Claim, StoreError>;

    /// Gives up a claim that produced no effect, so the key can be used again. Does nothing
    /// when the lease is no longer held or the record is complete.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn release(&self, request: &IdempotentRequest, lease: Lease) -> Result<(), StoreError>;

    /// Replaces the replay recorded for a completed key by what was finally sent (a request
    /// that went on after its effect was committed, such as a capture after a payment). Does
    /// nothing when the lease is no longer held.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn update_response(&self, completion: &Completion) -> Result<(), StoreError>;

    /// Deletes the records created before `before`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError>;
}
