//! `/api/v2` webhook endpoints: v1's handlers but for the two lists, whose page links are in the
//! body. Endpoints and deliveries hold no money, so their representations are v1's.

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_domain::{Uuid, WebhookEndpointId};

use super::page::page;
use crate::{
    auth::Authenticated,
    dto::PageQuery,
    problem::{ApiError, Problem},
    routes::{
        list_request,
        webhooks::{self, DeliveryListQuery, WebhookDeliveryResponse, WebhookEndpointResponse},
    },
    state::ApiState,
};

page! {
    /// One page of webhook endpoints.
    WebhookEndpointList of WebhookEndpointResponse
}

page! {
    /// One page of webhook deliveries.
    WebhookDeliveryList of WebhookDeliveryResponse
}

/// The webhook endpoints, newest first (admins).
#[utoipa::path(
    get, path = "/webhook-endpoints", operation_id = "listWebhookEndpoints", tag = "webhooks",
    params(PageQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of endpoints", body = WebhookEndpointList),
        (status = 400, description = "VALIDATION_FAILED (limit) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let listed = state.use_cases.webhooks.list.execute(&auth.0, list_request(&page)?).await?;
    let now = state.clock.now();
    let data = listed.items.iter().map(|e| WebhookEndpointResponse::new(e, now)).collect();
    Ok(HttpResponse::Ok().json(WebhookEndpointList::new(
        &request,
        data,
        listed.next_cursor.as_deref(),
    )))
}

/// The deliveries of an endpoint, newest first (admins).
#[utoipa::path(
    get, path = "/webhook-endpoints/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id"), PageQuery, DeliveryListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of deliveries", body = WebhookDeliveryList),
        (status = 400, description = "VALIDATION_FAILED (limit, status) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: no such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deliveries(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    page: web::Query<PageQuery>,
    query: web::Query<DeliveryListQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status()?;
    let id = WebhookEndpointId::from_uuid(*id);
    let listed = state
        .use_cases
        .webhooks
        .deliveries
        .execute(&auth.0, id, status, list_request(&page)?)
        .await?;
    let data = listed.items.iter().map(WebhookDeliveryResponse::from).collect();
    Ok(HttpResponse::Ok().json(WebhookDeliveryList::new(
        &request,
        data,
        listed.next_cursor.as_deref(),
    )))
}

/// This module's operations and v1's unchanged ones, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<crate::routes::table::Declared> {
    crate::routes::table::declared![
        webhooks::create,
        list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        deliveries,
        webhooks::retry,
    ]
}
