//! Orderly's HTTP adapter: actix-web routes under `/api/v1`, DTOs validated with garde and
//! documented with utoipa, one error format (RFC 9457 problem details), bearer authentication,
//! health checks, and Swagger UI.
//!
//! The composition root (`orderly-server`) builds an [`ApiState`] from the use cases and calls
//! [`app`] for each worker. Nothing here knows a database: handlers parse requests into use-case
//! inputs and map results and errors to responses, each resource in its module under `routes/`
//! (its routes, bodies, schemas and problem mapping), with what they share in `dto/` and
//! `errors.rs`.

mod auth;
pub mod client_ip;
pub mod context;
pub mod deprecation;
pub mod dto;
mod errors;
pub mod etag;
pub mod events;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
// Handler doc comments are the OpenAPI descriptions; their error responses are documented in
// the `responses(...)` of each `#[utoipa::path]`, not in `# Errors` sections.
#[allow(clippy::missing_errors_doc)]
pub mod routes;
pub mod stalls;
mod state;
pub mod swagger;
pub mod trace;
mod validation;

use actix_cors::Cors;
use actix_web::{
    App, HttpRequest, HttpResponse,
    body::MessageBody,
    dev::{ServiceFactory, ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError},
    guard,
    http::header,
    middleware::{Compress, DefaultHeaders, from_fn},
    web,
};
pub use auth::{Authenticated, MaybeAuthenticated};
pub use state::{ApiSettings, ApiState, DependencyStatus, Readiness, UseCases};

use crate::{
    problem::{ApiError, ErrorCode},
    routes::method_not_allowed,
};

fn json_error(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &error {
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The body must be sent as `Content-Type: application/json`.",
        ),
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, error.to_string())
        }
        JsonPayloadError::Deserialize(inner) => {
            ApiError::new(ErrorCode::MalformedRequest, format!("The JSON body is invalid: {inner}"))
        }
        _ => ApiError::new(
            ErrorCode::MalformedRequest,
            format!("The body could not be read: {error}"),
        ),
    };
    api.into()
}

fn form_error(error: UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    let api = match &error {
        UrlencodedError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The body must be sent as `Content-Type: application/x-www-form-urlencoded`.",
        ),
        UrlencodedError::Overflow { .. } | UrlencodedError::UnknownLength => {
            ApiError::new(ErrorCode::PayloadTooLarge, error.to_string())
        }
        _ => crate::errors::oauth_error(
            ErrorCode::MalformedRequest,
            "invalid_request",
            &format!("The form is invalid: {error}"),
        ),
    };
    api.into()
}

fn path_error(error: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::MalformedRequest, format!("A path parameter is invalid: {error}"))
        .into()
}

fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::MalformedRequest, format!("The query string is invalid: {error}"))
        .into()
}

async fn route_not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::RouteNotFound, format!("No route for {}", request.path())))
}

async fn swagger_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/swagger-ui/")).finish()
}

/// `GET /api-docs/{version}/openapi.json`, and the first version's at its older address; a
/// deprecated version's operations say so.
async fn openapi_document(request: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let version = routes::table::Version::ALL
        .into_iter()
        .find(|version| request.path() == openapi::document_path(*version))
        .unwrap_or(routes::table::Version::V1);
    let deprecated = deprecation::in_effect(&state, version);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi::served_json(version, deprecated))
}

fn cors(settings: &ApiSettings) -> Cors {
    let cors = Cors::default()
        .allowed_methods(routes::table::declared_methods())
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ])
        .allowed_header("idempotency-key")
        .allowed_header("x-request-id")
        .expose_headers([header::ETAG, header::LOCATION, header::LINK, header::RETRY_AFTER])
        .expose_headers(["x-request-id", "ratelimit", "ratelimit-policy"])
        .expose_headers([deprecation::DEPRECATION, deprecation::SUNSET])
        .max_age(3600);
    settings.cors_allowed_origins.iter().fold(cors, |cors, origin| {
        if origin == "*" { cors.allow_any_origin() } else { cors.allowed_origin(origin) }
    })
}

/// The route of a reading handler: `GET`, and `HEAD` (RFC 9110 section 9.1; the server drops
/// the body).
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Registers a readable route outside the API contract (its documents, metrics, `/`): `GET` and
/// `HEAD` go to the handler, any other method answers 405 with `Allow: GET, HEAD`. The API's own
/// operations come from the route table (`routes::table`).
macro_rules! resource {
    ($path:expr, get => $handler:path $(,)?) => {
        web::resource($path)
            .route(get().to($handler))
            .default_service(web::to(method_not_allowed("GET, HEAD")))
    };
}

/// The application: routes, extractor limits and error mapping, middleware, API docs.
pub fn app(
    state: ApiState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let settings = state.settings.clone();
    // Prometheus scrapes `/metrics` here unless it has a listener of its own (`METRICS_ADDR`).
    let serve_metrics = settings.serve_metrics && state.metrics.is_some();
    deprecation::publish_sunsets(&state);
    let mut app = App::new()
        .app_data(web::Data::new(state))
        .app_data(web::JsonConfig::default().limit(settings.body_limit).error_handler(json_error))
        .app_data(web::FormConfig::default().limit(settings.body_limit).error_handler(form_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .configure(routes::table::configure);
    app = app.service(resource!(openapi::DOCUMENT_PATH, get => openapi_document));
    for version in routes::table::Version::ALL {
        app = app.service(resource!(openapi::document_path(version), get => openapi_document));
    }
    if serve_metrics {
        app = app.service(resource!(metrics::PATH, get => metrics::serve));
    }
    // The front door: Swagger UI when it is served, a JSON index of links otherwise.
    app = app.service(resource!("/", get => routes::index::index));
    if settings.enable_swagger_ui {
        // The UI reads the document from the route above, with a stylesheet of ours before its
        // own files; its routes are GET-only, so a catch-all after them gives every other
        // method a 405.
        app = app
            .service(resource!("/swagger-ui/index.css", get => swagger::stylesheet))
            .service(swagger::service())
            .service(
                web::resource("/swagger-ui/{_:.*}")
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(resource!("/swagger-ui", get => swagger_redirect));
    }
    // Middleware, innermost first: rate limits, then the size limits (an oversized head is
    // refused before it costs any quota), then the body deadline (ADR 0028: a body that stalls
    // is a 408 before any handler waits on it), then a deprecated version's lifecycle (its headers
    // on every answer, refusals included, and its 410 after the sunset), then CORS (preflights are
    // answered before any limit, and every refusal carries the CORS headers a browser needs to
    // read it), then the security
    // headers, then the request context that completes every problem, then compression.
    app.default_service(web::to(route_not_found))
        .wrap(from_fn(rate_limit::limit))
        .wrap(from_fn(limits::check))
        .wrap(from_fn(stalls::bound))
        .wrap(from_fn(deprecation::lifecycle))
        .wrap(cors(&settings))
        .wrap(
            DefaultHeaders::new()
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::X_FRAME_OPTIONS, "DENY"))
                .add((header::REFERRER_POLICY, "no-referrer"))
                .add((
                    header::HeaderName::from_static("content-security-policy"),
                    "frame-ancestors 'none'",
                )),
        )
        .wrap(from_fn(context::request_context))
        .wrap(Compress::default())
}
