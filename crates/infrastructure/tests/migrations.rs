//! The schema's migrations: up, down to zero and up again, on both engines; the data migration
//! of names stored before they refused invisible formatting characters; the references that keep
//! a user from being deleted, which the user adapter must be able to name.

use orderly_application::ports::{
    Claim, IdempotencyKey, IdempotencyStore as _, IdempotentRequest, OrderRepository as _,
    ProductRepository as _, UserRepository as _,
};
use orderly_domain::{
    Currency, Email, Money, Order, OrderLines, PasswordHash, Product, ProductDraft, ProductName,
    Quantity, Role, Sku, User, UserName,
    time::{TimeDelta, Timestamp},
};
use orderly_infrastructure::{
    Database, Engine, SeaOrmIdempotencyStore, SeaOrmOrderRepository, SeaOrmProductRepository,
    SeaOrmUserRepository, on_both_engines, testing::TestDatabase,
};
use sea_orm::{ConnectionTrait as _, Statement};

async fn migrations_round_trip_up_down_to_zero_and_up_again(db: &Database) {
    let applied =
        |status: Vec<(String, bool)>| status.iter().filter(|(_, applied)| *applied).count();
    let all = db.migration_status().await.expect("status").len();
    assert!(all >= 5, "expected at least five migrations, found {all}");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);

    db.migrate_down(Some(1)).await.expect("one step down");
    assert_eq!(applied(db.migration_status().await.expect("status")), all - 1);

    db.migrate_down(None).await.expect("down to zero");
    assert_eq!(applied(db.migration_status().await.expect("status")), 0);

    db.migrate_up(None).await.expect("up again");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);

    db.migrate_fresh().await.expect("fresh");
    assert_eq!(applied(db.migration_status().await.expect("status")), all);
}

on_both_engines!(migrations_round_trip_up_down_to_zero_and_up_again);

/// The tables whose foreign key to `users` refuses a user's delete (`RESTRICT` or `NO ACTION`):
/// the only ones that can make a delete `StillReferenced`. `SeaOrmUserRepository` names each by
/// asking it for rows of the user (`referrer_of` in `persistence/users.rs`); when this list
/// grows, give the new table a `UserReferrer` variant and its question there, then add it here.
async fn the_only_references_that_keep_a_user_from_being_deleted_are_orders(test_db: TestDatabase) {
    let sql = match test_db.database().engine() {
        Engine::Postgres => {
            "SELECT conrelid::regclass::text AS referrer FROM pg_constraint \
             WHERE contype = 'f' AND confrelid = 'users'::regclass AND confdeltype IN ('r', 'a') \
             ORDER BY 1"
        }
        Engine::Sqlite => {
            "SELECT m.name AS referrer FROM sqlite_master AS m \
             JOIN pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' AND f.\"table\" = 'users' \
             AND f.on_delete IN ('RESTRICT', 'NO ACTION') ORDER BY 1"
        }
    };
    let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
    let rows = raw
        .query_all_raw(Statement::from_string(raw.get_database_backend(), sql))
        .await
        .expect("listing the references to users");
    raw.close().await.expect("closing");
    let referrers: Vec<String> =
        rows.iter().map(|row| row.try_get("", "referrer").expect("a table name")).collect();
    assert_eq!(
        referrers,
        ["orders"],
        "every restricting reference to users needs its UserReferrer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_only_references_that_keep_a_user_from_being_deleted_are_orders_on_both_engines() {
    for test_db in TestDatabase::all().await {
        the_only_references_that_keep_a_user_from_being_deleted_are_orders(test_db).await;
    }
}

/// The migration that strips invisible formatting characters from the names stored before
/// names refused them.
const STRIP_FORMAT_CHARACTERS: &str = "m20261204_000012_strip_format_characters_from_names";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
}

fn customer(address: &str, name: &str) -> User {
    User::register(
        Email::parse(address).expect("a valid address"),
        UserName::parse(name).expect("a valid name"),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        Role::Customer,
        at(0),
    )
}

/// Rows written with names the rule now refuses (as raw SQL can, and earlier versions could)
/// do not read; the migration strips the characters (a name with nothing else becomes a
/// placeholder, or the product's SKU), moves the versions on, and every row reads again.
async fn names_stored_before_the_format_rule_read_again_after_the_migration(test_db: TestDatabase) {
    let db = test_db.database();
    let (users, products, orders) = (
        SeaOrmUserRepository::new(db.clone()),
        SeaOrmProductRepository::new(db.clone()),
        SeaOrmOrderRepository::new(db.clone()),
    );
    let ada = customer("ada@example.com", "Ada");
    let ghost = customer("ghost@example.com", "Ghost");
    users.insert(&ada).await.expect("inserting ada");
    users.insert(&ghost).await.expect("inserting ghost");
    let draft = ProductDraft {
        sku: Sku::parse("KB-001").expect("a SKU"),
        name: ProductName::parse("Keyboard").expect("a name"),
        description: None,
        price: Money::new(4999, Currency::parse("EUR").expect("EUR")).expect("an amount"),
        stock: 5,
    };
    let keyboard = Product::create(draft, at(0)).expect("a product");
    products.insert(&keyboard).await.expect("inserting a product");
    let lines =
        OrderLines::new([(keyboard.id(), Quantity::new(1).expect("a quantity"))]).expect("lines");
    let (order, placed) = Order::place(
        ada.id(),
        &lines,
        std::slice::from_ref(&keyboard),
        at(1),
        at(1) + TimeDelta::minutes(30),
    )
    .expect("an order");
    orders.place(&order, &placed, None).await.expect("placing an order");
    // Placing the order moved the product on (its stock): the versions as stored now.
    let order_version =
        orders.find_by_id(order.id()).await.expect("read").expect("stored").version();
    let product_version =
        products.find_by_id(keyboard.id()).await.expect("read").expect("stored").version();

    let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
    for sql in [
        "UPDATE users SET name = '\u{202e}nimda' WHERE email = 'ada@example.com'",
        "UPDATE users SET name = '\u{200b} \u{2066}\u{2069}' WHERE email = 'ghost@example.com'",
        "UPDATE products SET name = 'Key\u{200b}board\u{feff}'",
        "UPDATE order_items SET name = '\u{ad}Key\u{200b}board'",
    ] {
        raw.execute_unprepared(sql).await.expect("writing an old name");
    }
    raw.close().await.expect("closing");
    assert!(users.find_by_id(ada.id()).await.is_err(), "such a row no longer reads");

    let status = db.migration_status().await.expect("status");
    let position = status
        .iter()
        .position(|(name, _)| name == STRIP_FORMAT_CHARACTERS)
        .expect("the migration is listed");
    let steps = u32::try_from(status.len() - position).expect("a few steps");
    db.migrate_down(Some(steps)).await.expect("down to before the migration");
    db.migrate_up(None).await.expect("up again");

    let read = users.find_by_id(ada.id()).await.expect("ada reads").expect("ada exists");
    assert_eq!((read.name().as_str(), read.version()), ("nimda", ada.version() + 1));
    let read = users.find_by_id(ghost.id()).await.expect("ghost reads").expect("ghost exists");
    assert_eq!(read.name().as_str(), "Unnamed user");
    let read =
        products.find_by_id(keyboard.id()).await.expect("it reads").expect("the product exists");
    assert_eq!((read.name().as_str(), read.version()), ("Keyboard", product_version + 1));
    let read = orders.find_by_id(order.id()).await.expect("it reads").expect("the order exists");
    let names: Vec<&str> = read.items().iter().map(|item| item.name().as_str()).collect();
    assert_eq!((names, read.version()), (vec!["Keyboard"], order_version + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_stored_before_the_format_rule_read_again_after_the_migration_on_both_engines() {
    for test_db in TestDatabase::all().await {
        names_stored_before_the_format_rule_read_again_after_the_migration(test_db).await;
    }
}

/// The migration that turns the recorded responses of idempotency keys into opaque replays.
const OPAQUE_REPLAY: &str = "m20261204_000014_idempotency_opaque_replay";

/// Steps `db` down to just before `migration`.
async fn down_to_before(db: &Database, migration: &str) {
    let status = db.migration_status().await.expect("status");
    let position =
        status.iter().position(|(name, _)| name == migration).expect("the migration is listed");
    let steps = u32::try_from(status.len() - position).expect("a few steps");
    db.migrate_down(Some(steps)).await.expect("down to before the migration");
}

/// A response recorded in the columns of old (status, `Location`, `ETag`, body) becomes one
/// envelope the store hands back as the replay, and `down` puts it back in its columns.
async fn idempotent_responses_recorded_before_opaque_replays_replay_after_the_migration(
    test_db: TestDatabase,
) {
    let db = test_db.database();
    let ada = customer("ada@example.com", "Ada");
    SeaOrmUserRepository::new(db.clone()).insert(&ada).await.expect("inserting ada");
    let store = SeaOrmIdempotencyStore::new(db.clone());
    let request = IdempotentRequest {
        user_id: ada.id(),
        key: IdempotencyKey::parse("key-1").expect("a key"),
        fingerprint: "f".repeat(64),
    };
    assert!(matches!(store.claim(&request, at(0)).await, Ok(Claim::Started(_))));

    down_to_before(db, OPAQUE_REPLAY).await;
    let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
    raw.execute_unprepared(
        "UPDATE idempotency_records SET response_status = 201, \
         response_location = '/api/v1/orders/1', response_etag = '\"2\"', \
         response_body = '{\"id\":\"it''s\"}', completed_at = created_at \
         WHERE idempotency_key = 'key-1'",
    )
    .await
    .expect("recording a response the old way");
    db.migrate_up(None).await.expect("up again");

    let Ok(Claim::Replay(replay)) = store.claim(&request, at(1)).await else {
        panic!("the key replays its recorded response");
    };
    let envelope: serde_json::Value =
        serde_json::from_str(replay.as_str()).expect("the replay is a JSON envelope");
    assert_eq!(
        envelope,
        serde_json::json!({
            "status": 201,
            "location": "/api/v1/orders/1",
            "etag": "\"2\"",
            "body": "{\"id\":\"it's\"}",
        })
    );

    down_to_before(db, OPAQUE_REPLAY).await;
    let row = raw
        .query_one_raw(Statement::from_string(
            raw.get_database_backend(),
            "SELECT response_status, response_location, response_etag, response_body \
             FROM idempotency_records WHERE idempotency_key = 'key-1'",
        ))
        .await
        .expect("reading the record")
        .expect("the record exists");
    let columns = (
        row.try_get::<i16>("", "response_status").expect("a status"),
        row.try_get::<String>("", "response_location").expect("a location"),
        row.try_get::<String>("", "response_etag").expect("an ETag"),
        row.try_get::<String>("", "response_body").expect("a body"),
    );
    assert_eq!(
        columns,
        (201, "/api/v1/orders/1".to_owned(), "\"2\"".to_owned(), "{\"id\":\"it's\"}".to_owned())
    );
    raw.close().await.expect("closing");
    db.migrate_up(None).await.expect("up again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_responses_recorded_before_opaque_replays_replay_after_the_migration_on_both_engines()
 {
    for test_db in TestDatabase::all().await {
        idempotent_responses_recorded_before_opaque_replays_replay_after_the_migration(test_db)
            .await;
    }
}
