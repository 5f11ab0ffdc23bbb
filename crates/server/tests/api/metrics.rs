//! Metrics, traces and the request log line (ADR 0018): `GET /metrics` and what moves its
//! series, the metrics listener of `METRICS_ADDR`, W3C `traceparent` continued into the log
//! line and the exported spans, and the alert rules and dashboard checked against the series
//! the application exports.
//!
//! Each application instance has its own registry, so a test reads exactly its own counts even
//! though the tests run in parallel in one process. Log lines and spans are process-wide: the
//! tracing tests install one capturing subscriber (the production one, `telemetry::subscriber`,
//! writing to memory and exporting to memory) and look only for their own trace and request ids.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use orderly_domain::Uuid;
use orderly_infrastructure::{Database, DatabaseSettings};
use orderly_server::{
    settings::{LogFormat, Quota, Settings},
    startup::Application,
    telemetry,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, http_client, json_body};

// --- reading the exposition format ---

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (label values may hold `{`, `}` and `,`, as
/// route templates do).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value = value.parse::<f64>().expect("a numeric value");
            let Some((name, labels)) = series.split_once('{') else {
                return Sample { name: series.to_owned(), labels: BTreeMap::new(), value };
            };
            let mut parsed = BTreeMap::new();
            let mut chars = labels.trim_end_matches('}').chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "a quoted label value in {line}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                parsed.insert(key, value);
            }
            Sample { name: name.to_owned(), labels: parsed, value }
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} names {} series", matching.len());
    matching.first().map(|sample| sample.value)
}

impl TestApp {
    async fn metrics(&self) -> reqwest::Response {
        self.request(Method::GET, "/metrics", None).send().await.expect("the request is sent")
    }

    /// The samples `/metrics` shows now.
    async fn scrape(&self) -> Vec<Sample> {
        let response = self.metrics().await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("text/plain; version=0.0.4"),
            "the Prometheus text format"
        );
        samples(&response.text().await.expect("a body"))
    }
}

const PRODUCT_ROUTE: &str = "/api/v1/products/{id}";

// --- the series ---

async fn request_series_carry_the_route_template_and_the_status(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "MET-ROUTE", 1500, 10).await;
    let id = product["id"].as_str().expect("an id");
    assert_eq!(app.get_product(id, None).await.status(), StatusCode::OK);
    let unknown = Uuid::now_v7().to_string();
    assert_eq!(app.get_product(&unknown, None).await.status(), StatusCode::NOT_FOUND);
    let nowhere = app.request(Method::GET, "/no/such/route?secret=1", None).send().await;
    assert_eq!(nowhere.expect("sent").status(), StatusCode::NOT_FOUND);

    let scraped = app.scrape().await;
    let ok = [("method", "GET"), ("route", PRODUCT_ROUTE), ("status", "200")];
    assert_eq!(value(&scraped, "http_requests_total", &ok), Some(1.0));
    let not_found = [("method", "GET"), ("route", PRODUCT_ROUTE), ("status", "404")];
    assert_eq!(value(&scraped, "http_requests_total", &not_found), Some(1.0));
    let unmatched = [("method", "GET"), ("route", "<unmatched>"), ("status", "404")];
    assert_eq!(value(&scraped, "http_requests_total", &unmatched), Some(1.0));
    let created = [("method", "POST"), ("route", "/api/v1/products"), ("status", "201")];
    assert_eq!(value(&scraped, "http_requests_total", &created), Some(1.0));
    assert_eq!(value(&scraped, "http_request_duration_seconds_count", &ok), Some(1.0));
    let slowest = [ok.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(value(&scraped, "http_request_duration_seconds_bucket", &slowest), Some(1.0));
    // The scrape itself is the one request in flight.
    assert_eq!(value(&scraped, "http_requests_in_flight", &[]), Some(1.0));
}

async fn no_label_carries_a_raw_id_or_a_query_string(app: TestApp) {
    let customer = app.customer("Labels").await;
    let ids: Vec<String> = (0..3).map(|_| Uuid::now_v7().to_string()).collect();
    for path in [
        format!("/api/v1/orders/{}?limit=5", ids[0]),
        format!("/api/v1/users/{}/orders?cursor=secret", ids[1]),
        format!("/nowhere/{}?q=secret", ids[2]),
        format!("/api/v1/orders/{}/transitions", ids[0]),
    ] {
        let sent = app.request(Method::GET, &path, Some(&customer.access_token)).send().await;
        assert!(sent.expect("sent").status().is_client_error(), "{path}");
    }
    let invented = reqwest::Method::from_bytes(b"BREW").expect("a method");
    let _ = app.request(invented, &format!("/{}", customer.id), None).send().await;

    let scraped = app.scrape().await;
    let values: BTreeSet<&str> =
        scraped.iter().flat_map(|sample| sample.labels.values().map(String::as_str)).collect();
    for value in &values {
        assert!(!value.contains('?') && !value.contains("=secret"), "a query in a label: {value}");
        for id in ids.iter().chain([&customer.id]) {
            assert!(!value.contains(id.as_str()), "a raw id in a label: {value}");
        }
    }
    assert!(values.contains("/api/v1/orders/{id}"), "{values:?}");
    assert!(values.contains("/api/v1/users/{id}/orders"), "{values:?}");
    assert!(values.contains("OTHER"), "an invented method shares one label: {values:?}");
    assert!(!values.contains("BREW"), "{values:?}");
}

/// The counters that only move by one event of their own.
const EVENTS: &[(&str, &[(&str, &str)])] = &[
    ("orderly_orders_placed_total", &[]),
    ("orderly_order_transitions_total", &[("action", "pay")]),
    ("orderly_order_transitions_total", &[("action", "cancel")]),
    ("orderly_order_transitions_total", &[("action", "ship")]),
    ("orderly_order_transitions_total", &[("action", "deliver")]),
    ("orderly_order_transitions_total", &[("action", "expire")]),
    ("orderly_payment_gateway_calls_total", &[("operation", "authorize"), ("outcome", "approved")]),
    ("orderly_payment_gateway_calls_total", &[("operation", "authorize"), ("outcome", "declined")]),
    ("orderly_payment_gateway_calls_total", &[("operation", "capture"), ("outcome", "approved")]),
    ("orderly_payment_gateway_calls_total", &[("operation", "void"), ("outcome", "approved")]),
    ("orderly_payment_gateway_calls_total", &[("operation", "refund"), ("outcome", "approved")]),
    // Orders placed one after the other are batches of one (ADR 0042).
    ("orderly_order_batch_size_count", &[]),
    ("orderly_order_batch_size_sum", &[]),
];

async fn events(app: &TestApp) -> Vec<f64> {
    let scraped = app.scrape().await;
    EVENTS
        .iter()
        .map(|(name, labels)| {
            value(&scraped, name, labels).unwrap_or_else(|| panic!("{name} {labels:?}"))
        })
        .collect()
}

async fn placing_and_moving_orders_count_each_exactly_once(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Counted").await;
    let cheap = app.product(&admin, "MET-CHEAP", 1000, 50).await;
    // Two of these are above the simulated card limit of the test settings (1,000,000).
    let dear = app.product(&admin, "MET-DEAR", 600_000, 50).await;
    let before = events(&app).await;

    let shipped = app.order(&customer, cheap["id"].as_str().expect("an id"), 1).await;
    let shipped = shipped["id"].as_str().expect("an id");
    for (who, action) in [(&customer, "pay"), (&admin, "ship")] {
        let moved =
            app.transition(&who.access_token, shipped, &json!({"action": action}), None).await;
        assert_eq!(moved.status(), StatusCode::CREATED, "{action}");
    }
    let cancelled = app.order(&customer, cheap["id"].as_str().expect("an id"), 2).await;
    let cancelled = cancelled["id"].as_str().expect("an id");
    let cancel = json!({"action": "cancel"});
    assert_eq!(
        app.transition(&customer.access_token, cancelled, &cancel, None).await.status(),
        StatusCode::CREATED
    );
    // Refused moves and refused payments count nowhere but in their HTTP status.
    let again = app.transition(&customer.access_token, cancelled, &cancel, None).await;
    assert_problem(again, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
    let declined = app.order(&customer, dear["id"].as_str().expect("an id"), 2).await;
    let pay = json!({"action": "pay"});
    let refused = app
        .transition(&customer.access_token, declined["id"].as_str().expect("an id"), &pay, None)
        .await;
    assert_problem(refused, StatusCode::PAYMENT_REQUIRED, "PAYMENT_DECLINED").await;
    // A paid order an admin cancels is refunded.
    let refunded = app.order(&customer, cheap["id"].as_str().expect("an id"), 1).await;
    let refunded = refunded["id"].as_str().expect("an id");
    for (who, action) in [(&customer, "pay"), (&admin, "cancel")] {
        let moved =
            app.transition(&who.access_token, refunded, &json!({"action": action}), None).await;
        assert_eq!(moved.status(), StatusCode::CREATED, "{action}");
    }

    let after = events(&app).await;
    let moved: Vec<f64> = after.iter().zip(&before).map(|(after, before)| after - before).collect();
    // placed, pay, cancel, ship, deliver, expire; authorize approved and declined, capture,
    // void, refund; batches and the orders in them
    assert_eq!(
        moved,
        [4.0, 2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 1.0, 2.0, 0.0, 1.0, 4.0, 4.0],
        "{EVENTS:?}"
    );
}

async fn product_reads_are_counted_by_the_caches_answer(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "CACHE-1", 1000, 5).await;
    let id = product["id"].as_str().expect("an id");
    let lookups = |scraped: &[Sample], result: &str| {
        value(scraped, "orderly_product_cache_lookups_total", &[("result", result)]).unwrap_or(0.0)
    };
    let before = app.scrape().await;

    for _ in 0..3 {
        assert_eq!(app.get_product(id, None).await.status(), StatusCode::OK);
    }
    let renamed =
        app.patch_product(&admin.access_token, id, &json!({"name": "Renamed"}), None).await;
    assert_eq!(renamed.status(), StatusCode::OK);

    let after = app.scrape().await;
    assert_eq!(lookups(&after, "miss") - lookups(&before, "miss"), 1.0, "the first read");
    assert_eq!(lookups(&after, "hit") - lookups(&before, "hit"), 2.0, "the next two");
    assert_eq!(lookups(&after, "bypass"), 0.0, "no Redis: the cache always serves");
    let local = |scraped: &[Sample]| {
        value(scraped, "orderly_product_cache_invalidations_total", &[("origin", "local")])
            .unwrap_or(0.0)
    };
    assert!(local(&after) > local(&before), "the PATCH dropped the entry");
    assert_eq!(value(&after, "orderly_product_cache_serving", &[]), Some(1.0));

    // List pages: the first read misses, the second hits, a write in between outdates the page.
    let pages = |scraped: &[Sample], result: &str| {
        value(scraped, "orderly_product_list_cache_lookups_total", &[("result", result)])
            .unwrap_or(0.0)
    };
    let list = || async {
        assert_eq!(app.list_products(None, "?q=cache-1").await.status(), StatusCode::OK)
    };
    let before = app.scrape().await;
    list().await;
    list().await;
    let renamed =
        app.patch_product(&admin.access_token, id, &json!({"name": "Renamed again"}), None).await;
    assert_eq!(renamed.status(), StatusCode::OK);
    list().await;
    let after = app.scrape().await;
    assert_eq!(pages(&after, "miss") - pages(&before, "miss"), 2.0, "the first, after the PATCH");
    assert_eq!(pages(&after, "hit") - pages(&before, "hit"), 1.0, "the second");
}

async fn the_pool_the_hashing_gate_and_the_build_are_exported(app: TestApp) {
    let scraped = app.scrape().await;
    // On an SQLite file (the tests' SQLite), write transactions have a connection of their own.
    let writer = u32::from(app.settings.database.database_url.starts_with("sqlite:"));
    let max = f64::from(app.settings.database.database_max_connections + writer);
    assert_eq!(value(&scraped, "orderly_db_connections_max", &[]), Some(max));
    let idle = value(&scraped, "orderly_db_connections", &[("state", "idle")]).expect("idle");
    let in_use = value(&scraped, "orderly_db_connections", &[("state", "in_use")]).expect("in use");
    assert!(idle + in_use <= max, "{idle} + {in_use} <= {max}");
    assert_eq!(value(&scraped, "orderly_dependency_up", &[("dependency", "database")]), Some(1.0));
    assert!(value(&scraped, "orderly_password_hash_slots", &[]).is_some_and(|slots| slots >= 1.0));
    for name in [
        "orderly_password_hash_in_use",
        "orderly_password_hash_waiting",
        "orderly_password_hash_refused_total",
        "orderly_idempotent_replays_total",
        "orderly_payment_breaker_state",
        "orderly_expiry_last_success_timestamp_seconds",
    ] {
        assert_eq!(value(&scraped, name, &[]), Some(0.0), "{name}");
    }
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&scraped, "orderly_build_info", &version), Some(1.0));
    for policy in ["anonymous", "authenticated", "auth-ip", "auth-account", "orders"] {
        let labels = [("policy", policy)];
        assert_eq!(value(&scraped, "orderly_rate_limited_total", &labels), Some(0.0), "{policy}");
    }
    for outcome in ["ok", "error"] {
        let labels = [("outcome", outcome)];
        assert_eq!(value(&scraped, "orderly_expiry_runs_total", &labels), Some(0.0), "{outcome}");
    }
}

async fn refusals_are_counted_by_policy_and_scrapes_are_never_limited(app: TestApp) {
    let limited = app
        .another_instance(|settings| {
            settings.rate_limit.anonymous = Quota::try_from("2/1m".to_owned()).expect("a quota");
        })
        .await;
    for _ in 0..2 {
        assert_eq!(limited.list_products(None, "").await.status(), StatusCode::OK);
    }
    let refused = limited.list_products(None, "").await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    for _ in 0..5 {
        let scrape = limited.metrics().await;
        assert_eq!(scrape.status(), StatusCode::OK);
        assert!(scrape.headers().get("ratelimit").is_none(), "no policy applies to /metrics");
    }
    let scraped = limited.scrape().await;
    let anonymous = [("policy", "anonymous")];
    assert_eq!(value(&scraped, "orderly_rate_limited_total", &anonymous), Some(1.0));
    let refused = [("method", "GET"), ("route", "/api/v1/products"), ("status", "429")];
    assert_eq!(value(&scraped, "http_requests_total", &refused), Some(1.0));
}

async fn metrics_can_be_turned_off(app: TestApp) {
    let off = app.another_instance(|settings| settings.telemetry.metrics_enabled = false).await;
    assert_problem(off.metrics().await, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await;
}

async fn the_expiry_job_counts_its_runs(app: TestApp) {
    let job = app.another_instance(|settings| settings.orders.order_expiry_interval = 1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let scraped = job.scrape().await;
        let runs = value(&scraped, "orderly_expiry_runs_total", &[("outcome", "ok")]);
        let last = value(&scraped, "orderly_expiry_last_success_timestamp_seconds", &[]);
        if runs.is_some_and(|runs| runs >= 1.0) {
            assert!(last.is_some_and(|last| last > 1.7e9), "a Unix time: {last:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An instance of `app`'s application whose `/metrics` has a listener of its own; returns its
/// main and metrics base URLs.
async fn with_metrics_listener(app: &TestApp) -> (String, String) {
    let mut settings = app.settings.clone();
    settings.telemetry.metrics_addr = Some("127.0.0.1:0".to_owned());
    let application = Application::build_with(&settings, app.database.clone())
        .await
        .expect("the application builds");
    let main = format!("http://127.0.0.1:{}", application.port());
    let metrics = application.metrics_port().expect("a metrics listener");
    tokio::spawn(application.run_until_stopped());
    (main, format!("http://127.0.0.1:{metrics}"))
}

async fn metrics_move_to_their_own_listener_when_metrics_addr_is_set(app: TestApp) {
    let (main, metrics) = with_metrics_listener(&app).await;
    let get = |url: String| {
        let client = app.client.clone();
        async move { client.get(url).send().await.expect("sent") }
    };
    assert_problem(get(format!("{main}/metrics")).await, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND")
        .await;
    assert_eq!(get(format!("{main}/health")).await.status(), StatusCode::OK);
    let scraped = get(format!("{metrics}/metrics")).await;
    assert_eq!(scraped.status(), StatusCode::OK);
    let scraped = samples(&scraped.text().await.expect("a body"));
    let health = [("method", "GET"), ("route", "/health"), ("status", "200")];
    assert_eq!(value(&scraped, "http_requests_total", &health), Some(1.0));
    let unmatched = [("route", "<unmatched>"), ("status", "404")];
    assert_eq!(value(&scraped, "http_requests_total", &unmatched), Some(1.0), "/metrics on main");
    assert_eq!(get(format!("{metrics}/health")).await.status(), StatusCode::NOT_FOUND);
}

api_tests!(
    request_series_carry_the_route_template_and_the_status,
    no_label_carries_a_raw_id_or_a_query_string,
    placing_and_moving_orders_count_each_exactly_once,
    the_pool_the_hashing_gate_and_the_build_are_exported,
    product_reads_are_counted_by_the_caches_answer,
    refusals_are_counted_by_policy_and_scrapes_are_never_limited,
    metrics_can_be_turned_off,
    the_expiry_job_counts_its_runs,
    metrics_move_to_their_own_listener_when_metrics_addr_is_set,
    traceparent_is_continued_in_the_log_line_and_the_spans,
    a_request_without_traceparent_gets_a_trace_id_of_its_own,
    the_alert_rules_and_the_dashboard_name_only_exported_series,
);

// --- traces and log lines ---

/// JSON log lines of requests (those that name a trace), as the production subscriber writes
/// them.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The exported spans of the traces and requests a test watches.
static SPANS: Mutex<Vec<SpanData>> = Mutex::new(Vec::new());
/// What the tests watch: trace ids (hex) and request ids.
static WATCHED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

struct Capture;

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.contains("\"trace_id\"") {
            LINES.lock().expect("the log lock").push(line.into_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Collect;

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let kept: Vec<SpanData> = {
            let watched = WATCHED.lock().expect("the watch lock");
            batch
                .into_iter()
                .filter(|span| {
                    watched.contains(&span.span_context.trace_id().to_string())
                        || span.attributes.iter().any(|attribute| {
                            attribute.key.as_str() == "request_id"
                                && watched.contains(attribute.value.as_str().as_ref())
                        })
                })
                .collect()
        };
        SPANS.lock().expect("the span lock").extend(kept);
        Ok(())
    }
}

/// Installs, once per process, the production subscriber writing JSON lines to [`LINES`] and
/// exporting every span at once to [`SPANS`].
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let provider = SdkTracerProvider::builder().with_simple_exporter(Collect).build();
        let subscriber =
            telemetry::subscriber(LogFormat::Json, || Capture, Some(provider.tracer("tests")));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
    });
}

fn watch(id: &str) {
    WATCHED.lock().expect("the watch lock").insert(id.to_owned());
}

/// The JSON request line (`"message": "request"`) of the request `request_id`, waiting a
/// little for it.
async fn request_line(request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = LINES
            .lock()
            .expect("the log lock")
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "request" && line["span"]["request_id"] == request_id);
        if let Some(line) = found {
            return line;
        }
        assert!(Instant::now() < deadline, "no request line for {request_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exported spans that satisfy `keep`, once there is at least one.
async fn spans(keep: impl Fn(&SpanData) -> bool) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<SpanData> = SPANS
            .lock()
            .expect("the span lock")
            .iter()
            .filter(|span| keep(span))
            .cloned()
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no such span was exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.as_str().into_owned())
}

async fn traceparent_is_continued_in_the_log_line_and_the_spans(app: TestApp) {
    capture();
    let admin = app.admin().await;
    let product = app.product(&admin, "MET-TRACE", 990, 3).await;
    let id = product["id"].as_str().expect("an id");
    let trace_id = Uuid::now_v7().simple().to_string();
    let parent_id = "00f067aa0ba902b7";
    let request_id = format!("trace-{trace_id}");
    watch(&trace_id);
    let response = app
        .request(Method::GET, &format!("/api/v1/products/{id}"), None)
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);

    let line = request_line(&request_id).await;
    assert_eq!(line["span"]["trace_id"], trace_id.as_str(), "{line}");
    assert_eq!(line["span"]["route"], PRODUCT_ROUTE, "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["user_id"], "-", "{line}");
    assert!(line["latency_ms"].is_string() || line["latency_ms"].is_number(), "{line}");

    let trace = TraceId::from_hex(&trace_id).expect("a trace id");
    let request =
        spans(|span| span.span_context.trace_id() == trace && span.span_kind == SpanKind::Server)
            .await
            .pop()
            .expect("the request span");
    assert_eq!(request.parent_span_id, SpanId::from_hex(parent_id).expect("a span id"));
    assert!(request.parent_span_is_remote, "the parent is the caller's");
    assert_eq!(request.name, format!("GET {PRODUCT_ROUTE}"));
    assert_eq!(attribute(&request, "request_id").as_deref(), Some(request_id.as_str()));
    let request_span = request.span_context.span_id();
    let statements =
        spans(|span| span.span_context.trace_id() == trace && span.name.starts_with("sea_orm."))
            .await;
    assert!(
        statements.iter().all(|span| span.parent_span_id == request_span),
        "the database statements are children of the request: {statements:?}"
    );
}

async fn a_request_without_traceparent_gets_a_trace_id_of_its_own(app: TestApp) {
    capture();
    let request_id = format!("fresh-{}", Uuid::now_v7().simple());
    watch(&request_id);
    let response =
        app.request(Method::GET, "/health", None).header("x-request-id", &request_id).send().await;
    assert_eq!(response.expect("sent").status(), StatusCode::OK);

    let line = request_line(&request_id).await;
    let trace_id = line["span"]["trace_id"].as_str().expect("a trace id").to_owned();
    assert_eq!(trace_id.len(), 32, "{line}");
    assert!(trace_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{line}");
    let request =
        spans(|span| attribute(span, "request_id").as_deref() == Some(request_id.as_str()))
            .await
            .pop()
            .expect("the request span");
    assert_eq!(
        request.span_context.trace_id().to_string(),
        trace_id,
        "the logged trace is exported"
    );
    assert_eq!(request.parent_span_id, SpanId::INVALID, "a root span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_logs_its_cause_chain_on_one_line_and_the_database_gauge_drops() {
    capture();
    // Nothing listens on port 1: every query fails at once with "connection refused".
    let mut database = DatabaseSettings::new("postgres://orderly@127.0.0.1:1/orderly");
    database.acquire_timeout = Duration::from_secs(1);
    let database = Database::connect(&database).await.expect("a lazy pool");
    let settings = Settings::for_tests("postgres://orderly@127.0.0.1:1/orderly".to_owned());
    let application = Application::build_with(&settings, database).await.expect("it builds");
    let base = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let client = http_client().build().expect("a client");
    let request_id = format!("down-{}", Uuid::now_v7().simple());
    let response = client
        .get(format!("{base}/api/v1/products"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], "DATABASE_UNAVAILABLE", "{body}");

    request_line(&request_id).await;
    let failure = LINES
        .lock()
        .expect("the log lock")
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["message"] == "request failed" && line["span"]["request_id"] == request_id.as_str()
        })
        .expect("the cause is logged under the request's span");
    let error = failure["error"].as_str().expect("the cause chain as one string");
    assert!(!error.contains('\n'), "one line, no `Caused by:` block or backtrace: {error}");
    assert!(error.contains(": "), "the chain, outermost first: {error}");
    assert!(failure.to_string().len() < 2048, "a short line: {failure}");

    let scraped = client.get(format!("{base}/metrics")).send().await.expect("sent");
    let scraped = samples(&scraped.text().await.expect("a body"));
    assert_eq!(value(&scraped, "orderly_dependency_up", &[("dependency", "database")]), Some(0.0));
    let unavailable = [("route", "/api/v1/products"), ("status", "503")];
    assert_eq!(value(&scraped, "http_requests_total", &unavailable), Some(1.0));
}

// --- alert rules and dashboard ---

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Names Prometheus makes itself for every target, which no application exports.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Operators, modifiers and aggregations: an aggregation may be followed by `by (...)` rather
/// than by its parenthesis, so it is not told from a series name by what follows it.
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges
/// and strings, that are neither functions (followed by `(`) nor keywords, nor the label
/// lists of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_list => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_list = false;
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let keyword = PROMQL_KEYWORDS.contains(&word.to_lowercase().as_str());
                if ["by", "without", "on", "ignoring", "group_left", "group_right"]
                    .contains(&word.as_str())
                {
                    skip_list = next == Some(&'(');
                } else if !keyword && next != Some(&'(') {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every series name the application exports once traffic has touched each of them.
async fn exported_names(app: &TestApp) -> BTreeSet<String> {
    let admin = app.admin().await;
    let customer = app.customer("Alerts").await;
    let product = app.product(&admin, "MET-ALERTS", 500, 5).await;
    let order = app.order(&customer, product["id"].as_str().expect("an id"), 1).await;
    let pay = json!({"action": "pay"});
    let paid = app
        .transition(&customer.access_token, order["id"].as_str().expect("an id"), &pay, None)
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let text = app.metrics().await.text().await.expect("a body");
    let mut names: BTreeSet<String> =
        samples(&text).into_iter().map(|sample| sample.name).collect();
    names.extend(
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned),
    );
    names.extend(PROMETHEUS_SERIES.iter().map(|name| (*name).to_owned()));
    names.extend(relay_series(app).await);
    names
}

/// The series of an instance that relays the outbox to NATS (`TEST_NATS_URL`, the machine's by
/// default): exported only where `NATS_URL` is set, and the counter by type only once an event
/// was published (the writes above made some).
async fn relay_series(app: &TestApp) -> BTreeSet<String> {
    let nats = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let relaying = app
        .another_instance(|settings| {
            settings.nats.url = Some(nats);
            settings.nats.stream = "ORDERLY_METRICS_TEST".to_owned();
            settings.nats.subject_prefix = "orderly-metrics-test".to_owned();
        })
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = relaying.metrics().await.text().await.expect("a body");
        let names: BTreeSet<String> =
            samples(&text).into_iter().map(|sample| sample.name).collect();
        if names.contains("orderly_events_published_total") {
            return names;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event published to NATS within 15 s (is NATS at TEST_NATS_URL?): {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn the_alert_rules_and_the_dashboard_name_only_exported_series(app: TestApp) {
    let exported = exported_names(&app).await;
    let rules: RuleFile =
        serde_norway::from_str(include_str!("../../../../deploy/prometheus/alerts.yml"))
            .expect("deploy/prometheus/alerts.yml is a Prometheus rule file");
    let mut alerts = BTreeSet::new();
    for group in &rules.groups {
        assert!(!group.name.is_empty() && !group.rules.is_empty(), "{group:?}");
        for rule in &group.rules {
            assert!(alerts.insert(rule.alert.clone()), "{} is defined twice", rule.alert);
            assert!(
                matches!(rule.labels.get("severity").map(String::as_str), Some("page" | "ticket")),
                "{}: severity page or ticket",
                rule.alert
            );
            // A pending period, so that one bad scrape never pages anyone: `2m`, `15m`, `1h`.
            let pending = rule.pending.as_deref().unwrap_or_default();
            let (count, unit) = pending.split_at(pending.len().saturating_sub(1));
            assert!(
                count.parse::<u32>().is_ok_and(|n| n > 0) && matches!(unit, "s" | "m" | "h"),
                "{}: `for` must be a duration such as 5m, got {pending:?}",
                rule.alert
            );
            for annotation in ["summary", "description"] {
                assert!(rule.annotations.contains_key(annotation), "{}: {annotation}", rule.alert);
            }
            let names = metric_names(&rule.expr);
            assert!(!names.is_empty(), "{}: selects no series: {}", rule.alert, rule.expr);
            for name in names {
                assert!(exported.contains(&name), "{}: `{name}` is not exported", rule.alert);
            }
        }
    }
    for expected in [
        "OrderlyErrorBudgetBurnFast",
        "OrderlyHighLatencyP99",
        "OrderlyDatabaseDown",
        "OrderlyPaymentBreakerOpen",
        "OrderlyRateLimitSurge",
        "OrderlyExpiryJobStalled",
        "OrderlyOutboxLagGrowing",
    ] {
        assert!(alerts.contains(expected), "{expected} missing: {alerts:?}");
    }

    let dashboard: Value =
        serde_json::from_str(include_str!("../../../../deploy/grafana/orderly.json"))
            .expect("deploy/grafana/orderly.json is JSON");
    assert_eq!(dashboard["uid"], "orderly", "a stable uid for links");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            for name in metric_names(expr) {
                assert!(
                    exported.contains(&name),
                    "panel {}: `{name}` is not exported",
                    panel["title"]
                );
            }
            queried += 1;
        }
    }
    assert!(queried >= 10, "the dashboard queries the series: {queried}");
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!="/metrics"}[5m])))"#
        ),
        ["http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            "sum(rate(a_total{status=~\"5..\"}[1h])) / sum(rate(b_total[1h])) > (14.4 * 0.001) and on() c == 0"
        ),
        ["a_total", "b_total", "c"]
    );
    assert_eq!(
        names("time() - max(last_seconds > 0) > 900 unless ignoring(x) up"),
        ["last_seconds", "up"]
    );
    assert_eq!(names("sum by (state) (g{i=~\"$instance\"}) / max without (x) (h)"), ["g", "h"]);
}
