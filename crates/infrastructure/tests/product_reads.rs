//! Grouped reads of products by id (ADR 0044), on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: reads of `ProductQueries::find` that come while others are running are answered
//! by one statement, and each caller gets its own product, `None` for an unknown id, or the
//! store's error.

use std::collections::HashSet;

use orderly_application::{
    StoreError,
    ports::{ProductQueries as _, ProductRepository as _},
};
use orderly_domain::{
    Currency, Money, Product, ProductDraft, ProductId, ProductName, Sku, Uuid, time::Timestamp,
};
use orderly_infrastructure::{SeaOrmProductRepository, on_both_engines, testing::TestDatabase};
use sea_orm::{ConnectionTrait as _, Statement, TransactionTrait as _};

fn product(n: usize) -> Product {
    Product::create(
        ProductDraft {
            sku: Sku::parse(&format!("READ-{n}")).expect("a valid SKU"),
            name: ProductName::parse(&format!("Read {n}")).expect("a valid name"),
            description: None,
            price: Money::new(100, Currency::parse("EUR").expect("EUR")).expect("an amount"),
            stock: 5,
        },
        Timestamp::default(),
    )
    .expect("a valid product")
}

/// A repository on `test`'s database holding `count` products, and where it counts its groups.
async fn stocked(
    test: &TestDatabase,
    count: usize,
) -> (SeaOrmProductRepository, Vec<Product>, prometheus::Registry) {
    let products = SeaOrmProductRepository::new(test.database().clone());
    let registry = prometheus::Registry::new();
    products.register_metrics(&registry).expect("registering");
    let mut stored = Vec::new();
    for n in 0..count {
        let product = product(n);
        products.insert(&product).await.expect("inserting a product");
        stored.push(product);
    }
    (products, stored, registry)
}

/// Sample count and sum of `orderly_product_read_group_size`.
fn groups(registry: &prometheus::Registry) -> (u64, f64) {
    orderly_infrastructure::testing::histogram(registry, "orderly_product_read_group_size")
}

/// `ids` read at once, each in a task of its own; the answers in the same order.
async fn read_at_once(
    products: &SeaOrmProductRepository,
    ids: &[ProductId],
) -> Vec<Result<Option<Product>, StoreError>> {
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (products, id) = (products.clone(), *id);
            tokio::spawn(async move { products.find(id).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the read did not panic"));
    }
    answers
}

/// 300 reads at once of 100 products (each three times) and 30 unknown ids: every caller gets
/// the product it asked for, or `None`, whichever group read it.
async fn each_read_gets_its_own_product(test: &TestDatabase) {
    let (products, stored, registry) = stocked(test, 100).await;
    let unknown: Vec<ProductId> = (0..30).map(|_| ProductId::from_uuid(Uuid::now_v7())).collect();
    let ids: Vec<ProductId> = (0..270)
        .map(|i| stored[(i * 37) % stored.len()].id())
        .chain(unknown.iter().copied())
        .collect();

    let answers = read_at_once(&products, &ids).await;

    for (id, answer) in ids.iter().zip(answers) {
        let answer = answer.expect("the read succeeds");
        if unknown.contains(id) {
            assert!(answer.is_none(), "{id:?} does not exist");
        } else {
            let found = answer.unwrap_or_else(|| panic!("{id:?} exists"));
            let expected = stored.iter().find(|product| product.id() == *id).expect("stored");
            assert_eq!(found.id(), *id);
            assert_eq!(found.sku(), expected.sku());
        }
    }
    let (statements, reads) = groups(&registry);
    assert_eq!(reads, 300.0, "every read was counted once");
    eprintln!("300 reads in {statements} statements");
}

/// Reads sent while PostgreSQL refuses every read of the products table (an `ACCESS
/// EXCLUSIVE` lock held by the test) queue behind the two running; once it is released, the
/// queue is read by one statement. PostgreSQL only: on SQLite nothing holds readers back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_reads_that_queue_are_read_together() {
    let Some(test) = TestDatabase::postgres().await else {
        eprintln!(
            "{} is not set: PostgreSQL not tested",
            orderly_infrastructure::testing::TEST_DATABASE_URL
        );
        return;
    };
    let test = &test;
    let (products, stored, registry) = stocked(test, 40).await;
    let connection = sea_orm::Database::connect(test.url()).await.expect("a second connection");
    let hold = connection.begin().await.expect("BEGIN");
    hold.execute_unprepared("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("locking the products");

    let ids: Vec<ProductId> = stored.iter().map(Product::id).collect();
    let reading = tokio::spawn({
        let products = products.clone();
        async move { read_at_once(&products, &ids).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!reading.is_finished(), "the reads wait for the lock");
    hold.rollback().await.expect("letting go");
    let answers = reading.await.expect("the reads did not panic");

    let found: HashSet<ProductId> = answers
        .into_iter()
        .map(|answer| answer.expect("the read succeeds").expect("the product exists").id())
        .collect();
    assert_eq!(found, stored.iter().map(Product::id).collect());
    let (statements, reads) = groups(&registry);
    assert_eq!(reads, 40.0);
    assert!(statements <= 4, "two reads held by the lock, the rest together: {statements}");
}

/// A statement that fails answers every read of its group with the store's error, and the
/// reads after it are not stuck.
async fn a_failed_group_answers_each_read_with_the_error(test: &TestDatabase) {
    let (products, stored, _) = stocked(test, 10).await;
    let connection = sea_orm::Database::connect(test.url()).await.expect("a second connection");
    let backend = connection.get_database_backend();
    let rename = |from: &str, to: &str| {
        Statement::from_string(backend, format!("ALTER TABLE {from} RENAME TO {to}"))
    };
    connection.execute_raw(rename("products", "products_away")).await.expect("renaming");

    let ids: Vec<ProductId> = stored.iter().map(Product::id).collect();
    for answer in read_at_once(&products, &ids).await {
        match answer {
            // The statement's own error, not a group that stopped without answering.
            Err(StoreError::Unexpected(error)) => {
                assert!(format!("{error:#}").contains("reading products"), "{error:#}");
            }
            other => panic!("the store's error, not {other:?}"),
        }
    }

    connection.execute_raw(rename("products_away", "products")).await.expect("renaming back");
    for answer in read_at_once(&products, &ids).await {
        assert!(answer.expect("the read succeeds").is_some());
    }
}

on_both_engines!(
    with_test_database: each_read_gets_its_own_product,
    a_failed_group_answers_each_read_with_the_error,
);
