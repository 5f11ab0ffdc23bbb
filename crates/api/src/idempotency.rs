//! The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header) on the
//! routes that create or move orders: reading the key, fingerprinting the request, and sending a
//! response (new or replayed) from its stored form, so that a replay is byte for byte the first
//! response (ADR 0023). The stored form is this layer's: a JSON envelope of status, `Location`,
//! `ETag` and body, which the application and the store keep as an opaque [`Replay`].

use actix_web::{
    HttpRequest, HttpResponse, HttpResponseBuilder,
    http::{StatusCode, header},
};
use orderly_application::ports::{
    IdempotencyKey, IdempotentRequest, InvalidIdempotencyKey, Replay,
};
use orderly_domain::{Actor, rule};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::problem::{ApiError, FieldError};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The response header that marks a replay.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// The key of `request`, if it sent one, taken as sent (see [`IdempotencyKey`]).
///
/// # Errors
/// A 400 `VALIDATION_FAILED` problem naming the header when the key is empty, longer than 255
/// characters or not visible ASCII, or when the header is repeated.
pub(crate) fn key(request: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(invalid("send one Idempotency-Key header, not several"));
    }
    let raw = value.to_str().map_err(|_| invalid(&InvalidIdempotencyKey.to_string()))?;
    IdempotencyKey::parse(raw).map(Some).map_err(|error| invalid(&error.to_string()))
}

fn invalid(message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(IDEMPOTENCY_KEY, rule::PATTERN, message)])
}

/// The idempotent request `actor` makes with `body`, when it sent a key: the key scoped to the
/// caller, with a fingerprint of the method, the path and the body as parsed (so that the same
/// JSON written with other spacing or key order is the same request).
///
/// # Errors
/// As [`key`].
pub(crate) fn request<T: Serialize>(
    request: &HttpRequest,
    actor: &Actor,
    body: &T,
) -> Result<Option<IdempotentRequest>, ApiError> {
    let Some(key) = key(request)? else { return Ok(None) };
    let Some(user_id) = actor.user_id() else { return Ok(None) };
    let mut digest = Sha256::new();
    digest.update(request.method().as_str());
    digest.update(b"\n");
    digest.update(request.path());
    digest.update(b"\n");
    digest.update(serde_json::to_vec(body).map_err(|error| ApiError::internal(error.into()))?);
    Ok(Some(IdempotentRequest { user_id, key, fingerprint: hex::encode(digest.finalize()) }))
}

/// A response as first sent, in the envelope a [`Replay`] carries.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The HTTP status code.
    status: u16,
    /// The `Location` header, if any.
    location: Option<String>,
    /// The `ETag` header, if any.
    etag: Option<String>,
    /// The body (JSON), as sent.
    body: String,
}

/// A JSON response in its stored form.
pub(crate) fn stored<T: Serialize>(
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    body: &T,
) -> Replay {
    let envelope = Envelope {
        status: status.as_u16(),
        location,
        etag,
        // Serializing a response DTO cannot fail: no maps with non-string keys, no custom code.
        body: serde_json::to_string(body).unwrap_or_default(),
    };
    // Nor can serializing the envelope of strings and a number.
    Replay::new(serde_json::to_string(&envelope).unwrap_or_default())
}

/// Sends a stored response; `replayed` adds `Idempotent-Replayed: true`.
///
/// # Errors
/// A 500 problem when the stored form is not an envelope this layer wrote.
pub(crate) fn send(replay: &Replay, replayed: bool) -> Result<HttpResponse, ApiError> {
    let response: Envelope = serde_json::from_str(replay.as_str()).map_err(|error| {
        ApiError::internal(
            anyhow::Error::new(error).context("reading a stored idempotent response"),
        )
    })?;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let mut builder = HttpResponseBuilder::new(status);
    builder.content_type("application/json");
    if let Some(location) = &response.location {
        builder.insert_header((header::LOCATION, location.as_str()));
    }
    if let Some(etag) = &response.etag {
        builder.insert_header((header::ETAG, etag.as_str()));
    }
    if replayed {
        builder.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(builder.body(response.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_response_is_sent_again_as_it_was() {
        let replay = stored(
            StatusCode::CREATED,
            Some("/api/v1/orders/1".to_owned()),
            Some("\"3\"".to_owned()),
            &serde_json::json!({"id": 1}),
        );
        let response = send(&replay, true).expect("an envelope this layer wrote");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers().get(header::LOCATION).expect("a Location"),
            "/api/v1/orders/1"
        );
        assert_eq!(response.headers().get(header::ETAG).expect("an ETag"), "\"3\"");
        assert_eq!(response.headers().get(IDEMPOTENT_REPLAYED).expect("the replay mark"), "true");
    }

    #[test]
    fn an_unreadable_stored_response_is_an_internal_error() {
        assert!(send(&Replay::new("not an envelope"), false).is_err());
    }
}
