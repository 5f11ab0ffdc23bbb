//! The shared part of turning errors into problems: the store's failures, bad cursors and
//! idempotency refusals, which every resource meets, and the helpers for refusals worded alike
//! everywhere. Each resource module (`routes/`) maps its own use cases' errors with these.

use actix_web::http::header;
use orderly_application::{StoreError, idempotency::IdempotencyRefusal, pagination::InvalidCursor};
use serde_json::json;

use crate::problem::{ApiError, ErrorCode};

/// Seconds a client should wait before retrying after a 503.
pub(crate) const RETRY_AFTER_UNAVAILABLE: u32 = 5;
/// Seconds a client should wait before retrying while the database is unreachable (and
/// `/ready`'s): the health gate answers such a 503 at once and probes the database at least
/// every 2 s, so a retry after 2 s finds the service again within about one probe of the
/// database's return (ADR 0021).
pub(crate) const RETRY_AFTER_DATABASE: u32 = 2;
const RETRY_AFTER_BUSY: u32 = 1;

/// 503 `SERVER_BUSY`: the bounded password hashing is at capacity.
pub(crate) fn server_busy() -> ApiError {
    ApiError::new(
        ErrorCode::ServerBusy,
        "Too many passwords are being checked at the moment; nothing was done. Try again shortly.",
    )
    .with_header(actix_web::http::header::RETRY_AFTER, RETRY_AFTER_BUSY.to_string())
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(source) => ApiError::unavailable(
                ErrorCode::DatabaseUnavailable,
                "The database is unavailable; try again shortly.",
                RETRY_AFTER_DATABASE,
                source,
            ),
            StoreError::Contention(source) => ApiError::unavailable(
                ErrorCode::DatabaseBusy,
                "The database is busy with conflicting work; try again.",
                RETRY_AFTER_BUSY,
                source,
            ),
            StoreError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<InvalidCursor> for ApiError {
    fn from(error: InvalidCursor) -> Self {
        ApiError::new(ErrorCode::InvalidCursor, error.to_string())
    }
}

pub(crate) fn not_found(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
}

pub(crate) fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, detail)
}

pub(crate) fn stale(expected: u64, current: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PreconditionFailed,
        format!("If-Match names version {expected}, the resource is at version {current}"),
    )
    .with_header(actix_web::http::header::ETAG, crate::etag::etag(current))
}

pub(crate) fn concurrent() -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentModification,
        "Another request changed it at the same moment; retry.",
    )
}

/// The OAuth2 error members (RFC 6749 section 5.2) on top of the problem body.
pub(crate) fn oauth_error(code: ErrorCode, error: &str, description: &str) -> ApiError {
    ApiError::new(code, description)
        .with_extension("error", json!(error))
        .with_extension("error_description", json!(description))
}

impl From<IdempotencyRefusal> for ApiError {
    fn from(refusal: IdempotencyRefusal) -> Self {
        let detail = refusal.to_string();
        match refusal {
            IdempotencyRefusal::InUse { retry_after } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                ApiError::new(ErrorCode::IdempotencyKeyInUse, detail)
                    .with_header(header::RETRY_AFTER, seconds.max(1).to_string())
            }
            IdempotencyRefusal::Reused => ApiError::new(ErrorCode::IdempotencyKeyReused, detail),
        }
    }
}
