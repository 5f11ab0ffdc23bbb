//! Orders, their items and their history in SeaORM.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    ports::{
        Completion, EventData, OrderFilter, OrderQueries, OrderRepository, OrderWriteError,
        OverdueBatch, OverdueClaim, OverdueCursor, PlaceOrderFailure, UnreadableOrder,
    },
};
use orderly_domain::{
    Order, OrderId, OrderStatus, OrderTransition, PaymentDue, PaymentStatus, Product, ProductId,
    order::SETTLEMENT_ATTEMPTS, time::Timestamp,
};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait as _,
    FromQueryResult as _, IntoActiveModel as _, PaginatorTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, QueryTrait as _, Statement, TransactionTrait as _,
    sea_query::{
        Alias, CommonTableExpression, Condition, Expr, ExprTrait as _, LockBehavior, LockType,
        Query, SqliteQueryBuilder, Values, WithClause,
    },
};

use super::{
    Database, Engine, WriteTransaction,
    error::{Failure, classify, store},
    idempotency,
    keyset::{self, Direction},
    mapping::{
        item_rows, order_from_rows, order_row, payment_columns, transition_row, version_to_db,
    },
    outbox::{Encoder, Outbox},
    placements::{Placement, Placements},
};
use crate::{
    entity::{order, order_item, order_transition, product},
    services::ProductCache,
};

/// [`OrderRepository`] and [`OrderQueries`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmOrderRepository {
    db: Database,
    products: ProductCache,
    /// Where placements queue to be written together (ADR 0042).
    placements: Arc<Placements>,
}

impl SeaOrmOrderRepository {
    #[must_use]
    pub fn new(db: Database) -> Self {
        let placements = Arc::new(Placements::new(db.engine(), db.pool_status().max));
        Self { db, products: ProductCache::disabled(), placements }
    }

    /// Registers `orderly_order_batch_size`, the orders placed together in one transaction
    /// (ADR 0042), in `registry`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.placements.sizes().clone()))
    }

    /// Drops the entries of the products whose stock an order takes or gives back from
    /// `cache`, once the write's transaction has ended (ADR 0025).
    #[must_use]
    pub fn invalidating(mut self, cache: ProductCache) -> Self {
        self.products = cache;
        self
    }
}

/// The products an order holds stock of.
pub(super) fn product_ids(order: &Order) -> Vec<ProductId> {
    order.items().iter().map(|item| item.product_id()).collect()
}

/// The stock change of every item, in product-id order: the order in which all writers lock
/// product rows, so that two orders for the same products cannot deadlock.
fn stock_changes(order: &Order) -> Vec<(ProductId, i64)> {
    let mut changes: Vec<(ProductId, i64)> = order
        .items()
        .iter()
        .map(|item| (item.product_id(), i64::from(item.quantity().get())))
        .collect();
    changes.sort_by_key(|(id, _)| *id);
    changes
}

/// Stock taken from one product by one write: `quantity` units by `orders` orders, each of
/// which moves the product's version by one (its `product.stock_changed` event has a version of
/// its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Take {
    pub(super) product_id: ProductId,
    pub(super) quantity: i64,
    pub(super) orders: i64,
}

/// The stock one order takes, in product-id order.
pub(super) fn takes(order: &Order) -> Vec<Take> {
    stock_changes(order)
        .into_iter()
        .map(|(product_id, quantity)| Take { product_id, quantity, orders: 1 })
        .collect()
}

/// Takes the stock of every take in one conditional `UPDATE ... FROM (VALUES ...)`: a product
/// loses its take's quantity only if that many are left and it is not archived. The database's
/// row locks make it safe against concurrent orders; whether every line was served is the
/// count of the rows it returns. On PostgreSQL the rows are first locked in product-id order (a
/// `SELECT ... ORDER BY id FOR UPDATE` in the same statement), the order every writer follows,
/// so that two orders for the same products cannot deadlock; SQLite serializes writers anyway.
///
/// Returns the products it moved as they are after the move (`RETURNING`), in product-id order,
/// for their `product.stock_changed` events: no second read of the same rows.
pub(super) async fn reserve(
    tx: &DatabaseTransaction,
    engine: Engine,
    takes: &[Take],
) -> Result<Vec<product::Readable>, StoreError> {
    let line = Alias::new("line");
    let line_product = Alias::new("product_id");
    let line_quantity = Alias::new("quantity");
    let line_orders = Alias::new("orders");
    let lines = CommonTableExpression::new()
        .table_name(line.clone())
        .columns([line_product.clone(), line_quantity.clone(), line_orders.clone()])
        .values(
            takes
                .iter()
                .map(|take| {
                    Values(vec![
                        take.product_id.into_uuid().into(),
                        take.quantity.into(),
                        take.orders.into(),
                    ])
                })
                .collect(),
        )
        .to_owned();
    let column = |column: product::Column| Expr::col((product::Entity, column));
    let mut update = Query::update();
    update
        .table(product::Entity)
        .value(
            product::Column::Stock,
            column(product::Column::Stock).sub(Expr::col((line.clone(), line_quantity.clone()))),
        )
        .value(
            product::Column::Version,
            column(product::Column::Version).add(Expr::col((line.clone(), line_orders))),
        )
        .from(line.clone())
        .and_where(column(product::Column::Id).equals((line.clone(), line_product)))
        .and_where(column(product::Column::Archived).eq(false))
        .and_where(column(product::Column::Stock).gte(Expr::col((line, line_quantity))));
    let mut with = WithClause::new();
    with.cte(lines);
    if engine == Engine::Postgres {
        let locked = Alias::new("locked");
        let lock = Query::select()
            .column((product::Entity, product::Column::Id))
            .from(product::Entity)
            .and_where(
                column(product::Column::Id)
                    .is_in(takes.iter().map(|take| take.product_id.into_uuid())),
            )
            .order_by((product::Entity, product::Column::Id), sea_orm::Order::Asc)
            .lock(LockType::Update)
            .to_owned();
        with.cte(CommonTableExpression::new().query(lock).table_name(locked.clone()).to_owned());
        update.from(locked.clone()).and_where(
            Expr::col((locked, product::Column::Id)).equals((product::Entity, product::Column::Id)),
        );
    }
    // Qualified on PostgreSQL, where the `locked` CTE has an `id` too; SQLite's `RETURNING` may
    // only name the updated table's columns, unqualified.
    let returned = READABLE_COLUMNS.iter().map(|column| match engine {
        Engine::Postgres => Expr::col((product::Entity, *column)),
        Engine::Sqlite => Expr::col(*column),
    });
    update.returning(Query::returning().exprs(returned));
    let rows = tx.query_all(&with.query(update)).await.map_err(store("reserving stock"))?;
    let mut moved = rows
        .iter()
        .map(|row| product::Readable::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()
        .map_err(store("reading the stock an order moved"))?;
    moved.sort_by_key(|row| row.id);
    Ok(moved)
}

/// The columns of [`product::Readable`], which the reservation returns.
const READABLE_COLUMNS: [product::Column; 13] = [
    product::Column::Id,
    product::Column::Sku,
    product::Column::Name,
    product::Column::Description,
    product::Column::PriceAmount,
    product::Column::PriceCurrency,
    product::Column::Stock,
    product::Column::Archived,
    product::Column::RatingCount,
    product::Column::RatingSum,
    product::Column::Version,
    product::Column::CreatedAt,
    product::Column::UpdatedAt,
];

/// Why a reservation did not serve every line, read after its transaction was rolled back: the
/// first line (in product-id order) whose product is gone, archived or short.
async fn shortage(db: &Database, takes: &[Take]) -> PlaceOrderFailure {
    let rows = product::Entity::find()
        .filter(product::Column::Id.is_in(takes.iter().map(|take| take.product_id.into_uuid())))
        .into_partial_model::<product::Readable>()
        .all(db.connection())
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => return store("reading stock after a refused reservation")(error).into(),
    };
    let find = |id: ProductId| rows.iter().find(|row| row.id == id.into_uuid());
    unserved(takes, find).unwrap_or_else(|| {
        // Every line could be served now: the stock moved between the two reads.
        StoreError::Contention(anyhow::anyhow!(
            "the stock changed while the order was being placed"
        ))
        .into()
    })
}

/// The first take (in product-id order) that the products as `find` gives them cannot serve:
/// the product is gone or archived, or has fewer units left; `None` when all can be served.
pub(super) fn unserved<'a>(
    takes: &[Take],
    find: impl Fn(ProductId) -> Option<&'a product::Readable>,
) -> Option<PlaceOrderFailure> {
    takes.iter().find_map(|take| match find(take.product_id) {
        Some(row) if !row.archived && row.stock >= take.quantity => None,
        Some(row) if !row.archived => Some(PlaceOrderFailure::InsufficientStock {
            product_id: take.product_id,
            requested: u32::try_from(take.quantity).unwrap_or(u32::MAX),
            available: u32::try_from(row.stock).unwrap_or(0),
        }),
        _ => Some(PlaceOrderFailure::ProductUnavailable { product_id: take.product_id }),
    })
}

/// Inserts new orders, their items, their first history entries and the events of `outbox`:
/// one statement on PostgreSQL (the `INSERT`s as data-modifying CTEs; the foreign keys are
/// checked at its end), one call of four statements on SQLite.
pub(super) async fn insert_orders(
    tx: &DatabaseTransaction,
    engine: Engine,
    placed: &[(&Order, &OrderTransition)],
    outbox: Outbox,
) -> Result<(), PlaceOrderFailure> {
    let rows = placed
        .iter()
        .map(|(order, _)| order_row(order).map(|row| row.into_active_model()))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(StoreError::Unexpected)?;
    let order_insert = order::Entity::insert_many(rows);
    let items_insert = order_item::Entity::insert_many(
        placed.iter().flat_map(|(order, _)| item_rows(order)).map(|row| row.into_active_model()),
    );
    let history_insert = order_transition::Entity::insert_many(
        placed.iter().map(|(_, entry)| transition_row(entry)),
    );
    // An order's row is the one that can be refused: by its customer's foreign key (the
    // account was deleted meanwhile) or, in theory, by its id.
    let refused = |error| match classify(error, "inserting an order") {
        Failure::ForeignKeyViolation => PlaceOrderFailure::UnknownCustomer,
        Failure::UniqueViolation => PlaceOrderFailure::Store(StoreError::Unexpected(
            anyhow::anyhow!("an order id was generated twice"),
        )),
        Failure::Store(store) => PlaceOrderFailure::Store(store),
    };
    if engine == Engine::Postgres {
        let cte = |name: &str, insert: sea_orm::sea_query::InsertStatement| {
            CommonTableExpression::new().query(insert).table_name(Alias::new(name)).to_owned()
        };
        let mut with = WithClause::new();
        with.cte(cte("placed_order", order_insert.into_query()))
            .cte(cte("placed_items", items_insert.into_query()));
        // One INSERT for all the events, so their positions follow the outbox's order.
        if let Some(events) = outbox.into_insert() {
            with.cte(cte("placed_events", events));
        }
        tx.execute(&with.query(history_insert.into_query())).await.map_err(refused)?;
        return Ok(());
    }
    // SQLite: the `INSERT`s as one string of statements, run in one call (sqlx binds each
    // statement's parameters in turn): one trip to the connection's thread instead of four,
    // while the instance's write lock is held.
    let statements =
        [order_insert.into_query(), items_insert.into_query(), history_insert.into_query()]
            .into_iter()
            .chain(outbox.into_insert());
    let mut sql = String::new();
    let mut values = Vec::new();
    for statement in statements {
        let (text, statement_values) = statement.build(SqliteQueryBuilder);
        sql.push_str(&text);
        sql.push_str(";\n");
        values.extend(statement_values.0);
    }
    tx.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
        .await
        .map_err(refused)?;
    Ok(())
}

/// Places one order in a transaction of its own: its stock taken by a conditional update, then
/// the order, its history, its events and the idempotent response written; on a refused
/// reservation, what refused it read after the rollback. The product cache forgets the
/// order's products once the transaction has ended.
pub(super) async fn place_one(
    db: &Database,
    cache: &ProductCache,
    placement: &Placement,
) -> Result<(), PlaceOrderFailure> {
    let Placement { order, placed, completion } = placement;
    let tx = db.begin_write().await.map_err(store("starting to place an order"))?;
    let takes = takes(order);
    let moved = reserve(&tx, db.engine(), &takes).await?;
    if moved.len() != takes.len() {
        tx.rollback().await.map_err(store("rolling back a refused reservation"))?;
        return Err(shortage(db, &takes).await);
    }
    let mut outbox = Outbox::default();
    let encode = db.event_data().as_ref();
    outbox.order(encode, order, 0)?;
    for row in moved {
        let moved = Product::try_from(row).map_err(StoreError::Unexpected)?;
        outbox.stock_changed(encode, &moved, placed.at)?;
    }
    insert_orders(&tx, db.engine(), &[(order, placed)], outbox).await?;
    record_completion(&tx, completion.as_ref()).await?;
    let committed = tx.commit().await;
    cache.invalidate(&product_ids(order)).await;
    committed.map_err(store("committing an order"))?;
    Ok(())
}

/// Gives stock back when an order is cancelled or expires.
async fn release(tx: &DatabaseTransaction, order: &Order) -> Result<(), StoreError> {
    for (product_id, quantity) in stock_changes(order) {
        product::Entity::update_many()
            .col_expr(product::Column::Stock, Expr::col(product::Column::Stock).add(quantity))
            .col_expr(product::Column::Version, Expr::col(product::Column::Version).add(1))
            .filter(product::Column::Id.eq(product_id.into_uuid()))
            .exec(tx)
            .await
            .map_err(store("releasing stock"))?;
    }
    Ok(())
}

/// Loads the items of `rows` in one query (no N+1) and rebuilds each aggregate; a row that does
/// not make an order is an error in its place.
async fn rebuild(
    conn: &impl ConnectionTrait,
    rows: Vec<order::Model>,
) -> Result<Vec<Result<Order, UnreadableOrder>>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<_> = rows.iter().map(|row| row.id).collect();
    let items = order_item::Entity::find()
        .filter(order_item::Column::OrderId.is_in(ids))
        .order_by_asc(order_item::Column::OrderId)
        .order_by_asc(order_item::Column::ProductId)
        .all(conn)
        .await
        .map_err(store("reading order items"))?;
    let mut by_order: HashMap<_, Vec<order_item::Model>> = HashMap::new();
    for item in items {
        by_order.entry(item.order_id).or_default().push(item);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = OrderId::from_uuid(row.id);
            let items = by_order.remove(&row.id).unwrap_or_default();
            order_from_rows(row, items).map_err(|error| UnreadableOrder { id, error })
        })
        .collect())
}

/// [`rebuild`] where one unreadable order fails the whole read.
async fn with_items(
    conn: &impl ConnectionTrait,
    rows: Vec<order::Model>,
) -> Result<Vec<Order>, StoreError> {
    rebuild(conn, rows)
        .await?
        .into_iter()
        .map(|order| order.map_err(|unreadable| StoreError::Unexpected(unreadable.into())))
        .collect()
}

/// Sets the order's version, update time and payment columns on `update`.
fn with_payment(
    update: sea_orm::UpdateMany<order::Entity>,
    order: &Order,
) -> Result<sea_orm::UpdateMany<order::Entity>, StoreError> {
    let version = version_to_db(order.version()).map_err(StoreError::Unexpected)?;
    let payment = payment_columns(order);
    Ok(update
        .col_expr(order::Column::Version, Expr::value(version))
        .col_expr(order::Column::UpdatedAt, Expr::value(order.updated_at()))
        .col_expr(order::Column::PaymentReference, Expr::value(payment.reference))
        .col_expr(order::Column::PaymentStatus, Expr::value(payment.status))
        .col_expr(order::Column::PaymentAmount, Expr::value(payment.amount))
        .col_expr(order::Column::PaymentCreatedAt, Expr::value(payment.created_at))
        .col_expr(order::Column::PaymentUpdatedAt, Expr::value(payment.updated_at))
        .col_expr(order::Column::PaymentAttempt, Expr::value(payment.attempt))
        .col_expr(order::Column::PaymentFailures, Expr::value(payment.failures)))
}

/// Records an idempotent response in the effect's transaction; a lost claim fails the write (the
/// transaction is dropped, so nothing of it is kept).
async fn record_completion(
    tx: &DatabaseTransaction,
    completion: Option<&Completion>,
) -> Result<(), StoreError> {
    let Some(completion) = completion else { return Ok(()) };
    if idempotency::complete(tx, completion).await? {
        Ok(())
    } else {
        Err(StoreError::Contention(anyhow::anyhow!(
            "the idempotency key's claim lapsed and was taken over while the request ran"
        )))
    }
}

/// Adds a `product.stock_changed` event for each product whose stock `order` took or gave
/// back, each product as it is now within `tx` (after the move).
async fn stock_events(
    tx: &DatabaseTransaction,
    encode: &dyn EventData,
    order: &Order,
    at: Timestamp,
    outbox: &mut Outbox,
) -> Result<(), StoreError> {
    let rows = product::Entity::find()
        .filter(product::Column::Id.is_in(product_ids(order).into_iter().map(ProductId::into_uuid)))
        .order_by_asc(product::Column::Id)
        .into_partial_model::<product::Readable>()
        .all(tx)
        .await
        .map_err(store("reading the stock an order moved"))?;
    for row in rows {
        let moved = Product::try_from(row).map_err(StoreError::Unexpected)?;
        outbox.stock_changed(encode, &moved, at)?;
    }
    Ok(())
}

/// Why a conditional update of an order touched no row: it is gone, or it moved on.
async fn refused(tx: &DatabaseTransaction, id: OrderId) -> OrderWriteError {
    match order::Entity::find_by_id(id.into_uuid()).one(tx).await {
        Ok(Some(_)) => OrderWriteError::Stale,
        Ok(None) => OrderWriteError::NotFound,
        Err(error) => {
            OrderWriteError::Store(store("checking an order after a refused update")(error))
        }
    }
}

/// Within `tx`: the guarded status and payment update, the history entry, the stock given
/// back when the transition releases it, and the events of it all.
async fn write_transition(
    tx: &DatabaseTransaction,
    encode: &dyn EventData,
    order: &Order,
    entry: &OrderTransition,
    expected_version: u64,
) -> Result<(), OrderWriteError> {
    let from = entry.from.ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!("a transition without a from status"))
    })?;
    let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
    let result = with_payment(order::Entity::update_many(), order)?
        .col_expr(order::Column::Status, Expr::value(entry.to.as_str()))
        .filter(order::Column::Id.eq(order.id().into_uuid()))
        .filter(order::Column::Version.eq(expected))
        .filter(order::Column::Status.eq(from.as_str()))
        .exec(tx)
        .await
        .map_err(store("updating an order's status"))?;
    if result.rows_affected != 1 {
        return Err(refused(tx, order.id()).await);
    }
    order_transition::Entity::insert(transition_row(entry))
        .exec_without_returning(tx)
        .await
        .map_err(store("writing order history"))?;
    let mut outbox = Outbox::default();
    outbox.order(encode, order, expected_version)?;
    if entry.releases_stock() {
        release(tx, order).await?;
        stock_events(tx, encode, order, entry.at, &mut outbox).await?;
    }
    outbox.write(tx).await?;
    Ok(())
}

#[async_trait]
impl OrderRepository for SeaOrmOrderRepository {
    async fn place(
        &self,
        order: &Order,
        placed: &OrderTransition,
        completion: Option<Completion>,
    ) -> Result<(), PlaceOrderFailure> {
        let placement = Placement { order: order.clone(), placed: placed.clone(), completion };
        self.placements.place(&self.db, &self.products, placement).await
    }

    async fn find_by_id(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let conn = self.db.connection();
        let row = order::Entity::find_by_id(id.into_uuid())
            .one(conn)
            .await
            .map_err(store("reading an order"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(with_items(conn, vec![row]).await?.pop())
    }

    async fn save_transition(
        &self,
        order: &Order,
        entry: &OrderTransition,
        expected_version: u64,
        completion: Option<Completion>,
    ) -> Result<(), OrderWriteError> {
        let tx = self.db.begin_write().await.map_err(store("starting a transition"))?;
        write_transition(&tx, self.db.event_data().as_ref(), order, entry, expected_version)
            .await?;
        record_completion(&tx, completion.as_ref()).await?;
        let committed = tx.commit().await;
        if entry.releases_stock() {
            self.products.invalidate(&product_ids(order)).await;
        }
        committed.map_err(store("committing a transition"))?;
        Ok(())
    }

    async fn save_payment(
        &self,
        order: &Order,
        expected_version: u64,
    ) -> Result<(), OrderWriteError> {
        let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to record a payment"))?;
        let result = with_payment(order::Entity::update_many(), order)?
            .filter(order::Column::Id.eq(order.id().into_uuid()))
            .filter(order::Column::Version.eq(expected))
            .exec(&*tx)
            .await
            .map_err(store("recording a payment"))?;
        if result.rows_affected != 1 {
            return Err(refused(&tx, order.id()).await);
        }
        let mut outbox = Outbox::default();
        outbox.order(self.db.event_data().as_ref(), order, expected_version)?;
        outbox.write(&tx).await?;
        tx.commit().await.map_err(store("committing a payment"))?;
        Ok(())
    }

    async fn find_payments_due(
        &self,
        changed_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let conn = self.db.connection();
        // The payment statuses that owe work in some order status (`PaymentDue::of`); the order
        // status then says which work, so the few rows that owe none are left out below.
        let owing = PaymentStatus::ALL.into_iter().filter(|payment| {
            OrderStatus::ALL.into_iter().any(|status| PaymentDue::of(status, *payment).is_some())
        });
        let rows = order::Entity::find()
            .filter(order::Column::PaymentStatus.is_in(owing.map(|payment| payment.as_str())))
            .filter(order::Column::UpdatedAt.lte(changed_before))
            .order_by_asc(order::Column::UpdatedAt)
            .limit(u64::from(limit))
            .all(conn)
            .await
            .map_err(store("finding payments to settle"))?;
        let orders = with_items(conn, rows).await?;
        Ok(orders.into_iter().filter(|order| order.payment_due().is_some()).collect())
    }

    async fn count_payments_needing_attention(&self) -> Result<u64, StoreError> {
        let bound = i32::try_from(SETTLEMENT_ATTEMPTS).unwrap_or(i32::MAX);
        // Failures are reset when the work is done: a count at the bound is work still owed.
        order::Entity::find()
            .filter(order::Column::PaymentFailures.gte(bound))
            .count(self.db.connection())
            .await
            .map_err(store("counting payments that need attention"))
    }

    async fn claim_overdue(
        &self,
        now: Timestamp,
        after: Option<OverdueCursor>,
        limit: u32,
    ) -> Result<OverdueBatch, StoreError> {
        let tx = self.db.begin_write().await.map_err(store("starting to claim overdue orders"))?;
        let mut select = order::Entity::find()
            .filter(order::Column::Status.eq(OrderStatus::PendingPayment.as_str()))
            .filter(order::Column::PaymentDueAt.lte(now));
        if let Some(after) = after {
            select = select.filter(
                Condition::any().add(order::Column::PaymentDueAt.gt(after.due_at)).add(
                    Condition::all()
                        .add(order::Column::PaymentDueAt.eq(after.due_at))
                        .add(order::Column::Id.gt(after.id.into_uuid())),
                ),
            );
        }
        select = select
            .order_by_asc(order::Column::PaymentDueAt)
            .order_by_asc(order::Column::Id)
            .limit(u64::from(limit));
        if self.db.engine() == Engine::Postgres {
            // Rows another instance claimed, or a request is writing, are left for later.
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = select.all(&*tx).await.map_err(store("claiming overdue orders"))?;
        let next = rows.last().map(|row| OverdueCursor {
            due_at: row.payment_due_at,
            id: OrderId::from_uuid(row.id),
        });
        let orders = rebuild(&*tx, rows).await?;
        let claim = Claim {
            tx: Some(tx),
            products: self.products.clone(),
            released: Vec::new(),
            event_data: self.db.event_data().clone(),
        };
        Ok(OverdueBatch { orders, next, claim: Box::new(claim) })
    }
}

/// The transaction of one claimed batch of overdue orders.
struct Claim {
    /// `None` once committed.
    tx: Option<WriteTransaction>,
    products: ProductCache,
    /// The products whose stock the expiries saved so far give back.
    released: Vec<ProductId>,
    event_data: Encoder,
}

impl Claim {
    fn tx(&self) -> Result<&DatabaseTransaction, StoreError> {
        self.tx.as_deref().ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!("an overdue claim used after its commit"))
        })
    }
}

#[async_trait]
impl OverdueClaim for Claim {
    async fn save_expiry(
        &mut self,
        order: &Order,
        entry: &OrderTransition,
        expected_version: u64,
    ) -> Result<(), OrderWriteError> {
        // A savepoint: a failed order is rolled back alone, and the claim stays usable.
        let savepoint = self.tx()?.begin().await.map_err(store("starting an expiry"))?;
        write_transition(&savepoint, self.event_data.as_ref(), order, entry, expected_version)
            .await?;
        savepoint.commit().await.map_err(store("saving an expiry"))?;
        if entry.releases_stock() {
            self.released.extend(product_ids(order));
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        let tx = self.tx.take().ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!("an overdue claim committed twice"))
        })?;
        let committed = tx.commit().await;
        self.products.invalidate(&std::mem::take(&mut self.released)).await;
        committed.map_err(store("committing expired orders"))
    }
}

#[async_trait]
impl OrderQueries for SeaOrmOrderRepository {
    async fn list(
        &self,
        filter: OrderFilter,
        page: PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        let conn = self.db.connection();
        let mut select = order::Entity::find();
        if let Some(user_id) = filter.user_id {
            select = select.filter(order::Column::UserId.eq(user_id.into_uuid()));
        }
        if let Some(status) = filter.status {
            select = select.filter(order::Column::Status.eq(status.as_str()));
        }
        let select = keyset::page(
            select,
            None::<order::Column>,
            order::Column::Id,
            Direction::Descending,
            &page,
        );
        let rows = select.all(conn).await.map_err(store("listing orders"))?;
        let orders = with_items(conn, rows).await?;
        Ok(keyset::finish(orders, &page, |order| Cursor {
            value: SortValue::None,
            id: order.id().into_uuid(),
        }))
    }

    async fn history(&self, id: OrderId) -> Result<Vec<OrderTransition>, StoreError> {
        let rows = order_transition::Entity::find()
            .filter(order_transition::Column::OrderId.eq(id.into_uuid()))
            .order_by_asc(order_transition::Column::Id)
            .all(self.db.connection())
            .await
            .map_err(store("reading order history"))?;
        rows.into_iter()
            .map(|row| {
                OrderTransition::try_from(row)
                    .context("reading order history")
                    .map_err(StoreError::Unexpected)
            })
            .collect()
    }
}
