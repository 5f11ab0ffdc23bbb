//! Running a use case at most once per idempotency key (ADR 0023): claim the key, run the effect
//! with its response recorded in the effect's transaction, release the key when the effect
//! failed.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    StoreError,
    ports::{Claim, Clock, Completion, IdempotencyStore, IdempotentRequest, Lease, StoredResponse},
};

/// How a use case's result becomes the response recorded for replays.
pub type Render<T> = Arc<dyn Fn(&T) -> StoredResponse + Send + Sync>;

/// An idempotency key with the request it came with, and how to render the result.
#[derive(Clone)]
pub struct Idempotent<T> {
    pub request: IdempotentRequest,
    pub render: Render<T>,
}

impl<T> fmt::Debug for Idempotent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotent").field("request", &self.request).finish_non_exhaustive()
    }
}

/// What a use case run under an idempotency key gave.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The effect happened now.
    Done(T),
    /// The key was used before for the same request: its first response.
    Replayed(StoredResponse),
}

impl<T> Outcome<T> {
    /// The new result, if the effect happened now.
    pub fn done(self) -> Option<T> {
        match self {
            Self::Done(value) => Some(value),
            Self::Replayed(_) => None,
        }
    }
}

/// Why a key cannot be used now.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyRefusal {
    /// The same request with this key is still running (HTTP 409).
    #[error("a request with this Idempotency-Key is still being processed")]
    InUse {
        /// When to try again.
        retry_after: Duration,
    },
    /// The key was used for a different request (HTTP 422).
    #[error("this Idempotency-Key was used for a different request")]
    Reused,
}

/// What claiming gave: go ahead (holding the claim, if a key was sent) or replay.
#[derive(Debug)]
pub(crate) enum Begin<T> {
    Proceed(Option<Claimed<T>>),
    Replay(StoredResponse),
}

/// A claimed key: what the effect's transaction records.
#[derive(Debug)]
pub(crate) struct Claimed<T> {
    idempotent: Idempotent<T>,
    lease: Lease,
}

impl<T> Claimed<T> {
    /// The record to write with the effect whose result is `value`.
    pub(crate) fn completion(&self, value: &T, clock: &dyn Clock) -> Completion {
        Completion {
            request: self.idempotent.request.clone(),
            lease: self.lease,
            response: (self.idempotent.render)(value),
            at: clock.now(),
        }
    }
}

/// Claims and releases keys for the use cases that accept them.
#[derive(Clone)]
pub(crate) struct Keys {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
}

impl Keys {
    pub(crate) fn new(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Claims the key, if one was sent.
    pub(crate) async fn begin<T>(
        &self,
        idempotent: Option<Idempotent<T>>,
    ) -> Result<Result<Begin<T>, IdempotencyRefusal>, StoreError> {
        let Some(idempotent) = idempotent else { return Ok(Ok(Begin::Proceed(None))) };
        Ok(match self.store.claim(&idempotent.request, self.clock.now()).await? {
            Claim::Started(lease) => Ok(Begin::Proceed(Some(Claimed { idempotent, lease }))),
            Claim::Replay(response) => Ok(Begin::Replay(response)),
            Claim::InFlight { retry_after } => Err(IdempotencyRefusal::InUse { retry_after }),
            Claim::Mismatch => Err(IdempotencyRefusal::Reused),
        })
    }

    /// Gives the key back after the effect failed, so a retry may use it. Best effort: a key
    /// not released is freed when its lease lapses.
    pub(crate) async fn release<T>(&self, claimed: Option<&Claimed<T>>) {
        let Some(claimed) = claimed else { return };
        if let Err(error) = self.store.release(&claimed.idempotent.request, claimed.lease).await {
            tracing::warn!(error = %format!("{error:#}"),
                "an idempotency key could not be released; it frees itself when its lease lapses");
        }
    }

    /// Records what was finally sent for a key whose effect was already recorded.
    pub(crate) async fn update<T>(&self, claimed: Option<&Claimed<T>>, value: &T) {
        let Some(claimed) = claimed else { return };
        let completion = claimed.completion(value, self.clock.as_ref());
        if let Err(error) = self.store.update_response(&completion).await {
            tracing::warn!(error = %format!("{error:#}"),
                "the final response of an idempotent request could not be recorded; a replay shows the state at its commit");
        }
    }
}
