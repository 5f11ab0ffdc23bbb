//! The `orderly` binary as an operator runs it: `seed`, `db create`, what a database that cannot
//! be used prints, and the start-up log. Each test runs the built binary in a directory of its
//! own with nothing but the variables it sets (no `.env`, no `orderly.toml`, no `PG*`).
//!
//! PostgreSQL tests need `TEST_DATABASE_URL` and skip without it (as the HTTP tests do); the
//! databases they create get fresh names and are dropped at the end.

// Test helpers are `pub` for the test binary only.
#![allow(unreachable_pub)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use orderly_domain::Uuid;
use orderly_infrastructure::{
    Database, DatabaseSettings,
    persistence::Location,
    testing::{ScratchPostgres, TEST_DATABASE_URL, http_client},
};
use orderly_server::{seed::DEMO_PRODUCTS, settings::Settings, startup::Application};
use reqwest::StatusCode;
use serde_json::Value;

const JWT_SECRET: &str = "a-production-secret-of-at-least-32-bytes-0123456789";
const PASSWORD: &str = "hunter2-not-in-any-output";

/// A working directory of its own, removed at the end.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("orderly-cli-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("a working directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn sqlite_url(&self, file: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join(file).display())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command(dir: &Workdir, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderly"));
    command.args(args).current_dir(dir.path()).env_clear().envs(env.iter().copied());
    command
}

/// Runs `orderly args...` to completion, with `stdin` on its standard input.
fn run(dir: &Workdir, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(dir, env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin written");
    }
    drop(input);
    child.wait_with_output().expect("the binary ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
fn succeed(dir: &Workdir, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> String {
    let output = run(dir, env, args, stdin);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "orderly {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs a command that must fail; returns its stderr (and checks it does not leak `PASSWORD`).
fn fail(dir: &Workdir, env: &[(&str, &str)], args: &[&str]) -> String {
    let output = run(dir, env, args, None);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "orderly {args:?} succeeded\nstdout:\n{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "{stdout}\n{stderr}");
    stderr
}

/// `url` with `PASSWORD` as its password (trust authentication ignores it), so that messages
/// can be checked for masking.
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => format!("{scheme}://{user}:{PASSWORD}@{host}"),
        Some(_) => url.to_owned(),
        None => format!("{scheme}://postgres:{PASSWORD}@{rest}"),
    }
}

fn postgres_host_port(url: &str) -> (String, u16) {
    match Location::parse(url).expect("a PostgreSQL URL") {
        Location::Postgres { host, port, .. } => (host, port),
        other => panic!("not PostgreSQL: {other:?}"),
    }
}

/// What `orderly serve` needs in production on `url`, listening on a port of its choosing.
fn production_env(url: &str) -> Vec<(&str, &str)> {
    vec![
        ("APP_ENV", "production"),
        ("JWT_SECRET", JWT_SECRET),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DATABASE_URL", url),
    ]
}

/// A running `orderly serve`, its log lines collected as they come; killed when dropped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(dir: &Workdir, env: &[(&str, &str)]) -> Self {
        let mut child = command(dir, env, &["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self { child, lines, seen: Vec::new() }
    }

    /// Waits for the JSON log line whose message starts with `message`.
    fn wait_for(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else { break };
            self.seen.push(line.clone());
            if let Ok(json) = serde_json::from_str::<Value>(&line)
                && json["message"].as_str().is_some_and(|m| m.starts_with(message))
            {
                return json;
            }
        }
        panic!("no log line `{message}...` within 60 s; got:\n{}", self.seen.join("\n"));
    }

    /// Every line logged so far.
    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- orderly seed -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_twice_creates_the_demo_data_once_and_the_printed_password_logs_in() {
    let dir = Workdir::new();
    let url = dir.sqlite_url("demo.db");
    let env = [("APP_ENV", "test"), ("DATABASE_URL", url.as_str())];

    let first = succeed(&dir, &env, &["seed"], None);
    assert!(first.contains("created the demo administrator admin@example.com"), "{first}");
    assert!(first.contains(&format!("created {} demo products", DEMO_PRODUCTS.len())), "{first}");
    let password = first
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("a generated password, printed once:\n{first}"))
        .to_owned();
    assert!(password.len() >= 20, "{password}");

    let second = succeed(&dir, &env, &["seed"], None);
    assert!(second.contains("admin@example.com already exists: unchanged"), "{second}");
    assert!(second.contains("nothing to do"), "{second}");
    assert!(!second.contains("password:"), "the password is printed once only:\n{second}");

    // What the runs made, as a client sees it.
    let database = Database::connect(&DatabaseSettings::new(url.clone())).await.expect("opened");
    let application = Application::build_with(&Settings::for_tests(url.clone()), database)
        .await
        .expect("the application builds");
    let base = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let client = http_client().build().expect("a client");
    let page: Value = client
        .get(format!("{base}/api/v1/products?limit=100"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("a page");
    let skus: Vec<&str> = page["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|product| product["sku"].as_str())
        .collect();
    assert_eq!(skus.len(), DEMO_PRODUCTS.len(), "each product once: {skus:?}");
    let login = client
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin@example.com"),
            ("password", &password),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), StatusCode::OK, "the printed password logs in");
    let token: Value = login.json().await.expect("tokens");
    let me: Value = client
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(token["access_token"].as_str().expect("a token"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("a user");
    assert_eq!(me["role"], "admin", "{me}");

    // The documented example of `POST /orders`, sent as it is, places an order.
    let document: Value = client
        .get(format!("{base}/api-docs/v1/openapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("the document");
    let example = &document["components"]["schemas"]["CreateOrderRequest"]["example"];
    let placed = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(token["access_token"].as_str().expect("a token"))
        .json(example)
        .send()
        .await
        .expect("sent");
    assert_eq!(placed.status(), StatusCode::CREATED, "{example}");
    let order: Value = placed.json().await.expect("an order");
    assert_eq!(order["items"][0]["sku"], "COF-ESP-1KG", "{order}");

    // An address a customer has is not made an administrator.
    let registered = client
        .post(format!("{base}/api/v1/users"))
        .json(&serde_json::json!({"email": "carol@example.com", "password": "carol's password", "name": "Carol"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let refused = fail(&dir, &env, &["seed", "--admin-email", "carol@example.com"]);
    assert!(refused.contains("carol@example.com belongs to a customer"), "{refused}");
}

#[test]
fn seeding_in_production_is_refused_unless_forced() {
    let dir = Workdir::new();
    let url = dir.sqlite_url("prod.db");
    let env =
        [("APP_ENV", "production"), ("JWT_SECRET", JWT_SECRET), ("DATABASE_URL", url.as_str())];

    let refused = fail(&dir, &env, &["seed"]);
    assert!(refused.contains("refusing to seed demo data with APP_ENV=production"), "{refused}");
    assert!(refused.contains("--force"), "{refused}");
    assert!(!dir.path().join("prod.db").exists(), "nothing was touched");

    // Production does not migrate on its own: forced, seeding still wants a current schema.
    let behind = fail(&dir, &env, &["seed", "--force"]);
    assert!(behind.contains("orderly migrate up"), "{behind}");

    succeed(&dir, &env, &["migrate", "up"], None);
    let chosen = "a chosen demo password";
    let seeded = succeed(
        &dir,
        &env,
        &["seed", "--force", "--admin-email", "ops@example.com", "--admin-password-stdin"],
        Some(&format!("{chosen}\n")),
    );
    assert!(seeded.contains("created the demo administrator ops@example.com"), "{seeded}");
    assert!(!seeded.contains(chosen), "a given password is never printed:\n{seeded}");
}

// --- orderly db create --------------------------------------------------------------------

#[test]
fn db_create_creates_a_missing_sqlite_file_once() {
    let dir = Workdir::new();
    let file = dir.path().join("nested/dir/new.db");
    let url = format!("sqlite://{}", file.display());
    let env = [("APP_ENV", "test"), ("DATABASE_URL", url.as_str())];

    let created = succeed(&dir, &env, &["db", "create"], None);
    assert!(created.contains(&format!("created the SQLite file {}", file.display())), "{created}");
    assert!(file.exists());
    let again = succeed(&dir, &env, &["db", "create"], None);
    assert!(again.contains("already exists: nothing to do"), "{again}");
    let status = succeed(&dir, &env, &["migrate", "up"], None);
    assert!(status.lines().all(|line| line.starts_with("applied ")), "{status}");
}

#[test]
fn db_create_creates_a_missing_postgres_database_once() {
    let Some(scratch) = ScratchPostgres::new() else {
        eprintln!("{TEST_DATABASE_URL} is not set: PostgreSQL not tested");
        return;
    };
    let dir = Workdir::new();
    let url = scratch.url();
    let env = [("APP_ENV", "test"), ("DATABASE_URL", url.as_str())];
    let (host, port) = postgres_host_port(&url);

    let created = succeed(&dir, &env, &["db", "create"], None);
    let expected =
        format!("created the PostgreSQL database \"{}\" on {host}:{port}", scratch.name());
    assert!(created.contains(&expected), "{created}");
    assert!(tokio_block_on(scratch.exists()));
    let again = succeed(&dir, &env, &["db", "create"], None);
    assert!(again.contains("already exists: nothing to do"), "{again}");
    let status = succeed(&dir, &env, &["migrate", "status"], None);
    assert!(
        status.lines().all(|line| line.starts_with("pending ")),
        "a new, empty database:\n{status}"
    );
}

#[test]
fn behind_a_transaction_pooler_migrations_take_the_migration_url_and_refuse_without_one() {
    let Some(scratch) = ScratchPostgres::new() else {
        eprintln!("{TEST_DATABASE_URL} is not set: PostgreSQL not tested");
        return;
    };
    let dir = Workdir::new();
    let url = scratch.url();
    let plain = [("APP_ENV", "test"), ("DATABASE_URL", url.as_str())];
    succeed(&dir, &plain, &["db", "create"], None);
    let pooled =
        [plain[0], plain[1], ("DATABASE_POOLER", "transaction"), ("AUTO_MIGRATE", "false")];

    // Through the pooler alone: refused before anything is written, saying what to set.
    let error = fail(&dir, &pooled, &["migrate", "up"]);
    assert!(error.contains("set DATABASE_MIGRATION_URL to a direct URL"), "{error}");
    let status = succeed(&dir, &plain, &["migrate", "status"], None);
    assert!(status.lines().all(|line| line.starts_with("pending ")), "nothing applied:\n{status}");
    // `serve` migrating at start-up without it: the settings check says so.
    let error =
        fail(&dir, &[pooled[0], pooled[1], pooled[2], ("AUTO_MIGRATE", "true")], &["serve"]);
    assert!(
        error.contains("DATABASE_MIGRATION_URL: required with DATABASE_POOLER=transaction"),
        "{error}"
    );

    // With the direct URL (its password masked wherever it is printed), they run there.
    let direct = with_password(&url);
    let env = [
        pooled[0],
        pooled[1],
        pooled[2],
        ("AUTO_MIGRATE", "true"),
        ("DATABASE_MIGRATION_URL", direct.as_str()),
    ];
    let applied = succeed(&dir, &env, &["migrate", "up"], None);
    assert!(applied.lines().all(|line| line.starts_with("applied ")), "{applied}");
    let config = succeed(&dir, &env, &["config", "check"], None);
    assert!(config.contains("DATABASE_POOLER=transaction"), "{config}");
    assert!(config.contains("DATABASE_MIGRATION_URL=postgres://postgres:***@"), "{config}");
    assert!(!config.contains(PASSWORD), "{config}");
}

fn tokio_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

// --- a database that cannot be used ---------------------------------------------------------

#[test]
fn a_missing_postgres_database_is_named_with_a_hint_and_the_password_masked() {
    let Some(scratch) = ScratchPostgres::new() else {
        eprintln!("{TEST_DATABASE_URL} is not set: PostgreSQL not tested");
        return;
    };
    let dir = Workdir::new();
    let url = with_password(&scratch.url());
    let (host, port) = postgres_host_port(&url);
    for (app_env, args) in [("test", &["migrate", "status"][..]), ("development", &["serve"][..])] {
        let env = [("APP_ENV", app_env), ("DATABASE_URL", url.as_str()), ("PORT", "0")];
        let error = fail(&dir, &env, args);
        let expected = format!(
            "the PostgreSQL server on {host}:{port} has no database \"{}\"",
            scratch.name()
        );
        assert!(error.contains(&expected), "{error}");
        assert!(error.contains("hint: create it with `orderly db create`"), "{error}");
        assert!(error.contains(":***@"), "the URL is shown masked: {error}");
        assert_eq!(error.matches("has no database").count(), 1, "said once: {error}");
        assert!(!error.contains("at line"), "no driver line numbers: {error}");
    }
}

#[test]
fn a_wrong_port_is_named_with_a_hint_and_the_password_masked() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    };
    let dir = Workdir::new();
    let url = format!("postgres://orderly:{PASSWORD}@127.0.0.1:{port}/shop");
    let env =
        [("APP_ENV", "test"), ("DATABASE_URL", url.as_str()), ("DATABASE_ACQUIRE_TIMEOUT", "2")];
    let started = Instant::now();
    let error = fail(&dir, &env, &["migrate", "status"]);
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    let expected = format!("PostgreSQL database \"shop\" on 127.0.0.1:{port} (user \"orderly\")");
    assert!(error.contains(&expected), "{error}");
    assert!(error.contains("connection refused"), "{error}");
    assert!(
        error.contains(&format!("hint: nothing accepts connections on 127.0.0.1:{port}")),
        "{error}"
    );
    assert!(error.contains(&format!("postgres://orderly:***@127.0.0.1:{port}/shop")), "{error}");
    assert!(!error.contains("pool timed out"), "{error}");
}

// --- orderly serve: the start-up log ---------------------------------------------------------

#[test]
fn the_startup_line_names_the_engine_the_database_and_the_swagger_ui_url() {
    let dir = Workdir::new();
    let url = dir.sqlite_url("serve.db");
    let env = [
        ("APP_ENV", "development"),
        ("DATABASE_URL", url.as_str()),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
    ];
    let mut server = Server::start(&dir, &env);
    let line = server.wait_for("listening on");
    let port = line["port"].as_u64().expect("the bound port");
    assert_ne!(port, 0);
    assert_eq!(line["engine"], "sqlite", "{line}");
    assert_eq!(line["database"], url.as_str(), "{line}");
    assert_eq!(line["url"], format!("http://127.0.0.1:{port}/swagger-ui/"), "{line}");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("http://127.0.0.1:{port}/swagger-ui/")), "{message}");
    assert!(!server.log().contains("pending"), "a migrated database has nothing pending");
}

#[test]
fn the_startup_line_masks_the_postgres_password() {
    let Some(scratch) = ScratchPostgres::new() else {
        eprintln!("{TEST_DATABASE_URL} is not set: PostgreSQL not tested");
        return;
    };
    let dir = Workdir::new();
    let url = with_password(&scratch.url());
    let env = [
        ("APP_ENV", "development"),
        ("DATABASE_URL", url.as_str()),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
    ];
    succeed(&dir, &env, &["db", "create"], None);
    let mut server = Server::start(&dir, &env);
    let line = server.wait_for("listening on");
    assert_eq!(line["engine"], "postgres", "{line}");
    assert_eq!(line["database"], orderly_infrastructure::persistence::redact(&url), "{line}");
    assert!(line["database"].as_str().is_some_and(|db| db.contains(":***@")), "{line}");
    assert!(!server.log().contains(PASSWORD), "the password is never logged");
    drop(server);
    drop(scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_in_production_is_not_ready_and_the_log_says_why() {
    let dir = Workdir::new();
    let url = dir.sqlite_url("unmigrated.db");
    let mut env = production_env(&url);
    env.push(("ORDER_EXPIRY_INTERVAL", "1"));
    let mut server = Server::start(&dir, &env);
    let warning = server.wait_for("the database schema is behind this binary");
    assert_eq!(warning["level"], "WARN", "{warning}");
    let line = server.wait_for("listening on");
    let base = format!("http://127.0.0.1:{}", line["port"]);

    let client = http_client().build().expect("a client");
    let ready = client.get(format!("{base}/ready")).send().await.expect("sent");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = ready.json().await.expect("a problem");
    assert_eq!(problem["code"], "MIGRATIONS_PENDING", "{problem}");
    let pending = problem["pending_migrations"].as_array().map_or(0, Vec::len);
    assert!(pending > 0, "{problem}");

    // The expiry job waits instead of failing on missing tables every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = server.log();
    assert!(!log.contains("order-expiry job failed"), "{log}");
    assert_eq!(log.matches("the order-expiry job waits").count(), 1, "said once: {log}");

    succeed(&dir, &env, &["migrate", "up"], None);
    let ready = client.get(format!("{base}/ready")).send().await.expect("sent");
    assert_eq!(ready.status(), StatusCode::OK, "ready once migrated, without a restart");
}

// --- orderly serve: stopping ----------------------------------------------------------------

/// A SIGTERM while the background jobs poll the database: the server drains and stops without
/// a warning. The HTTP workers' runtimes stop first, and with them the pool's connections that
/// a worker opened; a job still polling after that would take the database for unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_stops_the_server_without_a_warning() {
    let Some(scratch) = ScratchPostgres::new() else {
        eprintln!("{TEST_DATABASE_URL} is not set: PostgreSQL not tested");
        return;
    };
    let dir = Workdir::new();
    let url = scratch.url();
    let mut env = production_env(&url);
    // The outbox relay and the webhook worker poll every 10 ms, so one of them runs after the
    // workers have stopped.
    env.push(("OUTBOX_POLL_INTERVAL", "10"));
    succeed(&dir, &env, &["db", "create"], None);
    succeed(&dir, &env, &["migrate", "up"], None);
    let mut server = Server::start(&dir, &env);
    let line = server.wait_for("listening on");
    let base = format!("http://127.0.0.1:{}", line["port"]);

    // Requests at once, so that the workers open connections of their own.
    let client = http_client().build().expect("a client");
    let reads = (0..32).map(|_| {
        let client = client.clone();
        let url = format!("{base}/api/v1/products/{}", Uuid::now_v7());
        async move { client.get(url).send().await.expect("sent").status() }
    });
    for status in futures::future::join_all(reads).await {
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    server.wait_for("stopped");
    let exit = server.child.wait().expect("the server exits");
    assert!(exit.success(), "{exit:?}");
    let log = server.log();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|json| matches!(json["level"].as_str(), Some("WARN" | "ERROR")))
        })
        .collect();
    assert!(complaints.is_empty(), "a clean stop warns of nothing:\n{}", complaints.join("\n"));
}
