use async_trait::async_trait;
use orderly_domain::{Password, PasswordHash, Role, User, UserId, time::Timestamp};

use crate::StoreError;

/// Why a password could not be hashed or verified.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot and its queue are taken: nothing was computed; the client should try
    /// again shortly (HTTP 503 `SERVER_BUSY`).
    #[error("too many passwords are being hashed at the moment")]
    Busy,
    /// The hashing library failed (a corrupt stored hash, resource exhaustion): a bug.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Hashes and verifies passwords (Argon2id in production), a bounded number at a time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password with a fresh salt, as a PHC string.
    ///
    /// # Errors
    /// [`HashError::Busy`] when the adapter's bound on concurrent hashes and its queue are
    /// reached; [`HashError::Failed`] for any error of the hashing library.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// True when `password` matches `hash`. With `hash` = `None` (no such user) it spends the same
    /// time as a real verification and returns false, so response times do not reveal which
    /// e-mail addresses exist.
    ///
    /// # Errors
    /// [`HashError::Busy`] as for [`PasswordHasher::hash`]; [`HashError::Failed`] for any error
    /// of the hashing library other than a mismatch (e.g. a corrupt stored hash).
    async fn verify<'a>(
        &self,
        password: &str,
        hash: Option<&'a PasswordHash>,
    ) -> Result<bool, HashError>;
}

/// What an access token says about its bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub user_id: UserId,
    /// Their role when the token was issued.
    pub role: Role,
    /// Their session epoch when the token was issued (see `User::session_epoch`).
    pub session_epoch: u64,
}

impl Claims {
    /// What a token issued to `user` now says.
    #[must_use]
    pub fn for_user(user: &User) -> Self {
        Self { user_id: user.id(), role: user.role(), session_epoch: user.session_epoch() }
    }
}

/// A signed, short-lived access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token to send as `Authorization: Bearer ...`.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// A token that is not valid: malformed, badly signed, expired or for another audience.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidToken;

/// Issues and checks access tokens (JWT in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AccessTokens: Send + Sync {
    /// Issues a token for this user and role, valid from `now`.
    ///
    /// # Errors
    /// Any signing failure, as `anyhow::Error`.
    fn issue(&self, claims: Claims, now: Timestamp) -> anyhow::Result<AccessToken>;

    /// Checks a token's signature, algorithm, issuer, audience and expiry at `now`.
    ///
    /// # Errors
    /// [`InvalidToken`] for any token that does not pass every check.
    fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, InvalidToken>;
}

/// Why a refresh token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RefreshTokenError {
    /// Unknown, expired or revoked.
    #[error("the refresh token is invalid, expired or revoked")]
    Invalid,
    /// Already rotated once: someone replayed an old token, so its whole family is now revoked.
    #[error("the refresh token was already used; its session has been revoked")]
    Reused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opaque refresh tokens, stored hashed, rotated on every use, grouped in families (one family
/// per login) so that the reuse of a rotated token can revoke the whole session.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RefreshTokens: Send + Sync {
    /// Starts a new family for `user` and returns its first token (only its hash is stored).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn issue(&self, user: UserId, now: Timestamp) -> Result<String, StoreError>;

    /// Consumes `token` and returns its user with the next token of the same family.
    ///
    /// # Errors
    /// [`RefreshTokenError::Invalid`] for an unknown, expired or revoked token;
    /// [`RefreshTokenError::Reused`] for a token already rotated (the family is revoked in the
    /// same call); [`RefreshTokenError::Store`] when the store fails.
    async fn rotate(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(UserId, String), RefreshTokenError>;

    /// Revokes every session of `user`, after a change that must end them (a new password, a
    /// new role).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn revoke_all(&self, user: UserId, now: Timestamp) -> Result<(), StoreError>;

    /// Revokes the family of `token`. Unknown tokens are ignored (RFC 7009).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn revoke(&self, token: &str, now: Timestamp) -> Result<(), StoreError>;
}

/// An account as access tokens are checked against it: what may have changed since a token
/// was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStatus {
    /// The role now (a demoted admin's token acts as a customer).
    pub role: Role,
    /// The session epoch now (a token from an older epoch is refused).
    pub session_epoch: u64,
}

/// Looks up accounts for the access-token check on every authenticated request, so it must be
/// cheap: adapters may cache, for at most a few seconds (`AUTH_CACHE_TTL`), which bounds how
/// long a deletion, demotion or new password takes to reach tokens; an adapter that caches also
/// drops its entry when the account is changed through it or beside it on the same instance,
/// and on the other instances when it can tell them (ADR 0027). Admin-only work does not rely
/// on this port: it re-reads the account (`auth::admin_check`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AccountDirectory: Send + Sync {
    /// The account's current role and session epoch; `None` when it no longer exists.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing account is `Ok(None)`).
    async fn status(&self, id: UserId) -> Result<Option<AccountStatus>, StoreError>;
}
