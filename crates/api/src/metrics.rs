//! Prometheus metrics seen from the HTTP layer (ADR 0018), and `GET /metrics`.
//!
//! - Requests: `http_requests_total` and `http_request_duration_seconds` by method, route
//!   template (`/api/v1/orders/{id}`; every unmatched path shares [`UNMATCHED`]) and status,
//!   and `http_requests_in_flight`. Never a raw path, id or query string: a label's values
//!   stay few whatever clients send.
//! - Business events the API answers: orders placed, order moves by action, rate-limit
//!   refusals by policy, idempotent replays.
//! - `orderly_api_deprecated_requests_total` by version and route template: the requests a
//!   deprecated version still gets (`deprecation.rs`); every route of a version that can be
//!   deprecated starts at 0; `orderly_api_sunset_timestamp_seconds` by version: its sunset
//!   (0: none set), for the alert on traffic close to it.
//! - `orderly_dependency_up`: each dependency's last known health (asked again at most once a
//!   second, whatever the scrape rate).
//!
//! The registry is the application instance's own (the composition root makes it and the
//! adapters add their series to it), so two instances in one process never mix their counts.

use std::time::Duration;

use actix_web::{
    App, HttpResponse,
    body::MessageBody,
    dev::{ServiceFactory, ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header},
    web,
};
use orderly_domain::OrderAction;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder, core::Collector as _,
};

use crate::{
    rate_limit::RateLimitPolicies,
    routes::table::{Version, endpoints},
    state::{ApiState, Readiness},
};

/// Where Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Latency buckets, in seconds: from 1 ms (a cached read) to 10 s (beyond any timeout).
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The series the HTTP layer records, registered in one instance's registry.
#[derive(Clone)]
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    orders_placed: IntCounter,
    transitions: IntCounterVec,
    rate_limited: IntCounterVec,
    idempotent_replays: IntCounter,
    deprecated_requests: IntCounterVec,
    sunsets: IntGaugeVec,
    dependency_up: IntGaugeVec,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiMetrics").finish_non_exhaustive()
    }
}

impl ApiMetrics {
    /// Registers the HTTP layer's series in `registry`. Label values known in advance (the
    /// rate-limit policies in force, the order actions) start at 0, so that `rate()` and
    /// `increase()` see their first event.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry, policies: &RateLimitPolicies) -> prometheus::Result<Self> {
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status.",
            ),
            labels,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from receiving a request to its response, by method, route template and status.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )?;
        let in_flight =
            IntGauge::new("http_requests_in_flight", "HTTP requests being served right now.")?;
        let orders_placed = IntCounter::new(
            "orderly_orders_placed_total",
            "Orders placed (POST /api/v1/orders answered 201).",
        )?;
        let transitions = IntCounterVec::new(
            Opts::new(
                "orderly_order_transitions_total",
                "Order moves after placing, by action: pay, cancel, ship, deliver (answered 201) and expire (the expiry job).",
            ),
            &["action"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "orderly_rate_limited_total",
                "Requests refused with 429, by the refusing policy.",
            ),
            &["policy"],
        )?;
        let idempotent_replays = IntCounter::new(
            "orderly_idempotent_replays_total",
            "Responses replayed for a repeated Idempotency-Key (`Idempotent-Replayed: true`).",
        )?;
        let deprecated_requests = IntCounterVec::new(
            Opts::new(
                "orderly_api_deprecated_requests_total",
                "Requests to a deprecated API version (after API_V1_DEPRECATED_AT), by version and route template.",
            ),
            &["version", "route"],
        )?;
        let sunsets = IntGaugeVec::new(
            Opts::new(
                "orderly_api_sunset_timestamp_seconds",
                "When an API version is retired (API_V1_SUNSET_AT), in Unix seconds; 0 while no sunset is set.",
            ),
            &["version"],
        )?;
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "orderly_dependency_up",
                "1 when the dependency answered its last health check (at most a second old), 0 when not.",
            ),
            &["dependency"],
        )?;
        for action in OrderAction::ALL.iter().filter(|action| **action != OrderAction::Place) {
            transitions.with_label_values(&[action.as_str()]);
        }
        for endpoint in
            endpoints().iter().filter(|endpoint| endpoint.version() == Some(Version::V1))
        {
            deprecated_requests.with_label_values(&[Version::V1.name(), endpoint.path()]);
        }
        sunsets.with_label_values(&[Version::V1.name()]);
        for policy in [
            &policies.anonymous,
            &policies.authenticated,
            &policies.auth_per_ip,
            &policies.auth_per_account,
            &policies.orders,
        ]
        .into_iter()
        .flatten()
        {
            rate_limited.with_label_values(&[policy.name.as_str()]);
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(orders_placed.clone()))?;
        registry.register(Box::new(transitions.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(idempotent_replays.clone()))?;
        registry.register(Box::new(deprecated_requests.clone()))?;
        registry.register(Box::new(sunsets.clone()))?;
        registry.register(Box::new(dependency_up.clone()))?;
        Ok(Self {
            registry: registry.clone(),
            requests,
            duration,
            in_flight,
            orders_placed,
            transitions,
            rate_limited,
            idempotent_replays,
            deprecated_requests,
            sunsets,
            dependency_up,
        })
    }

    /// Counts one answered request. `route` is the matched template or [`UNMATCHED`].
    pub(crate) fn observe(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        let labels = [method_label(method), route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(took.as_secs_f64());
    }

    /// Counts a request as in flight until the returned guard is dropped (also when the
    /// client goes away and the request's future is dropped half-way).
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts a placed order.
    pub(crate) fn order_placed(&self) {
        self.orders_placed.inc();
    }

    /// Counts `count` orders moved by `action`: the API's answered transitions, and the
    /// orders the expiry job expired.
    pub fn orders_moved(&self, action: OrderAction, count: u64) {
        self.transitions.with_label_values(&[action.as_str()]).inc_by(count);
    }

    /// Counts a response replayed for a repeated `Idempotency-Key`.
    pub(crate) fn idempotent_replay(&self) {
        self.idempotent_replays.inc();
    }

    /// Counts a request to the deprecated `version` (`v1`), by route template or [`UNMATCHED`].
    pub(crate) fn deprecated_request(&self, version: &str, route: &str) {
        self.deprecated_requests.with_label_values(&[version, route]).inc();
    }

    /// Shows the sunset of `version` (`v1`) in Unix seconds; `None`: none set (0).
    pub(crate) fn sunset(&self, version: &str, at: Option<i64>) {
        self.sunsets.with_label_values(&[version]).set(at.unwrap_or(0));
    }

    /// Counts a request refused by the rate-limit policy named `policy`.
    pub(crate) fn rate_limited(&self, policy: &str) {
        self.rate_limited.with_label_values(&[policy]).inc();
    }

    /// Every series of the registry in the Prometheus text format (version 0.0.4).
    ///
    /// # Errors
    /// When a series cannot be encoded (an invalid label value).
    pub fn render(&self) -> prometheus::Result<String> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// What a scrape shows: every series, with `orderly_dependency_up` from readiness checks
    /// run now. The rest is gathered first, so that the pool's gauges do not count the
    /// connection of the check's own ping (a pool takes a connection back a moment later).
    async fn scrape(&self, readiness: &dyn Readiness) -> prometheus::Result<String> {
        let mut families = self.registry.gather();
        for dependency in readiness.last_known().await {
            self.dependency_up
                .with_label_values(&[dependency.name])
                .set(i64::from(dependency.healthy));
        }
        let fresh = self.dependency_up.collect();
        families.retain(|family| fresh.iter().all(|new| new.name() != family.name()));
        families.extend(fresh);
        TextEncoder::new().encode_to_string(&families)
    }
}

/// Keeps a request counted in `http_requests_in_flight` while it lives.
pub(crate) struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: the standard ones as they are, any other as `OTHER`, so that a
/// client inventing methods cannot create series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// `GET /metrics`: runs the readiness checks (`orderly_dependency_up`), then renders every
/// series. Never rate limited, never in the OpenAPI document; 404 when metrics are off.
pub(crate) async fn serve(state: web::Data<ApiState>) -> HttpResponse {
    let Some(metrics) = &state.metrics else { return HttpResponse::NotFound().finish() };
    match metrics.scrape(state.readiness.as_ref()).await {
        Ok(text) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, TextEncoder::new().format_type()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(text),
        Err(error) => {
            tracing::error!(error = %error, "the metrics could not be rendered");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The application of the internal metrics listener (`METRICS_ADDR`): `GET /metrics` and
/// nothing else, without logs, limits or problem bodies.
pub fn metrics_app(
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
    App::new()
        .app_data(web::Data::new(state))
        .route(PATH, web::get().to(serve))
        .default_service(web::to(HttpResponse::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("a method")), "OTHER");
    }

    #[test]
    fn requests_are_counted_by_template_and_the_guard_leaves_the_in_flight_gauge_as_it_was() {
        let registry = Registry::new();
        let metrics =
            ApiMetrics::register(&registry, &RateLimitPolicies::default()).expect("registers");
        {
            let _guard = metrics.in_flight();
            assert_eq!(metrics.in_flight.get(), 1);
        }
        assert_eq!(metrics.in_flight.get(), 0);
        metrics.observe(
            &Method::GET,
            "/api/v1/orders/{id}",
            StatusCode::OK,
            Duration::from_millis(3),
        );
        let text = metrics.render().expect("renders");
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/api/v1/orders/{id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"orderly_order_transitions_total{action="expire"} 0"#), "{text}");
        assert!(!text.contains(r#"action="place""#), "{text}");
        assert!(text.contains("orderly_idempotent_replays_total 0"), "{text}");
        assert!(
            text.contains(
                r#"orderly_api_deprecated_requests_total{route="/api/v1/orders/{id}",version="v1"} 0"#
            ),
            "{text}"
        );
    }
}
