//! Use-case tests of the order use cases, every port replaced by its mockall twin.
//!
//! One module per use case. Each test builds the use case from mocks that expect exactly the
//! calls the scenario needs (`never()` where a port must not be reached), runs it once and
//! checks both the answer and what reached the ports.

use std::sync::{Arc, Mutex};

use orderly_application::{
    StoreError, UniqueKey, WriteError,
    orders::{
        expire_orders::{ExpireOrders, ExpiryReport},
        get_order::{GetOrder, GetOrderError},
        list_orders::{ListOrders, ListOrdersError},
        list_user_orders::{ListUserOrders, ListUserOrdersError},
        order_history::{OrderHistory, OrderHistoryError},
        place_order::{PlaceOrder, PlaceOrderError, PlaceOrderInput},
        transition_order::{TransitionOrder, TransitionOrderError, TransitionOrderInput},
    },
    pagination::{Cursor, InvalidCursor, ListRequest, Page, PageLimit, PageRequest, SortValue},
    ports::{
        MockClock, MockOrderQueries, MockOrderRepository, MockPaymentGateway,
        MockProductRepository, OrderFilter, PaymentError, PaymentReceipt, PlaceOrderFailure,
    },
};
use orderly_domain::{
    Actor, Currency, Money, Order, OrderAction, OrderError, OrderId, OrderItem, OrderParts,
    OrderStatus, OrderTransition, Product, ProductDraft, ProductId, ProductName, ProductSnapshot,
    Quantity, Reason, Role, Sku, UserId, Uuid,
    time::{TimeDelta, Timestamp},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The instant every mocked clock answers.
fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH + TimeDelta::days(20_000)
}

/// How long a new order waits for payment in these tests.
fn payment_timeout() -> TimeDelta {
    TimeDelta::minutes(45)
}

fn clock_at(instant: Timestamp) -> MockClock {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(instant);
    clock
}

fn price(minor: i64, currency: &str) -> Money {
    Money::new(minor, Currency::parse(currency).expect("an ISO 4217 code"))
        .expect("an amount in range")
}

fn product(sku: &str, price: Money) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(sku).expect("a valid name"),
        description: None,
        price,
        stock: 100,
    };
    Product::create(draft, now() - TimeDelta::days(10)).expect("a valid draft")
}

fn archived(mut product: Product) -> Product {
    product.archive(now() - TimeDelta::days(1));
    product
}

fn units(count: u32) -> Quantity {
    Quantity::new(count).expect("a quantity in range")
}

fn customer(id: UserId) -> Actor {
    Actor::User { id, role: Role::Customer }
}

fn admin() -> Actor {
    Actor::User { id: UserId::new(), role: Role::Admin }
}

fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("a valid reason")
}

/// The version every stored order in these tests is at.
const STORED_VERSION: u64 = 3;

/// A stored order of `owner` in `status`: two keyboards at 49.99 EUR, due in half an hour.
fn order(owner: UserId, status: OrderStatus) -> Order {
    order_due(owner, status, now() + TimeDelta::minutes(30))
}

/// A stored order of `owner` in `status` whose payment is due at `due_at`.
fn order_due(owner: UserId, status: OrderStatus, due_at: Timestamp) -> Order {
    let keyboard = product("KB-001", price(4999, "EUR"));
    let item = OrderItem::new(ProductSnapshot::from(&keyboard), units(2)).expect("a line in range");
    Order::restore(OrderParts {
        id: OrderId::new(),
        user_id: owner,
        status,
        items: vec![item],
        payment_due_at: due_at,
        refund_required: false,
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
    refund_required: bool,
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
        refund_required: order.refund_required(),
        version: order.version(),
        created_at: order.created_at(),
        updated_at: order.updated_at(),
    }
}

fn seen_all(orders: &[Order]) -> Vec<Seen> {
    orders.iter().map(seen).collect()
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
    payment: Option<PaymentReceipt>,
}

/// Every `save_transition` call, in order.
type Saves = Arc<Mutex<Vec<Saved>>>;

/// Makes every `save_transition` succeed, `times` times in all, and records the calls.
fn record_saves(orders: &mut MockOrderRepository, times: usize) -> Saves {
    let saves = Saves::default();
    let log = Arc::clone(&saves);
    orders.expect_save_transition().times(times).returning(
        move |order, entry, expected_version, payment| {
            log.lock().expect("the log is not poisoned").push(Saved {
                order: order.clone(),
                entry: entry.clone(),
                expected_version,
                payment,
            });
            Ok(())
        },
    );
    saves
}

/// The one save recorded in `saves`.
fn only_save(saves: &Saves) -> Saved {
    let mut saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves.len(), 1, "exactly one save was expected: {saves:?}");
    saves.remove(0)
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

// ---------------------------------------------------------------------------------------------
// place_order
// ---------------------------------------------------------------------------------------------

mod place_order {
    use super::*;

    fn place_order(products: MockProductRepository, orders: MockOrderRepository) -> PlaceOrder {
        PlaceOrder::new(
            Arc::new(products),
            Arc::new(orders),
            Arc::new(clock_at(now())),
            payment_timeout(),
        )
    }

    /// A catalogue that answers `find_many` once with `catalogue`, whatever was asked.
    fn catalogue_of(catalogue: Vec<Product>) -> MockProductRepository {
        let mut products = MockProductRepository::new();
        products.expect_find_many().times(1).returning(move |_| Ok(catalogue.clone()));
        products
    }

    fn never_placing() -> MockOrderRepository {
        let mut orders = MockOrderRepository::new();
        orders.expect_place().never();
        orders
    }

    fn one_line(product: &Product, count: u32) -> PlaceOrderInput {
        PlaceOrderInput { lines: vec![(product.id(), units(count))], request_id: None }
    }

    /// What a successful placing handed to the ports and returned.
    struct Placed {
        asked_for: Vec<Vec<ProductId>>,
        stored: Order,
        entry: OrderTransition,
        returned: Order,
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

        let stored = Arc::new(Mutex::new(None));
        let mut orders = MockOrderRepository::new();
        let log = Arc::clone(&stored);
        orders.expect_place().times(1).returning(move |order, entry| {
            *log.lock().expect("the log is not poisoned") = Some((order.clone(), entry.clone()));
            Ok(())
        });

        let input = PlaceOrderInput {
            lines: vec![(mouse.id(), units(2)), (keyboard.id(), units(2)), (mouse.id(), units(1))],
            request_id: Some("req-place".to_owned()),
        };
        let returned = place_order(products, orders)
            .execute(&customer(user), input)
            .await
            .expect("the order is placed");

        let (stored, entry) = stored
            .lock()
            .expect("the log is not poisoned")
            .take()
            .expect("the order was handed to the repository");
        let asked_for = asked_for.lock().expect("the log is not poisoned").clone();
        Placed { asked_for, stored, entry, returned }
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
        assert!(!stored.refund_required());
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
    async fn the_placed_order_returned_is_the_one_stored() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mouse = product("MS-001", price(1999, "EUR"));

        let placed = place_keyboards_and_mice(UserId::new(), &keyboard, &mouse).await;

        assert_eq!(seen(&placed.returned), seen(&placed.stored));
    }

    #[tokio::test]
    async fn the_system_may_not_place_an_order() {
        let keyboard = product("KB-001", price(4999, "EUR"));
        let mut products = MockProductRepository::new();
        products.expect_find_many().never();

        let result = place_order(products, never_placing())
            .execute(&Actor::System, one_line(&keyboard, 1))
            .await;

        assert!(matches!(result, Err(PlaceOrderError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn an_order_without_lines_is_invalid_and_reaches_no_port() {
        let mut products = MockProductRepository::new();
        products.expect_find_many().never();
        let mut clock = MockClock::new();
        clock.expect_now().never();
        let use_case = PlaceOrder::new(
            Arc::new(products),
            Arc::new(never_placing()),
            Arc::new(clock),
            payment_timeout(),
        );

        let result = use_case
            .execute(&customer(UserId::new()), PlaceOrderInput { lines: vec![], request_id: None })
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
        orders.expect_place().times(1).returning(move |_, _| {
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
        orders.expect_place().times(1).returning(move |_, _| {
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
            .returning(|_, _| Err(PlaceOrderFailure::Store(store_down())));

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
        let stored = order(owner, OrderStatus::Paid);

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

    fn transition_order(
        orders: MockOrderRepository,
        payments: MockPaymentGateway,
    ) -> TransitionOrder {
        TransitionOrder::new(Arc::new(orders), Arc::new(payments), Arc::new(clock_at(now())))
    }

    fn input(order: &Order, action: OrderAction) -> TransitionOrderInput {
        TransitionOrderInput {
            id: order.id(),
            action,
            reason: None,
            expected_version: None,
            request_id: None,
        }
    }

    fn no_payments() -> MockPaymentGateway {
        let mut payments = MockPaymentGateway::new();
        payments.expect_charge().never();
        payments
    }

    /// A gateway that answers one charge with `answer`.
    fn gateway_answering(
        answer: impl FnOnce() -> Result<PaymentReceipt, PaymentError> + Send + 'static,
    ) -> MockPaymentGateway {
        let mut payments = MockPaymentGateway::new();
        payments.expect_charge().times(1).return_once(move |_, _| answer());
        payments
    }

    fn never_saving(mut orders: MockOrderRepository) -> MockOrderRepository {
        orders.expect_save_transition().never();
        orders
    }

    fn saving_fails_with(
        mut orders: MockOrderRepository,
        error: impl FnOnce() -> WriteError + Send + 'static,
    ) -> MockOrderRepository {
        orders.expect_save_transition().times(1).return_once(move |_, _, _, _| Err(error()));
        orders
    }

    fn receipt() -> PaymentReceipt {
        PaymentReceipt { reference: "ch_0001".to_owned() }
    }

    #[tokio::test]
    async fn the_owner_paying_is_charged_once_for_the_total_and_the_order_is_saved_paid() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let (id, total) = (pending.id(), pending.total());
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_charge()
            .times(1)
            .withf(move |order, amount| *order == id && *amount == total)
            .returning(|_, _| Ok(receipt()));
        let mut orders = orders_holding(&pending);
        let saves = record_saves(&mut orders, 1);
        let request = TransitionOrderInput {
            reason: Some(reason("paid by card")),
            expected_version: Some(STORED_VERSION),
            ..input(&pending, OrderAction::Pay)
        };

        let (returned, returned_entry) = transition_order(orders, payments)
            .execute(&customer(owner), request)
            .await
            .expect("the owner may pay");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Paid);
        assert_eq!(saved.order.version(), STORED_VERSION + 1);
        assert_eq!(saved.order.updated_at(), now());
        assert_eq!(
            saved.entry,
            OrderTransition {
                order_id: id,
                from: Some(OrderStatus::PendingPayment),
                to: OrderStatus::Paid,
                action: OrderAction::Pay,
                actor_id: Some(owner),
                reason: Some(reason("paid by card")),
                at: now(),
                request_id: None,
            }
        );
        assert_eq!(saved.expected_version, STORED_VERSION);
        assert_eq!(saved.payment, Some(receipt()));
        assert_eq!(seen(&returned), seen(&saved.order));
        assert_eq!(returned_entry, saved.entry);
    }

    #[tokio::test]
    async fn an_admin_ships_a_paid_order_without_charging_anyone() {
        let paid = order(UserId::new(), OrderStatus::Paid);
        let actor = admin();
        let mut orders = orders_holding(&paid);
        let saves = record_saves(&mut orders, 1);

        transition_order(orders, no_payments())
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
        assert_eq!(saved.payment, None);
        assert!(!saved.entry.releases_stock());
    }

    #[tokio::test]
    async fn an_admin_delivers_a_shipped_order_without_charging_anyone() {
        let shipped = order(UserId::new(), OrderStatus::Shipped);
        let mut orders = orders_holding(&shipped);
        let saves = record_saves(&mut orders, 1);

        let (delivered, entry) = transition_order(orders, no_payments())
            .execute(&admin(), input(&shipped, OrderAction::Deliver))
            .await
            .expect("an admin may deliver");

        assert_eq!(delivered.status(), OrderStatus::Delivered);
        assert_eq!(entry.action, OrderAction::Deliver);
        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Delivered);
        assert_eq!(saved.payment, None);
    }

    #[tokio::test]
    async fn an_admin_cancelling_a_paid_order_releases_its_stock_and_flags_a_refund() {
        let paid = order(UserId::new(), OrderStatus::Paid);
        let mut orders = orders_holding(&paid);
        let saves = record_saves(&mut orders, 1);
        let request = TransitionOrderInput {
            reason: Some(reason("out of stock at the warehouse")),
            ..input(&paid, OrderAction::Cancel)
        };

        let (cancelled, _) = transition_order(orders, no_payments())
            .execute(&admin(), request)
            .await
            .expect("an admin may cancel a paid order");

        assert!(cancelled.refund_required());
        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Cancelled);
        assert!(saved.order.refund_required());
        assert!(saved.entry.releases_stock());
        assert!(saved.entry.requires_refund());
        assert_eq!(saved.entry.reason, Some(reason("out of stock at the warehouse")));
        assert_eq!(saved.payment, None);
    }

    #[tokio::test]
    async fn the_owner_cancels_their_pending_order_without_a_refund() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = orders_holding(&pending);
        let saves = record_saves(&mut orders, 1);

        transition_order(orders, no_payments())
            .execute(&customer(owner), input(&pending, OrderAction::Cancel))
            .await
            .expect("the owner may cancel a pending order");

        let saved = only_save(&saves);
        assert_eq!(saved.order.status(), OrderStatus::Cancelled);
        assert!(!saved.order.refund_required());
        assert!(saved.entry.releases_stock());
        assert!(!saved.entry.requires_refund());
        assert_eq!(saved.entry.actor_id, Some(owner));
        assert_eq!(saved.expected_version, STORED_VERSION);
    }

    #[tokio::test]
    async fn another_customers_order_is_not_found_and_left_alone() {
        let pending = order(UserId::new(), OrderStatus::PendingPayment);

        let result = transition_order(never_saving(orders_holding(&pending)), no_payments())
            .execute(&customer(UserId::new()), input(&pending, OrderAction::Cancel))
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
        let paid = order(owner, OrderStatus::Paid);

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
    async fn a_stale_expected_version_is_refused_before_any_charge() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let request = TransitionOrderInput {
            expected_version: Some(STORED_VERSION - 1),
            ..input(&pending, OrderAction::Pay)
        };

        let result = transition_order(never_saving(orders_holding(&pending)), no_payments())
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
    async fn a_declined_payment_is_reported_and_nothing_is_saved() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let payments = gateway_answering(|| Err(PaymentError::Declined("card expired".to_owned())));

        let result = transition_order(never_saving(orders_holding(&pending)), payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(
            matches!(&result, Err(TransitionOrderError::PaymentDeclined(why)) if why == "card expired"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_payment_gateway_is_reported_as_unavailable_and_nothing_is_saved() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let payments =
            gateway_answering(|| Err(PaymentError::Unavailable(anyhow::anyhow!("timed out"))));

        let result = transition_order(never_saving(orders_holding(&pending)), payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::PaymentUnavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_unexpected_payment_failure_is_unexpected_and_nothing_is_saved() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let payments =
            gateway_answering(|| Err(PaymentError::Unexpected(anyhow::anyhow!("bad response"))));

        let result = transition_order(never_saving(orders_holding(&pending)), payments)
            .execute(&customer(owner), input(&pending, OrderAction::Pay))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Unexpected(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_order_moved_concurrently_is_a_conflict() {
        let paid = order(UserId::new(), OrderStatus::Paid);
        let orders = saving_fails_with(orders_holding(&paid), || WriteError::Stale);

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn with_if_match_an_order_moved_after_the_check_is_a_version_mismatch_naming_the_current_version()
     {
        let paid = order(UserId::new(), OrderStatus::Paid);
        // Another request shipped it between this one's check and its save.
        let mut shipped = paid.clone();
        shipped.apply(OrderAction::Ship, &admin(), None, now()).expect("an admin ships");
        let mut orders = MockOrderRepository::new();
        let mut answers = vec![paid.clone(), shipped].into_iter();
        orders.expect_find_by_id().times(2).returning(move |_| Ok(answers.next()));
        orders.expect_save_transition().times(1).returning(|_, _, _, _| Err(WriteError::Stale));
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
        let paid = order(UserId::new(), OrderStatus::Paid);
        let orders = saving_fails_with(orders_holding(&paid), || WriteError::NotFound);

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_saving_a_transition_is_a_store_error() {
        let paid = order(UserId::new(), OrderStatus::Paid);
        let orders = saving_fails_with(orders_holding(&paid), || WriteError::Store(store_down()));

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(
            matches!(result, Err(TransitionOrderError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_duplicate_key_while_saving_a_transition_is_unexpected() {
        let paid = order(UserId::new(), OrderStatus::Paid);
        let orders =
            saving_fails_with(orders_holding(&paid), || WriteError::Duplicate(UniqueKey::Email));

        let result = transition_order(orders, no_payments())
            .execute(&admin(), input(&paid, OrderAction::Ship))
            .await;

        assert!(matches!(result, Err(TransitionOrderError::Unexpected(_))), "{result:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// expire_orders
// ---------------------------------------------------------------------------------------------

mod expire_orders {
    use super::*;

    const BATCH: u32 = 10;

    fn overdue(owner: UserId) -> Order {
        order_due(owner, OrderStatus::PendingPayment, now() - TimeDelta::minutes(5))
    }

    /// A repository whose `find_overdue` answers `orders` once, for the mocked clock's now.
    fn orders_overdue(orders: Vec<Order>) -> MockOrderRepository {
        let mut repository = MockOrderRepository::new();
        repository
            .expect_find_overdue()
            .times(1)
            .withf(|at, _| *at == now())
            .returning(move |_, _| Ok(orders.clone()));
        repository
    }

    fn expire_orders(orders: MockOrderRepository) -> ExpireOrders {
        ExpireOrders::new(Arc::new(orders), Arc::new(clock_at(now())))
    }

    /// Makes the save of `order` answer `error` once.
    fn saving_order_fails_with(
        orders: &mut MockOrderRepository,
        order: &Order,
        error: impl FnOnce() -> WriteError + Send + 'static,
    ) {
        let id = order.id();
        orders
            .expect_save_transition()
            .times(1)
            .withf(move |order, _, _, _| order.id() == id)
            .return_once(move |_, _, _, _| Err(error()));
    }

    #[tokio::test]
    async fn every_overdue_order_is_saved_expired_by_the_system() {
        let (first, second) = (overdue(UserId::new()), overdue(UserId::new()));
        let mut orders = orders_overdue(vec![first.clone(), second.clone()]);
        let saves = record_saves(&mut orders, 2);

        let report = expire_orders(orders).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 2, skipped: 0 });
        let saves = saves.lock().expect("the log is not poisoned");
        let saved_ids: Vec<OrderId> = saves.iter().map(|saved| saved.order.id()).collect();
        assert_eq!(saved_ids, vec![first.id(), second.id()]);
        for saved in saves.iter() {
            assert_eq!(saved.order.status(), OrderStatus::Expired);
            assert_eq!(saved.order.version(), STORED_VERSION + 1);
            assert_eq!(
                saved.entry,
                OrderTransition {
                    order_id: saved.order.id(),
                    from: Some(OrderStatus::PendingPayment),
                    to: OrderStatus::Expired,
                    action: OrderAction::Expire,
                    actor_id: None,
                    reason: None,
                    at: now(),
                    request_id: None,
                }
            );
            assert!(saved.entry.releases_stock());
            assert_eq!(saved.expected_version, STORED_VERSION);
            assert_eq!(saved.payment, None);
        }
    }

    #[tokio::test]
    async fn an_order_another_instance_moved_first_is_skipped() {
        let (taken, free) = (overdue(UserId::new()), overdue(UserId::new()));
        let mut orders = orders_overdue(vec![taken.clone(), free.clone()]);
        saving_order_fails_with(&mut orders, &taken, || WriteError::Stale);
        let free_id = free.id();
        orders
            .expect_save_transition()
            .times(1)
            .withf(move |order, _, _, _| order.id() == free_id)
            .returning(|_, _, _, _| Ok(()));

        let report = expire_orders(orders).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 1, skipped: 1 });
    }

    #[tokio::test]
    async fn an_order_deleted_before_its_expiry_is_skipped() {
        let gone = overdue(UserId::new());
        let mut orders = orders_overdue(vec![gone.clone()]);
        saving_order_fails_with(&mut orders, &gone, || WriteError::NotFound);

        let report = expire_orders(orders).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 1 });
    }

    #[tokio::test]
    async fn an_order_not_yet_due_is_skipped_without_saving() {
        let not_due =
            order_due(UserId::new(), OrderStatus::PendingPayment, now() + TimeDelta::minutes(1));
        let mut orders = orders_overdue(vec![not_due]);
        orders.expect_save_transition().never();

        let report = expire_orders(orders).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 1 });
    }

    #[tokio::test]
    async fn an_order_already_paid_is_skipped_without_saving() {
        let paid = order_due(UserId::new(), OrderStatus::Paid, now() - TimeDelta::minutes(5));
        let mut orders = orders_overdue(vec![paid]);
        orders.expect_save_transition().never();

        let report = expire_orders(orders).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport { expired: 0, skipped: 1 });
    }

    #[tokio::test]
    async fn expiring_asks_for_the_batch_size_it_was_given() {
        let mut orders = MockOrderRepository::new();
        orders
            .expect_find_overdue()
            .times(1)
            .withf(|at, limit| *at == now() && *limit == 7)
            .returning(|_, _| Ok(vec![]));

        let report = expire_orders(orders).execute(7).await.expect("the run succeeds");

        assert_eq!(report, ExpiryReport::default());
    }

    #[tokio::test]
    async fn a_store_failure_while_finding_overdue_orders_fails_the_run() {
        let mut orders = MockOrderRepository::new();
        orders.expect_find_overdue().times(1).returning(|_, _| Err(store_down()));
        orders.expect_save_transition().never();

        let result = expire_orders(orders).execute(BATCH).await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_saving_fails_the_run() {
        let order = overdue(UserId::new());
        let mut orders = orders_overdue(vec![order.clone()]);
        saving_order_fails_with(&mut orders, &order, || WriteError::Store(store_down()));

        let result = expire_orders(orders).execute(BATCH).await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_foreign_key_or_last_admin_error_while_saving_is_unexpected() {
        let answers: [fn() -> WriteError; 3] = [
            || WriteError::StillReferenced,
            || WriteError::MissingParent,
            || WriteError::LastAdmin,
        ];
        for answer in answers {
            let order = overdue(UserId::new());
            let mut orders = orders_overdue(vec![order.clone()]);
            saving_order_fails_with(&mut orders, &order, answer);

            let result = expire_orders(orders).execute(BATCH).await;

            assert!(matches!(result, Err(StoreError::Unexpected(_))), "{result:?}");
        }
    }
}

/// A payment that loses the race to a cancellation (or expiry) must not be lost track of.
mod paid_too_late {
    use super::*;

    fn pay(order: &Order) -> TransitionOrderInput {
        TransitionOrderInput {
            id: order.id(),
            action: OrderAction::Pay,
            reason: None,
            expected_version: None,
            request_id: None,
        }
    }

    fn charging_once() -> MockPaymentGateway {
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_charge()
            .times(1)
            .returning(|_, _| Ok(PaymentReceipt { reference: "ch_late".to_owned() }));
        payments
    }

    /// A repository whose order is `first` when loaded, then `then` when read again after the
    /// save came back stale.
    fn racing(first: &Order, then: Option<Order>) -> MockOrderRepository {
        let mut orders = MockOrderRepository::new();
        let mut answers = vec![Some(first.clone()), then].into_iter();
        orders.expect_find_by_id().times(2).returning(move |_| Ok(answers.next().flatten()));
        orders.expect_save_transition().times(1).returning(|_, _, _, _| Err(WriteError::Stale));
        orders
    }

    fn use_case(orders: MockOrderRepository) -> TransitionOrder {
        TransitionOrder::new(Arc::new(orders), Arc::new(charging_once()), Arc::new(clock_at(now())))
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_a_cancellation_is_recorded_for_a_refund() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let cancelled = order(owner, OrderStatus::Cancelled);
        let mut orders = racing(&pending, Some(cancelled));
        let id = pending.id();
        orders
            .expect_record_refund_due()
            .withf(move |order, payment| *order == id && payment.reference == "ch_late")
            .times(1)
            .returning(|_, _| Ok(()));

        let result = use_case(orders).execute(&customer(owner), pay(&pending)).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_payment_that_lost_to_another_payment_is_a_plain_conflict() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = racing(&pending, Some(order(owner, OrderStatus::Paid)));
        orders.expect_record_refund_due().never();

        let result = use_case(orders).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn a_payment_with_if_match_that_lost_to_another_payment_is_a_version_mismatch() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut paid = pending.clone();
        paid.apply(OrderAction::Pay, &customer(owner), None, now()).expect("the owner pays");
        let mut orders = racing(&pending, Some(paid));
        orders.expect_record_refund_due().never();
        let request =
            TransitionOrderInput { expected_version: Some(STORED_VERSION), ..pay(&pending) };

        let result = use_case(orders).execute(&customer(owner), request).await;

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
    async fn a_payment_with_if_match_that_lost_to_a_cancellation_is_still_recorded_for_a_refund() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = racing(&pending, Some(order(owner, OrderStatus::Cancelled)));
        orders.expect_record_refund_due().times(1).returning(|_, _| Ok(()));
        let request =
            TransitionOrderInput { expected_version: Some(STORED_VERSION), ..pay(&pending) };

        let result = use_case(orders).execute(&customer(owner), request).await;

        assert!(
            matches!(
                result,
                Err(TransitionOrderError::PaidTooLate { status: OrderStatus::Cancelled })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn recording_the_refund_while_the_store_is_down_is_a_store_error() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = racing(&pending, Some(order(owner, OrderStatus::Expired)));
        orders.expect_record_refund_due().times(1).returning(|_, _| Err(store_down()));

        let result = use_case(orders).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::Store(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_order_gone_after_the_race_is_not_found() {
        let owner = UserId::new();
        let pending = order(owner, OrderStatus::PendingPayment);
        let mut orders = racing(&pending, None);
        orders.expect_record_refund_due().never();

        let result = use_case(orders).execute(&customer(owner), pay(&pending)).await;

        assert!(matches!(result, Err(TransitionOrderError::NotFound)), "{result:?}");
    }
}
