//! Group commit of order placements (ADR 0042), on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: orders placed while the database is held by someone else queue, and are then
//! written together, each with the outcome it would have had alone.
//!
//! A second connection of the test's own holds the database (SQLite: an open `BEGIN
//! IMMEDIATE`; PostgreSQL: a lock on the product row every order needs) while the orders are
//! sent, so that they are queued when it lets go; the batch sizes are read from
//! `orderly_order_batch_size` and what was written through that second connection.

use std::time::Duration;

use orderly_application::{
    StoreError,
    ports::{
        Claim, Completion, IdempotencyKey, IdempotencyStore as _, IdempotentRequest, Lease,
        OrderRepository as _, PlaceOrderFailure, ProductRepository as _, Replay,
        UserRepository as _,
    },
};
use orderly_domain::{
    Currency, Email, EventType, Money, Order, OrderLines, OrderTransition, PasswordHash, Product,
    ProductDraft, ProductName, Quantity, Role, Sku, User, UserName,
    time::{TimeDelta, Timestamp},
};
use orderly_infrastructure::{
    Database, DatabaseSettings, Engine, SeaOrmIdempotencyStore, SeaOrmOrderRepository,
    SeaOrmProductRepository, SeaOrmUserRepository, on_both_engines, testing::TestDatabase,
};
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait as _,
};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
}

fn user(name: &str) -> User {
    User::register(
        Email::parse(&format!("{name}@example.com")).expect("a valid e-mail address"),
        UserName::parse(name).expect("a valid name"),
        PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}")),
        Role::Customer,
        at(0),
    )
}

fn product(sku: &str, stock: u32) -> Product {
    Product::create(
        ProductDraft {
            sku: Sku::parse(sku).expect("a valid SKU"),
            name: ProductName::parse(sku).expect("a valid name"),
            description: None,
            price: Money::new(250, Currency::parse("EUR").expect("EUR")).expect("an amount"),
            stock,
        },
        at(0),
    )
    .expect("a valid product")
}

fn order(
    customer: &User,
    lines: &[(&Product, u32)],
    stocked: &[Product],
) -> (Order, OrderTransition) {
    let lines = OrderLines::new(
        lines
            .iter()
            .map(|(product, units)| (product.id(), Quantity::new(*units).expect("a quantity")))
            .collect::<Vec<_>>(),
    )
    .expect("valid lines");
    Order::place(customer.id(), &lines, stocked, at(10), at(10) + TimeDelta::hours(1))
        .expect("a valid order")
}

/// Holds what every placement of the test needs, through a connection of the test's own,
/// until [`Hold::release`].
struct Hold {
    connection: DatabaseConnection,
    tx: DatabaseTransaction,
}

impl Hold {
    async fn take(test: &TestDatabase, product: &Product) -> Self {
        let connection = sea_orm::Database::connect(test.url()).await.expect("a second connection");
        let tx = match test.database().engine() {
            Engine::Sqlite => connection
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .expect("BEGIN IMMEDIATE"),
            Engine::Postgres => {
                let tx = connection.begin().await.expect("BEGIN");
                tx.execute_raw(Statement::from_sql_and_values(
                    tx.get_database_backend(),
                    "SELECT id FROM products WHERE id = $1 FOR UPDATE",
                    [product.id().into_uuid().into()],
                ))
                .await
                .expect("locking the product");
                tx
            }
        };
        Self { connection, tx }
    }

    async fn release(self) -> DatabaseConnection {
        self.tx.rollback().await.expect("letting go");
        self.connection
    }
}

/// The versions of `product`'s `product.stock_changed` events, in outbox order.
async fn stock_events(connection: &DatabaseConnection, product: &Product) -> Vec<i64> {
    let backend = connection.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT aggregate_version FROM outbox_events WHERE aggregate_id = $1 \
             AND event_type = $2 ORDER BY position"
        }
        _ => {
            "SELECT aggregate_version FROM outbox_events WHERE aggregate_id = ? \
             AND event_type = ? ORDER BY position"
        }
    };
    connection
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [product.id().into_uuid().into(), EventType::ProductStockChanged.name().into()],
        ))
        .await
        .expect("reading events")
        .iter()
        .map(|row| row.try_get("", "aggregate_version").expect("a version"))
        .collect()
}

/// Sample count and sum of `orderly_order_batch_size`.
fn batches(registry: &prometheus::Registry) -> (u64, f64) {
    orderly_infrastructure::testing::histogram(registry, "orderly_order_batch_size")
}

/// An order to place, with the idempotent response to record with it, if any.
type Attempt = (Order, OrderTransition, Option<Completion>);

/// Places `attempts` while `hold_on`'s row (PostgreSQL) or the database (SQLite) is held, in
/// the order listed, and returns their outcomes once the hold is released, with the second
/// connection.
async fn place_behind_a_hold(
    test: &TestDatabase,
    orders: &SeaOrmOrderRepository,
    hold_on: &Product,
    attempts: Vec<Attempt>,
) -> (Vec<Result<(), PlaceOrderFailure>>, DatabaseConnection) {
    let hold = Hold::take(test, hold_on).await;
    let mut tasks = Vec::new();
    for (order, placed, completion) in attempts {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move { orders.place(&order, &placed, completion).await }));
        // In the order listed: the queue keeps it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tasks.iter().all(|task| !task.is_finished()), "every order waits for the hold");
    let connection = hold.release().await;
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the task did not panic"));
    }
    (outcomes, connection)
}

/// What each test places orders with.
struct Shop {
    users: SeaOrmUserRepository,
    products: SeaOrmProductRepository,
    /// On a pool of three connections: on PostgreSQL one batch at a time, as on SQLite, so
    /// that the orders queued behind the first are one batch.
    orders: SeaOrmOrderRepository,
    /// Where `orders` counts its batch sizes.
    registry: prometheus::Registry,
}

/// A shop on `test`'s database with `stocked` inserted.
async fn shop(test: &TestDatabase, stocked: &[Product]) -> Shop {
    let db = test.database();
    let products = SeaOrmProductRepository::new(db.clone());
    for product in stocked {
        products.insert(product).await.expect("inserting a product");
    }
    let settings = DatabaseSettings { max_connections: 3, ..test.settings().clone() };
    let orders =
        SeaOrmOrderRepository::new(Database::connect(&settings).await.expect("a pool of three"));
    let registry = prometheus::Registry::new();
    orders.register_metrics(&registry).expect("registering");
    Shop { users: SeaOrmUserRepository::new(db.clone()), products, orders, registry }
}

/// Five orders sent while the database is held (at most as many as a batch takes on either
/// engine): four for the last two units of a product (and one unit of another), then one for
/// the other product only. The first is written alone, the four queued behind it together,
/// each with its own answer: the second placed, the third and fourth refused for stock (none
/// left, each told so), the last placed; the products' versions and events move once per
/// order placed, in the order the orders came.
async fn queued_orders_are_written_together_each_with_its_own_outcome(test: &TestDatabase) {
    let scarce = product("SCARCE-1", 2);
    let plenty = product("PLENTY-1", 100);
    let stocked = [scarce.clone(), plenty.clone()];
    let Shop { users, products, orders, registry } = shop(test, &stocked).await;
    let mut attempts = Vec::new();
    for i in 0..5 {
        let customer = user(&format!("queued{i}"));
        users.insert(&customer).await.expect("inserting a customer");
        let lines: &[(&Product, u32)] =
            if i < 4 { &[(&scarce, 1), (&plenty, 1)] } else { &[(&plenty, 3)] };
        let (order, placed) = order(&customer, lines, &stocked);
        attempts.push((order, placed, None));
    }

    let (outcomes, connection) = place_behind_a_hold(test, &orders, &plenty, attempts).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (0 | 1 | 4, Ok(())) => {}
            (
                2 | 3,
                Err(PlaceOrderFailure::InsufficientStock {
                    product_id,
                    requested: 1,
                    available: 0,
                }),
            ) if *product_id == scarce.id() => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let (count, sum) = batches(&registry);
    assert!((sum - 5.0).abs() < f64::EPSILON, "every placement went through a batch: {sum}");
    assert_eq!(count, 2, "the first order, then the four queued behind it");

    let scarce_now = products.find_by_id(scarce.id()).await.expect("reading").expect("found");
    assert_eq!((scarce_now.stock(), scarce_now.version()), (0, 3));
    let plenty_now = products.find_by_id(plenty.id()).await.expect("reading").expect("found");
    assert_eq!((plenty_now.stock(), plenty_now.version()), (100 - 2 - 3, 4));
    assert_eq!(stock_events(&connection, &scarce).await, [2, 3]);
    assert_eq!(stock_events(&connection, &plenty).await, [2, 3, 4]);
}

/// A queued order whose customer's account is gone refuses its batch before the commit: each
/// order of the batch is then placed alone, so that one is refused and the others are placed.
async fn an_order_refused_by_the_database_is_refused_alone(test: &TestDatabase) {
    let plenty = product("PLENTY-2", 100);
    let stocked = [plenty.clone()];
    let Shop { users, products, orders, registry } = shop(test, &stocked).await;
    let mut attempts = Vec::new();
    for i in 0..5 {
        let customer = user(&format!("alone{i}"));
        if i != 3 {
            users.insert(&customer).await.expect("inserting a customer");
        }
        let (order, placed) = order(&customer, &[(&plenty, 1)], &stocked);
        attempts.push((order, placed, None));
    }

    let (outcomes, connection) = place_behind_a_hold(test, &orders, &plenty, attempts).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (3, Err(PlaceOrderFailure::UnknownCustomer)) => {}
            (0..=2 | 4, Ok(())) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(batches(&registry).0, 2, "the first order, then the four queued behind it");
    let now = products.find_by_id(plenty.id()).await.expect("reading").expect("found");
    assert_eq!((now.stock(), now.version()), (96, 5));
    assert_eq!(stock_events(&connection, &plenty).await, [2, 3, 4, 5]);
}

/// `customer`'s request with the idempotency key `key`.
fn keyed(customer: &User, key: &str) -> IdempotentRequest {
    IdempotentRequest {
        user_id: customer.id(),
        key: IdempotencyKey::parse(key).expect("a valid key"),
        fingerprint: "0".repeat(64),
    }
}

/// Two of the queued orders carry idempotency keys: one still claimed by its request, one whose
/// claim another request took over while it waited (its lease is not the one stored). The
/// batch stops before its commit, and each order is then placed alone: the one whose claim
/// lapsed is refused as contention, with nothing of it written, and every other order is
/// placed, the other key's response recorded with its order.
async fn a_lapsed_idempotency_claim_fails_its_order_alone(test: &TestDatabase) {
    let plenty = product("PLENTY-3", 100);
    let stocked = [plenty.clone()];
    let Shop { users, products, orders, registry } = shop(test, &stocked).await;
    let keys = SeaOrmIdempotencyStore::new(test.database().clone());
    let mut customers = Vec::new();
    let mut attempts = Vec::new();
    for i in 0..5 {
        let customer = user(&format!("keyed{i}"));
        users.insert(&customer).await.expect("inserting a customer");
        let (order, placed) = order(&customer, &[(&plenty, 1)], &stocked);
        let completion = match i {
            1 | 3 => {
                let request = keyed(&customer, &format!("key-{i}"));
                let Claim::Started(lease) = keys.claim(&request, at(10)).await.expect("claiming")
                else {
                    panic!("a new key starts");
                };
                // The fourth order's request lost its claim: it holds a lease no longer stored.
                let lease = if i == 3 { Lease(orderly_domain::Uuid::now_v7()) } else { lease };
                Some(Completion {
                    request,
                    lease,
                    response: Replay::new(format!("response {i}")),
                    at: at(10),
                })
            }
            _ => None,
        };
        customers.push(customer);
        attempts.push((order, placed, completion));
    }

    let (outcomes, connection) = place_behind_a_hold(test, &orders, &plenty, attempts).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (3, Err(PlaceOrderFailure::Store(StoreError::Contention(_)))) => {}
            (0..=2 | 4, Ok(())) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(batches(&registry).0, 2, "the first order, then the four queued behind it");
    let now = products.find_by_id(plenty.id()).await.expect("reading").expect("found");
    assert_eq!((now.stock(), now.version()), (96, 5), "four orders took a unit each");
    assert_eq!(stock_events(&connection, &plenty).await, [2, 3, 4, 5]);
    let again = |i: usize| {
        let request = keyed(&customers[i], &format!("key-{i}"));
        let keys = keys.clone();
        async move { keys.claim(&request, at(20)).await.expect("claiming again") }
    };
    assert_eq!(again(1).await, Claim::Replay(Replay::new("response 1")));
    assert!(
        matches!(again(3).await, Claim::InFlight { .. }),
        "the lapsed request recorded nothing: the key stays with the request that took it over"
    );
}

/// A batch whose commit fails writes nothing, and every order of it fails with the store's
/// error: the one refused for stock too, since the unit the order before it took is back. The
/// test makes every commit that wrote an order fail: on PostgreSQL a deferred constraint
/// trigger raises; on SQLite a trigger on `orders` writes a row that a deferred foreign key
/// refuses. After the hold the same pool places an order of its own, so a connection left in
/// a failed transaction would show.
async fn a_batch_whose_commit_fails_writes_nothing_and_fails_every_order(test: &TestDatabase) {
    let scarce = product("SCARCE-4", 1);
    let plenty = product("PLENTY-4", 100);
    let stocked = [scarce.clone(), plenty.clone()];
    let Shop { users, products, orders, registry } = shop(test, &stocked).await;
    let mut attempts = Vec::new();
    for i in 0..5 {
        let customer = user(&format!("uncommitted{i}"));
        users.insert(&customer).await.expect("inserting a customer");
        let lines: &[(&Product, u32)] =
            if i == 1 || i == 2 { &[(&scarce, 1), (&plenty, 1)] } else { &[(&plenty, 1)] };
        let (order, placed) = order(&customer, lines, &stocked);
        attempts.push((order, placed, None));
    }
    let connection = sea_orm::Database::connect(test.url()).await.expect("a second connection");
    let refuse_at_commit: &[&str] = match test.database().engine() {
        Engine::Postgres => &[
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused at commit by the test'; END $$",
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON orders \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()",
        ],
        Engine::Sqlite => &[
            "CREATE TABLE refusal_parents (id INTEGER PRIMARY KEY)",
            "CREATE TABLE refusals (parent INTEGER REFERENCES refusal_parents (id) \
             DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER refuse_at_commit AFTER INSERT ON orders \
             BEGIN INSERT INTO refusals (parent) VALUES (1); END",
        ],
    };
    for sql in refuse_at_commit {
        connection.execute_unprepared(sql).await.expect("installing the refusal");
    }

    let (outcomes, connection) = place_behind_a_hold(test, &orders, &plenty, attempts).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        assert!(
            matches!(outcome, Err(PlaceOrderFailure::Store(StoreError::Unexpected(_)))),
            "order {i}: {outcome:?}"
        );
    }
    assert_eq!(batches(&registry).0, 2, "the first order, then the four queued behind it");
    for (product, stock) in [(&scarce, 1), (&plenty, 100)] {
        let now = products.find_by_id(product.id()).await.expect("reading").expect("found");
        assert_eq!((now.stock(), now.version()), (stock, 1), "{} untouched", product.sku());
        assert_eq!(stock_events(&connection, product).await, [] as [i64; 0]);
    }
    let written = connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            "SELECT count(*) AS n FROM orders",
        ))
        .await
        .expect("counting orders")
        .expect("a count");
    assert_eq!(written.try_get::<i64>("", "n").expect("a count"), 0);

    // The pool is whole: with the refusal gone, it places an order.
    for sql in match test.database().engine() {
        Engine::Postgres => ["DROP TRIGGER refuse_at_commit ON orders"],
        Engine::Sqlite => ["DROP TRIGGER refuse_at_commit"],
    } {
        connection.execute_unprepared(sql).await.expect("removing the refusal");
    }
    let customer = user("uncommitted-after");
    users.insert(&customer).await.expect("inserting a customer");
    let (order, placed) = order(&customer, &[(&scarce, 1)], &stocked);
    orders.place(&order, &placed, None).await.expect("placing after the refusals");
    let now = products.find_by_id(scarce.id()).await.expect("reading").expect("found");
    assert_eq!(now.stock(), 0);
}

on_both_engines!(
    with_test_database: queued_orders_are_written_together_each_with_its_own_outcome,
    an_order_refused_by_the_database_is_refused_alone,
    a_lapsed_idempotency_claim_fails_its_order_alone,
    a_batch_whose_commit_fails_writes_nothing_and_fails_every_order,
);
