//! The outbox relay against a real NATS JetStream (issue 20, ADRs 0032 and 0033): the real
//! application (HTTP, its relay task) on SQLite and, when `TEST_DATABASE_URL` is set, on
//! PostgreSQL, publishing to the NATS at `TEST_NATS_URL` (default `nats://127.0.0.1:4222`). A
//! NATS that does not answer FAILS these tests: they never skip.
//!
//! Each test has a stream and a subject prefix of its own (`ORDERLY_TEST_<uuid>`,
//! `orderly_test_<uuid>`), consumes it with an ordered consumer on `<prefix>.>` and deletes the
//! stream at the end, so tests running together never see each other's events.
//!
//! - `every_event_is_delivered_once_in_order_as_cloudevents`: a scripted shop (register, a
//!   catalogue, an order paid, shipped and delivered, another cancelled, a product updated):
//!   every event of `outbox_events` is in the stream exactly once by id, one subject's events in
//!   the order of their position and version, each a CloudEvents 1.0 JSON envelope with its
//!   `ce-*` headers and `Nats-Msg-Id`, on `<prefix>.<aggregate>.<id>`; every row is marked.
//! - `a_relay_that_dies_after_publishing_publishes_again_and_the_stream_keeps_one_copy`: the
//!   claim's `finish` fails once (the process died between the acknowledgement and the mark);
//!   the events are published again and JetStream drops the copies by `Nats-Msg-Id`.
//! - `events_written_while_nats_is_cut_wait_and_are_all_delivered_once_it_is_back`: an in-test
//!   TCP proxy drops every connection to NATS and refuses new ones: the events stay unpublished,
//!   then go out in order, once, when the proxy accepts again.
//! - `two_instances_relaying_one_outbox_deliver_a_burst_without_duplicates_or_gaps`: two
//!   applications on one database, each with its relay, and a burst of changes through both.

// Test modules share helpers with `pub`; the binary has no public API for the lint to protect.
#![allow(unreachable_pub)]

// The HTTP tests' helpers (spawn_app_with, TestApp); their `api_tests!` is not used here.
#[allow(unused_macros, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::{DeliverPolicy, pull::OrderedConfig},
    context::GetStreamErrorKind,
};
use async_trait::async_trait;
use futures::{StreamExt as _, future::join_all};
use orderly_application::{
    StoreError,
    events::{Outbox, OutboxBatch, OutboxClaim, RelayEvents},
    ports::Clock,
};
use orderly_domain::{Uuid, time::Timestamp};
use orderly_infrastructure::{
    SeaOrmOutbox,
    services::{EVENT_SOURCE, NatsPublisher, NatsSettings, SystemClock},
    testing::TestDatabase,
};
use orderly_server::settings::Settings;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, QueryResult, Statement, TryGetable};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
    time::Instant,
};

use helpers::{Engine, TestApp, TestUser, json_body, spawn_app_with};

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

/// Runs each `async fn name(db: TestDatabase)` as `sqlite::name` and, when `TEST_DATABASE_URL`
/// is set, `postgres::name` (which fails, never skips, when that server is unreachable).
macro_rules! relay_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(orderly_infrastructure::testing::TestDatabase::sqlite().await)
                        .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

/// How long the relay has to publish what is waiting once NATS answers (a few polls, the
/// client's reconnection backoff of at most 4 s and the relay's backoff after an outage).
const DELIVERY: Duration = Duration::from_secs(30);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Ok`, every [`POLL`], for at most `within`; panics with
/// `what` and the probe's last answer past that.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------------------------

/// The NATS the tests publish to and consume from.
fn nats_url() -> String {
    std::env::var("TEST_NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

/// `nats://[user:password@]host:port` split into its credentials (with the `@`) and its
/// `host:port` (4222 when absent).
fn split_nats_url(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['/', '?']).next().unwrap_or(rest);
    let (credentials, host_port) = match rest.rsplit_once('@') {
        Some((credentials, host_port)) => (format!("{credentials}@"), host_port),
        None => (String::new(), rest),
    };
    let host_port =
        if host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            host_port.to_owned()
        } else {
            format!("{host_port}:4222")
        };
    (credentials, host_port)
}

/// One message as the consumer received it.
#[derive(Debug, Clone)]
struct Delivered {
    subject: String,
    stream_sequence: u64,
    headers: HashMap<String, String>,
    body: Value,
}

impl Delivered {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The event id the message carries (`ce-id`).
    fn id(&self) -> Uuid {
        let id = self.header("ce-id").unwrap_or_else(|| panic!("no ce-id header: {self:?}"));
        id.parse().unwrap_or_else(|_| panic!("ce-id is not a UUID: {self:?}"))
    }
}

/// A stream and a subject prefix of one test's own on the test NATS; the stream is deleted at
/// the end ([`Broker::delete`], or on drop when the test failed).
struct Broker {
    url: String,
    jetstream: jetstream::Context,
    stream: String,
    prefix: String,
    deleted: bool,
}

impl Broker {
    /// Connects to `TEST_NATS_URL`; panics when it does not answer or has no JetStream.
    async fn new() -> Self {
        let url = nats_url();
        let connecting = async_nats::ConnectOptions::new()
            .name("orderly-events-test")
            .connection_timeout(Duration::from_secs(3))
            .connect(url.as_str());
        let client = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "NATS at {url} (TEST_NATS_URL) did not answer within 5 s: these tests need a \
                     JetStream server there (nats-server -js); they fail rather than skip"
                )
            })
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach NATS at {url} (TEST_NATS_URL): {error}. These tests need a \
                     JetStream server there (nats-server -js); they fail rather than skip"
                )
            });
        // JetStream answers its API (the account's info) only when the server runs with -js.
        let info =
            tokio::time::timeout(Duration::from_secs(5), client.request("$JS.API.INFO", "".into()))
                .await
                .unwrap_or_else(|_| {
                    panic!("NATS at {url} did not answer a JetStream request in 5 s")
                })
                .unwrap_or_else(|error| {
                    panic!("NATS at {url} has no JetStream (start it with -js): {error}")
                });
        let info: Value = serde_json::from_slice(&info.payload).unwrap_or_default();
        assert!(
            info.get("error").is_none() && info.get("type").is_some(),
            "NATS at {url} has no usable JetStream (start it with -js): {info}"
        );
        let jetstream = jetstream::new(client);
        let token = Uuid::now_v7().simple().to_string();
        Self {
            url,
            jetstream,
            stream: format!("ORDERLY_TEST_{token}"),
            prefix: format!("orderly_test_{token}"),
            deleted: false,
        }
    }

    /// Points the application's relay at this stream and prefix through `url` (the test NATS,
    /// or a proxy to it), polling every 20 ms and giving up on a publish after 1 s.
    fn configure(&self, settings: &mut Settings, url: &str) {
        settings.nats.url = Some(url.to_owned());
        settings.nats.subject_prefix = self.prefix.clone();
        settings.nats.stream = self.stream.clone();
        settings.nats.publish_timeout = 1;
        settings.outbox.poll_interval = 20;
    }

    /// What a publisher built by the test is given (the relay's own settings otherwise).
    fn publisher_settings(&self) -> NatsSettings {
        NatsSettings {
            url: self.url.clone(),
            subject_prefix: self.prefix.clone(),
            stream: self.stream.clone(),
            max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            publish_timeout: Duration::from_secs(2),
        }
    }

    /// How many messages the stream stores (0 while it does not exist).
    async fn stored(&self) -> u64 {
        match self.jetstream.get_stream(&self.stream).await {
            Ok(mut stream) => stream.info().await.expect("the stream's info").state.messages,
            Err(error)
                if matches!(
                    error.kind(),
                    GetStreamErrorKind::JetStream(error)
                        if error.error_code() == ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                0
            }
            Err(error) => panic!("reading the stream {}: {error}", self.stream),
        }
    }

    /// Consumes the whole stream from its start with an ordered consumer on `<prefix>.>`:
    /// exactly `expected` messages, in stream order, and none after them.
    async fn consume(&self, expected: usize) -> Vec<Delivered> {
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .unwrap_or_else(|error| panic!("the stream {} exists: {error}", self.stream));
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}.>", self.prefix),
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await
            .expect("an ordered consumer");
        let mut messages = consumer.messages().await.expect("the consumer's messages");
        let mut delivered = Vec::with_capacity(expected);
        let deadline = Instant::now() + Duration::from_secs(10);
        while delivered.len() < expected {
            let message = match tokio::time::timeout_at(deadline, messages.next()).await {
                Err(_) => panic!(
                    "only {} of the {expected} events came through the consumer within 10 s: {:?}",
                    delivered.len(),
                    delivered.iter().map(Delivered::id).collect::<Vec<_>>()
                ),
                Ok(None) => panic!("the consumer ended after {} messages", delivered.len()),
                Ok(Some(Err(error))) => panic!("consuming the stream: {error}"),
                Ok(Some(Ok(message))) => message,
            };
            let stream_sequence = message.info().expect("a JetStream message").stream_sequence;
            let headers = message
                .headers
                .iter()
                .flat_map(|headers| headers.iter())
                .filter_map(|(name, values)| {
                    Some((name.to_string(), values.first()?.as_str().to_owned()))
                })
                .collect();
            let body = serde_json::from_slice(&message.payload).unwrap_or_else(|error| {
                panic!("a message body is not JSON ({error}): {:?}", message.payload)
            });
            delivered.push(Delivered {
                subject: message.subject.to_string(),
                stream_sequence,
                headers,
                body,
            });
        }
        if let Ok(Some(extra)) =
            tokio::time::timeout(Duration::from_millis(300), messages.next()).await
        {
            panic!("more than the {expected} expected messages in the stream: {extra:?}");
        }
        delivered
    }

    /// Deletes the stream; panics when NATS refuses.
    async fn delete(mut self) {
        self.jetstream
            .delete_stream(&self.stream)
            .await
            .unwrap_or_else(|error| panic!("deleting the stream {}: {error}", self.stream));
        self.deleted = true;
    }
}

impl Drop for Broker {
    /// A failed test still deletes its stream (if it exists), from a thread of its own: drop
    /// runs inside the test's runtime.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                let timeout = Duration::from_secs(3);
                if let Ok(Ok(client)) =
                    tokio::time::timeout(timeout, async_nats::connect(url)).await
                {
                    let jetstream = jetstream::new(client);
                    let _ = tokio::time::timeout(timeout, jetstream.delete_stream(stream)).await;
                }
            });
        })
        .join();
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox table
// ---------------------------------------------------------------------------------------------

/// One row of `outbox_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    position: i64,
    id: Uuid,
    event_type: String,
    aggregate: String,
    aggregate_id: Uuid,
    aggregate_version: i64,
    occurred_at: Timestamp,
    data: String,
    published_at: Option<Timestamp>,
}

fn column<T: TryGetable>(row: &QueryResult, name: &str) -> T {
    row.try_get("", name).unwrap_or_else(|error| panic!("reading outbox_events.{name}: {error}"))
}

impl Row {
    fn from_row(row: &QueryResult) -> Self {
        Self {
            position: column(row, "position"),
            id: column(row, "id"),
            event_type: column(row, "event_type"),
            aggregate: column(row, "aggregate"),
            aggregate_id: column(row, "aggregate_id"),
            aggregate_version: column(row, "aggregate_version"),
            occurred_at: column(row, "occurred_at"),
            data: column(row, "data"),
            published_at: column(row, "published_at"),
        }
    }
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
        let sql = "SELECT position, id, event_type, aggregate, aggregate_id, aggregate_version, \
                   occurred_at, data, published_at FROM outbox_events ORDER BY position";
        let rows = self
            .raw
            .query_all_raw(Statement::from_string(self.raw.get_database_backend(), sql))
            .await
            .expect("reading outbox_events");
        rows.iter().map(Row::from_row).collect()
    }

    /// Waits until every row is marked published; returns them.
    async fn all_published(&self, within: Duration) -> Vec<Row> {
        eventually("every outbox event marked published", within, || async {
            let rows = self.rows().await;
            let waiting: Vec<&str> = rows
                .iter()
                .filter(|row| row.published_at.is_none())
                .map(|row| row.event_type.as_str())
                .collect();
            if waiting.is_empty() {
                Ok(rows)
            } else {
                Err(format!("{} of {} unpublished: {waiting:?}", waiting.len(), rows.len()))
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// What a delivery must be
// ---------------------------------------------------------------------------------------------

/// Asserts that `delivered` (the whole stream, in stream order) is `rows` (the whole outbox),
/// every event once, as CloudEvents 1.0 JSON with its headers on `<prefix>.<aggregate>.<id>`,
/// one subject's events in the order of their position and version, and every row marked.
fn assert_delivered_once(rows: &[Row], delivered: &[Delivered], prefix: &str) {
    let unmarked: Vec<&Row> = rows.iter().filter(|row| row.published_at.is_none()).collect();
    assert!(unmarked.is_empty(), "every outbox row ends marked published: {unmarked:#?}");

    let by_id: HashMap<Uuid, &Row> = rows.iter().map(|row| (row.id, row)).collect();
    assert_eq!(by_id.len(), rows.len(), "outbox ids are unique");
    let mut seen = HashSet::new();
    for message in delivered {
        let id = message.id();
        assert!(seen.insert(id), "event {id} is in the stream twice: {message:#?}");
    }
    let outbox: HashSet<Uuid> = by_id.keys().copied().collect();
    let missing: Vec<&&Row> =
        outbox.difference(&seen).map(|id| by_id.get(id).expect("a row")).collect();
    assert!(missing.is_empty(), "events of the outbox never delivered: {missing:#?}");
    let unknown: Vec<&Uuid> = seen.difference(&outbox).collect();
    assert!(unknown.is_empty(), "delivered events the outbox does not hold: {unknown:?}");
    assert_eq!(delivered.len(), rows.len());

    for message in delivered {
        let row = by_id[&message.id()];
        let context = || format!("{row:#?}\n{message:#?}");
        assert_eq!(
            message.subject,
            format!("{prefix}.{}.{}", row.aggregate, row.aggregate_id),
            "the subject is <prefix>.<aggregate>.<id>: {}",
            context()
        );
        let id = row.id.to_string();
        let subject = row.aggregate_id.to_string();
        let body = &message.body;
        assert_eq!(body["specversion"], "1.0", "{}", context());
        assert_eq!(body["id"], json!(id), "{}", context());
        assert_eq!(body["source"], EVENT_SOURCE, "{}", context());
        assert_eq!(body["type"], json!(row.event_type), "{}", context());
        assert_eq!(body["subject"], json!(subject), "{}", context());
        assert_eq!(body["datacontenttype"], "application/json", "{}", context());
        let time = body["time"].as_str().unwrap_or_else(|| panic!("no time: {}", context()));
        let time: Timestamp =
            time.parse().unwrap_or_else(|_| panic!("time is not RFC 3339: {}", context()));
        assert_eq!(time, row.occurred_at, "time is when the change was made: {}", context());
        let stored: Value = serde_json::from_str(&row.data).expect("stored data is JSON");
        assert_eq!(body["data"], stored, "data is the stored representation: {}", context());
        assert_eq!(body["data"]["id"], json!(subject), "{}", context());
        if row.event_type != "orderly.user.deleted.v1" {
            assert_eq!(
                body["data"]["version"],
                json!(row.aggregate_version),
                "data carries the version the event is at: {}",
                context()
            );
        }
        let headers = [
            ("Nats-Msg-Id", id.as_str()),
            ("ce-id", id.as_str()),
            ("ce-specversion", "1.0"),
            ("ce-source", EVENT_SOURCE),
            ("ce-type", row.event_type.as_str()),
            ("ce-subject", subject.as_str()),
            ("ce-time", body["time"].as_str().unwrap_or_default()),
            ("content-type", "application/cloudevents+json"),
        ];
        for (name, value) in headers {
            assert_eq!(message.header(name), Some(value), "header {name}: {}", context());
        }
    }

    let mut per_subject: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    let mut sequences: Vec<u64> = delivered.iter().map(|m| m.stream_sequence).collect();
    sequences.dedup();
    assert_eq!(sequences.len(), delivered.len(), "one message per stream sequence");
    for message in delivered {
        per_subject.entry(message.subject.as_str()).or_default().push(by_id[&message.id()]);
    }
    for (subject, events) in per_subject {
        let order: Vec<(i64, i64, &str)> = events
            .iter()
            .map(|row| (row.position, row.aggregate_version, row.event_type.as_str()))
            .collect();
        let in_order = order.windows(2).all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1);
        assert!(
            in_order,
            "the events of {subject} arrive in the order they happened \
             (position, aggregate_version, type in stream order): {order:#?}"
        );
    }
}

/// The types starting with `type_prefix` of the messages on `subject`, in stream order
/// (`orderly.order.` leaves out the payment events that share an order's subject).
fn types_of(delivered: &[Delivered], subject: &str, type_prefix: &str) -> Vec<String> {
    delivered
        .iter()
        .filter(|message| message.subject == subject)
        .filter_map(|message| message.body["type"].as_str())
        .filter(|event_type| event_type.starts_with(type_prefix))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The shop
// ---------------------------------------------------------------------------------------------

fn id_of(resource: &Value) -> &str {
    resource["id"].as_str().unwrap_or_else(|| panic!("no id in {resource}"))
}

/// Applies `action` to `order` as `actor`; asserts the transition is made.
async fn act(app: &TestApp, actor: &TestUser, order: &str, action: &str) {
    let response =
        app.transition(&actor.access_token, order, &json!({"action": action}), None).await;
    json_body(response, StatusCode::CREATED).await;
}

/// Changes `product`'s price as `admin`.
async fn reprice(app: &TestApp, admin: &TestUser, product: &str, amount: i64) {
    let body = json!({"price": {"amount": amount, "currency": "EUR"}});
    // Under a burst of orders moving the product's stock, the server may answer 409
    // CONCURRENT_MODIFICATION after its own retries; a client then retries, as the problem says.
    for _ in 0..5 {
        let response = app.patch_product(&admin.access_token, product, &body, None).await;
        if response.status() != StatusCode::CONFLICT {
            json_body(response, StatusCode::OK).await;
            return;
        }
    }
    panic!("the product kept changing under five repricings");
}

/// The ids of a scripted run's resources.
struct Script {
    delivered_order: String,
    cancelled_order: String,
    updated_product: String,
}

/// Register, a catalogue, an order paid, shipped and delivered, another cancelled, a product
/// updated: every kind of event but the rarer payment ones.
async fn scripted_run(app: &TestApp) -> Script {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 5).await;
    let order = app.order(&customer, id_of(&keyboard), 2).await;
    let delivered_order = id_of(&order).to_owned();
    act(app, &customer, &delivered_order, "pay").await;
    act(app, &admin, &delivered_order, "ship").await;
    act(app, &admin, &delivered_order, "deliver").await;
    let other = app.order(&customer, id_of(&mouse), 1).await;
    let cancelled_order = id_of(&other).to_owned();
    act(app, &customer, &cancelled_order, "cancel").await;
    reprice(app, &admin, id_of(&mouse), 2499).await;
    Script { delivered_order, cancelled_order, updated_product: id_of(&mouse).to_owned() }
}

// ---------------------------------------------------------------------------------------------
// a. A scripted run, delivered once, in order, as CloudEvents
// ---------------------------------------------------------------------------------------------

async fn every_event_is_delivered_once_in_order_as_cloudevents(db: TestDatabase) {
    let broker = Broker::new().await;
    let outbox = OutboxTable::open(db.url()).await;
    let app = spawn_app_with(db, |settings| broker.configure(settings, &nats_url())).await;

    let script = scripted_run(&app).await;

    let rows = outbox.all_published(DELIVERY).await;
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
    assert_eq!(broker.stored().await, rows.len() as u64, "the stream stores each event once");
    let delivered = broker.consume(rows.len()).await;
    assert_delivered_once(&rows, &delivered, &broker.prefix);

    let prefix = &broker.prefix;
    assert_eq!(
        types_of(
            &delivered,
            &format!("{prefix}.order.{}", script.delivered_order),
            "orderly.order."
        ),
        [
            "orderly.order.placed.v1",
            "orderly.order.paid.v1",
            "orderly.order.shipped.v1",
            "orderly.order.delivered.v1"
        ]
    );
    assert_eq!(
        types_of(
            &delivered,
            &format!("{prefix}.order.{}", script.cancelled_order),
            "orderly.order."
        ),
        ["orderly.order.placed.v1", "orderly.order.cancelled.v1"]
    );
    let product = types_of(
        &delivered,
        &format!("{prefix}.product.{}", script.updated_product),
        "orderly.product.",
    );
    assert_eq!(product.first().map(String::as_str), Some("orderly.product.created.v1"));
    assert_eq!(
        product.last().map(String::as_str),
        Some("orderly.product.updated.v1"),
        "{product:?}"
    );
    broker.delete().await;
}

// ---------------------------------------------------------------------------------------------
// b. The relay dies between publishing and marking
// ---------------------------------------------------------------------------------------------

/// The outbox, but the first claim's `finish` fails without marking anything, as if the
/// process died after the broker acknowledged the batch.
struct DiesBeforeMarking {
    outbox: Arc<dyn Outbox>,
    died: AtomicBool,
}

#[async_trait]
impl Outbox for DiesBeforeMarking {
    async fn claim(&self, limit: u32) -> Result<OutboxBatch, StoreError> {
        let batch = self.outbox.claim(limit).await?;
        if self.died.swap(true, Ordering::SeqCst) {
            return Ok(batch);
        }
        Ok(OutboxBatch { events: batch.events, claim: Box::new(Dies(batch.claim)) })
    }

    async fn purge_published(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.outbox.purge_published(before).await
    }

    async fn purge_written_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.outbox.purge_written_before(before).await
    }

    async fn oldest_unpublished(&self) -> Result<Option<Timestamp>, StoreError> {
        self.outbox.oldest_unpublished().await
    }
}

/// A claim that ends without marking (on PostgreSQL its transaction is rolled back).
struct Dies(Box<dyn OutboxClaim>);

#[async_trait]
impl OutboxClaim for Dies {
    async fn finish(self: Box<Self>, ids: &[Uuid], _: Timestamp) -> Result<(), StoreError> {
        drop(self.0);
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "the relay died after publishing {} events, before marking them",
            ids.len()
        )))
    }
}

async fn a_relay_that_dies_after_publishing_publishes_again_and_the_stream_keeps_one_copy(
    db: TestDatabase,
) {
    let broker = Broker::new().await;
    let outbox = OutboxTable::open(db.url()).await;
    // No NATS_URL: the application's own relay publishes nothing; the test's relays do.
    let app = spawn_app_with(db, |_| {}).await;
    scripted_run(&app).await;
    let rows = outbox.rows().await;
    assert!(rows.iter().all(|row| row.published_at.is_none()), "nothing published yet");
    // The first claim: the oldest unpublished event of each resource.
    let mut first_batch = Vec::new();
    let mut resources = HashSet::new();
    for row in &rows {
        if resources.insert(row.aggregate_id) {
            first_batch.push(row.clone());
        }
    }

    let real: Arc<dyn Outbox> = Arc::new(SeaOrmOutbox::new(app.database.clone()));
    let publisher = Arc::new(
        NatsPublisher::connect(broker.publisher_settings()).await.expect("a NATS publisher"),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dying = Arc::new(DiesBeforeMarking { outbox: real.clone(), died: AtomicBool::new(false) });
    let crashed = RelayEvents::new(dying, publisher.clone(), clock.clone());
    let error = crashed.execute().await.expect_err("the claim's finish fails");
    assert!(
        matches!(&error, StoreError::Unavailable(why) if why.to_string().contains("died")),
        "the wrapper's failure: {error:?}"
    );

    assert_eq!(
        broker.stored().await,
        first_batch.len() as u64,
        "the first batch (one event per resource) reached the stream before the relay died"
    );
    assert!(
        outbox.rows().await.iter().all(|row| row.published_at.is_none()),
        "nothing is marked: the relay died before marking"
    );
    let ids = |delivered: &[Delivered]| delivered.iter().map(Delivered::id).collect::<Vec<_>>();
    let before = broker.consume(first_batch.len()).await;
    assert_eq!(ids(&before), first_batch.iter().map(|row| row.id).collect::<Vec<_>>());

    // A new relay on the real outbox publishes everything again, the first batch included.
    let relay = RelayEvents::new(real, publisher, clock);
    let mut republished = 0;
    let deadline = Instant::now() + DELIVERY;
    let rows = loop {
        let report = relay.execute().await.expect("the new relay claims and marks");
        assert_eq!(report.failed, None, "NATS acknowledges every publish");
        republished += report.published.len();
        let rows = outbox.rows().await;
        if rows.iter().all(|row| row.published_at.is_some()) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the new relay did not publish every event within {DELIVERY:?}: {republished} \
             published, {} rows",
            rows.len()
        );
        if report.published.is_empty() {
            // A claim the dead relay held may still be rolling back (PostgreSQL skips it).
            tokio::time::sleep(POLL).await;
        }
    };
    assert_eq!(
        republished,
        rows.len(),
        "the new relay published every event once, those published before it died included"
    );
    assert_eq!(
        broker.stored().await,
        rows.len() as u64,
        "JetStream dropped the {} republished copies by Nats-Msg-Id",
        first_batch.len()
    );
    let delivered = broker.consume(rows.len()).await;
    assert_delivered_once(&rows, &delivered, &broker.prefix);
    assert_eq!(
        ids(&delivered[..first_batch.len()]),
        ids(&before),
        "the copies kept are the first ones, where they were"
    );
    broker.delete().await;
}

// ---------------------------------------------------------------------------------------------
// c. NATS cut and restored
// ---------------------------------------------------------------------------------------------

/// A TCP proxy to NATS that can drop every connection and refuse new ones (its port closed),
/// then listen again on the same port.
struct Proxy {
    address: SocketAddr,
    wanted: watch::Sender<bool>,
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let (wanted, wanted_rx) = watch::channel(true);
        let (listening_tx, listening) = watch::channel(true);
        let task = tokio::spawn(proxy(listener, address, upstream, wanted_rx, listening_tx));
        Self { address, wanted, listening, task }
    }

    /// Drops every connection and closes the port; returns once done.
    async fn cut(&mut self) {
        self.wanted.send_replace(false);
        self.wait_until(false).await;
    }

    /// Listens again; returns once it does.
    async fn restore(&mut self) {
        self.wanted.send_replace(true);
        self.wait_until(true).await;
    }

    async fn wait_until(&mut self, listening: bool) {
        tokio::time::timeout(
            Duration::from_secs(5),
            self.listening.wait_for(|now| *now == listening),
        )
        .await
        .unwrap_or_else(|_| panic!("the proxy did not switch to listening={listening} in 5 s"))
        .expect("the proxy runs");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy(
    listener: TcpListener,
    address: SocketAddr,
    upstream: String,
    mut wanted: watch::Receiver<bool>,
    listening: watch::Sender<bool>,
) {
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(listener) => listener,
            None => rebind(address).await,
        };
        listening.send_replace(true);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    if let Ok((client, _)) = accepted {
                        connections.spawn(forward(client, upstream.clone()));
                    }
                }
                changed = wanted.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*wanted.borrow_and_update() {
                        break;
                    }
                }
            }
        }
        // The port closes (new connections are refused) and every connection is dropped.
        drop(current);
        connections.shutdown().await;
        listening.send_replace(false);
        if wanted.wait_for(|wanted| *wanted).await.is_err() {
            return;
        }
    }
}

/// Listens on `address` again (the port the clients know).
async fn rebind(address: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let bound = TcpSocket::new_v4().and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(128)
        });
        match bound {
            Ok(listener) => return listener,
            Err(error) if Instant::now() >= deadline => {
                panic!("the proxy cannot listen on {address} again: {error}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

async fn forward(mut client: TcpStream, upstream: String) {
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// The samples of `name` (any labels) on `app`'s `/metrics`, summed; `None` when absent.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let response = app.client.get(app.url("/metrics")).send().await.expect("/metrics answers");
    let text = response.text().await.expect("a body");
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .reduce(|sum, value| sum + value)
}

/// `orderly_events_published_total` on `app`'s `/metrics`, all types: what its relay published.
async fn published(app: &TestApp) -> u64 {
    metric(app, "orderly_events_published_total").await.unwrap_or_default() as u64
}

/// `orderly_outbox_relay_errors_total` on `app`'s `/metrics`: relay runs stopped by the broker.
async fn relay_errors(app: &TestApp) -> f64 {
    metric(app, "orderly_outbox_relay_errors_total")
        .await
        .unwrap_or_else(|| panic!("no orderly_outbox_relay_errors_total in /metrics"))
}

async fn events_written_while_nats_is_cut_wait_and_are_all_delivered_once_it_is_back(
    db: TestDatabase,
) {
    let broker = Broker::new().await;
    let (credentials, upstream) = split_nats_url(&broker.url);
    let mut proxy = Proxy::start(upstream).await;
    let through_proxy = format!("nats://{credentials}{}", proxy.address);
    let outbox = OutboxTable::open(db.url()).await;
    let app = spawn_app_with(db, |settings| broker.configure(settings, &through_proxy)).await;

    // Before the cut: the relay publishes through the proxy.
    let admin = app.admin().await;
    let customer = app.customer("Grace").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 5).await;
    let before = outbox.all_published(DELIVERY).await;
    assert_eq!(broker.stored().await, before.len() as u64);

    proxy.cut().await;
    let errors_before = relay_errors(&app).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;
    let order = id_of(&order).to_owned();
    act(&app, &customer, &order, "pay").await;
    act(&app, &admin, &order, "ship").await;
    let other = app.order(&customer, id_of(&mouse), 2).await;
    let other = id_of(&other).to_owned();
    act(&app, &customer, &other, "cancel").await;
    reprice(&app, &admin, id_of(&keyboard), 3999).await;
    // The relay tried to publish them and failed (nothing is tried while nothing waits).
    eventually("the relay fails to publish while NATS is cut", Duration::from_secs(10), || async {
        let errors = relay_errors(&app).await;
        if errors > errors_before { Ok(()) } else { Err(format!("{errors} relay errors")) }
    })
    .await;
    let during = outbox.rows().await;
    let written: Vec<&Row> = during
        .iter()
        .filter(|row| row.position > before.last().map_or(0, |r| r.position))
        .collect();
    assert!(written.len() >= 8, "the changes during the cut wrote events: {written:#?}");
    let published: Vec<&&Row> = written.iter().filter(|row| row.published_at.is_some()).collect();
    assert!(published.is_empty(), "nothing is marked published while NATS is cut: {published:#?}");
    assert_eq!(
        broker.stored().await,
        before.len() as u64,
        "nothing reached the stream while NATS was cut"
    );

    proxy.restore().await;
    let rows = outbox.all_published(DELIVERY).await;
    assert_eq!(rows.len(), during.len(), "no event written since");
    assert_eq!(broker.stored().await, rows.len() as u64, "each event stored once");
    let delivered = broker.consume(rows.len()).await;
    assert_delivered_once(&rows, &delivered, &broker.prefix);
    assert_eq!(
        types_of(&delivered, &format!("{}.order.{order}", broker.prefix), "orderly.order."),
        ["orderly.order.placed.v1", "orderly.order.paid.v1", "orderly.order.shipped.v1"]
    );
    assert_eq!(
        types_of(&delivered, &format!("{}.order.{other}", broker.prefix), "orderly.order."),
        ["orderly.order.placed.v1", "orderly.order.cancelled.v1"]
    );
    drop(proxy);
    broker.delete().await;
}

// ---------------------------------------------------------------------------------------------
// d. Two instances, one outbox
// ---------------------------------------------------------------------------------------------

async fn two_instances_relaying_one_outbox_deliver_a_burst_without_duplicates_or_gaps(
    db: TestDatabase,
) {
    const CUSTOMERS: usize = 12;
    const PRODUCTS: usize = 4;
    let engine = if db.url().starts_with("sqlite") { Engine::Sqlite } else { Engine::Postgres };
    let broker = Broker::new().await;
    let outbox = OutboxTable::open(db.url()).await;
    let first = spawn_app_with(db, |settings| broker.configure(settings, &nats_url())).await;
    let second = first.another_instance(|_| {}).await;
    let apps = [&first, &second];
    let app = |n: usize| apps[n % 2];

    let admin = first.admin().await;
    let products: Vec<Value> = join_all((0..PRODUCTS).map(|n| {
        let admin = &admin;
        async move { app(n).product(admin, &format!("BURST-{n}"), 1000 + n as i64, 1000).await }
    }))
    .await;
    let customers: Vec<TestUser> = join_all(
        (0..CUSTOMERS).map(|n| async move { app(n).customer(&format!("Burst{n}")).await }),
    )
    .await;

    // The burst: every customer orders through one instance and pays (or cancels) through the
    // other, while the admin reprices every product through both.
    let orders = join_all(customers.iter().enumerate().map(|(n, customer)| {
        let (products, admin) = (&products, &admin);
        async move {
            let product = id_of(&products[n % PRODUCTS]);
            let order = app(n).order(customer, product, 1 + (n as u32 % 3)).await;
            let order = id_of(&order).to_owned();
            if n % 4 == 3 {
                act(app(n + 1), customer, &order, "cancel").await;
            } else {
                act(app(n + 1), customer, &order, "pay").await;
                act(app(n), admin, &order, "ship").await;
            }
            order
        }
    }));
    let repricing = join_all((0..2 * PRODUCTS).map(|n| {
        let (products, admin) = (&products, &admin);
        let price = 2000 + n as i64;
        async move { reprice(app(n), admin, id_of(&products[n % PRODUCTS]), price).await }
    }));
    let (orders, _) = futures::join!(orders, repricing);
    assert_eq!(orders.len(), CUSTOMERS);

    let rows = outbox.all_published(DELIVERY).await;
    assert_eq!(
        broker.stored().await,
        rows.len() as u64,
        "the stream holds as many messages as the outbox holds events"
    );
    let delivered = broker.consume(rows.len()).await;
    assert_delivered_once(&rows, &delivered, &broker.prefix);
    // What each relay published (and saw acknowledged): both took part; on PostgreSQL the claim
    // locks, so no event was published twice (the stream would hide it); on SQLite nothing is
    // locked and the stream dropped the copies.
    let events = rows.len() as u64;
    // A relay counts its batch just after marking it: the counters may trail the rows a moment.
    let (by_first, by_second) =
        eventually("the relays count what they published", Duration::from_secs(5), || async {
            let counts = (published(&first).await, published(&second).await);
            if counts.0 + counts.1 >= events { Ok(counts) } else { Err(format!("{counts:?}")) }
        })
        .await;
    eprintln!(
        "{engine:?}: {} events, published by the relays {by_first} + {by_second}",
        rows.len()
    );
    assert!(by_first > 0 && by_second > 0, "both relays published: {by_first} + {by_second}");
    // (On SQLite both relays may publish an event; the stream kept one copy.)
    if engine == Engine::Postgres {
        assert_eq!(
            by_first + by_second,
            events,
            "each event published by one instance only ({by_first} + {by_second})"
        );
    }
    for (n, order) in orders.iter().enumerate() {
        let expected: &[&str] = if n % 4 == 3 {
            &["orderly.order.placed.v1", "orderly.order.cancelled.v1"]
        } else {
            &["orderly.order.placed.v1", "orderly.order.paid.v1", "orderly.order.shipped.v1"]
        };
        assert_eq!(
            types_of(&delivered, &format!("{}.order.{order}", broker.prefix), "orderly.order."),
            expected
        );
    }
    drop(second);
    broker.delete().await;
}

// ---------------------------------------------------------------------------------------------
// e. The stream deleted while the application runs
// ---------------------------------------------------------------------------------------------

/// An operator deletes the stream (or NATS comes back with empty storage): the relay's next
/// publish fails, and the one after creates the stream again, so later events are delivered
/// without a restart.
async fn a_stream_deleted_while_the_application_runs_is_created_again(db: TestDatabase) {
    let broker = Broker::new().await;
    let outbox = OutboxTable::open(db.url()).await;
    let app = spawn_app_with(db, |settings| broker.configure(settings, &nats_url())).await;
    let admin = app.admin().await;
    let before = outbox.all_published(DELIVERY).await.len();
    assert!(before > 0 && broker.stored().await > 0, "the admin's registration was published");

    broker
        .jetstream
        .delete_stream(&broker.stream)
        .await
        .unwrap_or_else(|error| panic!("deleting the stream {}: {error}", broker.stream));
    let product = app.product(&admin, "KB-DEL", 4999, 10).await;
    let rows = outbox.all_published(DELIVERY).await;
    assert!(rows.len() > before, "the product's events were published too");
    let created = rows
        .iter()
        .find(|row| row.event_type == "orderly.product.created.v1")
        .expect("the product's creation");
    assert_eq!(created.aggregate_id.to_string(), id_of(&product));
    assert_eq!(broker.stored().await, (rows.len() - before) as u64, "a new stream holds them");
    broker.delete().await;
}

relay_tests!(
    a_stream_deleted_while_the_application_runs_is_created_again,
    every_event_is_delivered_once_in_order_as_cloudevents,
    a_relay_that_dies_after_publishing_publishes_again_and_the_stream_keeps_one_copy,
    events_written_while_nats_is_cut_wait_and_are_all_delivered_once_it_is_back,
    two_instances_relaying_one_outbox_deliver_a_burst_without_duplicates_or_gaps,
);
