//! Use-case errors to problems: the one place that decides the status of each failure.

use actix_web::http::header;
use orderly_application::{
    StoreError,
    auth::{
        authenticate::AuthenticateError, authorize::AuthorizeError,
        refresh_session::RefreshSessionError,
    },
    idempotency::IdempotencyRefusal,
    orders::{
        get_order::GetOrderError, list_orders::ListOrdersError,
        list_user_orders::ListUserOrdersError, move_order::MoveOrderError,
        order_history::OrderHistoryError, pay_order::PayOrderError, place_order::PlaceOrderError,
    },
    pagination::InvalidCursor,
    products::{
        archive_product::ArchiveProductError, create_product::CreateProductError,
        get_product::GetProductError, list_products::ListProductsError,
        update_product::UpdateProductError,
    },
    users::{
        delete_user::DeleteUserError, get_user::GetUserError, list_users::ListUsersError,
        register_user::RegisterUserError, update_user::UpdateUserError,
    },
};
use orderly_domain::{OrderAction, OrderStatus, RuleError};
use serde_json::json;

use crate::problem::{ApiError, ErrorCode, FieldError};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u32 = 5;
/// Seconds a client should wait before retrying while the database is unreachable (and
/// `/ready`'s): the health gate answers such a 503 at once and probes the database at least
/// every 2 s, so a retry after 2 s finds the service again within about one probe of the
/// database's return (ADR 0021).
pub(crate) const RETRY_AFTER_DATABASE: u32 = 2;
const RETRY_AFTER_BUSY: u32 = 1;

/// 503 `SERVER_BUSY`: the bounded password hashing is at capacity.
fn server_busy() -> ApiError {
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

fn email_taken() -> ApiError {
    ApiError::new(ErrorCode::EmailTaken, "A user with this e-mail address already exists.")
}

fn sku_taken() -> ApiError {
    ApiError::new(ErrorCode::SkuTaken, "A product with this SKU already exists.")
}

/// The one product rule a draft or change can break after validation: the stock bound.
fn invalid_stock(invalid: &orderly_domain::ProductError) -> ApiError {
    ApiError::validation(vec![FieldError::new("stock", invalid.code(), invalid.to_string())])
}

/// 409 `LAST_ADMIN`: the only admin would be `what` ("deleted", "demoted").
fn last_admin(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::LastAdmin,
        format!(
            "This user is the only administrator and cannot be {what}; make another user an \
             administrator first."
        ),
    )
}

pub(crate) fn concurrent() -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentModification,
        "Another request changed it at the same moment; retry.",
    )
}

impl From<RegisterUserError> for ApiError {
    fn from(error: RegisterUserError) -> Self {
        match error {
            RegisterUserError::DuplicateEmail => email_taken(),
            RegisterUserError::Busy => server_busy(),
            RegisterUserError::Store(store) => store.into(),
            RegisterUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<GetUserError> for ApiError {
    fn from(error: GetUserError) -> Self {
        match error {
            GetUserError::NotFound => not_found("user"),
            GetUserError::Store(store) => store.into(),
        }
    }
}

impl From<ListUsersError> for ApiError {
    fn from(error: ListUsersError) -> Self {
        match error {
            ListUsersError::Forbidden => forbidden("Only administrators may list users."),
            ListUsersError::InvalidCursor(cursor) => cursor.into(),
            ListUsersError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(error: UpdateUserError) -> Self {
        match error {
            UpdateUserError::NotFound => not_found("user"),
            UpdateUserError::Forbidden => forbidden("Only administrators may change roles."),
            UpdateUserError::CurrentPasswordRequired => ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "Changing your own password or e-mail address needs your current password: \
                 send it as `current_password`.",
            ),
            UpdateUserError::WrongCurrentPassword => ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "`current_password` is not your current password.",
            ),
            UpdateUserError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateUserError::Conflict => concurrent(),
            UpdateUserError::DuplicateEmail => email_taken(),
            UpdateUserError::LastAdmin => last_admin("demoted"),
            UpdateUserError::Busy => server_busy(),
            UpdateUserError::Store(store) => store.into(),
            UpdateUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<DeleteUserError> for ApiError {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::NotFound => not_found("user"),
            DeleteUserError::HasOrders => ApiError::new(
                ErrorCode::UserHasOrders,
                "The user has orders, which are kept; the account cannot be deleted.",
            ),
            DeleteUserError::LastAdmin => last_admin("deleted"),
            DeleteUserError::Store(store) => store.into(),
            DeleteUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// The OAuth2 error members (RFC 6749 section 5.2) on top of the problem body.
pub(crate) fn oauth_error(code: ErrorCode, error: &str, description: &str) -> ApiError {
    ApiError::new(code, description)
        .with_extension("error", json!(error))
        .with_extension("error_description", json!(description))
}

impl From<AuthorizeError> for ApiError {
    fn from(error: AuthorizeError) -> Self {
        match error {
            AuthorizeError::InvalidToken => {
                ApiError::unauthenticated("The access token is invalid or expired.", true)
            }
            AuthorizeError::AccountGone => ApiError::unauthenticated(
                "The account this access token belongs to no longer exists.",
                true,
            ),
            AuthorizeError::SessionEnded => ApiError::unauthenticated(
                "The password was changed since this access token was issued; log in again.",
                true,
            ),
            AuthorizeError::Store(store) => store.into(),
        }
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(error: AuthenticateError) -> Self {
        match error {
            AuthenticateError::InvalidCredentials => {
                oauth_error(ErrorCode::InvalidGrant, "invalid_grant", "Invalid e-mail or password.")
            }
            AuthenticateError::Busy => server_busy(),
            AuthenticateError::Store(store) => store.into(),
            AuthenticateError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<RefreshSessionError> for ApiError {
    fn from(error: RefreshSessionError) -> Self {
        match error {
            RefreshSessionError::InvalidGrant => oauth_error(
                ErrorCode::InvalidGrant,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            ),
            RefreshSessionError::Reused => oauth_error(
                ErrorCode::InvalidGrant,
                "invalid_grant",
                "The refresh token was already used; the session has been revoked. Log in again.",
            ),
            RefreshSessionError::Store(store) => store.into(),
            RefreshSessionError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<CreateProductError> for ApiError {
    fn from(error: CreateProductError) -> Self {
        match error {
            CreateProductError::Forbidden => forbidden("Only administrators may create products."),
            CreateProductError::Invalid(invalid) => invalid_stock(&invalid),
            CreateProductError::DuplicateSku => sku_taken(),
            CreateProductError::Store(store) => store.into(),
            CreateProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<GetProductError> for ApiError {
    fn from(error: GetProductError) -> Self {
        match error {
            GetProductError::NotFound => not_found("product"),
            GetProductError::Store(store) => store.into(),
        }
    }
}

impl From<ListProductsError> for ApiError {
    fn from(error: ListProductsError) -> Self {
        match error {
            ListProductsError::Unauthenticated => ApiError::unauthenticated(
                "Listing archived products needs an administrator's access token.",
                false,
            ),
            ListProductsError::Forbidden => {
                forbidden("Only administrators may list archived products.")
            }
            ListProductsError::InvalidQuery(ref invalid) => {
                ApiError::validation(vec![FieldError::new("q", invalid.code(), error.to_string())])
            }
            ListProductsError::InvalidCursor(cursor) => cursor.into(),
            ListProductsError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateProductError> for ApiError {
    fn from(error: UpdateProductError) -> Self {
        match error {
            UpdateProductError::Forbidden => forbidden("Only administrators may change products."),
            UpdateProductError::NotFound => not_found("product"),
            UpdateProductError::Invalid(invalid) => invalid_stock(&invalid),
            UpdateProductError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateProductError::Conflict => concurrent(),
            UpdateProductError::DuplicateSku => sku_taken(),
            UpdateProductError::Store(store) => store.into(),
            UpdateProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<ArchiveProductError> for ApiError {
    fn from(error: ArchiveProductError) -> Self {
        match error {
            ArchiveProductError::Forbidden => {
                forbidden("Only administrators may archive products.")
            }
            ArchiveProductError::NotFound => not_found("product"),
            ArchiveProductError::Conflict => concurrent(),
            ArchiveProductError::Store(store) => store.into(),
            ArchiveProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
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
