use async_trait::async_trait;
use orderly_domain::{Email, User, UserId};

use crate::{
    StoreError, WriteError,
    pagination::{Page, PageRequest},
};

/// Stores [`User`] aggregates.
#[mockall::automock]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`WriteError::Duplicate`] with `UniqueKey::Email` when the address is taken;
    /// [`WriteError::Store`] when the store fails.
    async fn insert(&self, user: &User) -> Result<(), WriteError>;

    /// The user with this id, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing user is `Ok(None)`).
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The user with this (normalised) e-mail address, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing user is `Ok(None)`).
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// Writes `user` if the stored row still has `expected_version`, and moves the stored version
    /// to `expected_version + 1` (what `user.version()` is after changes to a loaded user).
    ///
    /// A write that takes the admin role from the only admin is refused, checked in the same
    /// transaction as the write so that concurrent demotions cannot leave no admin.
    ///
    /// # Errors
    /// [`WriteError::NotFound`] when the user is gone, [`WriteError::Stale`] when its version moved
    /// on, [`WriteError::Duplicate`] when the new e-mail is taken, [`WriteError::LastAdmin`] when
    /// the write would demote the last admin, [`WriteError::Store`] otherwise.
    async fn update(&self, user: &User, expected_version: u64) -> Result<(), WriteError>;

    /// Deletes the user and their refresh tokens, unless the user is the last admin (checked in
    /// the same transaction as the delete, so that concurrent deletions cannot leave no admin).
    ///
    /// # Errors
    /// [`WriteError::NotFound`] when there is no such user, [`WriteError::StillReferenced`] when
    /// the user has orders (they are kept for accounting), [`WriteError::LastAdmin`] when the user
    /// is the only admin, [`WriteError::Store`] otherwise. Nothing is deleted on error.
    async fn delete(&self, id: UserId) -> Result<(), WriteError>;
}

/// Reads lists of users.
#[mockall::automock]
#[async_trait]
pub trait UserQueries: Send + Sync {
    /// Users in creation order, one page.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(&self, page: PageRequest) -> Result<Page<User>, StoreError>;
}
