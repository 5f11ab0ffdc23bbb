//! Users in SeaORM.

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError, UniqueKey, WriteError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    ports::{UserQueries, UserRepository},
};
use orderly_domain::{Email, User, UserId};
use sea_orm::{
    ColumnTrait as _, EntityTrait as _, IntoActiveModel as _, QueryFilter as _, sea_query::Expr,
};

use super::{
    Database,
    error::{Failure, classify, store},
    keyset::{self, Direction},
    mapping::{user_row, version_to_db},
};
use crate::entity::{refresh_token, user};

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

fn write_error(failure: Failure) -> WriteError {
    match failure {
        Failure::UniqueViolation => WriteError::Duplicate(UniqueKey::Email),
        Failure::ForeignKeyViolation => WriteError::Referenced,
        Failure::Store(store) => WriteError::Store(store),
    }
}

fn to_user(row: user::Model) -> Result<User, StoreError> {
    User::try_from(row).context("reading a stored user").map_err(StoreError::Unexpected)
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(&self, user: &User) -> Result<(), WriteError> {
        let row = user_row(user).map_err(StoreError::Unexpected)?;
        user::Entity::insert(row.into_active_model())
            .exec_without_returning(self.db.connection())
            .await
            .map_err(|error| write_error(classify(error, "inserting a user")))?;
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

    async fn update(&self, user: &User, expected_version: u64) -> Result<(), WriteError> {
        let row = user_row(user).map_err(StoreError::Unexpected)?;
        let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
        let result = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(row.email))
            .col_expr(user::Column::Name, Expr::value(row.name))
            .col_expr(user::Column::Role, Expr::value(row.role))
            .col_expr(user::Column::PasswordHash, Expr::value(row.password_hash))
            .col_expr(user::Column::Version, Expr::value(expected + 1))
            .col_expr(user::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(user::Column::Id.eq(row.id))
            .filter(user::Column::Version.eq(expected))
            .exec(self.db.connection())
            .await
            .map_err(|error| write_error(classify(error, "updating a user")))?;
        if result.rows_affected == 1 {
            return Ok(());
        }
        let exists = user::Entity::find_by_id(row.id)
            .one(self.db.connection())
            .await
            .map_err(store("checking a user after a refused update"))?;
        Err(if exists.is_some() { WriteError::Stale } else { WriteError::NotFound })
    }

    async fn delete(&self, id: UserId) -> Result<(), WriteError> {
        let tx = self.db.begin_write().await.map_err(store("starting to delete a user"))?;
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::UserId.eq(id.into_uuid()))
            .exec(&tx)
            .await
            .map_err(|error| write_error(classify(error, "deleting a user's tokens")))?;
        let result = user::Entity::delete_by_id(id.into_uuid())
            .exec(&tx)
            .await
            .map_err(|error| write_error(classify(error, "deleting a user")))?;
        if result.rows_affected == 0 {
            return Err(WriteError::NotFound);
        }
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
