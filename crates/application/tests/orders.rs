//! Use-case tests of the order use cases, every port replaced by its mockall twin.
//!
//! One module per use case. Each test builds the use case from mocks that expect exactly the
//! calls the scenario needs (`never()` where a port must not be reached), runs it once and
//! checks both the answer and what reached the ports. The background settlement job has its own
//! file, `settle_payments.rs`.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use mockall::Sequence;
use orderly_application::{
    StoreError,
    idempotency::{IdempotencyRefusal, Idempotent, Outcome},
    orders::{
        expire_orders::{EXPIRY_BATCH, ExpireOrders, ExpiryReport},
        get_order::{GetOrder, GetOrderError},
        list_orders::{ListOrders, ListOrdersError},
        list_user_orders::{ListUserOrders, ListUserOrdersError},
        move_order::{MoveOrder, MoveOrderError},
        moves::{MoveRequest, Moved},
        order_history::{OrderHistory, OrderHistoryError},
        pay_order::{PayOrder, PayOrderError},
        place_order::{PlaceOrder, PlaceOrderError, PlaceOrderInput},
    },
    pagination::{Cursor, InvalidCursor, ListRequest, Page, PageLimit, PageRequest, SortValue},
    ports::{
        Claim, Completion, IdempotencyKey, IdempotentRequest, Lease, MockClock,
        MockIdempotencyStore, MockOrderQueries, MockOrderRepository, MockOverdueClaim,
        MockPaymentGateway, MockProductRepository, OrderFilter, OrderWriteError, OverdueBatch,
        OverdueCursor, PaymentError, PlaceOrderFailure, Replay, UnreadableOrder,
    },
};
use orderly_domain::{
    Actor, Money, Order, OrderAction, OrderError, OrderId, OrderItem, OrderParts, OrderStatus,
    OrderTransition, Payment, PaymentParts, PaymentStatus, Product, ProductId, ProductSnapshot,
    Reason, UserId, Uuid,
    time::{TimeDelta, Timestamp},
};
use support::{
    PaymentSaves, admin, clock_at, customer, expect_authorization_with, no_payments, now,
    order_total, price, product, reason, record_payment_saves, record_payment_saves_in, store_down,
    two_keyboards, units,
};

// ---------------------------------------------------------------------------------------------
// The transitions endpoint as the HTTP layer runs it
// ---------------------------------------------------------------------------------------------

/// `POST /orders/{id}/transitions` as the HTTP handler dispatches it: `pay` goes to
/// [`PayOrder`], every other move to [`MoveOrder`]. The tests of both use cases go through it,
/// with the variants of both error enums side by side in [`TransitionOrderError`].
struct TransitionOrder {
    pay: PayOrder,
    moves: MoveOrder,
}

impl TransitionOrder {
    fn new(
        orders: Arc<MockOrderRepository>,
        payments: Arc<MockPaymentGateway>,
        keys: Arc<MockIdempotencyStore>,
        clock: Arc<MockClock>,
    ) -> Self {
        Self {
            pay: PayOrder::new(orders.clone(), payments.clone(), keys.clone(), clock.clone()),
            moves: MoveOrder::new(orders, payments, keys, clock),
        }
    }

    async fn execute(
        &self,
        actor: &Actor,
        input: TransitionOrderInput,
    ) -> Result<Outcome<Moved>, TransitionOrderError> {
        let TransitionOrderInput { id, action, reason, expected_version, request_id, idempotency } =
            input;
        let request = MoveRequest { id, reason, expected_version, request_id, idempotency };
        match action {
            OrderAction::Pay => Ok(self.pay.execute(actor, request).await?),
            action => Ok(self.moves.execute(actor, action, request).await?),
        }
    }
}

/// A move as the endpoint receives it.
#[derive(Debug, Clone)]
struct TransitionOrderInput {
    id: OrderId,
    action: OrderAction,
    reason: Option<Reason>,
    expected_version: Option<u64>,
    request_id: Option<String>,
    idempotency: Option<Idempotent<Moved>>,
}

/// The refusals of [`PayOrder`] and [`MoveOrder`], side by side.
#[derive(Debug)]
#[allow(dead_code)]
enum TransitionOrderError {
    NotFound,
    InvalidTransition { from: OrderStatus, action: OrderAction, allowed: Vec<OrderAction> },
    PaymentOverdue { due_at: Timestamp, allowed: Vec<OrderAction> },
    Forbidden { from: OrderStatus, action: OrderAction },
    VersionMismatch { expected: u64, current: u64 },
    Conflict,
    PaidTooLate { status: OrderStatus },
    PaymentDeclined(String),
    PaymentUnavailable { retry_after: Option<Duration>, source: anyhow::Error },
    Idempotency(IdempotencyRefusal),
    Store(StoreError),
    Unexpected(anyhow::Error),
}

impl From<PayOrderError> for TransitionOrderError {
    fn from(error: PayOrderError) -> Self {
        match error {
            PayOrderError::NotFound => Self::NotFound,
            PayOrderError::InvalidTransition { from, action, allowed } => {
                Self::InvalidTransition { from, action, allowed }
            }
            PayOrderError::PaymentOverdue { due_at, allowed } => {
                Self::PaymentOverdue { due_at, allowed }
            }
            PayOrderError::Forbidden { from, action } => Self::Forbidden { from, action },
            PayOrderError::VersionMismatch { expected, current } => {
                Self::VersionMismatch { expected, current }
            }
            PayOrderError::Conflict => Self::Conflict,
            PayOrderError::PaidTooLate { status } => Self::PaidTooLate { status },
            PayOrderError::PaymentDeclined(reason) => Self::PaymentDeclined(reason),
            PayOrderError::PaymentUnavailable { retry_after, source } => {
                Self::PaymentUnavailable { retry_after, source }
            }
            PayOrderError::Idempotency(refusal) => Self::Idempotency(refusal),
            PayOrderError::Store(store) => Self::Store(store),
            PayOrderError::Unexpected(source) => Self::Unexpected(source),
        }
    }
}

impl From<MoveOrderError> for TransitionOrderError {
    fn from(error: MoveOrderError) -> Self {
        match error {
            MoveOrderError::NotFound => Self::NotFound,
            MoveOrderError::InvalidTransition { from, action, allowed } => {
                Self::InvalidTransition { from, action, allowed }
            }
            MoveOrderError::Forbidden { from, action } => Self::Forbidden { from, action },
            MoveOrderError::VersionMismatch { expected, current } => {
                Self::VersionMismatch { expected, current }
            }
            MoveOrderError::Conflict => Self::Conflict,
            MoveOrderError::Idempotency(refusal) => Self::Idempotency(refusal),
            MoveOrderError::Store(store) => Self::Store(store),
            MoveOrderError::Unexpected(source) => Self::Unexpected(source),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// How long a new order waits for payment in these tests.
fn payment_timeout() -> TimeDelta {
    TimeDelta::minutes(45)
}

fn archived(mut product: Product) -> Product {
    product.archive(now() - TimeDelta::days(1));
    product
}

/// The version every stored order in these tests is at.
const STORED_VERSION: u64 = 3;

/// The provider's reference of the payment stored on the fixture orders that have one.
const STORED_REFERENCE: &str = "auth_stored";

/// A stored order of `owner` in `status`, without a payment, due in half an hour.
fn order(owner: UserId, status: OrderStatus) -> Order {
    order_with(owner, status, now() + TimeDelta::minutes(30), None)
}

/// A stored order of `owner` in `status`, without a payment, whose payment is due at `due_at`.
fn order_due(owner: UserId, status: OrderStatus, due_at: Timestamp) -> Order {
    order_with(owner, status, due_at, None)
}

/// A stored paid order of `owner` whose payment (reference [`STORED_REFERENCE`], for the
/// order's total) is in `payment`.
fn paid_order(owner: UserId, payment: PaymentStatus) -> Order {
    order_with(owner, OrderStatus::Paid, now() - TimeDelta::minutes(30), Some(payment))
}

/// A stored order of `owner`: [`two_keyboards`] in `status`, due at `due_at`, with a
/// payment in `payment` (reference [`STORED_REFERENCE`]) if given.
fn order_with(
    owner: UserId,
    status: OrderStatus,
    due_at: Timestamp,
    payment: Option<PaymentStatus>,
) -> Order {
    Order::restore(OrderParts {
        id: OrderId::new(),
        user_id: owner,
        status,
        items: vec![two_keyboards()],
        payment_due_at: due_at,
        payment: payment.map(|status| {
            Payment::restore(PaymentParts {
                status,
                reference: Some(STORED_REFERENCE.to_owned()),
                attempt: None,
                failures: 0,
                amount: order_total(),
                created_at: now() - TimeDelta::hours(1),
                updated_at: now() - TimeDelta::hours(1),
            })
        }),
        version: STORED_VERSION,
        created_at: now() - TimeDelta::hours(1),
        updated_at: now() - TimeDelta::hours(1),
    })
    .expect("a valid order")
}

/// Everything an order shows, so that two orders can be compared (`Order` has no `PartialEq`).
#[derive(Debug, PartialEq)]
struct Seen {
    id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    items: Vec<OrderItem>,
    total: Money,
    payment_due_at: Timestamp,
    payment: Option<Payment>,
    version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

fn seen(order: &Order) -> Seen {
    Seen {
        id: order.id(),
        user_id: order.user_id(),
        status: order.status(),
        items: order.items().to_vec(),
        total: order.total(),
        payment_due_at: order.payment_due_at(),
        payment: order.payment().cloned(),
        version: order.version(),
        created_at: order.created_at(),
        updated_at: order.updated_at(),
    }
}

fn seen_all(orders: &[Order]) -> Vec<Seen> {
    orders.iter().map(seen).collect()
}

/// An order's payment as `(status, reference, amount)`, or `None` without one.
fn payment_of(order: &Order) -> Option<(PaymentStatus, Option<String>, Money)> {
    order
        .payment()
        .map(|payment| (payment.status(), payment.reference().map(str::to_owned), payment.amount()))
}

/// A payment in `status` with `reference` for the fixture orders' total.
fn payment_is(
    status: PaymentStatus,
    reference: Option<&str>,
) -> Option<(PaymentStatus, Option<String>, Money)> {
    Some((status, reference.map(str::to_owned), order_total()))
}

/// A repository that finds `order` by its id, once.
fn orders_holding(order: &Order) -> MockOrderRepository {
    let mut orders = MockOrderRepository::new();
    let id = order.id();
    let stored = order.clone();
    orders
        .expect_find_by_id()
        .times(1)
        .withf(move |asked| *asked == id)
        .returning(move |_| Ok(Some(stored.clone())));
    orders
}

/// A repository that has no order with any id.
fn orders_holding_nothing() -> MockOrderRepository {
    let mut orders = MockOrderRepository::new();
    orders.expect_find_by_id().times(1).returning(|_| Ok(None));
    orders
}

/// One call to `OrderRepository::save_transition`, as the use case made it.
#[derive(Debug)]
struct Saved {
    order: Order,
    entry: OrderTransition,
    expected_version: u64,
    completion: Option<Completion>,
}

/// Every `save_transition` call, in order.
type Saves = Arc<Mutex<Vec<Saved>>>;

/// Makes every `save_transition` succeed, `times` times in all, and records the calls.
fn record_saves(orders: &mut MockOrderRepository, times: usize) -> Saves {
    record_saves_in(orders, times, None)
}

/// As [`record_saves`], the calls taking their place in `sequence` when given.
fn record_saves_in(
    orders: &mut MockOrderRepository,
    times: usize,
    sequence: Option<&mut Sequence>,
) -> Saves {
    let saves = Saves::default();
    let log = Arc::clone(&saves);
    let expectation = orders.expect_save_transition();
    expectation.times(times);
    if let Some(sequence) = sequence {
        expectation.in_sequence(sequence);
    }
    expectation.returning(move |order, entry, expected_version, completion| {
        log.lock().expect("the log is not poisoned").push(Saved {
            order: order.clone(),
            entry: entry.clone(),
            expected_version,
            completion,
        });
        Ok(())
    });
    saves
}

/// The one save recorded in `saves`.
fn only_save(saves: &Saves) -> Saved {
    let mut saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves.len(), 1, "exactly one save was expected: {saves:?}");
    saves.remove(0)
}

/// The one payment save recorded in `saves`.
fn only_payment_save(saves: &PaymentSaves) -> (Order, u64) {
    let mut saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves.len(), 1, "exactly one payment save was expected: {saves:?}");
    saves.remove(0)
}

/// `order` as a `pay` leaves it once it has recorded, before asking the provider, that an
/// authorization of the total is asked with the order's version as its attempt: its payment
/// `pending` and its version one step on.
fn asked(order: &Order) -> Order {
    let mut asked = order.clone();
    asked
        .record_authorization_asked(order.version(), now())
        .expect("an order pending payment records an authorization asked");
    asked
}

/// Makes `orders` expect, once and in `sequence` (so before the provider is asked), the
/// `pending` payment a `pay` of the loaded `order` records: exactly [`asked`]`(order)` (attempt
/// = the loaded version, no reference, the total, the version one step on), guarded by the
/// loaded version. Returns the log of that save.
///
/// Set it before any other `save_payment` expectation: mockall tries expectations in the order
/// they were set, and this one matches only the pending record.
fn expect_pending_record(
    orders: &mut MockOrderRepository,
    order: &Order,
    sequence: &mut Sequence,
) -> PaymentSaves {
    let expected = seen(&asked(order));
    let loaded = order.version();
    let saves = PaymentSaves::default();
    let log = Arc::clone(&saves);
    orders
        .expect_save_payment()
        .times(1)
        .in_sequence(sequence)
        .withf(move |order, expected_version| {
            seen(order) == expected && *expected_version == loaded
        })
        .returning(move |order, expected_version| {
            log.lock().expect("the log is not poisoned").push((order.clone(), expected_version));
            Ok(())
        });
    saves
}

/// A repository that finds `order` once (pending payment, no payment pending yet) and expects
/// the pending record of [`expect_pending_record`], in `sequence`.
fn orders_paying(order: &Order, sequence: &mut Sequence) -> MockOrderRepository {
    let mut orders = orders_holding(order);
    expect_pending_record(&mut orders, order, sequence);
    orders
}

/// The `(filter, page)` of every `OrderQueries::list` call, in order.
type Listings = Arc<Mutex<Vec<(OrderFilter, PageRequest)>>>;

/// Queries that answer one `list` call with `page` and record the filter and page asked for.
fn queries_answering(page: Page<Order>) -> (MockOrderQueries, Listings) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let mut queries = MockOrderQueries::new();
    queries.expect_list().times(1).returning(move |filter, request| {
        log.lock().expect("the log is not poisoned").push((filter, request));
        Ok(page.clone())
    });
    (queries, asked)
}

fn never_listing() -> MockOrderQueries {
    let mut queries = MockOrderQueries::new();
    queries.expect_list().never();
    queries
}

fn empty_page() -> Page<Order> {
    Page { items: vec![], next: None }
}

/// An idempotency store that must not be reached: the request carries no key.
fn no_keys() -> MockIdempotencyStore {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim().never();
    keys.expect_release().never();
    keys.expect_update_response().never();
    keys
}

/// The key `user` sent, with the fingerprint of its request.
fn keyed_request(user: UserId) -> IdempotentRequest {
    IdempotentRequest {
        user_id: user,
        key: IdempotencyKey::parse("order-key-0001").expect("a valid key"),
        fingerprint: "f".repeat(64),
    }
}

/// The lease the mocked store hands out when a claim starts.
fn lease() -> Lease {
    Lease(Uuid::from_u128(0x0001_0002))
}

/// An idempotency store whose `claim` of `request` at the mocked now answers `claim`, once.
fn keys_claiming(request: &IdempotentRequest, claim: Claim) -> MockIdempotencyStore {
    let mut keys = MockIdempotencyStore::new();
    let expected = request.clone();
    keys.expect_claim()
        .times(1)
        .withf(move |asked, at| *asked == expected && *at == now())
        .return_once(move |_, _| Ok(claim));
    keys
}

/// Makes `keys` expect the release of `request`'s claim (the lease of [`lease`]), once.
fn expect_release(keys: &mut MockIdempotencyStore, request: &IdempotentRequest) {
    let expected = request.clone();
    keys.expect_release()
        .times(1)
        .withf(move |asked, held| *asked == expected && *held == lease())
        .returning(|_, _| Ok(()));
}

/// A response as the HTTP layer would have recorded it.
fn stored_response(status: u16, body: &str) -> Replay {
    Replay::new(format!("{status} /orders/somewhere \"1\" {body}"))
}

// ---------------------------------------------------------------------------------------------
// place_order
// ---------------------------------------------------------------------------------------------

mod place_order {
    use super::*;

    fn place_order(products: MockProductRepository, orders: MockOrderRepository) -> PlaceOrder {
        place_order_keyed(products, orders, no_keys())
    }

    fn place_order_keyed(
        products: MockProductRepository,
        orders: MockOrderRepository,
        keys: MockIdempotencyStore,
    ) -> PlaceOrder {
        PlaceOrder::new(
            Arc::new(products),
            Arc::new(orders),
            Arc::new(keys),
            Arc::new(clock_at(now())),
            payment_timeout(),
        )
    }

    /// The response recorded for a placed order: what a replay sends again.
    fn created(order: &Order) -> Replay {
        Replay::new(format!(
            "201 /orders/{} \"{}\" {} {}",
            order.id(),
            order.version(),
            order.status(),
            order.total().amount_minor()
        ))
    }

    /// `request` as the HTTP layer hands it to the use case, rendering with [`created`].
    fn idempotent(request: &IdempotentRequest) -> Idempotent<Order> {
        Idempotent { request: request.clone(), render: Arc::new(created) }
    }

    /// A catalogue that answers `find_many` once with `catalogue`, whatever was asked.
    fn catalogue_of(catalogue: Vec<Product>) -> MockProductRepository {
        let mut products = MockProductRepository::new();
        products.expect_find_many().times(1).returning(move |_| Ok(catalogue.clone()));
        products
    }

    fn never_reading_the_catalogue() -> MockProductRepository {
        let mut products = MockProductRepository::new();
        products.expect_find_many().never();
        products
    }

    fn never_placing() -> MockOrderRepository {
        let mut orders = MockOrderRepository::new();
        orders.expect_place().never();
        orders
    }

    fn one_line(product: &Product, count: u32) -> PlaceOrderInput {
        PlaceOrderInput {
            lines: vec![(product.id(), units(count))],
            request_id: None,
            idempotency: None,
        }
    }

    /// One call to `OrderRepository::place`.
    type Placing = Arc<Mutex<Option<(Order, OrderTransition, Option<Completion>)>>>;

    /// A repository whose `place` succeeds once and records what it was given.
    fn recording_placing() -> (MockOrderRepository, Placing) {
        let placing = Placing::default();
        let log = Arc::clone(&placing);
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(1).returning(move |order, entry, completion| {
            *log.lock().expect("the log is not poisoned") =
                Some((order.clone(), entry.clone(), completion));
            Ok(())
        });
        (orders, placing)
    }

    fn placed(placing: &Placing) -> (Order, OrderTransition, Option<Completion>) {
        placing
            .lock()
            .expect("the log is not poisoned")
            .take()
            .expect("the order was handed to the repository")
    }

    /// What a successful placing handed to the ports and returned.
    struct Placed {
        asked_for: Vec<Vec<ProductId>>,
        stored: Order,
        entry: OrderTransition,
        completion: Option<Completion>,
        returned: Outcome<Order>,
    }

    /// `user` orders two mice, two keyboards and one more mouse (three lines, two products);
    /// the catalogue answers in an order of its own.
    async fn place_keyboards_and_mice(user: UserId, keyboard: &Product, mouse: &Product) -> Placed {
        let asked_for = Arc::new(Mutex::new(Vec::new()));
        let mut products = MockProductRepository::new();
        let log = Arc::clone(&asked_for);
        let catalogue = vec![mouse.clone(), keyboard.clone()];
        products.expect_find_many().times(1).returning(move |ids| {
            log.lock().expect("the log is not poisoned").push(ids.to_vec());
            Ok(catalogue.clone())
        });
        let (orders, placing) = recording_placing();

        let input = PlaceOrderInput {
            lines: vec![(mouse.id(), units(2)), (keyboard.id(), units(2)), (mouse.id(), units(1))],
            request_id: Some("req-place".to_owned()),
            idempotency: None,
        };
        let returned = place_order(products, orders)
            .execute(&customer(user), input)
            .await
            .expect("the order is placed");

        let (stored, entry, completion) = placed(&placing);
        let asked_for = asked_for.lock().expect("the log is not poisoned").clone();
        Placed { asked_for, stored, entry, completion, returned }
    }

    #[tokio::test]
    async fn duplicate_lines_are_merged_and_each_product_is_looked_up_once_in_id_order() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "EUR"));

        let placed = place_keyboards_and_mice(UserId::new(), &keyboard, &mouse).await;

        let mut expected = vec![keyboard.id(), mouse.id()];
        expected.sort();
        assert_eq!(placed.asked_for, vec![expected]);
    }

    #[tokio::test]
    async fn a_placed_order_is_stored_pending_payment_with_catalogue_prices_and_its_total() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "EUR"));
        let user = UserId::new();

        let Placed { stored, .. } = place_keyboards_and_mice(user, &keyboard, &mouse).await;

        let mut expected_items = vec![
            OrderItem::new(ProductSnapshot::from(&keyboard), units(2)).expect("in range"),
            OrderItem::new(ProductSnapshot::from(&mouse), units(3)).expect("in range"),
        ];
        expected_items.sort_by_key(OrderItem::product_id);
        assert_eq!(stored.items(), expected_items.as_slice());
        let unit_prices: Vec<(ProductId, Money)> =
            stored.items().iter().map(|item| (item.product_id(), item.unit_price())).collect();
        assert!(unit_prices.contains(&(keyboard.id(), keyboard.price())));
        assert!(unit_prices.contains(&(mouse.id(), mouse.price())));
        assert_eq!(stored.total(), price(2 * 4999 + 3 * 1999, "EUR"));
        assert_eq!(stored.status(), OrderStatus::PendingPayment);
        assert_eq!(stored.user_id(), user);
        assert_eq!(stored.created_at(), now());
        assert_eq!(stored.payment_due_at(), now() + payment_timeout());
        assert_eq!(stored.payment(), None, "no payment exists before the first `pay`");
        assert_eq!(stored.payment_due(), None);
    }

    #[tokio::test]
    async fn placing_an_order_writes_its_first_history_entry_by_the_customer() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "EUR"));
        let user = UserId::new();

        let Placed { stored, entry, .. } = place_keyboards_and_mice(user, &keyboard, &mouse).await;

        assert_eq!(
            entry,
            OrderTransition {
                order_id: stored.id(),
                from: None,
                to: OrderStatus::PendingPayment,
                action: OrderAction::Place,
                actor_id: Some(user),
                reason: None,
                at: now(),
                request_id: Some("req-place".to_owned()),
            }
        );
    }

    #[tokio::test]
    async fn without_an_idempotency_key_the_order_is_placed_fresh_with_no_completion() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "EUR"));

        let placed = place_keyboards_and_mice(UserId::new(), &keyboard, &mouse).await;

        assert_eq!(placed.completion, None);
        let returned = placed.returned.done().expect("the order was placed now, not replayed");
        assert_eq!(seen(&returned), seen(&placed.stored));
    }

    #[tokio::test]
    async fn with_a_new_idempotency_key_the_response_is_recorded_with_the_order() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        keys.expect_release().never();
        keys.expect_update_response().never();
        let (orders, placing) = recording_placing();
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let outcome = place_order_keyed(catalogue_of(vec![keyboard]), orders, keys)
            .execute(&customer(user), input)
            .await
            .expect("the order is placed");

        let (stored, _, completion) = placed(&placing);
        assert_eq!(
            completion,
            Some(Completion { request, lease: lease(), response: created(&stored), at: now() })
        );
        let returned = outcome.done().expect("the order was placed now, not replayed");
        assert_eq!(seen(&returned), seen(&stored));
    }

    #[tokio::test]
    async fn a_key_used_before_for_the_same_request_replays_its_response_and_places_nothing() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let first = stored_response(201, "the first order");
        let keys = keys_claiming(&request, Claim::Replay(first.clone()));
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let outcome = place_order_keyed(never_reading_the_catalogue(), never_placing(), keys)
            .execute(&customer(user), input)
            .await
            .expect("a replay succeeds");

        match outcome {
            Outcome::Replayed(response) => assert_eq!(response, first),
            Outcome::Done(order) => {
                panic!("expected a replay, the order {} was placed", order.id())
            }
        }
    }

    #[tokio::test]
    async fn a_key_still_in_flight_is_refused_with_when_to_retry() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let keys =
            keys_claiming(&request, Claim::InFlight { retry_after: Duration::from_secs(42) });
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let result = place_order_keyed(never_reading_the_catalogue(), never_placing(), keys)
            .execute(&customer(user), input)
            .await;

        assert!(
            matches!(
                result,
                Err(PlaceOrderError::Idempotency(IdempotencyRefusal::InUse { retry_after }))
                    if retry_after == Duration::from_secs(42)
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_key_used_for_another_request_is_refused_as_reused() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let keys = keys_claiming(&request, Claim::Mismatch);
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let result = place_order_keyed(never_reading_the_catalogue(), never_placing(), keys)
            .execute(&customer(user), input)
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Idempotency(IdempotencyRefusal::Reused))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_while_claiming_the_key_is_a_store_error_and_places_nothing() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let mut keys = MockIdempotencyStore::new();
        keys.expect_claim().times(1).returning(|_, _| Err(store_down()));
        keys.expect_release().never();
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let result = place_order_keyed(never_reading_the_catalogue(), never_placing(), keys)
            .execute(&customer(user), input)
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_order_refused_by_the_store_releases_its_key_for_a_retry() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let keyboard_id = keyboard.id();
        let user = UserId::new();
        let request = keyed_request(user);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        expect_release(&mut keys, &request);
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(1).withf(|_, _, completion| completion.is_some()).returning(
            move |_, _, _| {
                Err(PlaceOrderFailure::InsufficientStock {
                    product_id: keyboard_id,
                    requested: 1,
                    available: 0,
                })
            },
        );
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let result = place_order_keyed(catalogue_of(vec![keyboard]), orders, keys)
            .execute(&customer(user), input)
            .await;

        assert!(matches!(result, Err(PlaceOrderError::InsufficientStock { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_released_does_not_hide_why_the_order_failed() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let user = UserId::new();
        let request = keyed_request(user);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        keys.expect_release().times(1).returning(|_, _| Err(store_down()));
        let mut products = MockProductRepository::new();
        products.expect_find_many().times(1).returning(|_| {
            Err(StoreError::Unexpected(anyhow::anyhow!("the catalogue is corrupted")))
        });
        let input =
            PlaceOrderInput { idempotency: Some(idempotent(&request)), ..one_line(&keyboard, 1) };

        let result = place_order_keyed(products, never_placing(), keys)
            .execute(&customer(user), input)
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Store(StoreError::Unexpected(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_invalid_order_is_refused_before_its_key_is_claimed() {
        let user = UserId::new();
        let request = keyed_request(user);
        let input = PlaceOrderInput {
            lines: vec![],
            request_id: None,
            idempotency: Some(idempotent(&request)),
        };

        let result = place_order_keyed(never_reading_the_catalogue(), never_placing(), no_keys())
            .execute(&customer(user), input)
            .await;

        assert!(matches!(result, Err(PlaceOrderError::Invalid(OrderError::NoLines))), "{result:?}");
    }

    #[tokio::test]
    async fn the_system_may_not_place_an_order() {
        let keyboard = product("KB-001", price(4999, "EUR"));

        let result = place_order(never_reading_the_catalogue(), never_placing())
            .execute(&Actor::System, one_line(&keyboard, 1))
            .await;

        assert!(matches!(result, Err(PlaceOrderError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn an_order_without_lines_is_invalid_and_reaches_no_port() {
        let mut clock = MockClock::new();
        clock.expect_now().never();
        let use_case = PlaceOrder::new(
            Arc::new(never_reading_the_catalogue()),
            Arc::new(never_placing()),
            Arc::new(no_keys()),
            Arc::new(clock),
            payment_timeout(),
        );

        let result = use_case
            .execute(
                &customer(UserId::new()),
                PlaceOrderInput { lines: vec![], request_id: None, idempotency: None },
            )
            .await;

        assert!(matches!(result, Err(PlaceOrderError::Invalid(OrderError::NoLines))), "{result:?}");
    }

    #[tokio::test]
    async fn ordering_a_product_that_does_not_exist_is_refused_without_storing_anything() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let missing = product("GONE-001", price(100, "EUR"));
        let input = PlaceOrderInput {
            lines: vec![(keyboard.id(), units(1)), (missing.id(), units(1))],
            request_id: None,
            idempotency: None,
        };

        let result = place_order(catalogue_of(vec![keyboard]), never_placing())
            .execute(&customer(UserId::new()), input)
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::ProductNotFound { product_id }) if product_id == missing.id()),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn ordering_an_archived_product_is_refused_as_unavailable() {
        let retired = archived(product("KB-001", price(4999, "EUR")));

        let result = place_order(catalogue_of(vec![retired.clone()]), never_placing())
            .execute(&customer(UserId::new()), one_line(&retired, 1))
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::ProductUnavailable { product_id }) if product_id == retired.id()),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn products_priced_in_two_currencies_cannot_share_an_order() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "USD"));
        let input = PlaceOrderInput {
            lines: vec![(keyboard.id(), units(1)), (mouse.id(), units(1))],
            request_id: None,
            idempotency: None,
        };

        let result = place_order(catalogue_of(vec![keyboard, mouse]), never_placing())
            .execute(&customer(UserId::new()), input)
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Invalid(OrderError::MixedCurrencies))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn placing_an_order_with_too_little_stock_is_refused_with_the_numbers() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let keyboard_id = keyboard.id();
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(1).returning(move |_, _, _| {
            Err(PlaceOrderFailure::InsufficientStock {
                product_id: keyboard_id,
                requested: 5,
                available: 2,
            })
        });

        let result = place_order(catalogue_of(vec![keyboard.clone()]), orders)
            .execute(&customer(UserId::new()), one_line(&keyboard, 5))
            .await;

        assert!(
            matches!(
                result,
                Err(PlaceOrderError::InsufficientStock { product_id, requested: 5, available: 2 })
                    if product_id == keyboard_id
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_product_archived_while_the_order_was_placed_is_refused_as_unavailable() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let keyboard_id = keyboard.id();
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(1).returning(move |_, _, _| {
            Err(PlaceOrderFailure::ProductUnavailable { product_id: keyboard_id })
        });

        let result = place_order(catalogue_of(vec![keyboard.clone()]), orders)
            .execute(&customer(UserId::new()), one_line(&keyboard, 1))
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::ProductUnavailable { product_id }) if product_id == keyboard_id),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_customer_deleted_while_ordering_is_an_unknown_customer() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(1).returning(|_, _, _| Err(PlaceOrderFailure::UnknownCustomer));

        let result = place_order(catalogue_of(vec![keyboard.clone()]), orders)
            .execute(&customer(UserId::new()), one_line(&keyboard, 1))
            .await;

        assert!(matches!(result, Err(PlaceOrderError::UnknownCustomer)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_reading_the_catalogue_is_a_store_error() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mut products = MockProductRepository::new();
        products.expect_find_many().times(1).returning(|_| Err(store_down()));

        let result = place_order(products, never_placing())
            .execute(&customer(UserId::new()), one_line(&keyboard, 1))
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_while_storing_the_order_is_a_store_error() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mut orders = MockOrderRepository::new();
        orders
            .expect_place()
            .times(1)
            .returning(|_, _, _| Err(PlaceOrderFailure::Store(store_down())));

        let result = place_order(catalogue_of(vec![keyboard.clone()]), orders)
            .execute(&customer(UserId::new()), one_line(&keyboard, 1))
            .await;

        assert!(
            matches!(result, Err(PlaceOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// get_order
// ---------------------------------------------------------------------------------------------

mod get_order {
    use super::*;

    #[tokio::test]
    async fn the_owner_sees_their_order() {
        let owner = UserId::new();
        let stored = paid_order(owner, PaymentStatus::Captured);

        let found = GetOrder::new(Arc::new(orders_holding(&stored)))
            .execute(&customer(owner), stored.id())
            .await
            .expect("the owner sees it");

        assert_eq!(seen(&found), seen(&stored));
    }

    #[tokio::test]
    async fn an_admin_sees_any_customers_order() {
        let stored = order(UserId::new(), OrderStatus::Shipped);

        let found = GetOrder::new(Arc::new(orders_holding(&stored)))
            .execute(&admin(), stored.id())
            .await
            .expect("an admin sees it");

        assert_eq!(seen(&found), seen(&stored));
    }

    #[tokio::test]
    async fn another_customers_order_is_not_found_although_it_exists() {
        let stored = order(UserId::new(), OrderStatus::Paid);

        let result = GetOrder::new(Arc::new(orders_holding(&stored)))
            .execute(&customer(UserId::new()), stored.id())
            .await;

        assert!(matches!(result, Err(GetOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_missing_order_is_not_found() {
        let result = GetOrder::new(Arc::new(orders_holding_nothing()))
            .execute(&admin(), OrderId::new())
            .await;

        assert!(matches!(result, Err(GetOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_reading_an_order_is_a_store_error() {
        let mut orders = MockOrderRepository::new();
        orders.expect_find_by_id().times(1).returning(|_| Err(store_down()));

        let result = GetOrder::new(Arc::new(orders)).execute(&admin(), OrderId::new()).await;

        assert!(
            matches!(result, Err(GetOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// list_orders
// ---------------------------------------------------------------------------------------------

mod list_orders {
    use orderly_application::orders::list_orders::SCOPE;

    use super::*;

    #[tokio::test]
    async fn a_customer_lists_only_their_own_orders_whatever_user_they_ask_for() {
        let me = UserId::new();
        let (queries, asked) = queries_answering(empty_page());
        let filter = OrderFilter { user_id: Some(UserId::new()), status: Some(OrderStatus::Paid) };

        ListOrders::new(Arc::new(queries))
            .execute(&customer(me), filter, ListRequest::default())
            .await
            .expect("a customer may list");

        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].0, OrderFilter { user_id: Some(me), status: Some(OrderStatus::Paid) });
    }

    #[tokio::test]
    async fn a_customer_who_asks_for_no_user_still_lists_only_their_own_orders() {
        let me = UserId::new();
        let (queries, asked) = queries_answering(empty_page());

        ListOrders::new(Arc::new(queries))
            .execute(&customer(me), OrderFilter::default(), ListRequest::default())
            .await
            .expect("a customer may list");

        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].0, OrderFilter { user_id: Some(me), status: None });
    }

    #[tokio::test]
    async fn an_admin_lists_with_the_filter_they_asked_for() {
        let someone = UserId::new();
        let (queries, asked) = queries_answering(empty_page());
        let filter = OrderFilter { user_id: Some(someone), status: Some(OrderStatus::Shipped) };
        let limit = PageLimit::new(5).expect("in range");

        ListOrders::new(Arc::new(queries))
            .execute(&admin(), filter.clone(), ListRequest { limit, cursor: None })
            .await
            .expect("an admin may list");

        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0], (filter, PageRequest { limit, after: None }));
    }

    #[tokio::test]
    async fn an_admin_without_a_filter_lists_everyone_s_orders() {
        let (queries, asked) = queries_answering(empty_page());

        ListOrders::new(Arc::new(queries))
            .execute(&admin(), OrderFilter::default(), ListRequest::default())
            .await
            .expect("an admin may list");

        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].0, OrderFilter::default());
    }

    #[tokio::test]
    async fn the_page_comes_back_with_its_next_cursor_encoded_for_order_lists() {
        let me = UserId::new();
        let orders = vec![order(me, OrderStatus::Paid), order(me, OrderStatus::PendingPayment)];
        let next = Cursor { value: SortValue::None, id: *orders[1].id().as_uuid() };
        let (queries, _) =
            queries_answering(Page { items: orders.clone(), next: Some(next.clone()) });

        let listed = ListOrders::new(Arc::new(queries))
            .execute(&customer(me), OrderFilter::default(), ListRequest::default())
            .await
            .expect("a customer may list");

        assert_eq!(seen_all(&listed.items), seen_all(&orders));
        assert_eq!(listed.next_cursor, Some(next.encode(SCOPE)));
    }

    #[tokio::test]
    async fn the_last_page_has_no_next_cursor() {
        let (queries, _) = queries_answering(empty_page());

        let listed = ListOrders::new(Arc::new(queries))
            .execute(&admin(), OrderFilter::default(), ListRequest::default())
            .await
            .expect("an admin may list");

        assert!(listed.items.is_empty());
        assert_eq!(listed.next_cursor, None);
    }

    #[tokio::test]
    async fn a_cursor_handed_out_by_the_list_continues_after_its_order() {
        let after = Cursor { value: SortValue::None, id: Uuid::now_v7() };
        let (queries, asked) = queries_answering(empty_page());
        let request =
            ListRequest { limit: PageLimit::default(), cursor: Some(after.encode(SCOPE)) };

        ListOrders::new(Arc::new(queries))
            .execute(&admin(), OrderFilter::default(), request)
            .await
            .expect("the cursor is valid");

        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].1.after, Some(after));
    }

    #[tokio::test]
    async fn a_cursor_that_is_not_one_of_this_list_is_refused() {
        let foreign = Cursor { value: SortValue::None, id: Uuid::now_v7() }.encode("products");
        for cursor in ["not a cursor".to_owned(), foreign] {
            let request = ListRequest { limit: PageLimit::default(), cursor: Some(cursor.clone()) };

            let result = ListOrders::new(Arc::new(never_listing()))
                .execute(&admin(), OrderFilter::default(), request)
                .await;

            assert!(
                matches!(result, Err(ListOrdersError::InvalidCursor(InvalidCursor))),
                "{cursor}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_system_may_not_list_orders() {
        let result = ListOrders::new(Arc::new(never_listing()))
            .execute(&Actor::System, OrderFilter::default(), ListRequest::default())
            .await;

        assert!(matches!(result, Err(ListOrdersError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_listing_orders_is_a_store_error() {
        let mut queries = MockOrderQueries::new();
        queries.expect_list().times(1).returning(|_, _| Err(store_down()));

        let result = ListOrders::new(Arc::new(queries))
            .execute(&admin(), OrderFilter::default(), ListRequest::default())
            .await;

        assert!(
            matches!(result, Err(ListOrdersError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// list_user_orders
// ---------------------------------------------------------------------------------------------

mod list_user_orders {
    use orderly_application::{orders::list_orders::SCOPE, ports::MockUserRepository};
    use orderly_domain::{Email, PasswordHash, Role, User, UserName, UserParts};

    use super::*;

    /// A user repository that holds the user `id` (or nobody), asked once.
    fn users_holding(id: UserId, exists: bool) -> Arc<MockUserRepository> {
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().withf(move |asked| *asked == id).times(1).returning(move |id| {
            Ok(exists.then(|| {
                User::restore(UserParts {
                    id,
                    email: Email::parse("ada@example.com").expect("valid"),
                    name: UserName::parse("Ada").expect("valid"),
                    role: Role::Customer,
                    password_hash: PasswordHash::new("$argon2id$...".into()),
                    session_epoch: 0,
                    version: 1,
                    created_at: now(),
                    updated_at: now(),
                })
            }))
        });
        Arc::new(users)
    }

    fn users_never_asked() -> Arc<MockUserRepository> {
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().never();
        Arc::new(users)
    }

    #[tokio::test]
    async fn an_unknown_user_has_no_order_list_even_for_an_admin() {
        let nobody = UserId::new();
        let result = ListUserOrders::new(users_holding(nobody, false), Arc::new(never_listing()))
            .execute(&admin(), nobody, None, ListRequest::default())
            .await;

        assert!(matches!(result, Err(ListUserOrdersError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_customer_lists_their_own_orders_by_user() {
        let me = UserId::new();
        let mine = vec![order(me, OrderStatus::Paid)];
        let (queries, asked) = queries_answering(Page { items: mine.clone(), next: None });

        let listed = ListUserOrders::new(users_holding(me, true), Arc::new(queries))
            .execute(&customer(me), me, Some(OrderStatus::Paid), ListRequest::default())
            .await
            .expect("a customer may list their own orders");

        assert_eq!(seen_all(&listed.items), seen_all(&mine));
        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].0, OrderFilter { user_id: Some(me), status: Some(OrderStatus::Paid) });
    }

    #[tokio::test]
    async fn an_admin_lists_any_users_orders_by_user() {
        let someone = UserId::new();
        let next = Cursor { value: SortValue::None, id: Uuid::now_v7() };
        let (queries, asked) = queries_answering(Page { items: vec![], next: Some(next.clone()) });

        let listed = ListUserOrders::new(users_holding(someone, true), Arc::new(queries))
            .execute(&admin(), someone, None, ListRequest::default())
            .await
            .expect("an admin may list anyone's orders");

        assert_eq!(listed.next_cursor, Some(next.encode(SCOPE)));
        let asked = asked.lock().expect("the log is not poisoned");
        assert_eq!(asked[0].0, OrderFilter { user_id: Some(someone), status: None });
    }

    #[tokio::test]
    async fn another_customers_orders_are_not_found_and_not_even_queried() {
        let result = ListUserOrders::new(users_never_asked(), Arc::new(never_listing()))
            .execute(&customer(UserId::new()), UserId::new(), None, ListRequest::default())
            .await;

        assert!(matches!(result, Err(ListUserOrdersError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_listing_a_users_orders_is_a_store_error() {
        let me = UserId::new();
        let mut queries = MockOrderQueries::new();
        queries.expect_list().times(1).returning(|_, _| Err(store_down()));

        let result = ListUserOrders::new(users_holding(me, true), Arc::new(queries))
            .execute(&customer(me), me, None, ListRequest::default())
            .await;

        assert!(
            matches!(result, Err(ListUserOrdersError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// order_history
// ---------------------------------------------------------------------------------------------

mod order_history {
    use super::*;

    fn never_reading_history() -> MockOrderQueries {
        let mut queries = MockOrderQueries::new();
        queries.expect_history().never();
        queries
    }

    #[tokio::test]
    async fn the_owner_reads_their_orders_history() {
        let owner = UserId::new();
        let stored = order(owner, OrderStatus::Paid);
        let id = stored.id();
        let entries = vec![
            OrderTransition {
                order_id: id,
                from: None,
                to: OrderStatus::PendingPayment,
                action: OrderAction::Place,
                actor_id: Some(owner),
                reason: None,
                at: now() - TimeDelta::hours(1),
                request_id: None,
            },
            OrderTransition {
                order_id: id,
                from: Some(OrderStatus::PendingPayment),
                to: OrderStatus::Paid,
                action: OrderAction::Pay,
                actor_id: Some(owner),
                reason: None,
                at: now() - TimeDelta::minutes(30),
                request_id: None,
            },
        ];
        let mut queries = MockOrderQueries::new();
        let answer = entries.clone();
        queries
            .expect_history()
            .times(1)
            .withf(move |asked| *asked == id)
            .returning(move |_| Ok(answer.clone()));

        let history = OrderHistory::new(Arc::new(orders_holding(&stored)), Arc::new(queries))
            .execute(&customer(owner), id)
            .await
            .expect("the owner reads it");

        assert_eq!(history, entries);
    }

    #[tokio::test]
    async fn another_customer_cannot_read_an_orders_history() {
        let stored = order(UserId::new(), OrderStatus::Paid);

        let result =
            OrderHistory::new(Arc::new(orders_holding(&stored)), Arc::new(never_reading_history()))
                .execute(&customer(UserId::new()), stored.id())
                .await;

        assert!(matches!(result, Err(OrderHistoryError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn the_history_of_a_missing_order_is_not_found() {
        let result = OrderHistory::new(
            Arc::new(orders_holding_nothing()),
            Arc::new(never_reading_history()),
        )
        .execute(&admin(), OrderId::new())
        .await;

        assert!(matches!(result, Err(OrderHistoryError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_reading_the_history_is_a_store_error() {
        let owner = UserId::new();
        let stored = order(owner, OrderStatus::Paid);
        let mut queries = MockOrderQueries::new();
        queries.expect_history().times(1).returning(|_| Err(store_down()));

        let result = OrderHistory::new(Arc::new(orders_holding(&stored)), Arc::new(queries))
            .execute(&customer(owner), stored.id())
            .await;

        assert!(
            matches!(result, Err(OrderHistoryError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// transition_order
// ---------------------------------------------------------------------------------------------

mod transition_order {
    use super::*;

    /// The reference the mocked provider gives a new authorization.
    const NEW_REFERENCE: &str = "auth_new";

    /// The reference under which the provider, asked again, finds an authorization whose answer
    /// was lost.
    const FOUND_REFERENCE: &str = "auth_found";

    fn transition_order(
        orders: MockOrderRepository,
        payments: MockPaymentGateway,
    ) -> TransitionOrder {
        transition_order_keyed(orders, payments, no_keys())
    }

    fn transition_order_keyed(
        orders: MockOrderRepository,
        payments: MockPaymentGateway,
        keys: MockIdempotencyStore,
    ) -> TransitionOrder {
        TransitionOrder::new(
            Arc::new(orders),
            Arc::new(payments),
            Arc::new(keys),
            Arc::new(clock_at(now())),
        )
    }

    fn input(order: &Order, action: OrderAction) -> TransitionOrderInput {
        TransitionOrderInput {
            id: order.id(),
            action,
            reason: None,
            expected_version: None,
            request_id: None,
            idempotency: None,
        }
    }

    /// The response recorded for a move: what a replay sends again.
    fn rendered(moved: &Moved) -> Replay {
        let (order, entry) = moved;
        Replay::new(format!(
            "200 \"{}\" {} by {} with a payment {}",
            order.version(),
            order.status(),
            entry.action,
            order.payment().map_or("none", |payment| payment.status().as_str())
        ))
    }

    fn idempotent(request: &IdempotentRequest) -> Idempotent<Moved> {
        Idempotent { request: request.clone(), render: Arc::new(rendered) }
    }

    /// Makes `payments` expect one authorization of `order`'s total, at its version, answering
    /// `answer`.
    fn expect_authorization(
        payments: &mut MockPaymentGateway,
        order: &Order,
        sequence: Option<&mut Sequence>,
        answer: impl FnOnce() -> Result<String, PaymentError> + Send + 'static,
    ) {
        expect_authorization_with(payments, order, order.version(), sequence, answer);
    }

    /// A gateway that authorizes `order` once with [`NEW_REFERENCE`], in `sequence` (after the
    /// pending record), and is asked nothing else but a capture of that authorization, answered
    /// `capture`.
    fn authorizing_then_capturing(
        order: &Order,
        sequence: &mut Sequence,
        capture: impl FnOnce() -> Result<(), PaymentError> + Send + 'static,
    ) -> MockPaymentGateway {
        let mut payments = MockPaymentGateway::new();
        expect_authorization(&mut payments, order, Some(sequence), || Ok(NEW_REFERENCE.to_owned()));
        let (id, total) = (order.id(), order.total());
        payments
            .expect_capture()
            .times(1)
            .withf(move |order, reference, amount| {
                *order == id && reference == NEW_REFERENCE && *amount == total
            })
            .return_once(move |_, _, _| capture());
        payments.expect_void().never();
        payments.expect_refund().never();
        payments
    }

    /// A gateway whose one authorization of `order`, in `sequence` (after the pending record),
    /// answers `answer`; nothing else is asked.
    fn authorization_failing(
        order: &Order,
        sequence: &mut Sequence,
        answer: impl FnOnce() -> Result<String, PaymentError> + Send + 'static,
    ) -> MockPaymentGateway {
        let mut payments = MockPaymentGateway::new();
        expect_authorization(&mut payments, order, Some(sequence), answer);
        payments.expect_capture().never();
        payments.expect_void().never();
        payments.expect_refund().never();
        payments
    }

    fn never_saving(mut orders: MockOrderRepository) -> MockOrderRepository {
        orders.expect_save_transition().never();
        orders
    }

    fn never_saving_anything(mut orders: MockOrderRepository) -> MockOrderRepository {
        orders.expect_save_transition().never();
        orders.expect_save_payment().never();
        orders
    }

    fn saving_fails_with(
        mut orders: MockOrderRepository,
        error: impl FnOnce() -> OrderWriteError + Send + 'static,
    ) -> MockOrderRepository {
        orders.expect_save_transition().times(1).return_once(move |_, _, _, _| Err(error()));
        orders
    }

    /// An unreachable provider with a retry hint, which the caller must receive (the settlement
    /// tests' unreachable provider gives none, so theirs stays in `settle_payments.rs`).
    fn unavailable() -> PaymentError {
        PaymentError::Unavailable {
            retry_after: Some(Duration::from_secs(30)),
            source: anyhow::anyhow!("circuit breaker open"),
        }
    }

    /// A stored order of `owner`, pending payment, whose last `pay` recorded its authorization
    /// asked with attempt [`STORED_VERSION`] and never got the provider's answer: at
    /// `STORED_VERSION + 1`, its payment `pending`.
    fn order_with_pending_payment(owner: UserId) -> Order {
        let mut lost = order(owner, OrderStatus::PendingPayment);
        lost.record_authorization_asked(STORED_VERSION, now() - TimeDelta::minutes(5))
            .expect("an order pending payment records an authorization asked");
        lost
    }

    fn done(outcome: Outcome<Moved>) -> Moved {
        match outcome {
            Outcome::Done(moved) => moved,
            Outcome::Replayed(response) => {
                panic!("expected a fresh move, got a replay {response:?}")
            }
        }
    }

    // --- pay -------------------------------------------------------------------------------

    #[tokio::test]
    async fn paying_authorizes_the_total_then_saves_the_order_paid_then_captures() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let (id, total) = (pending.id(), pending.total());
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        let mut payments = MockPaymentGateway::new();
        expect_authorization(&mut payments, &pending, Some(&mut sequence), || {
            Ok(NEW_REFERENCE.to_owned())
        });
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        payments
            .expect_capture()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference, amount| {
                *order == id && reference == NEW_REFERENCE && *amount == total
            })
            .returning(|_, _, _| Ok(()));
        let payment_saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_void().never();
        payments.expect_refund().never();
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION),
            request_id: Some("req-pay".to_owned()),
            ..input(&pending, OrderAction::Pay)
        };

        let outcome = transition_order(orders, payments)
            .execute(&customer(owner), request)
            .await
            .expect("the owner may pay");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Paid);
        assert_eq!(
            payment_of(&saved.order),
            payment_is(PaymentStatus::Authorized, Some(NEW_REFERENCE))
        );
        // The pending record moved the version one step (to STORED_VERSION + 1) before the
        // provider was asked: the move is guarded by that version and makes the next one; the
        // capture is one step later again.
        assert_eq!(saved.order.version(), STORED_VERSION + 2);
        assert_eq!(saved.order.updated_at(), now());
        assert_eq!(
            saved.entry,
            OrderTransition {
                order_id: id,
                from: Some(OrderStatus::PendingPayment),
                to: OrderStatus::Paid,
                action: OrderAction::Pay,
                actor_id: Some(owner),
                reason: None,
                at: now(),
                request_id: Some("req-pay".to_owned()),
            }
        );
        assert!(!saved.entry.releases_stock());
        assert_eq!(saved.expected_version, STORED_VERSION + 1);
        assert_eq!(saved.completion, None);
        let (captured, expected_version) = only_payment_save(&payment_saves);
        assert_eq!(captured.status(), OrderStatus::Paid);
        assert_eq!(payment_of(&captured), payment_is(PaymentStatus::Captured, Some(NEW_REFERENCE)));
        assert_eq!(captured.version(), STORED_VERSION + 3);
        assert_eq!(expected_version, STORED_VERSION + 2);
        let (returned, returned_entry) = done(outcome);
        assert_eq!(seen(&returned), seen(&captured));
        assert_eq!(returned_entry, saved.entry);
    }

    #[tokio::test]
    async fn an_order_whose_last_payment_was_declined_is_paid_as_a_new_attempt_at_its_version() {
        let owner = UserId::new();
        let mut pending = order(owner, OrderStatus::PendingPayment);
        pending
            .record_declined_payment(now() - TimeDelta::minutes(2))
            .expect("a pending order records a decline");
        // The decline moved the order to STORED_VERSION + 1: that is the new attempt, asked
        // (in `expect_authorization`) after the pending record of it.
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        let saves = record_saves(&mut orders, 1);
        let payment_saves = record_payment_saves(&mut orders, 1);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Ok(()));

        transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await
            .expect("the owner may pay again");

        let saved = only_save(&saves);
        // The pending record of the new attempt moved the version one more step.
        assert_eq!(saved.expected_version, STORED_VERSION + 2);
        assert_eq!(
            payment_of(&saved.order),
            payment_is(PaymentStatus::Authorized, Some(NEW_REFERENCE))
        );
        let (captured, _) = only_payment_save(&payment_saves);
        assert_eq!(payment_of(&captured), payment_is(PaymentStatus::Captured, Some(NEW_REFERENCE)));
    }

    #[tokio::test]
    async fn an_admin_may_pay_a_customers_order() {
        let pending = order(UserId::new(), OrderStatus::PendingPayment);
        let actor = admin();
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        let saves = record_saves(&mut orders, 1);
        record_payment_saves(&mut orders, 1);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Ok(()));

        transition_order(orders, payments)
            .execute(&actor, input(&pending, OrderAction::Pay))
            .await
            .expect("an admin may pay");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Paid);
        assert_eq!(saved.entry.actor_id, actor.user_id());
    }

    #[tokio::test]
    async fn a_declined_payment_is_recorded_on_the_order_as_failed_and_reported() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = never_saving(orders_paying(&pending, &mut sequence));
        let payments = authorization_failing(&pending, &mut sequence, || {
            Err(PaymentError::Declined("card expired".into()))
        });
        let payment_saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));

        let result = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(
            matches!(&result, Err(TransitionOrderError::PaymentDeclined(why)) if why == "card expired"),
            "{result:?}"
        );
        let (declined, expected_version) = only_payment_save(&payment_saves);
        assert_eq!(declined.id(), pending.id());
        assert_eq!(declined.status(), OrderStatus::PendingPayment, "the order may be paid again");
        assert_eq!(payment_of(&declined), payment_is(PaymentStatus::Failed, None));
        // The pending record made STORED_VERSION + 1: the decline is guarded by it and makes
        // the next one, a new attempt.
        assert_eq!(declined.version(), STORED_VERSION + 2, "the next attempt is a new one");
        assert_eq!(declined.payment().and_then(Payment::attempt), None, "no longer pending");
        assert_eq!(declined.updated_at(), now());
        assert_eq!(expected_version, STORED_VERSION + 1);
    }

    #[tokio::test]
    async fn a_declined_payment_that_cannot_be_recorded_is_still_reported_as_declined() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = never_saving(orders_paying(&pending, &mut sequence));
        let payments = authorization_failing(&pending, &mut sequence, || {
            Err(PaymentError::Declined("limit reached".into()))
        });
        // The record of the decline (after the pending one) is refused.
        orders
            .expect_save_payment()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Err(OrderWriteError::Stale));

        let result = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(
            matches!(&result, Err(TransitionOrderError::PaymentDeclined(why)) if why == "limit reached"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_payment_gateway_is_reported_as_unavailable_and_only_the_pending_payment_is_saved()
     {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // The pending record is the one save (its expectation allows one call): no transition,
        // no other payment record.
        let orders = never_saving(orders_paying(&pending, &mut sequence));
        let payments = authorization_failing(&pending, &mut sequence, || Err(unavailable()));

        let result = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaymentUnavailable { retry_after: Some(after), .. })
                    if after == Duration::from_secs(30)
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_unexpected_payment_failure_is_unexpected_and_only_the_pending_payment_is_saved() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // The pending record is the one save: what the provider did is unknown, so the payment
        // stays pending for a retry or a reconciliation to find out.
        let orders = never_saving(orders_paying(&pending, &mut sequence));
        let payments = authorization_failing(&pending, &mut sequence, || {
            Err(PaymentError::Unexpected(anyhow::anyhow!("bad response")))
        });

        let result = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Unexpected(_))), "{result:?}");
    }

    #[tokio::test]
    async fn paying_after_the_deadline_is_refused_before_the_provider_is_asked() {
        let owner = UserId::new();
        let due_at = now() - TimeDelta::minutes(1);
        let overdue = order_due(owner, OrderStatus::PendingPayment, due_at);

        let result =
            transition_order(never_saving_anything(orders_holding(&overdue)), no_payments())
                .execute(&customer(owner), input(&overdue, OrderAction::Pay))
                .await;

        match result {
            Err(TransitionOrderError::PaymentOverdue { due_at: deadline, allowed }) => {
                assert_eq!((deadline, allowed), (due_at, vec![OrderAction::Cancel]));
            }
            other => panic!("expected an overdue payment, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn paying_a_paid_order_is_refused_before_the_provider_is_asked() {
        let owner = UserId::new();
        let paid = paid_order(owner, PaymentStatus::Captured);

        let result = transition_order(never_saving_anything(orders_holding(&paid)), no_payments())
            .execute(&customer(owner), input(&paid, OrderAction::Pay))
            .await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::InvalidTransition {
                    from: OrderStatus::Paid,
                    action: OrderAction::Pay,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_capture_the_provider_cannot_make_now_is_left_owed_and_the_payment_still_succeeds() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record (its expectation allows one call).
        let mut orders = orders_paying(&pending, &mut sequence);
        let saves = record_saves(&mut orders, 1);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Err(unavailable()));

        let outcome = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await
            .expect("the payment is stored; the capture is the job's");

        let (returned, _) = done(outcome);
        assert_eq!(seen(&returned), seen(&only_save(&saves).order));
        assert_eq!(
            payment_of(&returned),
            payment_is(PaymentStatus::Authorized, Some(NEW_REFERENCE))
        );
        assert_eq!(returned.payment_due(), Some(orderly_domain::PaymentDue::Capture));
    }

    #[tokio::test]
    async fn a_capture_the_provider_declines_records_the_payment_as_failed() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        record_saves(&mut orders, 1);
        let payment_saves = record_payment_saves(&mut orders, 1);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || {
            Err(PaymentError::Declined("authorization lapsed".into()))
        });

        let outcome = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await
            .expect("the move itself is stored");

        let (failed, expected_version) = only_payment_save(&payment_saves);
        assert_eq!(failed.status(), OrderStatus::Paid);
        assert_eq!(payment_of(&failed), payment_is(PaymentStatus::Failed, Some(NEW_REFERENCE)));
        assert_eq!(failed.payment_due(), None, "a person follows up, not the job");
        // The pending record (STORED_VERSION + 1) and the move (+ 2) came before.
        assert_eq!(expected_version, STORED_VERSION + 2);
        assert_eq!(seen(&done(outcome).0), seen(&failed));
    }

    #[tokio::test]
    async fn a_capture_that_cannot_be_recorded_returns_the_order_as_stored() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        let saves = record_saves(&mut orders, 1);
        // The record of the capture (after the pending one) fails.
        orders
            .expect_save_payment()
            .times(1)
            .returning(|_, _| Err(OrderWriteError::Store(store_down())));
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Ok(()));

        let outcome = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await
            .expect("the payment is stored; recording the capture is the job's");

        let (returned, _) = done(outcome);
        assert_eq!(seen(&returned), seen(&only_save(&saves).order));
    }

    #[tokio::test]
    async fn an_order_that_already_holds_a_payment_is_refused_before_a_new_authorization_is_asked()
    {
        // Stored data the state machine never produces: pending, yet holding money. The pending
        // record refuses it (the payment holds money), so no new authorization is asked for,
        // and there is none to void (before issue 21, one was asked for, then voided).
        let owner = UserId::new();
        let odd = order_with(
            owner,
            OrderStatus::PendingPayment,
            now() + TimeDelta::minutes(30),
            Some(PaymentStatus::Authorized),
        );

        let result = transition_order(never_saving_anything(orders_holding(&odd)), no_payments())
            .execute(&customer(owner), input(&odd, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Unexpected(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_authorization_for_an_order_deleted_before_the_save_is_voided() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let id = pending.id();
        let mut sequence = Sequence::new();
        let orders =
            saving_fails_with(orders_paying(&pending, &mut sequence), || OrderWriteError::NotFound);
        let mut payments = MockPaymentGateway::new();
        expect_authorization(&mut payments, &pending, Some(&mut sequence), || {
            Ok(NEW_REFERENCE.to_owned())
        });
        payments
            .expect_void()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference| *order == id && reference == NEW_REFERENCE)
            .returning(|_, _| Ok(()));

        let result = transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    // --- unknown outcomes (issue 21): the payment is recorded pending before the provider is
    // asked ---------------------------------------------------------------------------------

    #[tokio::test]
    async fn paying_records_the_payment_pending_at_the_loaded_version_before_asking_the_provider() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = orders_holding(&pending);
        let recorded = expect_pending_record(&mut orders, &pending, &mut sequence);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Ok(()));
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        record_payment_saves(&mut orders, 1);

        transition_order(orders, payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await
            .expect("the owner may pay");

        let (recorded, expected_version) = only_payment_save(&recorded);
        assert_eq!(expected_version, STORED_VERSION, "guarded by the version loaded");
        assert_eq!(recorded.id(), pending.id());
        assert_eq!(recorded.status(), OrderStatus::PendingPayment, "the order is not paid yet");
        assert_eq!(recorded.version(), STORED_VERSION + 1);
        assert_eq!(recorded.updated_at(), now());
        let payment = recorded.payment().expect("the payment is recorded");
        assert_eq!(payment.status(), PaymentStatus::Pending);
        assert_eq!(payment.attempt(), Some(STORED_VERSION), "the attempt is the loaded version");
        assert_eq!(payment.reference(), None, "the provider has not answered");
        assert_eq!(payment.amount(), order_total());
        assert_eq!(payment.created_at(), now());
        assert_eq!(recorded.payment_due(), None, "still payable: nothing is owed to reconcile");
        assert_eq!(only_save(&saves).expected_version, STORED_VERSION + 1);
    }

    #[tokio::test]
    async fn with_a_key_an_unreachable_provider_leaves_the_payment_pending_and_releases_the_key() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = keyed_request(owner);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        expect_release(&mut keys, &request);
        keys.expect_update_response().never();
        let mut sequence = Sequence::new();
        // The pending record is the one save: no transition, no other payment record.
        let mut orders = never_saving(orders_holding(&pending));
        let recorded = expect_pending_record(&mut orders, &pending, &mut sequence);
        let payments = authorization_failing(&pending, &mut sequence, || Err(unavailable()));
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&pending, OrderAction::Pay)
        };

        let result =
            transition_order_keyed(orders, payments, keys).execute(&customer(owner), keyed).await;

        assert!(
            matches!(result, Err(TransitionOrderError::PaymentUnavailable { .. })),
            "{result:?}"
        );
        let (left, expected_version) = only_payment_save(&recorded);
        assert_eq!(expected_version, STORED_VERSION);
        assert_eq!(left.status(), OrderStatus::PendingPayment);
        assert_eq!(left.version(), STORED_VERSION + 1);
        assert_eq!(left.payment().map(Payment::status), Some(PaymentStatus::Pending));
        assert_eq!(
            left.payment().and_then(Payment::attempt),
            Some(STORED_VERSION),
            "a retry asks again with the same attempt"
        );
    }

    #[tokio::test]
    async fn paying_an_order_whose_payment_is_pending_asks_again_with_its_attempt_without_recording_it_again()
     {
        let owner = UserId::new();
        let lost = order_with_pending_payment(owner);
        let (id, total) = (lost.id(), lost.total());
        let mut sequence = Sequence::new();
        let mut orders = orders_holding(&lost);
        let mut payments = MockPaymentGateway::new();
        // The same attempt as the lost request's (not the order's version, STORED_VERSION + 1):
        // the same idempotent request, so a hold it made is found rather than doubled.
        expect_authorization_with(
            &mut payments,
            &lost,
            STORED_VERSION,
            Some(&mut sequence),
            || Ok(NEW_REFERENCE.to_owned()),
        );
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        payments
            .expect_capture()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference, amount| {
                *order == id && reference == NEW_REFERENCE && *amount == total
            })
            .returning(|_, _, _| Ok(()));
        // The one payment save is the capture's: the pending record is not saved again.
        let payment_saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_void().never();
        payments.expect_refund().never();
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION + 1),
            ..input(&lost, OrderAction::Pay)
        };

        let (returned, entry) = done(
            transition_order(orders, payments)
                .execute(&customer(owner), request)
                .await
                .expect("the owner may pay again"),
        );

        let saved = only_save(&saves);
        assert_eq!(saved.expected_version, STORED_VERSION + 1, "guarded by the version loaded");
        assert_eq!(saved.order.status(), OrderStatus::Paid);
        assert_eq!(saved.order.version(), STORED_VERSION + 2);
        assert_eq!(
            payment_of(&saved.order),
            payment_is(PaymentStatus::Authorized, Some(NEW_REFERENCE))
        );
        let (captured, expected_version) = only_payment_save(&payment_saves);
        assert_eq!(payment_of(&captured), payment_is(PaymentStatus::Captured, Some(NEW_REFERENCE)));
        assert_eq!(
            (captured.version(), expected_version),
            (STORED_VERSION + 3, STORED_VERSION + 2)
        );
        assert_eq!(seen(&returned), seen(&captured));
        assert_eq!(entry, saved.entry);
    }

    #[tokio::test]
    async fn a_pending_record_that_loses_a_race_is_a_conflict_and_nothing_is_authorized() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = never_saving(orders_holding(&pending));
        orders
            .expect_save_payment()
            .times(1)
            .withf(|order, expected_version| {
                order.payment().map(Payment::status) == Some(PaymentStatus::Pending)
                    && *expected_version == STORED_VERSION
            })
            .returning(|_, _| Err(OrderWriteError::Stale));

        let result = transition_order(orders, no_payments())
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn with_if_match_a_pending_record_that_loses_a_race_is_a_version_mismatch_naming_the_current_version()
     {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        // Its owner cancelled it between this request's load and its pending record.
        let mut cancelled = pending.clone();
        cancelled
            .apply(OrderAction::Cancel, &customer(owner), None, now())
            .expect("the owner cancels");
        let mut orders = MockOrderRepository::new();
        let mut answers = vec![pending.clone(), cancelled].into_iter();
        orders.expect_find_by_id().times(2).returning(move |_| Ok(answers.next()));
        orders.expect_save_transition().never();
        orders
            .expect_save_payment()
            .times(1)
            .withf(|order, expected_version| {
                order.payment().map(Payment::status) == Some(PaymentStatus::Pending)
                    && *expected_version == STORED_VERSION
            })
            .returning(|_, _| Err(OrderWriteError::Stale));
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION),
            ..input(&pending, OrderAction::Pay)
        };

        let result =
            transition_order(orders, no_payments()).execute(&customer(owner), request).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 1
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn cancelling_an_order_whose_payment_is_pending_finds_the_authorization_and_voids_it() {
        let owner = UserId::new();
        let lost = order_with_pending_payment(owner);
        let id = lost.id();
        let mut sequence = Sequence::new();
        let mut orders = orders_holding(&lost);
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        let mut payments = MockPaymentGateway::new();
        expect_authorization_with(
            &mut payments,
            &lost,
            STORED_VERSION,
            Some(&mut sequence),
            || Ok(FOUND_REFERENCE.to_owned()),
        );
        let found = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments
            .expect_void()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference| *order == id && reference == FOUND_REFERENCE)
            .returning(|_, _| Ok(()));
        let voided = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_capture().never();
        payments.expect_refund().never();

        let (cancelled, entry) = done(
            transition_order(orders, payments)
                .execute(&customer(owner), input(&lost, OrderAction::Cancel))
                .await
                .expect("the owner may cancel an order pending payment"),
        );

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Cancelled);
        assert_eq!(
            saved.order.payment().map(Payment::status),
            Some(PaymentStatus::Pending),
            "the cancellation is stored first, its payment still pending"
        );
        assert_eq!(saved.order.payment_due(), Some(orderly_domain::PaymentDue::Reconcile));
        assert_eq!(
            (saved.order.version(), saved.expected_version),
            (STORED_VERSION + 2, STORED_VERSION + 1)
        );
        assert!(saved.entry.releases_stock());
        let (found, found_at) = only_payment_save(&found);
        assert_eq!(found.status(), OrderStatus::Cancelled);
        assert_eq!(
            payment_of(&found),
            payment_is(PaymentStatus::Authorized, Some(FOUND_REFERENCE))
        );
        assert_eq!((found.version(), found_at), (STORED_VERSION + 3, STORED_VERSION + 2));
        let (voided, voided_at) = only_payment_save(&voided);
        assert_eq!(payment_of(&voided), payment_is(PaymentStatus::Voided, Some(FOUND_REFERENCE)));
        assert_eq!((voided.version(), voided_at), (STORED_VERSION + 4, STORED_VERSION + 3));
        assert_eq!(voided.payment_due(), None);
        assert_eq!(cancelled.status(), OrderStatus::Cancelled);
        assert_eq!(
            payment_of(&cancelled),
            payment_is(PaymentStatus::Voided, Some(FOUND_REFERENCE))
        );
        assert_eq!(seen(&cancelled), seen(&voided));
        assert_eq!(entry, saved.entry);
    }

    #[tokio::test]
    async fn cancelling_an_order_whose_pending_authorization_the_provider_declines_records_it_failed()
     {
        let owner = UserId::new();
        let lost = order_with_pending_payment(owner);
        let mut sequence = Sequence::new();
        let mut orders = orders_holding(&lost);
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        let mut payments = MockPaymentGateway::new();
        expect_authorization_with(
            &mut payments,
            &lost,
            STORED_VERSION,
            Some(&mut sequence),
            || Err(PaymentError::Declined("card expired".into())),
        );
        let failed = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_void().never();
        payments.expect_capture().never();
        payments.expect_refund().never();

        let (cancelled, _) = done(
            transition_order(orders, payments)
                .execute(&customer(owner), input(&lost, OrderAction::Cancel))
                .await
                .expect("the owner may cancel an order pending payment"),
        );

        assert_eq!(only_save(&saves).order.status(), OrderStatus::Cancelled);
        let (failed, failed_at) = only_payment_save(&failed);
        assert_eq!(failed.status(), OrderStatus::Cancelled);
        assert_eq!(payment_of(&failed), payment_is(PaymentStatus::Failed, None));
        assert_eq!((failed.version(), failed_at), (STORED_VERSION + 3, STORED_VERSION + 2));
        assert_eq!(failed.payment_due(), None, "nothing is held, nothing to void");
        assert_eq!(seen(&cancelled), seen(&failed));
    }

    #[tokio::test]
    async fn cancelling_an_order_whose_pending_authorization_cannot_be_asked_about_now_leaves_it_owed()
     {
        let owner = UserId::new();
        let lost = order_with_pending_payment(owner);
        let mut orders = orders_holding(&lost);
        let saves = record_saves(&mut orders, 1);
        orders.expect_save_payment().never();
        let mut payments = MockPaymentGateway::new();
        expect_authorization_with(
            &mut payments,
            &lost,
            STORED_VERSION,
            None,
            || Err(unavailable()),
        );
        payments.expect_void().never();
        payments.expect_capture().never();
        payments.expect_refund().never();

        let (cancelled, _) = done(
            transition_order(orders, payments)
                .execute(&customer(owner), input(&lost, OrderAction::Cancel))
                .await
                .expect("the cancellation is stored; the reconciliation is the job's"),
        );

        assert_eq!(cancelled.status(), OrderStatus::Cancelled);
        assert_eq!(cancelled.payment().map(Payment::status), Some(PaymentStatus::Pending));
        assert_eq!(cancelled.payment_due(), Some(orderly_domain::PaymentDue::Reconcile));
        assert_eq!(seen(&cancelled), seen(&only_save(&saves).order));
    }

    // --- cancel, ship, deliver -------------------------------------------------------------

    #[tokio::test]
    async fn an_admin_cancelling_a_captured_order_saves_it_cancelled_then_refunds_and_records_it() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let (id, total) = (paid.id(), paid.total());
        let mut sequence = Sequence::new();
        let mut orders = orders_holding(&paid);
        let saves = record_saves_in(&mut orders, 1, Some(&mut sequence));
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_refund()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference, amount| {
                *order == id && reference == STORED_REFERENCE && *amount == total
            })
            .returning(|_, _, _| Ok(()));
        let payment_saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_authorize().never();
        payments.expect_capture().never();
        payments.expect_void().never();
        let request = TransitionOrderInput {
            reason: Some(reason("out of stock at the warehouse")),
            ..input(&paid, OrderAction::Cancel)
        };

        let outcome = transition_order(orders, payments)
            .execute(&admin(), request)
            .await
            .expect("an admin may cancel a paid order");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Cancelled);
        assert_eq!(
            payment_of(&saved.order),
            payment_is(PaymentStatus::RefundPending, Some(STORED_REFERENCE)),
            "the refund is owed in the same transaction as the cancellation"
        );
        assert!(saved.entry.releases_stock());
        assert_eq!(saved.entry.reason, Some(reason("out of stock at the warehouse")));
        assert_eq!(saved.expected_version, STORED_VERSION);
        let (refunded, expected_version) = only_payment_save(&payment_saves);
        assert_eq!(refunded.status(), OrderStatus::Cancelled);
        assert_eq!(
            payment_of(&refunded),
            payment_is(PaymentStatus::Refunded, Some(STORED_REFERENCE))
        );
        assert_eq!(refunded.payment_due(), None);
        assert_eq!(
            (refunded.version(), expected_version),
            (STORED_VERSION + 2, STORED_VERSION + 1)
        );
        assert_eq!(seen(&done(outcome).0), seen(&refunded));
    }

    #[tokio::test]
    async fn a_refund_the_provider_cannot_make_now_stays_owed_and_the_cancellation_stands() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let mut orders = orders_holding(&paid);
        record_saves(&mut orders, 1);
        orders.expect_save_payment().never();
        let mut payments = MockPaymentGateway::new();
        payments.expect_refund().times(1).returning(|_, _, _| Err(unavailable()));

        let outcome = transition_order(orders, payments)
            .execute(&admin(), input(&paid, OrderAction::Cancel))
            .await
            .expect("the cancellation is stored; the refund is the job's");

        let (cancelled, _) = done(outcome);
        assert_eq!(cancelled.status(), OrderStatus::Cancelled);
        assert_eq!(
            payment_of(&cancelled),
            payment_is(PaymentStatus::RefundPending, Some(STORED_REFERENCE))
        );
        assert_eq!(cancelled.payment_due(), Some(orderly_domain::PaymentDue::Refund));
    }

    #[tokio::test]
    async fn an_admin_cancelling_a_paid_order_not_yet_captured_voids_the_hold() {
        let paid = paid_order(UserId::new(), PaymentStatus::Authorized);
        let id = paid.id();
        let mut orders = orders_holding(&paid);
        let saves = record_saves(&mut orders, 1);
        let payment_saves = record_payment_saves(&mut orders, 1);
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_void()
            .times(1)
            .withf(move |order, reference| *order == id && reference == STORED_REFERENCE)
            .returning(|_, _| Ok(()));
        payments.expect_capture().never();
        payments.expect_refund().never();

        transition_order(orders, payments)
            .execute(&admin(), input(&paid, OrderAction::Cancel))
            .await
            .expect("an admin may cancel a paid order");

        let saved = only_save(&saves);
        assert_eq!(
            payment_of(&saved.order),
            payment_is(PaymentStatus::Authorized, Some(STORED_REFERENCE))
        );
        let (voided, _) = only_payment_save(&payment_saves);
        assert_eq!(payment_of(&voided), payment_is(PaymentStatus::Voided, Some(STORED_REFERENCE)));
    }

    #[tokio::test]
    async fn an_admin_ships_a_captured_order_without_reaching_the_provider() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let actor = admin();
        let mut orders = orders_holding(&paid);
        let saves = record_saves(&mut orders, 1);
        orders.expect_save_payment().never();

        let outcome = transition_order(orders, no_payments())
            .execute(&actor, input(&paid, OrderAction::Ship))
            .await
            .expect("an admin may ship");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Shipped);
        assert_eq!(saved.order.version(), STORED_VERSION + 1);
        assert_eq!(saved.entry.from, Some(OrderStatus::Paid));
        assert_eq!(saved.entry.to, OrderStatus::Shipped);
        assert_eq!(saved.entry.actor_id, actor.user_id());
        assert_eq!(saved.expected_version, STORED_VERSION);
        assert_eq!(saved.completion, None);
        assert_eq!(payment_of(&saved.order), payment_of(&paid));
        assert!(!saved.entry.releases_stock());
        assert_eq!(seen(&done(outcome).0), seen(&saved.order));
    }

    #[tokio::test]
    async fn shipping_an_order_whose_capture_is_still_owed_captures_it() {
        let paid = paid_order(UserId::new(), PaymentStatus::Authorized);
        let id = paid.id();
        let mut orders = orders_holding(&paid);
        record_saves(&mut orders, 1);
        let payment_saves = record_payment_saves(&mut orders, 1);
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_capture()
            .times(1)
            .withf(move |order, reference, _| *order == id && reference == STORED_REFERENCE)
            .returning(|_, _, _| Ok(()));

        transition_order(orders, payments)
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await
            .expect("an admin may ship");

        let (captured, _) = only_payment_save(&payment_saves);
        assert_eq!(captured.status(), OrderStatus::Shipped);
        assert_eq!(
            payment_of(&captured),
            payment_is(PaymentStatus::Captured, Some(STORED_REFERENCE))
        );
    }

    #[tokio::test]
    async fn an_admin_delivers_a_shipped_order_without_reaching_the_provider() {
        let mut shipped = paid_order(UserId::new(), PaymentStatus::Captured);
        shipped.apply(OrderAction::Ship, &admin(), None, now()).expect("an admin ships");
        let mut orders = orders_holding(&shipped);
        let saves = record_saves(&mut orders, 1);

        let (delivered, entry) = done(
            transition_order(orders, no_payments())
                .execute(&admin(), input(&shipped, OrderAction::Deliver))
                .await
                .expect("an admin may deliver"),
        );

        assert_eq!(delivered.status(), OrderStatus::Delivered);
        assert_eq!(entry.action, OrderAction::Deliver);
        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Delivered);
        assert_eq!(saved.expected_version, STORED_VERSION + 1);
    }

    #[tokio::test]
    async fn the_owner_cancels_their_pending_order_with_nothing_to_give_back() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = orders_holding(&pending);
        let saves = record_saves(&mut orders, 1);
        orders.expect_save_payment().never();

        transition_order(orders, no_payments())
            .execute(&customer(owner), input(&pending, OrderAction::Cancel))
            .await
            .expect("the owner may cancel a pending order");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Cancelled);
        assert_eq!(saved.order.payment(), None);
        assert_eq!(saved.order.payment_due(), None);
        assert!(saved.entry.releases_stock());
        assert_eq!(saved.entry.actor_id, Some(owner));
        assert_eq!(saved.expected_version, STORED_VERSION);
    }

    // --- refusals --------------------------------------------------------------------------

    #[tokio::test]
    async fn another_customers_order_is_not_found_and_left_alone() {
        let pending = order(UserId::new(), OrderStatus::PendingPayment);

        let result = transition_order(never_saving(orders_holding(&pending)), no_payments())
            .execute(&customer(UserId::new()), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn moving_a_missing_order_is_not_found() {
        let pending = order(UserId::new(), OrderStatus::PendingPayment);

        let result = transition_order(never_saving(orders_holding_nothing()), no_payments())
            .execute(&admin(), input(&pending, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_customer_shipping_their_paid_order_is_forbidden() {
        let owner = UserId::new();
        let paid = paid_order(owner, PaymentStatus::Captured);

        let result = transition_order(never_saving(orders_holding(&paid)), no_payments())
            .execute(&customer(owner), input(&paid, OrderAction::Ship))
            .await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::Forbidden {
                    from: OrderStatus::Paid,
                    action: OrderAction::Ship
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn cancelling_a_cancelled_order_is_an_invalid_transition_with_nothing_allowed() {
        let cancelled = order(UserId::new(), OrderStatus::Cancelled);

        let result = transition_order(never_saving(orders_holding(&cancelled)), no_payments())
            .execute(&admin(), input(&cancelled, OrderAction::Cancel))
            .await;

        match result {
            Err(TransitionOrderError::InvalidTransition { from, action, allowed }) => {
                assert_eq!(
                    (from, action, allowed),
                    (OrderStatus::Cancelled, OrderAction::Cancel, vec![])
                );
            }
            other => panic!("expected an invalid transition, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_owner_shipping_a_pending_order_is_told_they_may_pay_or_cancel() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);

        let result = transition_order(never_saving(orders_holding(&pending)), no_payments())
            .execute(&customer(owner), input(&pending, OrderAction::Ship))
            .await;

        match result {
            Err(TransitionOrderError::InvalidTransition { from, action, allowed }) => {
                assert_eq!(
                    (from, action, allowed),
                    (
                        OrderStatus::PendingPayment,
                        OrderAction::Ship,
                        vec![OrderAction::Pay, OrderAction::Cancel]
                    )
                );
            }
            other => panic!("expected an invalid transition, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_customer_may_not_expire_even_an_overdue_order() {
        let owner = UserId::new();
        let overdue = order_due(owner, OrderStatus::PendingPayment, now() - TimeDelta::hours(1));

        let result = transition_order(never_saving(orders_holding(&overdue)), no_payments())
            .execute(&customer(owner), input(&overdue, OrderAction::Expire))
            .await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::Forbidden {
                    from: OrderStatus::PendingPayment,
                    action: OrderAction::Expire
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_stale_expected_version_is_refused_before_any_authorization() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION - 1),
            ..input(&pending, OrderAction::Pay)
        };

        let result =
            transition_order(never_saving_anything(orders_holding(&pending)), no_payments())
                .execute(&customer(owner), request)
                .await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION - 1 && current == STORED_VERSION
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_order_moved_concurrently_is_a_conflict() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let orders = saving_fails_with(orders_holding(&paid), || OrderWriteError::Stale);

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn with_if_match_an_order_moved_after_the_check_is_a_version_mismatch_naming_the_current_version()
     {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        // Another request shipped it between this one's check and its save.
        let mut shipped = paid.clone();
        shipped.apply(OrderAction::Ship, &admin(), None, now()).expect("an admin ships");
        let mut orders = MockOrderRepository::new();
        let mut answers = vec![paid.clone(), shipped].into_iter();
        orders.expect_find_by_id().times(2).returning(move |_| Ok(answers.next()));
        orders
            .expect_save_transition()
            .times(1)
            .returning(|_, _, _, _| Err(OrderWriteError::Stale));
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION),
            ..input(&paid, OrderAction::Ship)
        };

        let result = transition_order(orders, no_payments()).execute(&admin(), request).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 1
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_order_deleted_before_the_save_is_not_found() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let orders = saving_fails_with(orders_holding(&paid), || OrderWriteError::NotFound);

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_saving_a_transition_is_a_store_error() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let orders =
            saving_fails_with(orders_holding(&paid), || OrderWriteError::Store(store_down()));

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(
            matches!(result, Err(TransitionOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    // --- idempotency keys ------------------------------------------------------------------

    #[tokio::test]
    async fn with_a_key_the_payment_is_saved_with_its_response_and_the_captured_one_replaces_it() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = keyed_request(owner);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        let updates = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&updates);
        keys.expect_update_response().times(1).returning(move |completion| {
            log.lock().expect("the log is not poisoned").push(completion.clone());
            Ok(())
        });
        keys.expect_release().never();
        let mut sequence = Sequence::new();
        let mut orders = orders_paying(&pending, &mut sequence);
        let saves = record_saves(&mut orders, 1);
        record_payment_saves(&mut orders, 1);
        let payments = authorizing_then_capturing(&pending, &mut sequence, || Ok(()));
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&pending, OrderAction::Pay)
        };

        let moved = done(
            transition_order_keyed(orders, payments, keys)
                .execute(&customer(owner), keyed)
                .await
                .expect("the owner may pay"),
        );

        let saved = only_save(&saves);
        assert_eq!(
            saved.completion,
            Some(Completion {
                request: request.clone(),
                lease: lease(),
                response: rendered(&(saved.order.clone(), saved.entry.clone())),
                at: now(),
            }),
            "the response at the commit shows the payment authorized"
        );
        assert_eq!(
            *updates.lock().expect("the log is not poisoned"),
            vec![Completion { request, lease: lease(), response: rendered(&moved), at: now() }],
            "the response finally sent shows the payment captured"
        );
        assert_eq!(payment_of(&moved.0), payment_is(PaymentStatus::Captured, Some(NEW_REFERENCE)));
    }

    #[tokio::test]
    async fn with_a_key_a_move_that_settles_nothing_records_its_response_once() {
        let paid = paid_order(UserId::new(), PaymentStatus::Captured);
        let actor = admin();
        let request = keyed_request(actor.user_id().expect("a user"));
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        keys.expect_update_response().never();
        keys.expect_release().never();
        let mut orders = orders_holding(&paid);
        let saves = record_saves(&mut orders, 1);
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&paid, OrderAction::Ship)
        };

        let moved = done(
            transition_order_keyed(orders, no_payments(), keys)
                .execute(&actor, keyed)
                .await
                .expect("an admin may ship"),
        );

        assert_eq!(
            only_save(&saves).completion,
            Some(Completion { request, lease: lease(), response: rendered(&moved), at: now() })
        );
    }

    #[tokio::test]
    async fn a_key_used_before_for_the_same_move_replays_its_response_without_loading_the_order() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = keyed_request(owner);
        let first = stored_response(200, "paid");
        let keys = keys_claiming(&request, Claim::Replay(first.clone()));
        let mut orders = MockOrderRepository::new();
        orders.expect_find_by_id().never();
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&pending, OrderAction::Pay)
        };

        let outcome = transition_order_keyed(never_saving_anything(orders), no_payments(), keys)
            .execute(&customer(owner), keyed)
            .await
            .expect("a replay succeeds");

        match outcome {
            Outcome::Replayed(response) => assert_eq!(response, first),
            Outcome::Done((order, _)) => panic!("expected a replay, {} was moved", order.id()),
        }
    }

    #[tokio::test]
    async fn a_key_used_for_another_move_is_refused_as_reused() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = keyed_request(owner);
        let keys = keys_claiming(&request, Claim::Mismatch);
        let mut orders = MockOrderRepository::new();
        orders.expect_find_by_id().never();
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&pending, OrderAction::Cancel)
        };

        let result = transition_order_keyed(never_saving_anything(orders), no_payments(), keys)
            .execute(&customer(owner), keyed)
            .await;

        assert!(
            matches!(result, Err(TransitionOrderError::Idempotency(IdempotencyRefusal::Reused))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_declined_payment_releases_its_key_so_the_customer_may_retry_with_it() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = keyed_request(owner);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        expect_release(&mut keys, &request);
        keys.expect_update_response().never();
        let mut sequence = Sequence::new();
        let mut orders = never_saving(orders_paying(&pending, &mut sequence));
        // The decline, recorded after the pending payment.
        record_payment_saves(&mut orders, 1);
        let payments = authorization_failing(&pending, &mut sequence, || {
            Err(PaymentError::Declined("card expired".into()))
        });
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&pending, OrderAction::Pay)
        };

        let result =
            transition_order_keyed(orders, payments, keys).execute(&customer(owner), keyed).await;

        assert!(matches!(result, Err(TransitionOrderError::PaymentDeclined(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_refused_move_releases_its_key() {
        let owner = UserId::new();
        let paid = paid_order(owner, PaymentStatus::Captured);
        let request = keyed_request(owner);
        let mut keys = keys_claiming(&request, Claim::Started(lease()));
        expect_release(&mut keys, &request);
        let keyed = TransitionOrderInput {
            idempotency: Some(idempotent(&request)),
            ..input(&paid, OrderAction::Ship)
        };

        let result =
            transition_order_keyed(never_saving(orders_holding(&paid)), no_payments(), keys)
                .execute(&customer(owner), keyed)
                .await;

        assert!(matches!(result, Err(TransitionOrderError::Forbidden { .. })), "{result:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// expire_orders
// ---------------------------------------------------------------------------------------------

mod expire_orders {
    use super::*;

    /// What reached the store, in order, across the repository and the claims it handed out.
    #[derive(Debug, Clone, PartialEq)]
    enum Step {
        Claim { after: Option<OverdueCursor>, limit: u32 },
        Expiry(OrderId),
        Commit,
    }

    type Steps = Arc<Mutex<Vec<Step>>>;

    /// One `OverdueClaim::save_expiry` call.
    #[derive(Debug)]
    struct Expiry {
        order: Order,
        entry: OrderTransition,
        expected_version: u64,
    }

    type Expiries = Arc<Mutex<Vec<Expiry>>>;

    fn overdue(owner: UserId) -> Order {
        order_due(owner, OrderStatus::PendingPayment, now() - TimeDelta::minutes(5))
    }

    /// The cursor a batch ending with `order` hands out.
    fn cursor_after(order: &Order) -> OverdueCursor {
        OverdueCursor { due_at: order.payment_due_at(), id: order.id() }
    }

    fn unreadable() -> UnreadableOrder {
        UnreadableOrder { id: OrderId::new(), error: anyhow::anyhow!("an item row is missing") }
    }

    fn expire_orders(orders: MockOrderRepository) -> ExpireOrders {
        ExpireOrders::new(Arc::new(orders), Arc::new(clock_at(now())))
    }

    /// A claim whose `save_expiry` answers `answer(order)` for each order and records it, then
    /// commits once.
    fn claim_answering(
        steps: &Steps,
        expiries: &Expiries,
        answer: impl Fn(&Order) -> Result<(), OrderWriteError> + Send + 'static,
    ) -> MockOverdueClaim {
        let mut claim = MockOverdueClaim::new();
        let (log, saved) = (Arc::clone(steps), Arc::clone(expiries));
        claim.expect_save_expiry().returning(move |order, entry, expected_version| {
            log.lock().expect("the log is not poisoned").push(Step::Expiry(order.id()));
            saved.lock().expect("the log is not poisoned").push(Expiry {
                order: order.clone(),
                entry: entry.clone(),
                expected_version,
            });
            answer(order)
        });
        let log = Arc::clone(steps);
        claim.expect_commit().times(1).returning(move || {
            log.lock().expect("the log is not poisoned").push(Step::Commit);
            Ok(())
        });
        claim
    }

    /// A claim that expires every order it is asked to, then commits once.
    fn claim_saving_all(steps: &Steps, expiries: &Expiries) -> MockOverdueClaim {
        claim_answering(steps, expiries, |_| Ok(()))
    }

    /// A claim that is asked to expire nothing, then commits once.
    fn claim_saving_nothing(steps: &Steps) -> MockOverdueClaim {
        let mut claim = MockOverdueClaim::new();
        claim.expect_save_expiry().never();
        let log = Arc::clone(steps);
        claim.expect_commit().times(1).returning(move || {
            log.lock().expect("the log is not poisoned").push(Step::Commit);
            Ok(())
        });
        claim
    }

    /// Makes `orders` answer the claim starting `after`, of `limit` orders at the mocked now,
    /// once with `orders` and `next` through `claim`.
    fn expect_batch(
        repository: &mut MockOrderRepository,
        steps: &Steps,
        (after, limit): (Option<OverdueCursor>, u32),
        orders: Vec<Result<Order, UnreadableOrder>>,
        next: Option<OverdueCursor>,
        claim: MockOverdueClaim,
    ) {
        let log = Arc::clone(steps);
        let batch = OverdueBatch { orders, next, claim: Box::new(claim) };
        repository
            .expect_claim_overdue()
            .times(1)
            .withf(move |at, asked_after, asked_limit| {
                *at == now() && *asked_after == after && *asked_limit == limit
            })
            .return_once(move |_, after, limit| {
                log.lock().expect("the log is not poisoned").push(Step::Claim { after, limit });
                Ok(batch)
            });
    }

    fn steps_of(steps: &Steps) -> Vec<Step> {
        steps.lock().expect("the log is not poisoned").clone()
    }

    #[tokio::test]
    async fn every_overdue_order_is_saved_expired_by_the_system_through_the_claim() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let (first, second) = (overdue(UserId::new()), overdue(UserId::new()));
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(first.clone()), Ok(second.clone())],
            Some(cursor_after(&second)),
            claim_saving_all(&steps, &expiries),
        );
        orders.expect_save_transition().never();

        let report = expire_orders(orders).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 2, skipped: 0, unreadable: 0 });
        assert_eq!(
            steps_of(&steps),
            vec![
                Step::Claim { after: None, limit: EXPIRY_BATCH },
                Step::Expiry(first.id()),
                Step::Expiry(second.id()),
                Step::Commit,
            ]
        );
        let expiries = expiries.lock().expect("the log is not poisoned");
        for expiry in expiries.iter() {
            assert_eq!(expiry.order.status(), OrderStatus::Expired);
            assert_eq!(expiry.order.version(), STORED_VERSION + 1);
            assert_eq!(
                expiry.entry,
                OrderTransition {
                    order_id: expiry.order.id(),
                    from: Some(OrderStatus::PendingPayment),
                    to: OrderStatus::Expired,
                    action: OrderAction::Expire,
                    actor_id: None,
                    reason: None,
                    at: now(),
                    request_id: None,
                }
            );
            assert!(expiry.entry.releases_stock());
            assert_eq!(expiry.expected_version, STORED_VERSION);
        }
    }

    #[tokio::test]
    async fn an_order_another_instance_or_request_moved_first_is_skipped() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let (taken, free) = (overdue(UserId::new()), overdue(UserId::new()));
        let taken_id = taken.id();
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(taken.clone()), Ok(free.clone())],
            Some(cursor_after(&free)),
            claim_answering(&steps, &expiries, move |order| {
                if order.id() == taken_id { Err(OrderWriteError::Stale) } else { Ok(()) }
            }),
        );

        let report = expire_orders(orders).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 1, skipped: 1, unreadable: 0 });
        assert_eq!(
            steps_of(&steps),
            vec![
                Step::Claim { after: None, limit: EXPIRY_BATCH },
                Step::Expiry(taken.id()),
                Step::Expiry(free.id()),
                Step::Commit,
            ]
        );
    }

    #[tokio::test]
    async fn an_order_deleted_before_its_expiry_is_skipped() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let gone = overdue(UserId::new());
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(gone.clone())],
            Some(cursor_after(&gone)),
            claim_answering(&steps, &expiries, |_| Err(OrderWriteError::NotFound)),
        );

        let report = expire_orders(orders).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 1, unreadable: 0 });
    }

    #[tokio::test]
    async fn orders_not_yet_due_or_already_paid_are_skipped_without_saving() {
        let steps = Steps::default();
        let not_due =
            order_due(UserId::new(), OrderStatus::PendingPayment, now() + TimeDelta::minutes(1));
        let paid = order_due(UserId::new(), OrderStatus::Paid, now() - TimeDelta::minutes(5));
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(not_due), Ok(paid.clone())],
            Some(cursor_after(&paid)),
            claim_saving_nothing(&steps),
        );

        let report = expire_orders(orders).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 2, unreadable: 0 });
        assert_eq!(
            steps_of(&steps),
            vec![Step::Claim { after: None, limit: EXPIRY_BATCH }, Step::Commit]
        );
    }

    #[tokio::test]
    async fn an_unreadable_order_is_counted_and_does_not_hold_up_the_others() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let readable = overdue(UserId::new());
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Err(unreadable()), Ok(readable.clone())],
            Some(cursor_after(&readable)),
            claim_saving_all(&steps, &expiries),
        );

        let report =
            expire_orders(orders).execute().await.expect("an unreadable order is not fatal");

        assert_eq!(report, ExpiryReport { expired: 1, skipped: 0, unreadable: 1 });
        assert_eq!(
            steps_of(&steps),
            vec![
                Step::Claim { after: None, limit: EXPIRY_BATCH },
                Step::Expiry(readable.id()),
                Step::Commit,
            ]
        );
    }

    #[tokio::test]
    async fn a_full_batch_is_followed_by_the_next_from_its_cursor_until_a_short_one() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let due: Vec<Order> = (0..5).map(|_| overdue(UserId::new())).collect();
        let (first_end, second_end) = (cursor_after(&due[1]), cursor_after(&due[3]));
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, 2),
            vec![Ok(due[0].clone()), Ok(due[1].clone())],
            Some(first_end),
            claim_saving_all(&steps, &expiries),
        );
        expect_batch(
            &mut orders,
            &steps,
            (Some(first_end), 2),
            vec![Ok(due[2].clone()), Ok(due[3].clone())],
            Some(second_end),
            claim_saving_all(&steps, &expiries),
        );
        expect_batch(
            &mut orders,
            &steps,
            (Some(second_end), 2),
            vec![Ok(due[4].clone())],
            Some(cursor_after(&due[4])),
            claim_saving_all(&steps, &expiries),
        );

        let report = expire_orders(orders).with_batch(2).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 5, skipped: 0, unreadable: 0 });
        assert_eq!(
            steps_of(&steps),
            vec![
                Step::Claim { after: None, limit: 2 },
                Step::Expiry(due[0].id()),
                Step::Expiry(due[1].id()),
                Step::Commit,
                Step::Claim { after: Some(first_end), limit: 2 },
                Step::Expiry(due[2].id()),
                Step::Expiry(due[3].id()),
                Step::Commit,
                Step::Claim { after: Some(second_end), limit: 2 },
                Step::Expiry(due[4].id()),
                Step::Commit,
            ]
        );
    }

    #[tokio::test]
    async fn a_full_batch_followed_by_an_empty_one_ends_the_run() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let due: Vec<Order> = (0..2).map(|_| overdue(UserId::new())).collect();
        let end = cursor_after(&due[1]);
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, 2),
            vec![Ok(due[0].clone()), Ok(due[1].clone())],
            Some(end),
            claim_saving_all(&steps, &expiries),
        );
        expect_batch(
            &mut orders,
            &steps,
            (Some(end), 2),
            vec![],
            None,
            claim_saving_nothing(&steps),
        );

        let report = expire_orders(orders).with_batch(2).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 2, skipped: 0, unreadable: 0 });
        assert_eq!(steps_of(&steps).last(), Some(&Step::Commit));
    }

    #[tokio::test]
    async fn a_full_batch_of_skipped_and_unreadable_orders_still_moves_on_to_the_next() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let taken = overdue(UserId::new());
        let end = cursor_after(&taken);
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, 2),
            vec![Err(unreadable()), Ok(taken)],
            Some(end),
            claim_answering(&steps, &expiries, |_| Err(OrderWriteError::Stale)),
        );
        expect_batch(
            &mut orders,
            &steps,
            (Some(end), 2),
            vec![],
            None,
            claim_saving_nothing(&steps),
        );

        let report = expire_orders(orders).with_batch(2).execute().await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 1, unreadable: 1 });
    }

    #[tokio::test]
    async fn the_batch_size_asked_for_is_the_one_given_at_least_one() {
        for (given, asked) in [(7, 7), (0, 1)] {
            let steps = Steps::default();
            let mut orders = MockOrderRepository::new();
            expect_batch(
                &mut orders,
                &steps,
                (None, asked),
                vec![],
                None,
                claim_saving_nothing(&steps),
            );

            let report =
                expire_orders(orders).with_batch(given).execute().await.expect("the run succeeds");

            assert_eq!(report, ExpiryReport::default());
            assert_eq!(steps_of(&steps)[0], Step::Claim { after: None, limit: asked });
        }
    }

    #[tokio::test]
    async fn a_store_failure_while_claiming_fails_the_run() {
        let mut orders = MockOrderRepository::new();
        orders.expect_claim_overdue().times(1).returning(|_, _, _| Err(store_down()));

        let result = expire_orders(orders).execute().await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_claiming_a_later_batch_fails_the_run_after_the_first_was_committed() {
        let (steps, expiries) = (Steps::default(), Expiries::default());
        let due: Vec<Order> = (0..2).map(|_| overdue(UserId::new())).collect();
        let end = cursor_after(&due[1]);
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, 2),
            vec![Ok(due[0].clone()), Ok(due[1].clone())],
            Some(end),
            claim_saving_all(&steps, &expiries),
        );
        orders
            .expect_claim_overdue()
            .times(1)
            .withf(move |_, after, _| *after == Some(end))
            .returning(|_, _, _| Err(store_down()));

        let result = expire_orders(orders).with_batch(2).execute().await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        assert_eq!(steps_of(&steps).last(), Some(&Step::Commit));
    }

    #[tokio::test]
    async fn a_store_failure_while_saving_fails_the_run_without_committing_the_batch() {
        let order = overdue(UserId::new());
        let steps = Steps::default();
        let mut claim = MockOverdueClaim::new();
        claim
            .expect_save_expiry()
            .times(1)
            .returning(|_, _, _| Err(OrderWriteError::Store(store_down())));
        claim.expect_commit().never();
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(order.clone())],
            Some(cursor_after(&order)),
            claim,
        );

        let result = expire_orders(orders).execute().await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_committing_fails_the_run() {
        let order = overdue(UserId::new());
        let steps = Steps::default();
        let mut claim = MockOverdueClaim::new();
        claim.expect_save_expiry().times(1).returning(|_, _, _| Ok(()));
        claim.expect_commit().times(1).returning(|| Err(store_down()));
        let mut orders = MockOrderRepository::new();
        expect_batch(
            &mut orders,
            &steps,
            (None, EXPIRY_BATCH),
            vec![Ok(order.clone())],
            Some(cursor_after(&order)),
            claim,
        );

        let result = expire_orders(orders).execute().await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }
}

/// A payment that loses the race to a cancellation, an expiry or another payment must never
/// leave money held that nobody will release.
mod paid_too_late {
    use super::*;

    /// The reference of the authorization that lost the race.
    const LATE_REFERENCE: &str = "auth_late";

    fn pay(order: &Order) -> TransitionOrderInput {
        TransitionOrderInput {
            id: order.id(),
            action: OrderAction::Pay,
            reason: None,
            expected_version: None,
            request_id: None,
            idempotency: None,
        }
    }

    /// A gateway that authorizes `order` once with [`LATE_REFERENCE`], in `sequence` (after the
    /// pending record), captures and refunds nothing.
    fn authorizing_once(order: &Order, sequence: &mut Sequence) -> MockPaymentGateway {
        let (id, attempt, total) = (order.id(), order.version(), order.total());
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_authorize()
            .times(1)
            .in_sequence(sequence)
            .withf(move |order, asked_attempt, amount| {
                *order == id && *asked_attempt == attempt && *amount == total
            })
            .returning(|_, _, _| Ok(LATE_REFERENCE.to_owned()));
        payments.expect_capture().never();
        payments.expect_refund().never();
        payments
    }

    /// Makes `payments` expect the void of the late authorization of `order`, answered `answer`.
    fn expect_void_of_late(
        payments: &mut MockPaymentGateway,
        order: &Order,
        sequence: Option<&mut Sequence>,
        answer: impl FnOnce() -> Result<(), PaymentError> + Send + 'static,
    ) {
        let id = order.id();
        let expectation = payments.expect_void();
        expectation
            .times(1)
            .withf(move |order, reference| *order == id && reference == LATE_REFERENCE);
        if let Some(sequence) = sequence {
            expectation.in_sequence(sequence);
        }
        expectation.return_once(move |_, _| answer());
    }

    /// A repository whose order is `first` when loaded, whose pending payment is recorded (in
    /// `sequence`, see [`expect_pending_record`]; no other payment save unless the test expects
    /// one), then `then` when read again after the paid order's save came back stale.
    fn racing(first: &Order, then: Option<Order>, sequence: &mut Sequence) -> MockOrderRepository {
        let mut orders = MockOrderRepository::new();
        let mut answers = vec![Some(first.clone()), then].into_iter();
        orders.expect_find_by_id().times(2).returning(move |_| Ok(answers.next().flatten()));
        expect_pending_record(&mut orders, first, sequence);
        orders
            .expect_save_transition()
            .times(1)
            .withf(|order, _, _, _| order.status() == OrderStatus::Paid)
            .returning(|_, _, _, _| Err(OrderWriteError::Stale));
        orders
    }

    fn use_case(orders: MockOrderRepository, payments: MockPaymentGateway) -> TransitionOrder {
        TransitionOrder::new(
            Arc::new(orders),
            Arc::new(payments),
            Arc::new(no_keys()),
            Arc::new(clock_at(now())),
        )
    }

    /// `pending` as another request left it: cancelled by its owner after this request
    /// recorded its pending payment (so at STORED_VERSION + 2, the payment still pending).
    fn cancelled(pending: &Order) -> Order {
        let mut cancelled = asked(pending);
        cancelled
            .apply(OrderAction::Cancel, &customer(pending.user_id()), None, now())
            .expect("the owner cancels");
        cancelled
    }

    /// `pending` as another request left it: paid with the authorization `reference` after
    /// this request recorded its pending payment (so at STORED_VERSION + 2).
    fn paid_by_another(pending: &Order, reference: &str) -> Order {
        let mut paid = asked(pending);
        paid.pay(&customer(pending.user_id()), None, reference.to_owned(), now())
            .expect("the owner pays");
        paid
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_a_cancellation_is_recorded_on_the_order_then_voided() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = racing(&pending, Some(cancelled(&pending)), &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        let held = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        expect_void_of_late(&mut payments, &pending, Some(&mut sequence), || Ok(()));
        let voided = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
        let (held, held_at) = only_payment_save(&held);
        assert_eq!(held.status(), OrderStatus::Cancelled);
        assert_eq!(payment_of(&held), payment_is(PaymentStatus::Authorized, Some(LATE_REFERENCE)));
        // The cancellation came after this request's pending record (STORED_VERSION + 1), so
        // the order was re-read at STORED_VERSION + 2, one step later than before issue 21.
        assert_eq!((held.version(), held_at), (STORED_VERSION + 3, STORED_VERSION + 2));
        let (voided, voided_at) = only_payment_save(&voided);
        assert_eq!(payment_of(&voided), payment_is(PaymentStatus::Voided, Some(LATE_REFERENCE)));
        assert_eq!((voided.version(), voided_at), (STORED_VERSION + 4, STORED_VERSION + 3));
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_an_expiry_is_voided_too() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        // Expired after this request recorded its pending payment.
        let mut expired = asked(&pending);
        expired
            .apply(OrderAction::Expire, &Actor::System, None, pending.payment_due_at())
            .expect("the system expires an order at its deadline");
        let mut sequence = Sequence::new();
        let mut orders = racing(&pending, Some(expired), &mut sequence);
        let saves = record_payment_saves(&mut orders, 2);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || Ok(()));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Expired })
            ),
            "{result:?}"
        );
        let saves = saves.lock().expect("the log is not poisoned");
        assert_eq!(
            payment_of(&saves[1].0),
            payment_is(PaymentStatus::Voided, Some(LATE_REFERENCE))
        );
    }

    #[tokio::test]
    async fn a_late_authorization_that_cannot_be_recorded_is_voided_directly() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = racing(&pending, Some(cancelled(&pending)), &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        orders
            .expect_save_payment()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Err(OrderWriteError::Store(store_down())));
        expect_void_of_late(&mut payments, &pending, Some(&mut sequence), || Ok(()));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_recorded_late_authorization_the_provider_cannot_void_now_stays_owed() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = racing(&pending, Some(cancelled(&pending)), &mut sequence);
        let saves = record_payment_saves(&mut orders, 1);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || {
            Err(PaymentError::unavailable(anyhow::anyhow!("timed out")))
        });

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
        let (held, _) = only_payment_save(&saves);
        assert_eq!(
            held.payment_due(),
            Some(orderly_domain::PaymentDue::Void),
            "the job voids it later"
        );
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_the_same_payment_is_a_plain_conflict_and_keeps_the_hold() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record.
        let orders =
            racing(&pending, Some(paid_by_another(&pending, LATE_REFERENCE)), &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        payments.expect_void().never();

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_another_authorization_is_voided_and_a_conflict() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record.
        let orders =
            racing(&pending, Some(paid_by_another(&pending, "auth_winner")), &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || Ok(()));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn a_payment_with_if_match_that_lost_to_another_payment_is_a_version_mismatch() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record.
        let orders =
            racing(&pending, Some(paid_by_another(&pending, "auth_winner")), &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || Ok(()));
        let request =
            TransitionOrderInput { expected_version: Some(STORED_VERSION), ..pay(&pending) };

        let result = use_case(orders, payments).execute(&customer(owner), request).await;

        // The winner paid after this request's pending record (STORED_VERSION + 1): the
        // current version is one step later than before issue 21.
        assert!(
            matches!(
                result,
                Err(TransitionOrderError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 2
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_payment_with_if_match_that_lost_to_a_cancellation_is_still_paid_too_late() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        let mut orders = racing(&pending, Some(cancelled(&pending)), &mut sequence);
        record_payment_saves(&mut orders, 2);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || Ok(()));
        let request =
            TransitionOrderInput { expected_version: Some(STORED_VERSION), ..pay(&pending) };

        let result = use_case(orders, payments).execute(&customer(owner), request).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_order_gone_after_the_race_is_not_found() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record.
        let orders = racing(&pending, None, &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        // Whether the hold is released here is the test below.
        payments.expect_void().times(0..=1).returning(|_, _| Ok(()));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn the_authorization_of_an_order_gone_after_the_race_is_voided() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut sequence = Sequence::new();
        // No payment save but the pending record.
        let orders = racing(&pending, None, &mut sequence);
        let mut payments = authorizing_once(&pending, &mut sequence);
        expect_void_of_late(&mut payments, &pending, None, || Ok(()));

        let result = use_case(orders, payments).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }
}
