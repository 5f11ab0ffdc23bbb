//! The adapters under concurrent writers, on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: orders never oversell, and of two writers holding the same version exactly one
//! wins while the other is told it is stale.
//!
//! Every writer runs on a tokio task of its own (the runtime has four worker threads), sharing one
//! pool through a cloned repository, so the database really sees them at the same time.

use std::collections::HashSet;

use orderly_application::{
    pagination::{PageLimit, PageRequest},
    ports::{
        OrderFilter, OrderQueries as _, OrderRepository as _, OrderWriteError, PlaceOrderFailure,
        ProductRepository as _, ProductWriteError, RefreshTokenError, RefreshTokens as _,
        UserQueries as _, UserRepository as _, UserWriteError,
    },
};
use orderly_domain::{
    Actor, Currency, Email, Money, Order, OrderAction, OrderId, OrderLines, OrderStatus,
    OrderTransition, PasswordHash, Product, ProductDraft, ProductName, Quantity, Role, Sku, User,
    UserName,
    time::{TimeDelta, Timestamp},
};
use orderly_infrastructure::{
    Database, Engine, SeaOrmOrderRepository, SeaOrmProductRepository, SeaOrmRefreshTokens,
    SeaOrmUserRepository, on_both_engines,
};
use tokio::task::JoinHandle;

/// How many times each two-writer race is run: one run may happen to serialize on its own.
const ROUNDS: u32 = 10;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("an amount in range")
}

fn user(name: &str, role: Role) -> User {
    User::register(
        Email::parse(&format!("{name}@example.com")).expect("a valid e-mail address"),
        UserName::parse(name).expect("a valid name"),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash".into()),
        role,
        at(0),
    )
}

fn product(sku: &str, stock: u32) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(&format!("Product {sku}")).expect("a valid name"),
        description: None,
        price: eur(1000),
        stock,
    };
    Product::create(draft, at(0)).expect("a valid product")
}

fn new_order(customer: &User, product: &Product, units: u32) -> (Order, OrderTransition) {
    let lines = OrderLines::new([(product.id(), Quantity::new(units).expect("a quantity"))])
        .expect("valid lines");
    Order::place(
        customer.id(),
        &lines,
        std::slice::from_ref(product),
        at(10),
        at(10) + TimeDelta::hours(1),
    )
    .expect("a valid order")
}

fn actor(user: &User) -> Actor {
    Actor::User { id: user.id(), role: user.role() }
}

fn one_page() -> PageRequest {
    PageRequest { limit: PageLimit::new(100).expect("a valid limit"), after: None }
}

async fn joined<T: Send + 'static>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("the task did not panic"))
        .collect()
}

/// A repository's write error, which says whether the write lost to another writer.
trait WriteRefusal: std::fmt::Debug {
    fn is_stale(&self) -> bool;
}

impl WriteRefusal for UserWriteError {
    fn is_stale(&self) -> bool {
        matches!(self, Self::Stale)
    }
}

impl WriteRefusal for ProductWriteError {
    fn is_stale(&self) -> bool {
        matches!(self, Self::Stale)
    }
}

impl WriteRefusal for OrderWriteError {
    fn is_stale(&self) -> bool {
        matches!(self, Self::Stale)
    }
}

/// Of two results of racing writes, checks that exactly one is `Ok` and the other `Stale`, and
/// says which won: `true` for the first.
fn exactly_one_wins<E: WriteRefusal>(first: &Result<(), E>, second: &Result<(), E>) -> bool {
    match (first, second) {
        (Ok(()), Err(error)) if error.is_stale() => true,
        (Err(error), Ok(())) if error.is_stale() => false,
        other => panic!("expected exactly one Ok and one Stale, got {other:?}"),
    }
}

async fn fifty_parallel_orders_for_ten_units_sell_exactly_ten(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let orders = SeaOrmOrderRepository::new(db.clone());
    let scarce = product("SCARCE-1", 10);
    products.insert(&scarce).await.expect("inserting the product");
    let mut attempts = Vec::new();
    for i in 0..50 {
        let customer = user(&format!("customer{i}"), Role::Customer);
        users.insert(&customer).await.expect("inserting a customer");
        attempts.push(new_order(&customer, &scarce, 1));
    }

    let tasks = attempts
        .into_iter()
        .map(|(order, placed)| {
            let orders = orders.clone();
            tokio::spawn(
                async move { orders.place(&order, &placed, None).await.map(|()| order.id()) },
            )
        })
        .collect();
    let results = joined(tasks).await;

    let mut sold = HashSet::new();
    let mut refused = 0;
    let mut other_errors = Vec::new();
    for result in results {
        match result {
            Ok(id) => {
                sold.insert(id);
            }
            Err(PlaceOrderFailure::InsufficientStock { product_id, requested, available }) => {
                assert_eq!((product_id, requested, available), (scarce.id(), 1, 0));
                refused += 1;
            }
            Err(error) => other_errors.push(format!("{error:?}")),
        }
    }
    assert!(other_errors.is_empty(), "errors other than InsufficientStock: {other_errors:#?}");
    assert_eq!((sold.len(), refused), (10, 40));

    let stored = products.find_by_id(scarce.id()).await.expect("reading").expect("the product");
    assert_eq!(stored.stock(), 0);
    assert_eq!(stored.version(), 11, "one version per reservation");

    let listed = orders.list(OrderFilter::default(), one_page()).await.expect("listing orders");
    assert!(listed.next.is_none());
    let listed_ids: HashSet<OrderId> = listed.items.iter().map(Order::id).collect();
    assert_eq!(listed_ids, sold, "exactly the orders that were told they succeeded");
    for order in &listed.items {
        let units: u32 = order.items().iter().map(|item| item.quantity().get()).sum();
        assert_eq!(units, 1);
        assert_eq!(orders.history(order.id()).await.expect("history").len(), 1);
    }
}

/// Orders of three lines each over the same three products, placed at once: the one `UPDATE`
/// that reserves every line locks the rows in one order, so none deadlocks (a deadlock would be
/// a `Store` error), and exactly as many orders as there are units succeed, each taking its
/// three lines or nothing.
async fn parallel_orders_of_three_lines_over_the_same_products_never_deadlock_nor_oversell(
    db: &Database,
) {
    const UNITS: u32 = 20;
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let orders = SeaOrmOrderRepository::new(db.clone());
    let stocked = [product("TRIO-1", UNITS), product("TRIO-2", UNITS), product("TRIO-3", UNITS)];
    for stocked in &stocked {
        products.insert(stocked).await.expect("inserting a product");
    }
    let mut attempts = Vec::new();
    for i in 0..UNITS * 3 {
        let customer = user(&format!("trio{i}"), Role::Customer);
        users.insert(&customer).await.expect("inserting a customer");
        // The lines in a different order for each customer: the store sorts them.
        let mut lines: Vec<_> =
            stocked.iter().map(|p| (p.id(), Quantity::new(1).expect("a quantity"))).collect();
        lines.rotate_left(usize::try_from(i % 3).expect("small"));
        let lines = OrderLines::new(lines).expect("valid lines");
        attempts.push(
            Order::place(customer.id(), &lines, &stocked, at(10), at(10) + TimeDelta::hours(1))
                .expect("a valid order"),
        );
    }

    let tasks = attempts
        .into_iter()
        .map(|(order, placed)| {
            let orders = orders.clone();
            tokio::spawn(async move { orders.place(&order, &placed, None).await })
        })
        .collect();
    let results = joined(tasks).await;

    let mut sold = 0;
    let mut other_errors = Vec::new();
    for result in results {
        match result {
            Ok(()) => sold += 1,
            Err(PlaceOrderFailure::InsufficientStock { requested: 1, available: 0, .. }) => {}
            Err(error) => other_errors.push(format!("{error:?}")),
        }
    }
    assert!(other_errors.is_empty(), "errors other than InsufficientStock: {other_errors:#?}");
    assert_eq!(sold, UNITS);
    for stocked in &stocked {
        let stored = products.find_by_id(stocked.id()).await.expect("reading").expect("found");
        assert_eq!((stored.stock(), stored.version()), (0, u64::from(UNITS) + 1));
    }
}

async fn two_updates_of_a_product_at_the_same_version_let_exactly_one_win(db: &Database) {
    let products = SeaOrmProductRepository::new(db.clone());
    for round in 0..ROUNDS {
        let created = product(&format!("RACE-{round}"), 5);
        products.insert(&created).await.expect("inserting");
        // Changed as the use cases change a product: loaded, then changed one version on.
        let original = products.find_by_id(created.id()).await.expect("reading").expect("found");

        let mut renamed = original.clone();
        renamed.rename(ProductName::parse("Renamed").expect("a valid name"), at(20));
        let mut repriced = original.clone();
        repriced.reprice(eur(2500), at(20));
        let tasks = [renamed.clone(), repriced.clone()]
            .map(|product| {
                let products = products.clone();
                tokio::spawn(async move { products.update(&product, 1).await })
            })
            .into();
        let results = joined(tasks).await;

        let winner = if exactly_one_wins(&results[0], &results[1]) { &renamed } else { &repriced };
        let stored = products.find_by_id(original.id()).await.expect("reading").expect("found");
        assert_eq!(
            (stored.name().as_str(), stored.price(), stored.version()),
            (winner.name().as_str(), winner.price(), 2),
            "round {round}: the winner's change alone is stored"
        );
    }
}

async fn two_updates_of_a_user_at_the_same_version_let_exactly_one_win(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    for round in 0..ROUNDS {
        let original = user(&format!("racer{round}"), Role::Customer);
        users.insert(&original).await.expect("inserting");

        let mut renamed = original.clone();
        renamed.rename(UserName::parse("Renamed").expect("a valid name"), at(20));
        let mut promoted = original.clone();
        promoted.change_role(Role::Admin, at(20));
        let tasks = [renamed.clone(), promoted.clone()]
            .map(|user| {
                let users = users.clone();
                tokio::spawn(async move { users.update(&user, 1).await })
            })
            .into();
        let results = joined(tasks).await;

        let winner = if exactly_one_wins(&results[0], &results[1]) { &renamed } else { &promoted };
        let stored = users.find_by_id(original.id()).await.expect("reading").expect("found");
        assert_eq!(
            (stored.name().as_str(), stored.role(), stored.version()),
            (winner.name().as_str(), winner.role(), 2),
            "round {round}: the winner's change alone is stored"
        );
    }
}

/// Places an order of three units and races two transitions of it from `pending_payment`, both
/// at version 1. Returns which won (`true` for the first) and the order as stored afterwards,
/// after checking the history holds the place entry and the winner's entry only.
async fn race_two_transitions(
    db: &Database,
    product: &Product,
    customer: &User,
    first: (OrderAction, Actor),
    second: (OrderAction, Actor),
) -> (bool, Order) {
    let orders = SeaOrmOrderRepository::new(db.clone());
    let (order, placed) = new_order(customer, product, 3);
    orders.place(&order, &placed, None).await.expect("placing");

    let mut moves = Vec::new();
    for (action, by) in [first, second] {
        let mut copy = order.clone();
        let entry = if action == OrderAction::Pay {
            copy.pay(&by, None, format!("ch_{}", copy.id()), at(30))
        } else {
            copy.apply(action, &by, None, at(30))
        }
        .expect("legal from pending_payment");
        moves.push((copy, entry));
    }
    let tasks = moves
        .iter()
        .cloned()
        .map(|(copy, entry)| {
            let orders = orders.clone();
            tokio::spawn(async move { orders.save_transition(&copy, &entry, 1, None).await })
        })
        .collect();
    let results = joined(tasks).await;
    let first_won = exactly_one_wins(&results[0], &results[1]);

    let (winner, winning_entry) = &moves[usize::from(!first_won)];
    let stored = orders.find_by_id(order.id()).await.expect("reading").expect("the order");
    assert_eq!((stored.status(), stored.version()), (winner.status(), 2));
    let history = orders.history(order.id()).await.expect("reading the history");
    assert_eq!(history, [placed, winning_entry.clone()], "one entry after place: the winner's");
    (first_won, stored)
}

async fn two_cancellations_of_the_same_order_let_one_win_and_release_stock_once(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let owner = user("owner", Role::Customer);
    let admin = user("admin", Role::Admin);
    users.insert(&owner).await.expect("inserting");
    users.insert(&admin).await.expect("inserting");
    let stocked = product("STOCK-1", 10);
    products.insert(&stocked).await.expect("inserting");

    for round in 0..ROUNDS {
        let (_, stored) = race_two_transitions(
            db,
            &stocked,
            &owner,
            (OrderAction::Cancel, actor(&owner)),
            (OrderAction::Cancel, actor(&admin)),
        )
        .await;
        assert_eq!(stored.status(), OrderStatus::Cancelled);
        let left = products.find_by_id(stocked.id()).await.expect("reading").expect("found");
        assert_eq!(left.stock(), 10, "round {round}: three units taken, three given back once");
    }
}

async fn a_cancellation_racing_a_payment_lets_exactly_one_win(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let owner = user("owner", Role::Customer);
    let admin = user("admin", Role::Admin);
    users.insert(&owner).await.expect("inserting");
    users.insert(&admin).await.expect("inserting");
    let stocked = product("STOCK-1", 1000);
    products.insert(&stocked).await.expect("inserting");

    let mut expected_stock = 1000;
    for round in 0..ROUNDS {
        let (cancel_won, stored) = race_two_transitions(
            db,
            &stocked,
            &owner,
            (OrderAction::Cancel, actor(&owner)),
            (OrderAction::Pay, actor(&admin)),
        )
        .await;
        let expected_status = if cancel_won { OrderStatus::Cancelled } else { OrderStatus::Paid };
        assert_eq!(stored.status(), expected_status, "round {round}");
        if !cancel_won {
            expected_stock -= 3;
        }
        let left = products.find_by_id(stocked.id()).await.expect("reading").expect("found");
        assert_eq!(left.stock(), expected_stock, "round {round}: stock back only if cancelled");
    }
}

/// The ids of the stored admins.
async fn admin_ids(users: &SeaOrmUserRepository) -> HashSet<orderly_domain::UserId> {
    let listed = users.list(one_page()).await.expect("listing users");
    listed.items.iter().filter(|user| user.role() == Role::Admin).map(User::id).collect()
}

/// How an admin is removed in a race.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Delete,
    Demote,
}

/// Deletes or demotes (from the stored version) the admin `target`.
async fn remove(
    users: SeaOrmUserRepository,
    target: User,
    removal: Removal,
) -> Result<(), UserWriteError> {
    match removal {
        Removal::Delete => users.delete(target.id()).await,
        Removal::Demote => {
            let mut demoted = target.clone();
            demoted.change_role(Role::Customer, at(20));
            users.update(&demoted, target.version()).await
        }
    }
}

/// Each round starts with exactly two admins, the survivor of the round before and a new one,
/// and removes both at the same moment in the ways `removals` gives: exactly one removal must
/// win, the other must be `LastAdmin`, and exactly one admin must be left.
async fn race_two_admin_removals(db: &Database, removals: impl Fn(u32) -> [Removal; 2]) {
    let users = SeaOrmUserRepository::new(db.clone());
    let mut survivor = user("admin", Role::Admin);
    users.insert(&survivor).await.expect("inserting");
    for round in 0..ROUNDS {
        let newcomer = user(&format!("admin{round}"), Role::Admin);
        users.insert(&newcomer).await.expect("inserting");
        let current = users.find_by_id(survivor.id()).await.expect("reading").expect("found");
        let pair = [current, newcomer];
        assert_eq!(admin_ids(&users).await.len(), 2, "round {round} starts with two admins");

        let [first_removal, second_removal] = removals(round);
        let tasks = vec![
            tokio::spawn(remove(users.clone(), pair[0].clone(), first_removal)),
            tokio::spawn(remove(users.clone(), pair[1].clone(), second_removal)),
        ];
        let results = joined(tasks).await;

        let left = match (&results[0], &results[1]) {
            (Ok(()), Err(UserWriteError::LastAdmin)) => &pair[1],
            (Err(UserWriteError::LastAdmin), Ok(())) => &pair[0],
            other => panic!("round {round}: expected one removal and one LastAdmin, got {other:?}"),
        };
        assert_eq!(
            admin_ids(&users).await,
            HashSet::from([left.id()]),
            "round {round}: exactly the refused one is still an admin"
        );
        survivor = left.clone();
    }
}

async fn two_admins_deleting_each_other_at_once_leave_exactly_one_admin(db: &Database) {
    race_two_admin_removals(db, |_| [Removal::Delete, Removal::Delete]).await;
}

async fn two_admins_demoting_each_other_at_once_leave_exactly_one_admin(db: &Database) {
    race_two_admin_removals(db, |_| [Removal::Demote, Removal::Demote]).await;
}

async fn a_deletion_racing_a_demotion_of_the_only_two_admins_leaves_exactly_one_admin(
    db: &Database,
) {
    race_two_admin_removals(db, |round| {
        if round % 2 == 0 {
            [Removal::Delete, Removal::Demote]
        } else {
            [Removal::Demote, Removal::Delete]
        }
    })
    .await;
}

async fn two_rotations_of_the_same_refresh_token_are_one_rotation_and_one_reuse(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let tokens = SeaOrmRefreshTokens::new(db.clone(), TimeDelta::hours(1));
    let ada = user("ada", Role::Customer);
    users.insert(&ada).await.expect("inserting");

    for round in 0..ROUNDS {
        let token = tokens.issue(ada.id(), at(0)).await.expect("issuing");
        let tasks = [token.clone(), token]
            .map(|token| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.rotate(&token, at(60)).await })
            })
            .into();
        let results = joined(tasks).await;
        let next = match (&results[0], &results[1]) {
            (Ok((owner, next)), Err(RefreshTokenError::Reused))
            | (Err(RefreshTokenError::Reused), Ok((owner, next))) => {
                assert_eq!(*owner, ada.id());
                next.clone()
            }
            other => panic!("round {round}: expected one rotation and one reuse, got {other:?}"),
        };
        // The reuse revoked the family, including the token the winner just received.
        let result = tokens.rotate(&next, at(70)).await;
        assert!(matches!(result, Err(RefreshTokenError::Invalid)), "round {round}: {result:?}");
    }
}

/// Two expiry claims at once (two instances' jobs) never take the same order: on PostgreSQL the
/// second skips the rows the first holds (`FOR UPDATE SKIP LOCKED`) without waiting for it; on
/// SQLite it waits for the first to commit and then finds only what is left. Every order is
/// expired exactly once.
async fn two_expiry_claims_at_once_share_the_overdue_orders_without_waiting(db: &Database) {
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let orders = SeaOrmOrderRepository::new(db.clone());
    let owner = user("owner", Role::Customer);
    users.insert(&owner).await.expect("inserting");
    let stocked = product("STOCK-1", 100);
    products.insert(&stocked).await.expect("inserting");
    let mut placed = Vec::new();
    for _ in 0..4 {
        let (order, entry) = new_order(&owner, &stocked, 1);
        orders.place(&order, &entry, None).await.expect("placing");
        placed.push(order.id());
    }
    let now = at(10) + TimeDelta::hours(2);

    let expire_all = |mut batch: orderly_application::ports::OverdueBatch| async move {
        let mut ids = Vec::new();
        for order in std::mem::take(&mut batch.orders) {
            let mut order = order.expect("readable");
            let expected = order.version();
            let entry = order.apply(OrderAction::Expire, &Actor::System, None, now).expect("due");
            batch.claim.save_expiry(&order, &entry, expected).await.expect("saving");
            ids.push(order.id());
        }
        (ids, batch.claim)
    };
    let first = orders.claim_overdue(now, None, 2).await.expect("the first claim");
    let (first_ids, mut first_claim) = expire_all(first).await;
    assert_eq!(first_ids, placed[..2]);

    let second = {
        let orders = orders.clone();
        tokio::spawn(async move { orders.claim_overdue(now, None, 10).await })
    };
    let second = match db.engine() {
        Engine::Postgres => {
            // Answered while the first claim still holds its rows.
            let second = tokio::time::timeout(std::time::Duration::from_secs(5), second)
                .await
                .expect("the second claim does not wait for the first")
                .expect("the task did not panic")
                .expect("the second claim");
            first_claim.commit().await.expect("committing the first claim");
            second
        }
        Engine::Sqlite => {
            first_claim.commit().await.expect("committing the first claim");
            second.await.expect("the task did not panic").expect("the second claim")
        }
    };
    let (second_ids, mut second_claim) = expire_all(second).await;
    second_claim.commit().await.expect("committing the second claim");
    assert_eq!(second_ids, placed[2..], "the second claim got only the orders left");

    for id in placed {
        let stored = orders.find_by_id(id).await.expect("reading").expect("the order");
        assert_eq!((stored.status(), stored.version()), (OrderStatus::Expired, 2));
        assert_eq!(orders.history(id).await.expect("history").len(), 2, "expired once");
    }
    let left = products.find_by_id(stocked.id()).await.expect("reading").expect("found");
    assert_eq!(left.stock(), 100, "every unit back once");
}

on_both_engines!(
    two_expiry_claims_at_once_share_the_overdue_orders_without_waiting,
    fifty_parallel_orders_for_ten_units_sell_exactly_ten,
    parallel_orders_of_three_lines_over_the_same_products_never_deadlock_nor_oversell,
    two_updates_of_a_product_at_the_same_version_let_exactly_one_win,
    two_updates_of_a_user_at_the_same_version_let_exactly_one_win,
    two_cancellations_of_the_same_order_let_one_win_and_release_stock_once,
    a_cancellation_racing_a_payment_lets_exactly_one_win,
    two_rotations_of_the_same_refresh_token_are_one_rotation_and_one_reuse,
    two_admins_deleting_each_other_at_once_leave_exactly_one_admin,
    two_admins_demoting_each_other_at_once_leave_exactly_one_admin,
    a_deletion_racing_a_demotion_of_the_only_two_admins_leaves_exactly_one_admin,
);

/// On SQLite the writers of an instance queue for one permit instead of contending for the
/// file lock: a write waits while another write transaction is open, goes ahead as soon as it
/// ends, and gives up with a contention error (never a hang) after the busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_writers_queue_for_one_permit_bounded_by_the_busy_timeout() {
    let test = orderly_infrastructure::testing::TestDatabase::sqlite().await;
    let mut settings = orderly_infrastructure::DatabaseSettings::new(test.url());
    settings.sqlite_busy_timeout = std::time::Duration::from_millis(300);
    let db = Database::connect(&settings).await.expect("opening the database");
    let users = SeaOrmUserRepository::new(db.clone());
    let products = SeaOrmProductRepository::new(db.clone());
    let orders = SeaOrmOrderRepository::new(db.clone());
    let customer = user("queued", Role::Customer);
    users.insert(&customer).await.expect("inserting a customer");
    let stocked = product("QUEUE-1", 10);
    products.insert(&stocked).await.expect("inserting a product");

    // A claim of overdue orders is a write transaction held open by the expiry job.
    let mut claim = orders.claim_overdue(at(10), None, 10).await.expect("claiming").claim;
    let (order, placed) = new_order(&customer, &stocked, 1);
    let started = std::time::Instant::now();
    let refused = orders.place(&order, &placed, None).await;
    let waited = started.elapsed();
    assert!(
        matches!(
            refused,
            Err(PlaceOrderFailure::Store(orderly_application::StoreError::Contention(_)))
        ),
        "{refused:?}"
    );
    assert!(waited >= std::time::Duration::from_millis(250), "waited {waited:?}");

    // Queued behind the open claim, an order goes ahead when the claim commits.
    let (order, placed) = new_order(&customer, &stocked, 2);
    let queued = tokio::spawn({
        let orders = orders.clone();
        async move { orders.place(&order, &placed, None).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!queued.is_finished(), "the order waits while a write transaction is open");
    claim.commit().await.expect("committing the claim");
    queued.await.expect("the task did not panic").expect("the queued order is placed");
    let left = products.find_by_id(stocked.id()).await.expect("reading").expect("found");
    assert_eq!(left.stock(), 8, "the queued order's two units");
    drop(db);
    drop(test);
}
