//! How the order use cases' refusals become problems.

use orderly_application::orders::{
    get_order::GetOrderError, list_orders::ListOrdersError, list_user_orders::ListUserOrdersError,
    move_order::MoveOrderError, order_history::OrderHistoryError, pay_order::PayOrderError,
    place_order::PlaceOrderError,
};
use orderly_domain::{OrderAction, OrderStatus, RuleError as _};
use serde_json::json;

use crate::{
    errors::{RETRY_AFTER_UNAVAILABLE, concurrent, forbidden, not_found, stale},
    problem::{ApiError, ErrorCode, FieldError},
};

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        let detail = error.to_string();
        match error {
            PlaceOrderError::Forbidden => forbidden(detail),
            PlaceOrderError::UnknownCustomer => ApiError::unauthenticated(
                "The account this access token belongs to no longer exists.",
                true,
            ),
            PlaceOrderError::ProductNotFound { product_id } => {
                ApiError::new(ErrorCode::ProductNotFound, detail)
                    .with_extension("product_id", json!(product_id.to_string()))
            }
            PlaceOrderError::ProductUnavailable { product_id } => {
                ApiError::new(ErrorCode::ProductUnavailable, detail)
                    .with_extension("product_id", json!(product_id.to_string()))
            }
            PlaceOrderError::InsufficientStock { product_id, requested, available } => {
                ApiError::new(ErrorCode::InsufficientStock, detail)
                    .with_extension("product_id", json!(product_id.to_string()))
                    .with_extension("requested", json!(requested))
                    .with_extension("available", json!(available))
            }
            PlaceOrderError::Invalid(invalid) => {
                // Per-line bounds were checked against `items[i]` already; what is left concerns
                // the lines together (their count, merged quantities, currencies, the total).
                ApiError::validation(vec![FieldError::new(
                    "items",
                    invalid.code(),
                    invalid.to_string(),
                )])
            }
            PlaceOrderError::Idempotency(refusal) => refusal.into(),
            PlaceOrderError::Store(store) => store.into(),
        }
    }
}

impl From<GetOrderError> for ApiError {
    fn from(error: GetOrderError) -> Self {
        match error {
            GetOrderError::NotFound => not_found("order"),
            GetOrderError::Store(store) => store.into(),
        }
    }
}

impl From<ListOrdersError> for ApiError {
    fn from(error: ListOrdersError) -> Self {
        match error {
            ListOrdersError::Forbidden => forbidden("Only users may list orders."),
            ListOrdersError::InvalidCursor(cursor) => cursor.into(),
            ListOrdersError::Store(store) => store.into(),
        }
    }
}

/// `GET /api/v1/users/{id}/orders`, routed with the users.
impl From<ListUserOrdersError> for ApiError {
    fn from(error: ListUserOrdersError) -> Self {
        match error {
            ListUserOrdersError::NotFound => not_found("user"),
            ListUserOrdersError::InvalidCursor(cursor) => cursor.into(),
            ListUserOrdersError::Store(store) => store.into(),
        }
    }
}

impl From<OrderHistoryError> for ApiError {
    fn from(error: OrderHistoryError) -> Self {
        match error {
            OrderHistoryError::NotFound => not_found("order"),
            OrderHistoryError::Store(store) => store.into(),
        }
    }
}

/// 409 `ORDER_INVALID_TRANSITION`, naming where the order is and what the actor may do.
fn invalid_transition(detail: String, from: &str, allowed: &[OrderAction]) -> ApiError {
    let allowed: Vec<&str> = allowed.iter().map(|action| action.as_str()).collect();
    let detail = if allowed.is_empty() {
        format!("{detail}; no action is possible")
    } else {
        format!("{detail}; allowed: {}", allowed.join(", "))
    };
    ApiError::new(ErrorCode::OrderInvalidTransition, detail)
        .with_extension("current_status", json!(from))
        .with_extension("allowed_actions", json!(allowed))
}

impl From<MoveOrderError> for ApiError {
    fn from(error: MoveOrderError) -> Self {
        let detail = error.to_string();
        match error {
            MoveOrderError::NotFound => not_found("order"),
            MoveOrderError::InvalidTransition { from, action: _, allowed } => {
                invalid_transition(detail, from.as_str(), &allowed)
            }
            MoveOrderError::Forbidden { .. } => forbidden(detail),
            MoveOrderError::VersionMismatch { expected, current } => stale(expected, current),
            MoveOrderError::Conflict => concurrent(),
            MoveOrderError::Idempotency(refusal) => refusal.into(),
            MoveOrderError::Store(store) => store.into(),
            MoveOrderError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<PayOrderError> for ApiError {
    fn from(error: PayOrderError) -> Self {
        let detail = error.to_string();
        match error {
            PayOrderError::NotFound => not_found("order"),
            PayOrderError::InvalidTransition { from, action: _, allowed } => {
                invalid_transition(detail, from.as_str(), &allowed)
            }
            PayOrderError::PaymentOverdue { due_at: _, allowed } => invalid_transition(
                format!("{detail}; the order can no longer be paid"),
                OrderStatus::PendingPayment.as_str(),
                &allowed,
            ),
            PayOrderError::Forbidden { .. } => forbidden(detail),
            PayOrderError::VersionMismatch { expected, current } => stale(expected, current),
            PayOrderError::Conflict => concurrent(),
            PayOrderError::PaidTooLate { status } => {
                ApiError::new(ErrorCode::ConcurrentModification, detail)
                    .with_extension("current_status", json!(status.as_str()))
            }
            PayOrderError::PaymentDeclined(reason) => ApiError::new(
                ErrorCode::PaymentDeclined,
                format!("The payment was declined: {reason}"),
            ),
            PayOrderError::PaymentUnavailable { retry_after, source } => {
                let retry_after = retry_after.map_or(RETRY_AFTER_UNAVAILABLE, |wait| {
                    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
                });
                ApiError::unavailable(
                    ErrorCode::PaymentGatewayUnavailable,
                    "The payment provider did not answer, so the payment may be pending (the order \
                     shows it). Retry with the same Idempotency-Key: the same authorization is \
                     asked for again, never a second one.",
                    retry_after,
                    source,
                )
            }
            PayOrderError::Idempotency(refusal) => refusal.into(),
            PayOrderError::Store(store) => store.into(),
            PayOrderError::Unexpected(source) => ApiError::internal(source),
        }
    }
}
