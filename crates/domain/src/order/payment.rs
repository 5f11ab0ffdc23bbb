//! The payment of an order: held (authorized) before the order is paid, taken (captured) after,
//! released (voided) or given back (refunded) when the order does not go through.
//!
//! A payment changes only through its [`Order`](super::Order); the order's status and the
//! payment's together say what is still owed to the provider ([`PaymentDue`]).

use std::{fmt, str::FromStr};

use super::{OrderStatus, UnknownName};
use crate::{Money, time::Timestamp};

/// How many times in a row the provider may fail the work a payment owes (a capture, a void, a
/// refund, a reconciliation) before the payment needs a person: it is still owed and asked for
/// on every run of the job, and from then on each failure is an error an operator is alerted to
/// (`payment.needs_attention`, the `orderly_payments_needing_attention` gauge).
pub const SETTLEMENT_ATTEMPTS: u32 = 10;

/// Where a payment stands with the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// An authorization was asked of the provider and its answer was not received (a time-out,
    /// a dropped connection): whether money is held is unknown until the provider is asked again
    /// with the same idempotent request, by the customer's retry or by reconciliation.
    Pending,
    /// The amount is held on the customer's card, not taken yet.
    Authorized,
    /// The amount was taken.
    Captured,
    /// The hold was released without taking anything.
    Voided,
    /// The amount was taken and given back.
    Refunded,
    /// The amount was taken and must be given back; the refund has not gone through yet.
    RefundPending,
    /// The provider declined the authorization; nothing was held.
    Failed,
}

impl PaymentStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Authorized,
        Self::Captured,
        Self::Voided,
        Self::Refunded,
        Self::RefundPending,
        Self::Failed,
    ];

    /// The stable snake_case name used on the wire and in storage.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
            Self::RefundPending => "refund_pending",
            Self::Failed => "failed",
        }
    }

    /// True when the provider holds or has taken the customer's money (`pending` is not known
    /// to: a retried payment may take it over).
    #[must_use]
    pub const fn holds_money(&self) -> bool {
        matches!(self, Self::Authorized | Self::Captured | Self::RefundPending)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownName::new(s))
    }
}

/// An order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    status: PaymentStatus,
    reference: Option<String>,
    /// The attempt a `pending` authorization was asked with: asking again with it is the same
    /// idempotent request.
    attempt: Option<u64>,
    /// How many times in a row the provider failed the work owed (0 once it is done).
    failures: u32,
    amount: Money,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Everything a stored payment consists of, for repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentParts {
    pub status: PaymentStatus,
    /// The provider's reference; `None` for a declined authorization the provider kept none of,
    /// and for a `pending` one whose answer was lost.
    pub reference: Option<String>,
    /// The attempt a `pending` authorization was asked with.
    pub attempt: Option<u64>,
    /// How many times in a row the provider failed the work owed.
    pub failures: u32,
    pub amount: Money,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Payment {
    /// A payment as stored.
    #[must_use]
    pub fn restore(parts: PaymentParts) -> Self {
        let PaymentParts { status, reference, attempt, failures, amount, created_at, updated_at } =
            parts;
        Self { status, reference, attempt, failures, amount, created_at, updated_at }
    }

    pub(super) fn new(
        status: PaymentStatus,
        reference: Option<String>,
        amount: Money,
        now: Timestamp,
    ) -> Self {
        Self {
            status,
            reference,
            attempt: None,
            failures: 0,
            amount,
            created_at: now,
            updated_at: now,
        }
    }

    /// An authorization about to be asked for with `attempt`, recorded before the call.
    pub(super) fn pending(attempt: u64, amount: Money, now: Timestamp) -> Self {
        Self { attempt: Some(attempt), ..Self::new(PaymentStatus::Pending, None, amount, now) }
    }

    /// The provider's answer, found: the authorization `reference` holds the amount.
    pub(super) fn found(&mut self, reference: String, now: Timestamp) {
        self.reference = Some(reference);
        self.moved_to(PaymentStatus::Authorized, now);
    }

    pub(super) fn moved_to(&mut self, status: PaymentStatus, now: Timestamp) {
        self.status = status;
        self.failures = 0;
        self.updated_at = now;
    }

    /// The provider failed the work owed once more.
    pub(super) fn failed_once_more(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    #[must_use]
    pub fn status(&self) -> PaymentStatus {
        self.status
    }
    /// The provider's reference of the payment.
    #[must_use]
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }
    /// The attempt a `pending` authorization was asked with.
    #[must_use]
    pub fn attempt(&self) -> Option<u64> {
        self.attempt
    }
    /// How many times in a row the provider failed the work owed.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }
    /// Whether the provider failed the work owed [`SETTLEMENT_ATTEMPTS`] times in a row: a
    /// person must look (it is still asked for on every run).
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        self.failures >= SETTLEMENT_ATTEMPTS
    }
    #[must_use]
    pub fn amount(&self) -> Money {
        self.amount
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
}

/// What an order still owes the provider, given its status and its payment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentDue {
    /// A paid (or shipped, delivered) order whose payment is only held: take it.
    Capture,
    /// A cancelled or expired order whose payment is held: release it.
    Void,
    /// A cancelled order whose payment was taken: give it back.
    Refund,
    /// A cancelled or expired order whose authorization's answer was lost: ask the provider
    /// again (the same idempotent request) and release what it holds.
    Reconcile,
}

impl PaymentDue {
    /// The work owed for an order in `status` with a payment in `payment`.
    #[must_use]
    pub fn of(status: OrderStatus, payment: PaymentStatus) -> Option<Self> {
        let order_went_through =
            matches!(status, OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered);
        let order_ended = matches!(status, OrderStatus::Cancelled | OrderStatus::Expired);
        match payment {
            PaymentStatus::Pending if order_ended => Some(Self::Reconcile),
            // Still payable: the customer's retry asks again with the same attempt.
            PaymentStatus::Pending => None,
            PaymentStatus::Authorized if order_went_through => Some(Self::Capture),
            PaymentStatus::Authorized => Some(Self::Void),
            PaymentStatus::RefundPending => Some(Self::Refund),
            PaymentStatus::Captured
            | PaymentStatus::Voided
            | PaymentStatus::Refunded
            | PaymentStatus::Failed => None,
        }
    }

    /// The payment status once the work is done (a reconciliation ends voided: what it finds
    /// is released).
    #[must_use]
    pub const fn done(&self) -> PaymentStatus {
        match self {
            Self::Capture => PaymentStatus::Captured,
            Self::Void | Self::Reconcile => PaymentStatus::Voided,
            Self::Refund => PaymentStatus::Refunded,
        }
    }

    /// The stable snake_case name, for logs and metrics.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
            Self::Reconcile => "reconcile",
        }
    }
}

/// Why a payment change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentChangeError {
    /// The order is not waiting for payment, so no payment may start.
    #[error("no payment can start for an order that is {0}")]
    NotPayable(OrderStatus),
    /// A payment is already held or taken for this order.
    #[error("the order already has a payment that is {0}")]
    AlreadyPaid(PaymentStatus),
    /// Nothing of that kind is owed for the order.
    #[error("no {wanted} is owed for an order that is {status} with a payment that is {payment}")]
    NothingOwed {
        /// What was asked for.
        wanted: &'static str,
        /// The order's status.
        status: OrderStatus,
        /// The payment's status, or `none`.
        payment: &'static str,
    },
}
