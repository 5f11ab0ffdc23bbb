//! RFC 9457 problem details: the one error format of the API, and the catalogue of its codes.
//!
//! Every response with a status >= 400 is built here. Handlers return [`ApiError`]; use-case
//! errors become `ApiError` through the `From` impls in `errors.rs`; the framework's own
//! rejections (bad JSON, wrong content type, unknown route, ...) are mapped in `lib.rs`; and the
//! request-context middleware adds `instance` and `request_id` to every problem body on its way
//! out, so no handler has to know them.

use std::fmt;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, KnownFormat, ObjectBuilder, Ref, RefOr, Schema, SchemaFormat, Type,
        schema::RefBuilder,
    },
};

use crate::routes::orders::body::{OrderActionDto, OrderStatusDto};

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! catalogue {
    ($( $variant:ident => ($status:ident, $code:literal, $slug:literal, $title:literal, $description:literal) ),* $(,)?) => {
        /// The stable catalogue of problem codes (`docs/errors.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $( #[doc = $description] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The HTTP status.
            #[must_use]
            pub fn status(self) -> StatusCode {
                match self { $( Self::$variant => StatusCode::$status, )* }
            }

            /// The kebab-case slug of the `type` URI, `/problems/<slug>`.
            #[must_use]
            pub fn slug(self) -> &'static str {
                match self { $( Self::$variant => $slug, )* }
            }

            /// A short, human-readable summary that does not change between occurrences.
            #[must_use]
            pub fn title(self) -> &'static str {
                match self { $( Self::$variant => $title, )* }
            }

            /// What the problem means and what a client should do about it.
            #[must_use]
            pub fn description(self) -> &'static str {
                match self { $( Self::$variant => $description, )* }
            }

            /// The SCREAMING_SNAKE_CASE code in problem bodies.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $code, )* }
            }
        }
    };
}

catalogue! {
    ValidationFailed => (BAD_REQUEST, "VALIDATION_FAILED", "validation-failed", "Validation failed",
        "One or more fields are invalid. `errors` lists each field (as a JSON path such as `items[0].quantity`), a machine-readable `code` and a message. Fix the fields and send the request again."),
    MalformedRequest => (BAD_REQUEST, "MALFORMED_REQUEST", "malformed-request", "Malformed request",
        "The request could not be read: the JSON is not well-formed or has the wrong shape (unknown or missing fields, wrong types), or a path or query parameter has the wrong format."),
    InvalidCursor => (BAD_REQUEST, "INVALID_CURSOR", "invalid-cursor", "Invalid cursor",
        "The `cursor` query parameter is not one this list handed out (cursors are bound to a list and its sort order). Start again from the first page."),
    ProductNotFound => (BAD_REQUEST, "PRODUCT_NOT_FOUND", "product-not-found", "Product not found",
        "An order line names a product that does not exist."),
    InvalidGrant => (BAD_REQUEST, "INVALID_GRANT", "invalid-grant", "Invalid grant",
        "The token endpoint refused the credentials: wrong e-mail or password, or a refresh token that is unknown, expired, revoked or already used (reuse revokes the whole session). The body also carries the OAuth2 `error` and `error_description` members."),
    UnsupportedGrantType => (BAD_REQUEST, "UNSUPPORTED_GRANT_TYPE", "unsupported-grant-type", "Unsupported grant type",
        "The token endpoint supports `grant_type=password` and `grant_type=refresh_token` only."),
    Unauthenticated => (UNAUTHORIZED, "UNAUTHENTICATED", "unauthenticated", "Authentication required",
        "The route needs a valid access token: send `Authorization: Bearer <token>` with a token from `POST /api/v1/auth/token`. The token may be missing, malformed, expired or badly signed."),
    PaymentDeclined => (PAYMENT_REQUIRED, "PAYMENT_DECLINED", "payment-declined", "Payment declined",
        "The payment provider refused the charge. The order is still pending payment; pay again with other means before the deadline."),
    Forbidden => (FORBIDDEN, "FORBIDDEN", "forbidden", "Forbidden",
        "You are authenticated but not allowed to do this (for example a customer shipping an order, or changing a role)."),
    ReauthenticationRequired => (FORBIDDEN, "REAUTHENTICATION_REQUIRED", "reauthentication-required", "Re-authentication required",
        "Changing your own password or e-mail address needs your current password as well as your access token: send it as `current_password` in the same request. The `detail` says whether it was missing or wrong. Nothing was changed."),
    ReviewRequiresPurchase => (FORBIDDEN, "REVIEW_REQUIRES_PURCHASE", "review-requires-purchase", "Review requires a purchase",
        "Only a customer with a delivered order containing the product may review it (administrators included). Nothing was stored."),
    NotFound => (NOT_FOUND, "NOT_FOUND", "not-found", "Not found",
        "The resource does not exist, or it belongs to someone else (another customer's order or account is never revealed)."),
    RouteNotFound => (NOT_FOUND, "ROUTE_NOT_FOUND", "route-not-found", "Route not found",
        "No route matches this path. The API lives under `/api/v<n>`; each version's document is at `/api-docs/v<n>/openapi.json`."),
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method-not-allowed", "Method not allowed",
        "The route exists but not with this method. The `Allow` header lists the methods it accepts."),
    RequestTimeout => (REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "request-timeout", "Request timeout",
        "The request body did not arrive in time: the whole body must arrive within `CLIENT_REQUEST_TIMEOUT` of the request head (`timeout_seconds` gives it). Nothing was done and the connection is closed; send the request again on a new connection, with its body at once."),
    EmailTaken => (CONFLICT, "EMAIL_TAKEN", "email-taken", "E-mail address taken",
        "Another user already has this e-mail address (addresses are compared case-insensitively)."),
    SkuTaken => (CONFLICT, "SKU_TAKEN", "sku-taken", "SKU taken",
        "Another product already has this SKU."),
    InsufficientStock => (CONFLICT, "INSUFFICIENT_STOCK", "insufficient-stock", "Insufficient stock",
        "A product has fewer units left than the order asks for. Nothing was reserved; order fewer units."),
    ProductUnavailable => (CONFLICT, "PRODUCT_UNAVAILABLE", "product-unavailable", "Product unavailable",
        "A product in the order has been archived and can no longer be ordered."),
    OrderInvalidTransition => (CONFLICT, "ORDER_INVALID_TRANSITION", "order-invalid-transition", "Invalid order transition",
        "The order's current status does not allow this action (including repeating one that already happened). `current_status` and `allowed_actions` say where the order is and what you may do."),
    ConcurrentModification => (CONFLICT, "CONCURRENT_MODIFICATION", "concurrent-modification", "Concurrent modification",
        "Another request changed the resource at the same moment. Read it again and retry."),
    IdempotencyKeyInUse => (CONFLICT, "IDEMPOTENCY_KEY_IN_USE", "idempotency-key-in-use", "Idempotency key in use",
        "A request with the same `Idempotency-Key` is still being processed. Retry after `Retry-After` seconds: you then get its response."),
    UserHasOrders => (CONFLICT, "USER_HAS_ORDERS", "user-has-orders", "User has orders",
        "A user with orders cannot be deleted: orders are kept for accounting."),
    LastAdmin => (CONFLICT, "LAST_ADMIN", "last-admin", "Last administrator",
        "The request would delete or demote the only administrator, which would leave nobody to manage the shop. The user was neither deleted nor demoted; make another user an administrator first (`PATCH /api/v1/users/{id}` with `\"role\": \"admin\"`), then retry."),
    ReviewExists => (CONFLICT, "REVIEW_EXISTS", "review-exists", "Review exists",
        "You already reviewed this product: a customer reviews a product once. Change your review with `PATCH /api/v1/reviews/{id}` instead."),
    WebhookEndpointDisabled => (CONFLICT, "WEBHOOK_ENDPOINT_DISABLED", "webhook-endpoint-disabled", "Webhook endpoint disabled",
        "The webhook endpoint is disabled (by an admin, after answering 410 Gone, or after five days of failed deliveries), so nothing is delivered to it. Enable it with `PATCH` and `\"enabled\": true` (which also forgets its failures), then retry the delivery."),
    ApiVersionSunset => (GONE, "API_VERSION_SUNSET", "api-version-sunset", "API version retired",
        "This version of the API is past its sunset date (`sunset`, also in the `Sunset` header): every route under its prefix answers 410 and nothing was done. Move to the successor version: `migration_guide` links to the migration guide, and the `Link` header names this route's successor (`rel=\"successor-version\"`) where there is one."),
    IdempotencyKeyReused => (UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED", "idempotency-key-reused", "Idempotency key reused",
        "This `Idempotency-Key` was already used for a different request (another method, path or body). Use a new key for a new request."),
    PreconditionFailed => (PRECONDITION_FAILED, "PRECONDITION_FAILED", "precondition-failed", "Precondition failed",
        "The `If-Match` header does not match the resource's current `ETag`: it changed since you read it. Read it again, then retry with the new ETag."),
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "payload-too-large", "Payload too large",
        "The request body is larger than the server accepts."),
    UriTooLong => (URI_TOO_LONG, "URI_TOO_LONG", "uri-too-long", "URI too long",
        "The request target (path and query string) is longer than the server accepts; `max_uri_length` gives the limit in bytes. Send fewer or shorter query parameters, or page through a list instead of naming many items at once."),
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "unsupported-media-type", "Unsupported media type",
        "The body must be `application/json` (the token and revoke endpoints take `application/x-www-form-urlencoded`)."),
    RateLimited => (TOO_MANY_REQUESTS, "RATE_LIMITED", "rate-limited", "Too many requests",
        "You sent more requests than your rate-limit policy allows. Wait the number of seconds in `Retry-After`; the `RateLimit-Policy` and `RateLimit` headers say which policy applies, its quota and what is left of it."),
    HeadersTooLarge => (REQUEST_HEADER_FIELDS_TOO_LARGE, "HEADERS_TOO_LARGE", "headers-too-large", "Request headers too large",
        "The request has more header fields, or more bytes of header names and values, than the server accepts; `max_header_count` and `max_header_bytes` give the limits. Drop headers the API does not read (large cookies, tracing baggage) and send the request again."),
    InternalError => (INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal-error", "Internal server error",
        "Something went wrong on our side. The body says nothing more on purpose; quote `request_id` when you report it."),
    DatabaseUnavailable => (SERVICE_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database-unavailable", "Database unavailable",
        "The database cannot be reached. Retry after the number of seconds in `Retry-After`."),
    MigrationsPending => (SERVICE_UNAVAILABLE, "MIGRATIONS_PENDING", "migrations-pending", "Migrations pending",
        "The database schema is behind this version of Orderly, so the instance is not ready: `pending_migrations` lists the migrations it lacks. An operator applies them with `orderly migrate up`. Retry after `Retry-After` seconds."),
    DatabaseBusy => (SERVICE_UNAVAILABLE, "DATABASE_BUSY", "database-busy", "Database busy",
        "The database gave up on the request because of conflicting concurrent work. Retrying after `Retry-After` seconds is safe."),
    PaymentGatewayUnavailable => (SERVICE_UNAVAILABLE, "PAYMENT_GATEWAY_UNAVAILABLE", "payment-gateway-unavailable", "Payment gateway unavailable",
        "The payment provider did not answer. The payment may be pending: the order shows `payment.status` `pending` until a retry (after `Retry-After` seconds, with the same `Idempotency-Key`) asks for the same authorization again, never a second one. If the order is cancelled instead, whatever the provider holds is released."),
    ServerBusy => (SERVICE_UNAVAILABLE, "SERVER_BUSY", "server-busy", "Server busy",
        "The server is at capacity for this kind of work (checking and hashing passwords is bounded); nothing was done. Retry after `Retry-After` seconds."),
}

impl ErrorCode {
    /// The code whose slug is `slug`.
    #[must_use]
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.slug() == slug)
    }

    /// The `type` URI, relative to the server.
    #[must_use]
    pub fn type_uri(self) -> String {
        format!("/problems/{}", self.slug())
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`items[0].quantity`).
    #[schema(example = "items[0].quantity")]
    pub field: String,
    /// The rule that failed (`length`, `range`, `email`, `required`, ...).
    #[schema(example = "range")]
    pub code: String,
    /// A human-readable explanation.
    #[schema(example = "quantity must be between 1 and 1000")]
    pub message: String,
}

impl FieldError {
    /// A field error.
    #[must_use]
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { field: field.into(), code: code.into(), message: message.into() }
    }
}

/// An RFC 9457 problem details body.
///
/// Its OpenAPI schema is written by hand (below) rather than derived: the derive would make the
/// flattened `extensions` an `allOf` with an empty object, which generated clients read as "no
/// member allowed", and could not say which members some problems carry.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A relative URI naming the problem type; `GET` it for a human description.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// The stable, machine-readable code (see `docs/errors.md`).
    pub code: String,
    /// The request id, also in the `X-Request-Id` response header.
    pub request_id: String,
    /// The invalid fields, for `VALIDATION_FAILED`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Problem-specific members (`current_status`, `allowed_actions`, the OAuth2 `error`, ...),
    /// each listed in the schema's members.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// An extension member (RFC 9457 section 3.2) that some problems carry: its name, its schema,
/// and which problems carry it. The `Problem` schema lists each as an optional property, so a
/// generated client reads them typed; a test checks that every member given to a problem
/// ([`ApiError::with_extension`]) is listed here.
pub(crate) struct Member {
    /// The member's name in the body.
    name: &'static str,
    /// Its schema, with a description naming the problems that carry it.
    schema: fn() -> RefOr<Schema>,
}

fn text(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description)).into()
}

fn count(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .description(Some(description))
        .into()
}

fn order_status() -> RefOr<Schema> {
    RefBuilder::new()
        .ref_location_from_schema_name(OrderStatusDto::name())
        .description(Some(
            "Where the order is: `ORDER_INVALID_TRANSITION`, and `CONCURRENT_MODIFICATION` when \
             the order moved on while its payment was being taken.",
        ))
        .build()
        .into()
}

fn order_actions() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(OrderActionDto::name()))
        .description(Some(
            "What the caller may do with the order now (`ORDER_INVALID_TRANSITION`); empty when \
             nothing is possible.",
        ))
        .into()
}

fn product_id() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(
            "The product at fault: `PRODUCT_NOT_FOUND`, `PRODUCT_UNAVAILABLE`, \
             `INSUFFICIENT_STOCK`.",
        ))
        .into()
}

fn checks() -> RefOr<Schema> {
    ObjectBuilder::new()
        .additional_properties(Some(
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some([
                "ok",
                "unavailable",
                "pending",
            ])),
        ))
        .description(Some(
            "Each readiness check and its state (`GET /ready`: `DATABASE_UNAVAILABLE`, \
             `MIGRATIONS_PENDING`).",
        ))
        .into()
}

fn pending_migrations() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("The migrations the database lacks (`MIGRATIONS_PENDING`)."))
        .into()
}

fn timeout_seconds() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0))
        .description(Some("How long the request body may take, in seconds (`REQUEST_TIMEOUT`)."))
        .into()
}

fn sunset() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("When the version was retired (`API_VERSION_SUNSET`)."))
        .into()
}

/// Every extension member a problem may carry, in the order the schema lists them.
pub(crate) const MEMBERS: &[Member] = &[
    Member { name: "current_status", schema: order_status },
    Member { name: "allowed_actions", schema: order_actions },
    Member { name: "product_id", schema: product_id },
    Member {
        name: "requested",
        schema: || count("Units the order asks for (`INSUFFICIENT_STOCK`)."),
    },
    Member { name: "available", schema: || count("Units left (`INSUFFICIENT_STOCK`).") },
    Member {
        name: "error",
        schema: || {
            text(
                "The OAuth2 error code (RFC 6749 section 5.2) on the token and revoke endpoints' \
                 problems: `invalid_grant`, `unsupported_grant_type` or `invalid_request`.",
            )
        },
    },
    Member {
        name: "error_description",
        schema: || text("The OAuth2 error description, the same as `detail`."),
    },
    Member {
        name: "policy",
        schema: || text("The rate-limit policy that refused the request (`RATE_LIMITED`)."),
    },
    Member { name: "timeout_seconds", schema: timeout_seconds },
    Member {
        name: "max_uri_length",
        schema: || count("The longest request target accepted, in bytes (`URI_TOO_LONG`)."),
    },
    Member {
        name: "max_header_count",
        schema: || count("The most header fields accepted (`HEADERS_TOO_LARGE`)."),
    },
    Member {
        name: "max_header_bytes",
        schema: || {
            count("The most bytes of header names and values accepted (`HEADERS_TOO_LARGE`).")
        },
    },
    Member { name: "checks", schema: checks },
    Member { name: "pending_migrations", schema: pending_migrations },
    Member {
        name: "migration_guide",
        schema: || text("The migration guide's address (`API_VERSION_SUNSET`)."),
    },
    Member { name: "sunset", schema: sunset },
];

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let member = |description: &str| {
            ObjectBuilder::new().schema_type(Type::String).description(Some(description))
        };
        let mut problem = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An RFC 9457 problem details body: the standard members, `code` and \
                 `request_id` always; `errors` and the other members only in the problems that \
                 carry them (each member's description names them).",
            ))
            .property(
                "type",
                member("A relative URI naming the problem type; `GET` it for a human description."),
            )
            .property("title", member("A short summary of the problem type."))
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(400))
                    .maximum(Some(599))
                    .description(Some("The HTTP status.")),
            )
            .property("detail", member("What went wrong this time."))
            .property("instance", member("The request path."))
            .property("code", member("The stable, machine-readable code (see `docs/errors.md`)."))
            .property(
                "request_id",
                member("The request id, also in the `X-Request-Id` response header."),
            )
            .property(
                "errors",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(FieldError::name()))
                    .description(Some("The invalid fields (`VALIDATION_FAILED`).")),
            );
        for name in ["type", "title", "status", "detail", "instance", "code", "request_id"] {
            problem = problem.required(name);
        }
        for member in MEMBERS {
            problem = problem.property(member.name, (member.schema)());
        }
        problem
            .examples([serde_json::json!({
                "type": "/problems/insufficient-stock", "title": "Insufficient stock",
                "status": 409,
                "detail": "product 0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d has 2 left, 5 requested",
                "instance": "/api/v1/orders", "code": "INSUFFICIENT_STOCK",
                "request_id": "0193a0b2-7c4e-7d1a-9f00-000000000001",
                "product_id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "requested": 5,
                "available": 2
            })])
            .into()
    }
}

impl ToSchema for Problem {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((FieldError::name().into_owned(), FieldError::schema()));
        schemas.push((OrderStatusDto::name().into_owned(), OrderStatusDto::schema()));
        schemas.push((OrderActionDto::name().into_owned(), OrderActionDto::schema()));
    }
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    extensions: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(header::HeaderName, String)>,
    /// The cause, logged (with its whole chain) for 5xx answers and never sent.
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// A problem with this code and detail.
    #[must_use]
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
            source: None,
        }
    }

    /// `VALIDATION_FAILED` with the given field errors.
    #[must_use]
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{} is invalid: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self { errors, ..Self::new(ErrorCode::ValidationFailed, detail) }
    }

    /// 401 with the `WWW-Authenticate: Bearer` challenge.
    #[must_use]
    pub fn unauthenticated(detail: impl Into<String>, token_sent: bool) -> Self {
        let challenge = if token_sent {
            r#"Bearer realm="orderly", error="invalid_token""#
        } else {
            r#"Bearer realm="orderly""#
        };
        Self::new(ErrorCode::Unauthenticated, detail)
            .with_header(header::WWW_AUTHENTICATE, challenge)
    }

    /// A 500 that logs `source` and tells the client nothing more.
    #[must_use]
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(ErrorCode::InternalError, "An unexpected error occurred.")
        }
    }

    /// A 503 with `Retry-After`, logging `source`.
    #[must_use]
    pub fn unavailable(
        code: ErrorCode,
        detail: impl Into<String>,
        retry_after: u32,
        source: anyhow::Error,
    ) -> Self {
        Self { source: Some(source), ..Self::new(code, detail) }
            .with_header(header::RETRY_AFTER, retry_after.to_string())
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a problem-specific member to the body: one the OpenAPI schema lists (`MEMBERS`).
    #[must_use]
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The problem body, before the middleware fills in `instance` and `request_id`.
    #[must_use]
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: self.code.type_uri(),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            instance: String::new(),
            code: self.code.as_str().to_owned(),
            request_id: String::new(),
            errors: self.errors.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = self.source.as_ref().filter(|_| self.code.status().is_server_error())
        {
            // The cause chain on one line (`{:#}`), never `{:?}`: anyhow's Debug appends the
            // backtrace it captured whenever RUST_BACKTRACE is set, kilobytes per request.
            tracing::error!(code = self.code.as_str(), error = %format_args!("{source:#}"), "request failed");
        }
        let problem = self.problem();
        let mut response = HttpResponse::build(self.code.status());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = response.body(body);
        response.extensions_mut().insert(problem);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_slugs_and_titles_are_unique() {
        let all = ErrorCode::ALL;
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
                assert_ne!(a.slug(), b.slug());
            }
            assert_eq!(ErrorCode::from_slug(a.slug()), Some(*a));
            assert!(a.status().is_client_error() || a.status().is_server_error());
            assert_eq!(a.as_str().to_lowercase().replace('_', "-"), a.slug(), "{a:?}");
        }
    }

    #[test]
    fn the_error_catalogue_documents_every_code() {
        let catalogue = include_str!("../../../docs/errors.md");
        for code in ErrorCode::ALL {
            assert!(
                catalogue.contains(&format!("`{}`", code.as_str())),
                "docs/errors.md lacks {}",
                code.as_str()
            );
            assert!(
                catalogue.contains(&code.type_uri()),
                "docs/errors.md lacks {}",
                code.type_uri()
            );
        }
    }

    /// The names `with_extension` is called with anywhere in this crate's sources.
    fn members_given(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("a source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                members_given(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let source = std::fs::read_to_string(&path).expect("a source file");
                // Written in two parts, so that this line is not a call it finds.
                for call in source.split(concat!(".with_", "extension(")).skip(1) {
                    if let Some(name) = call.trim_start().strip_prefix('"') {
                        let name = name.split('"').next().unwrap_or_default().to_owned();
                        found.push((name, path.display().to_string()));
                    }
                }
            }
        }
    }

    #[test]
    fn every_member_a_problem_is_given_is_in_its_schema() {
        let mut given = Vec::new();
        members_given(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut given);
        assert!(given.iter().any(|(name, _)| name == "allowed_actions"), "the scan finds calls");
        for (name, file) in given {
            assert!(
                MEMBERS.iter().any(|member| member.name == name),
                "{file} gives problems a `{name}` member: list it in problem::MEMBERS so that \
                 the OpenAPI `Problem` schema types it"
            );
        }
        let RefOr::T(Schema::Object(schema)) = Problem::schema() else { panic!("an object") };
        for (i, member) in MEMBERS.iter().enumerate() {
            assert!(!schema.required.iter().any(|name| name == member.name), "{}", member.name);
            assert!(MEMBERS[i + 1..].iter().all(|other| other.name != member.name));
        }
        assert_eq!(schema.properties.len(), 8 + MEMBERS.len(), "no member named twice");
    }

    #[test]
    fn an_internal_error_shows_no_detail_of_its_cause() {
        let error = ApiError::internal(anyhow::anyhow!("password=hunter2 in connection string"));
        let problem = error.problem();
        assert_eq!(problem.status, 500);
        assert!(!serde_json::to_string(&problem).expect("json").contains("hunter2"));
    }

    #[test]
    fn unauthenticated_carries_the_bearer_challenge() {
        let response = ApiError::unauthenticated("missing token", false).error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some(r#"Bearer realm="orderly""#)
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some(PROBLEM_JSON)
        );
    }
}
