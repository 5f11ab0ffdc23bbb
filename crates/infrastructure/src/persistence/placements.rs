//! Group commit of order placements (ADR 0042): the orders an instance is asked to place while
//! it is still writing earlier ones queue, and the next writer takes them all into one
//! transaction. Under load a batch costs the round trips and the commit of one order (and on
//! SQLite, one turn of the single writer), whatever its size; alone, an order is written as it
//! always was ([`place_one`]).
//!
//! Each placement keeps its own outcome: a batch reads the stock of all its products once
//! (locked, on PostgreSQL, in product-id order, as every writer locks them), serves the orders
//! in the order they came, and refuses those the stock left cannot serve, as a placement alone
//! would have been refused at that point. Anything that could concern one placement only (a
//! customer deleted meanwhile, an idempotency claim that lapsed) abandons the batch before its
//! commit, and each of its placements is then written alone, with its own answer.
//!
//! A batch runs in a task of its own: a client that goes away does not cancel the writes of
//! the others, and every placement is answered once its transaction has ended.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use orderly_application::{
    StoreError,
    ports::{Completion, PlaceOrderFailure},
};
use orderly_domain::{Order, OrderTransition, Product, ProductId};
use prometheus::Histogram;
use sea_orm::{
    ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    sea_query::LockType,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{
    Database, Engine,
    error::{shared, store},
    groups::{self, Groups},
    idempotency,
    orders::{Take, insert_orders, place_one, product_ids, reserve, takes, unserved},
    outbox::Outbox,
};
use crate::{entity::product, services::ProductCache};

/// The most orders one transaction writes: 32 on SQLite, 4 on PostgreSQL.
///
/// On PostgreSQL several batches run at once, and each locks its products in product-id
/// order, holding the rows it has while it waits for the next: the more products a batch
/// locks, the more often it queues behind another and makes others queue behind it. With
/// `make bench`'s order load and a pool of 10, batches of up to 4 placed 1,137-1,443 orders a
/// second (p99 92-144 ms) where up to 8 placed 873-1,025 (p99 179-207 ms), alternated on one
/// database.
///
/// Each size of batch is also a statement of its own, which each connection keeps prepared
/// (sqlx's statement cache, its text included): on the SQLite writer, batches of up to 64 made
/// an order run's peak RSS about 10 MiB larger than up to 32, with no more orders a second
/// (ADR 0042).
fn most_per_batch(engine: Engine) -> usize {
    match engine {
        Engine::Sqlite => 32,
        Engine::Postgres => 4,
    }
}

/// How many batches one instance writes at the same time: on SQLite one, since it has one
/// writer; on PostgreSQL as many as the pool has connections, but two for reads. Batches
/// there lock their products, so fewer but larger batches wait for each other's locks: with
/// `make bench`'s order load and a pool of 10, 2 at once (of up to 64 orders) placed 500
/// orders a second, 8 about 1,400 (ADR 0042).
fn batches_at_once(engine: Engine, connections: u32) -> usize {
    match engine {
        Engine::Sqlite => 1,
        Engine::Postgres => usize::try_from(connections.saturating_sub(2).max(1)).unwrap_or(1),
    }
}

/// One order to place: what [`OrderRepository::place`] was given.
///
/// [`OrderRepository::place`]: orderly_application::ports::OrderRepository::place
#[derive(Debug)]
pub(super) struct Placement {
    pub(super) order: Order,
    pub(super) placed: OrderTransition,
    pub(super) completion: Option<Completion>,
}

/// What becomes of one placement.
type Outcome = Result<(), PlaceOrderFailure>;

/// A placement in the queue, with where its outcome goes.
struct Waiting {
    placement: Placement,
    answer: oneshot::Sender<Outcome>,
}

/// The queue of one instance's placements and the slots of the batches writing them.
#[derive(Debug)]
pub(super) struct Placements {
    /// The batches; their sizes are `orderly_order_batch_size`.
    batches: Groups<Waiting>,
}

impl Placements {
    /// The queue of a pool of `connections` to `engine`.
    pub(super) fn new(engine: Engine, connections: u32) -> Self {
        let sizes = groups::sizes(
            "orderly_order_batch_size",
            "Orders placed together in one transaction (group commit, ADR 0042)",
            // The same buckets whichever the engine.
            most_per_batch(Engine::Sqlite).max(most_per_batch(Engine::Postgres)),
        );
        Self {
            batches: Groups::new(
                batches_at_once(engine, connections),
                most_per_batch(engine),
                sizes,
            ),
        }
    }

    /// The batch sizes' histogram, to register.
    pub(super) fn sizes(&self) -> &Histogram {
        self.batches.sizes()
    }

    /// Queues `placement` and waits for its outcome. Whoever gets a free slot first takes the
    /// whole queue (up to [`most_per_batch`]) into a batch, which runs as a task of its own.
    pub(super) async fn place(
        &self,
        db: &Database,
        cache: &ProductCache,
        placement: Placement,
    ) -> Outcome {
        let (answer, answered) = oneshot::channel();
        let start = |batch, slot| write(db.clone(), cache.clone(), batch, slot);
        self.batches
            .join(Waiting { placement, answer }, answered, start)
            .await
            .unwrap_or_else(|| Err(lost()))
    }
}

/// The outcome of a placement whose batch stopped without answering (a panic: a bug).
fn lost() -> PlaceOrderFailure {
    PlaceOrderFailure::Store(StoreError::Unexpected(anyhow::anyhow!(
        "the batch writing this order stopped before it ended"
    )))
}

/// Writes `batch`, answers each placement, then gives its slot back.
async fn write(
    db: Database,
    cache: ProductCache,
    batch: Vec<Waiting>,
    _slot: OwnedSemaphorePermit,
) {
    if batch.len() == 1 {
        for waiting in batch {
            let outcome = place_one(&db, &cache, &waiting.placement).await;
            // The caller may have gone away; its order is placed all the same.
            let _ = waiting.answer.send(outcome);
        }
        return;
    }
    let placements: Vec<&Placement> = batch.iter().map(|waiting| &waiting.placement).collect();
    let outcomes = match together(&db, &placements).await {
        Ok(Ended { outcomes, moved }) => {
            cache.invalidate(&moved).await;
            outcomes
        }
        Err(Refusal::Failed(error)) => {
            placements.iter().map(|_| Err(shared(&error).into())).collect()
        }
        Err(Refusal::Alone) => {
            let mut outcomes = Vec::with_capacity(placements.len());
            for placement in &placements {
                outcomes.push(place_one(&db, &cache, placement).await);
            }
            outcomes
        }
    };
    for (waiting, outcome) in batch.into_iter().zip(outcomes) {
        let _ = waiting.answer.send(outcome);
    }
}

/// A batch whose transaction ended.
struct Ended {
    /// Each placement's outcome, in the batch's order.
    outcomes: Vec<Outcome>,
    /// The products whose stock the batch moved.
    moved: Vec<ProductId>,
}

/// Why a batch was not written.
enum Refusal {
    /// Something may concern one placement only: each is written alone.
    Alone,
    /// The store failed: every placement fails with this error.
    Failed(StoreError),
}

/// Writes every placement of `batch` the stock serves in one transaction.
async fn together(db: &Database, batch: &[&Placement]) -> Result<Ended, Refusal> {
    let engine = db.engine();
    let tx = db
        .begin_write()
        .await
        .map_err(|error| Refusal::Failed(store("starting to place orders")(error)))?;
    let ids: BTreeSet<ProductId> =
        batch.iter().flat_map(|placement| product_ids(&placement.order)).collect();
    let mut read = product::Entity::find()
        .filter(product::Column::Id.is_in(ids.iter().map(|id| id.into_uuid())))
        .order_by_asc(product::Column::Id);
    if engine == Engine::Postgres {
        read = read.lock(LockType::Update);
    }
    let rows = read
        .into_partial_model::<product::Readable>()
        .all(&*tx)
        .await
        .map_err(|error| Refusal::Failed(store("reading the stock of orders")(error)))?;
    let mut stock: HashMap<ProductId, product::Readable> =
        rows.into_iter().map(|row| (ProductId::from_uuid(row.id), row)).collect();

    // Serve the placements in turn from the stock as the earlier ones left it.
    let encode = db.event_data().as_ref();
    let mut outbox = Outbox::default();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut served = Vec::new();
    let mut taken: BTreeMap<ProductId, Take> = BTreeMap::new();
    for placement in batch {
        let wanted = takes(&placement.order);
        if let Some(refused) = unserved(&wanted, |id| stock.get(&id)) {
            outcomes.push(Err(refused));
            continue;
        }
        outbox.order(encode, &placement.order, 0).map_err(Refusal::Failed)?;
        for take in &wanted {
            let Some(row) = stock.get_mut(&take.product_id) else { return Err(Refusal::Alone) };
            row.stock -= take.quantity;
            row.version += 1;
            let moved = Product::try_from(row.clone())
                .map_err(|error| Refusal::Failed(StoreError::Unexpected(error)))?;
            outbox.stock_changed(encode, &moved, placement.placed.at).map_err(Refusal::Failed)?;
            let total = taken.entry(take.product_id).or_insert(Take {
                product_id: take.product_id,
                quantity: 0,
                orders: 0,
            });
            total.quantity += take.quantity;
            total.orders += 1;
        }
        outcomes.push(Ok(()));
        served.push(*placement);
    }
    if served.is_empty() {
        tx.rollback().await.map_err(|error| Refusal::Failed(store("ending a read")(error)))?;
        return Ok(Ended { outcomes, moved: Vec::new() });
    }

    for completion in served.iter().filter_map(|placement| placement.completion.as_ref()) {
        if !idempotency::complete(&*tx, completion).await.map_err(Refusal::Failed)? {
            // That key's claim lapsed: its placement fails alone, the others do not.
            return Err(Refusal::Alone);
        }
    }
    let taken: Vec<Take> = taken.into_values().collect();
    let moved = reserve(&tx, engine, &taken).await.map_err(Refusal::Failed)?;
    if moved.len() != taken.len() {
        // Locked or written by this instance's one writer, the stock cannot have moved: each
        // placement alone says what happened.
        return Err(Refusal::Alone);
    }
    let placed: Vec<(&Order, &OrderTransition)> =
        served.iter().map(|placement| (&placement.order, &placement.placed)).collect();
    insert_orders(&tx, engine, &placed, outbox).await.map_err(|failure| match failure {
        PlaceOrderFailure::Store(error) => Refusal::Failed(error),
        // A customer deleted meanwhile refuses the one order of theirs.
        _ => Refusal::Alone,
    })?;
    let committed = tx.commit().await;
    let moved = taken.iter().map(|take| take.product_id).collect();
    if let Err(error) = committed {
        // Every order fails, the refused ones too: their refusals counted on the stock the
        // served ones took, which is back.
        let error = store("committing orders")(error);
        for outcome in &mut outcomes {
            *outcome = Err(shared(&error).into());
        }
    }
    Ok(Ended { outcomes, moved })
}
