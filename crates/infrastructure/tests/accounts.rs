//! The account directory behind the access-token check: the SeaORM lookup on both engines, and
//! the cache in front of it.

use std::{sync::Arc, time::Duration};

use orderly_application::ports::{AccountDirectory, AccountStatus, UserRepository as _};
use orderly_domain::{Email, PasswordHash, Role, User, UserId, UserName, time::Timestamp};
use orderly_infrastructure::{
    Database, SeaOrmAccounts, SeaOrmUserRepository, on_both_engines, services::CachedAccounts,
};

fn now() -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000, 0).expect("a valid instant")
}

async fn stored_user(database: &Database, role: Role) -> User {
    let user = User::register(
        Email::parse(&format!("{}@example.com", UserId::new())).expect("valid"),
        UserName::parse("Ada").expect("valid"),
        PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".to_owned()),
        role,
        now(),
    );
    SeaOrmUserRepository::new(database.clone()).insert(&user).await.expect("inserted");
    user
}

async fn the_status_is_the_role_and_epoch_as_stored(database: &Database) {
    let accounts = SeaOrmAccounts::new(database.clone());
    let users = SeaOrmUserRepository::new(database.clone());
    let mut user = stored_user(database, Role::Admin).await;
    stored_user(database, Role::Admin).await; // so that `user` is not the last admin
    assert_eq!(
        accounts.status(user.id()).await.expect("read"),
        Some(AccountStatus { role: Role::Admin, session_epoch: 0 })
    );

    let loaded = user.version();
    user.change_role(Role::Customer, now());
    user.change_password(PasswordHash::new("$argon2id$new".to_owned()), now());
    users.update(&user, loaded).await.expect("updated");
    assert_eq!(
        accounts.status(user.id()).await.expect("read"),
        Some(AccountStatus { role: Role::Customer, session_epoch: 1 }),
        "a new password moves the epoch on; the role is the new one"
    );
    let found = users.find_by_id(user.id()).await.expect("read").expect("present");
    assert_eq!(found.session_epoch(), 1, "the aggregate reads the epoch back");

    users.delete(user.id()).await.expect("deleted");
    assert_eq!(accounts.status(user.id()).await.expect("read"), None);
    assert_eq!(accounts.status(UserId::new()).await.expect("read"), None);
}

async fn the_cache_answers_until_its_ttl_or_until_told_to_forget(database: &Database) {
    let users = SeaOrmUserRepository::new(database.clone());
    let cached = CachedAccounts::new(
        Arc::new(SeaOrmAccounts::new(database.clone())),
        Duration::from_millis(400),
    );
    let first = stored_user(database, Role::Customer).await;
    let second = stored_user(database, Role::Customer).await;
    for user in [&first, &second] {
        assert!(cached.status(user.id()).await.expect("read").is_some());
        users.delete(user.id()).await.expect("deleted");
        assert!(
            cached.status(user.id()).await.expect("read").is_some(),
            "cached: the deletion is not seen yet"
        );
    }

    cached.forget(first.id()).await;
    assert_eq!(cached.status(first.id()).await.expect("read"), None, "forgotten: read again");

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cached.status(second.id()).await.expect("read"), None, "expired: read again");
}

async fn without_a_ttl_every_check_reads_the_store(database: &Database) {
    let users = SeaOrmUserRepository::new(database.clone());
    let uncached =
        CachedAccounts::new(Arc::new(SeaOrmAccounts::new(database.clone())), Duration::ZERO);
    let user = stored_user(database, Role::Customer).await;
    assert!(uncached.status(user.id()).await.expect("read").is_some());
    users.delete(user.id()).await.expect("deleted");
    assert_eq!(uncached.status(user.id()).await.expect("read"), None);
}

on_both_engines!(
    the_status_is_the_role_and_epoch_as_stored,
    the_cache_answers_until_its_ttl_or_until_told_to_forget,
    without_a_ttl_every_check_reads_the_store,
);
