//! The order state machine (SPEC.md section 3): the one table that says which action moves an
//! order from which status to which, and who may take it.

use std::{fmt, str::FromStr};

use crate::{Role, UserId};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Placed, stock reserved, waiting for payment until its deadline.
    PendingPayment,
    /// Paid, waiting to be shipped.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer. Terminal.
    Delivered,
    /// Cancelled by the customer or an admin; stock released. Terminal.
    Cancelled,
    /// Not paid in time; stock released. Terminal.
    Expired,
}

impl OrderStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [Self; 6] = [
        Self::PendingPayment,
        Self::Paid,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The stable snake_case name used on the wire and in storage.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// True when no action leads anywhere from here.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        OrderAction::ALL.iter().all(|action| rule(*self, *action).is_none())
    }
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    /// Creates the order; appears only as the first history entry, never as a transition.
    Place,
    /// Pays through the payment gateway.
    Pay,
    /// Cancels; releases stock.
    Cancel,
    /// Hands over to the carrier.
    Ship,
    /// Confirms delivery.
    Deliver,
    /// Ends an order not paid by its deadline; releases stock. Taken by the system only.
    Expire,
}

impl OrderAction {
    /// Every action, for exhaustive tests and documentation.
    pub const ALL: [Self; 6] =
        [Self::Place, Self::Pay, Self::Cancel, Self::Ship, Self::Deliver, Self::Expire];

    /// The stable snake_case name used on the wire and in storage.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Place => "place",
            Self::Pay => "pay",
            Self::Cancel => "cancel",
            Self::Ship => "ship",
            Self::Deliver => "deliver",
            Self::Expire => "expire",
        }
    }
}

/// A name that is not a status or an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known value")]
pub struct UnknownName(String);

impl UnknownName {
    pub(crate) fn new(name: &str) -> Self {
        Self(name.to_owned())
    }
}

macro_rules! named {
    ($type:ty) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName(s.to_owned()))
            }
        }
    };
}
named!(OrderStatus);
named!(OrderAction);

/// Who acts: a logged-in user with a role, or the system itself (the expiry job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A logged-in user.
    User {
        /// Who.
        id: UserId,
        /// With which role.
        role: Role,
    },
    /// Orderly itself, e.g. the job that expires unpaid orders.
    System,
}

impl Actor {
    /// The acting user, if any.
    #[must_use]
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { id, .. } => Some(*id),
            Self::System => None,
        }
    }

    /// True for an admin.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::User { role: Role::Admin, .. })
    }

    /// How this actor stands to an order owned by `owner`.
    #[must_use]
    pub fn kind_towards(&self, owner: UserId) -> ActorKind {
        match self {
            Self::System => ActorKind::System,
            Self::User { role: Role::Admin, .. } => ActorKind::Admin,
            Self::User { id, role: Role::Customer } if *id == owner => ActorKind::Owner,
            Self::User { role: Role::Customer, .. } => ActorKind::OtherCustomer,
        }
    }
}

/// How an actor stands to one order: what the permission rules are written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// The customer who placed the order.
    Owner,
    /// Any other customer.
    OtherCustomer,
    /// An administrator.
    Admin,
    /// The system (background jobs).
    System,
}

impl ActorKind {
    /// Every kind, for exhaustive tests.
    pub const ALL: [Self; 4] = [Self::Owner, Self::OtherCustomer, Self::Admin, Self::System];
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// No rule leads from `from` by `action`: an illegal move, including repeating one that
    /// already happened (cancelling a cancelled order).
    #[error("cannot {action} an order that is {from}")]
    Invalid {
        /// The order's current status.
        from: OrderStatus,
        /// The refused action.
        action: OrderAction,
        /// What this actor could do instead, possibly nothing.
        allowed: Vec<OrderAction>,
    },
    /// The move exists, but this actor may not make it (a customer shipping, say).
    #[error("not permitted to {action} an order that is {from}")]
    NotPermitted {
        /// The order's current status.
        from: OrderStatus,
        /// The refused action.
        action: OrderAction,
    },
    /// The payment deadline has passed: the order can no longer be paid (it is about to expire).
    #[error("the payment deadline {due_at} has passed")]
    PaymentOverdue {
        /// The deadline.
        due_at: crate::time::Timestamp,
        /// What the actor may do instead.
        allowed: Vec<OrderAction>,
    },
    /// An unpaid order can expire only once its payment deadline has passed.
    #[error("the payment deadline {due_at} has not passed yet")]
    NotDue {
        /// The deadline.
        due_at: crate::time::Timestamp,
    },
    /// `pay` moves an order only with the provider's authorization: see `Order::pay`.
    #[error("paying an order needs an authorized payment")]
    PaymentRequired,
    /// The order already has a payment holding money.
    #[error("the order already has a payment that is {0}")]
    AlreadyPaid(super::PaymentStatus),
}

/// Who may take a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permit {
    OwnerOrAdmin,
    Admin,
    System,
}

impl Permit {
    fn allows(self, actor: ActorKind) -> bool {
        match self {
            Self::OwnerOrAdmin => matches!(actor, ActorKind::Owner | ActorKind::Admin),
            Self::Admin => actor == ActorKind::Admin,
            Self::System => actor == ActorKind::System,
        }
    }
}

/// The transition table: the one place that knows every move.
fn rule(from: OrderStatus, action: OrderAction) -> Option<(OrderStatus, Permit)> {
    use OrderAction as A;
    use OrderStatus as S;
    match (from, action) {
        (S::PendingPayment, A::Pay) => Some((S::Paid, Permit::OwnerOrAdmin)),
        (S::PendingPayment, A::Cancel) => Some((S::Cancelled, Permit::OwnerOrAdmin)),
        (S::PendingPayment, A::Expire) => Some((S::Expired, Permit::System)),
        (S::Paid, A::Cancel) => Some((S::Cancelled, Permit::Admin)),
        (S::Paid, A::Ship) => Some((S::Shipped, Permit::Admin)),
        (S::Shipped, A::Deliver) => Some((S::Delivered, Permit::Admin)),
        _ => None,
    }
}

/// Decides where `action` by `actor` takes an order that is `from`.
///
/// # Errors
/// [`TransitionError::Invalid`] when there is no such move from `from` (listing what the actor may
/// do instead); [`TransitionError::NotPermitted`] when the move exists but not for this actor.
pub fn transition(
    from: OrderStatus,
    action: OrderAction,
    actor: ActorKind,
) -> Result<OrderStatus, TransitionError> {
    match rule(from, action) {
        Some((to, permit)) if permit.allows(actor) => Ok(to),
        Some(_) => Err(TransitionError::NotPermitted { from, action }),
        None => {
            Err(TransitionError::Invalid { from, action, allowed: allowed_actions(from, actor) })
        }
    }
}

/// The actions `actor` may take on an order that is `from`, in [`OrderAction::ALL`] order.
#[must_use]
pub fn allowed_actions(from: OrderStatus, actor: ActorKind) -> Vec<OrderAction> {
    OrderAction::ALL
        .into_iter()
        .filter(|action| rule(from, *action).is_some_and(|(_, permit)| permit.allows(actor)))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use OrderAction as A;
    use OrderStatus as S;

    /// The specification (SPEC.md section 3) written out as data, independently of `rule`:
    /// (from, action, to, who may).
    const SPEC: &[(S, A, S, &[ActorKind])] = &[
        (S::PendingPayment, A::Pay, S::Paid, &[ActorKind::Owner, ActorKind::Admin]),
        (S::PendingPayment, A::Cancel, S::Cancelled, &[ActorKind::Owner, ActorKind::Admin]),
        (S::PendingPayment, A::Expire, S::Expired, &[ActorKind::System]),
        (S::Paid, A::Cancel, S::Cancelled, &[ActorKind::Admin]),
        (S::Paid, A::Ship, S::Shipped, &[ActorKind::Admin]),
        (S::Shipped, A::Deliver, S::Delivered, &[ActorKind::Admin]),
    ];

    fn expected(from: S, action: A, actor: ActorKind) -> Result<S, TransitionError> {
        match SPEC.iter().find(|(f, a, _, _)| *f == from && *a == action) {
            Some((_, _, to, who)) if who.contains(&actor) => Ok(*to),
            Some(_) => Err(TransitionError::NotPermitted { from, action }),
            None => {
                let allowed = A::ALL
                    .into_iter()
                    .filter(|a| {
                        SPEC.iter()
                            .any(|(f, sa, _, who)| *f == from && sa == a && who.contains(&actor))
                    })
                    .collect();
                Err(TransitionError::Invalid { from, action, allowed })
            }
        }
    }

    #[test]
    fn every_status_action_and_actor_matches_the_specification() {
        let mut cells = 0;
        for from in S::ALL {
            for action in A::ALL {
                for actor in ActorKind::ALL {
                    assert_eq!(
                        transition(from, action, actor),
                        expected(from, action, actor),
                        "{from} --{action}--> by {actor:?}"
                    );
                    cells += 1;
                }
            }
        }
        assert_eq!(cells, 6 * 6 * 4);
    }

    #[test]
    fn delivered_cancelled_and_expired_are_the_terminal_statuses() {
        let terminal: Vec<S> = S::ALL.into_iter().filter(S::is_terminal).collect();
        assert_eq!(terminal, [S::Delivered, S::Cancelled, S::Expired]);
    }

    #[test]
    fn an_illegal_move_names_what_the_actor_may_do_instead() {
        assert_eq!(
            transition(S::PendingPayment, A::Ship, ActorKind::Owner),
            Err(TransitionError::Invalid {
                from: S::PendingPayment,
                action: A::Ship,
                allowed: vec![A::Pay, A::Cancel],
            })
        );
        let error = transition(S::Cancelled, A::Cancel, ActorKind::Admin).expect_err("terminal");
        assert_eq!(error.to_string(), "cannot cancel an order that is cancelled");
    }

    #[test]
    fn a_customer_may_not_cancel_a_paid_order_but_an_admin_may() {
        assert_eq!(
            transition(S::Paid, A::Cancel, ActorKind::Owner),
            Err(TransitionError::NotPermitted { from: S::Paid, action: A::Cancel })
        );
        assert_eq!(transition(S::Paid, A::Cancel, ActorKind::Admin), Ok(S::Cancelled));
    }

    #[test]
    fn names_round_trip() {
        for status in S::ALL {
            assert_eq!(status.to_string().parse::<S>(), Ok(status));
        }
        for action in A::ALL {
            assert_eq!(action.to_string().parse::<A>(), Ok(action));
        }
        assert_eq!("refund".parse::<A>(), Err(UnknownName("refund".into())));
    }

    #[test]
    fn actors_are_classified_against_the_owner() {
        let owner = UserId::new();
        let other = UserId::new();
        assert_eq!(
            Actor::User { id: owner, role: Role::Customer }.kind_towards(owner),
            ActorKind::Owner
        );
        assert_eq!(
            Actor::User { id: other, role: Role::Customer }.kind_towards(owner),
            ActorKind::OtherCustomer
        );
        assert_eq!(
            Actor::User { id: owner, role: Role::Admin }.kind_towards(owner),
            ActorKind::Admin
        );
        assert_eq!(Actor::System.kind_towards(owner), ActorKind::System);
        assert_eq!(Actor::System.user_id(), None);
        assert!(Actor::User { id: other, role: Role::Admin }.is_admin());
        assert!(!Actor::System.is_admin());
    }

    fn any_status() -> impl Strategy<Value = S> {
        prop::sample::select(S::ALL.to_vec())
    }
    fn any_action() -> impl Strategy<Value = A> {
        prop::sample::select(A::ALL.to_vec())
    }
    fn any_actor() -> impl Strategy<Value = ActorKind> {
        prop::sample::select(ActorKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn allowed_actions_are_exactly_the_ones_that_succeed(
            from in any_status(), actor in any_actor(),
        ) {
            let allowed = allowed_actions(from, actor);
            for action in A::ALL {
                prop_assert_eq!(allowed.contains(&action), transition(from, action, actor).is_ok());
            }
        }

        #[test]
        fn any_walk_ends_in_a_state_and_never_leaves_a_terminal_one(
            steps in prop::collection::vec((any_action(), any_actor()), 0..20),
        ) {
            let mut status = S::PendingPayment;
            for (action, actor) in steps {
                let was_terminal = status.is_terminal();
                if let Ok(next) = transition(status, action, actor) {
                    prop_assert!(!was_terminal);
                    prop_assert_ne!(next, status);
                    status = next;
                }
            }
        }

        #[test]
        fn other_customers_may_never_move_an_order(from in any_status(), action in any_action()) {
            prop_assert!(transition(from, action, ActorKind::OtherCustomer).is_err());
        }

        #[test]
        fn placing_is_never_a_transition(from in any_status(), actor in any_actor()) {
            let is_invalid = matches!(
                transition(from, A::Place, actor),
                Err(TransitionError::Invalid { .. })
            );
            prop_assert!(is_invalid);
        }
    }
}
