//! The request-context middleware, outermost but for compression: request id, the per-request
//! log line, and the final shape of every error response.
//!
//! - `X-Request-Id` is accepted when it is a sane token (1-128 of `A-Za-z0-9-_.:`), otherwise
//!   generated (UUIDv7), echoed in the response and carried by the request's tracing span.
//! - Every response with status >= 400 leaves as `application/problem+json` with `instance` and
//!   `request_id` filled in, whoever produced it (a handler, an extractor, the router or another
//!   middleware).
//! - One structured log line per request: request id, trace id, user id, method, route
//!   template, status, latency. Never headers, bodies or query strings, so no password or token
//!   reaches the log.
//! - The request's span continues the caller's W3C trace (`traceparent`, see `trace.rs`) and
//!   carries its trace id, so every log line of the request names its trace.
//! - Requests are counted and timed by method, route template and status (`metrics.rs`).

use std::time::Instant;

use actix_web::{
    Error, HttpMessage as _, HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::InternalError,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    middleware::Next,
    web,
};
use opentelemetry::trace::{Status, TraceContextExt as _};
use orderly_domain::Uuid;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    auth::AuthenticatedUser,
    metrics::UNMATCHED,
    problem::{PROBLEM_JSON, Problem},
    state::ApiState,
    trace,
};

/// The id of the current request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: &str = "x-request-id";

fn accepted_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let valid = (1..=128).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    valid.then(|| value.to_owned())
}

/// The middleware function (see the module docs).
///
/// # Errors
/// An error of an inner service comes back as an error whose response is already the complete
/// problem (the request itself cannot be kept to build a normal response: routing needs it
/// unshared).
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = accepted_request_id(request.headers().get(REQUEST_ID))
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.path().to_owned();
    // The route template is known once the router has matched the request (reading it before
    // would match the path twice): the span is named after the method until then.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        otel.name = %method,
        otel.kind = "server",
    );
    let trace_id = trace::continue_trace(&span, request.headers());
    span.record("trace_id", trace_id.as_str());
    let metrics = request.app_data::<web::Data<ApiState>>().and_then(|state| state.metrics.clone());
    let in_flight = metrics.as_ref().map(crate::metrics::ApiMetrics::in_flight);

    let (result, status, user_id, route) = match next.call(request).instrument(span.clone()).await {
        Ok(response) => {
            let (http_request, response) = response.map_into_boxed_body().into_parts();
            let response = finish(response, &path, &request_id);
            let user_id =
                http_request.extensions().get::<AuthenticatedUser>().map(|user| user.0.to_string());
            // After routing this reads the matched resource; a request refused before
            // routing (a limit, CORS) has its path matched against the table here.
            let route = http_request.match_pattern();
            let status = response.status();
            (Ok(ServiceResponse::new(http_request, response)), status, user_id, route)
        }
        // Only a middleware fails this way (handlers' errors are responses): the request is
        // gone with the error, and its route with it.
        Err(error) => {
            let response = finish(error.error_response(), &path, &request_id);
            let status = response.status();
            (Err(InternalError::from_response(error, response).into()), status, None, None)
        }
    };
    let route = route.as_deref().unwrap_or(UNMATCHED);
    span.record("route", route);
    if route != UNMATCHED {
        // The exported span has started by now (its trace id is read above): renamed through
        // OpenTelemetry, as `otel.name` only names a span not yet started.
        span.context().span().update_name(format!("{method} {route}"));
    }
    if let Some(metrics) = &metrics {
        metrics.observe(&method, route, status, started.elapsed());
    }
    drop(in_flight);
    log(&span, user_id.as_deref(), status, started);
    result
}

/// Completes a response on its way out: the problem body of an error, the request id, and
/// `Cache-Control: no-store` on API responses.
fn finish(response: HttpResponse<BoxBody>, path: &str, request_id: &str) -> HttpResponse<BoxBody> {
    let mut response = if response.status().as_u16() >= 400 {
        complete_problem(response, path, request_id)
    } else {
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(header::HeaderName::from_static(REQUEST_ID), value);
    }
    if path.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The request's log line, under its span (request id, method, route, trace id); the status
/// also goes on the exported span.
fn log(span: &tracing::Span, user_id: Option<&str>, status: StatusCode, started: Instant) {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
    span.in_scope(|| {
        tracing::info!(
            user_id = user_id.unwrap_or("-"),
            status = status.as_u16(),
            latency_ms = format_args!("{latency_ms:.2}"),
            "request"
        );
    });
}

/// Rewrites an error response as a complete problem body.
fn complete_problem(
    response: HttpResponse<BoxBody>,
    path: &str,
    request_id: &str,
) -> HttpResponse<BoxBody> {
    let status = response.status();
    let mut problem = response.extensions().get::<Problem>().cloned().unwrap_or_else(|| {
        let mut problem = generic(status);
        // A rejection nobody mapped (CORS refusing an origin, say): its message is meant for the
        // client. A server error's is not.
        if let Some(error) = response.error().filter(|_| status.is_client_error()) {
            problem.detail = error.to_string();
        }
        problem
    });
    problem.instance = path.to_owned();
    problem.request_id = request_id.to_owned();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut fresh = HttpResponse::with_body(status, BoxBody::new(body));
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().append(name.clone(), value.clone());
        }
    }
    fresh.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    fresh
}

/// A problem for an error response nobody described (a framework rejection we did not map).
fn generic(status: StatusCode) -> Problem {
    use crate::problem::ErrorCode;
    let code = match status {
        StatusCode::BAD_REQUEST => Some(ErrorCode::MalformedRequest),
        StatusCode::UNAUTHORIZED => Some(ErrorCode::Unauthenticated),
        StatusCode::FORBIDDEN => Some(ErrorCode::Forbidden),
        StatusCode::NOT_FOUND => Some(ErrorCode::RouteNotFound),
        StatusCode::METHOD_NOT_ALLOWED => Some(ErrorCode::MethodNotAllowed),
        StatusCode::PAYLOAD_TOO_LARGE => Some(ErrorCode::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ErrorCode::UnsupportedMediaType),
        StatusCode::INTERNAL_SERVER_ERROR => Some(ErrorCode::InternalError),
        _ => None,
    };
    match code {
        Some(code) => {
            crate::problem::ApiError::new(code, status.canonical_reason().unwrap_or("Error"))
                .problem()
        }
        None => Problem {
            type_uri: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: status.canonical_reason().unwrap_or("Error").to_owned(),
            instance: String::new(),
            code: format!("HTTP_{}", status.as_u16()),
            request_id: String::new(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_accepted() {
        let accepted =
            |raw: &str| accepted_request_id(Some(&HeaderValue::from_str(raw).expect("header")));
        assert_eq!(accepted("abc-123_x.y:z"), Some("abc-123_x.y:z".to_owned()));
        assert_eq!(accepted(""), None);
        assert_eq!(accepted("has space"), None);
        assert_eq!(accepted(&"a".repeat(129)), None);
        assert_eq!(accepted_request_id(None), None);
    }
}
