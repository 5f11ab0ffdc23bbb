//! Fault injection (ADR 0021): a TCP proxy between an instance and its PostgreSQL database, cut
//! (open connections dropped, new ones refused) and restored while clients place orders. While
//! cut, every answer is a fast 503 `DATABASE_UNAVAILABLE` and `/ready` says 503 within 1 s;
//! after, the same process serves again; and no order is lost, duplicated or half-written.
//!
//! PostgreSQL only (an SQLite file has no connection to cut). Like the other PostgreSQL tests it
//! fails, never skips, when `TEST_DATABASE_URL` is set and the server cannot be reached.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use orderly_infrastructure::{Database, DatabaseSettings, testing::TestDatabase};
use orderly_server::startup::Application;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use crate::helpers::{TestApp, TestUser, http_client, json_body, spawn_app_with};

/// Clients placing orders at once.
const CLIENTS: usize = 20;
/// Load before the cut, the outage itself, and load after the recovery.
const WARM_UP: Duration = Duration::from_millis(1500);
const OUTAGE: Duration = Duration::from_secs(4);
const AFTERWARDS: Duration = Duration::from_secs(1);
/// The bound on a 503 while the database is cut off (generous: the machine is shared); the
/// gate's own target is about 100 ms.
const FAST: Duration = Duration::from_secs(1);
/// The bound on `/ready`, whatever the database does.
const READY_BOUND: Duration = Duration::from_secs(1);
/// The longest the service may take to place orders again once the database is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(8);
const STOCK: u32 = 100_000;

/// A TCP proxy to `upstream` on a port of its own, which the test cuts and restores.
struct Proxy {
    port: u16,
    upstream: String,
    cut: watch::Sender<bool>,
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (cut, _) = watch::channel(false);
        let proxy = Arc::new(Self { port, upstream, cut, accepting: Mutex::new(None) });
        proxy.accept(listener);
        proxy
    }

    fn accept(self: &Arc<Self>, listener: TcpListener) {
        let proxy = self.clone();
        let task = tokio::spawn(async move {
            let mut cut = proxy.cut.subscribe();
            loop {
                let inbound = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => inbound,
                        Err(_) => continue,
                    },
                    // Dropping the listener refuses new connections.
                    _ = cut.wait_for(|cut| *cut) => return,
                };
                tokio::spawn(proxy.clone().forward(inbound));
            }
        });
        *self.accepting.lock().expect("the proxy's lock") = Some(task);
    }

    async fn forward(self: Arc<Self>, mut inbound: TcpStream) {
        let mut cut = self.cut.subscribe();
        if *cut.borrow_and_update() {
            return;
        }
        let Ok(mut outbound) = TcpStream::connect(&self.upstream).await else { return };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            // Dropping both ends cuts the connection mid-conversation.
            _ = cut.wait_for(|cut| *cut) => {}
        }
    }

    /// Drops every open connection and refuses new ones until [`Proxy::restore`].
    async fn cut(&self) {
        self.cut.send_replace(true);
        let accepting = self.accepting.lock().expect("the proxy's lock").take();
        if let Some(accepting) = accepting {
            accepting.await.expect("the accept loop stops");
        }
    }

    /// Accepts connections again, on the same port.
    async fn restore(self: &Arc<Self>) {
        self.cut.send_replace(false);
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("rebinding the proxy's port: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    panic!("the proxy's port {} cannot be bound again: {error}", self.port)
                }
            }
        };
        self.accept(listener);
    }
}

/// `host:port` of a PostgreSQL URL, and the URL with that replaced by the proxy's.
fn through_proxy(url: &str, proxy_port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (user, _) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
    let user = user.map(|user| format!("{user}@")).unwrap_or_default();
    format!("{scheme}://{user}127.0.0.1:{proxy_port}{path}")
}

fn upstream_of(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

/// Starts another instance of `app` on `database_url` (the proxy's); returns its base URL.
async fn instance_through(app: &TestApp, database_url: String) -> String {
    // The app's own database settings (a pooler, when the run has one), on another URL.
    let adapter = DatabaseSettings { url: database_url.clone(), ..app.settings.database.adapter() };
    let database = Database::connect(&adapter).await.expect("a lazy pool");
    let mut settings = app.settings.clone();
    settings.database.database_url = database_url;
    let application =
        Application::build_with(&settings, database).await.expect("the application builds");
    let base = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    base
}

/// One `POST /api/v1/orders` as a client saw it.
#[derive(Debug)]
struct Outcome {
    client: usize,
    lines: Vec<(String, u32)>,
    started: Instant,
    ended: Instant,
    status: Option<StatusCode>,
    /// `code` of a problem, or the order's `id` of a 201.
    code: Option<String>,
    id: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
}

impl Outcome {
    fn latency(&self) -> Duration {
        self.ended - self.started
    }
}

async fn place(
    client: &reqwest::Client,
    base: &str,
    customer: &TestUser,
    index: usize,
    lines: Vec<(String, u32)>,
) -> Outcome {
    let items: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&customer.access_token)
        .json(&json!({"items": items}))
        .send()
        .await;
    let mut outcome = Outcome {
        client: index,
        lines,
        started,
        ended: started,
        status: None,
        code: None,
        id: None,
        retry_after: None,
        content_type: None,
    };
    if let Ok(response) = response {
        let header =
            |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        outcome.retry_after = header(header::RETRY_AFTER);
        outcome.content_type = header(header::CONTENT_TYPE);
        outcome.status = Some(response.status());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        outcome.code = body["code"].as_str().map(str::to_owned);
        outcome.id = body["id"].as_str().map(str::to_owned);
    }
    outcome.ended = Instant::now();
    outcome
}

/// Every order, as the admin lists them (all pages).
async fn all_orders(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = json_body(
            app.list_orders(&admin.access_token, &format!("?limit=100&cursor={cursor}")).await,
            StatusCode::OK,
        )
        .await;
        orders.extend(page["data"].as_array().expect("a page").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return orders,
        }
    }
}

fn lines_of(order: &Value) -> Vec<(String, u32)> {
    let mut lines: Vec<(String, u32)> = order["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let quantity = item["quantity"].as_u64().expect("a quantity");
            (
                item["product_id"].as_str().expect("a product").to_owned(),
                u32::try_from(quantity).expect("a small quantity"),
            )
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_under_load_fails_fast_recovers_without_a_restart_and_loses_no_order() {
    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("TEST_DATABASE_URL is not set: the outage test needs PostgreSQL");
        return;
    };
    let proxy = Proxy::start(upstream_of(db.url())).await;
    let proxied_url = through_proxy(db.url(), proxy.port);
    // Fixtures and the final count go straight to the database; the instance under test goes
    // through the proxy.
    let app = spawn_app_with(db, |_| {}).await;
    let admin = app.admin().await;
    let mut products = Vec::new();
    for sku in ["OUT-A", "OUT-B", "OUT-C"] {
        let product = app.product(&admin, sku, 250, STOCK).await;
        products.push(product["id"].as_str().expect("an id").to_owned());
    }
    // One at a time: password hashing is bounded, and other tests hash at the same time.
    let mut customers: Vec<TestUser> = Vec::new();
    for index in 0..CLIENTS {
        customers.push(app.customer(&format!("Client{index}")).await);
    }

    let base = instance_through(&app, proxied_url).await;
    let client = http_client()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("a client");

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<JoinHandle<Vec<Outcome>>> = customers
        .iter()
        .cloned()
        .enumerate()
        .map(|(index, customer)| {
            let (client, base, stop, products) =
                (client.clone(), base.clone(), stop.clone(), products.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = index;
                while !stop.load(Ordering::Relaxed) {
                    // One or two lines, one to three units each, varying per request.
                    let mut lines =
                        vec![(products[n % 3].clone(), u32::try_from(n % 3 + 1).expect("small"))];
                    if n % 2 == 0 {
                        lines.push((products[(n + 1) % 3].clone(), 1));
                    }
                    lines.sort();
                    let outcome = place(&client, &base, &customer, index, lines).await;
                    if outcome.status != Some(StatusCode::CREATED) {
                        // A client backs off a little after a failure, as one that reads
                        // Retry-After would (shorter, to keep the test dense).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    outcomes.push(outcome);
                    n += CLIENTS;
                }
                outcomes
            })
        })
        .collect();

    // `/ready` polled throughout.
    let readiness = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status =
                    client.get(format!("{base}/ready")).send().await.ok().map(|r| r.status());
                seen.push((started, Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };

    tokio::time::sleep(WARM_UP).await;
    proxy.cut().await;
    // Requests started before this instant may have reached the database; later ones cannot.
    let cut_at = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let restored_at = Instant::now();
    proxy.restore().await;
    // Wait for the first order placed after the restore, then a little more load.
    let recovery_deadline = restored_at + RECOVERY_BOUND;
    while Instant::now() < recovery_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ready = client.get(format!("{base}/ready")).send().await.ok().map(|r| r.status());
        if ready == Some(StatusCode::OK) {
            break;
        }
    }
    tokio::time::sleep(AFTERWARDS).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for client in load {
        outcomes.extend(client.await.expect("a client task"));
    }
    let readiness = readiness.await.expect("the readiness poller");

    // --- While cut: fast, well-formed 503s. ---
    let before: Vec<&Outcome> = outcomes.iter().filter(|o| o.ended < cut_at).collect();
    assert!(
        before.iter().any(|o| o.status == Some(StatusCode::CREATED)),
        "orders were placed before the cut"
    );
    let during: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.started >= cut_at && o.ended <= restored_at).collect();
    assert!(during.len() >= CLIENTS, "load went on during the outage: {} answers", during.len());
    for outcome in &during {
        assert_eq!(outcome.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{outcome:?}");
        assert_eq!(outcome.code.as_deref(), Some("DATABASE_UNAVAILABLE"), "{outcome:?}");
        assert_eq!(outcome.content_type.as_deref(), Some("application/problem+json"));
        assert!(
            outcome.retry_after.as_deref().is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s > 0)),
            "Retry-After in seconds: {outcome:?}"
        );
        assert!(outcome.latency() < FAST, "a 503 while cut took {:?}", outcome.latency());
    }
    let max_503 = during.iter().map(|o| o.latency()).max().unwrap_or_default();
    let mut latencies: Vec<Duration> = during.iter().map(|o| o.latency()).collect();
    latencies.sort();
    let p99_503 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
    // Requests in flight when the connections were cut: any answer, within the acquire timeout.
    let straddling: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.started < cut_at && o.ended >= cut_at).collect();
    for outcome in &straddling {
        assert!(
            matches!(outcome.status, Some(StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE)),
            "{outcome:?}"
        );
        assert!(outcome.latency() < Duration::from_secs(5), "{outcome:?}");
    }
    let max_straddling = straddling.iter().map(|o| o.latency()).max().unwrap_or_default();
    let ready_during: Vec<_> =
        readiness.iter().filter(|(s, e, _)| *s >= cut_at && *e <= restored_at).collect();
    assert!(!ready_during.is_empty(), "/ready was asked during the outage");
    for (started, ended, status) in &ready_during {
        assert_eq!(*status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(*ended - *started < READY_BOUND, "/ready took {:?}", *ended - *started);
    }
    let max_ready = ready_during.iter().map(|(s, e, _)| *e - *s).max().unwrap_or_default();

    // --- After: the same process serves again. ---
    let recovered = outcomes
        .iter()
        .filter(|o| o.started >= restored_at && o.status == Some(StatusCode::CREATED))
        .map(|o| o.ended - restored_at)
        .min()
        .expect("orders are placed again after the restore, without a restart");
    assert!(recovered < RECOVERY_BOUND, "recovery took {recovered:?}");
    let ready_again = readiness
        .iter()
        .filter(|(s, _, status)| *s >= restored_at && *status == Some(StatusCode::OK))
        .map(|(_, e, _)| *e - restored_at)
        .min();
    for outcome in &outcomes {
        assert!(
            matches!(outcome.status, Some(StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE)),
            "only 201 and 503 are expected: {outcome:?}"
        );
        if outcome.status == Some(StatusCode::SERVICE_UNAVAILABLE) {
            assert_eq!(outcome.code.as_deref(), Some("DATABASE_UNAVAILABLE"), "{outcome:?}");
        }
    }

    // --- Integrity: 0 lost, 0 duplicated, 0 half-written. ---
    let stored = all_orders(&app, &admin).await;
    let by_id: HashMap<&str, &Value> =
        stored.iter().map(|order| (order["id"].as_str().expect("an id"), order)).collect();
    assert_eq!(by_id.len(), stored.len(), "every order is listed once");
    let seen: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.status == Some(StatusCode::CREATED)).collect();
    let seen_ids: HashSet<&str> =
        seen.iter().map(|o| o.id.as_deref().expect("a 201 has an id")).collect();
    assert_eq!(seen_ids.len(), seen.len(), "every 201 names a different order");
    for outcome in &seen {
        let id = outcome.id.as_deref().expect("an id");
        let order = by_id.get(id).unwrap_or_else(|| panic!("order {id} was answered 201 and lost"));
        assert_eq!(lines_of(order), outcome.lines, "order {id} holds what was asked");
    }
    // An order the clients did not see created is one whose answer the cut lost: at most the
    // one request per client in flight at the cut that did not get a 201.
    let customer_ids: Vec<&str> = customers.iter().map(|c| c.id.as_str()).collect();
    let mut unseen = 0;
    for order in &stored {
        let id = order["id"].as_str().expect("an id");
        if seen_ids.contains(id) {
            continue;
        }
        unseen += 1;
        let owner = order["user_id"].as_str().expect("an owner");
        let client = customer_ids
            .iter()
            .position(|c| *c == owner)
            .unwrap_or_else(|| panic!("order {id} belongs to no client: {order}"));
        let lost_answer = straddling.iter().any(|o| {
            o.client == client
                && o.status != Some(StatusCode::CREATED)
                && o.lines == lines_of(order)
        });
        assert!(
            lost_answer,
            "order {id} was written though no request could have made it: {order}"
        );
    }
    let in_doubt = straddling.iter().filter(|o| o.status != Some(StatusCode::CREATED)).count();
    assert!(unseen <= in_doubt);
    for order in &stored {
        let id = order["id"].as_str().expect("an id");
        assert!(!lines_of(order).is_empty(), "order {id} has its items");
        let history = json_body(app.history(&admin.access_token, id).await, StatusCode::OK).await;
        let entries = history["data"].as_array().expect("history entries");
        assert_eq!(entries.len(), 1, "order {id} has its one history entry: {history}");
        assert_eq!(order["status"], "pending_payment", "{order}");
    }
    for product in &products {
        let now = json_body(app.get_product(product, None).await, StatusCode::OK).await;
        let stock = u32::try_from(now["stock"].as_u64().expect("a stock")).expect("small");
        let ordered: u32 = stored
            .iter()
            .flat_map(lines_of)
            .filter(|(id, _)| id == product)
            .map(|(_, quantity)| quantity)
            .sum();
        assert_eq!(STOCK - stock, ordered, "stock of {product} is conserved");
    }

    eprintln!(
        "outage: {} requests ({} during the cut); 503 while cut: max {max_503:?}, p99 {p99_503:?}; \
         in flight at the cut: {} (max {max_straddling:?}); /ready while cut: {} (max {max_ready:?}); \
         first order {recovered:?} after the restore, /ready 200 after {ready_again:?}; \
         orders: {} stored, {} answered 201, {unseen} with a lost answer (of {in_doubt} in doubt); \
         0 lost, 0 duplicated, 0 half-written",
        outcomes.len(),
        during.len(),
        straddling.len(),
        ready_during.len(),
        stored.len(),
        seen.len(),
    );
}

/// With no connection in the pool, sqlx retries a refused connection until the acquire timeout
/// (3 s): the gate checks the server itself after half a second and answers then. (A pooled
/// connection that died fails at once and is the fast case: the load test above has it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_before_the_first_request_answers_503_within_a_second() {
    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("TEST_DATABASE_URL is not set: the outage test needs PostgreSQL");
        return;
    };
    let proxy = Proxy::start(upstream_of(db.url())).await;
    let proxied_url = through_proxy(db.url(), proxy.port);
    let app = spawn_app_with(db, |_| {}).await;
    // Cut before the instance starts, so that its pool holds no connection at all.
    proxy.cut().await;
    let base = instance_through(&app, proxied_url).await;
    let client = http_client().build().expect("a client");

    for attempt in ["first", "second"] {
        let started = Instant::now();
        let response =
            client.get(format!("{base}/api/v1/products")).send().await.expect("an answer");
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{attempt} request");
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert!(took < FAST, "the {attempt} request took {took:?}");
        eprintln!("{attempt} request while the database is gone: 503 in {took:?}");
    }
    let started = Instant::now();
    let ready = client.get(format!("{base}/ready")).send().await.expect("an answer");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < READY_BOUND);

    proxy.restore().await;
    let restored = Instant::now();
    loop {
        let response =
            client.get(format!("{base}/api/v1/products")).send().await.expect("an answer");
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(restored.elapsed() < RECOVERY_BOUND, "no recovery: {}", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("served again {:?} after the restore", restored.elapsed());
}
