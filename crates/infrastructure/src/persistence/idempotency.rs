//! Idempotency records in SeaORM (ADR 0023). A claim is a row holding a lease; the replay (opaque
//! here, kept in `response_body`) is written by [`complete`] inside the transaction of the
//! effect, only while the lease is held.

use std::time::Duration;

use async_trait::async_trait;
use orderly_application::{
    StoreError,
    ports::{
        Claim, Completion, IDEMPOTENCY_LEASE, IdempotencyStore, IdempotentRequest, Lease, Replay,
    },
};
use orderly_domain::{Uuid, time::Timestamp};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    sea_query::Expr,
};

use super::{
    Database,
    error::{Failure, classify, store},
};
use crate::entity::idempotency_record::{self as record, Column};

/// How long a client is told to wait before retrying a key in flight: requests take
/// milliseconds, so a second is plenty, whatever the lease says.
const RETRY_IN_FLIGHT: Duration = Duration::from_secs(1);

/// [`IdempotencyStore`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmIdempotencyStore {
    db: Database,
}

impl SeaOrmIdempotencyStore {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn this_record(request: &IdempotentRequest) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Column::UserId.eq(request.user_id.into_uuid()))
        .add(Column::IdempotencyKey.eq(request.key.as_str()))
}

fn stored_replay(row: &record::Model) -> Option<Replay> {
    row.response_body.clone().map(Replay::new)
}

/// Writes `completion`'s replay in the caller's transaction. Returns false when the claim
/// was lost (taken over after its lease lapsed, or released): the caller must then roll back.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub(crate) async fn complete(
    tx: &impl ConnectionTrait,
    completion: &Completion,
) -> Result<bool, StoreError> {
    let result = record::Entity::update_many()
        .col_expr(Column::ResponseBody, Expr::value(completion.response.as_str()))
        .col_expr(Column::CompletedAt, Expr::value(Some(completion.at)))
        .col_expr(Column::LockedUntil, Expr::value(None::<Timestamp>))
        .filter(this_record(&completion.request))
        .filter(Column::Lease.eq(completion.lease.0))
        .filter(Column::CompletedAt.is_null())
        .exec(tx)
        .await
        .map_err(store("recording an idempotent response"))?;
    Ok(result.rows_affected == 1)
}

impl SeaOrmIdempotencyStore {
    /// Takes over a claim whose lease lapsed; true when this call got it.
    async fn take_over(
        &self,
        request: &IdempotentRequest,
        abandoned: Option<Uuid>,
        lease: Lease,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut update = record::Entity::update_many()
            .col_expr(Column::Lease, Expr::value(Some(lease.0)))
            .col_expr(Column::LockedUntil, Expr::value(Some(now + IDEMPOTENCY_LEASE)))
            .filter(this_record(request))
            .filter(Column::CompletedAt.is_null());
        update = match abandoned {
            Some(old) => update.filter(Column::Lease.eq(old)),
            None => update.filter(Column::Lease.is_null()),
        };
        let result = update
            .exec(self.db.connection())
            .await
            .map_err(store("taking over an abandoned idempotency key"))?;
        Ok(result.rows_affected == 1)
    }
}

#[async_trait]
impl IdempotencyStore for SeaOrmIdempotencyStore {
    async fn claim(
        &self,
        request: &IdempotentRequest,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let lease = Lease(Uuid::now_v7());
        let row = record::ActiveModel {
            user_id: Set(request.user_id.into_uuid()),
            idempotency_key: Set(request.key.as_str().to_owned()),
            request_fingerprint: Set(request.fingerprint.clone()),
            response_body: Set(None),
            lease: Set(Some(lease.0)),
            locked_until: Set(Some(now + IDEMPOTENCY_LEASE)),
            created_at: Set(now),
            completed_at: Set(None),
        };
        match record::Entity::insert(row).exec_without_returning(self.db.connection()).await {
            Ok(_) => return Ok(Claim::Started(lease)),
            Err(error) => match classify(error, "claiming an idempotency key") {
                Failure::UniqueViolation => {}
                Failure::ForeignKeyViolation => {
                    return Err(StoreError::Unexpected(anyhow::anyhow!(
                        "an idempotency key claimed for a user that does not exist"
                    )));
                }
                Failure::Store(error) => return Err(error),
            },
        }
        let existing = record::Entity::find()
            .filter(this_record(request))
            .one(self.db.connection())
            .await
            .map_err(store("reading an idempotency key"))?;
        // Purged between the insert and the read: the next claim starts afresh.
        let Some(existing) = existing else {
            return Ok(Claim::InFlight { retry_after: RETRY_IN_FLIGHT });
        };
        if existing.request_fingerprint != request.fingerprint {
            return Ok(Claim::Mismatch);
        }
        if existing.completed_at.is_some() {
            return stored_replay(&existing).map(Claim::Replay).ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!(
                    "a completed idempotency record has no response"
                ))
            });
        }
        let lapsed = existing.locked_until.is_none_or(|until| until <= now);
        if lapsed && self.take_over(request, existing.lease, lease, now).await? {
            return Ok(Claim::Started(lease));
        }
        Ok(Claim::InFlight { retry_after: RETRY_IN_FLIGHT })
    }

    async fn release(&self, request: &IdempotentRequest, lease: Lease) -> Result<(), StoreError> {
        record::Entity::delete_many()
            .filter(this_record(request))
            .filter(Column::Lease.eq(lease.0))
            .filter(Column::CompletedAt.is_null())
            .exec(self.db.connection())
            .await
            .map_err(store("releasing an idempotency key"))?;
        Ok(())
    }

    async fn update_response(&self, completion: &Completion) -> Result<(), StoreError> {
        record::Entity::update_many()
            .col_expr(Column::ResponseBody, Expr::value(completion.response.as_str()))
            .filter(this_record(&completion.request))
            .filter(Column::Lease.eq(completion.lease.0))
            .exec(self.db.connection())
            .await
            .map_err(store("updating an idempotent response"))?;
        Ok(())
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        let result = record::Entity::delete_many()
            .filter(Column::CreatedAt.lt(before))
            .exec(self.db.connection())
            .await
            .map_err(store("purging idempotency records"))?;
        Ok(result.rows_affected)
    }
}
