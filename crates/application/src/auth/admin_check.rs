//! The database's word on an admin, for admin-only work (ADR 0027).
//!
//! [`Authorize`](super::authorize::Authorize) establishes the actor through the
//! [`AccountDirectory`](crate::ports::AccountDirectory), which may answer from a cache a few
//! seconds old on another instance than the one where the account changed. That is fine for
//! ordinary requests, not for the powers of an admin: a use case that would act with them first
//! re-reads the acting account through the [`UserRepository`], which reads the database, and
//! decides with the role found there.

use std::sync::Arc;

use orderly_domain::{Actor, Role};

use crate::{StoreError, ports::UserRepository};

/// Re-reads the account of an actor who acts as an admin.
#[derive(Clone)]
pub struct AdminCheck {
    users: Arc<dyn UserRepository>,
}

impl std::fmt::Debug for AdminCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCheck").finish_non_exhaustive()
    }
}

impl AdminCheck {
    /// Checks against `users`, which must read the database (not a cache).
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }

    /// `actor` as the database has it now, when it acts as an admin: the same user with their
    /// stored role (a demoted admin comes back as a customer), or `None` when the account no
    /// longer exists. Any other actor is returned as given, without a read: a re-read could
    /// only widen their powers, and the cached answer errs on the safe side.
    ///
    /// # Errors
    /// [`StoreError`] when the read fails: nothing may then be done with the admin's powers.
    pub async fn recheck(&self, actor: &Actor) -> Result<Option<Actor>, StoreError> {
        let Actor::User { id, role: Role::Admin } = *actor else { return Ok(Some(*actor)) };
        let Some(user) = self.users.find_by_id(id).await? else {
            tracing::warn!(user = %id, "an admin's access token was used after the account was deleted");
            return Ok(None);
        };
        if user.role() != Role::Admin {
            tracing::warn!(user = %id, "an admin's access token was used after the account lost the role");
        }
        Ok(Some(Actor::User { id, role: user.role() }))
    }
}
