//! The access-token check (`auth::authorize`) and the bounded password hashing as the use cases
//! see them, with mocked ports.

mod support;

use std::sync::Arc;

use orderly_application::{
    StoreError,
    auth::{
        authenticate::{Authenticate, AuthenticateError, AuthenticateInput},
        authorize::{Authorize, AuthorizeError},
    },
    ports::{
        AccountStatus, Claims, HashError, InvalidToken, MockAccessTokens, MockAccountDirectory,
        MockClock, MockPasswordHasher, MockRefreshTokens, MockUserRepository,
    },
    users::register_user::{RegisterUser, RegisterUserError, RegisterUserInput},
};
use orderly_domain::{Actor, Email, Password, Role, UserId, UserName, time::DateTime};
use support::{clock_at, store_down};

/// A clock stuck at the instant the other auth tests' clocks read (`users_and_auth.rs`,
/// `privileged.rs`), not the orders' `support::now`.
fn clock() -> Arc<MockClock> {
    Arc::new(clock_at(DateTime::from_timestamp(1_750_000_000, 0).expect("a representable instant")))
}

/// Tokens that verify as `claims` (or not at all).
fn tokens(claims: Option<Claims>) -> Arc<MockAccessTokens> {
    let mut tokens = MockAccessTokens::new();
    tokens.expect_verify().returning(move |_, _| claims.ok_or(InvalidToken));
    Arc::new(tokens)
}

/// A directory answering `status` once with `answer`.
fn directory(
    answer: impl Fn() -> Result<Option<AccountStatus>, StoreError> + Send + 'static,
) -> Arc<MockAccountDirectory> {
    let mut accounts = MockAccountDirectory::new();
    accounts.expect_status().times(1).returning(move |_| answer());
    Arc::new(accounts)
}

fn claims(role: Role, session_epoch: u64) -> Claims {
    Claims { user_id: UserId::new(), role, session_epoch }
}

#[tokio::test]
async fn a_valid_token_speaks_with_the_accounts_current_role() {
    let issued = claims(Role::Admin, 2);
    let authorize = Authorize::new(
        tokens(Some(issued)),
        directory(|| Ok(Some(AccountStatus { role: Role::Customer, session_epoch: 2 }))),
        clock(),
    );
    let actor = authorize.execute("token").await.expect("authorized");
    assert_eq!(actor, Actor::User { id: issued.user_id, role: Role::Customer }, "demoted");
}

#[tokio::test]
async fn a_deleted_accounts_token_is_refused() {
    let authorize =
        Authorize::new(tokens(Some(claims(Role::Admin, 0))), directory(|| Ok(None)), clock());
    assert!(matches!(authorize.execute("token").await, Err(AuthorizeError::AccountGone)));
}

#[tokio::test]
async fn a_token_from_before_a_password_change_is_refused() {
    let authorize = Authorize::new(
        tokens(Some(claims(Role::Customer, 0))),
        directory(|| Ok(Some(AccountStatus { role: Role::Customer, session_epoch: 1 }))),
        clock(),
    );
    assert!(matches!(authorize.execute("token").await, Err(AuthorizeError::SessionEnded)));
}

#[tokio::test]
async fn an_invalid_token_never_reaches_the_directory() {
    let mut accounts = MockAccountDirectory::new();
    accounts.expect_status().never();
    let authorize = Authorize::new(tokens(None), Arc::new(accounts), clock());
    assert!(matches!(authorize.execute("forged").await, Err(AuthorizeError::InvalidToken)));
}

#[tokio::test]
async fn a_directory_failure_is_a_store_error_not_a_refusal() {
    let authorize = Authorize::new(
        tokens(Some(claims(Role::Customer, 0))),
        directory(|| Err(store_down())),
        clock(),
    );
    assert!(matches!(
        authorize.execute("token").await,
        Err(AuthorizeError::Store(StoreError::Unavailable(_)))
    ));
}

#[tokio::test]
async fn a_busy_hasher_turns_a_login_away_without_issuing_anything() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_email().times(1).returning(|_| Ok(None));
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().times(1).returning(|_, _| Err(HashError::Busy));
    let mut access = MockAccessTokens::new();
    access.expect_issue().never();
    let mut refresh = MockRefreshTokens::new();
    refresh.expect_issue().never();
    let authenticate = Authenticate::new(
        Arc::new(users),
        Arc::new(hasher),
        Arc::new(access),
        Arc::new(refresh),
        clock(),
    );
    let result = authenticate
        .execute(AuthenticateInput {
            email: "ada@example.com".to_owned(),
            password: "whatever it is".to_owned(),
        })
        .await;
    assert!(matches!(result, Err(AuthenticateError::Busy)), "{result:?}");
}

#[tokio::test]
async fn a_busy_hasher_turns_a_registration_away_without_storing_anything() {
    let mut users = MockUserRepository::new();
    users.expect_insert().never();
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().times(1).returning(|_| Err(HashError::Busy));
    let register = RegisterUser::new(Arc::new(users), Arc::new(hasher), clock());
    let result = register
        .execute(RegisterUserInput {
            email: Email::parse("ada@example.com").expect("valid"),
            name: UserName::parse("Ada").expect("valid"),
            password: Password::parse("a long password".to_owned()).expect("valid"),
            role: Role::Customer,
        })
        .await;
    assert!(matches!(result, Err(RegisterUserError::Busy)), "{result:?}");
}
