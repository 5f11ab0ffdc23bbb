//! Work that arrives while earlier work of its kind is running waits in a queue, and whoever
//! finds a slot free next takes the whole queue at once: group commit of order placements
//! (ADR 0042) and grouped reads of products by id (ADR 0044). Alone, an item is taken at once
//! (a slot is free); under load, one round trip serves many.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use prometheus::{Histogram, HistogramOpts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument as _;

/// The queue of one kind of work and the slots of the groups running it.
pub(super) struct Groups<T> {
    queue: Mutex<VecDeque<T>>,
    slots: Arc<Semaphore>,
    /// The most items a group takes.
    most: usize,
    /// The size of each group taken from the queue.
    sizes: Histogram,
}

/// A histogram of group sizes, `name` and `help`, with buckets at the powers of two up to
/// `largest`.
#[expect(clippy::cast_precision_loss, reason = "a small constant")]
pub(super) fn sizes(name: &str, help: &str, largest: usize) -> Histogram {
    let largest = largest as f64;
    let buckets = std::iter::successors(Some(1.0), |size| Some(size * 2.0))
        .take_while(|size| *size <= largest)
        .collect();
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|error| unreachable!("a valid series: {error}"))
}

impl<T> std::fmt::Debug for Groups<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").field("free_slots", &self.slots.available_permits()).finish()
    }
}

impl<T> Groups<T> {
    /// Groups of up to `most` items, `at_once` of them running at the same time, their sizes
    /// observed in `sizes`.
    pub(super) fn new(at_once: usize, most: usize, sizes: Histogram) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(at_once.max(1))),
            most: most.max(1),
            sizes,
        }
    }

    /// The histogram of group sizes, to register.
    pub(super) fn sizes(&self) -> &Histogram {
        &self.sizes
    }

    /// Queues `item` and waits for its answer on `answered`. Whenever a slot is free first,
    /// takes up to `most` queued items (this one among them, unless another group took it) and
    /// runs `work` on them and the slot, in a task of its own (a caller that goes away does not
    /// stop the others) and in the caller's span (its statements are in the trace of the
    /// request that started the group). `work` answers each item, then drops the slot.
    ///
    /// `None` when the group holding `item` stopped without answering it (a panic: a bug).
    pub(super) async fn join<O, F>(
        &self,
        item: T,
        mut answered: oneshot::Receiver<O>,
        work: impl Fn(Vec<T>, OwnedSemaphorePermit) -> F,
    ) -> Option<O>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.queue().push_back(item);
        loop {
            let slot = tokio::select! {
                biased;
                outcome = &mut answered => return outcome.ok(),
                slot = self.slots.clone().acquire_owned() => slot.ok()?,
            };
            let group = {
                let mut queue = self.queue();
                let size = queue.len().min(self.most);
                queue.drain(..size).collect::<Vec<_>>()
            };
            if group.is_empty() {
                // Another group took this item.
                drop(slot);
                return answered.await.ok();
            }
            #[expect(clippy::cast_precision_loss, reason = "at most `most`")]
            self.sizes.observe(group.len() as f64);
            tokio::spawn(work(group, slot).instrument(tracing::Span::current()));
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        // The queue is only pushed to and drained: a panic elsewhere cannot leave it half done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
