//! Running a use case at most once per idempotency key (ADR 0023), as a decorator around its
//! effect: [`Keys::run`] claims the key (or answers with the first response's replay), runs the
//! effect with a [`Receipt`] that the effect's repository save records in its transaction,
//! releases the key when the effect failed, and records the final replay when the effect went on
//! after its commit. Use cases never claim, release or update a key themselves.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    StoreError,
    ports::{Claim, Clock, Completion, IdempotencyStore, IdempotentRequest, Lease, Replay},
};

/// How a use case's result becomes what a replay sends again (the caller's own form: the
/// application never reads it).
pub type Render<T> = Arc<dyn Fn(&T) -> Replay + Send + Sync>;

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
    /// The key was used before for the same request: its first response, as recorded.
    Replayed(Replay),
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

/// A claimed key, handed to the effect: the effect passes [`Receipt::completion`] of its result
/// to its repository's save, which records it in the effect's transaction. Cloning shares it.
pub(crate) struct Receipt<T>(Arc<Held<T>>);

struct Held<T> {
    idempotent: Idempotent<T>,
    lease: Lease,
    clock: Arc<dyn Clock>,
    /// The last replay handed to a save: what the effect's transaction recorded, if it committed.
    recorded: Mutex<Option<Replay>>,
}

impl<T> Clone for Receipt<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> fmt::Debug for Receipt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("request", &self.0.idempotent.request)
            .field("lease", &self.0.lease)
            .finish_non_exhaustive()
    }
}

impl<T> Receipt<T> {
    /// The record to write with the effect whose result is `value`.
    pub(crate) fn completion(&self, value: &T) -> Completion {
        let completion = self.render(value);
        if let Ok(mut recorded) = self.0.recorded.lock() {
            *recorded = Some(completion.response.clone());
        }
        completion
    }

    fn render(&self, value: &T) -> Completion {
        Completion {
            request: self.0.idempotent.request.clone(),
            lease: self.0.lease,
            response: (self.0.idempotent.render)(value),
            at: self.0.clock.now(),
        }
    }

    fn recorded(&self) -> Option<Replay> {
        self.0.recorded.lock().ok().and_then(|recorded| recorded.clone())
    }
}

/// Runs effects under idempotency keys: the decorator of the use cases that accept them.
#[derive(Clone)]
pub(crate) struct Keys {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
}

impl Keys {
    pub(crate) fn new(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Runs `effect` at most once for `idempotent`'s key (every time when no key was sent).
    ///
    /// The key is claimed first: a key used before for the same request answers with its first
    /// response ([`Outcome::Replayed`]) without running the effect. The effect gets the claim's
    /// [`Receipt`] to record with its result. When the effect fails, the key is released (so a
    /// retry runs afresh); when its result renders otherwise than what its transaction recorded
    /// (it went on after the commit), the final rendering replaces the recorded one.
    ///
    /// # Errors
    /// [`IdempotencyRefusal`] when the key is in use or was used for another request,
    /// [`StoreError`] when claiming fails, or the effect's error.
    pub(crate) async fn run<T, E, Fut>(
        &self,
        idempotent: Option<Idempotent<T>>,
        effect: impl FnOnce(Option<Receipt<T>>) -> Fut,
    ) -> Result<Outcome<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: From<IdempotencyRefusal> + From<StoreError>,
    {
        let receipt = match idempotent {
            None => None,
            Some(idempotent) => {
                match self.store.claim(&idempotent.request, self.clock.now()).await? {
                    Claim::Started(lease) => Some(Receipt(Arc::new(Held {
                        idempotent,
                        lease,
                        clock: Arc::clone(&self.clock),
                        recorded: Mutex::new(None),
                    }))),
                    Claim::Replay(replay) => return Ok(Outcome::Replayed(replay)),
                    Claim::InFlight { retry_after } => {
                        return Err(IdempotencyRefusal::InUse { retry_after }.into());
                    }
                    Claim::Mismatch => return Err(IdempotencyRefusal::Reused.into()),
                }
            }
        };
        let result = effect(receipt.clone()).await;
        if let Some(receipt) = &receipt {
            match &result {
                Ok(value) => self.record_final(receipt, value).await,
                Err(_) => self.release(receipt).await,
            }
        }
        result.map(Outcome::Done)
    }

    /// Gives the key back after the effect failed, so a retry may use it. Best effort: a key
    /// not released is freed when its lease lapses.
    async fn release<T>(&self, receipt: &Receipt<T>) {
        let held = &receipt.0;
        if let Err(error) = self.store.release(&held.idempotent.request, held.lease).await {
            tracing::warn!(error = %format!("{error:#}"),
                "an idempotency key could not be released; it frees itself when its lease lapses");
        }
    }

    /// Records what is finally sent for a key whose effect was recorded, when it differs from
    /// what was recorded with the effect. Best effort: a replay then shows the state at the
    /// commit.
    async fn record_final<T>(&self, receipt: &Receipt<T>, value: &T) {
        let completion = receipt.render(value);
        match receipt.recorded() {
            Some(recorded) if recorded == completion.response => {}
            Some(_) => {
                if let Err(error) = self.store.update_response(&completion).await {
                    tracing::warn!(error = %format!("{error:#}"),
                        "the final response of an idempotent request could not be recorded; a replay shows the state at its commit");
                }
            }
            None => tracing::error!(
                "an idempotent effect succeeded without recording its response; its key frees itself when its lease lapses"
            ),
        }
    }
}
