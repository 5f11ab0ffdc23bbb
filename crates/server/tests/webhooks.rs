//! Webhook deliveries seen from the receiving end (issue 20, ADR 0034): receivers in the test
//! (wiremock on `127.0.0.1`) get what the delivery worker sends, and signatures are checked with
//! the `standardwebhooks` crate, a verifier nobody here wrote. SQLite always; PostgreSQL too when
//! `TEST_DATABASE_URL` is set (then it fails, never skips, when that server is unreachable).
//!
//! Through the real application and its worker (polling every [`POLL_INTERVAL_MS`] ms):
//!
//! - `every_event_of_a_run_is_delivered_once_signed_as_standard_webhooks`: a scripted shop; the
//!   receiver gets each of its events once by `webhook-id`, as its CloudEvents envelope, each
//!   verified with the secret from the creation answer (and refused with another).
//! - `after_a_rotation_a_delivery_verifies_with_the_new_secret_and_with_the_old_one`.
//! - `a_failing_receiver_is_tried_again_5_s_then_5_min_later_and_a_retry_delivers`.
//! - `a_receiver_answering_410_disables_its_endpoint_and_gets_nothing_more`.
//! - `private_addresses_are_refused_at_registration_and_when_sending`.
//! - `a_redirect_is_a_failed_attempt_and_is_not_followed`.
//!
//! The use case `DeliverWebhooks` on a manual clock (the schedule's later steps are minutes to
//! hours apart), with the real store on a migrated database and the real HTTP sender:
//!
//! - `the_schedule_makes_eight_attempts_over_27_hours_then_fails_the_delivery`.
//! - `a_retry_after_of_an_hour_is_waited_for`.
//! - `the_sender_refuses_loopback_hosts_that_a_stored_endpoint_names`.

// Test modules share helpers with `pub`; the binary has no public API for the lint to protect.
#![allow(unreachable_pub)]

// The HTTP tests' helpers (spawn_app_with, TestApp); their `api_tests!` is not used here.
#[allow(unused_macros, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use orderly_application::{
    pagination::{PageLimit, PageRequest},
    ports::{Clock, ProductRepository as _},
    webhooks::{
        SecretGenerator as _, WebhookSender as _, WebhookStore as _,
        deliver::{Attempted, DeliverWebhooks, DeliveryReport},
        ports::{SendOutcome, WebhookMessage},
    },
};
use orderly_domain::{
    Currency, DeliveryStatus, EventFilter, EventType, Money, Product, ProductDraft, ProductName,
    Sku, Uuid, WebhookDelivery, WebhookEndpoint, WebhookEndpointDraft, WebhookEndpointId,
    WebhookUrl,
    time::{DateTime, TimeDelta, Timestamp, Utc},
};
use orderly_infrastructure::{
    SeaOrmProductRepository, SeaOrmWebhooks,
    services::{EVENT_SOURCE, HttpWebhookSender, RandomSecrets, WebhookSettings},
    testing::TestDatabase,
};
use orderly_server::settings::Settings;
use reqwest::{Method, Response, StatusCode};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, QueryResult, Statement, TryGetable};
use serde_json::{Value, json};
use standardwebhooks::{Webhook, WebhookError};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    http::HeaderValue,
    matchers::{method, path},
};

use helpers::{TestApp, TestUser, assert_problem, json_body, spawn_app_with};

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

/// Runs each `async fn name(db: TestDatabase)` as `sqlite::name` and, when `TEST_DATABASE_URL`
/// is set, `postgres::name` (which fails, never skips, when that server is unreachable).
macro_rules! webhook_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(orderly_infrastructure::testing::TestDatabase::sqlite().await)
                        .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = orderly_infrastructure::testing::TestDatabase::postgres().await
                    else {
                        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL not tested");
                        return;
                    };
                    super::$name(db).await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// How often the application's worker looks for work (`OUTBOX_POLL_INTERVAL`), in ms.
const POLL_INTERVAL_MS: u64 = 20;
/// How long the worker gets to do what a test waits for.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a test waits to see that nothing more arrives: fifteen poll intervals.
const SETTLE: Duration = Duration::from_millis(15 * POLL_INTERVAL_MS);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Ok`, every [`POLL`], for at most `within`; panics with
/// `what` and the probe's last answer past that.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receivers
// ---------------------------------------------------------------------------------------------

/// One request a receiver got, and when.
#[derive(Debug, Clone)]
struct Received {
    request: Request,
    at: Instant,
}

impl Received {
    fn path(&self) -> &str {
        self.request.url.path()
    }

    fn header(&self, name: &str) -> &str {
        self.request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header: {self:?}"))
    }

    /// `webhook-id`.
    fn id(&self) -> &str {
        self.header("webhook-id")
    }

    /// `webhook-timestamp`, in Unix seconds.
    fn timestamp(&self) -> i64 {
        let raw = self.header("webhook-timestamp");
        raw.parse().unwrap_or_else(|_| panic!("webhook-timestamp is not an integer: {raw}"))
    }

    /// The entries of `webhook-signature` (`v1,<base64>` each).
    fn signatures(&self) -> Vec<&str> {
        self.header("webhook-signature").split(' ').collect()
    }

    fn body(&self) -> Value {
        serde_json::from_slice(&self.request.body).unwrap_or_else(|error| {
            panic!("a body is not JSON ({error}): {}", String::from_utf8_lossy(&self.request.body))
        })
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Answers the requests to one path from a script: the n-th gets the n-th answer, and every
/// one past the script the last answer. Each request is logged with the time it came.
struct Scripted {
    path: String,
    answers: Vec<ResponseTemplate>,
    log: Log,
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = log.iter().filter(|received| received.path() == self.path).count();
        log.push(Received { request: request.clone(), at: Instant::now() });
        let last = self.answers.len() - 1;
        self.answers[seen.min(last)].clone()
    }
}

/// A receiver on `127.0.0.1`: paths that answer POSTs from scripts.
struct Receiver {
    server: MockServer,
    log: Log,
}

impl Receiver {
    async fn start() -> Self {
        Self { server: MockServer::start().await, log: Log::default() }
    }

    /// POSTs to `at` get `answers` in turn, then the last one.
    async fn answer(&self, at: &str, answers: Vec<ResponseTemplate>) {
        assert!(!answers.is_empty(), "a script has an answer");
        let script = Scripted { path: at.to_owned(), answers, log: self.log.clone() };
        Mock::given(method("POST")).and(path(at)).respond_with(script).mount(&self.server).await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.uri())
    }

    fn port(&self) -> u16 {
        self.server.address().port()
    }

    /// What `path` got so far, in the order it came.
    fn got(&self, path: &str) -> Vec<Received> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter().filter(|received| received.path() == path).cloned().collect()
    }

    /// Waits until `path` has got `count` requests; returns what it got.
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        eventually(&format!("{count} requests to {path}"), DEADLINE, || async {
            let got = self.got(path);
            if got.len() >= count { Ok(got) } else { Err(format!("{} requests", got.len())) }
        })
        .await
    }

    /// How many requests the server got, on any path and of any method.
    async fn requests(&self) -> usize {
        self.server.received_requests().await.expect("the server records requests").len()
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/// A well-formed secret that no endpoint here has (the Standard Webhooks specification's
/// example).
const WRONG_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook(secret: &str) -> Webhook {
    Webhook::new(secret).unwrap_or_else(|error| panic!("not a Standard Webhooks secret: {error}"))
}

/// Verifies `received` with `secret` as a receiver does, `webhook-timestamp` checked against
/// the real time (within 5 minutes) included.
fn verify(received: &Received, secret: &str) -> Result<(), WebhookError> {
    webhook(secret).verify(&received.request.body, &received.request.headers)
}

/// Like [`verify`], with only the `index`-th signature of `webhook-signature` kept.
fn verify_one(received: &Received, index: usize, secret: &str) -> Result<(), WebhookError> {
    let signature = received.signatures()[index].to_owned();
    let mut headers = received.request.headers.clone();
    headers.insert("webhook-signature", HeaderValue::from_str(&signature).expect("a header"));
    webhook(secret).verify(&received.request.body, &headers)
}

/// Whether one of the signatures of `received` is the one `standardwebhooks` computes with
/// `secret` over its id, timestamp and body: [`verify`] without the check of the timestamp
/// against the real time, for the use-case tests whose clock is not the real one.
fn signed_with(received: &Received, secret: &str) -> bool {
    let expected = webhook(secret)
        .sign(received.id(), received.timestamp(), &received.request.body)
        .expect("a UTF-8 body");
    received.signatures().contains(&expected.as_str())
}

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(now.as_secs()).expect("seconds fit")
}

// ---------------------------------------------------------------------------------------------
// The outbox table
// ---------------------------------------------------------------------------------------------

/// One row of `outbox_events`.
#[derive(Debug, Clone)]
struct Row {
    id: Uuid,
    event_type: String,
    aggregate_id: Uuid,
    aggregate_version: i64,
    data: String,
}

fn column<T: TryGetable>(row: &QueryResult, name: &str) -> T {
    row.try_get("", name).unwrap_or_else(|error| panic!("reading outbox_events.{name}: {error}"))
}

/// `outbox_events`, read through a connection of its own (what is committed).
struct OutboxTable {
    raw: DatabaseConnection,
}

impl OutboxTable {
    async fn open(url: &str) -> Self {
        let raw = sea_orm::Database::connect(url).await.expect("a connection to read the outbox");
        Self { raw }
    }

    /// Every row, in the order written.
    async fn rows(&self) -> Vec<Row> {
        let sql = "SELECT id, event_type, aggregate_id, aggregate_version, data \
                   FROM outbox_events ORDER BY position";
        let rows = self
            .raw
            .query_all_raw(Statement::from_string(self.raw.get_database_backend(), sql))
            .await
            .expect("reading outbox_events");
        rows.iter()
            .map(|row| Row {
                id: column(row, "id"),
                event_type: column(row, "event_type"),
                aggregate_id: column(row, "aggregate_id"),
                aggregate_version: column(row, "aggregate_version"),
                data: column(row, "data"),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------

const V1: &str = "/api/v1";
const PRODUCT_CREATED: &str = "orderly.product.created.v1";

/// The worker polls every [`POLL_INTERVAL_MS`]; the guard keeps its default (private networks
/// refused).
fn fast_worker(settings: &mut Settings) {
    settings.outbox.poll_interval = POLL_INTERVAL_MS;
    settings.webhook.timeout = 5;
}

/// [`fast_worker`], and receivers on `127.0.0.1` may be called.
fn private_networks_allowed(settings: &mut Settings) {
    fast_worker(settings);
    settings.webhook.allow_private_networks = true;
}

fn id_of(resource: &Value) -> &str {
    resource["id"].as_str().unwrap_or_else(|| panic!("no id in {resource}"))
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    let raw = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    DateTime::parse_from_rfc3339(raw).expect("RFC 3339").to_utc()
}

async fn create_endpoint(app: &TestApp, admin: &TestUser, body: &Value) -> Response {
    let path = format!("{V1}/webhook-endpoints");
    let request = app.request(Method::POST, &path, Some(&admin.access_token));
    request.json(body).send().await.expect("sent")
}

/// Registers `url` for `event_types` (all when `None`) as `admin`; returns the endpoint with
/// its secret.
async fn register(
    app: &TestApp,
    admin: &TestUser,
    url: &str,
    event_types: Option<&[&str]>,
) -> Value {
    let mut body = json!({"url": url});
    if let Some(types) = event_types {
        body["event_types"] = json!(types);
    }
    let endpoint = json_body(create_endpoint(app, admin, &body).await, StatusCode::CREATED).await;
    assert_eq!(endpoint["enabled"], true, "{endpoint}");
    assert!(endpoint["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{endpoint}");
    endpoint
}

/// The endpoint `id` as an admin reads it now.
async fn read_endpoint(app: &TestApp, admin: &TestUser, id: &str) -> Value {
    let path = format!("{V1}/webhook-endpoints/{id}");
    let response = app.request(Method::GET, &path, Some(&admin.access_token)).send().await;
    json_body(response.expect("sent"), StatusCode::OK).await
}

/// The deliveries of endpoint `id`, newest first (one page of 100).
async fn deliveries(app: &TestApp, admin: &TestUser, id: &str) -> Vec<Value> {
    let path = format!("{V1}/webhook-endpoints/{id}/deliveries?limit=100");
    let response = app.request(Method::GET, &path, Some(&admin.access_token)).send().await;
    let page = json_body(response.expect("sent"), StatusCode::OK).await;
    assert_eq!(page["next_cursor"], Value::Null, "one page holds them: {page}");
    page["data"].as_array().expect("a data array").clone()
}

/// Waits until endpoint `id` has exactly one delivery and `done` holds for it; returns it.
async fn the_delivery(
    app: &TestApp,
    admin: &TestUser,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, DEADLINE, || async {
        let listed = deliveries(app, admin, id).await;
        match listed.as_slice() {
            [delivery] if done(delivery) => Ok(delivery.clone()),
            _ => Err(format!("{listed:#?}")),
        }
    })
    .await
}

/// Rotates the secret of endpoint `id`; returns the endpoint with its new secret.
async fn rotate(app: &TestApp, admin: &TestUser, id: &str) -> Value {
    let path = format!("{V1}/webhook-endpoints/{id}/secret/rotate");
    let response = app.request(Method::POST, &path, Some(&admin.access_token)).send().await;
    json_body(response.expect("sent"), StatusCode::OK).await
}

/// Asks for delivery `delivery` of endpoint `id` again.
async fn retry(app: &TestApp, admin: &TestUser, id: &str, delivery: &str) -> Value {
    let path = format!("{V1}/webhook-endpoints/{id}/deliveries/{delivery}/retry");
    let response = app.request(Method::POST, &path, Some(&admin.access_token)).send().await;
    json_body(response.expect("sent"), StatusCode::ACCEPTED).await
}

/// Applies `action` to `order` as `actor`; asserts the transition is made.
async fn act(app: &TestApp, actor: &TestUser, order: &str, action: &str) {
    let response =
        app.transition(&actor.access_token, order, &json!({"action": action}), None).await;
    json_body(response, StatusCode::CREATED).await;
}

/// A customer registers; the admin stocks two products; one order is paid, shipped and
/// delivered, another cancelled; a product is repriced.
async fn scripted_run(app: &TestApp, admin: &TestUser) {
    let customer = app.customer("Ada").await;
    let keyboard = app.product(admin, "KB-001", 4999, 10).await;
    let mouse = app.product(admin, "MS-001", 1999, 5).await;
    let order = app.order(&customer, id_of(&keyboard), 2).await;
    act(app, &customer, id_of(&order), "pay").await;
    act(app, admin, id_of(&order), "ship").await;
    act(app, admin, id_of(&order), "deliver").await;
    let other = app.order(&customer, id_of(&mouse), 1).await;
    act(app, &customer, id_of(&other), "cancel").await;
    let body = json!({"price": {"amount": 2499, "currency": "EUR"}});
    let response = app.patch_product(&admin.access_token, id_of(&mouse), &body, None).await;
    json_body(response, StatusCode::OK).await;
}

// ---------------------------------------------------------------------------------------------
// 1. A scripted run, each event delivered once, signed
// ---------------------------------------------------------------------------------------------

async fn every_event_of_a_run_is_delivered_once_signed_as_standard_webhooks(db: TestDatabase) {
    let receiver = Receiver::start().await;
    receiver.answer("/orderly", vec![ResponseTemplate::new(204)]).await;
    let outbox = OutboxTable::open(db.url()).await;
    let app = spawn_app_with(db, private_networks_allowed).await;
    let admin = app.admin().await;
    let endpoint = register(&app, &admin, &receiver.url("/orderly"), None).await;
    assert_eq!(endpoint["event_types"], json!([]), "no types listed: every type");
    let secret = endpoint["secret"].as_str().expect("a secret").to_owned();
    let endpoint_id = id_of(&endpoint).to_owned();
    // What happened before the endpoint existed is not sent to it.
    let before: HashSet<Uuid> = outbox.rows().await.iter().map(|row| row.id).collect();
    let started = unix_now();

    scripted_run(&app, &admin).await;

    let rows: Vec<Row> =
        outbox.rows().await.into_iter().filter(|row| !before.contains(&row.id)).collect();
    let types: HashSet<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
    for expected in [
        "orderly.user.registered.v1",
        "orderly.product.created.v1",
        "orderly.product.updated.v1",
        "orderly.product.stock_changed.v1",
        "orderly.order.placed.v1",
        "orderly.order.paid.v1",
        "orderly.order.shipped.v1",
        "orderly.order.delivered.v1",
        "orderly.order.cancelled.v1",
    ] {
        assert!(types.contains(expected), "the script writes {expected}: {types:?}");
    }
    let by_id: HashMap<String, &Row> = rows.iter().map(|row| (row.id.to_string(), row)).collect();

    eventually("every event of the run reaches the receiver", DEADLINE, || async {
        let got: HashSet<String> =
            receiver.got("/orderly").iter().map(|r| r.id().to_owned()).collect();
        let missing = by_id.keys().filter(|id| !got.contains(*id)).count();
        if missing == 0 { Ok(()) } else { Err(format!("{missing} of {} missing", rows.len())) }
    })
    .await;
    let listed = eventually("every delivery succeeded", DEADLINE, || async {
        let listed = deliveries(&app, &admin, &endpoint_id).await;
        let done = listed.iter().filter(|d| d["status"] == "succeeded").count();
        if done == rows.len() { Ok(listed) } else { Err(format!("{done} succeeded: {listed:#?}")) }
    })
    .await;
    // More polls pass: nothing is sent twice.
    tokio::time::sleep(SETTLE).await;
    let finished = unix_now();

    let received = receiver.got("/orderly");
    let mut seen = HashSet::new();
    for request in &received {
        assert!(seen.insert(request.id()), "{} was delivered twice", request.id());
    }
    let unknown: Vec<&&str> = seen.iter().filter(|id| !by_id.contains_key(**id)).collect();
    assert!(unknown.is_empty(), "delivered events that are not the run's: {unknown:?}");
    assert_eq!(received.len(), rows.len(), "each event of the run once");
    assert_eq!(receiver.requests().await, rows.len(), "nothing else reached the receiver");

    assert_eq!(listed.len(), rows.len(), "one delivery per event: {listed:#?}");
    for delivery in &listed {
        let row = by_id[delivery["event_id"].as_str().expect("an event id")];
        assert_eq!(delivery["endpoint_id"], json!(endpoint_id), "{delivery}");
        assert_eq!(delivery["event_type"], json!(row.event_type), "{delivery}");
        assert_eq!(delivery["attempts"], 1, "delivered at the first attempt: {delivery}");
        assert_eq!(delivery["response_status"], 204, "{delivery}");
        assert_eq!(delivery["next_attempt_at"], Value::Null, "{delivery}");
        assert_eq!(delivery["last_error"], Value::Null, "{delivery}");
    }

    for request in &received {
        let row = by_id[request.id()];
        let context = || format!("{row:#?}\n{}", String::from_utf8_lossy(&request.request.body));
        assert_eq!(request.request.method.as_str(), "POST");
        assert_eq!(request.header("content-type"), "application/json", "{}", context());
        let signed_at = request.timestamp();
        assert!(
            (started - 1..=finished + 1).contains(&signed_at),
            "webhook-timestamp {signed_at} is when it was sent ({started}..={finished})"
        );
        assert_eq!(request.signatures().len(), 1, "one secret, one signature: {}", context());
        verify(request, &secret).unwrap_or_else(|error| {
            panic!("standardwebhooks refuses the delivery ({error}): {}", context())
        });
        assert!(
            matches!(verify(request, WRONG_SECRET), Err(WebhookError::InvalidSignature)),
            "another secret does not verify it: {}",
            context()
        );
        let mut tampered = request.clone();
        tampered.request.body.push(b' ');
        assert!(
            matches!(verify(&tampered, &secret), Err(WebhookError::InvalidSignature)),
            "the signature covers the body: {}",
            context()
        );

        let body = request.body();
        let subject = row.aggregate_id.to_string();
        assert_eq!(body["specversion"], "1.0", "{}", context());
        assert_eq!(body["id"], json!(request.id()), "webhook-id is the event's id: {}", context());
        assert_eq!(body["id"], json!(row.id.to_string()), "{}", context());
        assert_eq!(body["source"], EVENT_SOURCE, "{}", context());
        assert_eq!(body["type"], json!(row.event_type), "{}", context());
        assert_eq!(body["subject"], json!(subject), "{}", context());
        assert_eq!(body["datacontenttype"], "application/json", "{}", context());
        assert!(body["time"].as_str().is_some_and(|t| t.parse::<Timestamp>().is_ok()), "{body}");
        let stored: Value = serde_json::from_str(&row.data).expect("stored data is JSON");
        assert_eq!(body["data"], stored, "data is the stored representation: {}", context());
        assert_eq!(body["data"]["id"], json!(subject), "{}", context());
        if row.event_type != "orderly.user.deleted.v1" {
            assert_eq!(body["data"]["version"], json!(row.aggregate_version), "{}", context());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A rotated secret
// ---------------------------------------------------------------------------------------------

async fn after_a_rotation_a_delivery_verifies_with_the_new_secret_and_with_the_old_one(
    db: TestDatabase,
) {
    let receiver = Receiver::start().await;
    receiver.answer("/rotated", vec![ResponseTemplate::new(204)]).await;
    let app = spawn_app_with(db, private_networks_allowed).await;
    let admin = app.admin().await;
    let url = receiver.url("/rotated");
    let endpoint = register(&app, &admin, &url, Some(&[PRODUCT_CREATED])).await;
    let id = id_of(&endpoint);
    let old = endpoint["secret"].as_str().expect("a secret").to_owned();

    app.product(&admin, "ROT-1", 1000, 1).await;
    let first = receiver.wait_for("/rotated", 1).await.remove(0);
    assert_eq!(first.signatures().len(), 1, "before a rotation, one signature");
    verify(&first, &old).expect("the secret from the creation verifies it");

    let rotated = rotate(&app, &admin, id).await;
    let new = rotated["secret"].as_str().expect("a new secret").to_owned();
    assert_ne!(new, old, "a rotation makes a new secret");
    let grace = timestamp(&rotated["previous_secret_expires_at"]) - Utc::now();
    assert!(
        (TimeDelta::hours(24) - TimeDelta::minutes(1)..=TimeDelta::hours(24)).contains(&grace),
        "the old secret signs for 24 hours more: {rotated}"
    );

    app.product(&admin, "ROT-2", 1000, 1).await;
    let got = receiver.wait_for("/rotated", 2).await;
    assert_eq!(got.len(), 2, "one delivery per product");
    let second = &got[1];
    assert_eq!(second.body()["type"], PRODUCT_CREATED);
    assert_eq!(second.signatures().len(), 2, "one signature per secret: {second:?}");
    verify(second, &new).expect("the new secret alone verifies it");
    verify(second, &old).expect("the old secret alone verifies it");
    assert!(matches!(verify(second, WRONG_SECRET), Err(WebhookError::InvalidSignature)));
    // Each signature is one secret's, and each secret signed once (in either order).
    let signers: Vec<Vec<&str>> = (0..2)
        .map(|index| {
            [new.as_str(), old.as_str()]
                .into_iter()
                .filter(|secret| verify_one(second, index, secret).is_ok())
                .collect()
        })
        .collect();
    assert!(
        signers == [[new.as_str()], [old.as_str()]] || signers == [[old.as_str()], [new.as_str()]],
        "each signature verifies with exactly one of the secrets, each secret once: {signers:?}"
    );

    let read = read_endpoint(&app, &admin, id).await;
    assert!(read.get("secret").is_none(), "the secret is not shown again: {read}");
    assert_eq!(read["previous_secret_expires_at"], rotated["previous_secret_expires_at"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Retries
// ---------------------------------------------------------------------------------------------

/// How far apart two instants of a delivery are, in seconds.
fn seconds_between(delivery: &Value, from: &str, to: &str) -> f64 {
    let delta = timestamp(&delivery[to]) - timestamp(&delivery[from]);
    delta.num_milliseconds() as f64 / 1000.0
}

async fn a_failing_receiver_is_tried_again_5_s_then_5_min_later_and_a_retry_delivers(
    db: TestDatabase,
) {
    let receiver = Receiver::start().await;
    let failing = ResponseTemplate::new(500).set_body_string("down");
    receiver.answer("/flaky", vec![failing.clone(), failing, ResponseTemplate::new(204)]).await;
    let app = spawn_app_with(db, private_networks_allowed).await;
    let admin = app.admin().await;
    let url = receiver.url("/flaky");
    let endpoint = register(&app, &admin, &url, Some(&[PRODUCT_CREATED])).await;
    let id = id_of(&endpoint);
    let secret = endpoint["secret"].as_str().expect("a secret");

    app.product(&admin, "FLAKY-1", 1000, 1).await;
    let first =
        the_delivery(&app, &admin, id, "a first failed attempt", |d| d["attempts"] == 1).await;
    assert_eq!(first["status"], "pending", "{first}");
    assert_eq!(first["response_status"], 500, "{first}");
    assert_eq!(first["last_error"], Value::Null, "an answer is no error: {first}");
    let wait = seconds_between(&first, "last_attempt_at", "next_attempt_at");
    assert!((4.999..=5.001).contains(&wait), "the second attempt is due 5 s later: {first}");
    let failing = read_endpoint(&app, &admin, id).await;
    let since = timestamp(&failing["failing_since"]) - timestamp(&first["last_attempt_at"]);
    assert!(since.abs() < TimeDelta::seconds(1), "failing since the first attempt: {failing}");
    assert_eq!(failing["enabled"], true, "{failing}");

    let second =
        the_delivery(&app, &admin, id, "a second attempt 5 s later", |d| d["attempts"] == 2).await;
    assert_eq!((&second["status"], &second["response_status"]), (&json!("pending"), &json!(500)));
    let waited = seconds_between(&second, "last_attempt_at", "next_attempt_at");
    assert!((299.999..=300.001).contains(&waited), "the third is due 5 min later: {second}");
    let got = receiver.got("/flaky");
    assert_eq!(got.len(), 2, "not tried again before it was due");
    let gap = got[1].at - got[0].at;
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(8)).contains(&gap),
        "the receiver saw the second attempt 5 s after the first, not {gap:?}"
    );
    assert!(got[1].timestamp() - got[0].timestamp() >= 5, "each attempt is signed when made");

    // An admin does not wait 5 minutes: a retry makes the third attempt now.
    let delivery_id = id_of(&second).to_owned();
    let retried = retry(&app, &admin, id, &delivery_id).await;
    assert_eq!(retried["status"], "pending", "{retried}");
    let done = the_delivery(&app, &admin, id, "the retry delivered", |d| d["attempts"] == 3).await;
    assert_eq!((&done["status"], &done["response_status"]), (&json!("succeeded"), &json!(204)));
    assert_eq!(done["next_attempt_at"], Value::Null, "{done}");
    assert_eq!(read_endpoint(&app, &admin, id).await["failing_since"], Value::Null);

    tokio::time::sleep(SETTLE).await;
    let got = receiver.got("/flaky");
    assert_eq!(got.len(), 3, "500, 500, then 204: three attempts");
    for attempt in &got {
        assert_eq!(attempt.id(), got[0].id(), "every attempt carries the event's id");
        assert_eq!(attempt.request.body, got[0].request.body, "every attempt sends the same body");
        verify(attempt, secret).expect("every attempt is signed");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. 410 Gone
// ---------------------------------------------------------------------------------------------

async fn a_receiver_answering_410_disables_its_endpoint_and_gets_nothing_more(db: TestDatabase) {
    let receiver = Receiver::start().await;
    receiver.answer("/gone", vec![ResponseTemplate::new(410)]).await;
    receiver.answer("/control", vec![ResponseTemplate::new(204)]).await;
    let app = spawn_app_with(db, private_networks_allowed).await;
    let admin = app.admin().await;
    let gone = register(&app, &admin, &receiver.url("/gone"), Some(&[PRODUCT_CREATED])).await;
    let gone = id_of(&gone).to_owned();
    // A second endpoint for the same events shows when the worker has got past them.
    register(&app, &admin, &receiver.url("/control"), Some(&[PRODUCT_CREATED])).await;

    app.product(&admin, "GONE-1", 1000, 1).await;
    let delivery =
        the_delivery(&app, &admin, &gone, "the attempt answered 410", |d| d["attempts"] == 1).await;
    assert_eq!(delivery["status"], "failed", "410 is not retried: {delivery}");
    assert_eq!(delivery["response_status"], 410, "{delivery}");
    assert_eq!(delivery["next_attempt_at"], Value::Null, "{delivery}");
    let endpoint = eventually("the endpoint is disabled", DEADLINE, || async {
        let endpoint = read_endpoint(&app, &admin, &gone).await;
        if endpoint["enabled"] == false { Ok(endpoint) } else { Err(endpoint.to_string()) }
    })
    .await;
    assert_eq!(endpoint["disabled_reason"], "gone", "{endpoint}");
    assert_eq!(receiver.got("/gone").len(), 1);

    app.product(&admin, "GONE-2", 1000, 1).await;
    app.product(&admin, "GONE-3", 1000, 1).await;
    receiver.wait_for("/control", 3).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(receiver.got("/gone").len(), 1, "a disabled endpoint gets no more requests");
    assert_eq!(deliveries(&app, &admin, &gone).await.len(), 1, "nor deliveries");
    assert_eq!(receiver.got("/control").len(), 3);
    assert_eq!(read_endpoint(&app, &admin, &gone).await["disabled_reason"], "gone");
}

// ---------------------------------------------------------------------------------------------
// 5. Server-side request forgery
// ---------------------------------------------------------------------------------------------

/// An endpoint for `event_types` registered at `now` with a new secret, as the API makes it
/// but without asking the guard (for the test to store directly).
fn unchecked_endpoint(url: &str, event_types: EventFilter, now: Timestamp) -> WebhookEndpoint {
    let draft = WebhookEndpointDraft {
        url: WebhookUrl::parse(url).expect("a well-formed URL"),
        event_types,
        enabled: true,
    };
    let secrets = RandomSecrets::new().expect("randomness for a secret");
    WebhookEndpoint::register(draft, secrets.generate(), now)
}

async fn private_addresses_are_refused_at_registration_and_when_sending(db: TestDatabase) {
    let receiver = Receiver::start().await;
    receiver.answer("/internal", vec![ResponseTemplate::new(204)]).await;
    let app = spawn_app_with(db, fast_worker).await;
    assert!(!app.settings.webhook.allow_private_networks, "the default refuses private networks");
    let admin = app.admin().await;
    let port = receiver.port();

    let localhost = format!("http://localhost:{port}/internal");
    for url in [receiver.url("/internal"), localhost.clone()] {
        let response = create_endpoint(&app, &admin, &json!({"url": url})).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        let errors = problem["errors"].as_array().expect("field errors");
        assert!(
            errors.iter().any(|error| error["field"] == "url" && error["code"] == "not_public"),
            "{url}: {problem}"
        );
    }

    // The name resolved to a public address when it was registered, and to this machine now
    // (a DNS change): the stored endpoint is sent nothing.
    let store = SeaOrmWebhooks::new(app.database.clone());
    let endpoint = unchecked_endpoint(&localhost, EventFilter::all(), Utc::now());
    store.insert(&endpoint).await.expect("storing an endpoint");
    let id = endpoint.id().to_string();
    app.product(&admin, "SSRF-1", 1000, 1).await;
    let delivery = eventually("the worker attempts the delivery", DEADLINE, || async {
        let listed = deliveries(&app, &admin, &id).await;
        match listed.iter().find(|d| d["event_type"] == PRODUCT_CREATED) {
            Some(delivery) if delivery["attempts"] == 1 => Ok(delivery.clone()),
            _ => Err(format!("{listed:#?}")),
        }
    })
    .await;
    let error = delivery["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("refused:"), "the sender refused the address: {delivery}");
    assert_eq!(delivery["response_status"], Value::Null, "{delivery}");
    assert_eq!(delivery["status"], "pending", "a refusal is retried like any failure: {delivery}");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(receiver.requests().await, 0, "nothing reached the receiver");
}

// ---------------------------------------------------------------------------------------------
// 6. Redirects
// ---------------------------------------------------------------------------------------------

async fn a_redirect_is_a_failed_attempt_and_is_not_followed(db: TestDatabase) {
    let elsewhere = Receiver::start().await;
    elsewhere.answer("/elsewhere", vec![ResponseTemplate::new(204)]).await;
    let receiver = Receiver::start().await;
    for (from, status) in [("/moved", 302), ("/moved-keeping-post", 307)] {
        let answer = ResponseTemplate::new(status)
            .insert_header("location", elsewhere.url("/elsewhere").as_str());
        receiver.answer(from, vec![answer]).await;
    }
    let app = spawn_app_with(db, private_networks_allowed).await;
    let admin = app.admin().await;
    let moved = register(&app, &admin, &receiver.url("/moved"), Some(&[PRODUCT_CREATED])).await;
    let url = receiver.url("/moved-keeping-post");
    let keeping = register(&app, &admin, &url, Some(&[PRODUCT_CREATED])).await;

    app.product(&admin, "MOVED-1", 1000, 1).await;
    for (endpoint, status) in [(&moved, 302), (&keeping, 307)] {
        let delivery =
            the_delivery(&app, &admin, id_of(endpoint), "an attempt", |d| d["attempts"] == 1).await;
        assert_eq!(delivery["response_status"], status, "the redirect is the answer: {delivery}");
        assert_eq!(delivery["status"], "pending", "a failed attempt, retried: {delivery}");
        let wait = seconds_between(&delivery, "last_attempt_at", "next_attempt_at");
        assert!((4.999..=5.001).contains(&wait), "on the schedule: {delivery}");
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(elsewhere.requests().await, 0, "the redirect was not followed");
    assert_eq!(receiver.got("/moved").len(), 1);
    assert_eq!(receiver.got("/moved-keeping-post").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The use case on a manual clock
// ---------------------------------------------------------------------------------------------

/// A clock the test moves.
struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    fn set(&self, now: Timestamp) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `DeliverWebhooks` wired as the application wires it (the SeaORM store and queue, the HTTP
/// sender), on a migrated database of its own and a [`ManualClock`] that starts at `start` (a
/// whole second, as `webhook-timestamp` is).
struct Worker {
    deliver: DeliverWebhooks,
    webhooks: Arc<SeaOrmWebhooks>,
    products: SeaOrmProductRepository,
    clock: Arc<ManualClock>,
    start: Timestamp,
    _db: TestDatabase,
}

impl Worker {
    fn new(db: TestDatabase, allow_private_networks: bool) -> Self {
        let start = Timestamp::from_timestamp(Utc::now().timestamp(), 0).expect("now");
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let webhooks = Arc::new(SeaOrmWebhooks::new(db.database().clone()));
        let settings = WebhookSettings { allow_private_networks, timeout: Duration::from_secs(5) };
        let sender = Arc::new(HttpWebhookSender::new(&settings).expect("a sender"));
        let deliver =
            DeliverWebhooks::new(webhooks.clone(), webhooks.clone(), sender, clock.clone());
        let products = SeaOrmProductRepository::new(db.database().clone());
        Self { deliver, webhooks, products, clock, start, _db: db }
    }

    fn at(&self, offset: u64) -> Timestamp {
        self.start + TimeDelta::seconds(i64::try_from(offset).expect("an offset"))
    }

    /// Stores an endpoint for product creations registered at the start.
    async fn endpoint(&self, url: &str) -> WebhookEndpoint {
        let filter = EventFilter::of([EventType::ProductCreated]);
        let endpoint = unchecked_endpoint(url, filter, self.start);
        self.webhooks.insert(&endpoint).await.expect("storing an endpoint");
        endpoint
    }

    /// Creates a product at the start through the real repository: one
    /// `orderly.product.created.v1` event in the outbox.
    async fn product(&self, sku: &str) {
        let draft = ProductDraft {
            sku: Sku::parse(sku).expect("a SKU"),
            name: ProductName::parse(&format!("Product {sku}")).expect("a name"),
            description: None,
            price: Money::new(1000, Currency::parse("EUR").expect("EUR")).expect("a price"),
            stock: 1,
        };
        let product = Product::create(draft, self.start).expect("a product");
        self.products.insert(&product).await.expect("storing a product");
    }

    /// Runs the use case once, `offset` seconds after the start.
    async fn run_at(&self, offset: u64) -> DeliveryReport {
        self.clock.set(self.at(offset));
        self.deliver.execute().await.expect("a run of the worker")
    }

    /// The one delivery of `endpoint`.
    async fn delivery(&self, endpoint: WebhookEndpointId) -> WebhookDelivery {
        let page = PageRequest { limit: PageLimit::new(10).expect("a limit"), after: None };
        let mut listed = self.webhooks.deliveries(endpoint, None, page).await.expect("listed");
        assert_eq!(listed.items.len(), 1, "one delivery: {:#?}", listed.items);
        listed.items.remove(0)
    }

    async fn reread(&self, endpoint: WebhookEndpointId) -> WebhookEndpoint {
        self.webhooks.find(endpoint).await.expect("read").expect("the endpoint exists")
    }
}

async fn the_schedule_makes_eight_attempts_over_27_hours_then_fails_the_delivery(db: TestDatabase) {
    // The waits before each attempt (ADR 0034), written out rather than read from the domain's
    // constant: a changed schedule fails this test.
    const WAITS: [u64; 8] = [0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];
    let receiver = Receiver::start().await;
    receiver.answer("/down", vec![ResponseTemplate::new(500)]).await;
    let worker = Worker::new(db, true);
    let endpoint = worker.endpoint(&receiver.url("/down")).await;
    worker.product("SCHED-1").await;

    let mut due = 0;
    for (n, wait) in WAITS.iter().enumerate() {
        if *wait > 0 {
            let report = worker.run_at(due + wait - 1).await;
            assert_eq!(report.attempts, [], "attempt {} is not made a second early", n + 1);
            assert_eq!(receiver.got("/down").len(), n);
        }
        due += wait;
        let report = worker.run_at(due).await;
        let last = n + 1 == WAITS.len();
        let expected = if last { Attempted::Failed } else { Attempted::Retrying };
        assert_eq!(report.attempts, [expected], "attempt {} at +{due} s", n + 1);
        let got = receiver.got("/down");
        assert_eq!(got.len(), n + 1, "attempt {} at +{due} s reached the receiver", n + 1);
        let attempt = &got[n];
        assert_eq!(attempt.timestamp(), worker.at(due).timestamp(), "signed when made");
        assert!(signed_with(attempt, endpoint.secret().expose()), "attempt {} is signed", n + 1);
        assert_eq!((attempt.id(), &attempt.request.body), (got[0].id(), &got[0].request.body));

        let delivery = worker.delivery(endpoint.id()).await;
        let parts = delivery.parts();
        assert_eq!(parts.attempts as usize, n + 1);
        assert_eq!(parts.response_status, Some(500));
        assert_eq!(parts.last_attempt_at, Some(worker.at(due)));
        if last {
            assert_eq!(parts.status, DeliveryStatus::Failed, "eight attempts, then it has failed");
            assert_eq!(parts.next_attempt_at, None);
        } else {
            assert_eq!(parts.status, DeliveryStatus::Pending);
            assert_eq!(parts.next_attempt_at, Some(worker.at(due + WAITS[n + 1])));
        }
    }
    assert_eq!(due, 99_305, "27 h 35 min from the first attempt to the last");
    let report = worker.run_at(due + 48 * 3600).await;
    assert_eq!(report.attempts, [], "no ninth attempt");
    let offsets: Vec<i64> = receiver
        .got("/down")
        .iter()
        .map(|attempt| attempt.timestamp() - worker.start.timestamp())
        .collect();
    assert_eq!(offsets, [0, 5, 305, 2105, 9305, 27305, 63305, 99305]);
    assert_eq!(receiver.requests().await, 8);
    let endpoint = worker.reread(endpoint.id()).await;
    assert_eq!(endpoint.failing_since(), Some(worker.start), "failing since the first attempt");
    assert!(endpoint.is_enabled(), "not disabled before five days of failures");
}

async fn a_retry_after_of_an_hour_is_waited_for(db: TestDatabase) {
    let receiver = Receiver::start().await;
    let busy = ResponseTemplate::new(429).insert_header("retry-after", "3600");
    receiver.answer("/busy", vec![busy, ResponseTemplate::new(204)]).await;
    let worker = Worker::new(db, true);
    let endpoint = worker.endpoint(&receiver.url("/busy")).await;
    worker.product("BUSY-1").await;

    assert_eq!(worker.run_at(0).await.attempts, [Attempted::Retrying]);
    let delivery = worker.delivery(endpoint.id()).await;
    assert_eq!(delivery.parts().response_status, Some(429));
    assert_eq!(delivery.next_attempt_at(), Some(worker.at(3600)), "Retry-After: 3600");
    for early in [5, 5 * 60, 30 * 60, 3599] {
        assert_eq!(worker.run_at(early).await.attempts, [], "not tried at +{early} s");
    }
    assert_eq!(receiver.got("/busy").len(), 1);

    assert_eq!(worker.run_at(3600).await.attempts, [Attempted::Succeeded]);
    let got = receiver.got("/busy");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].timestamp(), worker.at(3600).timestamp());
    assert!(signed_with(&got[1], endpoint.secret().expose()));
    let delivery = worker.delivery(endpoint.id()).await;
    assert_eq!((delivery.status(), delivery.attempts()), (DeliveryStatus::Succeeded, 2));
    assert_eq!(worker.reread(endpoint.id()).await.failing_since(), None, "a success forgives");
}

async fn the_sender_refuses_loopback_hosts_that_a_stored_endpoint_names(db: TestDatabase) {
    let receiver = Receiver::start().await;
    receiver.answer("/internal", vec![ResponseTemplate::new(204)]).await;
    let worker = Worker::new(db, false);
    let port = receiver.port();
    let urls = [
        receiver.url("/internal"),
        format!("http://localhost:{port}/internal"),
        format!("http://[::1]:{port}/internal"),
    ];
    let mut endpoints = Vec::new();
    for url in &urls {
        endpoints.push(worker.endpoint(url).await);
    }
    worker.product("SSRF-2").await;

    let report = worker.run_at(0).await;
    assert_eq!(report.attempts, [Attempted::Retrying; 3], "one failed attempt per endpoint");
    for endpoint in &endpoints {
        let delivery = worker.delivery(endpoint.id()).await;
        let parts = delivery.parts();
        let url = endpoint.url();
        let error = parts.last_error.as_deref().unwrap_or_default();
        assert!(error.starts_with("refused:"), "{url}: the sender refused it: {parts:?}");
        assert_eq!(parts.response_status, None, "{url}");
        assert_eq!((parts.status, parts.attempts), (DeliveryStatus::Pending, 1), "{url}");
        assert_eq!(parts.next_attempt_at, Some(worker.at(5)), "{url}");
    }
    assert_eq!(receiver.requests().await, 0, "nothing reached the receiver");

    // The receiver does answer a sender that allows private networks: what kept the requests
    // away was the guard.
    let settings =
        WebhookSettings { allow_private_networks: true, timeout: Duration::from_secs(5) };
    let allowing = HttpWebhookSender::new(&settings).expect("a sender");
    let message = WebhookMessage {
        url: endpoints[0].url().clone(),
        id: Uuid::now_v7(),
        timestamp: Utc::now(),
        body: "{}".to_owned(),
        secrets: vec![endpoints[0].secret().clone()],
    };
    let outcome = allowing.send(&message).await;
    assert_eq!(outcome, SendOutcome::Answered { status: 204, retry_after: None });
    assert_eq!(receiver.requests().await, 1);
}

async fn while_no_endpoint_is_enabled_events_are_marked_and_a_later_endpoint_gets_only_later_ones(
    db: TestDatabase,
) {
    let receiver = Receiver::start().await;
    receiver.answer("/later", vec![ResponseTemplate::new(204)]).await;
    let worker = Worker::new(db, true);
    for n in 0..3 {
        worker.product(&format!("IDLE-{n}")).await;
    }
    let report = worker.run_at(0).await;
    assert_eq!(report.scheduled, 3, "the three events are marked at once");
    assert_eq!(report.attempts, [], "nobody to send them to");
    assert_eq!(worker.run_at(1).await.scheduled, 0, "nothing waits any more");

    // Registered at the start, as the three events happened: it would want them, had they
    // still been waiting.
    let endpoint = worker.endpoint(&receiver.url("/later")).await;
    worker.product("IDLE-3").await;
    let report = worker.run_at(2).await;
    assert_eq!(report.scheduled, 1, "the fourth event");
    assert_eq!(report.attempts, [Attempted::Succeeded]);
    assert_eq!(receiver.got("/later").len(), 1, "the earlier three were never sent");
    assert_eq!(worker.delivery(endpoint.id()).await.parts().status, DeliveryStatus::Succeeded);
}

webhook_tests!(
    while_no_endpoint_is_enabled_events_are_marked_and_a_later_endpoint_gets_only_later_ones,
    every_event_of_a_run_is_delivered_once_signed_as_standard_webhooks,
    after_a_rotation_a_delivery_verifies_with_the_new_secret_and_with_the_old_one,
    a_failing_receiver_is_tried_again_5_s_then_5_min_later_and_a_retry_delivers,
    a_receiver_answering_410_disables_its_endpoint_and_gets_nothing_more,
    private_addresses_are_refused_at_registration_and_when_sending,
    a_redirect_is_a_failed_attempt_and_is_not_followed,
    the_schedule_makes_eight_attempts_over_27_hours_then_fails_the_delivery,
    a_retry_after_of_an_hour_is_waited_for,
    the_sender_refuses_loopback_hosts_that_a_stored_endpoint_names,
);
