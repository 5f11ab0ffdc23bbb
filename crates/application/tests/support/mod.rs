//! Fixtures the use-case test files share, each brought in with `mod support;`. Only what is the
//! same in every file that uses it lives here; a file whose fixture differs (another fixed
//! instant, another error) keeps its own and says why.

// Every test binary compiles this module on its own and uses only part of it, so what one
// binary leaves unused would be dead code there.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use mockall::Sequence;
use orderly_application::{
    StoreError,
    ports::{
        MockClock, MockOrderRepository, MockPaymentGateway, MockProductRepository, PaymentError,
    },
};
use orderly_domain::{
    Actor, Currency, Money, Order, OrderItem, Product, ProductDraft, ProductName, ProductSnapshot,
    Quantity, Reason, Role, Sku, UserId,
    time::{TimeDelta, Timestamp},
};

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// The instant the mocked clocks of the order and settlement tests answer: day 20,000 of the
/// Unix epoch.
pub(crate) fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH + TimeDelta::days(20_000)
}

/// A clock stuck at `instant`.
pub(crate) fn clock_at(instant: Timestamp) -> MockClock {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(instant);
    clock
}

/// A clock stuck at [`now`].
pub(crate) fn clock() -> MockClock {
    clock_at(now())
}

/// The time of the catalogue and review tests: their fixtures were stored at [`super::now`] and
/// their clock reads a month later, so that a write's new `updated_at` differs from the stored
/// one. Brought in as `use support::stored_a_month_ago::{clock, created_at, now}`.
pub(crate) mod stored_a_month_ago {
    use orderly_application::ports::MockClock;
    use orderly_domain::time::{TimeDelta, Timestamp};

    /// When the stored fixtures were created and last changed.
    pub(crate) fn created_at() -> Timestamp {
        super::now()
    }

    /// The time the clock reads: a month after the fixtures were last changed.
    pub(crate) fn now() -> Timestamp {
        created_at() + TimeDelta::days(30)
    }

    /// A clock stuck at [`now`].
    pub(crate) fn clock() -> MockClock {
        super::clock_at(now())
    }
}

// ---------------------------------------------------------------------------------------------
// Actors, values and errors
// ---------------------------------------------------------------------------------------------

pub(crate) fn customer(id: UserId) -> Actor {
    Actor::User { id, role: Role::Customer }
}

pub(crate) fn admin() -> Actor {
    Actor::User { id: UserId::new(), role: Role::Admin }
}

pub(crate) fn price(minor: i64, currency: &str) -> Money {
    Money::new(minor, Currency::parse(currency).expect("an ISO 4217 code"))
        .expect("an amount in range")
}

pub(crate) fn eur(minor: i64) -> Money {
    price(minor, "EUR")
}

pub(crate) fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("a valid reason")
}

/// A store that cannot be reached.
pub(crate) fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

// ---------------------------------------------------------------------------------------------
// Products and orders
// ---------------------------------------------------------------------------------------------

/// A product named after its `sku`, at `price`, 100 in stock, created ten days before [`now`].
pub(crate) fn product(sku: &str, price: Money) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(sku).expect("a valid name"),
        description: None,
        price,
        stock: 100,
    };
    Product::create(draft, now() - TimeDelta::days(10)).expect("a valid draft")
}

/// A product repository whose `find_by_id` answers `product` for its id, once.
pub(crate) fn products_holding(product: &Product) -> MockProductRepository {
    let mut products = MockProductRepository::new();
    let (id, found) = (product.id(), product.clone());
    products
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(move |_| Ok(Some(found.clone())));
    products
}

pub(crate) fn units(count: u32) -> Quantity {
    Quantity::new(count).expect("a quantity in range")
}

/// The one line of every stored fixture order: two keyboards (`KB-001`) at 49.99 EUR.
pub(crate) fn two_keyboards() -> OrderItem {
    let keyboard = product("KB-001", eur(4999));
    OrderItem::new(ProductSnapshot::from(&keyboard), units(2)).expect("a line in range")
}

/// The total of every stored fixture order: [`two_keyboards`].
pub(crate) fn order_total() -> Money {
    eur(2 * 4999)
}

// ---------------------------------------------------------------------------------------------
// The payment provider
// ---------------------------------------------------------------------------------------------

/// A payment gateway that must not be asked anything.
pub(crate) fn no_payments() -> MockPaymentGateway {
    let mut payments = MockPaymentGateway::new();
    payments.expect_authorize().never();
    payments.expect_capture().never();
    payments.expect_void().never();
    payments.expect_refund().never();
    payments
}

/// Makes `payments` expect one authorization of `order`'s total with `attempt`, in `sequence`
/// when given, answering `answer`.
pub(crate) fn expect_authorization_with(
    payments: &mut MockPaymentGateway,
    order: &Order,
    attempt: u64,
    sequence: Option<&mut Sequence>,
    answer: impl FnOnce() -> Result<String, PaymentError> + Send + 'static,
) {
    let (id, total) = (order.id(), order.total());
    let expectation = payments.expect_authorize();
    expectation.times(1).withf(move |order, asked_attempt, amount| {
        *order == id && *asked_attempt == attempt && *amount == total
    });
    if let Some(sequence) = sequence {
        expectation.in_sequence(sequence);
    }
    expectation.return_once(move |_, _, _| answer());
}

// ---------------------------------------------------------------------------------------------
// Recorded writes
// ---------------------------------------------------------------------------------------------

/// Every `save_payment` call, in order: the order written and the version it was guarded by.
pub(crate) type PaymentSaves = Arc<Mutex<Vec<(Order, u64)>>>;

/// Makes every `save_payment` succeed, `times` times in all, and records the calls.
pub(crate) fn record_payment_saves(orders: &mut MockOrderRepository, times: usize) -> PaymentSaves {
    record_payment_saves_in(orders, times, None)
}

/// As [`record_payment_saves`], the calls taking their place in `sequence` when given.
pub(crate) fn record_payment_saves_in(
    orders: &mut MockOrderRepository,
    times: usize,
    sequence: Option<&mut Sequence>,
) -> PaymentSaves {
    let saves = PaymentSaves::default();
    let log = Arc::clone(&saves);
    let expectation = orders.expect_save_payment();
    expectation.times(times);
    if let Some(sequence) = sequence {
        expectation.in_sequence(sequence);
    }
    expectation.returning(move |order, expected_version| {
        log.lock().expect("the log is not poisoned").push((order.clone(), expected_version));
        Ok(())
    });
    saves
}
