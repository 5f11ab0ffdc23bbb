//! Use-case tests for the user and token use cases, every port replaced by its mockall twin.
//!
//! A mock without an expectation for a method panics when that method is called, and `times(0)`
//! says the same explicitly where the point of a test is that a port is left alone (nothing
//! stored after a failure, no repository probe for an id the actor may not see).

use std::sync::{Arc, Mutex};

use orderly_application::{
    StoreError, WRITE_ATTEMPTS,
    auth::{
        TokenPair,
        admin_check::AdminCheck,
        authenticate::{Authenticate, AuthenticateError, AuthenticateInput},
        refresh_session::{RefreshSession, RefreshSessionError},
        revoke_token::RevokeToken,
    },
    pagination::{Cursor, ListRequest, Page, PageLimit, PageRequest, SortValue},
    ports::{
        AccessToken, Claims, HashError, MockAccessTokens, MockClock, MockPasswordHasher,
        MockRefreshTokens, MockUserQueries, MockUserRepository, RefreshTokenError, UserReferrer,
        UserWriteError,
    },
    users::{
        delete_user::{DeleteUser, DeleteUserError},
        get_user::{GetUser, GetUserError},
        list_users::{self, ListUsers, ListUsersError},
        register_user::{RegisterUser, RegisterUserError, RegisterUserInput},
        update_user::{CurrentPassword, UpdateUser, UpdateUserError, UpdateUserInput},
    },
};
use orderly_domain::{
    Actor, Email, Password, PasswordHash, Role, User, UserId, UserName, UserParts,
    time::{DateTime, TimeDelta, Timestamp},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The version every stored user in these tests is loaded at: not 1, so that "version + 1" and
/// "expected version = loaded version" cannot pass by accident.
const STORED_VERSION: u64 = 3;
const STORED_HASH: &str = "$argon2id$v=19$stored";
const PASSWORD: &str = "correct horse battery";

/// The instant the mocked clock always answers.
fn now() -> Timestamp {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a representable instant")
}

/// A clock stuck at [`now`].
fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Arc::new(clock)
}

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid e-mail address")
}

fn name(raw: &str) -> UserName {
    UserName::parse(raw).expect("a valid name")
}

fn password(raw: &str) -> Password {
    Password::parse(raw.to_owned()).expect("a valid password")
}

/// A user as a repository returns it: created a month ago, at [`STORED_VERSION`].
fn stored_user(role: Role) -> User {
    stored_account(UserId::new(), role)
}

/// The user `id` as a repository returns it, with `role`.
fn stored_account(id: UserId, role: Role) -> User {
    let created = now() - TimeDelta::days(30);
    User::restore(UserParts {
        id,
        email: email("ada@example.com"),
        name: name("Ada"),
        role,
        password_hash: PasswordHash::new(STORED_HASH.to_owned()),
        session_epoch: 0,
        version: STORED_VERSION,
        created_at: created,
        updated_at: created,
    })
}

fn customer(id: UserId) -> Actor {
    Actor::User { id, role: Role::Customer }
}

fn admin() -> Actor {
    Actor::User { id: UserId::new(), role: Role::Admin }
}

/// The check of admins against a database where every admin who acts is still one (what
/// happens when they are not is in `tests/privileged.rs`).
fn admins() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts.expect_find_by_id().returning(|id| Ok(Some(stored_account(id, Role::Admin))));
    AdminCheck::new(Arc::new(accounts))
}

fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

fn access_token() -> AccessToken {
    AccessToken { token: "header.claims.signature".to_owned(), expires_in: 900 }
}

/// A repository that answers `find_by_id(user.id())` with `user`, once.
fn repository_holding(user: &User) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    let id = user.id();
    let stored = user.clone();
    users
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(move |_| Ok(Some(stored.clone())));
    users
}

/// An update that changes nothing, to be filled in by each test.
fn no_changes(id: UserId) -> UpdateUserInput {
    UpdateUserInput {
        id,
        expected_version: None,
        email: None,
        name: None,
        password: None,
        role: None,
        current_password: None,
    }
}

/// `raw` as the current password of a change.
fn current(raw: &str) -> Option<CurrentPassword> {
    Some(CurrentPassword::new(raw.to_owned()))
}

fn registration(role: Role) -> RegisterUserInput {
    RegisterUserInput {
        email: email("grace@example.com"),
        name: name("Grace"),
        password: password(PASSWORD),
        role,
    }
}

fn credentials(email: &str, password: &str) -> AuthenticateInput {
    AuthenticateInput { email: email.to_owned(), password: password.to_owned() }
}

fn register_user(users: MockUserRepository, hasher: MockPasswordHasher) -> RegisterUser {
    RegisterUser::new(Arc::new(users), Arc::new(hasher), clock())
}

fn update_user(users: MockUserRepository, hasher: MockPasswordHasher) -> UpdateUser {
    let mut sessions = MockRefreshTokens::new();
    sessions.expect_revoke_all().returning(|_, _| Ok(()));
    update_user_with_sessions(users, hasher, sessions)
}

fn update_user_with_sessions(
    users: MockUserRepository,
    hasher: MockPasswordHasher,
    sessions: MockRefreshTokens,
) -> UpdateUser {
    UpdateUser::new(Arc::new(users), Arc::new(hasher), Arc::new(sessions), admins(), clock())
}

fn authenticate(
    users: MockUserRepository,
    hasher: MockPasswordHasher,
    access: MockAccessTokens,
    refresh: MockRefreshTokens,
) -> Authenticate {
    Authenticate::new(
        Arc::new(users),
        Arc::new(hasher),
        Arc::new(access),
        Arc::new(refresh),
        clock(),
    )
}

fn refresh_session(
    users: MockUserRepository,
    access: MockAccessTokens,
    refresh: MockRefreshTokens,
) -> RefreshSession {
    RefreshSession::new(Arc::new(users), Arc::new(access), Arc::new(refresh), clock())
}

// ---------------------------------------------------------------------------------------------
// register_user
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registering_stores_the_user_with_the_hashed_password_at_version_one() {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .withf(|password| password.expose() == PASSWORD)
        .times(1)
        .returning(|_| Ok(PasswordHash::new("$argon2id$fresh".to_owned())));
    let mut users = MockUserRepository::new();
    users
        .expect_insert()
        .withf(|user| {
            user.email().as_str() == "grace@example.com"
                && user.name().as_str() == "Grace"
                && user.password_hash().as_str() == "$argon2id$fresh"
                && user.role() == Role::Admin
                && user.version() == 1
                && user.created_at() == now()
                && user.updated_at() == now()
        })
        .times(1)
        .returning(|_| Ok(()));

    let user = register_user(users, hasher)
        .execute(registration(Role::Admin))
        .await
        .expect("registration succeeds");

    assert_eq!(user.email().as_str(), "grace@example.com");
    assert_eq!(user.role(), Role::Admin);
    assert_eq!(user.version(), 1);
    assert_eq!(user.created_at(), now());
}

#[tokio::test]
async fn registering_with_a_taken_email_is_a_duplicate() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| Ok(PasswordHash::new("$argon2id$fresh".to_owned())));
    let mut users = MockUserRepository::new();
    users.expect_insert().times(1).returning(|_| Err(UserWriteError::EmailTaken));

    let result = register_user(users, hasher).execute(registration(Role::Customer)).await;

    assert!(matches!(result, Err(RegisterUserError::DuplicateEmail)), "{result:?}");
}

#[tokio::test]
async fn registering_while_the_store_is_down_is_a_store_error() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| Ok(PasswordHash::new("$argon2id$fresh".to_owned())));
    let mut users = MockUserRepository::new();
    users.expect_insert().times(1).returning(|_| Err(UserWriteError::Store(store_down())));

    let result = register_user(users, hasher).execute(registration(Role::Customer)).await;

    assert!(
        matches!(result, Err(RegisterUserError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_failing_hasher_is_unexpected_and_stores_nothing() {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .times(1)
        .returning(|_| Err(HashError::Failed(anyhow::anyhow!("out of memory"))));
    let mut users = MockUserRepository::new();
    users.expect_insert().times(0);

    let result = register_user(users, hasher).execute(registration(Role::Customer)).await;

    match result {
        Err(RegisterUserError::Unexpected(error)) => {
            assert_eq!(error.to_string(), "out of memory");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_answer_to_an_insert_is_unexpected() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| Ok(PasswordHash::new("$argon2id$fresh".to_owned())));
    let mut users = MockUserRepository::new();
    users.expect_insert().times(1).returning(|_| Err(UserWriteError::Stale));

    let result = register_user(users, hasher).execute(registration(Role::Customer)).await;

    match result {
        Err(RegisterUserError::Unexpected(error)) => {
            assert!(matches!(error.downcast_ref::<UserWriteError>(), Some(UserWriteError::Stale)));
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// get_user
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_customer_reads_themselves() {
    let user = stored_user(Role::Customer);
    let users = repository_holding(&user);

    let found = GetUser::new(Arc::new(users), admins())
        .execute(&customer(user.id()), user.id())
        .await
        .expect("a user may read themselves");

    assert_eq!(found.id(), user.id());
    assert_eq!(found.email(), user.email());
}

#[tokio::test]
async fn an_admin_reads_any_user() {
    let user = stored_user(Role::Customer);
    let users = repository_holding(&user);

    let found = GetUser::new(Arc::new(users), admins())
        .execute(&admin(), user.id())
        .await
        .expect("an admin may read anyone");

    assert_eq!(found.id(), user.id());
}

#[tokio::test]
async fn another_customer_is_not_found_without_asking_the_store() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(0);

    let result = GetUser::new(Arc::new(users), admins())
        .execute(&customer(UserId::new()), UserId::new())
        .await;

    assert!(matches!(result, Err(GetUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn reading_a_missing_user_is_not_found() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|_| Ok(None));

    let result = GetUser::new(Arc::new(users), admins()).execute(&admin(), UserId::new()).await;

    assert!(matches!(result, Err(GetUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn reading_a_user_while_the_store_is_down_is_a_store_error() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|_| Err(store_down()));

    let result = GetUser::new(Arc::new(users), admins()).execute(&admin(), UserId::new()).await;

    assert!(matches!(result, Err(GetUserError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// list_users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_gets_a_page_of_users_with_the_next_cursor_encoded() {
    let first = stored_user(Role::Customer);
    let second = stored_user(Role::Admin);
    let next = Cursor { value: SortValue::None, id: second.id().into_uuid() };
    let limit = PageLimit::new(2).expect("a valid limit");
    let page = Page { items: vec![first.clone(), second.clone()], next: Some(next.clone()) };
    let mut queries = MockUserQueries::new();
    queries
        .expect_list()
        .withf(move |request| *request == PageRequest { limit, after: None })
        .times(1)
        .returning(move |_| Ok(page.clone()));

    let listed = ListUsers::new(Arc::new(queries), admins())
        .execute(&admin(), ListRequest { limit, cursor: None })
        .await
        .expect("admins list users");

    let ids: Vec<UserId> = listed.items.iter().map(User::id).collect();
    assert_eq!(ids, vec![first.id(), second.id()]);
    assert_eq!(listed.next_cursor, Some(next.encode(list_users::SCOPE)));
}

#[tokio::test]
async fn the_requested_cursor_is_decoded_and_handed_to_the_store() {
    let after = Cursor { value: SortValue::None, id: UserId::new().into_uuid() };
    let expected = PageRequest { limit: PageLimit::default(), after: Some(after.clone()) };
    let mut queries = MockUserQueries::new();
    queries
        .expect_list()
        .withf(move |request| *request == expected)
        .times(1)
        .returning(|_| Ok(Page { items: vec![], next: None }));
    let request =
        ListRequest { limit: PageLimit::default(), cursor: Some(after.encode(list_users::SCOPE)) };

    let listed = ListUsers::new(Arc::new(queries), admins())
        .execute(&admin(), request)
        .await
        .expect("a cursor this list handed out is accepted");

    assert!(listed.items.is_empty());
    assert_eq!(listed.next_cursor, None);
}

#[tokio::test]
async fn a_customer_may_not_list_users() {
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(0);

    let result = ListUsers::new(Arc::new(queries), admins())
        .execute(&customer(UserId::new()), ListRequest::default())
        .await;

    assert!(matches!(result, Err(ListUsersError::Forbidden)), "{result:?}");
}

#[tokio::test]
async fn a_garbage_cursor_is_an_invalid_cursor() {
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(0);
    let request = ListRequest { cursor: Some("not-a-cursor".to_owned()), ..ListRequest::default() };

    let result = ListUsers::new(Arc::new(queries), admins()).execute(&admin(), request).await;

    assert!(matches!(result, Err(ListUsersError::InvalidCursor(_))), "{result:?}");
}

#[tokio::test]
async fn a_cursor_from_another_list_is_an_invalid_cursor() {
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(0);
    let foreign = Cursor { value: SortValue::None, id: UserId::new().into_uuid() }.encode("orders");
    let request = ListRequest { cursor: Some(foreign), ..ListRequest::default() };

    let result = ListUsers::new(Arc::new(queries), admins()).execute(&admin(), request).await;

    assert!(matches!(result, Err(ListUsersError::InvalidCursor(_))), "{result:?}");
}

#[tokio::test]
async fn listing_users_while_the_store_is_down_is_a_store_error() {
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(1).returning(|_| Err(store_down()));

    let result =
        ListUsers::new(Arc::new(queries), admins()).execute(&admin(), ListRequest::default()).await;

    assert!(matches!(result, Err(ListUsersError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// update_user
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_renames_themselves_and_the_version_moves_on() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, expected| {
            user.name().as_str() == "Ada Lovelace"
                && user.version() == STORED_VERSION + 1
                && user.updated_at() == now()
                && *expected == STORED_VERSION
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

    let updated = update_user(users, MockPasswordHasher::new())
        .execute(&customer(user.id()), input)
        .await
        .expect("a user may rename themselves");

    assert_eq!(updated.name().as_str(), "Ada Lovelace");
    assert_eq!(updated.version(), STORED_VERSION + 1);
}

#[tokio::test]
async fn a_user_changes_their_email() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, expected| {
            user.email().as_str() == "ada@example.org"
                && user.version() == STORED_VERSION + 1
                && *expected == STORED_VERSION
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        email: Some(email("ada@example.org")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher_verifying_stored_hash(true))
        .execute(&customer(user.id()), input)
        .await
        .expect("a user may change their e-mail address");

    assert_eq!(updated.email().as_str(), "ada@example.org");
}

#[tokio::test]
async fn a_new_password_is_hashed_before_it_is_stored() {
    let user = stored_user(Role::Customer);
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher
        .expect_hash()
        .withf(|password| password.expose() == "a brand new passphrase")
        .times(1)
        .returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, expected| {
            user.password_hash().as_str() == "$argon2id$new"
                && user.version() == STORED_VERSION + 1
                && *expected == STORED_VERSION
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher)
        .execute(&customer(user.id()), input)
        .await
        .expect("a user may change their password");

    assert_eq!(updated.password_hash().as_str(), "$argon2id$new");
}

#[tokio::test]
async fn several_changes_at_once_are_stored_in_one_write() {
    let user = stored_user(Role::Customer);
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher.expect_hash().times(1).returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, expected| {
            user.name().as_str() == "Ada Lovelace"
                && user.email().as_str() == "ada@example.org"
                && user.password_hash().as_str() == "$argon2id$new"
                && user.version() == STORED_VERSION + 1
                && *expected == STORED_VERSION
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        email: Some(email("ada@example.org")),
        name: Some(name("Ada Lovelace")),
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher)
        .execute(&customer(user.id()), input)
        .await
        .expect("a user may change several fields at once");

    assert_eq!(updated.version(), STORED_VERSION + 1);
}

#[tokio::test]
async fn an_admin_changes_a_users_role() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, expected| {
            user.role() == Role::Admin
                && user.version() == STORED_VERSION + 1
                && *expected == STORED_VERSION
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput { role: Some(Role::Admin), ..no_changes(user.id()) };

    let updated = update_user(users, MockPasswordHasher::new())
        .execute(&admin(), input)
        .await
        .expect("admins change roles");

    assert_eq!(updated.role(), Role::Admin);
}

#[tokio::test]
async fn a_role_change_ends_the_users_sessions() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(1).returning(|_, _| Ok(()));
    let mut sessions = MockRefreshTokens::new();
    let id = user.id();
    sessions
        .expect_revoke_all()
        .withf(move |user, at| *user == id && *at == now())
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput { role: Some(Role::Admin), ..no_changes(user.id()) };

    update_user_with_sessions(users, MockPasswordHasher::new(), sessions)
        .execute(&admin(), input)
        .await
        .expect("admins change roles");
}

#[tokio::test]
async fn a_rename_keeps_the_users_sessions() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(1).returning(|_, _| Ok(()));
    let mut sessions = MockRefreshTokens::new();
    sessions.expect_revoke_all().never();
    let input = UpdateUserInput {
        name: Some(name("Ada Lovelace")),
        role: Some(Role::Customer),
        ..no_changes(user.id())
    };

    update_user_with_sessions(users, MockPasswordHasher::new(), sessions)
        .execute(&customer(user.id()), input)
        .await
        .expect("a user may rename themselves");
}

#[tokio::test]
async fn a_failure_to_end_the_sessions_is_a_store_error_and_stores_nothing() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().never();
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher.expect_hash().returning(|_| Ok(PasswordHash::new("$argon2id$new".into())));
    let mut sessions = MockRefreshTokens::new();
    sessions
        .expect_revoke_all()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("down"))));
    let input = UpdateUserInput {
        password: Some(Password::parse("a brand new passphrase".into()).expect("valid")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let result = update_user_with_sessions(users, hasher, sessions)
        .execute(&customer(user.id()), input)
        .await;

    assert!(
        matches!(result, Err(UpdateUserError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_customer_changing_their_role_is_forbidden() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(0);
    let input = UpdateUserInput { role: Some(Role::Admin), ..no_changes(user.id()) };

    let result =
        update_user(users, MockPasswordHasher::new()).execute(&customer(user.id()), input).await;

    assert!(matches!(result, Err(UpdateUserError::Forbidden)), "{result:?}");
}

#[tokio::test]
async fn a_customer_may_send_their_current_role_with_other_changes() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, _| user.role() == Role::Customer && user.name().as_str() == "Ada Lovelace")
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        name: Some(name("Ada Lovelace")),
        role: Some(Role::Customer),
        ..no_changes(user.id())
    };

    let updated = update_user(users, MockPasswordHasher::new())
        .execute(&customer(user.id()), input)
        .await
        .expect("an unchanged role is not a role change");

    assert_eq!(updated.role(), Role::Customer);
    assert_eq!(updated.version(), STORED_VERSION + 1);
}

#[tokio::test]
async fn an_outdated_expected_version_is_a_version_mismatch() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().times(0);
    let input = UpdateUserInput {
        expected_version: Some(STORED_VERSION - 1),
        name: Some(name("Ada Lovelace")),
        password: Some(password("a brand new passphrase")),
        ..no_changes(user.id())
    };

    let result = update_user(users, hasher).execute(&customer(user.id()), input).await;

    match result {
        Err(UpdateUserError::VersionMismatch { expected, current }) => {
            assert_eq!((expected, current), (STORED_VERSION - 1, STORED_VERSION));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn the_current_expected_version_is_accepted() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|_, expected| *expected == STORED_VERSION)
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        expected_version: Some(STORED_VERSION),
        name: Some(name("Ada Lovelace")),
        ..no_changes(user.id())
    };

    let updated = update_user(users, MockPasswordHasher::new())
        .execute(&customer(user.id()), input)
        .await
        .expect("the client saw the current version");

    assert_eq!(updated.version(), STORED_VERSION + 1);
}

/// `user` as stored after someone else's change moved it on to `version`.
fn restored_at(user: &User, version: u64) -> User {
    User::restore(UserParts {
        id: user.id(),
        email: user.email().clone(),
        name: user.name().clone(),
        role: user.role(),
        password_hash: user.password_hash().clone(),
        session_epoch: user.session_epoch(),
        version,
        created_at: user.created_at(),
        updated_at: user.updated_at(),
    })
}

/// A repository whose `find_by_id` answers `user` one version further on at each of its `reads`
/// calls (at [`STORED_VERSION`], then + 1, ...), as if another request changed it every time.
fn repository_moving_on(user: &User, reads: usize) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    let (id, stored) = (user.id(), user.clone());
    let mut version = STORED_VERSION;
    users.expect_find_by_id().withf(move |asked| *asked == id).times(reads).returning(move |_| {
        let found = restored_at(&stored, version);
        version += 1;
        Ok(Some(found))
    });
    users
}

/// What each `update` call was given: (expected version, new version, name).
type Writes = Arc<Mutex<Vec<(u64, u64, String)>>>;

/// Expects `update` once per answer, in order, recording what each call was given.
fn updates_answering(
    users: &mut MockUserRepository,
    answers: Vec<UserWriteError>,
    ok: bool,
) -> Writes {
    let writes = Writes::default();
    let recorded = Arc::clone(&writes);
    let mut answers = answers.into_iter();
    users.expect_update().times(answers.len() + usize::from(ok)).returning(
        move |user, expected| {
            let mut recorded = recorded.lock().expect("not poisoned");
            recorded.push((expected, user.version(), user.name().as_str().to_owned()));
            answers.next().map_or(Ok(()), Err)
        },
    );
    writes
}

#[tokio::test]
async fn without_if_match_a_concurrent_change_makes_the_update_re_read_and_re_apply() {
    let user = stored_user(Role::Customer);
    let mut users = repository_moving_on(&user, 2);
    let writes = updates_answering(&mut users, vec![UserWriteError::Stale], true);
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

    let updated = update_user(users, MockPasswordHasher::new())
        .execute(&customer(user.id()), input)
        .await
        .expect("the second attempt wins");

    assert_eq!(
        *writes.lock().expect("not poisoned"),
        [
            (STORED_VERSION, STORED_VERSION + 1, "Ada Lovelace".to_owned()),
            (STORED_VERSION + 1, STORED_VERSION + 2, "Ada Lovelace".to_owned()),
        ],
        "the second write is based on the re-read user"
    );
    assert_eq!(updated.version(), STORED_VERSION + 2);
}

#[tokio::test]
async fn without_if_match_an_update_gives_up_with_a_conflict_after_the_bounded_attempts() {
    let user = stored_user(Role::Customer);
    let mut users = repository_moving_on(&user, WRITE_ATTEMPTS);
    let writes = updates_answering(
        &mut users,
        (0..WRITE_ATTEMPTS).map(|_| UserWriteError::Stale).collect(),
        false,
    );
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

    let result =
        update_user(users, MockPasswordHasher::new()).execute(&customer(user.id()), input).await;

    assert!(matches!(result, Err(UpdateUserError::Conflict)), "{result:?}");
    assert_eq!(writes.lock().expect("not poisoned").len(), WRITE_ATTEMPTS);
}

#[tokio::test]
async fn with_if_match_a_write_that_loses_the_race_is_a_version_mismatch_naming_the_current_version()
 {
    let user = stored_user(Role::Customer);
    // Read at the client's version, then (after the lost write) at the winner's.
    let mut users = repository_moving_on(&user, 2);
    let writes = updates_answering(&mut users, vec![UserWriteError::Stale], false);
    let input = UpdateUserInput {
        expected_version: Some(STORED_VERSION),
        name: Some(name("Ada Lovelace")),
        ..no_changes(user.id())
    };

    let result =
        update_user(users, MockPasswordHasher::new()).execute(&customer(user.id()), input).await;

    match result {
        Err(UpdateUserError::VersionMismatch { expected, current }) => {
            assert_eq!((expected, current), (STORED_VERSION, STORED_VERSION + 1));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert_eq!(writes.lock().expect("not poisoned").len(), 1, "never retried");
}

#[tokio::test]
async fn a_new_password_is_hashed_and_the_sessions_ended_once_across_retries() {
    let user = stored_user(Role::Customer);
    // The stored password stays the same across the re-reads: it is verified once.
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher.expect_hash().times(1).returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let mut sessions = MockRefreshTokens::new();
    sessions.expect_revoke_all().times(1).returning(|_, _| Ok(()));
    let mut users = repository_moving_on(&user, 3);
    let mut attempts = 0;
    users
        .expect_update()
        .withf(|user, _| user.password_hash().as_str() == "$argon2id$new")
        .times(3)
        .returning(move |_, _| {
            attempts += 1;
            if attempts < 3 { Err(UserWriteError::Stale) } else { Ok(()) }
        });
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user_with_sessions(users, hasher, sessions)
        .execute(&customer(user.id()), input)
        .await
        .expect("the third attempt wins");

    assert_eq!(updated.password_hash().as_str(), "$argon2id$new");
    assert_eq!(updated.version(), STORED_VERSION + 3);
}

#[tokio::test]
async fn demoting_the_last_admin_is_refused() {
    let user = stored_user(Role::Admin);
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, _| user.role() == Role::Customer)
        .times(1)
        .returning(|_, _| Err(UserWriteError::LastAdmin));
    let input = UpdateUserInput { role: Some(Role::Customer), ..no_changes(user.id()) };

    let result = update_user(users, MockPasswordHasher::new()).execute(&admin(), input).await;

    assert!(matches!(result, Err(UpdateUserError::LastAdmin)), "{result:?}");
}

#[tokio::test]
async fn taking_another_users_email_is_a_duplicate() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(1).returning(|_, _| Err(UserWriteError::EmailTaken));
    let input = UpdateUserInput {
        email: Some(email("grace@example.com")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let result = update_user(users, hasher_verifying_stored_hash(true))
        .execute(&customer(user.id()), input)
        .await;

    assert!(matches!(result, Err(UpdateUserError::DuplicateEmail)), "{result:?}");
}

#[tokio::test]
async fn updating_a_missing_user_is_not_found() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|_| Ok(None));
    users.expect_update().times(0);
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(UserId::new()) };

    let result = update_user(users, MockPasswordHasher::new()).execute(&admin(), input).await;

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_user_deleted_during_the_update_is_not_found() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(1).returning(|_, _| Err(UserWriteError::NotFound));
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

    let result =
        update_user(users, MockPasswordHasher::new()).execute(&customer(user.id()), input).await;

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn an_update_without_actual_changes_stores_nothing() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(0);
    let input = UpdateUserInput {
        email: Some(user.email().clone()),
        name: Some(user.name().clone()),
        role: Some(user.role()),
        ..no_changes(user.id())
    };

    let unchanged = update_user(users, MockPasswordHasher::new())
        .execute(&customer(user.id()), input)
        .await
        .expect("a no-op update succeeds");

    assert_eq!(unchanged.version(), STORED_VERSION);
    assert_eq!(unchanged.updated_at(), user.updated_at());
}

#[tokio::test]
async fn a_customer_updating_another_customer_is_not_found_without_asking_the_store() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(0);
    users.expect_update().times(0);
    let input = UpdateUserInput { name: Some(name("Mallory")), ..no_changes(UserId::new()) };

    let result = update_user(users, MockPasswordHasher::new())
        .execute(&customer(UserId::new()), input)
        .await;

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn loading_a_user_to_update_while_the_store_is_down_is_a_store_error() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|_| Err(store_down()));
    users.expect_update().times(0);
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(UserId::new()) };

    let result = update_user(users, MockPasswordHasher::new()).execute(&admin(), input).await;

    assert!(
        matches!(result, Err(UpdateUserError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn writing_an_update_while_the_store_is_down_is_a_store_error() {
    let user = stored_user(Role::Customer);
    let mut users = repository_holding(&user);
    users.expect_update().times(1).returning(|_, _| Err(UserWriteError::Store(store_down())));
    let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

    let result =
        update_user(users, MockPasswordHasher::new()).execute(&customer(user.id()), input).await;

    assert!(
        matches!(result, Err(UpdateUserError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_still_referenced_answer_to_an_update_is_unexpected() {
    let answers: [fn() -> UserWriteError; 2] = [
        || UserWriteError::StillReferenced(UserReferrer::Orders),
        || UserWriteError::StillReferenced(UserReferrer::Unrecognised),
    ];
    for answer in answers {
        let user = stored_user(Role::Customer);
        let mut users = repository_holding(&user);
        users.expect_update().times(1).returning(move |_, _| Err(answer()));
        let input = UpdateUserInput { name: Some(name("Ada Lovelace")), ..no_changes(user.id()) };

        let result = update_user(users, MockPasswordHasher::new())
            .execute(&customer(user.id()), input)
            .await;

        match result {
            Err(UpdateUserError::Unexpected(error)) => {
                let cause = error.downcast_ref::<UserWriteError>();
                assert!(matches!(cause, Some(UserWriteError::StillReferenced(_))), "{cause:?}");
            }
            other => panic!("expected Unexpected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_failing_hasher_during_an_update_is_unexpected_and_stores_nothing() {
    let user = stored_user(Role::Customer);
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher
        .expect_hash()
        .times(1)
        .returning(|_| Err(HashError::Failed(anyhow::anyhow!("out of memory"))));
    let mut users = repository_holding(&user);
    users.expect_update().times(0);
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let result = update_user(users, hasher).execute(&customer(user.id()), input).await;

    assert!(matches!(result, Err(UpdateUserError::Unexpected(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// update_user: the current password for one's own password or e-mail address
// ---------------------------------------------------------------------------------------------

/// A hasher that must not be asked anything: no check of a current password, no new hash.
fn hasher_left_alone() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().never();
    hasher.expect_hash().never();
    hasher
}

/// A repository holding `user` that must not store anything.
fn repository_refusing_writes(user: &User) -> MockUserRepository {
    let mut users = repository_holding(user);
    users.expect_update().never();
    users
}

/// Sessions that must stay alive.
fn sessions_left_alone() -> MockRefreshTokens {
    let mut sessions = MockRefreshTokens::new();
    sessions.expect_revoke_all().never();
    sessions
}

#[tokio::test]
async fn changing_ones_own_password_without_the_current_one_is_refused_and_hashes_nothing() {
    let user = stored_user(Role::Customer);
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        ..no_changes(user.id())
    };

    let result = update_user_with_sessions(
        repository_refusing_writes(&user),
        hasher_left_alone(),
        sessions_left_alone(),
    )
    .execute(&customer(user.id()), input)
    .await;

    assert!(matches!(result, Err(UpdateUserError::CurrentPasswordRequired)), "{result:?}");
}

#[tokio::test]
async fn changing_ones_own_email_without_the_current_password_is_refused() {
    let user = stored_user(Role::Customer);
    let input = UpdateUserInput { email: Some(email("ada@example.org")), ..no_changes(user.id()) };

    let result = update_user(repository_refusing_writes(&user), hasher_left_alone())
        .execute(&customer(user.id()), input)
        .await;

    assert!(matches!(result, Err(UpdateUserError::CurrentPasswordRequired)), "{result:?}");
}

#[tokio::test]
async fn a_wrong_current_password_is_refused_and_the_new_one_is_never_hashed() {
    let user = stored_user(Role::Customer);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|password, hash| {
            password == "not my password" && hash.is_some_and(|hash| hash.as_str() == STORED_HASH)
        })
        .times(1)
        .returning(|_, _| Ok(false));
    hasher.expect_hash().never();
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        email: Some(email("mallory@example.org")),
        current_password: current("not my password"),
        ..no_changes(user.id())
    };

    let result =
        update_user_with_sessions(repository_refusing_writes(&user), hasher, sessions_left_alone())
            .execute(&customer(user.id()), input)
            .await;

    assert!(matches!(result, Err(UpdateUserError::WrongCurrentPassword)), "{result:?}");
}

#[tokio::test]
async fn the_right_current_password_lets_the_new_one_be_stored() {
    let user = stored_user(Role::Customer);
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher
        .expect_hash()
        .withf(|password| password.expose() == "a brand new passphrase")
        .times(1)
        .returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, _| user.password_hash().as_str() == "$argon2id$new")
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher)
        .execute(&customer(user.id()), input)
        .await
        .expect("the caller proved they know the password");

    assert_eq!(updated.password_hash().as_str(), "$argon2id$new");
}

#[tokio::test]
async fn an_admin_changes_another_users_email_and_password_without_their_password() {
    let user = stored_user(Role::Customer);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().never();
    hasher.expect_hash().times(1).returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, _| {
            user.email().as_str() == "ada@example.org"
                && user.password_hash().as_str() == "$argon2id$new"
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        email: Some(email("ada@example.org")),
        password: Some(password("a brand new passphrase")),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher)
        .execute(&admin(), input)
        .await
        .expect("admins manage other accounts without their passwords");

    assert_eq!(updated.email().as_str(), "ada@example.org");
}

#[tokio::test]
async fn an_admin_changing_their_own_password_needs_their_current_one() {
    let user = stored_user(Role::Admin);
    let me = Actor::User { id: user.id(), role: Role::Admin };
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        ..no_changes(user.id())
    };

    let result = update_user_with_sessions(
        repository_refusing_writes(&user),
        hasher_left_alone(),
        sessions_left_alone(),
    )
    .execute(&me, input)
    .await;

    assert!(matches!(result, Err(UpdateUserError::CurrentPasswordRequired)), "{result:?}");
}

#[tokio::test]
async fn an_admin_changing_their_own_email_with_their_current_password_succeeds() {
    let user = stored_user(Role::Admin);
    let me = Actor::User { id: user.id(), role: Role::Admin };
    let mut users = repository_holding(&user);
    users
        .expect_update()
        .withf(|user, _| user.email().as_str() == "root@example.org")
        .times(1)
        .returning(|_, _| Ok(()));
    let input = UpdateUserInput {
        email: Some(email("root@example.org")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let updated = update_user(users, hasher_verifying_stored_hash(true))
        .execute(&me, input)
        .await
        .expect("an admin who knows their own password");

    assert_eq!(updated.email().as_str(), "root@example.org");
}

#[tokio::test]
async fn a_name_change_needs_no_password_and_a_sent_one_is_not_checked() {
    for current_password in [None, current("whatever they typed")] {
        let user = stored_user(Role::Customer);
        let mut users = repository_holding(&user);
        users
            .expect_update()
            .withf(|user, _| user.name().as_str() == "Ada Lovelace")
            .times(1)
            .returning(|_, _| Ok(()));
        let input = UpdateUserInput {
            name: Some(name("Ada Lovelace")),
            // The address the account has already is no change of address.
            email: Some(user.email().clone()),
            current_password,
            ..no_changes(user.id())
        };

        let updated = update_user(users, hasher_left_alone())
            .execute(&customer(user.id()), input)
            .await
            .expect("a name is not a credential");

        assert_eq!(updated.name().as_str(), "Ada Lovelace");
    }
}

#[tokio::test]
async fn a_busy_hasher_while_checking_the_current_password_is_busy_and_stores_nothing() {
    let user = stored_user(Role::Customer);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().times(1).returning(|_, _| Err(HashError::Busy));
    hasher.expect_hash().never();
    let input = UpdateUserInput {
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let result =
        update_user_with_sessions(repository_refusing_writes(&user), hasher, sessions_left_alone())
            .execute(&customer(user.id()), input)
            .await;

    assert!(matches!(result, Err(UpdateUserError::Busy)), "{result:?}");
}

#[tokio::test]
async fn a_password_changed_between_two_attempts_is_verified_again() {
    let user = stored_user(Role::Customer);
    // The first read has the stored hash; the re-read after the lost write has another one
    // (someone changed the password meanwhile), which the caller's password does not match.
    let mut users = MockUserRepository::new();
    let (id, first) = (user.id(), user.clone());
    let mut reads = 0;
    users.expect_find_by_id().withf(move |asked| *asked == id).times(2).returning(move |_| {
        reads += 1;
        if reads == 1 {
            return Ok(Some(first.clone()));
        }
        let mut changed = restored_at(&first, STORED_VERSION + 1);
        changed.change_password(PasswordHash::new("$argon2id$theirs".to_owned()), now());
        Ok(Some(changed))
    });
    users.expect_update().times(1).returning(|_, _| Err(UserWriteError::Stale));
    let mut hasher = hasher_verifying_stored_hash(true);
    hasher
        .expect_verify()
        .withf(|_, hash| hash.is_some_and(|hash| hash.as_str() == "$argon2id$theirs"))
        .times(1)
        .returning(|_, _| Ok(false));
    hasher.expect_hash().times(1).returning(|_| Ok(PasswordHash::new("$argon2id$new".to_owned())));
    let input = UpdateUserInput {
        email: Some(email("ada@example.org")),
        password: Some(password("a brand new passphrase")),
        current_password: current(PASSWORD),
        ..no_changes(user.id())
    };

    let result = update_user(users, hasher).execute(&customer(user.id()), input).await;

    assert!(matches!(result, Err(UpdateUserError::WrongCurrentPassword)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// delete_user
// ---------------------------------------------------------------------------------------------

fn repository_deleting(
    id: UserId,
    answer: fn() -> Result<(), UserWriteError>,
) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_delete().withf(move |asked| *asked == id).times(1).returning(move |_| answer());
    users
}

#[tokio::test]
async fn a_customer_deletes_themselves() {
    let id = UserId::new();
    let users = repository_deleting(id, || Ok(()));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&customer(id), id).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn an_admin_deletes_any_user() {
    let id = UserId::new();
    let users = repository_deleting(id, || Ok(()));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn a_customer_deleting_another_customer_is_not_found_without_asking_the_store() {
    let mut users = MockUserRepository::new();
    users.expect_delete().times(0);

    let result = DeleteUser::new(Arc::new(users), admins())
        .execute(&customer(UserId::new()), UserId::new())
        .await;

    assert!(matches!(result, Err(DeleteUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn deleting_a_user_with_orders_is_refused() {
    let id = UserId::new();
    let users =
        repository_deleting(id, || Err(UserWriteError::StillReferenced(UserReferrer::Orders)));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    assert!(matches!(result, Err(DeleteUserError::HasOrders)), "{result:?}");
}

#[tokio::test]
async fn deleting_the_last_admin_is_refused() {
    let id = UserId::new();
    let users = repository_deleting(id, || Err(UserWriteError::LastAdmin));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    assert!(matches!(result, Err(DeleteUserError::LastAdmin)), "{result:?}");
}

#[tokio::test]
async fn deleting_a_user_kept_by_records_other_than_orders_is_unexpected_not_has_orders() {
    let id = UserId::new();
    let users = repository_deleting(id, || {
        Err(UserWriteError::StillReferenced(UserReferrer::Unrecognised))
    });

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    match result {
        Err(DeleteUserError::Unexpected(error)) => {
            let cause = error.downcast_ref::<UserWriteError>();
            assert!(
                matches!(cause, Some(UserWriteError::StillReferenced(UserReferrer::Unrecognised))),
                "{cause:?}"
            );
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn an_email_taken_answer_to_a_delete_is_unexpected() {
    let id = UserId::new();
    let users = repository_deleting(id, || Err(UserWriteError::EmailTaken));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    match result {
        Err(DeleteUserError::Unexpected(error)) => {
            let cause = error.downcast_ref::<UserWriteError>();
            assert!(matches!(cause, Some(UserWriteError::EmailTaken)), "{cause:?}");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_a_missing_user_is_not_found() {
    let id = UserId::new();
    let users = repository_deleting(id, || Err(UserWriteError::NotFound));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    assert!(matches!(result, Err(DeleteUserError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn deleting_a_user_while_the_store_is_down_is_a_store_error() {
    let id = UserId::new();
    let users = repository_deleting(id, || Err(UserWriteError::Store(store_down())));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    assert!(
        matches!(result, Err(DeleteUserError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_stale_answer_to_a_delete_is_unexpected() {
    let id = UserId::new();
    let users = repository_deleting(id, || Err(UserWriteError::Stale));

    let result = DeleteUser::new(Arc::new(users), admins()).execute(&admin(), id).await;

    match result {
        Err(DeleteUserError::Unexpected(error)) => {
            assert!(matches!(error.downcast_ref::<UserWriteError>(), Some(UserWriteError::Stale)));
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// authenticate
// ---------------------------------------------------------------------------------------------

/// A repository that finds `user` by their e-mail address, once.
fn repository_finding_by_email(user: &User) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    let address = user.email().clone();
    let stored = user.clone();
    users
        .expect_find_by_email()
        .withf(move |asked| *asked == address)
        .times(1)
        .returning(move |_| Ok(Some(stored.clone())));
    users
}

/// A hasher whose `verify` answers `matches` for [`PASSWORD`] against [`STORED_HASH`], once.
fn hasher_verifying_stored_hash(matches: bool) -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|password, hash| {
            password == PASSWORD && hash.is_some_and(|hash| hash.as_str() == STORED_HASH)
        })
        .times(1)
        .returning(move |_, _| Ok(matches));
    hasher
}

/// A hasher that expects `verify(PASSWORD, None)` (no such user) once and answers false.
fn hasher_verifying_without_hash() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|password, hash| password == PASSWORD && hash.is_none())
        .times(1)
        .returning(|_, _| Ok(false));
    hasher
}

fn no_access_tokens() -> MockAccessTokens {
    let mut access = MockAccessTokens::new();
    access.expect_issue().times(0);
    access
}

fn no_refresh_tokens() -> MockRefreshTokens {
    let mut refresh = MockRefreshTokens::new();
    refresh.expect_issue().times(0);
    refresh
}

#[tokio::test]
async fn logging_in_issues_an_access_token_and_a_new_refresh_token_family() {
    let user = stored_user(Role::Admin);
    let id = user.id();
    let mut access = MockAccessTokens::new();
    access
        .expect_issue()
        .withf(move |claims, at| {
            *claims == Claims { user_id: id, role: Role::Admin, session_epoch: 0 } && *at == now()
        })
        .times(1)
        .returning(|_, _| Ok(access_token()));
    let mut refresh = MockRefreshTokens::new();
    refresh
        .expect_issue()
        .withf(move |user, at| *user == id && *at == now())
        .times(1)
        .returning(|_, _| Ok("refresh-1".to_owned()));
    let login = authenticate(
        repository_finding_by_email(&user),
        hasher_verifying_stored_hash(true),
        access,
        refresh,
    );

    let tokens =
        login.execute(credentials(" Ada@Example.com ", PASSWORD)).await.expect("valid login");

    assert_eq!(
        tokens,
        TokenPair {
            access: access_token(),
            refresh_token: "refresh-1".to_owned(),
            user_id: id,
            role: Role::Admin,
        }
    );
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials_and_issues_no_tokens() {
    let user = stored_user(Role::Customer);
    let login = authenticate(
        repository_finding_by_email(&user),
        hasher_verifying_stored_hash(false),
        no_access_tokens(),
        no_refresh_tokens(),
    );

    let result = login.execute(credentials("ada@example.com", PASSWORD)).await;

    assert!(matches!(result, Err(AuthenticateError::InvalidCredentials)), "{result:?}");
}

#[tokio::test]
async fn an_unknown_email_is_invalid_credentials_after_the_same_hashing_work() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_by_email()
        .withf(|asked| asked.as_str() == "nobody@example.com")
        .times(1)
        .returning(|_| Ok(None));
    let login = authenticate(
        users,
        hasher_verifying_without_hash(),
        no_access_tokens(),
        no_refresh_tokens(),
    );

    let result = login.execute(credentials("nobody@example.com", PASSWORD)).await;

    assert!(matches!(result, Err(AuthenticateError::InvalidCredentials)), "{result:?}");
}

#[tokio::test]
async fn a_malformed_email_is_invalid_credentials_after_the_same_hashing_work() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_email().times(0);
    let login = authenticate(
        users,
        hasher_verifying_without_hash(),
        no_access_tokens(),
        no_refresh_tokens(),
    );

    let result = login.execute(credentials("not an address", PASSWORD)).await;

    assert!(matches!(result, Err(AuthenticateError::InvalidCredentials)), "{result:?}");
}

#[tokio::test]
async fn logging_in_while_the_store_is_down_is_a_store_error() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_email().times(1).returning(|_| Err(store_down()));
    let login =
        authenticate(users, MockPasswordHasher::new(), no_access_tokens(), no_refresh_tokens());

    let result = login.execute(credentials("ada@example.com", PASSWORD)).await;

    assert!(
        matches!(result, Err(AuthenticateError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_failing_hasher_at_login_is_unexpected() {
    let user = stored_user(Role::Customer);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .times(1)
        .returning(|_, _| Err(HashError::Failed(anyhow::anyhow!("corrupt PHC string"))));
    let login = authenticate(
        repository_finding_by_email(&user),
        hasher,
        no_access_tokens(),
        no_refresh_tokens(),
    );

    let result = login.execute(credentials("ada@example.com", PASSWORD)).await;

    assert!(matches!(result, Err(AuthenticateError::Unexpected(_))), "{result:?}");
}

#[tokio::test]
async fn a_signing_failure_at_login_is_unexpected_and_starts_no_session() {
    let user = stored_user(Role::Customer);
    let mut access = MockAccessTokens::new();
    access.expect_issue().times(1).returning(|_, _| Err(anyhow::anyhow!("no signing key")));
    let login = authenticate(
        repository_finding_by_email(&user),
        hasher_verifying_stored_hash(true),
        access,
        no_refresh_tokens(),
    );

    let result = login.execute(credentials("ada@example.com", PASSWORD)).await;

    assert!(matches!(result, Err(AuthenticateError::Unexpected(_))), "{result:?}");
}

#[tokio::test]
async fn failing_to_store_the_refresh_token_at_login_is_a_store_error() {
    let user = stored_user(Role::Customer);
    let mut access = MockAccessTokens::new();
    access.expect_issue().times(1).returning(|_, _| Ok(access_token()));
    let mut refresh = MockRefreshTokens::new();
    refresh.expect_issue().times(1).returning(|_, _| Err(store_down()));
    let login = authenticate(
        repository_finding_by_email(&user),
        hasher_verifying_stored_hash(true),
        access,
        refresh,
    );

    let result = login.execute(credentials("ada@example.com", PASSWORD)).await;

    assert!(
        matches!(result, Err(AuthenticateError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[test]
fn the_debug_form_of_credentials_hides_the_password() {
    let printed = format!("{:?}", credentials("ada@example.com", PASSWORD));

    assert!(!printed.contains(PASSWORD), "{printed}");
    assert!(printed.contains("ada@example.com"), "{printed}");
}

// ---------------------------------------------------------------------------------------------
// refresh_session
// ---------------------------------------------------------------------------------------------

/// Refresh tokens whose `rotate("refresh-1", now)` answers `answer`, once.
fn refresh_tokens_rotating(
    answer: impl Fn() -> Result<(UserId, String), RefreshTokenError> + Send + 'static,
) -> MockRefreshTokens {
    let mut refresh = MockRefreshTokens::new();
    refresh
        .expect_rotate()
        .withf(|token, at| token == "refresh-1" && *at == now())
        .times(1)
        .returning(move |_, _| answer());
    refresh
}

#[tokio::test]
async fn refreshing_rotates_the_token_and_issues_an_access_token_with_the_current_role() {
    // The session was started as a customer; the user has been promoted since.
    let user = stored_user(Role::Admin);
    let id = user.id();
    let refresh = refresh_tokens_rotating(move || Ok((id, "refresh-2".to_owned())));
    let mut access = MockAccessTokens::new();
    access
        .expect_issue()
        .withf(move |claims, at| {
            *claims == Claims { user_id: id, role: Role::Admin, session_epoch: 0 } && *at == now()
        })
        .times(1)
        .returning(|_, _| Ok(access_token()));

    let tokens = refresh_session(repository_holding(&user), access, refresh)
        .execute("refresh-1")
        .await
        .expect("a valid refresh token");

    assert_eq!(
        tokens,
        TokenPair {
            access: access_token(),
            refresh_token: "refresh-2".to_owned(),
            user_id: id,
            role: Role::Admin,
        }
    );
}

#[tokio::test]
async fn an_invalid_refresh_token_is_an_invalid_grant() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(0);
    let refresh = refresh_tokens_rotating(|| Err(RefreshTokenError::Invalid));

    let result = refresh_session(users, no_access_tokens(), refresh).execute("refresh-1").await;

    assert!(matches!(result, Err(RefreshSessionError::InvalidGrant)), "{result:?}");
}

#[tokio::test]
async fn a_reused_refresh_token_is_reported_as_reused() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(0);
    let refresh = refresh_tokens_rotating(|| Err(RefreshTokenError::Reused));

    let result = refresh_session(users, no_access_tokens(), refresh).execute("refresh-1").await;

    assert!(matches!(result, Err(RefreshSessionError::Reused)), "{result:?}");
}

#[tokio::test]
async fn refreshing_the_session_of_a_deleted_user_is_an_invalid_grant() {
    let id = UserId::new();
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().withf(move |asked| *asked == id).times(1).returning(|_| Ok(None));
    let refresh = refresh_tokens_rotating(move || Ok((id, "refresh-2".to_owned())));

    let result = refresh_session(users, no_access_tokens(), refresh).execute("refresh-1").await;

    assert!(matches!(result, Err(RefreshSessionError::InvalidGrant)), "{result:?}");
}

#[tokio::test]
async fn a_store_failure_while_rotating_is_a_store_error() {
    let refresh = refresh_tokens_rotating(|| Err(RefreshTokenError::Store(store_down())));

    let result = refresh_session(MockUserRepository::new(), no_access_tokens(), refresh)
        .execute("refresh-1")
        .await;

    assert!(
        matches!(result, Err(RefreshSessionError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_store_failure_while_loading_the_user_is_a_store_error() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|_| Err(store_down()));
    let refresh = refresh_tokens_rotating(|| Ok((UserId::new(), "refresh-2".to_owned())));

    let result = refresh_session(users, no_access_tokens(), refresh).execute("refresh-1").await;

    assert!(
        matches!(result, Err(RefreshSessionError::Store(StoreError::Unavailable(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_signing_failure_while_refreshing_is_unexpected() {
    let user = stored_user(Role::Customer);
    let id = user.id();
    let refresh = refresh_tokens_rotating(move || Ok((id, "refresh-2".to_owned())));
    let mut access = MockAccessTokens::new();
    access.expect_issue().times(1).returning(|_, _| Err(anyhow::anyhow!("no signing key")));

    let result =
        refresh_session(repository_holding(&user), access, refresh).execute("refresh-1").await;

    assert!(matches!(result, Err(RefreshSessionError::Unexpected(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// revoke_token
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn revoking_passes_the_token_and_the_current_time() {
    let mut refresh = MockRefreshTokens::new();
    refresh
        .expect_revoke()
        .withf(|token, at| token == "refresh-1" && *at == now())
        .times(1)
        .returning(|_, _| Ok(()));

    let result = RevokeToken::new(Arc::new(refresh), clock()).execute("refresh-1").await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn a_store_failure_while_revoking_is_reported() {
    let mut refresh = MockRefreshTokens::new();
    refresh.expect_revoke().times(1).returning(|_, _| Err(store_down()));

    let result = RevokeToken::new(Arc::new(refresh), clock()).execute("refresh-1").await;

    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
}
