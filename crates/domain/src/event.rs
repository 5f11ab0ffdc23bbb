//! The events other systems learn of: what happened to an order, its payment, a product or a
//! user, one event per state change. This is the catalogue (each type's name, version and
//! aggregate); aggregates record the events of their own changes ([`Changes`]), the store writes
//! them with the change in one transaction (the outbox), and relays deliver them.
//!
//! A type's name is versioned (`orderly.order.paid.v1`): a change to what its data holds that a
//! consumer could trip on is a new type (`.v2`), published beside the old one for as long as
//! the API version it mirrors is served.

use crate::{OrderStatus, PaymentStatus, time::Timestamp};

/// CloudEvents' `source` of every event Orderly publishes.
pub const EVENT_SOURCE: &str = "/orderly";

/// The kind of resource an event is about; events of one resource (one `subject`) are
/// delivered in the order they happened. A payment belongs to its order, so its events are the
/// order's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// An order and its payment.
    Order,
    /// A product of the catalogue.
    Product,
    /// A user account.
    User,
}

impl Aggregate {
    /// Its name in event types and subjects: `order`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Product => "product",
            Self::User => "user",
        }
    }
}

/// One type of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An order was placed (its stock is reserved; it waits for payment).
    OrderPlaced,
    /// An order was paid.
    OrderPaid,
    /// An order was shipped.
    OrderShipped,
    /// An order was delivered.
    OrderDelivered,
    /// An order was cancelled (its stock is given back; a payment taken is refunded).
    OrderCancelled,
    /// An order was not paid in time (its stock is given back).
    OrderExpired,
    /// The provider holds the order's amount.
    PaymentAuthorized,
    /// The amount was taken.
    PaymentCaptured,
    /// The hold was released without taking anything.
    PaymentVoided,
    /// The amount taken must be given back; the refund has not gone through yet.
    PaymentRefundPending,
    /// The amount taken was given back.
    PaymentRefunded,
    /// The provider declined the payment (or refused to capture a hold).
    PaymentFailed,
    /// The provider failed the work a payment owes (a capture, a void, a refund) too many times
    /// in a row: a person should look (a refund that keeps failing, say).
    PaymentNeedsAttention,
    /// A product was added to the catalogue.
    ProductCreated,
    /// A product's SKU, name, description or price changed.
    ProductUpdated,
    /// A product was taken out of the catalogue.
    ProductArchived,
    /// A product's stock changed: set by an administrator, taken by an order, or given back by
    /// a cancelled or expired one.
    ProductStockChanged,
    /// A user registered (or an administrator was created).
    UserRegistered,
    /// A user account was deleted.
    UserDeleted,
}

impl EventType {
    /// Every type, for the catalogue's documentation and checks.
    pub const ALL: [Self; 19] = [
        Self::OrderPlaced,
        Self::OrderPaid,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCancelled,
        Self::OrderExpired,
        Self::PaymentAuthorized,
        Self::PaymentCaptured,
        Self::PaymentVoided,
        Self::PaymentRefundPending,
        Self::PaymentRefunded,
        Self::PaymentFailed,
        Self::PaymentNeedsAttention,
        Self::ProductCreated,
        Self::ProductUpdated,
        Self::ProductArchived,
        Self::ProductStockChanged,
        Self::UserRegistered,
        Self::UserDeleted,
    ];

    /// The type's name, as CloudEvents' `type`: `orderly.order.paid.v1`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::OrderPlaced => "orderly.order.placed.v1",
            Self::OrderPaid => "orderly.order.paid.v1",
            Self::OrderShipped => "orderly.order.shipped.v1",
            Self::OrderDelivered => "orderly.order.delivered.v1",
            Self::OrderCancelled => "orderly.order.cancelled.v1",
            Self::OrderExpired => "orderly.order.expired.v1",
            Self::PaymentAuthorized => "orderly.payment.authorized.v1",
            Self::PaymentCaptured => "orderly.payment.captured.v1",
            Self::PaymentVoided => "orderly.payment.voided.v1",
            Self::PaymentRefundPending => "orderly.payment.refund_pending.v1",
            Self::PaymentRefunded => "orderly.payment.refunded.v1",
            Self::PaymentFailed => "orderly.payment.failed.v1",
            Self::PaymentNeedsAttention => "orderly.payment.needs_attention.v1",
            Self::ProductCreated => "orderly.product.created.v1",
            Self::ProductUpdated => "orderly.product.updated.v1",
            Self::ProductArchived => "orderly.product.archived.v1",
            Self::ProductStockChanged => "orderly.product.stock_changed.v1",
            Self::UserRegistered => "orderly.user.registered.v1",
            Self::UserDeleted => "orderly.user.deleted.v1",
        }
    }

    /// The type named `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event_type| event_type.name() == name)
    }

    /// The kind of resource it is about (a payment's events are its order's).
    #[must_use]
    pub const fn aggregate(self) -> Aggregate {
        match self {
            Self::OrderPlaced
            | Self::OrderPaid
            | Self::OrderShipped
            | Self::OrderDelivered
            | Self::OrderCancelled
            | Self::OrderExpired
            | Self::PaymentAuthorized
            | Self::PaymentCaptured
            | Self::PaymentVoided
            | Self::PaymentRefundPending
            | Self::PaymentRefunded
            | Self::PaymentFailed
            | Self::PaymentNeedsAttention => Aggregate::Order,
            Self::ProductCreated
            | Self::ProductUpdated
            | Self::ProductArchived
            | Self::ProductStockChanged => Aggregate::Product,
            Self::UserRegistered | Self::UserDeleted => Aggregate::User,
        }
    }

    /// The event of an order reaching `status`.
    #[must_use]
    pub const fn of_order(status: OrderStatus) -> Self {
        match status {
            OrderStatus::PendingPayment => Self::OrderPlaced,
            OrderStatus::Paid => Self::OrderPaid,
            OrderStatus::Shipped => Self::OrderShipped,
            OrderStatus::Delivered => Self::OrderDelivered,
            OrderStatus::Cancelled => Self::OrderCancelled,
            OrderStatus::Expired => Self::OrderExpired,
        }
    }

    /// The event of a payment reaching `status`; none for `pending` (an authorization whose
    /// answer is not known yet: what it becomes is the event).
    #[must_use]
    pub const fn of_payment(status: PaymentStatus) -> Option<Self> {
        match status {
            PaymentStatus::Pending => None,
            PaymentStatus::Authorized => Some(Self::PaymentAuthorized),
            PaymentStatus::Captured => Some(Self::PaymentCaptured),
            PaymentStatus::Voided => Some(Self::PaymentVoided),
            PaymentStatus::RefundPending => Some(Self::PaymentRefundPending),
            PaymentStatus::Refunded => Some(Self::PaymentRefunded),
            PaymentStatus::Failed => Some(Self::PaymentFailed),
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An event an aggregate recorded: its type, the aggregate's version once it happened, and
/// when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// What happened.
    pub event_type: EventType,
    /// The aggregate's version the change made.
    pub version: u64,
    /// When.
    pub at: Timestamp,
}

/// The events an aggregate recorded since it was loaded or created, oldest first. The store
/// writes those after the version it expects to replace ([`Changes::after`]), so an aggregate
/// saved twice (a payment recorded pending, then paid) writes each event once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(Vec<Recorded>);

impl Changes {
    /// Records `event_type` at `version`, once: the same type at the same version (a product
    /// changed field by field in one save) is one event.
    pub(crate) fn record(&mut self, event_type: EventType, version: u64, at: Timestamp) {
        let seen = self.0.iter().any(|r| r.event_type == event_type && r.version == version);
        if !seen {
            self.0.push(Recorded { event_type, version, at });
        }
    }

    /// The events that made versions after `version`, oldest first.
    pub fn after(&self, version: u64) -> impl Iterator<Item = &Recorded> {
        self.0.iter().filter(move |recorded| recorded.version > version)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_type_has_one_versioned_name_under_its_aggregate() {
        let names: HashSet<_> = EventType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        for event_type in EventType::ALL {
            let name = event_type.name();
            let prefix = format!("orderly.{}.", event_type.aggregate().as_str());
            let payment = name.starts_with("orderly.payment.");
            assert!(name.starts_with(&prefix) || payment, "{name}");
            assert!(name.ends_with(".v1"), "{name}");
            assert_eq!(EventType::parse(name), Some(event_type));
        }
    }

    #[test]
    fn every_status_but_pending_payment_has_its_event() {
        for status in OrderStatus::ALL {
            assert_eq!(EventType::of_order(status).aggregate(), Aggregate::Order);
        }
        for status in PaymentStatus::ALL {
            assert_eq!(EventType::of_payment(status).is_none(), status == PaymentStatus::Pending);
        }
    }

    #[test]
    fn changes_keep_one_event_per_type_and_version_and_filter_by_version() {
        let at = Timestamp::default();
        let mut changes = Changes::default();
        changes.record(EventType::ProductUpdated, 2, at);
        changes.record(EventType::ProductUpdated, 2, at);
        changes.record(EventType::ProductStockChanged, 2, at);
        changes.record(EventType::ProductUpdated, 3, at);
        let after = |version| changes.after(version).map(|r| (r.event_type, r.version)).collect();
        let all: Vec<_> = after(0);
        assert_eq!(
            all,
            [
                (EventType::ProductUpdated, 2),
                (EventType::ProductStockChanged, 2),
                (EventType::ProductUpdated, 3)
            ]
        );
        assert_eq!(after(2), vec![(EventType::ProductUpdated, 3)]);
        assert!(after(3).is_empty());
    }
}
