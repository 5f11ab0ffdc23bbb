//! `/api/v2/orders`: orders with decimal-string money, lists of summaries (whole orders with
//! `include=items`) that carry their page links, and transitions that answer with the order.
//! Same use cases, request bodies, refusals and idempotency as v1 (`routes::orders`).
//!
//! A transition answers `200 OK` with the order as it now is, its new `ETag`, and
//! `Content-Location` naming the order (RFC 9110 section 8.7: the body is a representation of
//! that resource, so the `ETag` is the one a `GET` of the order gives). Not 201: nothing new
//! is addressed by the answer; the history entry is still created, and listed by
//! `GET .../transitions`.

use std::{borrow::Cow, sync::Arc};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use chrono::{DateTime, Utc};
use orderly_application::{
    idempotency::{Idempotent, Render},
    orders::{moves::Moved, place_order::PlaceOrderInput},
    ports::OrderFilter,
};
use orderly_domain::{Actor, Order, OrderAction, OrderId, RuleError, UserId, Uuid, rule, time};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{Object, Ref, RefOr, Schema, schema::AnyOfBuilder},
};

use super::{money::DecimalMoney, page::page};
use crate::{
    auth::Authenticated,
    dto::{IdempotencyKeyHeader, PageQuery, schema},
    etag::{etag, if_match},
    idempotency::{self, stored},
    problem::{ApiError, FieldError, Problem},
    rate_limit::{self, Policy},
    routes::{
        list_request,
        orders::{
            CreateOrderRequest, OrderActionDto, OrderListQuery, OrderStatusDto, PaymentStatusDto,
            RequestedMove, TransitionRequest, TransitionResponse, request_id, respond,
        },
        resource,
        table::prefix_of,
    },
    state::ApiState,
};

// ---- Bodies ----

/// One line of an order, with the product as it was when ordered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = OrderItem)]
pub struct OrderItemResponse {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price: DecimalMoney,
    pub quantity: u32,
    pub line_total: DecimalMoney,
}

/// An order's payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentResponse {
    pub status: PaymentStatusDto,
    /// The payment provider's reference (`null` for a declined payment, and while `pending`).
    #[schema(required = true)]
    pub reference: Option<String>,
    pub amount: DecimalMoney,
    /// The provider failed the work this payment still owes (a capture, a void, a refund, or
    /// finding an authorization whose answer was lost) many times in a row: it is still asked
    /// for, and operators are alerted to look.
    pub needs_attention: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&orderly_domain::Payment> for PaymentResponse {
    fn from(payment: &orderly_domain::Payment) -> Self {
        Self {
            status: payment.status().into(),
            reference: payment.reference().map(str::to_owned),
            amount: payment.amount().into(),
            needs_attention: payment.needs_attention(),
            created_at: payment.created_at(),
            updated_at: payment.updated_at(),
        }
    }
}

/// An order without its items, as lists show it (unless `include=items`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = OrderSummary)]
pub struct OrderSummaryResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatusDto,
    /// The sum of the line totals.
    pub total: DecimalMoney,
    /// When an unpaid order expires.
    pub payment_due_at: DateTime<Utc>,
    /// The payment, `null` until the order is first paid.
    #[schema(required = true)]
    pub payment: Option<PaymentResponse>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the caller may do next (`POST .../transitions`).
    pub allowed_actions: Vec<OrderActionDto>,
}

impl OrderSummaryResponse {
    /// The order as `viewer` sees it at `now` (the allowed actions depend on who asks, and when).
    #[must_use]
    pub fn new(order: &Order, viewer: &Actor, now: time::Timestamp) -> Self {
        Self {
            id: order.id().into_uuid(),
            user_id: order.user_id().into_uuid(),
            status: order.status().into(),
            total: order.total().into(),
            payment_due_at: order.payment_due_at(),
            payment: order.payment().map(PaymentResponse::from),
            created_at: order.created_at(),
            updated_at: order.updated_at(),
            allowed_actions: order
                .allowed_actions(viewer, now)
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}

/// An order as clients see it: its summary and its items.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatusDto,
    pub items: Vec<OrderItemResponse>,
    /// The sum of the line totals.
    pub total: DecimalMoney,
    /// When an unpaid order expires.
    pub payment_due_at: DateTime<Utc>,
    /// The payment, `null` until the order is first paid.
    #[schema(required = true)]
    pub payment: Option<PaymentResponse>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the caller may do next (`POST .../transitions`).
    pub allowed_actions: Vec<OrderActionDto>,
}

impl OrderResponse {
    /// The order as `viewer` sees it at `now` (the allowed actions depend on who asks, and when).
    #[must_use]
    pub fn new(order: &Order, viewer: &Actor, now: time::Timestamp) -> Self {
        let OrderSummaryResponse {
            id,
            user_id,
            status,
            total,
            payment_due_at,
            payment,
            created_at,
            updated_at,
            allowed_actions,
        } = OrderSummaryResponse::new(order, viewer, now);
        let items = order
            .items()
            .iter()
            .map(|item| OrderItemResponse {
                product_id: item.product_id().into_uuid(),
                sku: item.sku().as_str().to_owned(),
                name: item.name().as_str().to_owned(),
                unit_price: item.unit_price().into(),
                quantity: item.quantity().get(),
                line_total: item.line_total().into(),
            })
            .collect();
        Self {
            id,
            user_id,
            status,
            items,
            total,
            payment_due_at,
            payment,
            created_at,
            updated_at,
            allowed_actions,
        }
    }
}

/// An order in a list: its summary, or with `include=items` the whole order.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OrderListEntry {
    Summary(OrderSummaryResponse),
    Whole(OrderResponse),
}

impl PartialSchema for OrderListEntry {
    /// `anyOf`, not `oneOf`: a whole order is also a valid summary (it has every member of one).
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(OrderSummaryResponse::name()))
            .item(Ref::from_schema_name(OrderResponse::name()))
            .description(Some(
                "An order's summary; with `include=items`, the whole order with its `items`.",
            ))
            .into()
    }
}

impl ToSchema for OrderListEntry {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OrderListEntry")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((OrderSummaryResponse::name().into(), OrderSummaryResponse::schema()));
        <OrderSummaryResponse as ToSchema>::schemas(schemas);
        schemas.push((OrderResponse::name().into(), OrderResponse::schema()));
        <OrderResponse as ToSchema>::schemas(schemas);
    }
}

page! {
    /// One page of orders.
    OrderList of OrderListEntry
}

page! {
    /// An order's history, oldest first, in one page.
    OrderTransitionList of TransitionResponse
}

/// What an order list includes besides each order's summary.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeQuery {
    /// `items`: whole orders, each with its `items`, instead of summaries.
    #[param(schema_with = include)]
    pub include: Option<String>,
}

/// The values of `include`.
const INCLUDABLE: [&str; 1] = ["items"];

fn include() -> Object {
    schema::string(false)
        .enum_values(Some(INCLUDABLE))
        .description(Some("`items` for whole orders instead of summaries."))
        .build()
}

/// An `include` value that names nothing a list can include.
#[derive(Debug)]
pub struct UnknownInclude(String);

impl std::fmt::Display for UnknownInclude {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` cannot be included; use one of: {}", self.0, INCLUDABLE.join(", "))
    }
}

impl std::error::Error for UnknownInclude {}

impl RuleError for UnknownInclude {
    fn code(&self) -> &'static str {
        rule::ONE_OF
    }
}

impl IncludeQuery {
    /// Whether whole orders were asked for.
    ///
    /// # Errors
    /// A 400 `VALIDATION_FAILED` naming `include` for any value but `items`.
    pub(crate) fn items(&self) -> Result<bool, ApiError> {
        match self.include.as_deref() {
            None => Ok(false),
            Some("items") => Ok(true),
            Some(other) => {
                let error = UnknownInclude(other.to_owned());
                Err(ApiError::validation(vec![FieldError::new(
                    "include",
                    error.code(),
                    error.to_string(),
                )]))
            }
        }
    }
}

/// The entries of a list of `orders` as `viewer` sees them at `now`: whole with `items`.
pub(crate) fn entries(
    orders: &[Order],
    items: bool,
    viewer: &Actor,
    now: time::Timestamp,
) -> Vec<OrderListEntry> {
    orders
        .iter()
        .map(|order| {
            if items {
                OrderListEntry::Whole(OrderResponse::new(order, viewer, now))
            } else {
                OrderListEntry::Summary(OrderSummaryResponse::new(order, viewer, now))
            }
        })
        .collect()
}

// ---- Routes ----

/// Place an order for yourself.
///
/// Stock is reserved at once (an order never oversells); the order then waits for payment
/// until `payment_due_at`, after which it expires and the stock is released.
#[utoipa::path(
    post, path = "/orders", operation_id = "placeOrder", tag = "orders",
    params(IdempotencyKeyHeader),
    request_body = CreateOrderRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The order, pending payment (or, for a repeated Idempotency-Key, the first response)", body = OrderResponse,
            headers(("Location" = String), ("ETag" = String),
                ("Idempotent-Replayed" = String, description = "`true` when this is the first response to the same Idempotency-Key, sent again"))),
        (status = 400, description = "VALIDATION_FAILED, MALFORMED_REQUEST or PRODUCT_NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "INSUFFICIENT_STOCK, PRODUCT_UNAVAILABLE, or IDEMPOTENCY_KEY_IN_USE (with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED: the key was used for another request", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    body: web::Json<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    rate_limit::enforce(&request, Policy::Orders, actor.user_id(), None).await?;
    let body = body.into_inner();
    let idempotent = idempotency::request(&request, &actor, &body)?;
    let mut input = PlaceOrderInput::try_from(body)?;
    input.request_id = request_id(&request);
    let clock = state.clock.clone();
    let prefix = prefix_of(request.path());
    let render: Render<Order> = Arc::new(move |order: &Order| {
        stored(
            StatusCode::CREATED,
            Some(format!("{prefix}/orders/{}", order.id())),
            Some(etag(order.version())),
            &OrderResponse::new(order, &actor, clock.now()),
        )
    });
    input.idempotency =
        idempotent.map(|request| Idempotent { request, render: Arc::clone(&render) });
    let outcome = state.use_cases.place_order.execute(&actor, input).await?;
    respond(&state, outcome, &render, |metrics, _| metrics.order_placed())
}

/// List orders, newest first: your own, or (admins) everyone's, filtered by status and user.
/// Each is a summary, without its items, unless `include=items`.
#[utoipa::path(
    get, path = "/orders", operation_id = "listOrders", tag = "orders",
    params(PageQuery, OrderListQuery, IncludeQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of orders", body = OrderList),
        (status = 400, description = "VALIDATION_FAILED (limit, include) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    page: web::Query<PageQuery>,
    query: web::Query<OrderListQuery>,
    include: web::Query<IncludeQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let items = include.items()?;
    let filter = OrderFilter {
        user_id: query.user_id.map(UserId::from_uuid),
        status: query.status.map(Into::into),
    };
    let listed = state.use_cases.list_orders.execute(&actor, filter, list_request(&page)?).await?;
    let data = entries(&listed.items, items, &actor, state.clock.now());
    Ok(HttpResponse::Ok().json(OrderList::new(&request, data, listed.next_cursor.as_deref())))
}

/// One order with its items: yours, or any for an admin.
#[utoipa::path(
    get, path = "/orders/{id}", operation_id = "getOrder", tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The order", body = OrderResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND (also for another customer's order)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let order = state.use_cases.get_order.execute(&actor, OrderId::from_uuid(*id)).await?;
    Ok(resource(&request, order.version(), &OrderResponse::new(&order, &actor, state.clock.now())))
}

/// Move an order: `pay`, `cancel`, `ship` or `deliver`; the answer is the order as it now is.
///
/// | action | from | who |
/// |---|---|---|
/// | pay | pending_payment | the owner or an admin (authorizes, then captures the total) |
/// | cancel | pending_payment | the owner or an admin (releases stock) |
/// | cancel | paid | an admin (releases stock, refunds the payment; `payment.status` shows `refund_pending` until the provider confirms) |
/// | ship | paid | an admin |
/// | deliver | shipped | an admin |
#[utoipa::path(
    post, path = "/orders/{id}/transitions", operation_id = "transitionOrder", tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read"),
        IdempotencyKeyHeader),
    request_body = TransitionRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The order as it now is (or, for a repeated Idempotency-Key, the first response); the move is in the order's history", body = OrderResponse,
            headers(("ETag" = String, description = "The order's new ETag, as `GET` of the order gives it"),
                ("Content-Location" = String, description = "The order: the body is its representation"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the first response to the same Idempotency-Key, sent again"))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "PAYMENT_DECLINED", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: the move exists but not for you", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ORDER_INVALID_TRANSITION (with current_status and allowed_actions; also once the payment deadline has passed) or CONCURRENT_MODIFICATION (with current_status when a payment lost the race to a cancellation or expiry: its authorization was voided, nothing was charged), or IDEMPOTENCY_KEY_IN_USE (with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED: the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PAYMENT_GATEWAY_UNAVAILABLE (the payment may be pending: retry with the same Idempotency-Key), DATABASE_UNAVAILABLE or DATABASE_BUSY, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transition(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<TransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let body = body.into_inner();
    let idempotent = idempotency::request(&request, &actor, &body)?;
    let requested = RequestedMove::try_from(body)?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    let (action, mut input) =
        requested.into_request(OrderId::from_uuid(*id), if_match(&request)?, request_id(&request));
    let clock = state.clock.clone();
    let render: Render<Moved> = Arc::new(move |(order, _): &Moved| {
        stored(
            StatusCode::OK,
            None,
            Some(etag(order.version())),
            &OrderResponse::new(order, &actor, clock.now()),
        )
    });
    input.idempotency =
        idempotent.map(|request| Idempotent { request, render: Arc::clone(&render) });
    // One endpoint, two use cases: paying asks the provider for money first.
    let outcome = match action {
        OrderAction::Pay => state.use_cases.pay_order.execute(&actor, input).await?,
        action => state.use_cases.move_order.execute(&actor, action, input).await?,
    };
    let mut response = respond(&state, outcome, &render, |metrics, (_, entry)| {
        metrics.orders_moved(entry.action, 1);
    })?;
    // From the request, not the stored answer, so that a replay names the order too.
    let order = format!("{}/orders/{}", prefix_of(request.path()), id.as_hyphenated());
    if response.status().is_success()
        && let Ok(value) = HeaderValue::from_str(&order)
    {
        response.headers_mut().insert(header::CONTENT_LOCATION, value);
    }
    Ok(response)
}

/// An order's history, oldest first: every status change with who made it and why. The whole
/// history is one page (`has_more` is false).
#[utoipa::path(
    get, path = "/orders/{id}/transitions", operation_id = "listOrderTransitions", tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The history, starting with the placing", body = OrderTransitionList),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let entries = state.use_cases.order_history.execute(&auth.0, OrderId::from_uuid(*id)).await?;
    let data = entries.iter().map(TransitionResponse::from).collect();
    Ok(HttpResponse::Ok().json(OrderTransitionList::new(&request, data, None)))
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<crate::routes::table::Declared> {
    crate::routes::table::declared![place, list, get, history, transition]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_names_items_or_nothing() {
        let query = |include: Option<&str>| IncludeQuery { include: include.map(str::to_owned) };
        assert!(!query(None).items().expect("nothing"));
        assert!(query(Some("items")).items().expect("items"));
        for unknown in ["", "Items", "items,payment", "payment"] {
            let problem = query(Some(unknown)).items().expect_err(unknown).problem();
            assert_eq!(problem.status, 400);
            assert_eq!(problem.errors[0].field, "include");
            assert_eq!(problem.errors[0].code, rule::ONE_OF);
        }
    }
}
