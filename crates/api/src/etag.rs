//! Entity tags from resource versions: `ETag: "v3"`; `If-None-Match` answers 304 and `If-Match`
//! becomes the version the use case must find (412 otherwise).

use actix_web::{HttpRequest, http::header};

use crate::problem::{ApiError, ErrorCode};

/// The strong entity tag of a resource at `version`.
#[must_use]
pub fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

fn parse(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok()
}

/// The version `If-Match` requires: `None` without the header or with `*`.
///
/// # Errors
/// 412 when the header names no version of ours: it cannot match the current one.
pub(crate) fn if_match(request: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(header::IF_MATCH) else { return Ok(None) };
    let value = value.to_str().unwrap_or_default().trim();
    // `*` matches any current representation; an empty header names no condition at all.
    if value == "*" || value.is_empty() {
        return Ok(None);
    }
    // If-Match uses the strong comparison (RFC 9110 section 13.1.1): a weak tag never matches.
    value
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.starts_with("W/"))
        .find_map(parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PreconditionFailed,
                "If-Match does not name a current version of this resource",
            )
        })
}

/// True when `If-None-Match` matches `version` (or is `*`): the client's copy is current.
pub(crate) fn not_modified(request: &HttpRequest, version: u64) -> bool {
    request.headers().get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(
        |value| value.trim() == "*" || value.split(',').filter_map(parse).any(|v| v == version),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn tags_round_trip_and_weak_tags_are_read() {
        assert_eq!(etag(3), "\"v3\"");
        assert_eq!(parse("\"v3\""), Some(3));
        assert_eq!(parse("W/\"v4\""), Some(4));
        assert_eq!(parse("\"x\""), None);
    }

    #[test]
    fn if_match_yields_the_expected_version() {
        let none = TestRequest::default().to_http_request();
        assert_eq!(if_match(&none).ok(), Some(None));
        let star = TestRequest::default().insert_header((header::IF_MATCH, "*")).to_http_request();
        assert_eq!(if_match(&star).ok(), Some(None));
        let v2 =
            TestRequest::default().insert_header((header::IF_MATCH, "\"v2\"")).to_http_request();
        assert_eq!(if_match(&v2).ok(), Some(Some(2)));
        let bad =
            TestRequest::default().insert_header((header::IF_MATCH, "\"abc\"")).to_http_request();
        assert!(if_match(&bad).is_err());
        let weak =
            TestRequest::default().insert_header((header::IF_MATCH, "W/\"v2\"")).to_http_request();
        assert!(if_match(&weak).is_err(), "a weak tag never matches If-Match");
        let listed = TestRequest::default()
            .insert_header((header::IF_MATCH, "W/\"v1\", \"v3\""))
            .to_http_request();
        assert_eq!(if_match(&listed).ok(), Some(Some(3)));
        let empty = TestRequest::default().insert_header((header::IF_MATCH, "")).to_http_request();
        assert_eq!(if_match(&empty).ok(), Some(None), "an empty If-Match names no condition");
    }

    #[test]
    fn if_none_match_detects_a_current_copy() {
        let request = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"v1\", \"v2\""))
            .to_http_request();
        assert!(not_modified(&request, 2));
        assert!(!not_modified(&request, 3));
        assert!(!not_modified(&TestRequest::default().to_http_request(), 1));
    }
}
