//! Use cases about users. A user is visible to themselves and to admins; to anyone else it does
//! not exist (404, never 403, so that ids cannot be probed).

pub mod delete_user;
pub mod get_user;
pub mod list_users;
pub mod register_user;
pub mod update_user;

use orderly_domain::{Actor, UserId};

/// True when `actor` may see and change the user `id`: themselves or an admin.
fn may_access(actor: &Actor, id: UserId) -> bool {
    actor.is_admin() || actor.user_id() == Some(id)
}

#[cfg(test)]
mod tests {
    use orderly_domain::Role;

    use super::*;

    #[test]
    fn users_are_accessible_to_themselves_and_admins_only() {
        let id = UserId::new();
        assert!(may_access(&Actor::User { id, role: Role::Customer }, id));
        assert!(may_access(&Actor::User { id: UserId::new(), role: Role::Admin }, id));
        assert!(!may_access(&Actor::User { id: UserId::new(), role: Role::Customer }, id));
        assert!(!may_access(&Actor::System, id));
    }
}
