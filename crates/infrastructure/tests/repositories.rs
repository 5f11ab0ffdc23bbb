//! The SeaORM adapters against real, migrated databases: every repository and query method of
//! every port, on SQLite and (when `TEST_DATABASE_URL` is set) on PostgreSQL.
//!
//! Each test gets a fresh database. Timestamps carry microseconds (never nanoseconds), the finest
//! precision PostgreSQL keeps, so round-tripped values compare exactly on both engines.

use orderly_application::{
    pagination::{Page, PageLimit, PageRequest},
    ports::{
        OrderFilter, OrderQueries as _, OrderRepository as _, OrderWriteError, OverdueCursor,
        PlaceOrderFailure, ProductFilter, ProductQueries as _, ProductRepository as _, ProductSort,
        ProductWriteError, RefreshTokenError, RefreshTokens as _, UserQueries as _, UserReferrer,
        UserRepository as _, UserWriteError,
    },
};
use orderly_domain::{
    Actor, Currency, Email, Money, Order, OrderAction, OrderId, OrderItem, OrderLines, OrderStatus,
    OrderTransition, PasswordHash, Payment, PaymentDue, PaymentStatus, Product, ProductDescription,
    ProductDraft, ProductId, ProductName, Quantity, Reason, Role, Sku, User, UserId, UserName,
    UserParts,
    money::MAX_AMOUNT_MINOR,
    order::SETTLEMENT_ATTEMPTS,
    product::MAX_STOCK,
    time::{TimeDelta, Timestamp},
};
use orderly_infrastructure::{
    Database, Engine, SeaOrmOrderRepository, SeaOrmProductRepository, SeaOrmRefreshTokens,
    SeaOrmUserRepository, on_both_engines, testing::TestDatabase,
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fixed instant plus `seconds`, with a microsecond fraction so that sub-second precision is
/// part of every round trip.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 123_456_000).expect("a valid instant")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("an amount in range")
}

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid e-mail address")
}

fn user(address: &str, name: &str, role: Role, now: Timestamp) -> User {
    User::register(
        email(address),
        UserName::parse(name).expect("a valid name"),
        PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${address}")),
        role,
        now,
    )
}

fn product(sku: &str, name: &str, price: i64, stock: u32, now: Timestamp) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(name).expect("a valid name"),
        description: None,
        price: eur(price),
        stock,
    };
    Product::create(draft, now).expect("a valid product")
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("a valid reason")
}

fn actor(user: &User) -> Actor {
    Actor::User { id: user.id(), role: user.role() }
}

/// A new (not yet stored) order of `lines` by `customer`.
fn new_order(
    customer: &User,
    lines: &[(&Product, u32)],
    now: Timestamp,
    payment_due_at: Timestamp,
) -> (Order, OrderTransition) {
    let order_lines = OrderLines::new(
        lines
            .iter()
            .map(|(product, units)| (product.id(), Quantity::new(*units).expect("a quantity"))),
    )
    .expect("valid lines");
    let products: Vec<Product> = lines.iter().map(|(product, _)| (*product).clone()).collect();
    Order::place(customer.id(), &order_lines, &products, now, payment_due_at)
        .expect("a valid order")
}

type UserFields = (UserId, String, String, Role, String, u64, Timestamp, Timestamp);

/// Every field of a user, for comparisons with a readable diff (`User` has no `PartialEq`, and
/// `PasswordHash` prints redacted).
fn user_fields(user: &User) -> UserFields {
    (
        user.id(),
        user.email().as_str().to_owned(),
        user.name().as_str().to_owned(),
        user.role(),
        user.password_hash().as_str().to_owned(),
        user.version(),
        user.created_at(),
        user.updated_at(),
    )
}

type ProductFields =
    (ProductId, String, String, Option<String>, Money, u32, bool, u64, Timestamp, Timestamp);

fn product_fields(product: &Product) -> ProductFields {
    (
        product.id(),
        product.sku().as_str().to_owned(),
        product.name().as_str().to_owned(),
        product.description().map(|d| d.as_str().to_owned()),
        product.price(),
        product.stock(),
        product.is_archived(),
        product.version(),
        product.created_at(),
        product.updated_at(),
    )
}

type OrderFields = (
    OrderId,
    UserId,
    OrderStatus,
    Vec<OrderItem>,
    Money,
    Timestamp,
    Option<Payment>,
    u64,
    Timestamp,
    Timestamp,
);

fn order_fields(order: &Order) -> OrderFields {
    (
        order.id(),
        order.user_id(),
        order.status(),
        order.items().to_vec(),
        order.total(),
        order.payment_due_at(),
        order.payment().cloned(),
        order.version(),
        order.created_at(),
        order.updated_at(),
    )
}

fn first_page(limit: u32) -> PageRequest {
    PageRequest { limit: PageLimit::new(limit).expect("a valid limit"), after: None }
}

/// Follows the cursors of a list from its first page to its last, checking that every page but
/// the last is full and that only the last has no cursor. Returns the pages.
async fn every_page<T>(
    limit: u32,
    mut fetch: impl AsyncFnMut(PageRequest) -> Page<T>,
) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut request = first_page(limit);
    loop {
        let page = fetch(request.clone()).await;
        assert!(page.items.len() <= limit as usize, "a page holds at most its limit");
        match page.next {
            Some(cursor) => {
                assert_eq!(page.items.len(), limit as usize, "a page with a cursor is full");
                pages.push(page.items);
                request = PageRequest { limit: request.limit, after: Some(cursor) };
            }
            None => {
                pages.push(page.items);
                return pages;
            }
        }
        assert!(pages.len() <= 100, "the cursors never reach a last page");
    }
}

fn sizes<T>(pages: &[Vec<T>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

/// The three repositories an order scenario needs.
struct Shop {
    users: SeaOrmUserRepository,
    products: SeaOrmProductRepository,
    orders: SeaOrmOrderRepository,
}

impl Shop {
    fn new(db: &Database) -> Self {
        Self {
            users: SeaOrmUserRepository::new(db.clone()),
            products: SeaOrmProductRepository::new(db.clone()),
            orders: SeaOrmOrderRepository::new(db.clone()),
        }
    }

    async fn member(&self, name: &str, role: Role) -> User {
        let member = user(&format!("{name}@example.com"), name, role, at(0));
        self.users.insert(&member).await.expect("inserting a user");
        member
    }

    async fn customer(&self, name: &str) -> User {
        self.member(name, Role::Customer).await
    }

    async fn admin(&self) -> User {
        self.member("admin", Role::Admin).await
    }

    async fn stocked(&self, sku: &str, price: i64, stock: u32) -> Product {
        let product = product(sku, &format!("Product {sku}"), price, stock, at(0));
        self.products.insert(&product).await.expect("inserting a product");
        product
    }

    /// The stored stock and version of `product`.
    async fn stock_of(&self, product: &Product) -> (u32, u64) {
        let stored = self
            .products
            .find_by_id(product.id())
            .await
            .expect("reading a product")
            .expect("the product exists");
        (stored.stock(), stored.version())
    }

    async fn place_due(
        &self,
        customer: &User,
        lines: &[(&Product, u32)],
        now: Timestamp,
        payment_due_at: Timestamp,
    ) -> (Order, OrderTransition) {
        let (order, placed) = new_order(customer, lines, now, payment_due_at);
        self.orders.place(&order, &placed, None).await.expect("placing an order");
        (order, placed)
    }

    async fn place(&self, customer: &User, lines: &[(&Product, u32)], now: Timestamp) -> Order {
        self.place_due(customer, lines, now, now + TimeDelta::minutes(30)).await.0
    }

    /// Applies `action` to `order` and saves it at the version the order had before; `pay`
    /// goes through [`Order::pay`] with the provider reference `ch_test`.
    async fn apply(
        &self,
        order: &mut Order,
        action: OrderAction,
        by: Actor,
        why: Option<&str>,
        now: Timestamp,
    ) -> OrderTransition {
        let expected = order.version();
        let entry = if action == OrderAction::Pay {
            order.pay(&by, why.map(reason), "ch_test".to_owned(), now)
        } else {
            order.apply(action, &by, why.map(reason), now)
        }
        .expect("a legal transition");
        self.orders
            .save_transition(order, &entry, expected, None)
            .await
            .expect("saving a transition");
        entry
    }

    async fn stored(&self, order: &Order) -> Order {
        self.orders
            .find_by_id(order.id())
            .await
            .expect("reading an order")
            .expect("the order exists")
    }

    async fn history(&self, order: &Order) -> Vec<OrderTransition> {
        self.orders.history(order.id()).await.expect("reading the history")
    }

    async fn list(&self, filter: OrderFilter) -> Vec<Order> {
        let page = self.orders.list(filter, first_page(100)).await.expect("listing orders");
        assert!(page.next.is_none(), "everything fits on one page");
        page.items
    }
}

fn ids_of_orders(orders: &[Order]) -> Vec<OrderId> {
    orders.iter().map(Order::id).collect()
}

fn ids_of_products(products: &[Product]) -> Vec<ProductId> {
    products.iter().map(Product::id).collect()
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

async fn a_user_round_trips_every_field_through_insert_find_by_id_and_find_by_email(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let registered = user("Ada.Lovelace@Example.com", "Ada Lovelace ✓", Role::Admin, at(0));
    // A user whose version and update time moved on since registration.
    let ada = User::restore(UserParts {
        id: registered.id(),
        email: registered.email().clone(),
        name: UserName::parse("Ada King").expect("a valid name"),
        role: registered.role(),
        password_hash: registered.password_hash().clone(),
        session_epoch: 0,
        version: 2,
        created_at: registered.created_at(),
        updated_at: at(60),
    });
    let bob = user("bob@example.com", "Bob", Role::Customer, at(1));
    users.insert(&ada).await.expect("inserting ada");
    users.insert(&bob).await.expect("inserting bob");

    let by_id = users.find_by_id(ada.id()).await.expect("reading").expect("found by id");
    assert_eq!(user_fields(&by_id), user_fields(&ada));
    assert_eq!(by_id.version(), 2);

    let by_email = users
        .find_by_email(&email("ADA.LOVELACE@example.COM"))
        .await
        .expect("reading")
        .expect("found by e-mail");
    assert_eq!(user_fields(&by_email), user_fields(&ada));
    let bob_by_email =
        users.find_by_email(&email("bob@example.com")).await.expect("reading").expect("bob");
    assert_eq!(user_fields(&bob_by_email), user_fields(&bob));

    assert!(users.find_by_id(UserId::new()).await.expect("reading").is_none());
    assert!(users.find_by_email(&email("nobody@example.com")).await.expect("reading").is_none());
}

async fn registering_a_taken_email_is_a_duplicate_email(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    users.insert(&ada).await.expect("inserting ada");

    // The same address in other letters: e-mails are normalised, so it is the same address.
    let impostor = user("ADA@Example.com", "Impostor", Role::Admin, at(1));
    let result = users.insert(&impostor).await;
    assert!(matches!(result, Err(UserWriteError::EmailTaken)), "{result:?}");

    assert!(users.find_by_id(impostor.id()).await.expect("reading").is_none());
    let stored = users.find_by_email(&email("ada@example.com")).await.expect("reading");
    assert_eq!(stored.map(|u| user_fields(&u)), Some(user_fields(&ada)));
}

async fn updating_a_user_at_the_expected_version_writes_every_change(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    users.insert(&ada).await.expect("inserting");

    let mut changed = users.find_by_id(ada.id()).await.expect("reading").expect("found");
    changed.change_email(email("countess@example.com"), at(10));
    changed.rename(UserName::parse("Countess of Lovelace").expect("a valid name"), at(10));
    changed.change_role(Role::Admin, at(10));
    changed.change_password(PasswordHash::new("$argon2id$v=19$new".into()), at(20));
    assert_eq!(changed.version(), 2, "one save, one version step");
    users.update(&changed, 1).await.expect("updating at the stored version");

    let stored = users.find_by_id(ada.id()).await.expect("reading").expect("still there");
    assert_eq!(user_fields(&stored), user_fields(&changed));
    assert!(users.find_by_email(&email("ada@example.com")).await.expect("reading").is_none());
    let by_new_email = users.find_by_email(&email("countess@example.com")).await.expect("reading");
    assert_eq!(by_new_email.map(|u| u.id()), Some(ada.id()));
}

async fn updating_a_user_at_a_stale_version_is_stale_and_writes_nothing(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    users.insert(&ada).await.expect("inserting");

    let mut first = users.find_by_id(ada.id()).await.expect("reading").expect("found");
    first.rename(UserName::parse("First").expect("a valid name"), at(10));
    users.update(&first, 1).await.expect("the first update wins");

    // Loaded at version 1 too, but written after the first update.
    let mut second = ada.clone();
    second.rename(UserName::parse("Second").expect("a valid name"), at(20));
    let result = users.update(&second, 1).await;
    assert!(matches!(result, Err(UserWriteError::Stale)), "{result:?}");
    // A version from the future is just as stale.
    let result = users.update(&second, 7).await;
    assert!(matches!(result, Err(UserWriteError::Stale)), "{result:?}");

    let stored = users.find_by_id(ada.id()).await.expect("reading").expect("still there");
    assert_eq!(user_fields(&stored), user_fields(&first));
}

async fn updating_a_missing_user_is_not_found(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let mut ghost = user("ghost@example.com", "Ghost", Role::Customer, at(0));
    ghost.rename(UserName::parse("Casper").expect("a valid name"), at(1));
    let result = users.update(&ghost, 1).await;
    assert!(matches!(result, Err(UserWriteError::NotFound)), "{result:?}");
    assert!(users.find_by_id(ghost.id()).await.expect("reading").is_none());
}

async fn updating_a_user_to_a_taken_email_is_a_duplicate_email(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    let bob = user("bob@example.com", "Bob", Role::Customer, at(1));
    users.insert(&ada).await.expect("inserting ada");
    users.insert(&bob).await.expect("inserting bob");

    let mut changed = bob.clone();
    changed.change_email(email("ada@example.com"), at(10));
    let result = users.update(&changed, 1).await;
    assert!(matches!(result, Err(UserWriteError::EmailTaken)), "{result:?}");

    let stored = users.find_by_id(bob.id()).await.expect("reading").expect("bob");
    assert_eq!(user_fields(&stored), user_fields(&bob));
}

async fn deleting_a_user_removes_them_and_their_refresh_tokens(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let tokens = SeaOrmRefreshTokens::new(db.clone(), TimeDelta::days(30));
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    let bob = user("bob@example.com", "Bob", Role::Customer, at(1));
    users.insert(&ada).await.expect("inserting ada");
    users.insert(&bob).await.expect("inserting bob");
    let ada_token = tokens.issue(ada.id(), at(10)).await.expect("issuing");
    let bob_token = tokens.issue(bob.id(), at(10)).await.expect("issuing");

    users.delete(ada.id()).await.expect("deleting ada");

    assert!(users.find_by_id(ada.id()).await.expect("reading").is_none());
    assert!(users.find_by_email(&email("ada@example.com")).await.expect("reading").is_none());
    let result = tokens.rotate(&ada_token, at(20)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
    // Nobody else is touched.
    assert!(users.find_by_id(bob.id()).await.expect("reading").is_some());
    let (owner, _) = tokens.rotate(&bob_token, at(20)).await.expect("bob's token still works");
    assert_eq!(owner, bob.id());
}

async fn deleting_a_missing_user_is_not_found(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let result = users.delete(UserId::new()).await;
    assert!(matches!(result, Err(UserWriteError::NotFound)), "{result:?}");
}

async fn deleting_a_user_with_an_order_is_still_referenced_by_orders_and_changes_nothing(
    db: &Database,
) {
    let shop = Shop::new(db);
    let tokens = SeaOrmRefreshTokens::new(db.clone(), TimeDelta::days(30));
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 5).await;
    let order = shop.place(&ada, &[(&keyboard, 1)], at(10)).await;
    let token = tokens.issue(ada.id(), at(10)).await.expect("issuing");

    let result = shop.users.delete(ada.id()).await;
    assert!(
        matches!(result, Err(UserWriteError::StillReferenced(UserReferrer::Orders))),
        "{result:?}"
    );

    assert!(shop.users.find_by_id(ada.id()).await.expect("reading").is_some());
    assert_eq!(shop.stored(&order).await.user_id(), ada.id());
    // The refresh tokens deleted before the refusal came back with the rollback.
    let (owner, _) = tokens.rotate(&token, at(20)).await.expect("the token survived");
    assert_eq!(owner, ada.id());
}

/// A table the user adapter does not know of whose foreign key to `users` restricts deletes, as
/// a later migration (or an operator) could add: `user_notes`, one row for each user in `names`.
async fn restrict_users_by_notes(test_db: &TestDatabase, names: &[&str]) -> DatabaseConnection {
    let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
    let user_id = match test_db.database().engine() {
        Engine::Postgres => "user_id uuid",
        // No declared type: the column keeps the users' ids exactly as they are stored.
        Engine::Sqlite => "user_id",
    };
    raw.execute_unprepared(&format!(
        "CREATE TABLE user_notes ({user_id} NOT NULL REFERENCES users (id) ON DELETE RESTRICT)"
    ))
    .await
    .expect("creating the notes");
    for name in names {
        raw.execute_unprepared(&format!(
            "INSERT INTO user_notes (user_id) SELECT id FROM users WHERE email = '{name}@example.com'"
        ))
        .await
        .expect("writing a note");
    }
    raw
}

/// A reference the adapter does not know of is never reported as orders, on either engine: the
/// delete is refused with an unrecognised referrer, and nothing is deleted. A user who also has
/// orders is still said to have orders.
async fn deleting_a_user_kept_by_a_table_the_adapter_does_not_know_is_unrecognised_not_orders(
    test_db: TestDatabase,
) {
    let db = test_db.database();
    let shop = Shop::new(db);
    let tokens = SeaOrmRefreshTokens::new(db.clone(), TimeDelta::days(30));
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let keyboard = shop.stocked("KB-1", 4999, 5).await;
    shop.place(&bob, &[(&keyboard, 1)], at(10)).await;
    let token = tokens.issue(ada.id(), at(10)).await.expect("issuing");
    let raw = restrict_users_by_notes(&test_db, &["ada", "bob"]).await;

    let result = shop.users.delete(ada.id()).await;
    assert!(
        matches!(result, Err(UserWriteError::StillReferenced(UserReferrer::Unrecognised))),
        "{result:?}"
    );
    assert!(shop.users.find_by_id(ada.id()).await.expect("reading").is_some());
    let (owner, _) = tokens.rotate(&token, at(20)).await.expect("the token survived");
    assert_eq!(owner, ada.id());

    let result = shop.users.delete(bob.id()).await;
    assert!(
        matches!(result, Err(UserWriteError::StillReferenced(UserReferrer::Orders))),
        "{result:?}"
    );

    // Without the note, the same delete goes through.
    raw.execute_unprepared("DELETE FROM user_notes").await.expect("deleting the notes");
    raw.close().await.expect("closing");
    shop.users.delete(ada.id()).await.expect("deleting ada");
    assert!(shop.users.find_by_id(ada.id()).await.expect("reading").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_user_kept_by_a_table_the_adapter_does_not_know_is_unrecognised_not_orders_on_both_engines()
 {
    for test_db in TestDatabase::all().await {
        deleting_a_user_kept_by_a_table_the_adapter_does_not_know_is_unrecognised_not_orders(
            test_db,
        )
        .await;
    }
}

/// The ids of the stored admins, in id order.
async fn admin_ids(users: &SeaOrmUserRepository) -> Vec<UserId> {
    let listed = users.list(first_page(100)).await.expect("listing users");
    assert!(listed.next.is_none(), "fewer than 100 users in these tests");
    listed.items.iter().filter(|user| user.role() == Role::Admin).map(User::id).collect()
}

async fn deleting_the_only_admin_is_refused_and_changes_nothing(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let tokens = SeaOrmRefreshTokens::new(db.clone(), TimeDelta::days(30));
    let root = user("root@example.com", "Root", Role::Admin, at(0));
    users.insert(&root).await.expect("inserting the admin");
    users.insert(&user("ada@example.com", "Ada", Role::Customer, at(1))).await.expect("inserting");
    let token = tokens.issue(root.id(), at(10)).await.expect("issuing");

    let result = users.delete(root.id()).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");

    let stored = users.find_by_id(root.id()).await.expect("reading").expect("still there");
    assert_eq!(user_fields(&stored), user_fields(&root));
    let (owner, _) = tokens.rotate(&token, at(20)).await.expect("the admin's session survived");
    assert_eq!(owner, root.id());
}

async fn demoting_the_only_admin_is_refused_and_changes_nothing(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let root = user("root@example.com", "Root", Role::Admin, at(0));
    users.insert(&root).await.expect("inserting the admin");

    let mut demoted = root.clone();
    demoted.change_role(Role::Customer, at(10));
    demoted.rename(UserName::parse("Former Root").expect("a valid name"), at(10));
    let result = users.update(&demoted, 1).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");

    let stored = users.find_by_id(root.id()).await.expect("reading").expect("still there");
    assert_eq!(user_fields(&stored), user_fields(&root), "not even the name changed");

    // The only admin may still change anything but their role.
    let mut renamed = root.clone();
    renamed.rename(UserName::parse("Root Admin").expect("a valid name"), at(20));
    users.update(&renamed, 1).await.expect("renaming the only admin");
}

async fn of_two_admins_one_may_be_deleted_and_the_other_then_neither_deleted_nor_demoted(
    db: &Database,
) {
    let users = SeaOrmUserRepository::new(db.clone());
    let first = user("first@example.com", "First", Role::Admin, at(0));
    let second = user("second@example.com", "Second", Role::Admin, at(1));
    let customer = user("ada@example.com", "Ada", Role::Customer, at(2));
    for member in [&first, &second, &customer] {
        users.insert(member).await.expect("inserting");
    }

    users.delete(first.id()).await.expect("one of two admins may go");
    assert_eq!(admin_ids(&users).await, [second.id()]);

    let result = users.delete(second.id()).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");
    let mut demoted = second.clone();
    demoted.change_role(Role::Customer, at(10));
    let result = users.update(&demoted, 1).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");
    assert_eq!(admin_ids(&users).await, [second.id()]);

    // Customers come and go as before.
    users.delete(customer.id()).await.expect("deleting a customer");
}

async fn of_two_admins_one_may_be_demoted_and_the_other_then_not(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let first = user("first@example.com", "First", Role::Admin, at(0));
    let second = user("second@example.com", "Second", Role::Admin, at(1));
    users.insert(&first).await.expect("inserting");
    users.insert(&second).await.expect("inserting");

    let mut demoted = first.clone();
    demoted.change_role(Role::Customer, at(10));
    users.update(&demoted, 1).await.expect("one of two admins may be demoted");
    assert_eq!(admin_ids(&users).await, [second.id()]);

    let mut demoted = second.clone();
    demoted.change_role(Role::Customer, at(10));
    let result = users.update(&demoted, 1).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");
    // A demoted admin is a customer like any other: deleting them is no admin's business.
    users.delete(first.id()).await.expect("deleting the former admin");
    assert_eq!(admin_ids(&users).await, [second.id()]);
}

async fn users_are_listed_in_creation_order_in_keyset_pages_without_gaps(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let empty = users.list(first_page(2)).await.expect("listing nobody");
    assert!(empty.items.is_empty());
    assert!(empty.next.is_none());

    let mut created = Vec::new();
    for (i, name) in (0..).zip(["ada", "bob", "cyd", "dee", "eve"]) {
        let member = user(&format!("{name}@example.com"), name, Role::Customer, at(i));
        users.insert(&member).await.expect("inserting");
        created.push(member);
    }

    let pages = every_page(2, async |page| users.list(page).await.expect("listing")).await;
    assert_eq!(sizes(&pages), [2, 2, 1]);
    let listed: Vec<User> = pages.into_iter().flatten().collect();
    assert_eq!(
        listed.iter().map(user_fields).collect::<Vec<_>>(),
        created.iter().map(user_fields).collect::<Vec<_>>(),
    );

    // A list that exactly fills its pages: the last full page still has no cursor.
    let pages = every_page(5, async |page| users.list(page).await.expect("listing")).await;
    assert_eq!(sizes(&pages), [5]);
    let pages = every_page(1, async |page| users.list(page).await.expect("listing")).await;
    assert_eq!(sizes(&pages), [1, 1, 1, 1, 1]);
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

async fn a_product_round_trips_every_field_through_insert_and_find_by_id(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = Product::create(
        ProductDraft {
            sku: Sku::parse("kb-001").expect("a valid SKU"),
            name: ProductName::parse("Mechanical keyboard «ISO»").expect("a valid name"),
            description: Some(
                ProductDescription::parse("Clicky switches.\nUK layout.").expect("valid"),
            ),
            // The largest price and stock the domain allows fit their columns.
            price: eur(MAX_AMOUNT_MINOR),
            stock: MAX_STOCK,
        },
        at(0),
    )
    .expect("a valid product");
    let mut mug = product("MUG-1", "Mug", 0, 0, at(1));
    mug.reprice(Money::new(500, Currency::parse("JPY").expect("JPY")).expect("valid"), at(2));
    mug.archive(at(5));
    products.insert(&keyboard).await.expect("inserting the keyboard");
    products.insert(&mug).await.expect("inserting the mug");

    let stored = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&keyboard));
    let stored = products.find_by_id(mug.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&mug));
    assert!(stored.is_archived());
    assert_eq!(stored.price().currency().code(), "JPY");
    assert!(products.find_by_id(ProductId::new()).await.expect("reading").is_none());
}

async fn find_many_returns_the_products_that_exist_and_skips_missing_ids(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let a = product("A-1", "Anvil", 100, 1, at(0));
    let b = product("B-1", "Bolt", 200, 2, at(1));
    let mut c = product("C-1", "Clamp", 300, 3, at(2));
    c.archive(at(3));
    for product in [&a, &b, &c] {
        products.insert(product).await.expect("inserting");
    }

    let mut found = products.find_many(&[c.id(), ProductId::new(), a.id()]).await.expect("reading");
    found.sort_by_key(Product::id);
    assert_eq!(
        found.iter().map(product_fields).collect::<Vec<_>>(),
        vec![product_fields(&a), product_fields(&c)],
    );
    assert!(products.find_many(&[]).await.expect("reading nothing").is_empty());
    assert!(products.find_many(&[ProductId::new()]).await.expect("reading").is_empty());
}

async fn inserting_a_taken_sku_is_a_duplicate_sku(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = product("KB-001", "Keyboard", 4999, 5, at(0));
    products.insert(&keyboard).await.expect("inserting");

    let copy = product("kb-001", "Another keyboard", 999, 1, at(1));
    let result = products.insert(&copy).await;
    assert!(matches!(result, Err(ProductWriteError::SkuTaken)), "{result:?}");
    assert!(products.find_by_id(copy.id()).await.expect("reading").is_none());
}

async fn updating_a_product_at_the_expected_version_writes_every_change(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = product("KB-001", "Keyboard", 4999, 5, at(0));
    products.insert(&keyboard).await.expect("inserting");

    let mut changed = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    changed.change_sku(Sku::parse("KB-002").expect("a valid SKU"), at(10));
    changed.rename(ProductName::parse("Quiet keyboard").expect("a valid name"), at(10));
    changed.describe(Some(ProductDescription::parse("Silent.").expect("valid")), at(10));
    changed.reprice(eur(5999), at(10));
    changed.restock(42, at(10)).expect("in range");
    changed.archive(at(20));
    assert_eq!(changed.version(), 2, "one save, one version step");
    products.update(&changed, 1).await.expect("updating at the stored version");

    let stored = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&changed));

    // Removing the description writes NULL back.
    let mut plain = stored.clone();
    plain.describe(None, at(30));
    products.update(&plain, 2).await.expect("updating again");
    let stored = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&plain));
    assert_eq!(stored.description(), None);
}

async fn updating_a_product_at_a_stale_version_is_stale_and_writes_nothing(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = product("KB-001", "Keyboard", 4999, 5, at(0));
    products.insert(&keyboard).await.expect("inserting");

    let mut first = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    first.reprice(eur(3999), at(10));
    products.update(&first, 1).await.expect("the first update wins");

    let mut second = keyboard.clone();
    second.rename(ProductName::parse("Renamed").expect("a valid name"), at(20));
    let result = products.update(&second, 1).await;
    assert!(matches!(result, Err(ProductWriteError::Stale)), "{result:?}");

    let stored = products.find_by_id(keyboard.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&first));
}

async fn updating_a_missing_product_is_not_found(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let mut ghost = product("GHOST", "Ghost", 100, 1, at(0));
    ghost.reprice(eur(200), at(1));
    let result = products.update(&ghost, 1).await;
    assert!(matches!(result, Err(ProductWriteError::NotFound)), "{result:?}");
    assert!(products.find_by_id(ghost.id()).await.expect("reading").is_none());
}

async fn updating_a_product_to_a_taken_sku_is_a_duplicate_sku(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = product("KB-001", "Keyboard", 4999, 5, at(0));
    let mouse = product("MS-001", "Mouse", 1999, 5, at(1));
    products.insert(&keyboard).await.expect("inserting");
    products.insert(&mouse).await.expect("inserting");

    let mut changed = mouse.clone();
    changed.change_sku(Sku::parse("KB-001").expect("a valid SKU"), at(10));
    let result = products.update(&changed, 1).await;
    assert!(matches!(result, Err(ProductWriteError::SkuTaken)), "{result:?}");
    let stored = products.find_by_id(mouse.id()).await.expect("reading").expect("found");
    assert_eq!(product_fields(&stored), product_fields(&mouse));
}

fn filter(q: Option<&str>, include_archived: bool, sort: ProductSort) -> ProductFilter {
    ProductFilter { q: q.map(str::to_owned), include_archived, sort }
}

/// The ids the product list shows for `q`, in creation order, on one page.
async fn search(
    products: &SeaOrmProductRepository,
    q: Option<&str>,
    include_archived: bool,
) -> Vec<ProductId> {
    let page = products
        .list(filter(q, include_archived, ProductSort::CreatedAsc), first_page(100))
        .await
        .expect("listing products");
    assert!(page.next.is_none());
    ids_of_products(&page.items)
}

async fn archived_products_are_listed_only_when_asked_for(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let a = product("A-1", "Anvil", 100, 1, at(0));
    let mut b = product("B-1", "Bolt", 200, 2, at(1));
    b.archive(at(2));
    let c = product("C-1", "Clamp", 300, 3, at(3));
    for product in [&a, &b, &c] {
        products.insert(product).await.expect("inserting");
    }

    assert_eq!(search(&products, None, false).await, [a.id(), c.id()]);
    assert_eq!(search(&products, None, true).await, [a.id(), b.id(), c.id()]);
    assert!(search(&products, Some("bolt"), false).await.is_empty());
    assert_eq!(search(&products, Some("bolt"), true).await, [b.id()]);
}

async fn the_search_matches_the_name_or_the_sku_regardless_of_case(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let keyboard = product("KB-001", "Mechanical Keyboard", 4999, 5, at(0));
    let mouse = product("MS-KEY-2", "Wireless Mouse", 1999, 5, at(1));
    let screen = product("MN-27", "Monitor 27 inch", 19999, 5, at(2));
    let mut old = product("KB-OLD", "Old keyboard", 999, 0, at(3));
    old.archive(at(4));
    for product in [&keyboard, &mouse, &screen, &old] {
        products.insert(product).await.expect("inserting");
    }

    assert_eq!(search(&products, Some("keyb"), false).await, [keyboard.id()]);
    assert_eq!(search(&products, Some("KEY"), false).await, [keyboard.id(), mouse.id()]);
    assert_eq!(search(&products, Some("kb-0"), false).await, [keyboard.id()]);
    assert_eq!(search(&products, Some("wIrElEsS mOuSe"), false).await, [mouse.id()]);
    assert_eq!(search(&products, Some("mn-27"), false).await, [screen.id()]);
    assert!(search(&products, Some("nothing like it"), false).await.is_empty());
    assert_eq!(search(&products, Some("KEYBOARD"), true).await, [keyboard.id(), old.id()]);
}

async fn the_search_ignores_the_case_of_letters_beyond_ascii(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let eclair = product("ECL-1", "Éclair au chocolat", 350, 5, at(0));
    let strudel = product("STR-1", "Apfelstrudel", 450, 5, at(1));
    products.insert(&eclair).await.expect("inserting");
    products.insert(&strudel).await.expect("inserting");

    // Even the name exactly as stored must be found.
    assert_eq!(search(&products, Some("Éclair"), false).await, [eclair.id()]);
    assert_eq!(search(&products, Some("éclair"), false).await, [eclair.id()]);
    assert_eq!(search(&products, Some("ÉCLAIR AU"), false).await, [eclair.id()]);
    assert_eq!(search(&products, Some("APFEL"), false).await, [strudel.id()]);
}

async fn percent_and_underscore_in_the_search_are_taken_literally(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    let half = product("MUG-50", "Mug 50% off", 500, 5, at(0));
    let big = product("MUG-500", "Mug 500 ml", 900, 5, at(1));
    let under = product("CUP_1", "Cup one", 300, 5, at(2));
    let dash = product("CUP-1", "Cup two", 300, 5, at(3));
    let slash = product("BS-1", "Back\\slash", 100, 5, at(4));
    for product in [&half, &big, &under, &dash, &slash] {
        products.insert(product).await.expect("inserting");
    }

    // As wildcards, each of these would match more than the one product.
    assert_eq!(search(&products, Some("50%"), false).await, [half.id()]);
    assert_eq!(search(&products, Some("%"), false).await, [half.id()]);
    assert_eq!(search(&products, Some("cup_1"), false).await, [under.id()]);
    assert_eq!(search(&products, Some("_"), false).await, [under.id()]);
    assert_eq!(search(&products, Some("\\"), false).await, [slash.id()]);
    assert_eq!(search(&products, Some("k\\s"), false).await, [slash.id()]);
    assert_eq!(search(&products, Some("500 ml"), false).await, [big.id()]);
}

/// The key a product sorts by, before its id.
fn sort_key(sort: ProductSort, product: &Product) -> (String, i64) {
    match sort {
        ProductSort::CreatedAsc | ProductSort::CreatedDesc => (String::new(), 0),
        ProductSort::NameAsc | ProductSort::NameDesc => (product.name().as_str().to_owned(), 0),
        ProductSort::PriceAsc | ProductSort::PriceDesc => {
            (String::new(), product.price().amount_minor())
        }
    }
}

fn sorted(sort: ProductSort, products: &[Product]) -> Vec<ProductId> {
    let mut sorted = products.to_vec();
    sorted.sort_by(|a, b| sort_key(sort, a).cmp(&sort_key(sort, b)).then(a.id().cmp(&b.id())));
    if matches!(sort, ProductSort::CreatedDesc | ProductSort::NameDesc | ProductSort::PriceDesc) {
        sorted.reverse();
    }
    ids_of_products(&sorted)
}

async fn every_sort_order_pages_in_twos_through_the_fully_sorted_list(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    // Names and prices repeat, so ties must be broken by id for pages to neither skip nor repeat.
    let rows = [
        ("P1", "Bolt", 500),
        ("P2", "Anvil", 300),
        ("P3", "Bolt", 500),
        ("P4", "Clamp", 100),
        ("P5", "Anvil", 300),
        ("P6", "Drill", 500),
        ("P7", "Bolt", 900),
    ];
    let mut active = Vec::new();
    for (i, (sku, name, price)) in (0..).zip(rows) {
        let product = product(sku, name, price, 1, at(i));
        products.insert(&product).await.expect("inserting");
        active.push(product);
    }
    let mut archived = product("P8", "Aardvark kit", 50, 1, at(10));
    archived.archive(at(11));
    products.insert(&archived).await.expect("inserting");

    assert_eq!(sorted(ProductSort::CreatedAsc, &active), ids_of_products(&active));
    for sort in ProductSort::ALL {
        let expected = sorted(sort, &active);
        let pages = every_page(2, async |page| {
            products.list(filter(None, false, sort), page).await.expect("listing")
        })
        .await;
        assert_eq!(sizes(&pages), [2, 2, 2, 1], "{sort:?}");
        let listed: Vec<ProductId> = pages.iter().flatten().map(Product::id).collect();
        assert_eq!(listed, expected, "{sort:?} in pages of two");

        let whole = products.list(filter(None, false, sort), first_page(100)).await.expect("list");
        assert_eq!(ids_of_products(&whole.items), expected, "{sort:?} on one page");
        assert!(whole.next.is_none());

        // With a search (Anvil, Anvil, Drill and the archived Aardvark kit), pages of one.
        let mut matching: Vec<Product> = active.clone();
        matching.push(archived.clone());
        matching.retain(|p| p.name().as_str().to_lowercase().contains('i'));
        let expected = sorted(sort, &matching);
        let pages = every_page(1, async |page| {
            products.list(filter(Some("I"), true, sort), page).await.expect("listing")
        })
        .await;
        let listed: Vec<ProductId> = pages.iter().flatten().map(Product::id).collect();
        assert_eq!(listed, expected, "{sort:?} searching for I in pages of one");
    }
}

// ---------------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------------

async fn placing_an_order_stores_the_order_its_items_and_a_place_entry(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let mouse = shop.stocked("MS-1", 1999, 10).await;

    let (order, placed) = new_order(&ada, &[(&mouse, 3), (&keyboard, 2)], at(100), at(1900));
    shop.orders.place(&order, &placed, None).await.expect("placing");

    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!(stored.status(), OrderStatus::PendingPayment);
    assert_eq!(stored.version(), 1);
    assert_eq!(stored.total(), eur(2 * 4999 + 3 * 1999));
    let lines: Vec<(ProductId, String, Money, u32, Money)> = stored
        .items()
        .iter()
        .map(|item| {
            let sku = item.sku().as_str().to_owned();
            (item.product_id(), sku, item.unit_price(), item.quantity().get(), item.line_total())
        })
        .collect();
    let mut expected = vec![
        (keyboard.id(), "KB-1".to_owned(), eur(4999), 2, eur(9998)),
        (mouse.id(), "MS-1".to_owned(), eur(1999), 3, eur(5997)),
    ];
    expected.sort_by_key(|line| line.0);
    assert_eq!(lines, expected);

    assert_eq!(placed.action, OrderAction::Place);
    assert_eq!(placed.from, None);
    assert_eq!(placed.actor_id, Some(ada.id()));
    assert_eq!(shop.history(&order).await, [placed]);

    assert!(shop.orders.find_by_id(OrderId::new()).await.expect("reading").is_none());
    assert!(shop.orders.history(OrderId::new()).await.expect("reading").is_empty());
}

async fn placing_an_order_takes_each_lines_quantity_from_stock_and_bumps_the_version(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let mouse = shop.stocked("MS-1", 1999, 5).await;
    let screen = shop.stocked("MN-1", 19999, 3).await;

    shop.place(&ada, &[(&keyboard, 2), (&mouse, 5)], at(100)).await;
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2));
    assert_eq!(shop.stock_of(&mouse).await, (0, 2));
    assert_eq!(shop.stock_of(&screen).await, (3, 1), "a product not ordered is untouched");

    shop.place(&ada, &[(&keyboard, 8)], at(200)).await;
    assert_eq!(shop.stock_of(&keyboard).await, (0, 3));
}

async fn an_order_whose_second_line_is_short_of_stock_writes_nothing(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let first = shop.stocked("A-1", 100, 10).await;
    let second = shop.stocked("B-1", 100, 1).await;
    // Lines are reserved in product-id order: the first product is reserved before the second
    // fails, so its decrement must be rolled back.
    assert!(first.id() < second.id());

    let (order, placed) = new_order(&ada, &[(&second, 3), (&first, 2)], at(100), at(1900));
    match shop.orders.place(&order, &placed, None).await {
        Err(PlaceOrderFailure::InsufficientStock { product_id, requested, available }) => {
            assert_eq!((product_id, requested, available), (second.id(), 3, 1));
        }
        other => panic!("expected InsufficientStock, got {other:?}"),
    }

    assert_eq!(shop.stock_of(&first).await, (10, 1));
    assert_eq!(shop.stock_of(&second).await, (1, 1));
    assert!(shop.orders.find_by_id(order.id()).await.expect("reading").is_none());
    assert!(shop.history(&order).await.is_empty());
    assert!(shop.list(OrderFilter::default()).await.is_empty());
}

async fn an_order_for_a_customer_whose_account_is_gone_is_refused_and_takes_no_stock(
    db: &Database,
) {
    let shop = Shop::new(db);
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    // Never stored: as if the account was deleted after its token was issued.
    let gone = user("gone@example.com", "Gone", Role::Customer, at(0));

    let (order, placed) = new_order(&gone, &[(&keyboard, 2)], at(100), at(1900));
    let refused = shop.orders.place(&order, &placed, None).await;

    assert!(matches!(refused, Err(PlaceOrderFailure::UnknownCustomer)), "{refused:?}");
    assert_eq!(shop.stock_of(&keyboard).await, (10, 1), "the reservation rolled back");
    assert!(shop.orders.find_by_id(order.id()).await.expect("reading").is_none());
    assert!(shop.history(&order).await.is_empty());
}

async fn placing_an_order_for_an_archived_or_vanished_product_is_unavailable(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let mut mug = shop.stocked("MUG-1", 900, 10).await;

    // Built while the mug was on sale, placed after it was archived.
    let (order, placed) = new_order(&ada, &[(&keyboard, 1), (&mug, 1)], at(100), at(1900));
    mug.archive(at(50));
    shop.products.update(&mug, 1).await.expect("archiving");
    match shop.orders.place(&order, &placed, None).await {
        Err(PlaceOrderFailure::ProductUnavailable { product_id }) => {
            assert_eq!(product_id, mug.id());
        }
        other => panic!("expected ProductUnavailable, got {other:?}"),
    }
    assert_eq!(shop.stock_of(&keyboard).await, (10, 1));
    assert_eq!(shop.stock_of(&mug).await, (10, 2));
    assert!(shop.orders.find_by_id(order.id()).await.expect("reading").is_none());

    // A product that was never stored (or was deleted) is unavailable too.
    let ghost = product("GHOST", "Ghost", 100, 10, at(0));
    let (order, placed) = new_order(&ada, &[(&ghost, 1)], at(100), at(1900));
    match shop.orders.place(&order, &placed, None).await {
        Err(PlaceOrderFailure::ProductUnavailable { product_id }) => {
            assert_eq!(product_id, ghost.id());
        }
        other => panic!("expected ProductUnavailable, got {other:?}"),
    }
    assert!(shop.list(OrderFilter::default()).await.is_empty());
}

async fn paying_then_shipping_moves_the_order_and_appends_history_in_order(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let admin = shop.admin().await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut order, placed) = shop.place_due(&ada, &[(&keyboard, 2)], at(100), at(1900)).await;

    let pay = shop.apply(&mut order, OrderAction::Pay, actor(&ada), None, at(200)).await;
    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!((stored.status(), stored.version()), (OrderStatus::Paid, 2));
    assert_eq!(stored.updated_at(), at(200));
    let payment = stored.payment().expect("the payment is read back");
    assert_eq!(
        (payment.status(), payment.reference(), payment.amount(), payment.created_at()),
        (PaymentStatus::Authorized, Some("ch_test"), eur(2 * 4999), at(200))
    );

    let ship =
        shop.apply(&mut order, OrderAction::Ship, actor(&admin), Some("DHL 0042"), at(300)).await;
    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!((stored.status(), stored.version()), (OrderStatus::Shipped, 3));

    let history = shop.history(&order).await;
    assert_eq!(history, [placed, pay, ship]);
    let summary: Vec<_> = history
        .iter()
        .map(|entry| {
            let why = entry.reason.as_ref().map(|r| r.as_str().to_owned());
            (entry.from, entry.to, entry.action, entry.actor_id, why, entry.at)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (None, OrderStatus::PendingPayment, OrderAction::Place, Some(ada.id()), None, at(100)),
            (
                Some(OrderStatus::PendingPayment),
                OrderStatus::Paid,
                OrderAction::Pay,
                Some(ada.id()),
                None,
                at(200),
            ),
            (
                Some(OrderStatus::Paid),
                OrderStatus::Shipped,
                OrderAction::Ship,
                Some(admin.id()),
                Some("DHL 0042".to_owned()),
                at(300),
            ),
        ]
    );
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2), "paying and shipping keep the stock");
}

async fn cancelling_a_pending_order_gives_its_stock_back(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let mouse = shop.stocked("MS-1", 1999, 5).await;
    let (mut order, placed) =
        shop.place_due(&ada, &[(&keyboard, 3), (&mouse, 5)], at(100), at(1900)).await;
    assert_eq!(shop.stock_of(&keyboard).await, (7, 2));
    assert_eq!(shop.stock_of(&mouse).await, (0, 2));

    let cancel = shop
        .apply(&mut order, OrderAction::Cancel, actor(&ada), Some("changed my mind"), at(200))
        .await;

    assert_eq!(shop.stock_of(&keyboard).await, (10, 3));
    assert_eq!(shop.stock_of(&mouse).await, (5, 3));
    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!(stored.status(), OrderStatus::Cancelled);
    assert!(stored.payment().is_none(), "nothing was paid");
    assert_eq!(shop.history(&order).await, [placed, cancel]);
}

async fn a_payment_taken_after_a_cancellation_is_saved_at_the_expected_version_only(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut cancelled, _) = shop.place_due(&ada, &[(&keyboard, 1)], at(100), at(1900)).await;
    shop.apply(&mut cancelled, OrderAction::Cancel, actor(&ada), None, at(200)).await;
    let before = cancelled.version();

    cancelled.record_late_authorization("ch_late".to_owned(), eur(4999), at(250)).expect("owed");
    shop.orders.save_payment(&cancelled, before).await.expect("saving the payment");
    let stored = shop.stored(&cancelled).await;
    assert_eq!(order_fields(&stored), order_fields(&cancelled));
    assert_eq!(stored.status(), OrderStatus::Cancelled, "the status is not changed");
    assert_eq!(stored.version(), before + 1);
    let payment = stored.payment().expect("a payment");
    assert_eq!(
        (payment.status(), payment.reference()),
        (PaymentStatus::Authorized, Some("ch_late"))
    );

    // Saved again at the version it was loaded with: another writer won, nothing is written.
    let result = shop.orders.save_payment(&cancelled, before).await;
    assert!(matches!(result, Err(OrderWriteError::Stale)), "{result:?}");
    let (ghost, _) = new_order(&ada, &[(&keyboard, 1)], at(300), at(1900));
    let result = shop.orders.save_payment(&ghost, 1).await;
    assert!(matches!(result, Err(OrderWriteError::NotFound)), "{result:?}");
    assert_eq!(order_fields(&shop.stored(&cancelled).await), order_fields(&stored));
}

async fn a_pending_authorization_and_settlement_failures_round_trip_and_are_counted(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut order, _) = shop.place_due(&ada, &[(&keyboard, 1)], at(100), at(1900)).await;

    // The authorization asked for is stored before the provider answers (ADR 0026).
    let loaded = order.version();
    let attempt = order.payment_attempt();
    order.record_authorization_asked(attempt, at(150)).expect("payable");
    shop.orders.save_payment(&order, loaded).await.expect("saving the pending payment");
    let stored = shop.stored(&order).await;
    let payment = stored.payment().expect("a payment");
    assert_eq!(
        (payment.status(), payment.reference(), payment.attempt()),
        (PaymentStatus::Pending, None, Some(attempt))
    );
    assert_eq!(stored.payment_attempt(), attempt, "a retry asks with the same attempt");

    // Cancelled: a reconciliation is owed; each failure of it is counted and kept.
    shop.apply(&mut order, OrderAction::Cancel, actor(&ada), None, at(200)).await;
    assert_eq!(order.payment_due(), Some(PaymentDue::Reconcile));
    assert_eq!(shop.orders.count_payments_needing_attention().await.expect("counted"), 0);
    for failed in 1..=SETTLEMENT_ATTEMPTS {
        let loaded = order.version();
        order.record_settlement_failure(at(300)).expect("owed");
        shop.orders.save_payment(&order, loaded).await.expect("saving a failure");
        let stored = shop.stored(&order).await;
        assert_eq!(stored.payment().map(Payment::failures), Some(failed));
    }
    assert!(shop.stored(&order).await.payment().is_some_and(Payment::needs_attention));
    assert_eq!(shop.orders.count_payments_needing_attention().await.expect("counted"), 1);
    let owed = shop.orders.find_payments_due(at(400), 10).await.expect("owed payments");
    assert!(owed.iter().any(|owing| owing.id() == order.id()), "still asked for");

    // Found and voided: nothing is owed, nothing needs a person.
    let loaded = order.version();
    order.record_reconciled_authorization(Some("pi_found".to_owned()), at(500)).expect("owed");
    order.record_payment_done(PaymentDue::Void, at(500)).expect("a void is owed");
    shop.orders.save_payment(&order, loaded).await.expect("saving the void");
    let stored = shop.stored(&order).await;
    let payment = stored.payment().expect("a payment");
    assert_eq!(
        (payment.status(), payment.reference(), payment.failures()),
        (PaymentStatus::Voided, Some("pi_found"), 0)
    );
    assert_eq!(shop.orders.count_payments_needing_attention().await.expect("counted"), 0);
}

async fn cancelling_a_paid_order_gives_stock_back_and_flags_a_refund(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let admin = shop.admin().await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let mut order = shop.place(&ada, &[(&keyboard, 4)], at(100)).await;
    shop.apply(&mut order, OrderAction::Pay, actor(&ada), None, at(200)).await;
    assert_eq!(shop.stock_of(&keyboard).await, (6, 2));
    let expected = order.version();
    order.record_payment_done(PaymentDue::Capture, at(210)).expect("a capture is owed");
    shop.orders.save_payment(&order, expected).await.expect("saving the capture");
    assert_eq!(
        shop.stored(&order).await.payment().map(Payment::status),
        Some(PaymentStatus::Captured)
    );

    shop.apply(&mut order, OrderAction::Cancel, actor(&admin), Some("fraud"), at(300)).await;

    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!(stored.status(), OrderStatus::Cancelled);
    assert_eq!(stored.payment().map(Payment::status), Some(PaymentStatus::RefundPending));
    assert_eq!(stored.payment_due(), Some(PaymentDue::Refund));
    assert_eq!(shop.stock_of(&keyboard).await, (10, 3));
    assert_eq!(shop.history(&order).await.len(), 3);
}

async fn expiring_an_overdue_order_gives_stock_back_and_records_no_actor(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut order, _) = shop.place_due(&ada, &[(&keyboard, 2)], at(100), at(150)).await;

    let expire = shop.apply(&mut order, OrderAction::Expire, Actor::System, None, at(200)).await;

    assert_eq!(expire.actor_id, None);
    assert_eq!(shop.stored(&order).await.status(), OrderStatus::Expired);
    assert_eq!(shop.stock_of(&keyboard).await, (10, 3));
    let history = shop.history(&order).await;
    assert_eq!(history.last(), Some(&expire));
    assert_eq!(history.len(), 2);
}

async fn a_transition_at_a_stale_version_is_stale_and_writes_nothing(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut order, placed) = shop.place_due(&ada, &[(&keyboard, 2)], at(100), at(1900)).await;
    let loaded_before_payment = order.clone();
    let pay = shop.apply(&mut order, OrderAction::Pay, actor(&ada), None, at(200)).await;

    let mut late = loaded_before_payment;
    let cancel =
        late.apply(OrderAction::Cancel, &actor(&ada), None, at(300)).expect("legal when loaded");
    let result = shop.orders.save_transition(&late, &cancel, 1, None).await;
    assert!(matches!(result, Err(OrderWriteError::Stale)), "{result:?}");

    let stored = shop.stored(&order).await;
    assert_eq!(order_fields(&stored), order_fields(&order));
    assert_eq!((stored.status(), stored.version()), (OrderStatus::Paid, 2));
    assert_eq!(shop.history(&order).await, [placed, pay]);
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2), "no stock released");
}

async fn a_transition_of_a_missing_order_is_not_found(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 10).await;
    let (mut order, _) = new_order(&ada, &[(&keyboard, 2)], at(100), at(1900));
    let cancel = order.apply(OrderAction::Cancel, &actor(&ada), None, at(200)).expect("legal");

    let result = shop.orders.save_transition(&order, &cancel, 1, None).await;
    assert!(matches!(result, Err(OrderWriteError::NotFound)), "{result:?}");
    assert!(shop.history(&order).await.is_empty());
    assert_eq!(shop.stock_of(&keyboard).await, (10, 1), "no stock released for a missing order");
}

/// The ids a claim of overdue orders returns (committing it, which writes nothing), and where
/// the next batch would start.
async fn claimed(
    shop: &Shop,
    now: Timestamp,
    after: Option<OverdueCursor>,
    limit: u32,
) -> (Vec<OrderId>, Option<OverdueCursor>) {
    let mut batch =
        shop.orders.claim_overdue(now, after, limit).await.expect("claiming overdue orders");
    let ids = batch.orders.iter().map(|order| order.as_ref().expect("readable").id()).collect();
    batch.claim.commit().await.expect("committing an empty claim");
    (ids, batch.next)
}

async fn claim_overdue_returns_pending_orders_past_their_deadline_oldest_deadline_first(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 100).await;
    let lines = [(&keyboard, 1)];
    let now = at(35);
    let (due_10, _) = shop.place_due(&ada, &lines, at(0), at(10)).await;
    let (due_30, _) = shop.place_due(&ada, &lines, at(0), at(30)).await;
    let (due_20, _) = shop.place_due(&ada, &lines, at(0), at(20)).await;
    let (future, _) = shop.place_due(&ada, &lines, at(0), at(40)).await;
    let (mut paid, _) = shop.place_due(&ada, &lines, at(0), at(5)).await;
    shop.apply(&mut paid, OrderAction::Pay, actor(&ada), None, at(1)).await;
    let (mut cancelled, _) = shop.place_due(&ada, &lines, at(0), at(6)).await;
    shop.apply(&mut cancelled, OrderAction::Cancel, actor(&ada), None, at(2)).await;
    let (due_now, _) = shop.place_due(&ada, &lines, at(0), now).await;
    // A deadline on a whole second, between the others' fractional ones.
    let whole_25 = Timestamp::from_timestamp(1_800_000_025, 0).expect("a valid instant");
    let (due_25, _) = shop.place_due(&ada, &lines, at(0), whole_25).await;

    let mut batch = shop.orders.claim_overdue(now, None, 10).await.expect("claiming");
    let first = batch.orders[0].as_ref().expect("readable");
    assert_eq!(order_fields(first), order_fields(&due_10), "with their items");
    batch.claim.commit().await.expect("committing");
    let all_five = [due_10.id(), due_20.id(), due_25.id(), due_30.id(), due_now.id()];
    assert_eq!(claimed(&shop, now, None, 10).await.0, all_five);

    // Batches of two follow each other through the cursor, each order once.
    let (first_two, next) = claimed(&shop, now, None, 2).await;
    assert_eq!(first_two, [due_10.id(), due_20.id()]);
    assert_eq!(next, Some(OverdueCursor { due_at: at(20), id: due_20.id() }));
    let (second_two, next) = claimed(&shop, now, next, 2).await;
    assert_eq!(second_two, [due_25.id(), due_30.id()]);
    let (last, next) = claimed(&shop, now, next, 2).await;
    assert_eq!(last, [due_now.id()]);
    assert_eq!(claimed(&shop, now, next, 2).await, (vec![], None));

    // One microsecond before a deadline, an order is not overdue yet; at the deadline it is.
    let just_before = now - TimeDelta::microseconds(1);
    assert_eq!(claimed(&shop, just_before, None, 10).await.0, all_five[..4]);
    let just_before = whole_25 - TimeDelta::microseconds(1);
    assert_eq!(claimed(&shop, just_before, None, 10).await.0, all_five[..2]);
    assert_eq!(claimed(&shop, whole_25, None, 10).await.0, all_five[..3]);

    assert!(claimed(&shop, at(4), None, 10).await.0.is_empty());
    let mut everything = all_five.to_vec();
    everything.push(future.id());
    assert_eq!(claimed(&shop, at(100), None, 10).await.0, everything);
}

async fn expiries_saved_through_a_claim_are_written_at_its_commit_and_a_stale_one_is_skipped(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 4999, 100).await;
    let lines = [(&keyboard, 2)];
    let (first, _) = shop.place_due(&ada, &lines, at(0), at(10)).await;
    let (second, _) = shop.place_due(&ada, &lines, at(0), at(20)).await;
    assert_eq!(shop.stock_of(&keyboard).await.0, 96);

    let mut batch = shop.orders.claim_overdue(at(30), None, 10).await.expect("claiming");
    let mut orders: Vec<Order> =
        batch.orders.into_iter().map(|order| order.expect("readable")).collect();
    assert_eq!(ids_of_orders(&orders), [first.id(), second.id()]);
    let expected = orders[0].version();
    let entry = orders[0].apply(OrderAction::Expire, &Actor::System, None, at(30)).expect("legal");
    batch.claim.save_expiry(&orders[0], &entry, expected).await.expect("saving the expiry");
    // Saved at a version the row does not have: stale, and the claim goes on.
    let entry = orders[1].apply(OrderAction::Expire, &Actor::System, None, at(30)).expect("legal");
    let stale = batch.claim.save_expiry(&orders[1], &entry, expected + 5).await;
    assert!(matches!(stale, Err(OrderWriteError::Stale)), "{stale:?}");
    batch.claim.commit().await.expect("committing");

    assert_eq!(shop.stored(&first).await.status(), OrderStatus::Expired);
    assert_eq!(shop.stored(&second).await.status(), OrderStatus::PendingPayment);
    assert_eq!(shop.stock_of(&keyboard).await.0, 98, "the expired order's stock came back");
    assert_eq!(shop.history(&first).await.len(), 2);
    assert_eq!(shop.history(&second).await.len(), 1);

    // A claim dropped without a commit writes nothing.
    let mut batch = shop.orders.claim_overdue(at(30), None, 10).await.expect("claiming");
    let mut order = batch.orders.remove(0).expect("readable");
    assert_eq!(order.id(), second.id());
    let expected = order.version();
    let entry = order.apply(OrderAction::Expire, &Actor::System, None, at(31)).expect("legal");
    batch.claim.save_expiry(&order, &entry, expected).await.expect("saving the expiry");
    drop(batch);
    assert_eq!(shop.stored(&second).await.status(), OrderStatus::PendingPayment);
    assert_eq!(shop.stock_of(&keyboard).await.0, 98);
}

async fn orders_are_listed_newest_first_with_their_items_and_filtered_by_customer_and_status(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let keyboard = shop.stocked("KB-1", 4999, 100).await;
    let mouse = shop.stocked("MS-1", 1999, 100).await;
    let o1 = shop.place(&ada, &[(&keyboard, 1)], at(1)).await;
    let o2 = shop.place(&bob, &[(&keyboard, 2), (&mouse, 1)], at(2)).await;
    let mut o3 = shop.place(&ada, &[(&mouse, 3)], at(3)).await;
    let mut o4 = shop.place(&bob, &[(&keyboard, 1)], at(4)).await;
    let o5 = shop.place(&ada, &[(&keyboard, 1), (&mouse, 1)], at(5)).await;
    shop.apply(&mut o3, OrderAction::Pay, actor(&ada), None, at(10)).await;
    shop.apply(&mut o4, OrderAction::Pay, actor(&bob), None, at(11)).await;

    let all = shop.list(OrderFilter::default()).await;
    assert_eq!(
        all.iter().map(order_fields).collect::<Vec<_>>(),
        [&o5, &o4, &o3, &o2, &o1].map(order_fields),
    );

    let by = |user_id: Option<UserId>, status: Option<OrderStatus>| OrderFilter { user_id, status };
    let adas = shop.list(by(Some(ada.id()), None)).await;
    assert_eq!(ids_of_orders(&adas), [o5.id(), o3.id(), o1.id()]);
    let paid = shop.list(by(None, Some(OrderStatus::Paid))).await;
    assert_eq!(ids_of_orders(&paid), [o4.id(), o3.id()]);
    let pending = shop.list(by(None, Some(OrderStatus::PendingPayment))).await;
    assert_eq!(ids_of_orders(&pending), [o5.id(), o2.id(), o1.id()]);
    let adas_paid = shop.list(by(Some(ada.id()), Some(OrderStatus::Paid))).await;
    assert_eq!(ids_of_orders(&adas_paid), [o3.id()]);
    assert!(shop.list(by(Some(bob.id()), Some(OrderStatus::Cancelled))).await.is_empty());
    assert!(shop.list(by(Some(UserId::new()), None)).await.is_empty());
}

async fn order_pages_of_two_cover_every_order_once_newest_first(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let keyboard = shop.stocked("KB-1", 4999, 100).await;
    let mouse = shop.stocked("MS-1", 1999, 100).await;
    let mut placed = Vec::new();
    for i in 0..5 {
        let customer = if i % 2 == 0 { &ada } else { &bob };
        let lines: &[(&Product, u32)] =
            if i % 3 == 0 { &[(&keyboard, 1), (&mouse, 2)] } else { &[(&mouse, i + 1)] };
        placed.push(shop.place(customer, lines, at(i64::from(i))).await);
    }
    placed.reverse();

    let pages = every_page(2, async |page| {
        shop.orders.list(OrderFilter::default(), page).await.expect("listing")
    })
    .await;
    assert_eq!(sizes(&pages), [2, 2, 1]);
    let listed: Vec<Order> = pages.into_iter().flatten().collect();
    assert_eq!(
        listed.iter().map(order_fields).collect::<Vec<_>>(),
        placed.iter().map(order_fields).collect::<Vec<_>>(),
    );

    let adas = OrderFilter { user_id: Some(ada.id()), status: None };
    let pages =
        every_page(2, async |page| shop.orders.list(adas.clone(), page).await.expect("listing"))
            .await;
    assert_eq!(sizes(&pages), [2, 1]);
    let listed: Vec<OrderId> = pages.iter().flatten().map(Order::id).collect();
    let expected: Vec<OrderId> =
        placed.iter().filter(|o| o.user_id() == ada.id()).map(Order::id).collect();
    assert_eq!(listed, expected);
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------------

async fn tokens_for(db: &Database) -> (SeaOrmRefreshTokens, User, User) {
    let users = SeaOrmUserRepository::new(db.clone());
    let ada = user("ada@example.com", "Ada", Role::Customer, at(0));
    let bob = user("bob@example.com", "Bob", Role::Customer, at(0));
    users.insert(&ada).await.expect("inserting ada");
    users.insert(&bob).await.expect("inserting bob");
    (SeaOrmRefreshTokens::new(db.clone(), TimeDelta::hours(1)), ada, bob)
}

async fn rotating_a_refresh_token_returns_its_user_and_a_fresh_token(db: &Database) {
    let (tokens, ada, bob) = tokens_for(db).await;
    let first = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let other = tokens.issue(bob.id(), at(0)).await.expect("issuing");
    assert_ne!(first, other);

    let (owner, second) = tokens.rotate(&first, at(60)).await.expect("rotating");
    assert_eq!(owner, ada.id());
    assert_ne!(second, first);

    let (owner, third) = tokens.rotate(&second, at(120)).await.expect("rotating the new one");
    assert_eq!(owner, ada.id());
    assert!(third != first && third != second);

    let (owner, _) = tokens.rotate(&other, at(120)).await.expect("bob's token");
    assert_eq!(owner, bob.id());
}

async fn reusing_a_rotated_token_is_reuse_and_revokes_the_family(db: &Database) {
    let (tokens, ada, _) = tokens_for(db).await;
    let first = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let other_session = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let (_, second) = tokens.rotate(&first, at(60)).await.expect("rotating");

    let result = tokens.rotate(&first, at(120)).await;
    assert!(matches!(result, Err(RefreshTokenError::Reused)), "{result:?}");

    // The newest token of the family was revoked with it.
    let result = tokens.rotate(&second, at(130)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
    // The other login of the same user is another family and still works.
    let (owner, _) = tokens.rotate(&other_session, at(140)).await.expect("another family");
    assert_eq!(owner, ada.id());
}

async fn an_unknown_refresh_token_is_invalid(db: &Database) {
    let (tokens, ada, _) = tokens_for(db).await;
    let real = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    for unknown in ["", "not-a-token", &"0".repeat(64), &real.to_uppercase()] {
        let result = tokens.rotate(unknown, at(1)).await;
        assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{unknown:?}: {result:?}");
    }
}

async fn an_expired_refresh_token_is_invalid(db: &Database) {
    let (tokens, ada, _) = tokens_for(db).await;
    let token = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let result = tokens.rotate(&token, at(3600)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "at the ttl: {result:?}");
    let result = tokens.rotate(&token, at(7200)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "past the ttl: {result:?}");

    // Just before the ttl it still rotates, and the new token lives a full ttl from then.
    let token = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let (_, next) = tokens.rotate(&token, at(3599)).await.expect("still valid");
    let (_, last) = tokens.rotate(&next, at(3599 + 3599)).await.expect("a fresh ttl");
    let result = tokens.rotate(&last, at(3599 + 3599 + 3600)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
}

async fn revoking_a_token_invalidates_every_token_of_its_family_only(db: &Database) {
    let (tokens, ada, bob) = tokens_for(db).await;
    let first = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let (_, second) = tokens.rotate(&first, at(10)).await.expect("rotating");
    let other_session = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    let bobs = tokens.issue(bob.id(), at(0)).await.expect("issuing");

    tokens.revoke(&second, at(20)).await.expect("revoking");

    let result = tokens.rotate(&second, at(30)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
    let result = tokens.rotate(&first, at(30)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
    tokens.rotate(&other_session, at(30)).await.expect("another family of the same user");
    tokens.rotate(&bobs, at(30)).await.expect("another user");

    // Revoking a token that was already rotated revokes its family too.
    let start = tokens.issue(bob.id(), at(40)).await.expect("issuing");
    let (_, next) = tokens.rotate(&start, at(50)).await.expect("rotating");
    tokens.revoke(&start, at(60)).await.expect("revoking");
    let result = tokens.rotate(&next, at(70)).await;
    assert!(matches!(result, Err(RefreshTokenError::Invalid)), "{result:?}");
}

async fn revoking_an_unknown_token_is_ok(db: &Database) {
    let (tokens, ada, _) = tokens_for(db).await;
    let token = tokens.issue(ada.id(), at(0)).await.expect("issuing");
    tokens.revoke("never-issued", at(1)).await.expect("unknown tokens are ignored");
    tokens.revoke("", at(1)).await.expect("unknown tokens are ignored");
    tokens.rotate(&token, at(2)).await.expect("other tokens are untouched");
}

on_both_engines!(
    a_pending_authorization_and_settlement_failures_round_trip_and_are_counted,
    a_user_round_trips_every_field_through_insert_find_by_id_and_find_by_email,
    registering_a_taken_email_is_a_duplicate_email,
    updating_a_user_at_the_expected_version_writes_every_change,
    updating_a_user_at_a_stale_version_is_stale_and_writes_nothing,
    updating_a_missing_user_is_not_found,
    updating_a_user_to_a_taken_email_is_a_duplicate_email,
    deleting_a_user_removes_them_and_their_refresh_tokens,
    deleting_a_missing_user_is_not_found,
    deleting_the_only_admin_is_refused_and_changes_nothing,
    demoting_the_only_admin_is_refused_and_changes_nothing,
    of_two_admins_one_may_be_deleted_and_the_other_then_neither_deleted_nor_demoted,
    of_two_admins_one_may_be_demoted_and_the_other_then_not,
    users_are_listed_in_creation_order_in_keyset_pages_without_gaps,
    a_product_round_trips_every_field_through_insert_and_find_by_id,
    find_many_returns_the_products_that_exist_and_skips_missing_ids,
    inserting_a_taken_sku_is_a_duplicate_sku,
    updating_a_product_at_the_expected_version_writes_every_change,
    updating_a_product_at_a_stale_version_is_stale_and_writes_nothing,
    updating_a_missing_product_is_not_found,
    updating_a_product_to_a_taken_sku_is_a_duplicate_sku,
    archived_products_are_listed_only_when_asked_for,
    the_search_matches_the_name_or_the_sku_regardless_of_case,
    percent_and_underscore_in_the_search_are_taken_literally,
    every_sort_order_pages_in_twos_through_the_fully_sorted_list,
    placing_an_order_stores_the_order_its_items_and_a_place_entry,
    placing_an_order_takes_each_lines_quantity_from_stock_and_bumps_the_version,
    an_order_whose_second_line_is_short_of_stock_writes_nothing,
    placing_an_order_for_an_archived_or_vanished_product_is_unavailable,
    an_order_for_a_customer_whose_account_is_gone_is_refused_and_takes_no_stock,
    paying_then_shipping_moves_the_order_and_appends_history_in_order,
    cancelling_a_pending_order_gives_its_stock_back,
    cancelling_a_paid_order_gives_stock_back_and_flags_a_refund,
    expiring_an_overdue_order_gives_stock_back_and_records_no_actor,
    a_transition_at_a_stale_version_is_stale_and_writes_nothing,
    a_transition_of_a_missing_order_is_not_found,
    claim_overdue_returns_pending_orders_past_their_deadline_oldest_deadline_first,
    expiries_saved_through_a_claim_are_written_at_its_commit_and_a_stale_one_is_skipped,
    orders_are_listed_newest_first_with_their_items_and_filtered_by_customer_and_status,
    order_pages_of_two_cover_every_order_once_newest_first,
    rotating_a_refresh_token_returns_its_user_and_a_fresh_token,
    reusing_a_rotated_token_is_reuse_and_revokes_the_family,
    an_unknown_refresh_token_is_invalid,
    an_expired_refresh_token_is_invalid,
    revoking_a_token_invalidates_every_token_of_its_family_only,
    revoking_an_unknown_token_is_ok,
    deleting_a_user_with_an_order_is_still_referenced_by_orders_and_changes_nothing,
    a_payment_taken_after_a_cancellation_is_saved_at_the_expected_version_only,
    the_search_ignores_the_case_of_letters_beyond_ascii,
);
