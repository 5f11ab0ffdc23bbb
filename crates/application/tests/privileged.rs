//! Use-case tests of the database's check of admins (ADR 0027): an actor who acts as an admin
//! (as the access-token check, possibly from another instance's cache, established) is re-read
//! through the `UserRepository` before any admin-only work, and refused when the database no
//! longer holds them as an admin, before any other port is touched.
//!
//! The `UserRepository` of the check is its own mock here (in production it is the same
//! repository the use cases use), so each test states exactly which account is re-read.

use std::sync::Arc;

use orderly_application::{
    StoreError,
    auth::admin_check::AdminCheck,
    pagination::{ListRequest, Page},
    ports::{
        MockClock, MockPasswordHasher, MockProductQueries, MockProductRepository,
        MockRefreshTokens, MockUserQueries, MockUserRepository, ProductFilter,
    },
    products::{
        archive_product::{ArchiveProduct, ArchiveProductError},
        create_product::{CreateProduct, CreateProductError},
        list_products::{ListProducts, ListProductsError},
        update_product::{UpdateProduct, UpdateProductError, UpdateProductInput},
    },
    users::{
        delete_user::{DeleteUser, DeleteUserError},
        get_user::{GetUser, GetUserError},
        list_users::{ListUsers, ListUsersError},
        update_user::{UpdateUser, UpdateUserError, UpdateUserInput},
    },
};
use orderly_domain::{
    Actor, Currency, Email, Money, PasswordHash, ProductDraft, ProductId, ProductName, Role, Sku,
    User, UserId, UserName, UserParts,
    time::{DateTime, Timestamp},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn now() -> Timestamp {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a representable instant")
}

fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Arc::new(clock)
}

/// The account `id` as the database holds it, with `role`.
fn account(id: UserId, role: Role) -> User {
    User::restore(UserParts {
        id,
        email: Email::parse("grace@example.com").expect("a valid e-mail address"),
        name: UserName::parse("Grace").expect("a valid name"),
        role,
        password_hash: PasswordHash::new("$argon2id$v=19$stored".to_owned()),
        session_epoch: 0,
        version: 2,
        created_at: now(),
        updated_at: now(),
    })
}

/// An actor whose access token (and the cache that checked it) still says admin.
fn cached_admin() -> (UserId, Actor) {
    let id = UserId::new();
    (id, Actor::User { id, role: Role::Admin })
}

/// The check over a database whose one read, of `id`, finds `role` (`None`: the account is
/// gone).
fn database_says(id: UserId, role: Option<Role>) -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(move |id| Ok(role.map(|role| account(id, role))));
    AdminCheck::new(Arc::new(accounts))
}

/// The check over a database that must not be read at all.
fn database_unread() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts.expect_find_by_id().times(0);
    AdminCheck::new(Arc::new(accounts))
}

/// The check over a database that cannot be reached.
fn database_down() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts
        .expect_find_by_id()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));
    AdminCheck::new(Arc::new(accounts))
}

/// What became of the admin since their token was checked.
#[derive(Debug, Clone, Copy)]
enum Since {
    Demoted,
    Deleted,
}

impl Since {
    fn role(self) -> Option<Role> {
        match self {
            Self::Demoted => Some(Role::Customer),
            Self::Deleted => None,
        }
    }
}

/// Users that must not be touched: the refusal comes first.
fn untouched_users() -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(0);
    users.expect_update().times(0);
    users.expect_delete().times(0);
    users
}

/// Products that must not be touched.
fn untouched_products() -> MockProductRepository {
    let mut products = MockProductRepository::new();
    products.expect_find_by_id().times(0);
    products.expect_insert().times(0);
    products.expect_update().times(0);
    products
}

fn update_user(users: MockUserRepository, admins: AdminCheck) -> UpdateUser {
    let mut sessions = MockRefreshTokens::new();
    sessions.expect_revoke_all().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().times(0);
    hasher.expect_verify().times(0);
    UpdateUser::new(Arc::new(users), Arc::new(hasher), Arc::new(sessions), admins, clock())
}

fn role_change(id: UserId, role: Role) -> UpdateUserInput {
    UpdateUserInput {
        id,
        expected_version: None,
        email: None,
        name: None,
        password: None,
        role: Some(role),
        current_password: None,
    }
}

fn draft() -> ProductDraft {
    ProductDraft {
        sku: Sku::parse("KB-001").expect("a valid SKU"),
        name: ProductName::parse("Keyboard").expect("a valid name"),
        description: None,
        price: Money::new(4999, Currency::parse("EUR").expect("a currency")).expect("an amount"),
        stock: 12,
    }
}

fn archived() -> ProductFilter {
    ProductFilter { include_archived: true, ..ProductFilter::default() }
}

const SINCE: [Since; 2] = [Since::Demoted, Since::Deleted];

// ---------------------------------------------------------------------------------------------
// The check itself
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_comes_back_with_the_role_the_database_holds() {
    let (id, actor) = cached_admin();
    let current = database_says(id, Some(Role::Customer)).recheck(&actor).await.expect("read");
    assert_eq!(current, Some(Actor::User { id, role: Role::Customer }));

    let current = database_says(id, Some(Role::Admin)).recheck(&actor).await.expect("read");
    assert_eq!(current, Some(actor));

    let current = database_says(id, None).recheck(&actor).await.expect("read");
    assert_eq!(current, None, "a deleted account acts as no one");
}

#[tokio::test]
async fn customers_and_the_system_are_taken_as_given_without_a_read() {
    let customer = Actor::User { id: UserId::new(), role: Role::Customer };
    assert_eq!(database_unread().recheck(&customer).await.expect("no read"), Some(customer));
    assert_eq!(
        database_unread().recheck(&Actor::System).await.expect("no read"),
        Some(Actor::System)
    );
}

#[tokio::test]
async fn a_failed_read_is_a_store_error() {
    let (_, actor) = cached_admin();
    let result = database_down().recheck(&actor).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_no_longer_one_lists_no_users() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let mut queries = MockUserQueries::new();
        queries.expect_list().times(0);
        let result = ListUsers::new(Arc::new(queries), database_says(id, since.role()))
            .execute(&actor, ListRequest::default())
            .await;
        assert!(matches!(result, Err(ListUsersError::Forbidden)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_the_database_confirms_lists_users() {
    let (id, actor) = cached_admin();
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(1).returning(|_| Ok(Page { items: Vec::new(), next: None }));
    let listed = ListUsers::new(Arc::new(queries), database_says(id, Some(Role::Admin)))
        .execute(&actor, ListRequest::default())
        .await
        .expect("a confirmed admin lists users");
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn no_users_are_listed_when_the_check_cannot_read_the_database() {
    let (_, actor) = cached_admin();
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(0);
    let result = ListUsers::new(Arc::new(queries), database_down())
        .execute(&actor, ListRequest::default())
        .await;
    assert!(matches!(result, Err(ListUsersError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

#[tokio::test]
async fn an_admin_no_longer_one_promotes_no_one() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let result = update_user(untouched_users(), database_says(id, since.role()))
            .execute(&actor, role_change(UserId::new(), Role::Admin))
            .await;
        // Another user's account is not the actor's to see any more: it does not exist to them.
        assert!(matches!(result, Err(UpdateUserError::NotFound)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn a_demoted_admin_cannot_take_the_role_back() {
    let (id, actor) = cached_admin();
    let mut users = MockUserRepository::new();
    users
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(|id| Ok(Some(account(id, Role::Customer))));
    users.expect_update().times(0);
    let result = update_user(users, database_says(id, Some(Role::Customer)))
        .execute(&actor, role_change(id, Role::Admin))
        .await;
    assert!(matches!(result, Err(UpdateUserError::Forbidden)), "{result:?}");
}

#[tokio::test]
async fn an_admin_no_longer_one_deletes_no_one_else() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let result = DeleteUser::new(Arc::new(untouched_users()), database_says(id, since.role()))
            .execute(&actor, UserId::new())
            .await;
        assert!(matches!(result, Err(DeleteUserError::NotFound)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_no_longer_one_reads_no_one_else() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let result = GetUser::new(Arc::new(untouched_users()), database_says(id, since.role()))
            .execute(&actor, UserId::new())
            .await;
        assert!(matches!(result, Err(GetUserError::NotFound)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn a_demoted_admin_still_reads_their_own_account() {
    let (id, actor) = cached_admin();
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|id| Ok(Some(account(id, Role::Customer))));
    let user = GetUser::new(Arc::new(users), database_says(id, Some(Role::Customer)))
        .execute(&actor, id)
        .await
        .expect("one's own account");
    assert_eq!(user.role(), Role::Customer);
}

#[tokio::test]
async fn customers_are_not_read_again() {
    let id = UserId::new();
    let customer = Actor::User { id, role: Role::Customer };
    let mut queries = MockUserQueries::new();
    queries.expect_list().times(0);
    let result = ListUsers::new(Arc::new(queries), database_unread())
        .execute(&customer, ListRequest::default())
        .await;
    assert!(matches!(result, Err(ListUsersError::Forbidden)), "{result:?}");

    let mut users = MockUserRepository::new();
    users.expect_find_by_id().times(1).returning(|id| Ok(Some(account(id, Role::Customer))));
    GetUser::new(Arc::new(users), database_unread())
        .execute(&customer, id)
        .await
        .expect("a customer reads their own account with one read");
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_no_longer_one_creates_no_product() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let result = CreateProduct::new(
            Arc::new(untouched_products()),
            database_says(id, since.role()),
            clock(),
        )
        .execute(&actor, draft())
        .await;
        assert!(matches!(result, Err(CreateProductError::Forbidden)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_no_longer_one_changes_no_product() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let input = UpdateProductInput {
            name: Some(ProductName::parse("Mouse").expect("a valid name")),
            ..UpdateProductInput::default()
        };
        let result = UpdateProduct::new(
            Arc::new(untouched_products()),
            database_says(id, since.role()),
            clock(),
        )
        .execute(&actor, ProductId::new(), input)
        .await;
        assert!(matches!(result, Err(UpdateProductError::Forbidden)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_no_longer_one_archives_no_product() {
    for since in SINCE {
        let (id, actor) = cached_admin();
        let result = ArchiveProduct::new(
            Arc::new(untouched_products()),
            database_says(id, since.role()),
            clock(),
        )
        .execute(&actor, ProductId::new())
        .await;
        assert!(matches!(result, Err(ArchiveProductError::Forbidden)), "{since:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_the_database_confirms_creates_a_product() {
    let (id, actor) = cached_admin();
    let mut products = MockProductRepository::new();
    products.expect_insert().times(1).returning(|_| Ok(()));
    let product =
        CreateProduct::new(Arc::new(products), database_says(id, Some(Role::Admin)), clock())
            .execute(&actor, draft())
            .await
            .expect("a confirmed admin creates");
    assert_eq!(product.name().as_str(), "Keyboard");
}

#[tokio::test]
async fn archived_products_are_listed_for_admins_the_database_confirms_only() {
    let unlisted = || {
        let mut queries = MockProductQueries::new();
        queries.expect_list().times(0);
        Arc::new(queries)
    };
    let (id, actor) = cached_admin();
    let result = ListProducts::new(unlisted(), database_says(id, Some(Role::Customer)))
        .execute(Some(&actor), archived(), ListRequest::default())
        .await;
    assert!(matches!(result, Err(ListProductsError::Forbidden)), "demoted: {result:?}");

    // A deleted account's token no longer authenticates anyone (401).
    let (id, actor) = cached_admin();
    let result = ListProducts::new(unlisted(), database_says(id, None))
        .execute(Some(&actor), archived(), ListRequest::default())
        .await;
    assert!(matches!(result, Err(ListProductsError::Unauthenticated)), "deleted: {result:?}");

    // The active catalogue needs no admin: nobody is read again for it.
    let mut queries = MockProductQueries::new();
    queries.expect_list().times(1).returning(|_, _| Ok(Page { items: Vec::new(), next: None }));
    let (_, actor) = cached_admin();
    ListProducts::new(Arc::new(queries), database_unread())
        .execute(Some(&actor), ProductFilter::default(), ListRequest::default())
        .await
        .expect("the active catalogue");
}
