//! `/api/v1/orders`, in one place: placing orders, reading them, and moving them through the
//! state machine (the routes, here), their bodies and schemas (`body.rs`), and how the use
//! cases' refusals become problems (`errors.rs`).

pub(crate) mod body;
mod errors;

use std::sync::Arc;

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, http::StatusCode, web};
use orderly_application::{
    idempotency::{Idempotent, Outcome, Render},
    orders::{moves::Moved, place_order::PlaceOrderInput},
    ports::OrderFilter,
};
use orderly_domain::{Order, OrderAction, OrderId, UserId, Uuid};

pub use self::body::{
    CreateOrderRequest, OrderActionDto, OrderItemResponse, OrderLineRequest, OrderListQuery,
    OrderPage, OrderResponse, OrderStatusDto, PaymentResponse, PaymentStatusDto,
    RequestedActionDto, RequestedMove, TransitionList, TransitionRequest, TransitionResponse,
    UserOrderListQuery,
};
use crate::{
    auth::Authenticated,
    context::RequestId,
    dto::{IdempotencyKeyHeader, PageQuery},
    etag::{etag, if_match},
    idempotency::{self, send, stored},
    problem::{ApiError, Problem},
    rate_limit::{self, Policy},
    routes::{list_request, page_response, resource, table::prefix_of},
    state::ApiState,
};

/// The id the request-context middleware gave this request.
pub(crate) fn request_id(request: &HttpRequest) -> Option<String> {
    request.extensions().get::<RequestId>().map(|id| id.0.clone())
}

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

/// The response to an outcome: the new result rendered and counted, or the replayed response.
pub(crate) fn respond<T>(
    state: &ApiState,
    outcome: Outcome<T>,
    render: &Render<T>,
    count: impl FnOnce(&crate::metrics::ApiMetrics, &T),
) -> Result<HttpResponse, ApiError> {
    match outcome {
        Outcome::Done(value) => {
            if let Some(metrics) = &state.metrics {
                count(metrics, &value);
            }
            send(&render(&value), false)
        }
        Outcome::Replayed(response) => {
            if let Some(metrics) = &state.metrics {
                metrics.idempotent_replay();
            }
            send(&response, true)
        }
    }
}

/// List orders, newest first: your own, or (admins) everyone's, filtered by status and user.
#[utoipa::path(
    get, path = "/orders", operation_id = "listOrders", tag = "orders",
    params(PageQuery, OrderListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of orders", body = OrderPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    page: web::Query<PageQuery>,
    query: web::Query<OrderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let filter = OrderFilter {
        user_id: query.user_id.map(UserId::from_uuid),
        status: query.status.map(Into::into),
    };
    let listed = state.use_cases.list_orders.execute(&actor, filter, list_request(&page)?).await?;
    let body = OrderPage {
        data: listed
            .items
            .iter()
            .map(|order| OrderResponse::new(order, &actor, state.clock.now()))
            .collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
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

/// Move an order: `pay`, `cancel`, `ship` or `deliver`.
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
        (status = 201, description = "The history entry; `Location` is the order's history; the order's new ETag is in `ETag`", body = TransitionResponse,
            headers(("Location" = String), ("ETag" = String),
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
    let body = body.into_inner();
    let idempotent = idempotency::request(&request, &auth.0, &body)?;
    let requested = RequestedMove::try_from(body)?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    let (action, mut input) =
        requested.into_request(OrderId::from_uuid(*id), if_match(&request)?, request_id(&request));
    let prefix = prefix_of(request.path());
    let render: Render<Moved> = Arc::new(move |(order, entry): &Moved| {
        stored(
            StatusCode::CREATED,
            Some(format!("{prefix}/orders/{}/transitions", order.id())),
            Some(etag(order.version())),
            &TransitionResponse::from(entry),
        )
    });
    input.idempotency =
        idempotent.map(|request| Idempotent { request, render: Arc::clone(&render) });
    // One endpoint, two use cases: paying asks the provider for money first.
    let outcome = match action {
        OrderAction::Pay => state.use_cases.pay_order.execute(&auth.0, input).await?,
        action => state.use_cases.move_order.execute(&auth.0, action, input).await?,
    };
    respond(&state, outcome, &render, |metrics, (_, entry)| metrics.orders_moved(entry.action, 1))
}

/// An order's history, oldest first: every status change with who made it and why.
#[utoipa::path(
    get, path = "/orders/{id}/transitions", operation_id = "listOrderTransitions", tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The history, starting with the placing", body = TransitionList),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let entries = state.use_cases.order_history.execute(&auth.0, OrderId::from_uuid(*id)).await?;
    Ok(HttpResponse::Ok()
        .json(TransitionList { data: entries.iter().map(TransitionResponse::from).collect() }))
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![place, list, get, history, transition]
}
