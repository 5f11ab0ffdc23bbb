//! Users in SeaORM.
//!
//! A delete refused by a foreign key is reported with what refused it
//! ([`UserWriteError::StillReferenced`]). Neither engine's error is read for that (SQLite's
//! message names no constraint, and the same code must answer the same on both): the delete is
//! made inside a savepoint, and when a foreign key refuses it the savepoint is rolled back and
//! the same transaction asks each referrer the adapter knows whether it holds rows of the user
//! (`referrer_of`). On PostgreSQL (read committed) that question sees the rows that refused
//! the delete, a concurrent insert included; on SQLite the transaction holds the write lock, so
//! nothing changed in between. A refusal none of them explains is
//! [`UserReferrer::Unrecognised`]; `tests/migrations.rs` checks that the schema's restricting
//! foreign keys to `users` are the ones `referrer_of` asks.

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    ports::{UserQueries, UserReferrer, UserRepository, UserWriteError},
};
use orderly_domain::{Email, Role, User, UserId, Uuid, time::Utc};
use sea_orm::{
    ColumnTrait as _, DatabaseTransaction, EntityTrait as _, IntoActiveModel as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, TransactionTrait as _, sea_query::Expr,
};

use super::{
    Database,
    error::{Failure, classify, store},
    keyset::{self, Direction},
    mapping::{user_row, version_from_db, version_to_db},
    outbox::Outbox,
};
use crate::entity::{order, refresh_token, user};

/// [`UserRepository`] and [`UserQueries`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmUserRepository {
    db: Database,
}

impl SeaOrmUserRepository {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// A refused insert or update of a user: users refer to nothing, so only their e-mail address
/// can collide.
fn write_error(failure: Failure) -> UserWriteError {
    match failure {
        Failure::UniqueViolation => UserWriteError::EmailTaken,
        Failure::ForeignKeyViolation => UserWriteError::Store(StoreError::Unexpected(
            anyhow::anyhow!("a foreign key refused a user write, yet users refer to nothing"),
        )),
        Failure::Store(store) => UserWriteError::Store(store),
    }
}

/// What keeps the user `id` from being deleted, asked after a foreign key refused the delete:
/// the first referrer holding a row of the user, or [`UserReferrer::Unrecognised`] when none
/// does. A new table whose foreign key to `users` restricts deletes gets its
/// [`UserReferrer`] and its question here.
async fn referrer_of(tx: &DatabaseTransaction, id: Uuid) -> Result<UserReferrer, StoreError> {
    let order = order::Entity::find()
        .select_only()
        .column(order::Column::Id)
        .filter(order::Column::UserId.eq(id))
        .limit(1)
        .into_tuple::<Uuid>()
        .one(tx)
        .await
        .map_err(store("looking for a user's orders"))?;
    if order.is_some() {
        return Ok(UserReferrer::Orders);
    }
    Ok(UserReferrer::Unrecognised)
}

/// Whether removing the admin role from the user `id` (deleting them, or with `expected` the
/// version an update is conditional on, demoting them) would leave no admin.
///
/// When the user is an admin, every admin row is locked first (`FOR UPDATE`, in id order so
/// that two checks cannot deadlock; SQLite ignores the clause, its write transaction holding the
/// database's write lock already): two admins deleting or demoting each other at the same moment
/// are serialized, and the second sees the first one's change. An update whose version is stale
/// is not refused here: its conditional write answers `Stale`, as any other stale write.
async fn is_the_last_admin(
    tx: &DatabaseTransaction,
    id: Uuid,
    expected: Option<i64>,
) -> Result<bool, StoreError> {
    let stored = role_and_version(tx, id).await?;
    if !stored.is_some_and(|(role, version)| {
        role == Role::Admin.as_str() && expected.is_none_or(|expected| expected == version)
    }) {
        return Ok(false);
    }
    let admins: Vec<Uuid> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(tx)
        .await
        .map_err(store("locking the admins"))?;
    if admins != [id] {
        return Ok(false);
    }
    // The row is locked now; it may have moved on between the first read and the lock.
    let stored = role_and_version(tx, id).await?;
    Ok(expected.is_none_or(|expected| stored.is_some_and(|(_, version)| version == expected)))
}

async fn role_and_version(
    tx: &DatabaseTransaction,
    id: Uuid,
) -> Result<Option<(String, i64)>, StoreError> {
    user::Entity::find_by_id(id)
        .select_only()
        .column(user::Column::Role)
        .column(user::Column::Version)
        .into_tuple()
        .one(tx)
        .await
        .map_err(store("reading a user's role"))
}

fn to_user(row: user::Model) -> Result<User, StoreError> {
    User::try_from(row).context("reading a stored user").map_err(StoreError::Unexpected)
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(&self, user: &User) -> Result<(), UserWriteError> {
        let row = user_row(user).map_err(StoreError::Unexpected)?;
        let mut outbox = Outbox::default();
        outbox.registered(self.db.event_data().as_ref(), user)?;
        let tx = self.db.begin_write().await.map_err(store("starting to insert a user"))?;
        user::Entity::insert(row.into_active_model())
            .exec_without_returning(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "inserting a user")))?;
        outbox.write(&tx).await?;
        tx.commit().await.map_err(store("committing a user"))?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = user::Entity::find_by_id(id.into_uuid())
            .one(self.db.connection())
            .await
            .map_err(store("reading a user"))?;
        row.map(to_user).transpose()
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(self.db.connection())
            .await
            .map_err(store("reading a user by e-mail"))?;
        row.map(to_user).transpose()
    }

    async fn update(&self, user: &User, expected_version: u64) -> Result<(), UserWriteError> {
        let row = user_row(user).map_err(StoreError::Unexpected)?;
        let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to update a user"))?;
        if user.role() != Role::Admin && is_the_last_admin(&tx, row.id, Some(expected)).await? {
            return Err(UserWriteError::LastAdmin);
        }
        let result = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(row.email))
            .col_expr(user::Column::Name, Expr::value(row.name))
            .col_expr(user::Column::Role, Expr::value(row.role))
            .col_expr(user::Column::PasswordHash, Expr::value(row.password_hash))
            .col_expr(user::Column::SessionEpoch, Expr::value(row.session_epoch))
            .col_expr(user::Column::Version, Expr::value(expected + 1))
            .col_expr(user::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(user::Column::Id.eq(row.id))
            .filter(user::Column::Version.eq(expected))
            .exec(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "updating a user")))?;
        if result.rows_affected == 1 {
            tx.commit().await.map_err(store("committing a user update"))?;
            return Ok(());
        }
        let exists = user::Entity::find_by_id(row.id)
            .one(&*tx)
            .await
            .map_err(store("checking a user after a refused update"))?;
        Err(if exists.is_some() { UserWriteError::Stale } else { UserWriteError::NotFound })
    }

    async fn delete(&self, id: UserId) -> Result<(), UserWriteError> {
        let id = id.into_uuid();
        let tx = self.db.begin_write().await.map_err(store("starting to delete a user"))?;
        if is_the_last_admin(&tx, id, None).await? {
            return Err(UserWriteError::LastAdmin);
        }
        let Some((_, version)) = role_and_version(&tx, id).await? else {
            return Err(UserWriteError::NotFound);
        };
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::UserId.eq(id))
            .exec(&*tx)
            .await
            .map_err(store("deleting a user's tokens"))?;
        // A savepoint, so that the transaction can still ask what refused the delete (a failed
        // statement aborts a PostgreSQL transaction up to its last savepoint).
        let deleting = tx.begin().await.map_err(store("starting to delete a user"))?;
        let result = match user::Entity::delete_by_id(id).exec(&deleting).await {
            Ok(result) => {
                deleting.commit().await.map_err(store("releasing a user deletion's savepoint"))?;
                result
            }
            Err(error) => {
                deleting.rollback().await.map_err(store("undoing a refused user deletion"))?;
                return Err(match classify(error, "deleting a user") {
                    Failure::ForeignKeyViolation => {
                        UserWriteError::StillReferenced(referrer_of(&tx, id).await?)
                    }
                    Failure::UniqueViolation => UserWriteError::Store(StoreError::Unexpected(
                        anyhow::anyhow!("a unique constraint refused deleting a user"),
                    )),
                    Failure::Store(store) => UserWriteError::Store(store),
                });
            }
        };
        if result.rows_affected == 0 {
            return Err(UserWriteError::NotFound);
        }
        let version = version_from_db(version).map_err(StoreError::Unexpected)?;
        let mut outbox = Outbox::default();
        let encode = self.db.event_data().as_ref();
        outbox.deleted(encode, UserId::from_uuid(id), version, Utc::now())?;
        outbox.write(&tx).await?;
        tx.commit().await.map_err(store("committing a user deletion"))?;
        Ok(())
    }
}

#[async_trait]
impl UserQueries for SeaOrmUserRepository {
    async fn list(&self, page: PageRequest) -> Result<Page<User>, StoreError> {
        let select = keyset::page(
            user::Entity::find(),
            None::<user::Column>,
            user::Column::Id,
            Direction::Ascending,
            &page,
        );
        let rows = select.all(self.db.connection()).await.map_err(store("listing users"))?;
        let users = rows.into_iter().map(to_user).collect::<Result<Vec<_>, _>>()?;
        Ok(keyset::finish(users, &page, |user| Cursor {
            value: SortValue::None,
            id: user.id().into_uuid(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_violation_is_a_taken_email_address() {
        let error = write_error(Failure::UniqueViolation);
        assert!(matches!(error, UserWriteError::EmailTaken), "{error:?}");
    }

    #[test]
    fn a_foreign_key_refusing_an_insert_or_update_is_unexpected_as_users_refer_to_nothing() {
        let error = write_error(Failure::ForeignKeyViolation);
        assert!(matches!(error, UserWriteError::Store(StoreError::Unexpected(_))), "{error:?}");
    }
}
