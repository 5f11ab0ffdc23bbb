//! The product cache of `GET /products/{id}` and `GET /products` through real HTTP (ADR 0025,
//! ADR 0043): that it is used at all, that every product write and every stock change of an
//! order drops it on the writing instance at once and on the others through Redis within the
//! time a message takes (asserted with 1 s), that without Redis the others follow within
//! `PRODUCT_CACHE_TTL`, and that an unreachable Redis turns it off rather than serving stale
//! products.
//!
//! A change "behind an instance's back" is a PATCH through a silent writer: another instance on
//! the same database with its cache off and no Redis, which therefore tells no one. (These
//! tests cannot run raw SQL: the test binary reaches the database only through `Database`,
//! whose connection is private to the infrastructure crate, and has no SQL driver of its own.)
//! The silent PATCH also moves the version, so a 304 to the old `ETag` can only come from the
//! cache.
//!
//! Instances that share invalidations use a Redis key prefix of their own per test, so that
//! parallel tests never hear each other's messages; Redis at `TEST_REDIS_URL` is required.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use orderly_server::settings::Settings;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

use crate::helpers::{TestApp, TestUser, api_tests, json_body, test_redis_url};

/// How often a test looks again.
const POLL: Duration = Duration::from_millis(20);
/// The bound on a stale read on another instance while Redis is up: the time one pub/sub
/// message takes, asserted generously.
const PUBSUB_BOUND: Duration = Duration::from_secs(1);
/// How long an instance may take to subscribe at start before Redis is taken for down.
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(5);
/// A cache TTL that no test outlives: only an invalidation can explain a fresh read.
const LONG_TTL: u64 = 60;

// --- helpers of this file ---

/// A key prefix (and so an invalidation channel) of its own, so parallel tests never meet.
fn redis_prefix() -> String {
    format!("orderly-test-{}", orderly_domain::Uuid::now_v7().simple())
}

/// An instance whose cache lives `ttl` seconds and hears invalidations on `prefix`'s channel.
fn shared_cache(settings: &mut Settings, prefix: &str, ttl: u64) {
    settings.redis.redis_url = Some(test_redis_url());
    settings.redis.redis_key_prefix = prefix.to_owned();
    settings.catalogue.product_cache_ttl = ttl;
}

/// An instance without Redis whose cache lives `ttl` seconds (0: no cache).
fn local_cache(settings: &mut Settings, ttl: u64) {
    settings.redis.redis_url = None;
    settings.catalogue.product_cache_ttl = ttl;
}

/// An instance on the same database that caches nothing and tells no other instance about its
/// writes: what it changes, the others learn only from their own TTL.
async fn silent_writer(app: &TestApp) -> TestApp {
    app.another_instance(|settings| local_cache(settings, 0)).await
}

/// Two instances on one database sharing invalidations through one fresh channel, with caches
/// that outlive the test.
async fn two_shared_instances(app: &TestApp) -> (TestApp, TestApp) {
    let prefix = redis_prefix();
    let a = app.another_instance(|settings| shared_cache(settings, &prefix, LONG_TTL)).await;
    let b = app.another_instance(|settings| shared_cache(settings, &prefix, LONG_TTL)).await;
    require_redis(&a).await;
    (a, b)
}

/// Fails (never skips) when the Redis of `TEST_REDIS_URL` does not answer.
async fn require_redis(app: &TestApp) {
    let ready = json_body(app.ready().await, StatusCode::OK).await;
    assert_eq!(
        ready["checks"]["redis"],
        json!("ok"),
        "Redis at {} is required by the product cache tests: {ready}",
        test_redis_url()
    );
}

/// A product as one `GET` answered it.
#[derive(Debug, Clone)]
struct Read {
    etag: String,
    body: Value,
}

/// `GET /products/{id}` on `app`, which must answer 200 with an `ETag`.
async fn read(app: &TestApp, id: &str) -> Read {
    let response = app.get_product(id, None).await;
    let etag = response
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag");
    Read { etag, body: json_body(response, StatusCode::OK).await }
}

/// The version an `ETag` such as `"v3"` names.
fn version(etag: &str) -> u64 {
    etag.trim_matches('"')
        .strip_prefix('v')
        .and_then(|version| version.parse().ok())
        .unwrap_or_else(|| panic!("an ETag of ours: {etag}"))
}

/// PATCHes `body` onto the product through `app` as `admin`; returns what the write answered.
async fn patch(app: &TestApp, admin: &TestUser, id: &str, body: &Value) -> Read {
    let response = app.patch_product(&admin.access_token, id, body, None).await;
    let etag = response
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag");
    Read { etag, body: json_body(response, StatusCode::OK).await }
}

/// Renames the product through `writer`; returns the stored product.
async fn rename(writer: &TestApp, admin: &TestUser, id: &str, name: &str) -> Read {
    patch(writer, admin, id, &json!({"name": name})).await
}

/// Waits until `reader` answers the product from its cache: it reads the product, the silent
/// `writer` renames it, and `reader` still answers the old version (also to `If-None-Match`,
/// with a 304). Returns that cached, now stale, representation. Fails when the cache does not
/// serve within [`SUBSCRIBE_DEADLINE`] (with Redis: the subscription was never made).
async fn wait_until_cached(reader: &TestApp, writer: &TestApp, admin: &TestUser, id: &str) -> Read {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let cached = read(reader, id).await;
        // A name never used before: a PATCH that changes nothing keeps the version.
        let name = format!("Behind its back {}", orderly_domain::Uuid::now_v7().simple());
        let stored = rename(writer, admin, id, &name).await;
        assert_ne!(stored.etag, cached.etag, "the silent write moved the version");
        let again = read(reader, id).await;
        if again.etag == cached.etag {
            assert_eq!(again.body, cached.body, "the cached representation, unchanged");
            let conditional = reader.get_product(id, Some(&cached.etag)).await;
            assert_eq!(
                conditional.status(),
                StatusCode::NOT_MODIFIED,
                "the cached version is current as far as the cache knows"
            );
            return cached;
        }
        assert_eq!(again.etag, stored.etag, "a miss reads what is stored");
        assert!(
            started.elapsed() < SUBSCRIBE_DEADLINE,
            "the product cache never served within {SUBSCRIBE_DEADLINE:?} ({attempt} attempts); \
             with REDIS_URL set, is Redis at {} up?",
            test_redis_url()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `reader` until `fresh` holds for what it answers; fails when that takes longer than
/// `bound`. Returns the fresh read and how long it took.
async fn wait_for(
    reader: &TestApp,
    id: &str,
    bound: Duration,
    what: &str,
    fresh: impl Fn(&Read) -> bool,
) -> (Read, Duration) {
    let started = Instant::now();
    loop {
        let seen = read(reader, id).await;
        let elapsed = started.elapsed();
        if fresh(&seen) {
            assert!(elapsed <= bound, "{what}: seen after {elapsed:?}, beyond {bound:?}");
            return (seen, elapsed);
        }
        assert!(
            elapsed <= bound,
            "{what}: still stale after {elapsed:?} (bound {bound:?}): {} {}",
            seen.etag,
            seen.body
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A TCP proxy in front of the test Redis that a test can cut (every connection closed, new
/// ones refused) and restore: an instance behind it loses and regains its subscription.
struct RedisProxy {
    /// `TEST_REDIS_URL` with the proxy's address.
    url: String,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl RedisProxy {
    async fn start() -> Self {
        let upstream_url = test_redis_url();
        let (scheme, rest) = upstream_url.split_once("://").expect("a Redis URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (credentials, address) = match authority.rsplit_once('@') {
            Some((credentials, address)) => (format!("{credentials}@"), address),
            None => (String::new(), authority),
        };
        let upstream =
            if address.contains(':') { address.to_owned() } else { format!("{address}:6379") };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepting = tokio::spawn({
            let (open, connections) = (Arc::clone(&open), Arc::clone(&connections));
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue;
                    }
                    let task = tokio::spawn({
                        let upstream = upstream.clone();
                        async move {
                            if let Ok(mut server) = TcpStream::connect(upstream).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                    });
                    connections.lock().expect("not poisoned").push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        let url = format!("{scheme}://{credentials}127.0.0.1:{port}{path}");
        Self { url, open, connections, accepting }
    }

    /// Closes every connection through the proxy and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// The `(name, stock)` of each product `app` lists for the search `q`, in list order.
async fn listed(app: &TestApp, q: &str) -> Vec<(String, u64)> {
    let page =
        json_body(app.list_products(None, &format!("?q={q}&sort=name")).await, StatusCode::OK)
            .await;
    page["data"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|product| {
            let name = product["name"].as_str().expect("a name").to_owned();
            (name, product["stock"].as_u64().expect("a stock"))
        })
        .collect()
}

/// Lists `q` on `reader` until the page is served from its cache: a silent rename of `id`
/// does not show. Returns the cached page.
async fn wait_until_listed_from_cache(
    reader: &TestApp,
    writer: &TestApp,
    admin: &TestUser,
    id: &str,
    q: &str,
) -> Vec<(String, u64)> {
    let started = Instant::now();
    loop {
        let cached = listed(reader, q).await;
        let name = format!("{q} behind its back {}", orderly_domain::Uuid::now_v7().simple());
        rename(writer, admin, id, &name).await;
        let again = listed(reader, q).await;
        if again == cached {
            return cached;
        }
        assert!(again.iter().any(|(seen, _)| *seen == name), "a miss reads what is stored");
        assert!(
            started.elapsed() < SUBSCRIBE_DEADLINE,
            "the list cache never served within {SUBSCRIBE_DEADLINE:?}; with REDIS_URL set, is \
             Redis at {} up?",
            test_redis_url()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Lists `q` on `reader` until `fresh` holds; fails when that takes longer than `bound`.
async fn wait_for_list(
    reader: &TestApp,
    q: &str,
    bound: Duration,
    what: &str,
    fresh: impl Fn(&[(String, u64)]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let seen = listed(reader, q).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed <= bound,
            "{what}: still stale after {elapsed:?} (bound {bound:?}): {seen:?}"
        );
        if fresh(&seen) {
            return elapsed;
        }
        tokio::time::sleep(POLL).await;
    }
}

// --- the tests ---

async fn the_cache_answers_reads_until_a_write_it_is_told_about(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-USED", 1000, 10).await;
    let id = id_of(&product);
    let writer = silent_writer(&app).await;

    let cached = app.another_instance(|settings| local_cache(settings, LONG_TTL)).await;
    let before = read(&cached, id).await;
    let stored = rename(&writer, &admin, id, "Changed behind its back").await;

    let after = read(&cached, id).await;
    assert_eq!(after.etag, before.etag, "answered from the cache");
    assert_eq!(after.body, before.body, "the cached representation, byte for byte");
    assert_eq!(after.body["name"], json!("Product PC-USED"));
    let conditional = cached.get_product(id, Some(&before.etag)).await;
    assert_eq!(conditional.status(), StatusCode::NOT_MODIFIED, "answered from the cache");
    // The database has moved on: an instance that reads it says so.
    let direct = writer.get_product(id, Some(&before.etag)).await;
    assert_eq!(direct.status(), StatusCode::OK, "the stored version is newer");
    assert_eq!(read(&writer, id).await.etag, stored.etag);

    // With PRODUCT_CACHE_TTL=0 there is no cache: the same change is visible at once.
    let uncached = app.another_instance(|settings| local_cache(settings, 0)).await;
    let first = read(&uncached, id).await;
    let renamed = rename(&writer, &admin, id, "Changed again").await;
    let second = read(&uncached, id).await;
    assert_ne!(second.etag, first.etag);
    assert_eq!(second.etag, renamed.etag);
    assert_eq!(second.body["name"], json!("Changed again"));
}

async fn a_patch_through_one_instance_reaches_another_within_a_second(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-PATCH", 1000, 10).await;
    let id = id_of(&product);
    let writer = silent_writer(&app).await;
    let (a, b) = two_shared_instances(&app).await;

    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    let patched = patch(
        &a,
        &admin,
        id,
        &json!({"name": "Patched through A", "price": {"amount": 2345, "currency": "EUR"}}),
    )
    .await;
    assert_ne!(patched.etag, stale.etag);
    let (seen, took) = wait_for(&b, id, PUBSUB_BOUND, "B after a PATCH through A", |read| {
        read.etag == patched.etag
    })
    .await;
    assert_eq!(seen.body["name"], json!("Patched through A"));
    assert_eq!(seen.body["price"]["amount"], json!(2345));
    assert_eq!(seen.body, patched.body, "B answers what A stored");
    eprintln!("B followed a PATCH through A in {took:?}");

    // Archiving is a product write too.
    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    assert_eq!(stale.body["archived"], json!(false));
    let archived = a.archive_product(&admin.access_token, id).await;
    assert_eq!(archived.status(), StatusCode::NO_CONTENT);
    let (_, took) = wait_for(&b, id, PUBSUB_BOUND, "B after archiving through A", |read| {
        read.body["archived"] == json!(true)
    })
    .await;
    eprintln!("B followed archiving through A in {took:?}");
}

async fn stock_taken_and_given_back_by_orders_reaches_another_instance_within_a_second(
    app: TestApp,
) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-STOCK", 1000, 10).await;
    let id = id_of(&product);
    let customer = app.customer("Ada").await;
    let writer = silent_writer(&app).await;
    let (a, b) = two_shared_instances(&app).await;

    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    assert_eq!(stale.body["stock"], json!(10));
    let order = a.order(&customer, id, 3).await;
    let (_, took) = wait_for(&b, id, PUBSUB_BOUND, "B after an order through A", |read| {
        read.body["stock"] == json!(7)
    })
    .await;
    eprintln!("B followed an order's reservation in {took:?}");

    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    assert_eq!(stale.body["stock"], json!(7));
    let cancelled = a
        .transition(&customer.access_token, id_of(&order), &json!({"action": "cancel"}), None)
        .await;
    let entry = json_body(cancelled, StatusCode::CREATED).await;
    assert_eq!(entry["to"], json!("cancelled"), "{entry}");
    let (_, took) = wait_for(&b, id, PUBSUB_BOUND, "B after a cancellation through A", |read| {
        read.body["stock"] == json!(10)
    })
    .await;
    eprintln!("B followed a cancellation's release in {took:?}");
}

async fn without_redis_an_instance_sees_its_own_writes_at_once(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-LOCAL", 1000, 10).await;
    let id = id_of(&product);
    let customer = app.customer("Ada").await;
    let writer = silent_writer(&app).await;
    let single = app.another_instance(|settings| local_cache(settings, LONG_TTL)).await;

    // Each time the product is cached first (and stale, to show a later fresh read is not luck).
    wait_until_cached(&single, &writer, &admin, id).await;
    let patched = patch(
        &single,
        &admin,
        id,
        &json!({"name": "Patched here", "price": {"amount": 1500, "currency": "EUR"}}),
    )
    .await;
    let seen = read(&single, id).await;
    assert_eq!(seen.etag, patched.etag, "the very next read, no waiting");
    assert_eq!(seen.body, patched.body);

    wait_until_cached(&single, &writer, &admin, id).await;
    let order = single.order(&customer, id, 4).await;
    let seen = read(&single, id).await;
    assert_eq!(seen.body["stock"], json!(6), "the reservation, on the very next read");

    wait_until_cached(&single, &writer, &admin, id).await;
    let cancelled = single
        .transition(&customer.access_token, id_of(&order), &json!({"action": "cancel"}), None)
        .await;
    json_body(cancelled, StatusCode::CREATED).await;
    let seen = read(&single, id).await;
    assert_eq!(seen.body["stock"], json!(10), "the release, on the very next read");
}

async fn a_list_page_is_cached_until_any_product_changes_on_its_instance(app: TestApp) {
    let admin = app.admin().await;
    let first = app.product(&admin, "LISTED-A", 1000, 10).await;
    let id = id_of(&first);
    let customer = app.customer("Ada").await;
    let writer = silent_writer(&app).await;
    let single = app.another_instance(|settings| local_cache(settings, LONG_TTL)).await;

    // Cached: a write it was not told about does not show.
    let cached = wait_until_listed_from_cache(&single, &writer, &admin, id, "listed").await;
    assert_eq!(cached.len(), 1, "{cached:?}");

    // A new product belongs in the page: the very next list shows it (and, read again, the
    // silent rename too).
    single.product(&admin, "LISTED-B", 1000, 5).await;
    let seen = listed(&single, "listed").await;
    assert_eq!(seen.len(), 2, "the new product, on the very next list: {seen:?}");
    assert!(seen.contains(&("Product LISTED-B".to_owned(), 5)), "{seen:?}");
    assert!(!seen.contains(&cached[0]), "read again, not from the cache: {seen:?}");

    // Stock taken by an order, and given back by its cancellation.
    wait_until_listed_from_cache(&single, &writer, &admin, id, "listed").await;
    let order = single.order(&customer, id, 4).await;
    let stocks: Vec<u64> =
        listed(&single, "listed").await.iter().map(|(_, stock)| *stock).collect();
    assert!(stocks.contains(&6), "the reservation, on the very next list: {stocks:?}");
    wait_until_listed_from_cache(&single, &writer, &admin, id, "listed").await;
    let cancelled = single
        .transition(&customer.access_token, id_of(&order), &json!({"action": "cancel"}), None)
        .await;
    json_body(cancelled, StatusCode::CREATED).await;
    let stocks: Vec<u64> =
        listed(&single, "listed").await.iter().map(|(_, stock)| *stock).collect();
    assert!(stocks.contains(&10), "the release, on the very next list: {stocks:?}");

    // Archived products leave the default list.
    wait_until_listed_from_cache(&single, &writer, &admin, id, "listed").await;
    let archived = single.archive_product(&admin.access_token, id).await;
    assert_eq!(archived.status(), StatusCode::NO_CONTENT);
    let seen = listed(&single, "listed").await;
    assert_eq!(seen, vec![("Product LISTED-B".to_owned(), 5)], "archived, on the very next list");
}

async fn a_product_created_through_one_instance_reaches_another_s_lists_within_a_second(
    app: TestApp,
) {
    let admin = app.admin().await;
    let product = app.product(&admin, "SHARED-A", 1000, 10).await;
    let id = id_of(&product);
    let customer = app.customer("Ada").await;
    let writer = silent_writer(&app).await;
    let (a, b) = two_shared_instances(&app).await;

    wait_until_listed_from_cache(&b, &writer, &admin, id, "shared").await;
    a.product(&admin, "SHARED-B", 1000, 5).await;
    let took = wait_for_list(
        &b,
        "shared",
        PUBSUB_BOUND,
        "B's list after a product created through A",
        |seen| seen.contains(&("Product SHARED-B".to_owned(), 5)),
    )
    .await;
    eprintln!("B's list followed a creation through A in {took:?}");

    wait_until_listed_from_cache(&b, &writer, &admin, id, "shared").await;
    a.order(&customer, id, 3).await;
    let took =
        wait_for_list(&b, "shared", PUBSUB_BOUND, "B's list after an order through A", |seen| {
            seen.iter().any(|(_, stock)| *stock == 7)
        })
        .await;
    eprintln!("B's list followed an order's reservation through A in {took:?}");
}

async fn no_reader_keeps_a_stale_product_after_a_burst_of_patches(app: TestApp) {
    const READERS: usize = 4;
    const PATCHES: i64 = 20;
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-BURST", 1000, 10).await;
    let id = id_of(&product).to_owned();
    let writer = silent_writer(&app).await;
    let (a, b) = two_shared_instances(&app).await;
    wait_until_cached(&b, &writer, &admin, &id).await;

    /// One read: when it was sent and answered, and the version it saw.
    struct Observation {
        sent: Instant,
        answered: Instant,
        status: StatusCode,
        etag: Option<String>,
    }
    // Set once the last PATCH has returned; readers go on for two bounds more.
    let last_write: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let client = b.client.clone();
            let url = b.url(&format!("/api/v1/products/{id}"));
            let last_write = Arc::clone(&last_write);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    if last_write.get().is_some_and(|at| at.elapsed() > 2 * PUBSUB_BOUND) {
                        return seen;
                    }
                    let sent = Instant::now();
                    let response = client.get(&url).send().await.expect("the request is sent");
                    let etag = response
                        .headers()
                        .get(header::ETAG)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    seen.push(Observation {
                        sent,
                        answered: Instant::now(),
                        status: response.status(),
                        etag,
                    });
                }
            })
        })
        .collect();

    let mut last = None;
    for n in 1..=PATCHES {
        let body = json!({"price": {"amount": 2000 + n, "currency": "EUR"}});
        last = Some(patch(&a, &admin, &id, &body).await);
    }
    let done = Instant::now();
    assert!(last_write.set(done).is_ok(), "set once");
    let last = last.expect("at least one PATCH");
    assert_eq!(last.body["price"]["amount"], json!(2000 + PATCHES));
    let newest = version(&last.etag);

    let mut slowest = Duration::ZERO;
    for (reader, task) in readers.into_iter().enumerate() {
        let seen = task.await.expect("the reader finishes");
        assert!(
            seen.iter().all(|read| read.status == StatusCode::OK && read.etag.is_some()),
            "reader {reader}: every read answered 200 with an ETag"
        );
        let version_of = |read: &Observation| version(read.etag.as_deref().unwrap_or_default());
        // Within the bound after the last write, the reader has the newest version...
        let first_fresh = seen
            .iter()
            .find(|read| read.answered >= done && version_of(read) == newest)
            .map(|read| read.answered.duration_since(done))
            .unwrap_or_else(|| panic!("reader {reader} never saw {}", last.etag));
        assert!(
            first_fresh <= PUBSUB_BOUND,
            "reader {reader} first saw the newest version {first_fresh:?} after the last PATCH"
        );
        slowest = slowest.max(first_fresh);
        // ... and from then on (a read sent after the bound), never an older one again.
        let later: Vec<u64> =
            seen.iter().filter(|read| read.sent >= done + PUBSUB_BOUND).map(version_of).collect();
        assert!(!later.is_empty(), "reader {reader} went on reading past the bound");
        assert!(
            later.iter().all(|&version| version == newest),
            "reader {reader} saw an older version than v{newest} more than {PUBSUB_BOUND:?} \
             after the last PATCH: {later:?}"
        );
        // Between the last PATCH and the bound, a read may still meet an entry whose message
        // is on its way, even after another read missed and saw the newest version: that is
        // within the stated bound, so it is reported, not failed.
        let first_fresh_at = done + first_fresh;
        let regressions: Vec<(Duration, u64)> = seen
            .iter()
            .filter(|read| read.sent >= first_fresh_at && version_of(read) != newest)
            .map(|read| (read.sent.duration_since(done), version_of(read)))
            .collect();
        if !regressions.is_empty() {
            eprintln!("reader {reader} went back from v{newest} within the bound: {regressions:?}");
        }
    }
    eprintln!("every reader had the last of {PATCHES} PATCHes within {slowest:?}");
}

async fn a_lost_subscription_bypasses_the_cache_until_a_new_one_starts_it_empty(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-LOST", 1000, 10).await;
    let id = id_of(&product);
    let writer = silent_writer(&app).await;
    let proxy = RedisProxy::start().await;
    let prefix = redis_prefix();
    let a = app.another_instance(|settings| shared_cache(settings, &prefix, LONG_TTL)).await;
    require_redis(&a).await;
    let b = app
        .another_instance(|settings| {
            shared_cache(settings, &prefix, LONG_TTL);
            settings.redis.redis_url = Some(proxy.url.clone());
        })
        .await;

    // B serves from its cache, then loses Redis: it stops serving the entry it holds.
    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    proxy.cut();
    let stored = read(&writer, id).await;
    assert_ne!(stored.etag, stale.etag);
    let (_, took) = wait_for(&b, id, PUBSUB_BOUND, "B once its subscription is lost", |read| {
        read.etag == stored.etag
    })
    .await;
    eprintln!("B stopped serving its cache {took:?} after losing Redis");

    // While B cannot hear invalidations, every change is visible on B at once: silent ones, and
    // one whose message B misses.
    for _ in 0..3 {
        let renamed =
            rename(&writer, &admin, id, &format!("While cut {}", orderly_domain::Uuid::now_v7()))
                .await;
        assert_eq!(read(&b, id).await.etag, renamed.etag, "no cache without a subscription");
    }
    let missed =
        patch(&a, &admin, id, &json!({"price": {"amount": 1111, "currency": "EUR"}})).await;
    let seen = read(&b, id).await;
    assert_eq!(seen.etag, missed.etag, "the missed message does not matter: B reads the database");

    // Redis is back: B subscribes again, starting with an empty cache, and hears A again.
    proxy.restore();
    let recached = wait_until_cached(&b, &writer, &admin, id).await;
    assert!(
        version(&recached.etag) >= version(&missed.etag),
        "nothing from before the outage is served: {} < {}",
        recached.etag,
        missed.etag
    );
    let patched = patch(&a, &admin, id, &json!({"name": "After the outage"})).await;
    wait_for(&b, id, PUBSUB_BOUND, "B after a PATCH through A, once resubscribed", |read| {
        read.etag == patched.etag
    })
    .await;
}

async fn an_unreachable_redis_bypasses_the_cache_and_fails_no_request(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-DOWN", 1000, 10).await;
    let id = id_of(&product);
    let customer = app.customer("Ada").await;
    let writer = silent_writer(&app).await;
    let cut_off = app
        .another_instance(|settings| {
            settings.redis.redis_url = Some("redis://127.0.0.1:1".to_owned());
            settings.redis.redis_key_prefix = redis_prefix();
            settings.catalogue.product_cache_ttl = LONG_TTL;
        })
        .await;

    // However long it runs, the instance never serves from its cache.
    for round in 0..5 {
        let before = read(&cut_off, id).await;
        let stored = rename(&writer, &admin, id, &format!("Unseen by Redis {round}")).await;
        let after = read(&cut_off, id).await;
        assert_ne!(after.etag, before.etag, "round {round}: no cache without the subscription");
        assert_eq!(after.etag, stored.etag);
        assert_eq!(after.body, stored.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Writes still succeed, whatever becomes of their invalidation message.
    let started = Instant::now();
    let patched = patch(&cut_off, &admin, id, &json!({"stock": 9})).await;
    assert_eq!(read(&cut_off, id).await.etag, patched.etag);
    let order = cut_off.order(&customer, id, 2).await;
    assert_eq!(read(&cut_off, id).await.body["stock"], json!(7));
    let cancelled = cut_off
        .transition(&customer.access_token, id_of(&order), &json!({"action": "cancel"}), None)
        .await;
    json_body(cancelled, StatusCode::CREATED).await;
    assert_eq!(read(&cut_off, id).await.body["stock"], json!(9));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no write waits long on the dead Redis: {:?}",
        started.elapsed()
    );
}

async fn without_redis_another_instance_follows_within_the_ttl(app: TestApp) {
    const TTL: u64 = 1;
    // The TTL, plus room for the polling and a loaded machine.
    let bound = Duration::from_secs(TTL) + Duration::from_millis(500);
    let admin = app.admin().await;
    let product = app.product(&admin, "PC-TTL", 1000, 10).await;
    let id = id_of(&product);
    let writer = silent_writer(&app).await;
    let a = app.another_instance(|settings| local_cache(settings, TTL)).await;
    let b = app.another_instance(|settings| local_cache(settings, TTL)).await;

    let stale = wait_until_cached(&b, &writer, &admin, id).await;
    let patched = patch(&a, &admin, id, &json!({"name": "Patched through A, no Redis"})).await;
    assert_ne!(patched.etag, stale.etag);
    let (seen, took) = wait_for(&b, id, bound, "B after a PATCH through A without Redis", |read| {
        read.etag == patched.etag
    })
    .await;
    assert_eq!(seen.body, patched.body);
    eprintln!("without Redis, B followed A in {took:?} (TTL {TTL} s)");
}

api_tests!(
    the_cache_answers_reads_until_a_write_it_is_told_about,
    a_patch_through_one_instance_reaches_another_within_a_second,
    stock_taken_and_given_back_by_orders_reaches_another_instance_within_a_second,
    without_redis_an_instance_sees_its_own_writes_at_once,
    a_list_page_is_cached_until_any_product_changes_on_its_instance,
    a_product_created_through_one_instance_reaches_another_s_lists_within_a_second,
    no_reader_keeps_a_stale_product_after_a_burst_of_patches,
    an_unreachable_redis_bypasses_the_cache_and_fails_no_request,
    a_lost_subscription_bypasses_the_cache_until_a_new_one_starts_it_empty,
    without_redis_another_instance_follows_within_the_ttl,
);
