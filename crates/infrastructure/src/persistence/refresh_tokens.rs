//! Refresh tokens in SeaORM: opaque random tokens, stored as SHA-256 hashes, rotated on every
//! use, grouped in families so that replaying a rotated token revokes the whole session.

use async_trait::async_trait;
use orderly_application::{
    StoreError,
    ports::{RefreshTokenError, RefreshTokens},
};
use orderly_domain::{
    UserId, Uuid,
    time::{TimeDelta, Timestamp},
};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, EntityTrait as _, IntoActiveModel as _, QueryFilter as _,
    sea_query::Expr,
};
use sha2::{Digest as _, Sha256};

use super::{Database, error::store};
use crate::entity::refresh_token;

/// [`RefreshTokens`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmRefreshTokens {
    db: Database,
    ttl: TimeDelta,
}

impl SeaOrmRefreshTokens {
    /// Tokens live `ttl` from their issue (each rotation issues a fresh one).
    #[must_use]
    pub fn new(db: Database, ttl: TimeDelta) -> Self {
        Self { db, ttl }
    }
}

/// 256 random bits, hex-encoded: unguessable, and safe in a form body or a header.
fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| StoreError::Unexpected(anyhow::anyhow!("no randomness: {error}")))?;
    Ok(hex::encode(bytes))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn insert(
    conn: &impl ConnectionTrait,
    user: Uuid,
    family: Uuid,
    now: Timestamp,
    ttl: TimeDelta,
) -> Result<String, StoreError> {
    let token = new_token()?;
    let row = refresh_token::Model {
        id: Uuid::now_v7(),
        family_id: family,
        user_id: user,
        token_hash: hash(&token),
        expires_at: now + ttl,
        created_at: now,
        used_at: None,
        revoked_at: None,
    };
    refresh_token::Entity::insert(row.into_active_model())
        .exec_without_returning(conn)
        .await
        .map_err(store("storing a refresh token"))?;
    Ok(token)
}

async fn revoke_family(
    conn: &impl ConnectionTrait,
    family: Uuid,
    now: Timestamp,
) -> Result<(), StoreError> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Some(now)))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .map_err(store("revoking a refresh-token family"))?;
    Ok(())
}

#[async_trait]
impl RefreshTokens for SeaOrmRefreshTokens {
    async fn issue(&self, user: UserId, now: Timestamp) -> Result<String, StoreError> {
        insert(self.db.connection(), user.into_uuid(), Uuid::now_v7(), now, self.ttl).await
    }

    async fn rotate(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(UserId, String), RefreshTokenError> {
        let tx = self.db.begin_write().await.map_err(store("starting a token rotation"))?;
        let row = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(hash(token)))
            .one(&*tx)
            .await
            .map_err(store("reading a refresh token"))?
            .ok_or(RefreshTokenError::Invalid)?;
        if row.revoked_at.is_some() || row.expires_at <= now {
            return Err(RefreshTokenError::Invalid);
        }
        // Claim the token: only one caller can move `used_at` from NULL, so two racing uses of
        // the same token are one rotation and one reuse.
        let claimed = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(Some(now)))
            .filter(refresh_token::Column::Id.eq(row.id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .exec(&*tx)
            .await
            .map_err(store("using a refresh token"))?;
        if claimed.rows_affected == 0 {
            revoke_family(&*tx, row.family_id, now).await?;
            tx.commit().await.map_err(store("committing a family revocation"))?;
            return Err(RefreshTokenError::Reused);
        }
        let next = insert(&*tx, row.user_id, row.family_id, now, self.ttl).await?;
        tx.commit().await.map_err(store("committing a token rotation"))?;
        Ok((UserId::from_uuid(row.user_id), next))
    }

    async fn revoke_all(&self, user: UserId, now: Timestamp) -> Result<(), StoreError> {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(Some(now)))
            .filter(refresh_token::Column::UserId.eq(user.into_uuid()))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(self.db.connection())
            .await
            .map_err(store("revoking a user's sessions"))?;
        Ok(())
    }

    async fn revoke(&self, token: &str, now: Timestamp) -> Result<(), StoreError> {
        let row = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(hash(token)))
            .one(self.db.connection())
            .await
            .map_err(store("reading a refresh token"))?;
        match row {
            Some(row) => revoke_family(self.db.connection(), row.family_id, now).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_hashes() {
        let (first, second) = (new_token().expect("random"), new_token().expect("random"));
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert_eq!(hash(&first).len(), 64);
        assert_ne!(hash(&first), first);
        assert_eq!(hash(&first), hash(&first));
    }
}
