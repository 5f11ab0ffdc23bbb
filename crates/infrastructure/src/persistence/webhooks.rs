//! Webhook endpoints and deliveries in SeaORM, and the delivery workers' queue: scheduling the
//! outbox's events for the endpoints that want them, and claiming the deliveries due.

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    webhooks::ports::{DeliveryQueue, DueDelivery, WebhookStore, WebhookWriteError},
};
use orderly_domain::{
    DeliveryStatus, DisabledReason, EventFilter, EventType, WebhookDelivery, WebhookDeliveryId,
    WebhookDeliveryParts, WebhookEndpoint, WebhookEndpointId, WebhookEndpointParts, WebhookSecret,
    WebhookUrl, time::Timestamp,
};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, EntityTrait as _, IntoActiveModel as _, PaginatorTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _,
    sea_query::{Expr, ExprTrait as _, LockBehavior, LockType, OnConflict, Query},
};

use super::{
    Database, Engine,
    error::store,
    keyset::{self, Direction},
    mapping::{version_from_db, version_to_db},
    outbox::to_event,
};
use crate::{
    entity::{outbox_event, webhook_delivery, webhook_endpoint},
    services::envelope,
};

/// What an endpoint's failed deliveries say when it is disabled.
const ENDPOINT_DISABLED: &str = "the endpoint was disabled";

/// [`WebhookStore`] and [`DeliveryQueue`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmWebhooks {
    db: Database,
}

impl SeaOrmWebhooks {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn to_endpoint(row: webhook_endpoint::Model) -> anyhow::Result<WebhookEndpoint> {
    let disabled = row
        .disabled_reason
        .as_deref()
        .map(|reason| DisabledReason::parse(reason).context("an unknown disabled reason"))
        .transpose()?;
    let previous_secret = match (row.previous_secret, row.previous_secret_until) {
        (Some(secret), Some(until)) => Some((WebhookSecret::new(secret), until)),
        _ => None,
    };
    Ok(WebhookEndpoint::restore(WebhookEndpointParts {
        id: WebhookEndpointId::from_uuid(row.id),
        url: WebhookUrl::parse(&row.url)?,
        event_types: EventFilter::parse(row.event_types.split_whitespace())?,
        disabled,
        secret: WebhookSecret::new(row.secret),
        previous_secret,
        failing_since: row.failing_since,
        version: version_from_db(row.version)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

fn endpoint_row(endpoint: &WebhookEndpoint) -> anyhow::Result<webhook_endpoint::Model> {
    let names: Vec<&str> = endpoint.event_types().types().iter().map(|t| t.name()).collect();
    let previous = endpoint.previous_secret();
    Ok(webhook_endpoint::Model {
        id: endpoint.id().into_uuid(),
        url: endpoint.url().as_str().to_owned(),
        event_types: names.join(" "),
        disabled_reason: endpoint.disabled_reason().map(|reason| reason.as_str().to_owned()),
        secret: endpoint.secret().expose().to_owned(),
        previous_secret: previous.map(|(secret, _)| secret.expose().to_owned()),
        previous_secret_until: previous.map(|(_, until)| *until),
        failing_since: endpoint.failing_since(),
        version: version_to_db(endpoint.version())?,
        created_at: endpoint.created_at(),
        updated_at: endpoint.updated_at(),
    })
}

fn to_delivery(row: webhook_delivery::Model) -> anyhow::Result<WebhookDelivery> {
    Ok(WebhookDelivery::restore(WebhookDeliveryParts {
        id: WebhookDeliveryId::from_uuid(row.id),
        endpoint_id: WebhookEndpointId::from_uuid(row.endpoint_id),
        event_id: row.event_id,
        event_type: row.event_type,
        payload: row.payload,
        status: DeliveryStatus::parse(&row.status).context("an unknown delivery status")?,
        attempts: u32::try_from(row.attempts)?,
        max_attempts: u32::try_from(row.max_attempts)?,
        next_attempt_at: row.next_attempt_at,
        last_attempt_at: row.last_attempt_at,
        response_status: row.response_status.map(u16::try_from).transpose()?,
        last_error: row.last_error,
        created_at: row.created_at,
    }))
}

fn delivery_row(delivery: &WebhookDelivery) -> anyhow::Result<webhook_delivery::Model> {
    let parts = delivery.parts();
    Ok(webhook_delivery::Model {
        id: parts.id.into_uuid(),
        endpoint_id: parts.endpoint_id.into_uuid(),
        event_id: parts.event_id,
        event_type: parts.event_type.clone(),
        payload: parts.payload.clone(),
        status: parts.status.as_str().to_owned(),
        attempts: i32::try_from(parts.attempts)?,
        max_attempts: i32::try_from(parts.max_attempts)?,
        next_attempt_at: parts.next_attempt_at,
        last_attempt_at: parts.last_attempt_at,
        response_status: parts.response_status.map(i32::from),
        last_error: parts.last_error.clone(),
        created_at: parts.created_at,
    })
}

fn unexpected(context: &'static str) -> impl FnOnce(anyhow::Error) -> StoreError {
    move |error| StoreError::Unexpected(error.context(context))
}

/// Fails the pending deliveries of `endpoint` (it was disabled).
async fn abandon_pending(
    conn: &impl ConnectionTrait,
    endpoint: WebhookEndpointId,
) -> Result<(), StoreError> {
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(DeliveryStatus::Failed.as_str()))
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(Option::<Timestamp>::None))
        .col_expr(webhook_delivery::Column::LastError, Expr::value(ENDPOINT_DISABLED))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint.into_uuid()))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(conn)
        .await
        .map_err(store("failing the pending deliveries of a disabled endpoint"))?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SeaOrmWebhooks {
    async fn insert(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let row = endpoint_row(endpoint).map_err(StoreError::Unexpected)?;
        webhook_endpoint::Entity::insert(row.into_active_model())
            .exec_without_returning(self.db.connection())
            .await
            .map_err(store("inserting a webhook endpoint"))?;
        Ok(())
    }

    async fn find(&self, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = webhook_endpoint::Entity::find_by_id(id.into_uuid())
            .one(self.db.connection())
            .await
            .map_err(store("reading a webhook endpoint"))?;
        row.map(to_endpoint).transpose().map_err(unexpected("reading a stored webhook endpoint"))
    }

    async fn list(&self, page: PageRequest) -> Result<Page<WebhookEndpoint>, StoreError> {
        let select = webhook_endpoint::Entity::find();
        let rows = keyset::page(
            select,
            None::<webhook_endpoint::Column>,
            webhook_endpoint::Column::Id,
            Direction::Descending,
            &page,
        )
        .all(self.db.connection())
        .await
        .map_err(store("listing webhook endpoints"))?;
        let endpoints = rows
            .into_iter()
            .map(to_endpoint)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(unexpected("reading a stored webhook endpoint"))?;
        Ok(keyset::finish(endpoints, &page, |endpoint| Cursor {
            value: SortValue::None,
            id: endpoint.id().into_uuid(),
        }))
    }

    async fn update(&self, endpoint: &WebhookEndpoint) -> Result<(), WebhookWriteError> {
        let row = endpoint_row(endpoint).map_err(StoreError::Unexpected)?;
        let expected = version_to_db(endpoint.stored_version()).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to update an endpoint"))?;
        let result = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Url, Expr::value(row.url))
            .col_expr(webhook_endpoint::Column::EventTypes, Expr::value(row.event_types))
            .col_expr(webhook_endpoint::Column::DisabledReason, Expr::value(row.disabled_reason))
            .col_expr(webhook_endpoint::Column::Secret, Expr::value(row.secret))
            .col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(row.previous_secret))
            .col_expr(
                webhook_endpoint::Column::PreviousSecretUntil,
                Expr::value(row.previous_secret_until),
            )
            .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(row.failing_since))
            .col_expr(webhook_endpoint::Column::Version, Expr::value(row.version))
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(webhook_endpoint::Column::Id.eq(row.id))
            .filter(webhook_endpoint::Column::Version.eq(expected))
            .exec(&*tx)
            .await
            .map_err(store("updating a webhook endpoint"))?;
        if result.rows_affected != 1 {
            let exists = webhook_endpoint::Entity::find_by_id(row.id)
                .count(&*tx)
                .await
                .map_err(store("checking an endpoint after a refused write"))?;
            return Err(if exists == 0 {
                WebhookWriteError::NotFound
            } else {
                WebhookWriteError::Stale
            });
        }
        if !endpoint.is_enabled() {
            abandon_pending(&*tx, endpoint.id()).await?;
        }
        tx.commit().await.map_err(store("committing a webhook endpoint"))?;
        Ok(())
    }

    async fn delete(&self, id: WebhookEndpointId) -> Result<(), WebhookWriteError> {
        let tx = self.db.begin_write().await.map_err(store("starting to delete an endpoint"))?;
        // Explicitly, as SQLite enforces the cascade only with its foreign keys switched on.
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id.into_uuid()))
            .exec(&*tx)
            .await
            .map_err(store("deleting the deliveries of an endpoint"))?;
        let result = webhook_endpoint::Entity::delete_by_id(id.into_uuid())
            .exec(&*tx)
            .await
            .map_err(store("deleting a webhook endpoint"))?;
        if result.rows_affected != 1 {
            return Err(WebhookWriteError::NotFound);
        }
        tx.commit().await.map_err(store("committing an endpoint deletion"))?;
        Ok(())
    }

    async fn deliveries(
        &self,
        endpoint: WebhookEndpointId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>, StoreError> {
        let mut select = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint.into_uuid()));
        if let Some(status) = status {
            select = select.filter(webhook_delivery::Column::Status.eq(status.as_str()));
        }
        let rows = keyset::page(
            select,
            None::<webhook_delivery::Column>,
            webhook_delivery::Column::Id,
            Direction::Descending,
            &page,
        )
        .all(self.db.connection())
        .await
        .map_err(store("listing webhook deliveries"))?;
        let deliveries = rows
            .into_iter()
            .map(to_delivery)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(unexpected("reading a stored webhook delivery"))?;
        Ok(keyset::finish(deliveries, &page, |delivery| Cursor {
            value: SortValue::None,
            id: delivery.id().into_uuid(),
        }))
    }

    async fn find_delivery(
        &self,
        id: WebhookDeliveryId,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let row = webhook_delivery::Entity::find_by_id(id.into_uuid())
            .one(self.db.connection())
            .await
            .map_err(store("reading a webhook delivery"))?;
        row.map(to_delivery).transpose().map_err(unexpected("reading a stored webhook delivery"))
    }

    async fn save_delivery(&self, delivery: &WebhookDelivery) -> Result<(), StoreError> {
        let row = delivery_row(delivery).map_err(StoreError::Unexpected)?;
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(row.status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(row.attempts))
            .col_expr(webhook_delivery::Column::MaxAttempts, Expr::value(row.max_attempts))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(row.next_attempt_at))
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(row.last_attempt_at))
            .col_expr(webhook_delivery::Column::ResponseStatus, Expr::value(row.response_status))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(row.last_error))
            .filter(webhook_delivery::Column::Id.eq(row.id))
            .exec(self.db.connection())
            .await
            .map_err(store("saving a webhook delivery"))?;
        Ok(())
    }
}

/// While no endpoint is enabled, how many batches of events one fan-out marks at once.
const IDLE_MARKS_PER_BATCH: u32 = 20;

impl SeaOrmWebhooks {
    /// The positions of the first `limit` events waiting for fan-out; on PostgreSQL locked,
    /// skipping those another instance holds.
    fn waiting_events(&self, limit: u32) -> sea_orm::sea_query::SelectStatement {
        let mut select = Query::select()
            .column(outbox_event::Column::Position)
            .from(outbox_event::Entity)
            .and_where(Expr::col(outbox_event::Column::WebhooksScheduledAt).is_null())
            .order_by(outbox_event::Column::Position, sea_orm::Order::Asc)
            .limit(u64::from(limit))
            .to_owned();
        if self.db.engine() == Engine::Postgres {
            select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        select
    }
}

#[async_trait]
impl DeliveryQueue for SeaOrmWebhooks {
    async fn fan_out(&self, limit: u32, now: Timestamp) -> Result<u32, StoreError> {
        // Idle most of the time: a read, not the one write permit SQLite has, when nothing waits.
        let waiting = outbox_event::Entity::find()
            .select_only()
            .column(outbox_event::Column::Position)
            .filter(outbox_event::Column::WebhooksScheduledAt.is_null())
            .into_tuple::<i64>()
            .one(self.db.connection())
            .await
            .map_err(store("looking for events to schedule"))?;
        if waiting.is_none() {
            return Ok(0);
        }
        let tx = self.db.begin_write().await.map_err(store("starting to schedule deliveries"))?;
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::DisabledReason.is_null())
            .all(&*tx)
            .await
            .map_err(store("reading the enabled webhook endpoints"))?
            .into_iter()
            .map(to_endpoint)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(unexpected("reading a stored webhook endpoint"))?;
        if endpoints.is_empty() {
            // No endpoint wants anything: the waiting events are marked without being read, up
            // to `IDLE_MARKS_PER_BATCH` batches' worth in one statement. An endpoint added later
            // receives only events that occur after it (`WebhookEndpoint::wants`).
            let waiting = self.waiting_events(limit.saturating_mul(IDLE_MARKS_PER_BATCH));
            let marked = outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::WebhooksScheduledAt, Expr::value(now))
                .filter(outbox_event::Column::Position.in_subquery(waiting))
                .exec(&*tx)
                .await
                .map_err(store("marking events no endpoint wants"))?;
            tx.commit().await.map_err(store("committing events no endpoint wants"))?;
            return Ok(u32::try_from(marked.rows_affected).unwrap_or(u32::MAX));
        }
        let mut select = outbox_event::Entity::find()
            .filter(outbox_event::Column::WebhooksScheduledAt.is_null())
            .order_by_asc(outbox_event::Column::Position)
            .limit(u64::from(limit));
        if self.db.engine() == Engine::Postgres {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = select.all(&*tx).await.map_err(store("reading events to schedule"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let positions: Vec<i64> = rows.iter().map(|row| row.position).collect();
        let taken = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        let mut deliveries = Vec::new();
        for row in rows {
            let Some(event_type) = EventType::parse(&row.event_type) else { continue };
            let wanted: Vec<&WebhookEndpoint> =
                endpoints.iter().filter(|e| e.wants(event_type, row.occurred_at)).collect();
            if wanted.is_empty() {
                continue;
            }
            let event = to_event(row)?;
            let body = envelope(&event).map_err(unexpected("encoding an event for webhooks"))?;
            for endpoint in wanted {
                let delivery = WebhookDelivery::schedule(
                    endpoint.id(),
                    event.id,
                    event.event_type.clone(),
                    body.clone(),
                    now,
                );
                let row = delivery_row(&delivery).map_err(StoreError::Unexpected)?;
                deliveries.push(row.into_active_model());
            }
        }
        if !deliveries.is_empty() {
            // A second worker on SQLite (nothing locked) may have scheduled some already.
            webhook_delivery::Entity::insert_many(deliveries)
                .on_conflict(
                    OnConflict::columns([
                        webhook_delivery::Column::EndpointId,
                        webhook_delivery::Column::EventId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&*tx)
                .await
                .map_err(store("scheduling webhook deliveries"))?;
        }
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::WebhooksScheduledAt, Expr::value(now))
            .filter(outbox_event::Column::Position.is_in(positions))
            .exec(&*tx)
            .await
            .map_err(store("marking events scheduled for webhooks"))?;
        tx.commit().await.map_err(store("committing scheduled deliveries"))?;
        Ok(taken)
    }

    async fn claim_due(
        &self,
        limit: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let due = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .into_tuple::<sea_orm::prelude::Uuid>()
            .one(self.db.connection())
            .await
            .map_err(store("looking for due deliveries"))?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_write().await.map_err(store("starting to claim deliveries"))?;
        let enabled = Query::select()
            .column(webhook_endpoint::Column::Id)
            .from(webhook_endpoint::Entity)
            .and_where(Expr::col(webhook_endpoint::Column::DisabledReason).is_null())
            .to_owned();
        let mut select = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(webhook_delivery::Column::EndpointId.in_subquery(enabled))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .limit(u64::from(limit));
        if self.db.engine() == Engine::Postgres {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = select.all(&*tx).await.map_err(store("claiming due deliveries"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<_> = rows.iter().map(|row| row.id).collect();
        let mut endpoint_ids: Vec<_> = rows.iter().map(|row| row.endpoint_id).collect();
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(lease_until))
            .filter(webhook_delivery::Column::Id.is_in(ids))
            .exec(&*tx)
            .await
            .map_err(store("leasing due deliveries"))?;
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(endpoint_ids))
            .all(&*tx)
            .await
            .map_err(store("reading the endpoints of due deliveries"))?
            .into_iter()
            .map(to_endpoint)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(unexpected("reading a stored webhook endpoint"))?;
        tx.commit().await.map_err(store("committing claimed deliveries"))?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(endpoint) = endpoints.iter().find(|e| e.id().into_uuid() == row.endpoint_id)
            else {
                continue;
            };
            let delivery = to_delivery(row).map_err(unexpected("reading a claimed delivery"))?;
            due.push(DueDelivery { delivery, endpoint: endpoint.clone() });
        }
        Ok(due)
    }

    async fn purge_finished(&self, before: Timestamp) -> Result<u64, StoreError> {
        let result = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .filter(webhook_delivery::Column::CreatedAt.lt(before))
            .exec(self.db.connection())
            .await
            .map_err(store("purging finished webhook deliveries"))?;
        Ok(result.rows_affected)
    }
}
