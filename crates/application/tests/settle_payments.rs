//! Use-case tests of the payment settlement job (`orders::settle_payments`), every port replaced
//! by its mockall twin. The settlement a request does right after its move is exercised through
//! `pay_order` and `move_order` in `orders.rs`.

mod support;

use std::sync::Arc;

use mockall::Sequence;
use orderly_application::{
    StoreError,
    orders::settle_payments::{SETTLEMENT_GRACE, SettlePayments, SettlementReport},
    ports::{MockOrderRepository, MockPaymentGateway, OrderWriteError, PaymentError},
};
use orderly_domain::{
    Actor, Order, OrderAction, OrderId, OrderParts, OrderStatus, Payment, PaymentDue, PaymentParts,
    PaymentStatus, Role, UserId, order::SETTLEMENT_ATTEMPTS, time::TimeDelta,
};
use support::{
    PaymentSaves, clock, expect_authorization_with, no_payments, now, order_total,
    record_payment_saves, record_payment_saves_in, store_down, two_keyboards,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The version every stored order in these tests is at.
const STORED_VERSION: u64 = 3;

/// The provider's reference of every stored payment.
const REFERENCE: &str = "auth_0001";

/// The attempt of the pending payments: the `pay` that asked for it recorded it at this
/// version (moving the order to `STORED_VERSION - 1`), then the order was cancelled or expired
/// (moving it to [`STORED_VERSION`]).
const ATTEMPT: u64 = STORED_VERSION - 2;

/// The reference under which the provider, asked again, finds an authorization whose answer
/// was lost.
const FOUND: &str = "auth_found";

/// How many orders the job is asked to settle in one run.
const BATCH: u32 = 25;

/// A stored order in `status` (two keyboards at 49.99 EUR) whose payment for its total is in
/// `payment`, with `reference`, last changed a minute before the grace period.
fn order_paying(status: OrderStatus, payment: PaymentStatus, reference: Option<&str>) -> Order {
    stored_order(status, payment, reference, None)
}

/// A stored order in `status` whose authorization was asked with [`ATTEMPT`] and whose answer
/// was lost: its payment `pending`, without a reference.
fn order_with_pending_payment(status: OrderStatus) -> Order {
    stored_order(status, PaymentStatus::Pending, None, Some(ATTEMPT))
}

/// A stored order in `status` (two keyboards at 49.99 EUR) whose payment for its total is in
/// `payment`, with `reference` and `attempt`, last changed a minute before the grace period.
fn stored_order(
    status: OrderStatus,
    payment: PaymentStatus,
    reference: Option<&str>,
    attempt: Option<u64>,
) -> Order {
    let changed = now() - SETTLEMENT_GRACE - TimeDelta::minutes(1);
    Order::restore(OrderParts {
        id: OrderId::new(),
        user_id: UserId::new(),
        status,
        items: vec![two_keyboards()],
        payment_due_at: now() - TimeDelta::hours(1),
        payment: Some(Payment::restore(PaymentParts {
            status: payment,
            reference: reference.map(str::to_owned),
            attempt,
            failures: 0,
            amount: order_total(),
            created_at: changed,
            updated_at: changed,
        })),
        version: STORED_VERSION,
        created_at: now() - TimeDelta::hours(2),
        updated_at: changed,
    })
    .expect("a valid order")
}

fn owing(status: OrderStatus, payment: PaymentStatus) -> Order {
    order_paying(status, payment, Some(REFERENCE))
}

fn settle_payments(orders: MockOrderRepository, payments: MockPaymentGateway) -> SettlePayments {
    SettlePayments::new(Arc::new(orders), Arc::new(payments), Arc::new(clock()))
}

/// An unreachable provider without a retry hint (the one in `orders.rs` gives one, which its
/// callers must receive).
fn unavailable() -> PaymentError {
    PaymentError::unavailable(anyhow::anyhow!("connection reset"))
}

/// A repository whose `find_payments_due` answers `owed` once.
fn orders_owing(owed: Vec<Order>) -> MockOrderRepository {
    let mut orders = MockOrderRepository::new();
    orders
        .expect_find_payments_due()
        .times(1)
        .withf(|changed_before, limit| {
            *changed_before == now() - SETTLEMENT_GRACE && *limit == BATCH
        })
        .return_once(move |_, _| Ok(owed));
    orders
}

fn saved(saves: &PaymentSaves) -> Vec<(OrderId, PaymentStatus, u64, u64)> {
    saves
        .lock()
        .expect("the log is not poisoned")
        .iter()
        .map(|(order, expected_version)| {
            let status = order.payment().expect("a payment").status();
            (order.id(), status, order.version(), *expected_version)
        })
        .collect()
}

/// The failures counted on each saved payment, in order.
fn failures_counted(saves: &PaymentSaves) -> Vec<u32> {
    let saves = saves.lock().expect("the log is not poisoned");
    saves.iter().map(|(order, _)| order.payment().expect("a payment").failures()).collect()
}

// ---------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_job_asks_for_settlements_owed_since_before_the_grace_period_in_its_batch() {
    let report = settle_payments(orders_owing(vec![]), no_payments())
        .execute(BATCH)
        .await
        .expect("the run succeeds");

    assert_eq!(report, SettlementReport::default());
}

#[tokio::test]
async fn a_held_payment_of_a_paid_order_is_captured_then_recorded() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let (id, amount) = (paid.id(), paid.total());
    let mut sequence = Sequence::new();
    let mut payments = MockPaymentGateway::new();
    payments.expect_void().never();
    payments.expect_refund().never();
    payments
        .expect_capture()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(move |order, reference, asked| {
            *order == id && reference == REFERENCE && *asked == amount
        })
        .returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![paid]);
    let saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![(id, PaymentStatus::Captured, STORED_VERSION + 1, STORED_VERSION)]
    );
    let saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves[0].0.status(), OrderStatus::Paid, "settling never moves the status");
    assert_eq!(saves[0].0.payment().expect("a payment").updated_at(), now());
    assert_eq!(saves[0].0.payment_due(), None);
}

#[tokio::test]
async fn a_held_payment_of_a_cancelled_or_expired_order_is_voided_then_recorded() {
    for status in [OrderStatus::Cancelled, OrderStatus::Expired] {
        let ended = owing(status, PaymentStatus::Authorized);
        let id = ended.id();
        let mut payments = MockPaymentGateway::new();
        payments
            .expect_void()
            .times(1)
            .withf(move |order, reference| *order == id && reference == REFERENCE)
            .returning(|_, _| Ok(()));
        payments.expect_capture().never();
        payments.expect_refund().never();
        let mut orders = orders_owing(vec![ended]);
        let saves = record_payment_saves(&mut orders, 1);

        let report =
            settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 }, "{status}");
        assert_eq!(
            saved(&saves),
            vec![(id, PaymentStatus::Voided, STORED_VERSION + 1, STORED_VERSION)],
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_captured_payment_of_a_cancelled_order_is_refunded_then_recorded() {
    let cancelled = owing(OrderStatus::Cancelled, PaymentStatus::RefundPending);
    let (id, amount) = (cancelled.id(), cancelled.total());
    let mut payments = MockPaymentGateway::new();
    payments
        .expect_refund()
        .times(1)
        .withf(move |order, reference, asked| {
            *order == id && reference == REFERENCE && *asked == amount
        })
        .returning(|_, _, _| Ok(()));
    payments.expect_void().never();
    payments.expect_capture().never();
    let mut orders = orders_owing(vec![cancelled]);
    let saves = record_payment_saves(&mut orders, 1);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![(id, PaymentStatus::Refunded, STORED_VERSION + 1, STORED_VERSION)]
    );
}

#[tokio::test]
async fn a_void_refused_because_the_hold_was_captured_becomes_a_refund_at_once() {
    for status in [OrderStatus::Cancelled, OrderStatus::Expired] {
        let ended = owing(status, PaymentStatus::Authorized);
        let (id, amount) = (ended.id(), ended.total());
        let mut sequence = Sequence::new();
        let mut payments = MockPaymentGateway::new();
        payments.expect_capture().never();
        payments
            .expect_void()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference| *order == id && reference == REFERENCE)
            .returning(|_, _| Err(PaymentError::AlreadyCaptured));
        let mut orders = orders_owing(vec![ended]);
        let saves = record_payment_saves(&mut orders, 2);
        payments
            .expect_refund()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference, asked| {
                *order == id && reference == REFERENCE && *asked == amount
            })
            .returning(|_, _, _| Ok(()));

        let report =
            settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 }, "{status}");
        assert_eq!(
            saved(&saves),
            vec![
                (id, PaymentStatus::RefundPending, STORED_VERSION + 1, STORED_VERSION),
                (id, PaymentStatus::Refunded, STORED_VERSION + 2, STORED_VERSION + 1),
            ],
            "{status}: the refund owed is recorded before the refund is asked for"
        );
    }
}

#[tokio::test]
async fn a_refund_that_fails_after_a_refused_void_stays_owed_as_a_refund() {
    let cancelled = owing(OrderStatus::Cancelled, PaymentStatus::Authorized);
    let id = cancelled.id();
    let mut payments = MockPaymentGateway::new();
    payments.expect_void().times(1).returning(|_, _| Err(PaymentError::AlreadyCaptured));
    payments.expect_refund().times(1).returning(|_, _, _| Err(unavailable()));
    let mut orders = orders_owing(vec![cancelled]);
    let saves = record_payment_saves(&mut orders, 2);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![
            (id, PaymentStatus::RefundPending, STORED_VERSION + 1, STORED_VERSION),
            (id, PaymentStatus::RefundPending, STORED_VERSION + 2, STORED_VERSION + 1),
        ],
        "the next run refunds: the void is never asked again"
    );
    assert_eq!(failures_counted(&saves), [0, 1], "the failed refund is counted");
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_leaves_the_work_owed_for_the_next_run() {
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Err(unavailable()));
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let id = paid.id();
    let mut orders = orders_owing(vec![paid]);
    let saves = record_payment_saves(&mut orders, 1);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![(id, PaymentStatus::Authorized, STORED_VERSION + 1, STORED_VERSION)],
        "still owed; only the failure is counted"
    );
    assert_eq!(failures_counted(&saves), [1]);
}

#[tokio::test]
async fn an_unexpected_provider_answer_leaves_the_work_owed_too() {
    let mut payments = MockPaymentGateway::new();
    payments
        .expect_refund()
        .times(1)
        .returning(|_, _, _| Err(PaymentError::Unexpected(anyhow::anyhow!("HTTP 400"))));
    let mut orders =
        orders_owing(vec![owing(OrderStatus::Cancelled, PaymentStatus::RefundPending)]);
    let saves = record_payment_saves(&mut orders, 1);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    assert_eq!(failures_counted(&saves), [1], "still a refund owed, one failure counted");
}

#[tokio::test]
async fn a_capture_the_provider_declines_records_the_payment_as_failed() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let id = paid.id();
    let mut payments = MockPaymentGateway::new();
    payments
        .expect_capture()
        .times(1)
        .returning(|_, _, _| Err(PaymentError::Declined("authorization expired".into())));
    let mut orders = orders_owing(vec![paid]);
    let saves = record_payment_saves(&mut orders, 1);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 0, declined: 1 });
    assert_eq!(
        saved(&saves),
        vec![(id, PaymentStatus::Failed, STORED_VERSION + 1, STORED_VERSION)]
    );
    let saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves[0].0.payment_due(), None, "a person follows up; the job does not retry");
}

#[tokio::test]
async fn a_void_the_provider_declines_is_not_recorded_but_left_owed() {
    let mut payments = MockPaymentGateway::new();
    payments
        .expect_void()
        .times(1)
        .returning(|_, _| Err(PaymentError::Declined("unknown authorization".into())));
    let mut orders = orders_owing(vec![owing(OrderStatus::Expired, PaymentStatus::Authorized)]);
    let saves = record_payment_saves(&mut orders, 1);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    let saves_log = saves.lock().expect("the log is not poisoned").clone();
    assert_eq!(saves_log[0].0.payment_due(), Some(PaymentDue::Void), "still owed");
    assert_eq!(failures_counted(&saves), [1]);
}

#[tokio::test]
async fn one_settlement_failing_does_not_stop_the_others() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let expired = owing(OrderStatus::Expired, PaymentStatus::Authorized);
    let cancelled = owing(OrderStatus::Cancelled, PaymentStatus::RefundPending);
    let (paid_id, expired_id, cancelled_id) = (paid.id(), expired.id(), cancelled.id());
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Ok(()));
    payments.expect_void().times(1).returning(|_, _| Err(unavailable()));
    payments.expect_refund().times(1).returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![paid, expired, cancelled]);
    let saves = record_payment_saves(&mut orders, 3);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 2, deferred: 1, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![
            (paid_id, PaymentStatus::Captured, STORED_VERSION + 1, STORED_VERSION),
            (expired_id, PaymentStatus::Authorized, STORED_VERSION + 1, STORED_VERSION),
            (cancelled_id, PaymentStatus::Refunded, STORED_VERSION + 1, STORED_VERSION),
        ]
    );
    assert_eq!(failures_counted(&saves), [0, 1, 0], "only the failed void is counted");
}

#[tokio::test]
async fn an_order_changed_while_settling_is_read_again_and_recorded_at_its_new_version() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let id = paid.id();
    // An admin shipped it between the provider's answer and the record of it.
    let mut shipped = paid.clone();
    shipped
        .apply(
            OrderAction::Ship,
            &Actor::User { id: UserId::new(), role: Role::Admin },
            None,
            now(),
        )
        .expect("an admin ships a paid order");
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![paid]);
    let mut sequence = Sequence::new();
    orders
        .expect_save_payment()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(|_, expected_version| *expected_version == STORED_VERSION)
        .returning(|_, _| Err(OrderWriteError::Stale));
    orders
        .expect_find_by_id()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(move |asked| *asked == id)
        .return_once(move |_| Ok(Some(shipped)));
    let saves = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![(id, PaymentStatus::Captured, STORED_VERSION + 2, STORED_VERSION + 1)]
    );
    let saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves[0].0.status(), OrderStatus::Shipped, "the concurrent move is kept");
}

#[tokio::test]
async fn a_settlement_another_instance_recorded_first_is_not_recorded_twice() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let mut recorded = paid.clone();
    recorded.record_payment_done(PaymentDue::Capture, now()).expect("a capture is owed");
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![paid]);
    orders.expect_save_payment().times(1).returning(|_, _| Err(OrderWriteError::Stale));
    orders.expect_find_by_id().times(1).return_once(move |_| Ok(Some(recorded)));

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport::default());
}

#[tokio::test]
async fn an_order_that_keeps_changing_is_left_owed_for_the_next_run() {
    let paid = owing(OrderStatus::Paid, PaymentStatus::Authorized);
    let reread = paid.clone();
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![paid]);
    orders.expect_save_payment().times(3).returning(|_, _| Err(OrderWriteError::Stale));
    orders.expect_find_by_id().times(3).returning(move |_| Ok(Some(reread.clone())));

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
}

#[tokio::test]
async fn a_held_payment_without_a_provider_reference_is_never_sent_to_the_provider() {
    let mut orders =
        orders_owing(vec![order_paying(OrderStatus::Paid, PaymentStatus::Authorized, None)]);
    orders.expect_save_payment().never();

    let report =
        settle_payments(orders, no_payments()).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
}

#[tokio::test]
async fn a_store_failure_while_finding_owed_payments_fails_the_run() {
    let mut orders = MockOrderRepository::new();
    orders.expect_find_payments_due().times(1).returning(|_, _| Err(store_down()));

    let result = settle_payments(orders, no_payments()).execute(BATCH).await;

    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn a_settlement_that_cannot_be_recorded_is_counted_as_still_owed() {
    let mut payments = MockPaymentGateway::new();
    payments.expect_capture().times(1).returning(|_, _, _| Ok(()));
    let mut orders = orders_owing(vec![owing(OrderStatus::Paid, PaymentStatus::Authorized)]);
    orders.expect_save_payment().times(1).returning(|_, _| {
        Err(OrderWriteError::Store(StoreError::Unavailable(anyhow::anyhow!("connection lost"))))
    });

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
}

// ---------------------------------------------------------------------------------------------
// Reconciling an authorization whose answer was lost (issue 21)
// ---------------------------------------------------------------------------------------------

/// Makes `payments` expect the authorization of `order`'s total asked again with [`ATTEMPT`],
/// once, in `sequence` when given, answering `answer`.
fn expect_authorization_asked_again(
    payments: &mut MockPaymentGateway,
    order: &Order,
    sequence: Option<&mut Sequence>,
    answer: impl FnOnce() -> Result<String, PaymentError> + Send + 'static,
) {
    expect_authorization_with(payments, order, ATTEMPT, sequence, answer);
}

#[tokio::test]
async fn a_pending_authorization_the_provider_finds_is_recorded_then_voided() {
    for status in [OrderStatus::Cancelled, OrderStatus::Expired] {
        let ended = order_with_pending_payment(status);
        let id = ended.id();
        let mut sequence = Sequence::new();
        let mut payments = MockPaymentGateway::new();
        expect_authorization_asked_again(&mut payments, &ended, Some(&mut sequence), || {
            Ok(FOUND.to_owned())
        });
        let mut orders = orders_owing(vec![ended]);
        let found = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments
            .expect_void()
            .times(1)
            .in_sequence(&mut sequence)
            .withf(move |order, reference| *order == id && reference == FOUND)
            .returning(|_, _| Ok(()));
        let voided = record_payment_saves_in(&mut orders, 1, Some(&mut sequence));
        payments.expect_capture().never();
        payments.expect_refund().never();

        let report =
            settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 }, "{status}");
        assert_eq!(
            saved(&found),
            vec![(id, PaymentStatus::Authorized, STORED_VERSION + 1, STORED_VERSION)],
            "{status}: what the provider holds is recorded before it is released"
        );
        assert_eq!(
            saved(&voided),
            vec![(id, PaymentStatus::Voided, STORED_VERSION + 2, STORED_VERSION + 1)],
            "{status}"
        );
        let found = found.lock().expect("the log is not poisoned");
        let payment = found[0].0.payment().expect("a payment");
        assert_eq!(payment.reference(), Some(FOUND), "{status}");
        assert_eq!(payment.updated_at(), now(), "{status}");
        assert_eq!(found[0].0.status(), status, "{status}: settling never moves the status");
        let voided = voided.lock().expect("the log is not poisoned");
        assert_eq!(voided[0].0.payment().expect("a payment").reference(), Some(FOUND));
        assert_eq!(voided[0].0.payment_due(), None, "{status}");
    }
}

#[tokio::test]
async fn a_pending_authorization_the_provider_declines_is_recorded_failed_and_nothing_is_voided() {
    for status in [OrderStatus::Cancelled, OrderStatus::Expired] {
        let ended = order_with_pending_payment(status);
        let id = ended.id();
        let mut payments = MockPaymentGateway::new();
        expect_authorization_asked_again(&mut payments, &ended, None, || {
            Err(PaymentError::Declined("card expired".into()))
        });
        payments.expect_void().never();
        payments.expect_capture().never();
        payments.expect_refund().never();
        let mut orders = orders_owing(vec![ended]);
        let saves = record_payment_saves(&mut orders, 1);

        let report =
            settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, SettlementReport { settled: 1, deferred: 0, declined: 0 }, "{status}");
        assert_eq!(
            saved(&saves),
            vec![(id, PaymentStatus::Failed, STORED_VERSION + 1, STORED_VERSION)],
            "{status}"
        );
        let saves = saves.lock().expect("the log is not poisoned");
        assert_eq!(saves[0].0.payment().expect("a payment").reference(), None, "{status}");
        assert_eq!(saves[0].0.payment_due(), None, "{status}: nothing is held");
    }
}

#[tokio::test]
async fn a_pending_authorization_the_provider_cannot_be_asked_about_stays_owed() {
    for status in [OrderStatus::Cancelled, OrderStatus::Expired] {
        let ended = order_with_pending_payment(status);
        let mut payments = MockPaymentGateway::new();
        expect_authorization_asked_again(&mut payments, &ended, None, || Err(unavailable()));
        payments.expect_void().never();
        payments.expect_capture().never();
        payments.expect_refund().never();
        let mut orders = orders_owing(vec![ended]);
        let saves = record_payment_saves(&mut orders, 1);

        let report =
            settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

        assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 }, "{status}");
        let saves_log = saves.lock().expect("the log is not poisoned").clone();
        assert_eq!(saves_log[0].0.payment_due(), Some(PaymentDue::Reconcile), "{status}");
        assert_eq!(failures_counted(&saves), [1], "{status}");
    }
}

#[tokio::test]
async fn a_found_authorization_the_provider_cannot_void_now_stays_owed_as_a_void() {
    let cancelled = order_with_pending_payment(OrderStatus::Cancelled);
    let id = cancelled.id();
    let mut payments = MockPaymentGateway::new();
    expect_authorization_asked_again(&mut payments, &cancelled, None, || Ok(FOUND.to_owned()));
    payments.expect_void().times(1).returning(|_, _| Err(unavailable()));
    payments.expect_capture().never();
    payments.expect_refund().never();
    let mut orders = orders_owing(vec![cancelled]);
    let saves = record_payment_saves(&mut orders, 2);

    let report = settle_payments(orders, payments).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    assert_eq!(
        saved(&saves),
        vec![
            (id, PaymentStatus::Authorized, STORED_VERSION + 1, STORED_VERSION),
            (id, PaymentStatus::Authorized, STORED_VERSION + 2, STORED_VERSION + 1),
        ],
        "the next run voids it: the provider is not asked to authorize again"
    );
    assert_eq!(failures_counted(&saves), [0, 1]);
    let saves = saves.lock().expect("the log is not poisoned");
    assert_eq!(saves[1].0.payment_due(), Some(PaymentDue::Void));
}

#[tokio::test]
async fn a_payment_the_provider_keeps_failing_needs_attention_after_the_bound_and_stays_owed() {
    // A refund already failed one time short of the bound.
    let mut cancelled = owing(OrderStatus::Cancelled, PaymentStatus::RefundPending);
    for _ in 1..SETTLEMENT_ATTEMPTS {
        cancelled.record_settlement_failure(now()).expect("a refund is owed");
    }
    assert!(!cancelled.payment().expect("a payment").needs_attention());
    let version = cancelled.version();
    let mut payments = MockPaymentGateway::new();
    payments.expect_refund().times(1).returning(|_, _, _| Err(unavailable()));
    let mut orders = orders_owing(vec![cancelled]);
    let saves = record_payment_saves(&mut orders, 1);
    orders.expect_count_payments_needing_attention().times(1).returning(|| Ok(1));
    let job = settle_payments(orders, payments);

    let report = job.execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport { settled: 0, deferred: 1, declined: 0 });
    assert_eq!(failures_counted(&saves), [SETTLEMENT_ATTEMPTS]);
    let saves_log = saves.lock().expect("the log is not poisoned").clone();
    let (stored, guarded_by) = &saves_log[0];
    assert_eq!(*guarded_by, version);
    assert!(stored.payment().expect("a payment").needs_attention());
    assert_eq!(stored.payment_due(), Some(PaymentDue::Refund), "still owed, still asked");
    assert_eq!(job.payments_needing_attention().await.expect("counted"), 1);
}

#[tokio::test]
async fn a_pending_payment_of_an_order_still_pending_payment_is_left_to_the_customers_retry() {
    let pending = order_with_pending_payment(OrderStatus::PendingPayment);
    assert_eq!(pending.payment_due(), None, "nothing is owed while the order may be paid");
    let mut orders = orders_owing(vec![pending]);
    orders.expect_save_payment().never();
    orders.expect_find_by_id().never();

    let report =
        settle_payments(orders, no_payments()).execute(BATCH).await.expect("the run succeeds");

    assert_eq!(report, SettlementReport::default());
}
