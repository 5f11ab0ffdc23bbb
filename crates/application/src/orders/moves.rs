//! What moving an order and paying it share: the request, loading the order the actor may see
//! at the version they name, and what happens once the move is stored.

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderId, OrderTransition, Reason};

use crate::{
    StoreError,
    idempotency::Idempotent,
    orders::{find_visible, settle_payments::Settlement},
    ports::OrderRepository,
};

/// A move as stored: the order after it and its history entry.
pub type Moved = (Order, OrderTransition);

/// What a move is asked with, whichever it is.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub id: OrderId,
    pub reason: Option<Reason>,
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    /// Recorded in the order's history, for tracing.
    pub request_id: Option<String>,
    /// The client's idempotency key, if it sent one: the move is made at most once per key.
    pub idempotency: Option<Idempotent<Moved>>,
}

/// Why a move was refused for the order's state in the store, whichever move it was.
pub(crate) enum LoadRefusal {
    /// No such order, or another customer's.
    NotFound,
    /// The client's version is not the current one.
    VersionMismatch {
        expected: u64,
        current: u64,
    },
    /// Another request changed the order at the same moment (no `If-Match` was sent).
    Conflict,
    Store(StoreError),
}

impl From<StoreError> for LoadRefusal {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The order `id` if `actor` may see it and it is at `expected_version` (when given).
pub(crate) async fn load(
    orders: &Arc<dyn OrderRepository>,
    actor: &Actor,
    id: OrderId,
    expected_version: Option<u64>,
) -> Result<Order, LoadRefusal> {
    let order = find_visible(orders, actor, id).await?.ok_or(LoadRefusal::NotFound)?;
    match expected_version.filter(|expected| *expected != order.version()) {
        Some(expected) => Err(LoadRefusal::VersionMismatch { expected, current: order.version() }),
        None => Ok(order),
    }
}

/// A version-guarded write of order `id` lost to another writer: a client that sent `If-Match`
/// is told its version is no longer current, with the current one (HTTP 412); any other gets a
/// conflict.
pub(crate) async fn lost_race(
    orders: &Arc<dyn OrderRepository>,
    id: OrderId,
    expected_version: Option<u64>,
) -> LoadRefusal {
    let Some(expected) = expected_version else { return LoadRefusal::Conflict };
    match orders.find_by_id(id).await {
        Ok(Some(current)) => LoadRefusal::VersionMismatch { expected, current: current.version() },
        Ok(None) => LoadRefusal::NotFound,
        Err(error) => error.into(),
    }
}

/// A stored move: asks the provider for what the order owes now (a capture, a refund, a void;
/// a failure stays owed for the job). What the client is finally sent for its key is recorded
/// by the idempotency decorator ([`Keys::run`](crate::idempotency::Keys::run)).
pub(crate) async fn settle_stored(
    settlement: &Settlement,
    mut order: Order,
    entry: OrderTransition,
) -> Moved {
    settlement.settle(&mut order).await;
    (order, entry)
}

/// The refusals every move shares, for each use case's error enum.
macro_rules! common_refusals {
    ($error:ident) => {
        impl From<$crate::orders::moves::LoadRefusal> for $error {
            fn from(refusal: $crate::orders::moves::LoadRefusal) -> Self {
                match refusal {
                    $crate::orders::moves::LoadRefusal::NotFound => Self::NotFound,
                    $crate::orders::moves::LoadRefusal::VersionMismatch { expected, current } => {
                        Self::VersionMismatch { expected, current }
                    }
                    $crate::orders::moves::LoadRefusal::Conflict => Self::Conflict,
                    $crate::orders::moves::LoadRefusal::Store(store) => Self::Store(store),
                }
            }
        }

        impl From<$crate::ports::OrderWriteError> for $error {
            fn from(error: $crate::ports::OrderWriteError) -> Self {
                use $crate::ports::OrderWriteError;
                match error {
                    OrderWriteError::NotFound => Self::NotFound,
                    OrderWriteError::Stale => Self::Conflict,
                    OrderWriteError::Store(store) => Self::Store(store),
                }
            }
        }
    };
}
pub(crate) use common_refusals;
