//! The transactional outbox (issue 20): the events of a change, written in the change's own
//! transaction, so that there is no change without its event and no event without its change.
//! Relays publish them afterwards; see `migrations` 15 for the table.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_application::{
    StoreError,
    events::{Outbox as OutboxPort, OutboxBatch, OutboxClaim, OutboxEvent},
    ports::EventData,
};
use orderly_domain::{
    EventType, Order, Product, ProductId, User, UserId, Uuid, event::Recorded, time::Timestamp,
};
use sea_orm::{
    ActiveValue::NotSet,
    ColumnTrait as _, DatabaseTransaction, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, QueryTrait as _, Set,
    sea_query::{Expr, InsertStatement, LockBehavior, LockType},
};

use super::{
    Database, Engine, WriteTransaction,
    error::store,
    mapping::{version_from_db, version_to_db},
};
use crate::entity::outbox_event;

/// The events to write in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    rows: Vec<outbox_event::ActiveModel>,
}

impl Outbox {
    /// Adds one event about `aggregate_id` at `version`.
    fn push(
        &mut self,
        event_type: EventType,
        aggregate_id: Uuid,
        version: u64,
        at: Timestamp,
        data: String,
    ) -> Result<(), StoreError> {
        let version = version_to_db(version).map_err(StoreError::Unexpected)?;
        self.rows.push(outbox_event::ActiveModel {
            position: NotSet,
            id: Set(Uuid::now_v7()),
            event_type: Set(event_type.name().to_owned()),
            aggregate: Set(event_type.aggregate().as_str().to_owned()),
            aggregate_id: Set(aggregate_id),
            aggregate_version: Set(version),
            occurred_at: Set(at),
            data: Set(data),
            published_at: Set(None),
            webhooks_scheduled_at: Set(None),
        });
        Ok(())
    }

    fn recorded<'a>(
        &mut self,
        events: impl Iterator<Item = &'a Recorded>,
        aggregate_id: Uuid,
        data: impl Fn() -> String,
    ) -> Result<(), StoreError> {
        let events: Vec<&Recorded> = events.collect();
        if events.is_empty() {
            return Ok(());
        }
        // Encoded once for all the events of one write.
        let data = data();
        for recorded in events {
            let data = data.clone();
            self.push(recorded.event_type, aggregate_id, recorded.version, recorded.at, data)?;
        }
        Ok(())
    }

    /// The events `order` recorded after `version` (the one the write replaces).
    pub(crate) fn order(
        &mut self,
        encode: &dyn EventData,
        order: &Order,
        version: u64,
    ) -> Result<(), StoreError> {
        self.recorded(order.changes().after(version), order.id().into_uuid(), || {
            encode.order(order)
        })
    }

    /// The events `product` recorded after `version` (the one the write replaces).
    pub(crate) fn product(
        &mut self,
        encode: &dyn EventData,
        product: &Product,
        version: u64,
    ) -> Result<(), StoreError> {
        self.recorded(product.changes().after(version), product.id().into_uuid(), || {
            encode.product(product)
        })
    }

    /// A product's stock moved by an order (taken or given back), read back after the move.
    pub(crate) fn stock_changed(
        &mut self,
        encode: &dyn EventData,
        product: &Product,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let id: ProductId = product.id();
        let data = encode.product(product);
        self.push(EventType::ProductStockChanged, id.into_uuid(), product.version(), at, data)
    }

    /// A user registered.
    pub(crate) fn registered(
        &mut self,
        encode: &dyn EventData,
        user: &User,
    ) -> Result<(), StoreError> {
        let data = encode.user(user);
        let (id, version, at) = (user.id().into_uuid(), user.version(), user.created_at());
        self.push(EventType::UserRegistered, id, version, at, data)
    }

    /// A user deleted, at `version` (its last) and `at`.
    pub(crate) fn deleted(
        &mut self,
        encode: &dyn EventData,
        id: UserId,
        version: u64,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let data = encode.deleted_user(id);
        self.push(EventType::UserDeleted, id.into_uuid(), version, at, data)
    }

    /// The one `INSERT` of the events, to fold into a larger statement; `None` when there are
    /// none.
    pub(crate) fn into_insert(self) -> Option<InsertStatement> {
        if self.rows.is_empty() {
            return None;
        }
        Some(outbox_event::Entity::insert_many(self.rows).into_query())
    }

    /// Writes the events within `tx`.
    pub(crate) async fn write(self, tx: &DatabaseTransaction) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        outbox_event::Entity::insert_many(self.rows)
            .exec_without_returning(tx)
            .await
            .map_err(store("writing events to the outbox"))?;
        Ok(())
    }
}

/// The representation the store writes when no one gave it the API's (tests of this crate and
/// anything that writes without the server's wiring): the resource's id and version only.
#[derive(Debug, Default)]
pub struct IdOnly;

impl EventData for IdOnly {
    fn order(&self, order: &Order) -> String {
        format!(r#"{{"id":"{}","version":{}}}"#, order.id(), order.version())
    }

    fn product(&self, product: &Product) -> String {
        format!(r#"{{"id":"{}","version":{}}}"#, product.id(), product.version())
    }

    fn user(&self, user: &User) -> String {
        format!(r#"{{"id":"{}","version":{}}}"#, user.id(), user.version())
    }

    fn deleted_user(&self, id: UserId) -> String {
        format!(r#"{{"id":"{id}"}}"#)
    }
}

/// The shared handle on an [`EventData`].
pub(crate) type Encoder = Arc<dyn EventData>;

/// [`Outbox`] on SeaORM: the relay's side of `outbox_events`.
#[derive(Debug, Clone)]
pub struct SeaOrmOutbox {
    db: Database,
}

impl SeaOrmOutbox {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Only the oldest unpublished event of its resource: the next is claimable once it is
/// published, so one resource's events go out in order whatever the instances do.
const FIRST_OF_ITS_RESOURCE: &str = "NOT EXISTS (SELECT 1 FROM outbox_events AS earlier \
     WHERE earlier.aggregate_id = outbox_events.aggregate_id \
     AND earlier.published_at IS NULL AND earlier.position < outbox_events.position)";

pub(crate) fn to_event(row: outbox_event::Model) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: row.id,
        event_type: row.event_type,
        aggregate: row.aggregate,
        aggregate_id: row.aggregate_id,
        aggregate_version: version_from_db(row.aggregate_version)
            .map_err(StoreError::Unexpected)?,
        occurred_at: row.occurred_at,
        data: row.data,
    })
}

#[async_trait]
impl OutboxPort for SeaOrmOutbox {
    async fn claim(&self, limit: u32) -> Result<OutboxBatch, StoreError> {
        let select = outbox_event::Entity::find()
            .filter(outbox_event::Column::PublishedAt.is_null())
            .filter(Expr::cust(FIRST_OF_ITS_RESOURCE))
            .order_by_asc(outbox_event::Column::Position)
            .limit(u64::from(limit));
        if self.db.engine() == Engine::Postgres {
            let tx = self.db.begin_write().await.map_err(store("starting an outbox claim"))?;
            let rows = select
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&*tx)
                .await
                .map_err(store("claiming outbox events"))?;
            let events = rows.into_iter().map(to_event).collect::<Result<_, _>>()?;
            return Ok(OutboxBatch { events, claim: Box::new(Locked { tx }) });
        }
        let rows =
            select.all(self.db.connection()).await.map_err(store("reading outbox events"))?;
        let events = rows.into_iter().map(to_event).collect::<Result<_, _>>()?;
        Ok(OutboxBatch { events, claim: Box::new(Unlocked { db: self.db.clone() }) })
    }

    async fn purge_published(&self, before: Timestamp) -> Result<u64, StoreError> {
        let result = outbox_event::Entity::delete_many()
            .filter(outbox_event::Column::PublishedAt.lte(before))
            .filter(outbox_event::Column::WebhooksScheduledAt.is_not_null())
            .exec(self.db.connection())
            .await
            .map_err(store("purging published events"))?;
        Ok(result.rows_affected)
    }

    async fn purge_written_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let result = outbox_event::Entity::delete_many()
            .filter(outbox_event::Column::OccurredAt.lt(before))
            .filter(outbox_event::Column::WebhooksScheduledAt.is_not_null())
            .exec(self.db.connection())
            .await
            .map_err(store("purging old events"))?;
        Ok(result.rows_affected)
    }

    async fn oldest_unpublished(&self) -> Result<Option<Timestamp>, StoreError> {
        let oldest = outbox_event::Entity::find()
            .filter(outbox_event::Column::PublishedAt.is_null())
            .order_by_asc(outbox_event::Column::Position)
            .one(self.db.connection())
            .await
            .map_err(store("reading the oldest unpublished event"))?;
        Ok(oldest.map(|row| row.occurred_at))
    }
}

/// Marks `ids` published at `at` within `conn`.
async fn mark(
    conn: &impl sea_orm::ConnectionTrait,
    ids: &[Uuid],
    at: Timestamp,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox_event::Entity::update_many()
        .col_expr(outbox_event::Column::PublishedAt, Expr::value(at))
        .filter(outbox_event::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox_event::Column::PublishedAt.is_null())
        .exec(conn)
        .await
        .map_err(store("marking events published"))?;
    Ok(())
}

/// A PostgreSQL claim: the events' rows stay locked until it ends.
struct Locked {
    tx: WriteTransaction,
}

#[async_trait]
impl OutboxClaim for Locked {
    async fn finish(self: Box<Self>, ids: &[Uuid], at: Timestamp) -> Result<(), StoreError> {
        mark(&*self.tx, ids, at).await?;
        self.tx.commit().await.map_err(store("committing published events"))
    }
}

/// An SQLite claim: nothing is locked; marking is a short write of its own.
struct Unlocked {
    db: Database,
}

#[async_trait]
impl OutboxClaim for Unlocked {
    async fn finish(self: Box<Self>, ids: &[Uuid], at: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().await.map_err(store("starting to mark events"))?;
        mark(&*tx, ids, at).await?;
        tx.commit().await.map_err(store("committing published events"))
    }
}
