//! The account directory in SeaORM: role and session epoch of a user, nothing more.

use async_trait::async_trait;
use orderly_application::{
    StoreError,
    ports::{AccountDirectory, AccountStatus},
};
use orderly_domain::{Role, UserId};
use sea_orm::{EntityTrait as _, QuerySelect as _};

use super::{Database, error::store};
use crate::entity::user;

/// [`AccountDirectory`] on SeaORM: one primary-key lookup of two columns, uncached (wrap it in
/// `services::CachedAccounts`).
#[derive(Debug, Clone)]
pub struct SeaOrmAccounts {
    db: Database,
}

impl SeaOrmAccounts {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AccountDirectory for SeaOrmAccounts {
    async fn status(&self, id: UserId) -> Result<Option<AccountStatus>, StoreError> {
        let row: Option<(String, i64)> = user::Entity::find_by_id(id.into_uuid())
            .select_only()
            .column(user::Column::Role)
            .column(user::Column::SessionEpoch)
            .into_tuple()
            .one(self.db.connection())
            .await
            .map_err(store("reading an account's status"))?;
        row.map(|(role, epoch)| {
            let role: Role =
                role.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))?;
            let session_epoch = u64::try_from(epoch)
                .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("a negative session epoch")))?;
            Ok(AccountStatus { role, session_epoch })
        })
        .transpose()
    }
}
