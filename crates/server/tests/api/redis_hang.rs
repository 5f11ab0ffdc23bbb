//! A Redis that accepts connections but never answers is a Redis that is down (ADR 0029): two
//! instances on one database share invalidations through a TCP proxy in front of the test Redis
//! that can be switched to a black hole (connections accepted, bytes held, nothing answered).
//! Once it hangs, a write through A finishes within a bound (asserted: 1 s) and a read through
//! B right after it is fresh (the cache is bypassed, so never stale beyond one request), the
//! serving gauge of the product cache reads 0 within a bound (asserted: 2 s), and `/metrics`
//! answers without waiting on Redis; once the proxy heals, the cache serves again. Redis at
//! `TEST_REDIS_URL` is required: the test fails, never skips, when it is unreachable.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use orderly_server::settings::Settings;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    task::AbortHandle,
};

use crate::helpers::{TestApp, TestUser, api_tests, json_body, test_redis_url};

/// How often a test looks again.
const POLL: Duration = Duration::from_millis(20);
/// The most a write may take while Redis hangs (generous: it waits 300 ms at most).
const WRITE_BOUND: Duration = Duration::from_secs(1);
/// The most the serving gauge may take to read 0 once Redis hangs (it takes about 400 ms).
const GAUGE_BOUND: Duration = Duration::from_secs(2);
/// How long an instance may take to (re)subscribe before Redis is taken for down.
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(5);
/// The bound on a stale read on another instance while Redis answers (as in `product_cache`).
const PUBSUB_BOUND: Duration = Duration::from_secs(1);
/// A cache TTL that no test outlives: only an invalidation can explain a fresh read.
const LONG_TTL: u64 = 60;

/// A TCP proxy in front of the test Redis that a test can switch to a black hole: every
/// connection, old or new, stays open and accepted, but nothing goes through either way until
/// it heals (then what was held goes through).
struct HangingProxy {
    url: String,
    hung: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl HangingProxy {
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
        let hung = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepting = tokio::spawn({
            let (hung, connections) = (Arc::clone(&hung), Arc::clone(&connections));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                    let (client_in, client_out) = client.into_split();
                    let (server_in, server_out) = server.into_split();
                    let mut connections = connections.lock().expect("not poisoned");
                    for (from, to) in [(client_in, server_out), (server_in, client_out)] {
                        let task = tokio::spawn(pump(from, to, Arc::clone(&hung)));
                        connections.push(task.abort_handle());
                    }
                }
            }
        })
        .abort_handle();
        let url = format!("{scheme}://{credentials}127.0.0.1:{port}{path}");
        Self { url, hung, connections, accepting }
    }

    /// Stops every byte, both ways, on every connection; new connections are still accepted.
    fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    /// Lets the bytes through again.
    fn heal(&self) {
        self.hung.store(false, Ordering::SeqCst);
    }
}

impl Drop for HangingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }
}

/// Copies `from` to `to`, holding what it read while the proxy hangs.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, hung: Arc<AtomicBool>) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while hung.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// An instance whose cache outlives the test and hears invalidations on `prefix`'s channel
/// through the Redis at `url`.
fn shared_cache(settings: &mut Settings, url: &str, prefix: &str) {
    settings.redis.redis_url = Some(url.to_owned());
    settings.redis.redis_key_prefix = prefix.to_owned();
    settings.catalogue.product_cache_ttl = LONG_TTL;
}

/// A product as one `GET` answered it.
#[derive(Debug, Clone)]
struct Read {
    etag: String,
    body: Value,
}

fn etag_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag")
}

async fn read(app: &TestApp, id: &str) -> Read {
    let response = app.get_product(id, None).await;
    let etag = etag_of(&response);
    Read { etag, body: json_body(response, StatusCode::OK).await }
}

async fn patch(app: &TestApp, admin: &TestUser, id: &str, body: &Value) -> Read {
    let response = app.patch_product(&admin.access_token, id, body, None).await;
    let etag = etag_of(&response);
    Read { etag, body: json_body(response, StatusCode::OK).await }
}

/// A PATCH through `app` that must finish within [`WRITE_BOUND`]; returns it and its duration.
async fn bounded_patch(
    app: &TestApp,
    admin: &TestUser,
    id: &str,
    body: &Value,
) -> (Read, Duration) {
    let started = Instant::now();
    let written = tokio::time::timeout(WRITE_BOUND, patch(app, admin, id, body))
        .await
        .unwrap_or_else(|_| panic!("a PATCH waited on a hanging Redis beyond {WRITE_BOUND:?}"));
    (written, started.elapsed())
}

/// Waits until `reader` answers the product from its cache (a silent `writer` renames it and
/// `reader` still answers the old version); fails beyond [`SUBSCRIBE_DEADLINE`].
async fn wait_until_cached(reader: &TestApp, writer: &TestApp, admin: &TestUser, id: &str) -> Read {
    let started = Instant::now();
    loop {
        let cached = read(reader, id).await;
        let name = format!("Behind its back {}", orderly_domain::Uuid::now_v7().simple());
        let stored = patch(writer, admin, id, &json!({"name": name})).await;
        assert_ne!(stored.etag, cached.etag, "the silent write moved the version");
        if read(reader, id).await.etag == cached.etag {
            return cached;
        }
        assert!(
            started.elapsed() < SUBSCRIBE_DEADLINE,
            "the product cache never served within {SUBSCRIBE_DEADLINE:?}; is Redis at {} up?",
            test_redis_url()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The value of the sample `name` (with `label`, when given) in `app`'s `/metrics`, which must
/// answer within [`WRITE_BOUND`] (it no longer asks Redis per scrape).
async fn metric(app: &TestApp, name: &str, label: Option<&str>) -> Option<f64> {
    let scrape = tokio::time::timeout(WRITE_BOUND, async {
        let response = app.request(Method::GET, "/metrics", None).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("a body")
    })
    .await
    .unwrap_or_else(|_| panic!("/metrics took more than {WRITE_BOUND:?}"));
    scrape.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let matches = match label {
            Some(label) => series.starts_with(&format!("{name}{{")) && series.contains(label),
            None => series == name,
        };
        matches.then(|| value.parse().ok()).flatten()
    })
}

/// Polls `app`'s sample until it reads `expected`; fails beyond `bound`. Returns how long it took.
async fn wait_for_metric(
    app: &TestApp,
    name: &str,
    label: Option<&str>,
    expected: f64,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let value = metric(app, name, label).await;
        if value == Some(expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() <= bound,
            "{name} still {value:?} after {:?}, not {expected} (bound {bound:?})",
            started.elapsed()
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn a_hanging_redis_bypasses_the_caches_and_holds_up_no_write(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "RH-HANG", 1000, 10).await;
    let id = product["id"].as_str().expect("an id").to_owned();
    let writer = app
        .another_instance(|settings| {
            settings.redis.redis_url = None;
            settings.catalogue.product_cache_ttl = 0;
        })
        .await;
    let proxy = HangingProxy::start().await;
    let prefix = format!("orderly-test-{}", orderly_domain::Uuid::now_v7().simple());
    let a = app.another_instance(|settings| shared_cache(settings, &proxy.url, &prefix)).await;
    let b = app.another_instance(|settings| shared_cache(settings, &proxy.url, &prefix)).await;
    let ready = json_body(a.ready().await, StatusCode::OK).await;
    assert_eq!(
        ready["checks"]["redis"],
        json!("ok"),
        "Redis at {} is required by this test: {ready}",
        test_redis_url()
    );

    // B serves from its cache, and hears A while Redis answers.
    wait_until_cached(&b, &writer, &admin, &id).await;
    assert_eq!(metric(&b, "orderly_product_cache_serving", None).await, Some(1.0));

    // Redis hangs. Every write through A finishes within the bound, and B, read right after
    // each, answers what A wrote.
    proxy.hang();
    let hung_at = Instant::now();
    let mut slowest = Duration::ZERO;
    for amount in [1001, 1002, 1003, 1004, 1005] {
        let body = json!({"price": {"amount": amount, "currency": "EUR"}});
        let (written, took) = bounded_patch(&a, &admin, &id, &body).await;
        slowest = slowest.max(took);
        let seen = read(&b, &id).await;
        assert_eq!(
            seen.etag,
            written.etag,
            "B read a stale product {:?} into the hang",
            hung_at.elapsed()
        );
        assert_eq!(seen.body["price"]["amount"], json!(amount));
    }
    eprintln!("while Redis hangs, the slowest of 5 PATCHes through A took {slowest:?}");

    let took = wait_for_metric(&b, "orderly_product_cache_serving", None, 0.0, GAUGE_BOUND).await;
    eprintln!("B's serving gauge read 0 {:?} after the hang began", hung_at.elapsed());
    let _ = took;
    wait_for_metric(&a, "orderly_product_cache_serving", None, 0.0, GAUGE_BOUND).await;
    wait_for_metric(&b, "orderly_dependency_up", Some("\"redis\""), 0.0, GAUGE_BOUND).await;
    let ready = json_body(b.ready().await, StatusCode::OK).await;
    assert_ne!(ready["checks"]["redis"], json!("ok"), "readiness reports the hang: {ready}");

    // Silent writes are seen through B at once: nothing is served from the cache.
    for round in 0..3 {
        let body = json!({"name": format!("While hung {round}")});
        let stored = patch(&writer, &admin, &id, &body).await;
        assert_eq!(read(&b, &id).await.etag, stored.etag, "no cache while Redis hangs");
    }

    // Redis answers again: B serves from its cache again and hears A again.
    proxy.heal();
    let healed_at = Instant::now();
    wait_until_cached(&b, &writer, &admin, &id).await;
    eprintln!("B served from its cache again {:?} after the heal", healed_at.elapsed());
    wait_for_metric(&b, "orderly_product_cache_serving", None, 1.0, SUBSCRIBE_DEADLINE).await;
    let patched = patch(&a, &admin, &id, &json!({"name": "After the hang"})).await;
    let started = Instant::now();
    loop {
        if read(&b, &id).await.etag == patched.etag {
            break;
        }
        assert!(started.elapsed() <= PUBSUB_BOUND, "B did not hear A after the heal");
        tokio::time::sleep(POLL).await;
    }
}

api_tests!(a_hanging_redis_bypasses_the_caches_and_holds_up_no_write);
