//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): a request that carries a valid
//! `traceparent` continues its caller's trace; every other request starts one. Either way the
//! request's span gets a trace id, which every log line of the request carries, so that logs
//! and traces (ADR 0018) link up whether or not spans are exported.
//!
//! When the composition root installed an OpenTelemetry layer, the request span becomes the
//! child of the caller's span and its trace id is the exported one; without one, the trace id
//! is the caller's, or a fresh UUIDv7 in hex (random in its last 62 bits, as the W3C asks of
//! the right-most bytes).

use std::str::FromStr as _;

use actix_web::http::header::HeaderMap;
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
};
use orderly_domain::Uuid;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header naming the caller's trace and span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendors' trace state, passed on with the parent.
pub const TRACESTATE: &str = "tracestate";

/// A valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, never all zeros.
    pub trace_id: TraceId,
    /// The caller's span, never all zeros.
    pub parent_id: SpanId,
    /// The caller's flags (bit 0: sampled).
    pub flags: TraceFlags,
}

impl TraceParent {
    /// Reads a `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`, lower-case, with neither id
    /// all zeros. A later version may append `-...` fields, which are ignored; version `ff` is
    /// invalid. `None` for anything else: the request then starts a trace of its own.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let is_hex = |part: &str, len: usize| {
            part.len() == len
                && part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let mut parts = value.trim().splitn(5, '-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        if !is_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !is_hex(trace, 32) || !is_hex(parent, 16) || !is_hex(flags, 2) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok().filter(|id| *id != TraceId::INVALID)?;
        let parent_id = SpanId::from_hex(parent).ok().filter(|id| *id != SpanId::INVALID)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self { trace_id, parent_id, flags: TraceFlags::new(flags) })
    }

    /// The `traceparent` of the request's headers, when there is exactly one and it is valid.
    #[must_use]
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT);
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(first.to_str().ok()?)
    }
}

/// Makes `span` continue the trace named in `headers`, and returns the span's trace id in
/// lower-case hex (see the module docs). Call it before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) -> String {
    let parent = TraceParent::of(headers);
    if let Some(parent) = parent {
        let state = headers
            .get(TRACESTATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| TraceState::from_str(value).ok())
            .unwrap_or_default();
        let remote = SpanContext::new(parent.trace_id, parent.parent_id, parent.flags, true, state);
        // Without an OpenTelemetry layer there is nothing to attach the parent to.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
    let exported = span.context().span().span_context().trace_id();
    if exported != TraceId::INVALID {
        return exported.to_string();
    }
    match parent {
        Some(parent) => parent.trace_id.to_string(),
        None => Uuid::now_v7().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let parent = TraceParent::parse(VALID).expect("valid");
        assert_eq!(parent.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(parent.flags.is_sampled());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert!(TraceParent::parse(later).is_some());
    }

    #[test]
    fn two_traceparents_are_none() {
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_static(TRACEPARENT);
        headers.append(name.clone(), HeaderValue::from_static(VALID));
        assert!(TraceParent::of(&headers).is_some());
        headers.append(name, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::of(&headers), None);
    }

    #[test]
    fn without_a_tracing_layer_the_callers_trace_id_is_kept_or_one_is_made() {
        let mut headers = HeaderMap::new();
        let span = tracing::info_span!("request");
        let made = continue_trace(&span, &headers);
        assert_eq!(made.len(), 32);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        assert_ne!(made, continue_trace(&span, &headers), "a new id per request");
        headers.insert(HeaderName::from_static(TRACEPARENT), HeaderValue::from_static(VALID));
        assert_eq!(continue_trace(&span, &headers), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
