//! Orders: what a customer bought, at which prices, and where it stands.
//!
//! Items are reachable only through the [`Order`]; the total is computed from them, never
//! supplied. The status changes only through [`Order::apply`], which asks [`transition`] (the one
//! transition table) and returns the history record of the move.

mod payment;
mod state;

use std::collections::BTreeMap;

pub use payment::{
    Payment, PaymentChangeError, PaymentDue, PaymentParts, PaymentStatus, SETTLEMENT_ATTEMPTS,
};
pub use state::{
    Actor, ActorKind, OrderAction, OrderStatus, TransitionError, UnknownName, allowed_actions,
    transition,
};

use crate::{
    Money, MoneyError, OrderId, Product, ProductId, ProductName, Sku, UserId,
    event::{Changes, EventType},
    text,
    text::TextError,
    time::Timestamp,
};

/// Most units of one product in one order.
pub const MAX_QUANTITY: u32 = 1000;
/// Most lines (distinct products) in one order.
pub const MAX_ORDER_LINES: usize = 50;
/// Longest reason attached to a transition, in characters.
pub const REASON_MAX_LEN: usize = 500;

/// A quantity outside `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity must be between 1 and {MAX_QUANTITY}")]
pub struct InvalidQuantity;

impl crate::RuleError for InvalidQuantity {
    fn code(&self) -> &'static str {
        crate::rule::RANGE
    }
}

/// How many units of a product an order line holds: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    /// Checks the range.
    ///
    /// # Errors
    /// [`InvalidQuantity`] outside `1..=MAX_QUANTITY`.
    pub fn new(units: u32) -> Result<Self, InvalidQuantity> {
        if (1..=MAX_QUANTITY).contains(&units) { Ok(Self(units)) } else { Err(InvalidQuantity) }
    }

    /// The number of units.
    #[must_use]
    pub const fn get(&self) -> u32 {
        self.0
    }
}

/// Why a reason text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reason {0}")]
pub struct InvalidReason(#[from] pub TextError);

impl crate::RuleError for InvalidReason {
    fn code(&self) -> &'static str {
        crate::RuleError::code(&self.0)
    }
}

/// Why a transition was made, as told by the actor (shown in the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Parses a reason: 1 to [`REASON_MAX_LEN`] characters.
    ///
    /// # Errors
    /// [`InvalidReason`] when empty, too long or containing control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidReason> {
        Ok(Self(text::bounded(raw, REASON_MAX_LEN, true)?))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an order could not be placed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No lines at all.
    #[error("an order needs at least one line")]
    NoLines,
    /// More than [`MAX_ORDER_LINES`] distinct products.
    #[error("an order may have at most {MAX_ORDER_LINES} lines")]
    TooManyLines,
    /// Merging lines for the same product went above [`MAX_QUANTITY`].
    #[error("at most {MAX_QUANTITY} units of product {product_id} per order")]
    QuantityTooLarge {
        /// The product concerned.
        product_id: ProductId,
    },
    /// A line's product was not among the products supplied.
    #[error("product {product_id} does not exist")]
    UnknownProduct {
        /// The product concerned.
        product_id: ProductId,
    },
    /// The product is archived and can no longer be ordered.
    #[error("product {product_id} is no longer sold")]
    ProductArchived {
        /// The product concerned.
        product_id: ProductId,
    },
    /// Lines priced in different currencies.
    #[error("all products of an order must be priced in the same currency")]
    MixedCurrencies,
    /// A line total or the order total is too large.
    #[error("order total is too large: {0}")]
    Amount(#[from] MoneyError),
}

impl crate::RuleError for OrderError {
    fn code(&self) -> &'static str {
        match self {
            Self::NoLines | Self::TooManyLines => crate::rule::LENGTH,
            Self::QuantityTooLarge { .. } => crate::rule::RANGE,
            Self::UnknownProduct { .. } | Self::ProductArchived { .. } => crate::rule::ONE_OF,
            Self::MixedCurrencies => crate::rule::CURRENCY,
            Self::Amount(error) => crate::RuleError::code(error),
        }
    }
}

/// The requested lines of an order: one per product (duplicates merged), sorted by product id,
/// 1 to [`MAX_ORDER_LINES`] of them. Sorting by product id is what lets every writer reserve stock
/// in the same order, so concurrent orders cannot deadlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<(ProductId, Quantity)>);

impl OrderLines {
    /// Merges lines for the same product and checks the bounds.
    ///
    /// # Errors
    /// [`OrderError::NoLines`], [`OrderError::TooManyLines`], or
    /// [`OrderError::QuantityTooLarge`] when a merged quantity exceeds [`MAX_QUANTITY`].
    pub fn new(lines: impl IntoIterator<Item = (ProductId, Quantity)>) -> Result<Self, OrderError> {
        let mut merged: BTreeMap<ProductId, u32> = BTreeMap::new();
        for (product_id, quantity) in lines {
            *merged.entry(product_id).or_default() += quantity.get();
        }
        if merged.is_empty() {
            return Err(OrderError::NoLines);
        }
        if merged.len() > MAX_ORDER_LINES {
            return Err(OrderError::TooManyLines);
        }
        let lines = merged
            .into_iter()
            .map(|(product_id, units)| {
                Quantity::new(units)
                    .map(|quantity| (product_id, quantity))
                    .map_err(|_| OrderError::QuantityTooLarge { product_id })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(lines))
    }

    /// The lines, sorted by product id.
    #[must_use]
    pub fn as_slice(&self) -> &[(ProductId, Quantity)] {
        &self.0
    }

    /// The product ids, sorted.
    pub fn product_ids(&self) -> impl Iterator<Item = ProductId> + '_ {
        self.0.iter().map(|(id, _)| *id)
    }
}

/// What an order item remembers of its product when the order is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: ProductName,
    pub unit_price: Money,
}

impl From<&Product> for ProductSnapshot {
    fn from(product: &Product) -> Self {
        Self {
            product_id: product.id(),
            sku: product.sku().clone(),
            name: product.name().clone(),
            unit_price: product.price(),
        }
    }
}

/// One line of an order: a product snapshot, a quantity and their line total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    product: ProductSnapshot,
    quantity: Quantity,
    line_total: Money,
}

impl OrderItem {
    /// A line, its total computed.
    ///
    /// # Errors
    /// [`MoneyError::TooLarge`] when price times quantity exceeds the money limit.
    pub fn new(product: ProductSnapshot, quantity: Quantity) -> Result<Self, MoneyError> {
        let line_total = product.unit_price.checked_mul(quantity.get())?;
        Ok(Self { product, quantity, line_total })
    }

    #[must_use]
    pub fn product_id(&self) -> ProductId {
        self.product.product_id
    }
    #[must_use]
    pub fn sku(&self) -> &Sku {
        &self.product.sku
    }
    #[must_use]
    pub fn name(&self) -> &ProductName {
        &self.product.name
    }
    #[must_use]
    pub fn unit_price(&self) -> Money {
        self.product.unit_price
    }
    #[must_use]
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }
    #[must_use]
    pub fn line_total(&self) -> Money {
        self.line_total
    }
}

/// One entry of an order's history: the audit log of every status change, placing included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTransition {
    pub order_id: OrderId,
    /// `None` for the placing of the order.
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub action: OrderAction,
    /// `None` when the system acted.
    pub actor_id: Option<UserId>,
    pub reason: Option<Reason>,
    pub at: Timestamp,
    /// The id of the request that caused the move, for tracing it through the logs; `None` when
    /// not known (the expiry job).
    pub request_id: Option<String>,
}

impl OrderTransition {
    /// True when this move gives the order's reserved stock back.
    #[must_use]
    pub fn releases_stock(&self) -> bool {
        matches!(self.to, OrderStatus::Cancelled | OrderStatus::Expired)
    }
}

/// Everything a stored order consists of, for repositories that rebuild an [`Order`].
#[derive(Debug, Clone)]
pub struct OrderParts {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub payment_due_at: Timestamp,
    pub payment: Option<Payment>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An order: the aggregate root of its items and its status.
#[derive(Debug, Clone)]
pub struct Order {
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
    /// The events of the changes made since the order was loaded or placed.
    changes: Changes,
    /// What the last recorded event saw, for the next change to be compared with.
    observed: Observed,
}

/// What an order's events are about: its status, its payment's status, and whether the
/// payment needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observed {
    status: OrderStatus,
    payment: Option<PaymentStatus>,
    needs_attention: bool,
}

impl Order {
    /// Places a new order for `user_id` from `lines`, pricing each from `products` (any order,
    /// extra products ignored). The order waits for payment until `payment_due_at`.
    ///
    /// Returns the order and its first history entry.
    ///
    /// # Errors
    /// [`OrderError::UnknownProduct`] or [`OrderError::ProductArchived`] for a line whose product
    /// cannot be ordered, [`OrderError::MixedCurrencies`], or [`OrderError::Amount`] when a total
    /// overflows.
    pub fn place(
        user_id: UserId,
        lines: &OrderLines,
        products: &[Product],
        now: Timestamp,
        payment_due_at: Timestamp,
    ) -> Result<(Self, OrderTransition), OrderError> {
        let mut items = Vec::with_capacity(lines.as_slice().len());
        for &(product_id, quantity) in lines.as_slice() {
            let product = products
                .iter()
                .find(|product| product.id() == product_id)
                .ok_or(OrderError::UnknownProduct { product_id })?;
            if product.is_archived() {
                return Err(OrderError::ProductArchived { product_id });
            }
            items.push(OrderItem::new(ProductSnapshot::from(product), quantity)?);
        }
        let total = total_of(&items)?;
        let mut order = Self {
            id: OrderId::new(),
            user_id,
            status: OrderStatus::PendingPayment,
            items,
            total,
            payment_due_at,
            payment: None,
            version: 1,
            created_at: now,
            updated_at: now,
            changes: Changes::default(),
            observed: Observed {
                status: OrderStatus::PendingPayment,
                payment: None,
                needs_attention: false,
            },
        };
        order.changes.record(EventType::OrderPlaced, order.version, now);
        let placed = OrderTransition {
            order_id: order.id,
            from: None,
            to: order.status,
            action: OrderAction::Place,
            actor_id: Some(user_id),
            reason: None,
            at: now,
            request_id: None,
        };
        Ok((order, placed))
    }

    /// Rebuilds a stored order, recomputing its total from its items.
    ///
    /// # Errors
    /// [`OrderError`] when the stored items are empty, mix currencies or overflow: a sign of
    /// corrupted data, which must not be served as if it were an order.
    pub fn restore(parts: OrderParts) -> Result<Self, OrderError> {
        let OrderParts {
            id,
            user_id,
            status,
            items,
            payment_due_at,
            payment,
            version,
            created_at,
            updated_at,
        } = parts;
        let total = total_of(&items)?;
        let mut order = Self {
            id,
            user_id,
            status,
            items,
            total,
            payment_due_at,
            payment,
            version,
            created_at,
            updated_at,
            changes: Changes::default(),
            observed: Observed { status, payment: None, needs_attention: false },
        };
        order.observed = order.observation();
        Ok(order)
    }

    /// The events of the changes made since the order was loaded or placed, oldest first:
    /// the store writes those after the version it replaces ([`Changes::after`]).
    #[must_use]
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    fn observation(&self) -> Observed {
        Observed {
            status: self.status,
            payment: self.payment.as_ref().map(Payment::status),
            needs_attention: self.payment.as_ref().is_some_and(Payment::needs_attention),
        }
    }

    /// Records the events of what changed since the last observation: the order's status, then
    /// its payment's status, then a payment newly needing attention.
    fn observe(&mut self, now: Timestamp) {
        let seen = self.observation();
        let before = std::mem::replace(&mut self.observed, seen);
        if seen.status != before.status {
            self.changes.record(EventType::of_order(seen.status), self.version, now);
        }
        if seen.payment != before.payment
            && let Some(event_type) = seen.payment.and_then(EventType::of_payment)
        {
            self.changes.record(event_type, self.version, now);
        }
        if seen.needs_attention && !before.needs_attention {
            self.changes.record(EventType::PaymentNeedsAttention, self.version, now);
        }
    }

    #[must_use]
    pub fn id(&self) -> OrderId {
        self.id
    }
    #[must_use]
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    #[must_use]
    pub fn status(&self) -> OrderStatus {
        self.status
    }
    #[must_use]
    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }
    #[must_use]
    pub fn total(&self) -> Money {
        self.total
    }
    #[must_use]
    pub fn payment_due_at(&self) -> Timestamp {
        self.payment_due_at
    }
    /// The payment, once one started (`None` before the first `pay`).
    #[must_use]
    pub fn payment(&self) -> Option<&Payment> {
        self.payment.as_ref()
    }
    /// What the order still owes the payment provider, if anything.
    #[must_use]
    pub fn payment_due(&self) -> Option<PaymentDue> {
        self.payment.as_ref().and_then(|payment| PaymentDue::of(self.status, payment.status()))
    }
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// True when `actor` may see this order: its owner, an admin, or the system.
    #[must_use]
    pub fn is_visible_to(&self, actor: &Actor) -> bool {
        actor.kind_towards(self.user_id) != ActorKind::OtherCustomer
    }

    /// The actions `actor` may take next at `now` (an unpaid order cannot be paid once its
    /// deadline has passed).
    #[must_use]
    pub fn allowed_actions(&self, actor: &Actor, now: Timestamp) -> Vec<OrderAction> {
        let mut allowed = allowed_actions(self.status, actor.kind_towards(self.user_id));
        if self.is_overdue(now) {
            allowed.retain(|action| *action != OrderAction::Pay);
        }
        allowed
    }

    /// True when the payment deadline has passed at `now`.
    #[must_use]
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        now >= self.payment_due_at
    }

    /// Checks that `actor` may take `action` at `now`, without changing anything; returns the
    /// status the order would move to. `pay` checks this before asking the provider for money.
    ///
    /// # Errors
    /// As [`Order::apply`].
    pub fn check(
        &self,
        action: OrderAction,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<OrderStatus, TransitionError> {
        let to = transition(self.status, action, actor.kind_towards(self.user_id))?;
        if action == OrderAction::Expire && !self.is_overdue(now) {
            return Err(TransitionError::NotDue { due_at: self.payment_due_at });
        }
        if action == OrderAction::Pay && self.is_overdue(now) {
            return Err(TransitionError::PaymentOverdue {
                due_at: self.payment_due_at,
                allowed: self.allowed_actions(actor, now),
            });
        }
        Ok(to)
    }

    /// Applies `action` by `actor` at `now`. With [`Order::pay`], the only code that changes an
    /// order's status.
    ///
    /// Returns the history entry of the move; [`OrderTransition::releases_stock`] tells the
    /// repository whether to give the reserved stock back. Cancelling a paid order whose payment
    /// was captured marks it [`PaymentStatus::RefundPending`]; one only held is left authorized,
    /// to be voided ([`Order::payment_due`] says which).
    ///
    /// # Errors
    /// [`TransitionError`] when the move is illegal from the current status, not permitted for
    /// this actor, or (for `expire`) the payment deadline has not passed yet;
    /// [`TransitionError::PaymentRequired`] for `pay`, which needs an authorization.
    pub fn apply(
        &mut self,
        action: OrderAction,
        actor: &Actor,
        reason: Option<Reason>,
        now: Timestamp,
    ) -> Result<OrderTransition, TransitionError> {
        if action == OrderAction::Pay {
            return Err(TransitionError::PaymentRequired);
        }
        let entry = self.move_to(action, actor, reason, now)?;
        if let Some(payment) = &mut self.payment
            && payment.status() == PaymentStatus::Captured
            && entry.to == OrderStatus::Cancelled
        {
            payment.moved_to(PaymentStatus::RefundPending, now);
        }
        self.observe(now);
        Ok(entry)
    }

    /// Pays the order with the provider's authorization `reference` for its total, `reason` in
    /// its history: the order becomes paid and its payment authorized, to be captured next.
    ///
    /// # Errors
    /// As [`Order::apply`] for the `pay` action; [`TransitionError::AlreadyPaid`] when a payment
    /// already holds money (which the state machine also forbids).
    pub fn pay(
        &mut self,
        actor: &Actor,
        reason: Option<Reason>,
        reference: String,
        now: Timestamp,
    ) -> Result<OrderTransition, TransitionError> {
        self.check(OrderAction::Pay, actor, now)?;
        if let Some(payment) =
            self.payment.as_ref().filter(|payment| payment.status().holds_money())
        {
            return Err(TransitionError::AlreadyPaid(payment.status()));
        }
        let entry = self.move_to(OrderAction::Pay, actor, reason, now)?;
        self.payment =
            Some(Payment::new(PaymentStatus::Authorized, Some(reference), self.total, now));
        self.observe(now);
        Ok(entry)
    }

    /// The attempt a new authorization is asked with: the one a `pending` authorization was
    /// asked with (asking again is the same idempotent request, so a hold whose answer was lost
    /// is found rather than doubled), otherwise the order's version (a recorded decline moves it
    /// on, so a new attempt reaches the provider afresh).
    #[must_use]
    pub fn payment_attempt(&self) -> u64 {
        self.payment
            .as_ref()
            .filter(|payment| payment.status() == PaymentStatus::Pending)
            .and_then(Payment::attempt)
            .unwrap_or(self.version)
    }

    /// Records, before the provider is asked, that an authorization of the total is asked with
    /// `attempt`: if its answer is lost, the order says so (`pending`) and the authorization is
    /// found again later instead of being forgotten while it holds the customer's money.
    /// Recording the same pending attempt again changes nothing.
    ///
    /// # Errors
    /// [`PaymentChangeError::NotPayable`] unless the order is pending payment,
    /// [`PaymentChangeError::AlreadyPaid`] when a payment holds money.
    pub fn record_authorization_asked(
        &mut self,
        attempt: u64,
        now: Timestamp,
    ) -> Result<(), PaymentChangeError> {
        if self.status != OrderStatus::PendingPayment {
            return Err(PaymentChangeError::NotPayable(self.status));
        }
        if let Some(payment) = &self.payment {
            if payment.status().holds_money() {
                return Err(PaymentChangeError::AlreadyPaid(payment.status()));
            }
            if payment.status() == PaymentStatus::Pending && payment.attempt() == Some(attempt) {
                return Ok(());
            }
        }
        self.payment = Some(Payment::pending(attempt, self.total, now));
        self.touch(now);
        Ok(())
    }

    /// Records what reconciling a `pending` authorization found: the provider holds the amount
    /// under `reference` (to be released next, as the order ended), or, with `None`, nothing
    /// (the authorization was declined or never made).
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] unless a reconciliation was owed.
    pub fn record_reconciled_authorization(
        &mut self,
        reference: Option<String>,
        now: Timestamp,
    ) -> Result<(), PaymentChangeError> {
        if self.payment_due() != Some(PaymentDue::Reconcile) {
            return Err(self.nothing_owed("reconciliation"));
        }
        if let Some(payment) = &mut self.payment {
            match reference {
                Some(reference) => payment.found(reference, now),
                None => payment.moved_to(PaymentStatus::Failed, now),
            }
        }
        self.touch(now);
        Ok(())
    }

    /// Records that the provider declined to authorize the payment: the order stays pending
    /// payment (it may be paid again before its deadline) and shows a failed payment.
    ///
    /// # Errors
    /// [`PaymentChangeError::NotPayable`] unless the order is pending payment,
    /// [`PaymentChangeError::AlreadyPaid`] when a payment holds money.
    pub fn record_declined_payment(&mut self, now: Timestamp) -> Result<(), PaymentChangeError> {
        if self.status != OrderStatus::PendingPayment {
            return Err(PaymentChangeError::NotPayable(self.status));
        }
        if let Some(payment) =
            self.payment.as_ref().filter(|payment| payment.status().holds_money())
        {
            return Err(PaymentChangeError::AlreadyPaid(payment.status()));
        }
        self.payment = Some(Payment::new(PaymentStatus::Failed, None, self.total, now));
        self.touch(now);
        Ok(())
    }

    /// Records an authorization that arrived after the order was cancelled or expired (the
    /// payment lost the race): the order keeps its status and its payment is held, to be voided.
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] unless the order is cancelled or expired without a
    /// payment holding money.
    pub fn record_late_authorization(
        &mut self,
        reference: String,
        amount: Money,
        now: Timestamp,
    ) -> Result<(), PaymentChangeError> {
        let held = self.payment.as_ref().is_some_and(|payment| payment.status().holds_money());
        if held || !matches!(self.status, OrderStatus::Cancelled | OrderStatus::Expired) {
            return Err(self.nothing_owed("late authorization"));
        }
        self.payment = Some(Payment::new(PaymentStatus::Authorized, Some(reference), amount, now));
        self.touch(now);
        Ok(())
    }

    /// Records that the provider did `done`, which [`Order::payment_due`] said was owed.
    ///
    /// A capture is recorded whatever the order became meanwhile: money taken for an order that
    /// was cancelled while it was being captured is [`PaymentStatus::RefundPending`].
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] when that work is not owed (any more).
    pub fn record_payment_done(
        &mut self,
        done: PaymentDue,
        now: Timestamp,
    ) -> Result<(), PaymentChangeError> {
        let authorized = self
            .payment
            .as_ref()
            .is_some_and(|payment| payment.status() == PaymentStatus::Authorized);
        let owed = match done {
            PaymentDue::Capture => authorized,
            PaymentDue::Void | PaymentDue::Refund => self.payment_due() == Some(done),
            // What a reconciliation finds is recorded first (`record_reconciled_authorization`).
            PaymentDue::Reconcile => false,
        };
        if !owed {
            return Err(self.nothing_owed(done.as_str()));
        }
        let went_through = self.payment_due() == Some(PaymentDue::Capture);
        let status = if done == PaymentDue::Capture && !went_through {
            PaymentStatus::RefundPending
        } else {
            done.done()
        };
        if let Some(payment) = &mut self.payment {
            payment.moved_to(status, now);
        }
        self.touch(now);
        Ok(())
    }

    /// Records that the provider, asked to release a hold, answered that the money was already
    /// taken (a capture whose answer was lost, say): the payment must be given back, so it is
    /// [`PaymentStatus::RefundPending`] and a refund is owed.
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] unless a void was owed.
    pub fn record_captured_instead_of_void(
        &mut self,
        now: Timestamp,
    ) -> Result<(), PaymentChangeError> {
        if self.payment_due() != Some(PaymentDue::Void) {
            return Err(self.nothing_owed("refund of a captured hold"));
        }
        if let Some(payment) = &mut self.payment {
            payment.moved_to(PaymentStatus::RefundPending, now);
        }
        self.touch(now);
        Ok(())
    }

    /// Records that the provider failed the work the payment owes once more (unreachable, or
    /// an answer that settles nothing): the work stays owed, and the count tells when it needs
    /// a person ([`Payment::needs_attention`]).
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] when nothing is owed.
    pub fn record_settlement_failure(&mut self, now: Timestamp) -> Result<(), PaymentChangeError> {
        if self.payment_due().is_none() {
            return Err(self.nothing_owed("settlement"));
        }
        if let Some(payment) = &mut self.payment {
            payment.failed_once_more();
        }
        self.touch(now);
        Ok(())
    }

    /// Records that the provider refused to capture a held payment (the hold lapsed, say): the
    /// payment is [`PaymentStatus::Failed`] and nothing more is owed; a person must follow up.
    ///
    /// # Errors
    /// [`PaymentChangeError::NothingOwed`] unless a capture was owed.
    pub fn record_capture_declined(&mut self, now: Timestamp) -> Result<(), PaymentChangeError> {
        if self.payment_due() != Some(PaymentDue::Capture) {
            return Err(self.nothing_owed("capture"));
        }
        if let Some(payment) = &mut self.payment {
            payment.moved_to(PaymentStatus::Failed, now);
        }
        self.touch(now);
        Ok(())
    }

    fn nothing_owed(&self, wanted: &'static str) -> PaymentChangeError {
        PaymentChangeError::NothingOwed {
            wanted,
            status: self.status,
            payment: self.payment.as_ref().map_or("none", |payment| payment.status().as_str()),
        }
    }

    /// Moves the version and update time after a change, and records its events.
    fn touch(&mut self, now: Timestamp) {
        self.version += 1;
        self.updated_at = now;
        self.observe(now);
    }

    fn move_to(
        &mut self,
        action: OrderAction,
        actor: &Actor,
        reason: Option<Reason>,
        now: Timestamp,
    ) -> Result<OrderTransition, TransitionError> {
        let from = self.status;
        let to = self.check(action, actor, now)?;
        self.status = to;
        self.touch(now);
        Ok(OrderTransition {
            order_id: self.id,
            from: Some(from),
            to,
            action,
            actor_id: actor.user_id(),
            reason,
            at: now,
            request_id: None,
        })
    }
}

fn total_of(items: &[OrderItem]) -> Result<Money, OrderError> {
    let (first, rest) = items.split_first().ok_or(OrderError::NoLines)?;
    rest.iter().try_fold(first.line_total(), |total, item| {
        total.checked_add(item.line_total()).map_err(|error| match error {
            MoneyError::CurrencyMismatch { .. } => OrderError::MixedCurrencies,
            other => OrderError::Amount(other),
        })
    })
}

#[cfg(test)]
mod tests;
