use proptest::prelude::*;

use super::*;
use crate::{Currency, ProductDraft, Role, time::TimeDelta};

fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH + TimeDelta::days(20_000)
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::parse("EUR").expect("EUR")).expect("valid")
}

fn product(sku: &str, price: Money) -> Product {
    Product::create(
        ProductDraft {
            sku: Sku::parse(sku).expect("valid"),
            name: ProductName::parse(sku).expect("valid"),
            description: None,
            price,
            stock: 100,
        },
        now(),
    )
    .expect("valid")
}

fn qty(units: u32) -> Quantity {
    Quantity::new(units).expect("valid")
}

fn owner() -> UserId {
    UserId::new()
}

fn placed(user: UserId) -> Order {
    let products = [product("A", eur(250)), product("B", eur(1000))];
    let lines =
        OrderLines::new([(products[0].id(), qty(2)), (products[1].id(), qty(1))]).expect("valid");
    Order::place(user, &lines, &products, now(), now() + TimeDelta::minutes(30)).expect("valid").0
}

#[test]
fn quantities_are_bounded() {
    assert_eq!(Quantity::new(0), Err(InvalidQuantity));
    assert_eq!(Quantity::new(MAX_QUANTITY + 1), Err(InvalidQuantity));
    assert_eq!(Quantity::new(MAX_QUANTITY).map(|q| q.get()), Ok(MAX_QUANTITY));
}

#[test]
fn reasons_follow_the_text_rules() {
    assert_eq!(
        Reason::parse(" changed my mind ").map(|r| r.as_str().to_owned()),
        Ok("changed my mind".into())
    );
    assert!(Reason::parse("").is_err());
    assert!(Reason::parse(&"r".repeat(REASON_MAX_LEN + 1)).is_err());
}

#[test]
fn lines_for_the_same_product_are_merged_and_sorted() {
    let (a, b) = (ProductId::new(), ProductId::new());
    let lines = OrderLines::new([(b, qty(1)), (a, qty(2)), (b, qty(3))]).expect("valid");
    assert_eq!(lines.as_slice(), &[(a, qty(2)), (b, qty(4))]);
    assert_eq!(lines.product_ids().collect::<Vec<_>>(), vec![a, b]);
}

#[test]
fn lines_are_bounded() {
    assert_eq!(OrderLines::new([]), Err(OrderError::NoLines));
    let too_many = (0..=MAX_ORDER_LINES).map(|_| (ProductId::new(), qty(1)));
    assert_eq!(OrderLines::new(too_many), Err(OrderError::TooManyLines));
    let id = ProductId::new();
    assert_eq!(
        OrderLines::new([(id, qty(MAX_QUANTITY)), (id, qty(1))]),
        Err(OrderError::QuantityTooLarge { product_id: id })
    );
}

#[test]
fn placing_computes_line_totals_and_the_total() {
    let user = owner();
    let products = [product("A", eur(250)), product("B", eur(1000))];
    let lines =
        OrderLines::new([(products[1].id(), qty(1)), (products[0].id(), qty(2))]).expect("valid");
    let due = now() + TimeDelta::minutes(30);
    let (order, entry) = Order::place(user, &lines, &products, now(), due).expect("valid");

    assert_eq!(order.status(), OrderStatus::PendingPayment);
    assert_eq!(order.user_id(), user);
    assert_eq!(order.total(), eur(1500));
    assert_eq!(order.payment_due_at(), due);
    assert_eq!(order.version(), 1);
    assert_eq!(order.created_at(), now());
    assert_eq!(order.updated_at(), now());
    assert_eq!(order.payment(), None);
    assert_eq!(order.payment_due(), None);
    let item = &order.items()[0];
    assert_eq!(item.product_id(), products[0].id());
    assert_eq!(item.sku().as_str(), "A");
    assert_eq!(item.name().as_str(), "A");
    assert_eq!(item.unit_price(), eur(250));
    assert_eq!(item.quantity(), qty(2));
    assert_eq!(item.line_total(), eur(500));

    assert_eq!(entry.order_id, order.id());
    assert_eq!(entry.from, None);
    assert_eq!(entry.to, OrderStatus::PendingPayment);
    assert_eq!(entry.action, OrderAction::Place);
    assert_eq!(entry.actor_id, Some(user));
    assert!(!entry.releases_stock());
}

#[test]
fn placing_refuses_unknown_archived_and_mixed_currency_products() {
    let mut archived = product("OLD", eur(1));
    archived.archive(now());
    let usd = product("US", Money::new(1, Currency::parse("USD").expect("USD")).expect("valid"));
    let euro = product("EU", eur(1));
    let unknown = ProductId::new();
    let place = |lines: OrderLines| {
        Order::place(owner(), &lines, &[archived.clone(), usd.clone(), euro.clone()], now(), now())
            .map(|_| ())
    };

    assert_eq!(
        place(OrderLines::new([(unknown, qty(1))]).expect("valid")),
        Err(OrderError::UnknownProduct { product_id: unknown })
    );
    assert_eq!(
        place(OrderLines::new([(archived.id(), qty(1))]).expect("valid")),
        Err(OrderError::ProductArchived { product_id: archived.id() })
    );
    assert_eq!(
        place(OrderLines::new([(usd.id(), qty(1)), (euro.id(), qty(1))]).expect("valid")),
        Err(OrderError::MixedCurrencies)
    );
}

#[test]
fn placing_refuses_a_total_above_the_money_limit() {
    let expensive: Vec<Product> = (0..3)
        .map(|i| product(&format!("P{i}"), eur(crate::money::MAX_AMOUNT_MINOR / 1000)))
        .collect();
    let lines =
        OrderLines::new(expensive.iter().map(|p| (p.id(), qty(MAX_QUANTITY)))).expect("valid");
    assert_eq!(
        Order::place(owner(), &lines, &expensive, now(), now()).map(|_| ()),
        Err(OrderError::Amount(MoneyError::TooLarge))
    );
}

#[test]
fn the_owner_pays_and_the_admin_ships_and_delivers() {
    let user = owner();
    let customer = Actor::User { id: user, role: Role::Customer };
    let admin = Actor::User { id: UserId::new(), role: Role::Admin };
    let mut order = placed(user);
    assert_eq!(
        order.allowed_actions(&customer, now()),
        vec![OrderAction::Pay, OrderAction::Cancel]
    );

    let later = now() + TimeDelta::minutes(1);
    let paid = order.pay(&customer, None, "pi_1".into(), later).expect("owner may pay");
    assert_eq!((paid.from, paid.to), (Some(OrderStatus::PendingPayment), OrderStatus::Paid));
    assert_eq!(paid.actor_id, Some(user));
    assert_eq!(order.version(), 2);
    assert_eq!(order.updated_at(), later);
    assert!(order.allowed_actions(&customer, now()).is_empty());

    order.apply(OrderAction::Ship, &admin, None, later).expect("admin ships");
    let delivered = order.apply(OrderAction::Deliver, &admin, None, later).expect("admin delivers");
    assert_eq!(delivered.to, OrderStatus::Delivered);
    assert_eq!(order.status(), OrderStatus::Delivered);
    assert_eq!(order.version(), 4);
    assert!(order.allowed_actions(&admin, now()).is_empty());
}

#[test]
fn an_overdue_order_can_no_longer_be_paid_only_cancelled() {
    let user = owner();
    let customer = Actor::User { id: user, role: Role::Customer };
    let mut order = placed(user);
    let due = order.payment_due_at();
    assert_eq!(order.allowed_actions(&customer, due), vec![OrderAction::Cancel]);
    assert_eq!(
        order.pay(&customer, None, "pi_1".into(), due),
        Err(TransitionError::PaymentOverdue { due_at: due, allowed: vec![OrderAction::Cancel] })
    );
    assert_eq!(order.status(), OrderStatus::PendingPayment);
    let just_before = due - TimeDelta::microseconds(1);
    assert_eq!(
        order.allowed_actions(&customer, just_before),
        vec![OrderAction::Pay, OrderAction::Cancel]
    );
    assert!(order.pay(&customer, None, "pi_1".into(), just_before).is_ok());
}

#[test]
fn cancelling_an_unpaid_order_releases_stock_and_owes_nothing() {
    let user = owner();
    let mut order = placed(user);
    let entry = order
        .apply(OrderAction::Cancel, &Actor::User { id: user, role: Role::Customer }, None, now())
        .expect("owner may cancel");
    assert!(entry.releases_stock());
    assert_eq!(order.payment_due(), None);
}

#[test]
fn a_refused_move_changes_nothing() {
    let user = owner();
    let mut order = placed(user);
    let stranger = Actor::User { id: UserId::new(), role: Role::Customer };
    assert_eq!(
        order.pay(&stranger, None, "pi_1".into(), now()),
        Err(TransitionError::NotPermitted {
            from: OrderStatus::PendingPayment,
            action: OrderAction::Pay
        })
    );
    assert!(!order.is_visible_to(&stranger));
    assert!(order.is_visible_to(&Actor::System));
    assert_eq!(order.status(), OrderStatus::PendingPayment);
    assert_eq!(order.version(), 1);
}

#[test]
fn only_the_system_expires_and_only_after_the_deadline() {
    let user = owner();
    let mut order = placed(user);
    let due = order.payment_due_at();
    assert!(!order.is_overdue(now()));
    assert_eq!(
        order.apply(OrderAction::Expire, &Actor::System, None, now()),
        Err(TransitionError::NotDue { due_at: due })
    );
    let customer = Actor::User { id: user, role: Role::Customer };
    assert!(matches!(
        order.apply(OrderAction::Expire, &customer, None, due),
        Err(TransitionError::NotPermitted { .. })
    ));
    let expired = order.apply(OrderAction::Expire, &Actor::System, None, due).expect("overdue");
    assert_eq!(expired.to, OrderStatus::Expired);
    assert_eq!(expired.actor_id, None);
    assert!(expired.releases_stock());
}

#[test]
fn restoring_recomputes_the_total_and_refuses_corrupt_items() {
    let order = placed(owner());
    let parts = OrderParts {
        id: order.id(),
        user_id: order.user_id(),
        status: OrderStatus::Shipped,
        items: order.items().to_vec(),
        payment_due_at: order.payment_due_at(),
        payment: None,
        version: 3,
        created_at: order.created_at(),
        updated_at: order.updated_at(),
    };
    let restored = Order::restore(parts.clone()).expect("valid");
    assert_eq!(restored.total(), order.total());
    assert_eq!(restored.status(), OrderStatus::Shipped);
    assert_eq!(restored.version(), 3);
    assert_eq!(
        Order::restore(OrderParts { items: vec![], ..parts }).map(|_| ()),
        Err(OrderError::NoLines)
    );
}

fn admin() -> Actor {
    Actor::User { id: UserId::new(), role: Role::Admin }
}

fn paid(user: UserId) -> Order {
    let mut order = placed(user);
    order.pay(&admin(), None, "pi_1".into(), now()).expect("admin may pay");
    order
}

fn payment_status(order: &Order) -> Option<PaymentStatus> {
    order.payment().map(Payment::status)
}

#[test]
fn apply_refuses_pay_which_needs_an_authorization() {
    let user = owner();
    let mut order = placed(user);
    let customer = Actor::User { id: user, role: Role::Customer };
    assert_eq!(
        order.apply(OrderAction::Pay, &customer, None, now()),
        Err(TransitionError::PaymentRequired)
    );
    assert_eq!((order.status(), order.version()), (OrderStatus::PendingPayment, 1));
    assert_eq!(order.check(OrderAction::Pay, &customer, now()), Ok(OrderStatus::Paid));
    assert_eq!(order.version(), 1, "checking changes nothing");
}

#[test]
fn paying_authorizes_the_total_and_owes_a_capture() {
    let order = paid(owner());
    let payment = order.payment().expect("a payment");
    assert_eq!(payment.status(), PaymentStatus::Authorized);
    assert_eq!(payment.reference(), Some("pi_1"));
    assert_eq!(payment.amount(), order.total());
    assert_eq!((payment.created_at(), payment.updated_at()), (now(), now()));
    assert_eq!(order.payment_due(), Some(PaymentDue::Capture));
}

#[test]
fn a_capture_settles_the_payment_and_cannot_be_recorded_twice() {
    let mut order = paid(owner());
    let later = now() + TimeDelta::seconds(1);
    order.record_payment_done(PaymentDue::Capture, later).expect("capture owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Captured));
    assert_eq!(order.payment().map(Payment::updated_at), Some(later));
    assert_eq!(order.version(), 3);
    assert_eq!(order.payment_due(), None);
    assert_eq!(
        order.record_payment_done(PaymentDue::Capture, later),
        Err(PaymentChangeError::NothingOwed {
            wanted: "capture",
            status: OrderStatus::Paid,
            payment: "captured"
        })
    );
    assert_eq!(order.version(), 3, "a refused change changes nothing");
}

#[test]
fn cancelling_a_captured_order_owes_a_refund_until_it_is_recorded() {
    let mut order = paid(owner());
    order.record_payment_done(PaymentDue::Capture, now()).expect("capture owed");
    let reason = Reason::parse("customer called").expect("valid");
    let cancelled =
        order.apply(OrderAction::Cancel, &admin(), Some(reason.clone()), now()).expect("admin");
    assert!(cancelled.releases_stock());
    assert_eq!(cancelled.reason, Some(reason));
    assert_eq!(payment_status(&order), Some(PaymentStatus::RefundPending));
    assert_eq!(order.payment_due(), Some(PaymentDue::Refund));
    order.record_payment_done(PaymentDue::Refund, now()).expect("refund owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Refunded));
    assert_eq!(order.payment_due(), None);
}

#[test]
fn cancelling_a_paid_order_not_yet_captured_owes_a_void_not_a_refund() {
    let mut order = paid(owner());
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Authorized));
    assert_eq!(order.payment_due(), Some(PaymentDue::Void));
    assert!(matches!(
        order.record_payment_done(PaymentDue::Refund, now()),
        Err(PaymentChangeError::NothingOwed { .. })
    ));
    order.record_payment_done(PaymentDue::Void, now()).expect("void owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Voided));
}

#[test]
fn a_capture_that_succeeded_while_the_order_was_cancelled_owes_a_refund() {
    let mut order = paid(owner());
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    order.record_payment_done(PaymentDue::Capture, now()).expect("the money was taken");
    assert_eq!(payment_status(&order), Some(PaymentStatus::RefundPending));
    assert_eq!(order.payment_due(), Some(PaymentDue::Refund));
}

#[test]
fn a_void_the_provider_refuses_because_the_hold_was_captured_owes_a_refund() {
    let mut order = paid(owner());
    assert!(
        order.record_captured_instead_of_void(now()).is_err(),
        "a paid order owes a capture, not a void"
    );
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    let version = order.version();
    order.record_captured_instead_of_void(now()).expect("a void was owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::RefundPending));
    assert_eq!(order.payment_due(), Some(PaymentDue::Refund));
    assert_eq!(order.version(), version + 1);
    assert!(order.record_captured_instead_of_void(now()).is_err(), "recorded once");
    order.record_payment_done(PaymentDue::Refund, now()).expect("refund owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Refunded));
}

#[test]
fn an_authorization_is_recorded_as_pending_before_it_is_asked_and_a_retry_asks_the_same_attempt() {
    let user = owner();
    let customer = Actor::User { id: user, role: Role::Customer };
    let mut order = placed(user);
    let attempt = order.payment_attempt();
    assert_eq!(attempt, order.version(), "a first attempt is named after the version");
    order.record_authorization_asked(attempt, now()).expect("pending payment");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Pending));
    assert_eq!(order.payment().and_then(Payment::attempt), Some(attempt));
    assert_eq!(order.version(), attempt + 1);
    assert_eq!(order.payment_due(), None, "still payable: the customer's retry asks again");
    assert_eq!(order.payment_attempt(), attempt, "a retry is the same idempotent request");
    order.record_authorization_asked(attempt, now()).expect("the same attempt again");
    assert_eq!(order.version(), attempt + 1, "recording it again changes nothing");

    order.pay(&customer, None, "pi_found".into(), now()).expect("the retry's answer came");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Authorized));
    assert!(order.record_authorization_asked(order.payment_attempt(), now()).is_err());
}

#[test]
fn a_declined_pending_authorization_fails_and_the_next_attempt_is_new() {
    let mut order = placed(owner());
    let attempt = order.payment_attempt();
    order.record_authorization_asked(attempt, now()).expect("pending payment");
    order.record_declined_payment(now()).expect("declined");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Failed));
    assert!(order.payment_attempt() > attempt, "a decline moves the attempt on");
}

#[test]
fn an_order_that_ends_with_a_pending_authorization_owes_a_reconciliation() {
    for ends in [OrderAction::Cancel, OrderAction::Expire] {
        let mut order = placed(owner());
        order.record_authorization_asked(order.payment_attempt(), now()).expect("pending");
        let (actor, at) = match ends {
            OrderAction::Expire => (Actor::System, order.payment_due_at()),
            _ => (admin(), now()),
        };
        order.apply(ends, &actor, None, at).expect("the order ends");
        assert_eq!(order.payment_due(), Some(PaymentDue::Reconcile), "{ends}");
        assert!(order.record_payment_done(PaymentDue::Reconcile, now()).is_err());

        let mut found = order.clone();
        found.record_reconciled_authorization(Some("pi_lost".into()), now()).expect("owed");
        assert_eq!(payment_status(&found), Some(PaymentStatus::Authorized));
        assert_eq!(found.payment().and_then(Payment::reference), Some("pi_lost"));
        assert_eq!(found.payment_due(), Some(PaymentDue::Void), "what was found is released");

        let mut none = order.clone();
        none.record_reconciled_authorization(None, now()).expect("owed");
        assert_eq!(payment_status(&none), Some(PaymentStatus::Failed));
        assert_eq!(none.payment_due(), None);
        assert!(none.record_reconciled_authorization(None, now()).is_err(), "once");
    }
}

#[test]
fn settlement_failures_are_counted_until_the_work_is_done_and_a_bound_asks_for_a_person() {
    let mut order = paid(owner());
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    assert_eq!(order.payment_due(), Some(PaymentDue::Void));
    for failed in 1..=SETTLEMENT_ATTEMPTS {
        let version = order.version();
        order.record_settlement_failure(now()).expect("a void is owed");
        let payment = order.payment().expect("a payment");
        assert_eq!(payment.failures(), failed);
        assert_eq!(payment.needs_attention(), failed == SETTLEMENT_ATTEMPTS, "after {failed}");
        assert_eq!(order.version(), version + 1);
        assert_eq!(order.payment_due(), Some(PaymentDue::Void), "still owed");
    }
    order.record_payment_done(PaymentDue::Void, now()).expect("void owed");
    let payment = order.payment().expect("a payment");
    assert_eq!((payment.failures(), payment.needs_attention()), (0, false));
    assert!(order.record_settlement_failure(now()).is_err(), "nothing owed any more");
}

#[test]
fn a_declined_capture_fails_the_payment_and_owes_nothing_more() {
    let mut order = paid(owner());
    order.record_capture_declined(now()).expect("capture owed");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Failed));
    assert_eq!(order.payment_due(), None);
    assert!(order.record_capture_declined(now()).is_err());
}

#[test]
fn shipping_and_delivering_leave_a_pending_capture_owed() {
    let mut order = paid(owner());
    order.apply(OrderAction::Ship, &admin(), None, now()).expect("admin ships");
    assert_eq!(order.payment_due(), Some(PaymentDue::Capture));
    order.apply(OrderAction::Deliver, &admin(), None, now()).expect("admin delivers");
    assert_eq!(order.payment_due(), Some(PaymentDue::Capture));
}

#[test]
fn a_declined_payment_is_recorded_and_the_order_can_be_paid_again() {
    let user = owner();
    let customer = Actor::User { id: user, role: Role::Customer };
    let mut order = placed(user);
    order.record_declined_payment(now()).expect("pending payment");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Failed));
    assert_eq!(order.payment().and_then(Payment::reference), None);
    assert_eq!((order.status(), order.version()), (OrderStatus::PendingPayment, 2));
    assert_eq!(order.payment_due(), None);
    order.pay(&customer, None, "pi_2".into(), now()).expect("paying again");
    assert_eq!(payment_status(&order), Some(PaymentStatus::Authorized));
    assert_eq!(
        order.record_declined_payment(now()),
        Err(PaymentChangeError::NotPayable(OrderStatus::Paid))
    );
}

#[test]
fn a_late_authorization_on_a_cancelled_or_expired_order_owes_a_void() {
    let user = owner();
    let mut cancelled = placed(user);
    cancelled
        .apply(OrderAction::Cancel, &Actor::User { id: user, role: Role::Customer }, None, now())
        .expect("owner cancels");
    let total = cancelled.total();
    cancelled.record_late_authorization("pi_9".into(), total, now()).expect("cancelled");
    assert_eq!(payment_status(&cancelled), Some(PaymentStatus::Authorized));
    assert_eq!(cancelled.payment_due(), Some(PaymentDue::Void));
    assert!(matches!(
        cancelled.record_late_authorization("pi_10".into(), total, now()),
        Err(PaymentChangeError::NothingOwed { .. })
    ));

    let mut expired = placed(user);
    let due = expired.payment_due_at();
    expired.apply(OrderAction::Expire, &Actor::System, None, due).expect("overdue");
    expired.record_late_authorization("pi_11".into(), total, due).expect("expired");
    assert_eq!(expired.payment_due(), Some(PaymentDue::Void));

    let mut pending = placed(user);
    assert!(matches!(
        pending.record_late_authorization("pi_12".into(), total, now()),
        Err(PaymentChangeError::NothingOwed { .. })
    ));
}

#[test]
fn what_is_owed_for_every_order_status_and_payment_status() {
    use OrderStatus as O;
    use PaymentStatus as P;
    for status in OrderStatus::ALL {
        for payment in PaymentStatus::ALL {
            let owed = PaymentDue::of(status, payment);
            let expected = match (status, payment) {
                (O::Paid | O::Shipped | O::Delivered, P::Authorized) => Some(PaymentDue::Capture),
                (O::Cancelled | O::Expired, P::Pending) => Some(PaymentDue::Reconcile),
                (_, P::Authorized) => Some(PaymentDue::Void),
                (_, P::RefundPending) => Some(PaymentDue::Refund),
                _ => None,
            };
            assert_eq!(owed, expected, "{status} with a payment {payment}");
            if let Some(owed) = owed {
                assert!(!owed.done().holds_money() || owed.done() == P::Captured);
                assert_ne!(owed.done(), P::Pending);
            }
        }
        assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
    }
    for payment in PaymentStatus::ALL {
        assert_eq!(payment.as_str().parse::<PaymentStatus>(), Ok(payment));
    }
    assert!("charged".parse::<PaymentStatus>().is_err());
}

#[test]
fn a_payment_holding_money_cannot_be_replaced() {
    let mut order = paid(owner());
    assert!(matches!(
        order.pay(&admin(), None, "pi_2".into(), now()),
        Err(TransitionError::Invalid { from: OrderStatus::Paid, action: OrderAction::Pay, .. })
    ));
    assert_eq!(order.payment().and_then(Payment::reference), Some("pi_1"));
}

#[test]
fn a_restored_payment_is_the_one_stored() {
    let order = paid(owner());
    let payment = order.payment().expect("a payment").clone();
    let restored = Payment::restore(PaymentParts {
        status: payment.status(),
        reference: payment.reference().map(str::to_owned),
        attempt: payment.attempt(),
        failures: payment.failures(),
        amount: payment.amount(),
        created_at: payment.created_at(),
        updated_at: payment.updated_at(),
    });
    assert_eq!(restored, payment);
}

proptest! {
    #[test]
    fn the_total_is_the_sum_of_price_times_quantity(
        lines in prop::collection::vec((0..100_000_i64, 1..=MAX_QUANTITY), 1..=MAX_ORDER_LINES),
    ) {
        let products: Vec<Product> =
            lines.iter().enumerate().map(|(i, (price, _))| product(&format!("P{i}"), eur(*price))).collect();
        let order_lines =
            OrderLines::new(products.iter().zip(&lines).map(|(p, (_, q))| (p.id(), qty(*q)))).expect("valid");
        let (order, _) = Order::place(owner(), &order_lines, &products, now(), now()).expect("valid");
        let expected: i64 = lines.iter().map(|(price, q)| price * i64::from(*q)).sum();
        prop_assert_eq!(order.total().amount_minor(), expected);
        prop_assert_eq!(order.items().len(), lines.len());
        for item in order.items() {
            prop_assert_eq!(
                item.line_total().amount_minor(),
                item.unit_price().amount_minor() * i64::from(item.quantity().get())
            );
        }
    }

    #[test]
    fn merging_keeps_the_units_of_every_product(
        raw in prop::collection::vec((0..5_usize, 1..=10_u32), 1..30),
    ) {
        let ids: Vec<ProductId> = (0..5).map(|_| ProductId::new()).collect();
        let lines = OrderLines::new(raw.iter().map(|(i, q)| (ids[*i], qty(*q)))).expect("valid");
        for (id, quantity) in lines.as_slice() {
            let requested: u32 =
                raw.iter().filter(|(i, _)| ids[*i] == *id).map(|(_, q)| *q).sum();
            prop_assert_eq!(quantity.get(), requested);
        }
        prop_assert!(lines.as_slice().windows(2).all(|w| w[0].0 < w[1].0));
    }
}

/// Every action on an order in every status with every payment (or none): the payment changes
/// only as the state machine says, and a refused move changes nothing.
#[test]
fn every_move_from_every_status_with_every_payment() {
    let template = placed(owner());
    let payments = std::iter::once(None).chain(PaymentStatus::ALL.map(Some));
    for status in OrderStatus::ALL {
        for payment in payments.clone() {
            for action in OrderAction::ALL {
                let (actor, at) = match action {
                    OrderAction::Expire => (Actor::System, now() + TimeDelta::hours(1)),
                    _ => (admin(), now()),
                };
                let stored = payment.map(|status| {
                    Payment::restore(PaymentParts {
                        status,
                        reference: Some("pi_1".to_owned()),
                        attempt: None,
                        failures: 0,
                        amount: template.total(),
                        created_at: now(),
                        updated_at: now(),
                    })
                });
                let mut order = Order::restore(OrderParts {
                    id: template.id(),
                    user_id: template.user_id(),
                    status,
                    items: template.items().to_vec(),
                    payment_due_at: template.payment_due_at(),
                    payment: stored.clone(),
                    version: 4,
                    created_at: now(),
                    updated_at: now(),
                })
                .expect("valid parts");
                let case = format!("{action} from {status} with payment {payment:?}");
                let allowed = order.check(action, &actor, at);
                let holds_money = payment.is_some_and(|p| p.holds_money());
                let result = if action == OrderAction::Pay {
                    assert_eq!(
                        order.clone().apply(action, &actor, None, at).map(|_| ()),
                        Err(TransitionError::PaymentRequired),
                        "{case}"
                    );
                    order.pay(&actor, None, "pi_new".into(), at)
                } else {
                    order.apply(action, &actor, None, at)
                };
                let moved = match (allowed, result) {
                    (Ok(_), Ok(_)) if action == OrderAction::Pay && holds_money => {
                        panic!("{case}: a payment holding money was replaced")
                    }
                    (Ok(to), Ok(entry)) => {
                        assert_eq!((entry.from, entry.to), (Some(status), to), "{case}");
                        true
                    }
                    (Err(_), Err(_)) => false,
                    (Ok(_), Err(_)) if action == OrderAction::Pay && holds_money => false,
                    (allowed, result) => panic!("{case}: check {allowed:?}, move {result:?}"),
                };
                if !moved {
                    assert_eq!(order.status(), status, "{case}");
                    assert_eq!(order.payment(), stored.as_ref(), "{case}");
                    assert_eq!(order.version(), 4, "{case}");
                    continue;
                }
                assert_eq!(order.version(), 5, "{case}");
                let expected = match (action, payment) {
                    (OrderAction::Pay, _) => Some(PaymentStatus::Authorized),
                    (OrderAction::Cancel, Some(PaymentStatus::Captured)) => {
                        Some(PaymentStatus::RefundPending)
                    }
                    (_, payment) => payment,
                };
                assert_eq!(payment_status(&order), expected, "{case}");
                if action == OrderAction::Pay {
                    let paid = order.payment().expect("a payment");
                    assert_eq!((paid.reference(), paid.amount()), (Some("pi_new"), order.total()));
                }
            }
        }
    }
}

fn events_after(order: &Order, version: u64) -> Vec<(EventType, u64)> {
    order.changes().after(version).map(|r| (r.event_type, r.version)).collect()
}

#[test]
fn every_change_of_status_or_payment_records_its_event_at_the_version_it_made() {
    use EventType::{
        OrderCancelled, OrderPaid, OrderPlaced, PaymentAuthorized, PaymentCaptured,
        PaymentRefundPending, PaymentRefunded,
    };
    let mut order = placed(owner());
    assert_eq!(events_after(&order, 0), [(OrderPlaced, 1)]);
    // Asking for an authorization is no event (its outcome is); paying is two, in one version.
    order.record_authorization_asked(order.payment_attempt(), now()).expect("payable");
    assert_eq!(events_after(&order, 1), []);
    order.pay(&admin(), None, "pi_1".into(), now()).expect("admin may pay");
    assert_eq!(events_after(&order, 2), [(OrderPaid, 3), (PaymentAuthorized, 3)]);
    order.record_payment_done(PaymentDue::Capture, now()).expect("capture owed");
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    order.record_payment_done(PaymentDue::Refund, now()).expect("refund owed");
    assert_eq!(
        events_after(&order, 3),
        [
            (PaymentCaptured, 4),
            (OrderCancelled, 5),
            (PaymentRefundPending, 5),
            (PaymentRefunded, 6)
        ]
    );
    // A refused change records nothing.
    assert!(order.apply(OrderAction::Ship, &admin(), None, now()).is_err());
    assert_eq!(events_after(&order, 6), []);
    // A restored order starts with no events: they were written when it was saved.
    let restored = Order::restore(OrderParts {
        id: order.id(),
        user_id: order.user_id(),
        status: order.status(),
        items: order.items().to_vec(),
        payment_due_at: order.payment_due_at(),
        payment: order.payment().cloned(),
        version: order.version(),
        created_at: order.created_at(),
        updated_at: order.updated_at(),
    })
    .expect("valid");
    assert_eq!(events_after(&restored, 0), []);
}

#[test]
fn a_payment_needing_a_person_is_an_event_once() {
    let mut order = paid(owner());
    order.apply(OrderAction::Cancel, &admin(), None, now()).expect("admin");
    let before = order.version();
    for _ in 0..=SETTLEMENT_ATTEMPTS {
        order.record_settlement_failure(now()).expect("a void is owed");
    }
    let attention: Vec<_> = events_after(&order, before);
    let at = before + u64::from(SETTLEMENT_ATTEMPTS);
    assert_eq!(attention, [(EventType::PaymentNeedsAttention, at)]);
}
