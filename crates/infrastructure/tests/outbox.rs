//! The transactional outbox (issue 20) against real, migrated databases, on SQLite and (when
//! `TEST_DATABASE_URL` is set) on PostgreSQL: every write of the SeaORM adapters writes the
//! events of its change in the change's own transaction.
//!
//! - No event without its change: a refused write (stale, duplicate, short of stock, the last
//!   admin, a dropped claim) leaves `outbox_events` exactly as it was.
//! - No change without its event: a write that succeeds writes exactly the events of what it
//!   changed, in order, each once, at the version the change made.
//!
//! The events are read through a second connection of its own (not the adapters' pool), so what
//! a test sees is what was committed.

use std::sync::Arc;

use orderly_application::ports::{
    EventData, OrderRepository as _, OrderWriteError, PlaceOrderFailure, ProductRepository as _,
    ProductWriteError, UserReferrer, UserRepository as _, UserWriteError,
};
use orderly_domain::{
    Actor, Currency, Email, EventType, Money, Order, OrderAction, OrderLines, OrderStatus,
    OrderTransition, PasswordHash, PaymentDue, PaymentStatus, Product, ProductDraft, ProductName,
    Quantity, Role, Sku, User, UserId, UserName, Uuid,
    time::{TimeDelta, Timestamp, Utc},
};
use orderly_infrastructure::{
    Database, SeaOrmOrderRepository, SeaOrmProductRepository, SeaOrmUserRepository,
    testing::TestDatabase,
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, QueryResult, Statement, TryGetable};
use serde_json::{Value, json};

use EventType::{
    OrderCancelled, OrderExpired, OrderPaid, OrderPlaced, PaymentAuthorized, PaymentCaptured,
    PaymentFailed, PaymentRefundPending, ProductArchived, ProductCreated, ProductStockChanged,
    ProductUpdated, UserDeleted, UserRegistered,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fixed instant plus `seconds`, with a microsecond fraction (the finest precision both
/// engines keep), so that event times compare exactly.
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

fn product(sku: &str, stock: u32, now: Timestamp) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(&format!("Product {sku}")).expect("a valid name"),
        description: None,
        price: eur(4999),
        stock,
    };
    Product::create(draft, now).expect("a valid product")
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

/// The three repositories a scenario needs, on one pool.
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

    async fn stocked(&self, sku: &str, stock: u32) -> Product {
        let product = product(sku, stock, at(0));
        self.products.insert(&product).await.expect("inserting a product");
        product
    }

    async fn load(&self, product: &Product) -> Product {
        self.products
            .find_by_id(product.id())
            .await
            .expect("reading a product")
            .expect("the product exists")
    }

    /// The stored stock and version of `product`.
    async fn stock_of(&self, product: &Product) -> (u32, u64) {
        let stored = self.load(product).await;
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
    async fn apply(&self, order: &mut Order, action: OrderAction, by: Actor, now: Timestamp) {
        let expected = order.version();
        let entry = if action == OrderAction::Pay {
            order.pay(&by, None, "ch_test".to_owned(), now)
        } else {
            order.apply(action, &by, None, now)
        }
        .expect("a legal transition");
        self.orders
            .save_transition(order, &entry, expected, None)
            .await
            .expect("saving a transition");
    }

    async fn stored(&self, order: &Order) -> Order {
        self.orders
            .find_by_id(order.id())
            .await
            .expect("reading an order")
            .expect("the order exists")
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the outbox
// ---------------------------------------------------------------------------------------------

/// One row of `outbox_events`.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    position: i64,
    id: Uuid,
    event_type: String,
    aggregate: String,
    aggregate_id: Uuid,
    aggregate_version: i64,
    occurred_at: Timestamp,
    data: String,
    published_at: Option<Timestamp>,
}

impl Event {
    fn from_row(row: &QueryResult) -> Self {
        Self {
            position: column(row, "position"),
            id: column(row, "id"),
            event_type: column(row, "event_type"),
            aggregate: column(row, "aggregate"),
            aggregate_id: column(row, "aggregate_id"),
            aggregate_version: column(row, "aggregate_version"),
            occurred_at: column(row, "occurred_at"),
            data: column(row, "data"),
            published_at: column(row, "published_at"),
        }
    }

    fn data(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {}", self.data))
    }

    /// Checks what every event written by the store must be, and returns its type, aggregate
    /// id and version: a known type under its own aggregate, a UUIDv7 id, unpublished, and data
    /// naming the aggregate (and, but for a deleted user, carrying the version the event is at).
    fn checked(&self) -> (EventType, Uuid, u64) {
        let event_type = EventType::parse(&self.event_type)
            .unwrap_or_else(|| panic!("an unknown event type: {self:?}"));
        assert_eq!(self.aggregate, event_type.aggregate().as_str(), "{self:?}");
        assert_eq!(self.id.get_version_num(), 7, "the event id is a UUIDv7: {self:?}");
        assert_eq!(self.id.get_variant(), uuid::Variant::RFC4122, "{self:?}");
        assert_eq!(self.published_at, None, "a new event is not published yet: {self:?}");
        let data = self.data();
        assert_eq!(data["id"], json!(self.aggregate_id.to_string()), "{self:?}");
        if event_type == UserDeleted {
            assert_eq!(data.get("version"), None, "a deleted user has no version left: {self:?}");
        } else {
            assert_eq!(data["version"], json!(self.aggregate_version), "{self:?}");
        }
        let version = u64::try_from(self.aggregate_version).expect("a positive version");
        assert!(version >= 1, "{self:?}");
        (event_type, self.aggregate_id, version)
    }
}

fn column<T: TryGetable>(row: &QueryResult, name: &str) -> T {
    row.try_get("", name).unwrap_or_else(|error| panic!("reading outbox_events.{name}: {error}"))
}

/// Every event's type, aggregate id and version, each checked with [`Event::checked`].
fn summary(events: &[Event]) -> Vec<(EventType, Uuid, u64)> {
    events.iter().map(Event::checked).collect()
}

/// `events` sorted by aggregate id, for events whose relative order is no contract (the
/// products of one order).
fn by_aggregate(mut events: Vec<(EventType, Uuid, u64)>) -> Vec<(EventType, Uuid, u64)> {
    events.sort_by_key(|(_, id, _)| *id);
    events
}

fn times(events: &[Event]) -> Vec<Timestamp> {
    events.iter().map(|event| event.occurred_at).collect()
}

/// `outbox_events`, read through a connection of its own.
struct Outbox {
    raw: DatabaseConnection,
}

impl Outbox {
    async fn open(test_db: &TestDatabase) -> Self {
        let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
        Self { raw }
    }

    /// The committed events after `position`, in the order they were written.
    async fn since(&self, position: i64) -> Vec<Event> {
        let sql = format!(
            "SELECT position, id, event_type, aggregate, aggregate_id, aggregate_version, \
             occurred_at, data, published_at FROM outbox_events WHERE position > {position} \
             ORDER BY position"
        );
        let rows = self
            .raw
            .query_all_raw(Statement::from_string(self.raw.get_database_backend(), sql))
            .await
            .expect("reading the outbox");
        rows.iter().map(Event::from_row).collect()
    }

    /// Every committed event.
    async fn all(&self) -> Vec<Event> {
        self.since(0).await
    }

    /// The position of the last event written so far (0 when there is none): what
    /// [`Outbox::since`] takes to read the events of the next writes only.
    async fn mark(&self) -> i64 {
        self.all().await.last().map_or(0, |event| event.position)
    }

    /// Asserts that the table holds `before`, row for row, after `what`.
    async fn assert_unchanged(&self, before: &[Event], what: &str) {
        let now = self.all().await;
        assert_eq!(now, before, "the outbox changed after {what}");
    }
}

/// Runs each named test body, an `async fn(&TestDatabase)`, on SQLite and, when configured, on
/// PostgreSQL, as `sqlite::<name>` and `postgres::<name>` (`on_both_engines!` with the test
/// database, whose URL the outbox is read through).
macro_rules! on_both_engines_with_url {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = orderly_infrastructure::testing::TestDatabase::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = orderly_infrastructure::testing::TestDatabase::postgres().await
                    else {
                        eprintln!(
                            "{} is not set: PostgreSQL not tested",
                            orderly_infrastructure::testing::TEST_DATABASE_URL
                        );
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

async fn registering_a_user_writes_user_registered_and_a_taken_email_writes_nothing(
    test_db: &TestDatabase,
) {
    let users = SeaOrmUserRepository::new(test_db.database().clone());
    let outbox = Outbox::open(test_db).await;
    assert!(outbox.all().await.is_empty(), "a fresh database has no events");

    let ada = user("ada@example.com", "Ada", Role::Customer, at(5));
    users.insert(&ada).await.expect("inserting ada");
    let written = outbox.all().await;
    assert_eq!(summary(&written), [(UserRegistered, ada.id().into_uuid(), 1)]);
    assert_eq!(times(&written), [at(5)], "when the user registered");
    assert_eq!(written[0].data(), json!({"id": ada.id().to_string(), "version": 1}));

    // The same address in other letters is the same address: refused, and no event.
    let impostor = user("ADA@Example.com", "Impostor", Role::Admin, at(6));
    let result = users.insert(&impostor).await;
    assert!(matches!(result, Err(UserWriteError::EmailTaken)), "{result:?}");
    outbox.assert_unchanged(&written, "registering a taken e-mail address").await;
}

async fn deleting_a_user_writes_user_deleted_at_its_last_version_and_a_refused_delete_writes_nothing(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let admin = shop.member("admin", Role::Admin).await;
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    shop.place(&bob, &[(&keyboard, 1)], at(10)).await;
    let mut renamed = ada.clone();
    renamed.rename(UserName::parse("Ada King").expect("a valid name"), at(20));
    shop.users.update(&renamed, 1).await.expect("renaming ada");

    let mark = outbox.mark().await;
    let before = Utc::now();
    shop.users.delete(ada.id()).await.expect("deleting ada");
    let after = Utc::now();
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written), [(UserDeleted, ada.id().into_uuid(), 2)], "at its last version");
    assert_eq!(written[0].data(), json!({"id": ada.id().to_string()}));
    let occurred = written[0].occurred_at;
    // PostgreSQL keeps microseconds: the stored instant may be up to one below `before`.
    assert!(
        before - TimeDelta::microseconds(1) <= occurred && occurred <= after,
        "{occurred} is not the time of the delete ({before} to {after})"
    );

    let before = outbox.all().await;
    let result = shop.users.delete(admin.id()).await;
    assert!(matches!(result, Err(UserWriteError::LastAdmin)), "{result:?}");
    outbox.assert_unchanged(&before, "deleting the last admin").await;
    assert!(shop.users.find_by_id(admin.id()).await.expect("reading").is_some());

    let result = shop.users.delete(bob.id()).await;
    assert!(
        matches!(result, Err(UserWriteError::StillReferenced(UserReferrer::Orders))),
        "{result:?}"
    );
    outbox.assert_unchanged(&before, "deleting a user with orders").await;
    assert!(shop.users.find_by_id(bob.id()).await.expect("reading").is_some());

    let result = shop.users.delete(ada.id()).await;
    assert!(matches!(result, Err(UserWriteError::NotFound)), "{result:?}");
    outbox.assert_unchanged(&before, "deleting a deleted user").await;
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

async fn creating_a_product_writes_product_created_and_a_taken_sku_writes_nothing(
    test_db: &TestDatabase,
) {
    let products = SeaOrmProductRepository::new(test_db.database().clone());
    let outbox = Outbox::open(test_db).await;

    let keyboard = product("KB-1", 10, at(3));
    products.insert(&keyboard).await.expect("inserting the keyboard");
    let written = outbox.all().await;
    assert_eq!(summary(&written), [(ProductCreated, keyboard.id().into_uuid(), 1)]);
    assert_eq!(times(&written), [at(3)], "when the product was created");

    let copy = product("KB-1", 5, at(4));
    let result = products.insert(&copy).await;
    assert!(matches!(result, Err(ProductWriteError::SkuTaken)), "{result:?}");
    outbox.assert_unchanged(&written, "inserting a taken SKU").await;
    assert!(products.find_by_id(copy.id()).await.expect("reading").is_none());
}

async fn updating_a_product_writes_one_event_of_each_kind_at_its_new_version(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let id = keyboard.id().into_uuid();

    // Renamed and repriced (one `updated`), restocked, archived: one save, one version.
    let mark = outbox.mark().await;
    let mut changed = shop.load(&keyboard).await;
    changed.rename(ProductName::parse("Mechanical keyboard").expect("a valid name"), at(10));
    changed.reprice(eur(5999), at(10));
    changed.restock(4, at(10)).expect("a stock in range");
    changed.archive(at(10));
    shop.products.update(&changed, 1).await.expect("updating at version 1");
    let written = outbox.since(mark).await;
    assert_eq!(
        summary(&written),
        [(ProductUpdated, id, 2), (ProductStockChanged, id, 2), (ProductArchived, id, 2)]
    );
    assert_eq!(times(&written), [at(10); 3]);
    assert_eq!(shop.stock_of(&keyboard).await, (4, 2), "the events are at the stored version");

    // Loaded again: only what this save changes.
    let mark = outbox.mark().await;
    let mut restocked = shop.load(&keyboard).await;
    restocked.restock(7, at(20)).expect("a stock in range");
    shop.products.update(&restocked, 2).await.expect("updating at version 2");
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written), [(ProductStockChanged, id, 3)]);
    assert_eq!(times(&written), [at(20)]);
}

async fn a_refused_product_update_writes_no_event(test_db: &TestDatabase) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mouse = shop.stocked("MS-1", 10).await;
    let mut first = shop.load(&keyboard).await;
    // Loaded at version 1 too, but written after the first update.
    let mut late = shop.load(&keyboard).await;
    first.restock(8, at(10)).expect("a stock in range");
    shop.products.update(&first, 1).await.expect("the first update wins");
    let before = outbox.all().await;

    late.rename(ProductName::parse("Late").expect("a valid name"), at(20));
    late.restock(1, at(20)).expect("a stock in range");
    let result = shop.products.update(&late, 1).await;
    assert!(matches!(result, Err(ProductWriteError::Stale)), "{result:?}");
    outbox.assert_unchanged(&before, "a stale product update").await;
    // A version from the future is just as stale; a product value that is not one version
    // past the stored one (saved already) is refused before anything is written.
    let result = shop.products.update(&late, 7).await;
    assert!(matches!(result, Err(ProductWriteError::Stale)), "{result:?}");
    outbox.assert_unchanged(&before, "a product update at a future version").await;
    let result = shop.products.update(&first, 2).await;
    assert!(matches!(result, Err(ProductWriteError::Store(_))), "saved twice: {result:?}");
    outbox.assert_unchanged(&before, "the same product value saved twice").await;
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2));

    let mut taken = shop.load(&mouse).await;
    taken.change_sku(Sku::parse("KB-1").expect("a valid SKU"), at(30));
    let result = shop.products.update(&taken, 1).await;
    assert!(matches!(result, Err(ProductWriteError::SkuTaken)), "{result:?}");
    outbox.assert_unchanged(&before, "updating a product to a taken SKU").await;

    let mut ghost = product("GH-1", 1, at(0));
    ghost.restock(2, at(40)).expect("a stock in range");
    let result = shop.products.update(&ghost, 1).await;
    assert!(matches!(result, Err(ProductWriteError::NotFound)), "{result:?}");
    outbox.assert_unchanged(&before, "updating a missing product").await;
}

// ---------------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------------

async fn placing_an_order_writes_order_placed_then_stock_changed_per_product_at_its_new_version(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mouse = shop.stocked("MS-1", 5).await;
    let (kb, ms) = (keyboard.id().into_uuid(), mouse.id().into_uuid());

    let mark = outbox.mark().await;
    let (order, placed) =
        shop.place_due(&ada, &[(&mouse, 2), (&keyboard, 3)], at(100), at(1900)).await;
    let written = outbox.since(mark).await;
    let events = summary(&written);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], (OrderPlaced, order.id().into_uuid(), 1), "the order first");
    assert_eq!(
        by_aggregate(events[1..].to_vec()),
        by_aggregate(vec![(ProductStockChanged, kb, 2), (ProductStockChanged, ms, 2)])
    );
    assert_eq!(times(&written), [placed.at; 3], "when the order was placed");
    assert_eq!(shop.stock_of(&keyboard).await, (7, 2));
    assert_eq!(shop.stock_of(&mouse).await, (3, 2));

    // The products are read back after the reservation: the version is the stored one, not the
    // one of the products the order was made from (version 1).
    let mark = outbox.mark().await;
    let second = shop.place(&ada, &[(&keyboard, 1)], at(200)).await;
    let written = outbox.since(mark).await;
    assert_eq!(
        summary(&written),
        [(OrderPlaced, second.id().into_uuid(), 1), (ProductStockChanged, kb, 3)]
    );
    assert_eq!(written[1].data(), json!({"id": kb.to_string(), "version": 3}));
    assert_eq!(shop.stock_of(&keyboard).await, (6, 3));
}

async fn a_refused_placement_writes_no_event(test_db: &TestDatabase) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 2).await;
    let mouse = shop.stocked("MS-1", 5).await;
    let before = outbox.all().await;

    // The mouse could be served, the keyboard not: nothing is taken, nothing is told.
    let (order, placed) = new_order(&ada, &[(&mouse, 1), (&keyboard, 3)], at(100), at(1900));
    let result = shop.orders.place(&order, &placed, None).await;
    assert!(
        matches!(
            result,
            Err(PlaceOrderFailure::InsufficientStock { requested: 3, available: 2, .. })
        ),
        "{result:?}"
    );
    outbox.assert_unchanged(&before, "an order short of stock").await;
    assert_eq!(shop.stock_of(&mouse).await, (5, 1));

    // Reserved, then refused by the customer's foreign key within the same transaction.
    let gone = user("gone@example.com", "Gone", Role::Customer, at(0));
    let (order, placed) = new_order(&gone, &[(&mouse, 1)], at(100), at(1900));
    let result = shop.orders.place(&order, &placed, None).await;
    assert!(matches!(result, Err(PlaceOrderFailure::UnknownCustomer)), "{result:?}");
    outbox.assert_unchanged(&before, "an order of a customer who is gone").await;
    assert_eq!(shop.stock_of(&mouse).await, (5, 1));
}

async fn cancelling_an_order_writes_order_cancelled_and_stock_changed_for_the_stock_given_back(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mouse = shop.stocked("MS-1", 5).await;
    let mut order = shop.place(&ada, &[(&keyboard, 4), (&mouse, 1)], at(100)).await;

    let mark = outbox.mark().await;
    shop.apply(&mut order, OrderAction::Cancel, actor(&ada), at(200)).await;
    let written = outbox.since(mark).await;
    let events = summary(&written);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], (OrderCancelled, order.id().into_uuid(), 2), "the order first");
    assert_eq!(
        by_aggregate(events[1..].to_vec()),
        by_aggregate(vec![
            (ProductStockChanged, keyboard.id().into_uuid(), 3),
            (ProductStockChanged, mouse.id().into_uuid(), 3),
        ])
    );
    assert_eq!(times(&written), [at(200); 3], "when the order was cancelled");
    assert_eq!(shop.stock_of(&keyboard).await, (10, 3));
    assert_eq!(shop.stock_of(&mouse).await, (5, 3));
}

async fn paying_capturing_and_cancelling_write_the_order_and_payment_events(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let admin = shop.member("admin", Role::Admin).await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mut order = shop.place(&ada, &[(&keyboard, 4)], at(100)).await;
    let id = order.id().into_uuid();

    // Paid: the order's status and its payment's, at one version; no stock moves.
    let mark = outbox.mark().await;
    shop.apply(&mut order, OrderAction::Pay, actor(&ada), at(200)).await;
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written), [(OrderPaid, id, 2), (PaymentAuthorized, id, 2)]);
    assert_eq!(times(&written), [at(200); 2]);
    assert_eq!(shop.stock_of(&keyboard).await, (6, 2), "paying gives no stock back");

    // Captured.
    let mark = outbox.mark().await;
    let loaded = order.version();
    order.record_payment_done(PaymentDue::Capture, at(210)).expect("a capture is owed");
    shop.orders.save_payment(&order, loaded).await.expect("saving the capture");
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written), [(PaymentCaptured, id, 3)]);
    assert_eq!(times(&written), [at(210)]);

    // Cancelled once captured: a refund is owed, and the stock comes back.
    let mark = outbox.mark().await;
    shop.apply(&mut order, OrderAction::Cancel, actor(&admin), at(300)).await;
    let written = outbox.since(mark).await;
    assert_eq!(
        summary(&written),
        [
            (OrderCancelled, id, 4),
            (PaymentRefundPending, id, 4),
            (ProductStockChanged, keyboard.id().into_uuid(), 3)
        ]
    );
    let stored = shop.stored(&order).await;
    assert_eq!(
        (stored.status(), stored.payment().map(|payment| payment.status()), stored.version()),
        (OrderStatus::Cancelled, Some(PaymentStatus::RefundPending), 4)
    );
}

async fn saving_one_order_value_again_and_again_writes_each_event_once(test_db: &TestDatabase) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mark = outbox.mark().await;
    let mut order = shop.place(&ada, &[(&keyboard, 1)], at(100)).await;
    let id = order.id().into_uuid();

    // The same `Order` value throughout: its changes hold every event since it was placed.
    // Asking for an authorization is no event (`EventType::of_payment(Pending)` is none).
    let attempt = order.payment_attempt();
    order.record_authorization_asked(attempt, at(110)).expect("payable");
    let after_placing = outbox.all().await;
    shop.orders.save_payment(&order, 1).await.expect("saving the pending payment");
    outbox.assert_unchanged(&after_placing, "a pending authorization, which has no event").await;

    let mark_declined = outbox.mark().await;
    order.record_declined_payment(at(120)).expect("payable");
    shop.orders.save_payment(&order, 2).await.expect("saving the decline");
    assert_eq!(summary(&outbox.since(mark_declined).await), [(PaymentFailed, id, 3)]);

    let mark_paid = outbox.mark().await;
    let entry = order.pay(&actor(&ada), None, "ch_2".to_owned(), at(130)).expect("payable");
    shop.orders.save_transition(&order, &entry, 3, None).await.expect("saving the payment");
    assert_eq!(
        summary(&outbox.since(mark_paid).await),
        [(OrderPaid, id, 4), (PaymentAuthorized, id, 4)]
    );

    let mark_captured = outbox.mark().await;
    order.record_payment_done(PaymentDue::Capture, at(140)).expect("a capture is owed");
    shop.orders.save_payment(&order, 4).await.expect("saving the capture");
    assert_eq!(summary(&outbox.since(mark_captured).await), [(PaymentCaptured, id, 5)]);

    // Everything the order ever wrote, each event once.
    let all: Vec<_> = summary(&outbox.since(mark).await)
        .into_iter()
        .filter(|(_, aggregate, _)| *aggregate == id)
        .collect();
    assert_eq!(
        all,
        [
            (OrderPlaced, id, 1),
            (PaymentFailed, id, 3),
            (OrderPaid, id, 4),
            (PaymentAuthorized, id, 4),
            (PaymentCaptured, id, 5)
        ]
    );
}

async fn a_refused_order_write_writes_no_event(test_db: &TestDatabase) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let mut order = shop.place(&ada, &[(&keyboard, 2)], at(100)).await;
    let loaded_before_payment = order.clone();
    shop.apply(&mut order, OrderAction::Pay, actor(&ada), at(200)).await;
    let before = outbox.all().await;

    // A cancellation decided on the order as it was before the payment: stale.
    let mut late = loaded_before_payment.clone();
    let cancel = late.apply(OrderAction::Cancel, &actor(&ada), None, at(300)).expect("legal");
    let result = shop.orders.save_transition(&late, &cancel, 1, None).await;
    assert!(matches!(result, Err(OrderWriteError::Stale)), "{result:?}");
    outbox.assert_unchanged(&before, "a stale transition").await;
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2), "no stock released");

    // A payment recorded on the same stale copy.
    let mut late = loaded_before_payment;
    late.record_declined_payment(at(300)).expect("payable when loaded");
    let result = shop.orders.save_payment(&late, 1).await;
    assert!(matches!(result, Err(OrderWriteError::Stale)), "{result:?}");
    outbox.assert_unchanged(&before, "a stale payment").await;

    // An order that was never placed.
    let (mut ghost, _) = new_order(&ada, &[(&keyboard, 1)], at(400), at(1900));
    let cancel = ghost.apply(OrderAction::Cancel, &actor(&ada), None, at(410)).expect("legal");
    let result = shop.orders.save_transition(&ghost, &cancel, 1, None).await;
    assert!(matches!(result, Err(OrderWriteError::NotFound)), "{result:?}");
    outbox.assert_unchanged(&before, "a transition of a missing order").await;
    assert_eq!(shop.stock_of(&keyboard).await, (8, 2), "no stock released");
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

async fn expiries_write_their_events_at_the_claims_commit_and_a_dropped_claim_writes_none(
    test_db: &TestDatabase,
) {
    let shop = Shop::new(test_db.database());
    let outbox = Outbox::open(test_db).await;
    let ada = shop.customer("ada").await;
    let keyboard = shop.stocked("KB-1", 100).await;
    let kb = keyboard.id().into_uuid();
    let lines = [(&keyboard, 2)];
    let (first, _) = shop.place_due(&ada, &lines, at(0), at(10)).await;
    let (second, _) = shop.place_due(&ada, &lines, at(0), at(20)).await;
    assert_eq!(shop.stock_of(&keyboard).await, (96, 3));
    let before = outbox.all().await;

    let mut batch = shop.orders.claim_overdue(at(30), None, 10).await.expect("claiming");
    let mut orders: Vec<Order> =
        batch.orders.into_iter().map(|order| order.expect("readable")).collect();
    assert_eq!(
        orders.iter().map(Order::id).collect::<Vec<_>>(),
        [first.id(), second.id()],
        "both are overdue"
    );
    let expected = orders[0].version();
    let entry = orders[0].apply(OrderAction::Expire, &Actor::System, None, at(30)).expect("legal");
    batch.claim.save_expiry(&orders[0], &entry, expected).await.expect("saving the expiry");
    // Saved at a version the row does not have: stale, and the claim goes on without it.
    let entry = orders[1].apply(OrderAction::Expire, &Actor::System, None, at(30)).expect("legal");
    let stale = batch.claim.save_expiry(&orders[1], &entry, expected + 5).await;
    assert!(matches!(stale, Err(OrderWriteError::Stale)), "{stale:?}");
    outbox.assert_unchanged(&before, "expiries saved in a claim not committed yet").await;
    batch.claim.commit().await.expect("committing");

    let written = outbox.since(before.last().map_or(0, |event| event.position)).await;
    assert_eq!(
        summary(&written),
        [(OrderExpired, first.id().into_uuid(), 2), (ProductStockChanged, kb, 4)]
    );
    assert_eq!(times(&written), [at(30); 2], "when the order expired");
    assert_eq!(shop.stock_of(&keyboard).await, (98, 4));

    // A claim dropped without a commit writes nothing.
    let before = outbox.all().await;
    let mut batch = shop.orders.claim_overdue(at(40), None, 10).await.expect("claiming");
    let mut order = batch.orders.remove(0).expect("readable");
    assert_eq!(order.id(), second.id());
    let expected = order.version();
    let entry = order.apply(OrderAction::Expire, &Actor::System, None, at(40)).expect("legal");
    batch.claim.save_expiry(&order, &entry, expected).await.expect("saving the expiry");
    drop(batch);
    outbox.assert_unchanged(&before, "a claim dropped without its commit").await;
    assert_eq!(shop.stored(&second).await.status(), OrderStatus::PendingPayment);
    assert_eq!(shop.stock_of(&keyboard).await, (98, 4));

    // Claimed again and committed, it is told once, at the versions it makes now.
    let mut batch = shop.orders.claim_overdue(at(50), None, 10).await.expect("claiming");
    let mut order = batch.orders.remove(0).expect("readable");
    assert_eq!(order.id(), second.id());
    let expected = order.version();
    let entry = order.apply(OrderAction::Expire, &Actor::System, None, at(50)).expect("legal");
    batch.claim.save_expiry(&order, &entry, expected).await.expect("saving the expiry");
    batch.claim.commit().await.expect("committing");
    let written = outbox.since(before.last().map_or(0, |event| event.position)).await;
    assert_eq!(
        summary(&written),
        [(OrderExpired, second.id().into_uuid(), 2), (ProductStockChanged, kb, 5)]
    );
    assert_eq!(times(&written), [at(50); 2]);
}

// ---------------------------------------------------------------------------------------------
// Event data
// ---------------------------------------------------------------------------------------------

/// A representation of its own, with fields `IdOnly` does not have, to tell whose `data` is
/// written and at which state.
#[derive(Debug)]
struct Spelled;

impl EventData for Spelled {
    fn order(&self, order: &Order) -> String {
        json!({
            "id": order.id().to_string(),
            "version": order.version(),
            "status": order.status().as_str(),
            "payment": order.payment().map(|payment| payment.status().as_str()),
        })
        .to_string()
    }

    fn product(&self, product: &Product) -> String {
        json!({"id": product.id().to_string(), "version": product.version(), "stock": product.stock()})
            .to_string()
    }

    fn user(&self, user: &User) -> String {
        json!({"id": user.id().to_string(), "version": user.version(), "email": user.email().as_str()})
            .to_string()
    }

    fn deleted_user(&self, id: UserId) -> String {
        json!({"id": id.to_string(), "deleted": true}).to_string()
    }
}

async fn a_database_given_event_data_writes_that_representation_of_the_changed_resource(
    test_db: &TestDatabase,
) {
    let db = test_db.database().clone().with_event_data(Arc::new(Spelled));
    let shop = Shop::new(&db);
    let outbox = Outbox::open(test_db).await;

    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let keyboard = shop.stocked("KB-1", 10).await;
    let datas: Vec<Value> = outbox.all().await.iter().map(Event::data).collect();
    assert_eq!(
        datas,
        [
            json!({"id": ada.id().to_string(), "version": 1, "email": "ada@example.com"}),
            json!({"id": bob.id().to_string(), "version": 1, "email": "bob@example.com"}),
            json!({"id": keyboard.id().to_string(), "version": 1, "stock": 10}),
        ]
    );

    // The order as placed, then the product as the reservation left it.
    let mark = outbox.mark().await;
    let mut order = shop.place(&ada, &[(&keyboard, 3)], at(100)).await;
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written).len(), 2);
    let id = order.id().to_string();
    assert_eq!(
        written.iter().map(Event::data).collect::<Vec<_>>(),
        [
            json!({"id": id, "version": 1, "status": "pending_payment", "payment": null}),
            json!({"id": keyboard.id().to_string(), "version": 2, "stock": 7}),
        ]
    );

    // Both events of the payment carry the order as the change left it.
    let mark = outbox.mark().await;
    shop.apply(&mut order, OrderAction::Pay, actor(&ada), at(200)).await;
    let written = outbox.since(mark).await;
    let paid = json!({"id": id, "version": 2, "status": "paid", "payment": "authorized"});
    assert_eq!(summary(&written).len(), 2);
    assert_eq!(written.iter().map(Event::data).collect::<Vec<_>>(), [paid.clone(), paid]);

    let mark = outbox.mark().await;
    shop.users.delete(bob.id()).await.expect("deleting bob");
    let written = outbox.since(mark).await;
    assert_eq!(summary(&written), [(UserDeleted, bob.id().into_uuid(), 1)]);
    assert_eq!(written[0].data(), json!({"id": bob.id().to_string(), "deleted": true}));
}

on_both_engines_with_url!(
    registering_a_user_writes_user_registered_and_a_taken_email_writes_nothing,
    deleting_a_user_writes_user_deleted_at_its_last_version_and_a_refused_delete_writes_nothing,
    creating_a_product_writes_product_created_and_a_taken_sku_writes_nothing,
    updating_a_product_writes_one_event_of_each_kind_at_its_new_version,
    a_refused_product_update_writes_no_event,
    placing_an_order_writes_order_placed_then_stock_changed_per_product_at_its_new_version,
    a_refused_placement_writes_no_event,
    cancelling_an_order_writes_order_cancelled_and_stock_changed_for_the_stock_given_back,
    paying_capturing_and_cancelling_write_the_order_and_payment_events,
    saving_one_order_value_again_and_again_writes_each_event_once,
    a_refused_order_write_writes_no_event,
    expiries_write_their_events_at_the_claims_commit_and_a_dropped_claim_writes_none,
    a_database_given_event_data_writes_that_representation_of_the_changed_resource,
);
