//! Request-head limits (ADR 0015): what actix-http lets through but the API refuses, answered as
//! problems like every other error.
//!
//! - A request target (path and query) longer than `max_uri_length` is `414 URI_TOO_LONG`.
//! - More header fields than `max_header_count`, or more bytes of header names and values than
//!   `max_header_bytes`, is `431 HEADERS_TOO_LARGE`.
//!
//! The middleware [`check`] runs inside the request context (so the problem gets its request id)
//! and before rate limiting (so an oversized request costs no quota). Heads beyond actix-http's
//! own hard limits never get here: it answers them itself, with an empty body.

use actix_web::{
    Error,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Uri, header::HeaderMap},
    middleware::Next,
    web,
};

use crate::{
    problem::{ApiError, ErrorCode},
    state::{ApiSettings, ApiState},
};

/// The length of the request target as the client sent it: the path and query, plus the scheme
/// and authority of an absolute-form target.
fn target_length(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |scheme| scheme.len() + "://".len())
        + uri.authority().map_or(0, |authority| authority.as_str().len())
        + uri.path_and_query().map_or(0, |target| target.as_str().len())
}

/// The problem for a request head over one of the limits of `settings`, if it is.
fn refusal(settings: &ApiSettings, uri: &Uri, headers: &HeaderMap) -> Option<ApiError> {
    let length = target_length(uri);
    if length > settings.max_uri_length {
        return Some(
            ApiError::new(
                ErrorCode::UriTooLong,
                format!(
                    "The request target is {length} bytes long; at most {} are accepted.",
                    settings.max_uri_length
                ),
            )
            .with_extension("max_uri_length", settings.max_uri_length.into()),
        );
    }
    let count = headers.len();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    let detail = if count > settings.max_header_count {
        format!(
            "The request has {count} header fields; at most {} are accepted.",
            settings.max_header_count
        )
    } else if bytes > settings.max_header_bytes {
        format!(
            "The request's header names and values take {bytes} bytes; at most {} are accepted.",
            settings.max_header_bytes
        )
    } else {
        return None;
    };
    Some(
        ApiError::new(ErrorCode::HeadersTooLarge, detail)
            .with_extension("max_header_count", settings.max_header_count.into())
            .with_extension("max_header_bytes", settings.max_header_bytes.into()),
    )
}

/// The middleware (see the module docs).
///
/// # Errors
/// Whatever the inner service fails with.
pub async fn check(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let refused = request
        .app_data::<web::Data<ApiState>>()
        .and_then(|state| refusal(&state.settings, request.uri(), request.headers()));
    match refused {
        Some(refused) => Ok(request.error_response(refused).map_into_boxed_body()),
        None => Ok(next.call(request).await?.map_into_boxed_body()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn settings() -> ApiSettings {
        ApiSettings {
            max_uri_length: 100,
            max_header_count: 4,
            max_header_bytes: 200,
            ..ApiSettings::for_tests()
        }
    }

    fn headers(fields: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        map
    }

    fn code(uri: &str, fields: &[(&'static str, &str)]) -> Option<ErrorCode> {
        let uri: Uri = uri.parse().expect("a URI");
        refusal(&settings(), &uri, &headers(fields)).map(|refused| refused.code())
    }

    #[test]
    fn a_target_of_exactly_the_limit_passes_and_one_byte_more_is_too_long() {
        let at_limit = format!("/health?q={}", "a".repeat(100 - "/health?q=".len()));
        assert_eq!(code(&at_limit, &[]), None);
        assert_eq!(code(&format!("{at_limit}a"), &[]), Some(ErrorCode::UriTooLong));
    }

    #[test]
    fn an_absolute_form_target_counts_its_scheme_and_authority() {
        let path = format!("/{}", "a".repeat(90));
        assert_eq!(code(&path, &[]), None);
        assert_eq!(code(&format!("http://shop.example{path}"), &[]), Some(ErrorCode::UriTooLong));
    }

    #[test]
    fn header_fields_are_counted_with_their_repetitions() {
        let four = [("host", "x"), ("accept", "a"), ("x-a", "1"), ("x-a", "2")];
        assert_eq!(code("/", &four), None);
        let five = [("host", "x"), ("accept", "a"), ("x-a", "1"), ("x-a", "2"), ("x-a", "3")];
        assert_eq!(code("/", &five), Some(ErrorCode::HeadersTooLarge));
    }

    #[test]
    fn header_bytes_are_the_names_and_values_together() {
        let at_limit = "v".repeat(200 - "x-big".len());
        assert_eq!(code("/", &[("x-big", &at_limit)]), None);
        let over = format!("{at_limit}v");
        assert_eq!(code("/", &[("x-big", &over)]), Some(ErrorCode::HeadersTooLarge));
    }
}
