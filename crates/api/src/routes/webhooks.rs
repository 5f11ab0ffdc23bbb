//! Webhook endpoints, in one module: the routes (admins only), their bodies and schemas, and how
//! the use cases' refusals become problems. Deliveries follow Standard Webhooks (ADR 0034); the
//! events they carry are in the document's `webhooks` section (`openapi.rs`) and
//! `docs/events.md`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_application::webhooks::{
    AdminsOnly, create_endpoint::CreateEndpointError, delete_endpoint::DeleteEndpointError,
    get_endpoint::GetEndpointError, list_deliveries::ListDeliveriesError,
    list_endpoints::ListEndpointsError, retry_delivery::RetryDeliveryError,
    rotate_secret::RotateSecretError, update_endpoint::UpdateEndpointError,
    update_endpoint::UpdateEndpointInput,
};
use orderly_domain::{
    DeliveryStatus, EventFilter, EventType, Uuid, WebhookDelivery, WebhookDeliveryId,
    WebhookEndpoint, WebhookEndpointDraft, WebhookEndpointId, WebhookUrl,
    webhook::WEBHOOK_URL_MAX_LEN,
};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, ToSchema,
    openapi::{ArrayBuilder, Object, ObjectBuilder, Type},
};

use crate::{
    auth::Authenticated,
    dto::PageQuery,
    errors::{concurrent, forbidden, not_found, stale},
    etag::if_match,
    problem::{ApiError, ErrorCode, FieldError, Problem},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
    validation::FieldErrors,
};

// ---- Schemas, from the domain's rules ----

/// The URL's rule (`WebhookUrl::parse`) as a pattern: `http://` or `https://` in any case, a
/// host that does not start with `/`, `?`, `:`, and no white space, control character, `@` or `#`.
pub(crate) const URL_PATTERN: &str =
    r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@:\x00-\x1f\x7f-\x9f][^\s#@\x00-\x1f\x7f-\x9f]*$";

fn url(nullable: bool) -> Object {
    crate::dto::schema::string(nullable)
        .min_length(Some(1))
        .max_length(Some(WEBHOOK_URL_MAX_LEN))
        .pattern(Some(URL_PATTERN))
        .description(Some(
            "Where deliveries are POSTed: an absolute http:// or https:// URL, without \
             credentials or fragment. Its host must resolve to public addresses only (unless the \
             operator allows private networks).",
        ))
        .build()
}
fn new_url() -> Object {
    url(false)
}
fn changed_url() -> Object {
    url(true)
}

fn event_type() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::ALL.iter().map(|t| t.name())))
        .build()
}

fn event_types(nullable: bool) -> utoipa::openapi::Array {
    let mut array = ArrayBuilder::new()
        .items(event_type())
        .max_items(Some(EventType::ALL.len()))
        .description(Some("The event types to receive; absent or empty: every type."));
    if nullable {
        array = array
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Array, Type::Null]));
    }
    array.build()
}
fn new_event_types() -> utoipa::openapi::Array {
    event_types(true)
}
fn listed_event_types() -> utoipa::openapi::Array {
    let mut array = event_types(false);
    array.description = Some("The event types it receives; empty: every type.".to_owned());
    array
}

fn delivery_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed]
                .map(DeliveryStatus::as_str),
        ))
        .description(Some(
            "`pending` (an attempt is due at `next_attempt_at`), `succeeded` (the receiver \
             answered 2xx) or `failed` (retries exhausted, 410 Gone, or the endpoint disabled).",
        ))
        .build()
}

fn disabled_reason() -> Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([Some("manual"), Some("gone"), Some("failing"), None]))
        .description(Some(
            "Why it is disabled: `manual` (an admin), `gone` (it answered 410), `failing` (its \
             deliveries failed for five days); `null` while enabled.",
        ))
        .build()
}

// ---- Bodies ----

/// `POST /webhook-endpoints`: an endpoint to receive events.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/orderly", "event_types": ["orderly.order.paid.v1", "orderly.order.cancelled.v1"]}))]
pub struct CreateWebhookEndpointRequest {
    #[schema(schema_with = new_url)]
    pub url: String,
    #[schema(schema_with = new_event_types)]
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries start at once (default `true`).
    pub enabled: Option<bool>,
}

fn event_filter(fields: &mut FieldErrors, names: &[String]) -> Option<EventFilter> {
    fields.parse("event_types", EventFilter::parse(names.iter().map(String::as_str)))
}

impl TryFrom<CreateWebhookEndpointRequest> for WebhookEndpointDraft {
    type Error = FieldErrors;

    fn try_from(body: CreateWebhookEndpointRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::default();
        let url = fields.parse("url", WebhookUrl::parse(&body.url));
        let event_types = match &body.event_types {
            Some(names) => event_filter(&mut fields, names),
            None => Some(EventFilter::all()),
        };
        fields.into_result(|| {
            Some(WebhookEndpointDraft {
                url: url?,
                event_types: event_types?,
                enabled: body.enabled.unwrap_or(true),
            })
        })
    }
}

/// `PATCH /webhook-endpoints/{id}`: absent or `null` fields stay as they are. Enabling an
/// endpoint also forgets its failures.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub struct UpdateWebhookEndpointRequest {
    #[schema(schema_with = changed_url)]
    pub url: Option<String>,
    #[schema(schema_with = new_event_types)]
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl TryFrom<UpdateWebhookEndpointRequest> for UpdateEndpointInput {
    type Error = FieldErrors;

    fn try_from(body: UpdateWebhookEndpointRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::default();
        let url = body.url.as_deref().map(|raw| fields.parse("url", WebhookUrl::parse(raw)));
        let event_types = body.event_types.as_deref().map(|names| event_filter(&mut fields, names));
        fields.into_result(|| {
            Some(UpdateEndpointInput {
                expected_version: None,
                url: url.map_or(Some(None), |url| url.map(Some))?,
                event_types: event_types.map_or(Some(None), |types| types.map(Some))?,
                enabled: body.enabled,
            })
        })
    }
}

/// A webhook endpoint as admins see it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c60", "url": "https://hooks.example.com/orderly",
    "event_types": ["orderly.order.paid.v1"], "enabled": true, "disabled_reason": null,
    "failing_since": null, "previous_secret_expires_at": null,
    "created_at": "2026-12-05T10:00:00Z", "updated_at": "2026-12-05T10:00:00Z"
}))]
pub struct WebhookEndpointResponse {
    pub id: Uuid,
    pub url: String,
    #[schema(schema_with = listed_event_types)]
    pub event_types: Vec<String>,
    pub enabled: bool,
    #[schema(schema_with = disabled_reason, required = true)]
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (`null` after a success); five days of it disable
    /// the endpoint.
    #[schema(required = true)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs deliveries, beside the
    /// current one (`null` if never rotated or past).
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpointResponse {
    pub(crate) fn new(endpoint: &WebhookEndpoint, now: DateTime<Utc>) -> Self {
        Self {
            id: endpoint.id().into_uuid(),
            url: endpoint.url().as_str().to_owned(),
            event_types: endpoint
                .event_types()
                .types()
                .iter()
                .map(|t| t.name().to_owned())
                .collect(),
            enabled: endpoint.is_enabled(),
            disabled_reason: endpoint.disabled_reason().map(|reason| reason.as_str().to_owned()),
            failing_since: endpoint.failing_since(),
            previous_secret_expires_at: endpoint
                .previous_secret()
                .map(|(_, until)| *until)
                .filter(|until| *until > now),
            created_at: endpoint.created_at(),
            updated_at: endpoint.updated_at(),
        }
    }
}

/// An endpoint with its signing secret: shown once, when the endpoint is made or its secret
/// rotated. Verify deliveries with it (Standard Webhooks: `whsec_` and the base64 of the key).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointResponse,
    /// The signing secret. It is not shown again: store it now.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub secret: String,
}

impl WebhookEndpointWithSecret {
    fn new(endpoint: &WebhookEndpoint, now: DateTime<Utc>) -> Self {
        Self {
            endpoint: WebhookEndpointResponse::new(endpoint, now),
            secret: endpoint.secret().expose().to_owned(),
        }
    }
}

/// One page of endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointPage {
    pub data: Vec<WebhookEndpointResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryResponse {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id, sent as `webhook-id` with every attempt: receivers deduplicate by it.
    pub event_id: Uuid,
    pub event_type: String,
    #[schema(schema_with = delivery_status)]
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (`null` unless pending).
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer (`null` before an attempt or without an answer).
    #[schema(required = true)]
    pub response_status: Option<u16>,
    /// Why the last attempt got no answer (refused address, time-out, connection error).
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&WebhookDelivery> for WebhookDeliveryResponse {
    fn from(delivery: &WebhookDelivery) -> Self {
        let parts = delivery.parts();
        Self {
            id: parts.id.into_uuid(),
            endpoint_id: parts.endpoint_id.into_uuid(),
            event_id: parts.event_id,
            event_type: parts.event_type.clone(),
            status: parts.status.as_str().to_owned(),
            attempts: parts.attempts,
            next_attempt_at: parts.next_attempt_at,
            last_attempt_at: parts.last_attempt_at,
            response_status: parts.response_status,
            last_error: parts.last_error.clone(),
            created_at: parts.created_at,
        }
    }
}

/// One page of deliveries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryPage {
    pub data: Vec<WebhookDeliveryResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Filters of an endpoint's deliveries.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// Only deliveries with this status.
    #[param(schema_with = delivery_status)]
    pub status: Option<String>,
}

/// `status` that is not a delivery status.
#[derive(Debug)]
struct UnknownStatus;

impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("status must be pending, succeeded or failed")
    }
}

impl std::error::Error for UnknownStatus {}

impl orderly_domain::RuleError for UnknownStatus {
    fn code(&self) -> &'static str {
        orderly_domain::rule::ONE_OF
    }
}

impl DeliveryListQuery {
    pub(crate) fn status(&self) -> Result<Option<DeliveryStatus>, FieldErrors> {
        let mut fields = FieldErrors::default();
        let status = self
            .status
            .as_deref()
            .map(|raw| fields.parse("status", DeliveryStatus::parse(raw).ok_or(UnknownStatus)));
        fields.into_result(|| status.map_or(Some(None), |status| status.map(Some)))
    }
}

// ---- Refusals ----

fn admins_only(_: AdminsOnly) -> ApiError {
    forbidden("Only administrators manage webhook endpoints.")
}

fn refused_url(refused: &orderly_application::webhooks::ports::UrlRefused) -> ApiError {
    use orderly_domain::RuleError as _;
    ApiError::validation(vec![FieldError::new("url", refused.code(), refused.to_string())])
}

impl From<CreateEndpointError> for ApiError {
    fn from(error: CreateEndpointError) -> Self {
        match error {
            CreateEndpointError::Forbidden(error) => admins_only(error),
            CreateEndpointError::UrlRefused(refused) => refused_url(&refused),
            CreateEndpointError::Store(store) => store.into(),
        }
    }
}

impl From<GetEndpointError> for ApiError {
    fn from(error: GetEndpointError) -> Self {
        match error {
            GetEndpointError::Forbidden(error) => admins_only(error),
            GetEndpointError::NotFound => not_found("webhook endpoint"),
            GetEndpointError::Store(store) => store.into(),
        }
    }
}

impl From<ListEndpointsError> for ApiError {
    fn from(error: ListEndpointsError) -> Self {
        match error {
            ListEndpointsError::Forbidden(error) => admins_only(error),
            ListEndpointsError::InvalidCursor(cursor) => cursor.into(),
            ListEndpointsError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateEndpointError> for ApiError {
    fn from(error: UpdateEndpointError) -> Self {
        match error {
            UpdateEndpointError::Forbidden(error) => admins_only(error),
            UpdateEndpointError::NotFound => not_found("webhook endpoint"),
            UpdateEndpointError::UrlRefused(refused) => refused_url(&refused),
            UpdateEndpointError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateEndpointError::Conflict => concurrent(),
            UpdateEndpointError::Store(store) => store.into(),
        }
    }
}

impl From<DeleteEndpointError> for ApiError {
    fn from(error: DeleteEndpointError) -> Self {
        match error {
            DeleteEndpointError::Forbidden(error) => admins_only(error),
            DeleteEndpointError::NotFound => not_found("webhook endpoint"),
            DeleteEndpointError::Store(store) => store.into(),
        }
    }
}

impl From<RotateSecretError> for ApiError {
    fn from(error: RotateSecretError) -> Self {
        match error {
            RotateSecretError::Forbidden(error) => admins_only(error),
            RotateSecretError::NotFound => not_found("webhook endpoint"),
            RotateSecretError::Conflict => concurrent(),
            RotateSecretError::Store(store) => store.into(),
        }
    }
}

impl From<ListDeliveriesError> for ApiError {
    fn from(error: ListDeliveriesError) -> Self {
        match error {
            ListDeliveriesError::Forbidden(error) => admins_only(error),
            ListDeliveriesError::NotFound => not_found("webhook endpoint"),
            ListDeliveriesError::InvalidCursor(cursor) => cursor.into(),
            ListDeliveriesError::Store(store) => store.into(),
        }
    }
}

impl From<RetryDeliveryError> for ApiError {
    fn from(error: RetryDeliveryError) -> Self {
        match error {
            RetryDeliveryError::Forbidden(error) => admins_only(error),
            RetryDeliveryError::NotFound => not_found("webhook delivery"),
            RetryDeliveryError::EndpointDisabled => ApiError::new(
                ErrorCode::WebhookEndpointDisabled,
                "The endpoint is disabled: enable it (`PATCH` with `\"enabled\": true`), then retry.",
            ),
            RetryDeliveryError::Store(store) => store.into(),
        }
    }
}

// ---- Routes ----

/// Register a webhook endpoint (admins). The answer holds its signing secret, shown this once.
#[utoipa::path(
    post, path = "/webhook-endpoints", operation_id = "createWebhookEndpoint", tag = "webhooks",
    request_body = CreateWebhookEndpointRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The endpoint, with its secret", body = WebhookEndpointWithSecret,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED (url: also `not_public`, `unresolvable`) or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    body: web::Json<CreateWebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = WebhookEndpointDraft::try_from(body.into_inner())?;
    let endpoint = state.use_cases.webhooks.create.execute(&auth.0, draft).await?;
    Ok(created(
        &request,
        format_args!("/webhook-endpoints/{}", endpoint.id()),
        endpoint.version(),
        &WebhookEndpointWithSecret::new(&endpoint, state.clock.now()),
    ))
}

/// The webhook endpoints, newest first (admins).
#[utoipa::path(
    get, path = "/webhook-endpoints", operation_id = "listWebhookEndpoints", tag = "webhooks",
    params(PageQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of endpoints", body = WebhookEndpointPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
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
    let body = WebhookEndpointPage {
        data: listed.items.iter().map(|e| WebhookEndpointResponse::new(e, now)).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// One webhook endpoint (admins).
#[utoipa::path(
    get, path = "/webhook-endpoints/{id}", operation_id = "getWebhookEndpoint", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = WebhookEndpointId::from_uuid(*id);
    let endpoint = state.use_cases.webhooks.get.execute(&auth.0, id).await?;
    let body = WebhookEndpointResponse::new(&endpoint, state.clock.now());
    Ok(resource(&request, endpoint.version(), &body))
}

/// Change a webhook endpoint: its URL, its event types, enabled or not (admins). Send
/// `If-Match` to avoid overwriting a concurrent change.
#[utoipa::path(
    patch, path = "/webhook-endpoints/{id}", operation_id = "updateWebhookEndpoint", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateWebhookEndpointRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoint as stored", body = WebhookEndpointResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED (url: also `not_public`, `unresolvable`) or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "CONCURRENT_MODIFICATION: without If-Match, the endpoint kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UpdateWebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut input = UpdateEndpointInput::try_from(body.into_inner())?;
    input.expected_version = if_match(&request)?;
    let id = WebhookEndpointId::from_uuid(*id);
    let endpoint = state.use_cases.webhooks.update.execute(&auth.0, id, input).await?;
    let body = WebhookEndpointResponse::new(&endpoint, state.clock.now());
    Ok(resource(&request, endpoint.version(), &body))
}

/// Delete a webhook endpoint and its deliveries (admins).
#[utoipa::path(
    delete, path = "/webhook-endpoints/{id}", operation_id = "deleteWebhookEndpoint", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = WebhookEndpointId::from_uuid(*id);
    state.use_cases.webhooks.delete.execute(&auth.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate an endpoint's signing secret (admins): the new one, shown this once, signs from now
/// on, and the old one signs beside it for 24 hours so that receivers switch without refusing
/// a delivery.
#[utoipa::path(
    post, path = "/webhook-endpoints/{id}/secret/rotate", operation_id = "rotateWebhookSecret", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoint, with its new secret", body = WebhookEndpointWithSecret, headers(("ETag" = String))),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "CONCURRENT_MODIFICATION: the endpoint kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_secret(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = WebhookEndpointId::from_uuid(*id);
    let endpoint = state.use_cases.webhooks.rotate_secret.execute(&auth.0, id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::ETAG, crate::etag::etag(endpoint.version())))
        .json(WebhookEndpointWithSecret::new(&endpoint, state.clock.now())))
}

/// The deliveries of an endpoint, newest first (admins).
#[utoipa::path(
    get, path = "/webhook-endpoints/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id"), PageQuery, DeliveryListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of deliveries", body = WebhookDeliveryPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
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
    let body = WebhookDeliveryPage {
        data: listed.items.iter().map(WebhookDeliveryResponse::from).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// Deliver an event to the endpoint again (admins): one more attempt, made at once. The
/// endpoint must be enabled.
#[utoipa::path(
    post, path = "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry", operation_id = "retryWebhookDelivery", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = Uuid, Path, description = "The delivery's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 202, description = "The delivery, its next attempt due now", body = WebhookDeliveryResponse),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: no such delivery of this endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "WEBHOOK_ENDPOINT_DISABLED", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    state: web::Data<ApiState>,
    auth: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (endpoint, delivery) = path.into_inner();
    let delivery = state
        .use_cases
        .webhooks
        .retry
        .execute(
            &auth.0,
            WebhookEndpointId::from_uuid(endpoint),
            WebhookDeliveryId::from_uuid(delivery),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(WebhookDeliveryResponse::from(&delivery)))
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![create, list, get, update, delete, rotate_secret, deliveries, retry,]
}
