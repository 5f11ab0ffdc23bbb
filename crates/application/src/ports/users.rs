use async_trait::async_trait;
use orderly_domain::{Email, User, UserId};

use crate::{
    StoreError,
    pagination::{Page, PageRequest},
};

/// Why the store refused to write a user.
#[derive(Debug, thiserror::Error)]
pub enum UserWriteError {
    /// Another user has this e-mail address.
    #[error("the e-mail address is taken")]
    EmailTaken,
    /// There is no such user.
    #[error("the user does not exist")]
    NotFound,
    /// The user changed since it was read (its version moved on): reload and retry.
    #[error("the user was changed by someone else")]
    Stale,
    /// The write would leave no administrator: the last admin can be neither deleted nor
    /// demoted. Checked atomically with the write.
    #[error("the last administrator cannot be removed")]
    LastAdmin,
    /// Other records still reference the user, so it cannot be deleted: the store names them.
    #[error("the user is still referenced by {0}")]
    StillReferenced(UserReferrer),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What still references a user whose deletion the store refused.
///
/// A new kind of record that keeps its user from being deleted gets a variant here, so that
/// every use case matching on this enum has to decide what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserReferrer {
    /// Orders the user placed (kept for accounting).
    Orders,
    /// Records the adapter cannot name: a reference in the store refused the delete, yet none
    /// of the referrers above has a record of the user. The store has a reference this enum
    /// does not know of (a schema change without its variant): a bug, not a state of the data.
    Unrecognised,
}

impl std::fmt::Display for UserReferrer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Orders => "orders",
            Self::Unrecognised => "records of a kind the store does not name",
        })
    }
}

/// Stores [`User`] aggregates.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`UserWriteError::EmailTaken`] when the address is taken; [`UserWriteError::Store`] when
    /// the store fails.
    async fn insert(&self, user: &User) -> Result<(), UserWriteError>;

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
    /// [`UserWriteError::NotFound`] when the user is gone, [`UserWriteError::Stale`] when its
    /// version moved on, [`UserWriteError::EmailTaken`] when the new e-mail is taken,
    /// [`UserWriteError::LastAdmin`] when the write would demote the last admin,
    /// [`UserWriteError::Store`] otherwise.
    async fn update(&self, user: &User, expected_version: u64) -> Result<(), UserWriteError>;

    /// Deletes the user and their refresh tokens, unless the user is the last admin (checked in
    /// the same transaction as the delete, so that concurrent deletions cannot leave no admin).
    ///
    /// Records that only mention the user (the author of a review) do not keep them: they stay,
    /// without the user.
    ///
    /// # Errors
    /// [`UserWriteError::NotFound`] when there is no such user,
    /// [`UserWriteError::StillReferenced`] naming what still references the user when records
    /// keep them (with [`UserReferrer::Orders`] when they have orders, which are kept for
    /// accounting), [`UserWriteError::LastAdmin`] when the user is the only admin,
    /// [`UserWriteError::Store`] otherwise. Nothing is deleted on error.
    async fn delete(&self, id: UserId) -> Result<(), UserWriteError>;
}

/// Reads lists of users.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserQueries: Send + Sync {
    /// Users in creation order, one page.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(&self, page: PageRequest) -> Result<Page<User>, StoreError>;
}
