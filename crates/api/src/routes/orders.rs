//! `/api/v1/orders`: placing orders, reading them, and moving them through the state machine.

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use orderly_application::{orders::place_order::PlaceOrderInput, ports::OrderFilter};
use orderly_domain::{OrderId, UserId, Uuid};

use crate::{
    auth::Authenticated,
    context::RequestId,
    dto::{
        PageQuery,
        orders::{
            CreateOrderRequest, OrderListQuery, OrderPage, OrderResponse, RequestedMove,
            TransitionList, TransitionRequest, TransitionResponse,
        },
    },
    etag::{etag, if_match},
    problem::{ApiError, Problem},
    rate_limit::{self, Policy},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
};

/// The id the request-context middleware gave this request.
fn request_id(request: &HttpRequest) -> Option<String> {
    request.extensions().get::<RequestId>().map(|id| id.0.clone())
}

/// Place an order for yourself.
///
/// Stock is reserved at once (an order never oversells); the order then waits for payment
/// until `payment_due_at`, after which it expires and the stock is released.
#[utoipa::path(
    post, path = "/api/v1/orders", operation_id = "placeOrder", tag = "orders",
    request_body = CreateOrderRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The order, pending payment", body = OrderResponse,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED, MALFORMED_REQUEST or PRODUCT_NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "INSUFFICIENT_STOCK or PRODUCT_UNAVAILABLE", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    body: web::Json<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    rate_limit::enforce(&request, Policy::Orders, auth.0.user_id(), None).await?;
    let mut input = PlaceOrderInput::try_from(body.into_inner())?;
    input.request_id = request_id(&request);
    let actor = auth.0;
    let order = state.use_cases.place_order.execute(&actor, input).await?;
    if let Some(metrics) = &state.metrics {
        metrics.order_placed();
    }
    Ok(created(
        format!("/api/v1/orders/{}", order.id()),
        order.version(),
        &OrderResponse::new(&order, &actor, state.clock.now()),
    ))
}

/// List orders, newest first: your own, or (admins) everyone's, filtered by status and user.
#[utoipa::path(
    get, path = "/api/v1/orders", operation_id = "listOrders", tag = "orders",
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
    get, path = "/api/v1/orders/{id}", operation_id = "getOrder", tag = "orders",
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
/// | pay | pending_payment | the owner or an admin (charges the payment gateway) |
/// | cancel | pending_payment | the owner or an admin (releases stock) |
/// | cancel | paid | an admin (releases stock, flags a refund) |
/// | ship | paid | an admin |
/// | deliver | shipped | an admin |
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/transitions", operation_id = "transitionOrder", tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = TransitionRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The history entry; `Location` is the order's history; the order's new ETag is in `ETag`", body = TransitionResponse,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "PAYMENT_DECLINED", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: the move exists but not for you", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ORDER_INVALID_TRANSITION (with current_status and allowed_actions; also once the payment deadline has passed) or CONCURRENT_MODIFICATION (with refund_required when a payment lost the race to a cancellation)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PAYMENT_GATEWAY_UNAVAILABLE (nothing was charged), DATABASE_UNAVAILABLE or DATABASE_BUSY, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transition(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<TransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let requested = RequestedMove::try_from(body.into_inner())?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    let input =
        requested.into_input(OrderId::from_uuid(*id), if_match(&request)?, request_id(&request));
    let (order, entry) = state.use_cases.transition_order.execute(&auth.0, input).await?;
    if let Some(metrics) = &state.metrics {
        metrics.orders_moved(entry.action, 1);
    }
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/orders/{}/transitions", order.id()),
        ))
        .insert_header((actix_web::http::header::ETAG, etag(order.version())))
        .json(TransitionResponse::from(&entry)))
}

/// An order's history, oldest first: every status change with who made it and why.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/transitions", operation_id = "listOrderTransitions", tag = "orders",
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
