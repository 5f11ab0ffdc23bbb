//! Configuration: defaults, then an optional `orderly.toml`, then the environment (and `.env` in
//! development), into typed settings checked with garde before anything starts. Every problem is
//! reported at once; secrets never print.
//!
//! **One place per setting.** Settings are grouped by concern ([`ServerSettings`],
//! [`DatabaseSettings`], ...). Each leaf field is one environment variable, named as the field
//! upper-cased (`database_url` is `DATABASE_URL`), after its group's name in the groups of
//! [`PREFIXED_GROUPS`] (`payment.api_url` is `PAYMENT_API_URL`); its rule is its `#[garde]`
//! attribute and its default is in its group's `defaults`. Nothing else lists settings: the environment mapping,
//! the per-variable type checks, `orderly config check` and the redaction of secrets are derived
//! from the structure (ADR 0014). Adding a setting is adding a field and its default.

use std::{fmt, num::NonZeroU32, time::Duration};

use config::{Config, File, Value, ValueKind};
use garde::Validate;
use orderly_domain::time::{DateTime, Timestamp, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// An enum-valued setting: its variants and their spellings, with errors that list the choices.
macro_rules! choices {
    ($(#[$meta:meta])* pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted spelling, in order.
            pub const CHOICES: &'static [&'static str] = &[$( $text ),+];

            /// The spelling of this choice.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )+ }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                match value.trim().to_ascii_lowercase().as_str() {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(format!("`{value}` is not one of: {}", Self::CHOICES.join(", "))),
                }
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> Self {
                value.as_str()
            }
        }
    };
}

choices! {
    /// Where Orderly runs.
    pub enum AppEnv {
        /// A developer's machine: safe defaults, generated secrets, pretty logs, auto-migration.
        Development = "development",
        /// Automated tests: like development, with cheap password hashing.
        Test = "test",
        /// Real traffic: every secret must be given; JSON logs.
        Production = "production",
    }
}

choices! {
    /// Log line format.
    pub enum LogFormat {
        /// Human-readable, for terminals.
        Pretty = "pretty",
        /// One JSON object per line, for log collectors.
        Json = "json",
    }
}

choices! {
    /// What stands between Orderly and PostgreSQL (ADR 0035).
    pub enum DatabasePooler {
        /// Nothing, or a pooler in session mode.
        None = "none",
        /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`): every statement
        /// runs in a transaction, and none stays prepared from one transaction to the next.
        Transaction = "transaction",
    }
}

choices! {
    /// The payment gateway adapter.
    pub enum PaymentGateway {
        /// In-process simulation: approves charges up to a limit (ADR 0010).
        Simulated = "simulated",
        /// A Stripe-shaped REST provider at `PAYMENT_API_URL`, with time-outs, retries and
        /// a circuit breaker (ADR 0022).
        Http = "http",
    }
}

/// A rate-limit quota as operators write it: `N/WINDOW`, for example `20/1m` (20 requests in a
/// burst, refilled at 20 per minute). Windows are `Ns`, `Nm` or `Nh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quota {
    /// Requests per window (and the largest burst).
    pub requests: NonZeroU32,
    /// The window.
    pub window: Duration,
}

impl TryFrom<String> for Quota {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let invalid =
            || format!("`{value}` is not a quota like `20/1m` (requests/window in s, m or h)");
        let (requests, window) = value.trim().split_once('/').ok_or_else(invalid)?;
        let requests = requests.trim().parse::<NonZeroU32>().map_err(|_| invalid())?;
        let window = window.trim();
        let unit = match window.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            _ => return Err(invalid()),
        };
        let count = window[..window.len() - 1].parse::<u64>().map_err(|_| invalid())?;
        let window = Duration::from_secs(count.saturating_mul(unit));
        if window.is_zero() || window > Duration::from_secs(86_400) {
            return Err(format!("`{value}`: the window must be from 1s to 24h"));
        }
        Ok(Self { requests, window })
    }
}

impl From<Quota> for String {
    fn from(quota: Quota) -> Self {
        let seconds = quota.window.as_secs();
        let window = if seconds.is_multiple_of(3600) {
            format!("{}h", seconds / 3600)
        } else if seconds.is_multiple_of(60) {
            format!("{}m", seconds / 60)
        } else {
            format!("{seconds}s")
        };
        format!("{}/{window}", quota.requests)
    }
}

/// An instant as operators write it, RFC 3339 (`2026-06-01T00:00:00Z`), in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rfc3339(pub Timestamp);

impl TryFrom<String> for Rfc3339 {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match DateTime::parse_from_rfc3339(value.trim()) {
            Ok(at) => Ok(Self(at.with_timezone(&Utc))),
            Err(_) => Err(format!(
                "`{value}` is not an RFC 3339 date and time like 2026-06-01T00:00:00Z (unset the \
                 variable for none)"
            )),
        }
    }
}

impl From<Rfc3339> for String {
    fn from(at: Rfc3339) -> Self {
        at.to_string()
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.fZ"))
    }
}

/// The smallest accepted `JWT_SECRET`, in bytes.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// How to make a `JWT_SECRET`: said wherever one is missing or too short (as `.env.example` says).
const JWT_SECRET_HOW: &str = "generate one with `openssl rand -hex 32`";

/// The groups whose every variable begins with the group's name, which their fields leave out:
/// `rate_limit.orders` is `RATE_LIMIT_ORDERS` (ADR 0014, amended). In the other groups the
/// field is the variable (`database.auto_migrate` is `AUTO_MIGRATE`).
pub const PREFIXED_GROUPS: &[&str] =
    &["rate_limit", "payment", "api_v1", "nats", "outbox", "webhook"];

/// The variable of a leaf, from its path in the settings tree (`payment.api_url`, or garde's
/// `server.trusted_proxies[1]`): its field upper-cased, after its group's name in a group of
/// [`PREFIXED_GROUPS`].
fn variable(path: &str) -> String {
    let (group, field) = path.rsplit_once('.').unwrap_or(("", path));
    let group = group.rsplit('.').next().unwrap_or(group);
    if PREFIXED_GROUPS.contains(&group) {
        format!("{group}_{field}").to_uppercase()
    } else {
        field.to_uppercase()
    }
}

/// Every setting, grouped by concern (see the module docs).
#[derive(Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `development`, `test` or `production`.
    #[garde(skip)]
    pub app_env: AppEnv,
    #[garde(dive)]
    pub server: ServerSettings,
    #[garde(dive)]
    pub log: LogSettings,
    #[garde(dive)]
    pub database: DatabaseSettings,
    #[garde(dive)]
    pub auth: AuthSettings,
    #[garde(dive)]
    pub rate_limit: RateLimitSettings,
    #[garde(dive)]
    pub redis: RedisSettings,
    #[garde(dive)]
    pub orders: OrderSettings,
    #[garde(dive)]
    pub catalogue: CatalogueSettings,
    #[garde(dive)]
    pub payment: PaymentSettings,
    #[garde(dive)]
    pub telemetry: TelemetrySettings,
    #[garde(dive)]
    pub api_v1: ApiV1Settings,
    #[garde(dive)]
    pub nats: NatsSettings,
    #[garde(dive)]
    pub outbox: OutboxSettings,
    #[garde(dive)]
    pub webhook: WebhookSettings,
}

/// The HTTP listener and what it accepts.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The interface to bind.
    #[garde(length(min = 1))]
    pub host: String,
    /// The port to bind (0: any free port).
    #[garde(skip)]
    pub port: u16,
    /// Worker threads (0: one per core).
    #[garde(custom(at_most(256)))]
    pub workers: usize,
    /// Seconds in-flight requests get to finish on SIGTERM.
    #[garde(custom(at_most(300)))]
    pub shutdown_timeout: u64,
    /// Largest request body, in bytes.
    #[garde(custom(between(1024, 10_485_760)))]
    pub body_limit: usize,
    /// Longest request target (path and query), in bytes; beyond, `414 URI_TOO_LONG`. The HTTP
    /// layer itself refuses targets over 65,534 bytes with an empty 400 (ADR 0015).
    #[garde(custom(between(1024, 65_534)))]
    pub max_uri_length: usize,
    /// Most request header fields; beyond, `431 HEADERS_TOO_LARGE`. The HTTP layer itself
    /// refuses more than 96 with an empty 431 (ADR 0015).
    #[garde(custom(between(16, 96)))]
    pub max_header_count: usize,
    /// Most bytes of request header names and values together; beyond, `431
    /// HEADERS_TOO_LARGE`. The HTTP layer itself refuses a request head over 128 KiB (ADR 0015).
    #[garde(custom(between(1024, 65_536)))]
    pub max_header_bytes: usize,
    /// Seconds a client has, from connecting, to send its first request head; beyond, the
    /// HTTP layer answers an empty 408 and closes the connection.
    #[garde(custom(between(1, 60)))]
    pub client_request_timeout: u64,
    /// Seconds a closing connection gets to shut down cleanly before it is dropped.
    #[garde(custom(between(1, 60)))]
    pub client_disconnect_timeout: u64,
    /// Seconds an idle connection is kept open for the next request (0: close after each
    /// response).
    #[garde(custom(at_most(300)))]
    pub keep_alive: u64,
    /// Open connections each worker accepts; beyond, it stops accepting until one closes.
    #[garde(custom(between(1, 100_000)))]
    pub max_connections_per_worker: usize,
    /// Addresses or CIDR ranges of the reverse proxies whose `X-Forwarded-For` / `Forwarded`
    /// headers name the client (comma-separated; empty: the socket's peer is the client).
    #[garde(inner(custom(check_proxy)))]
    pub trusted_proxies: Vec<String>,
    /// Origins allowed by CORS, comma-separated (`*` for any; empty: none).
    #[garde(inner(custom(check_origin)))]
    pub cors_allowed_origins: Vec<String>,
    /// Serve Swagger UI at `/swagger-ui/`.
    #[garde(skip)]
    pub enable_swagger_ui: bool,
}

impl ServerSettings {
    fn defaults(env: AppEnv) -> Self {
        Self {
            host: if env == AppEnv::Production { "0.0.0.0" } else { "127.0.0.1" }.to_owned(),
            port: 3000,
            workers: 0,
            shutdown_timeout: 30,
            body_limit: 65_536,
            max_uri_length: 8192,
            max_header_count: 64,
            max_header_bytes: 16_384,
            client_request_timeout: 5,
            client_disconnect_timeout: 1,
            keep_alive: 5,
            max_connections_per_worker: 25_000,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            enable_swagger_ui: true,
        }
    }
}

/// Logging (`RUST_LOG` sets the levels, read by tracing itself).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    #[garde(skip)]
    pub log_format: LogFormat,
}

impl LogSettings {
    fn defaults(env: AppEnv) -> Self {
        Self {
            log_format: if env == AppEnv::Production { LogFormat::Json } else { LogFormat::Pretty },
        }
    }
}

/// The database.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://...` or `sqlite:...`; its password never prints.
    #[garde(custom(check_database_url))]
    #[serde(serialize_with = "redacted_url")]
    pub database_url: String,
    /// Pool size. On SQLite (a file), one more connection serves the write transactions.
    #[garde(custom(between(1, 1000)))]
    pub database_max_connections: u32,
    /// Seconds a request waits for a database connection before answering 503.
    #[garde(custom(between(1, 300)))]
    pub database_acquire_timeout: u64,
    /// Apply pending migrations when `serve` starts.
    #[garde(skip)]
    pub auto_migrate: bool,
    /// `transaction` when `DATABASE_URL` leads to a pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`); `none` for PostgreSQL itself or a pooler in session mode.
    #[garde(skip)]
    pub database_pooler: DatabasePooler,
    /// A direct PostgreSQL URL for migrations, which need a session of their own (required
    /// behind a transaction pooler when migrations run); not set: migrations use `DATABASE_URL`.
    #[garde(inner(custom(check_database_url)))]
    #[serde(serialize_with = "redacted_optional_url")]
    pub database_migration_url: Option<String>,
}

impl DatabaseSettings {
    fn defaults(env: AppEnv) -> Self {
        Self {
            database_url: "sqlite://data/orderly.db?mode=rwc".to_owned(),
            database_max_connections: 10,
            database_acquire_timeout: 3,
            auto_migrate: env != AppEnv::Production,
            database_pooler: DatabasePooler::None,
            database_migration_url: None,
        }
    }

    /// The database adapter's settings: the one conversion of this group (SQLite's busy
    /// timeout is no setting; the adapter states it).
    #[must_use]
    pub fn adapter(&self) -> orderly_infrastructure::DatabaseSettings {
        orderly_infrastructure::DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_secs(self.database_acquire_timeout),
            sqlite_busy_timeout: orderly_infrastructure::DatabaseSettings::SQLITE_BUSY_TIMEOUT,
            pooler: match self.database_pooler {
                DatabasePooler::None => orderly_infrastructure::Pooler::None,
                DatabasePooler::Transaction => orderly_infrastructure::Pooler::Transaction,
            },
            migration_url: self.database_migration_url.clone(),
        }
    }

    /// The cross-field rules of this group.
    fn problems(&self) -> Vec<String> {
        let postgres =
            |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        let mut problems = Vec::new();
        if self.database_pooler == DatabasePooler::Transaction {
            if !postgres(&self.database_url) {
                problems.push(
                    "DATABASE_POOLER: `transaction` needs a postgres:// DATABASE_URL (a pooler \
                     stands before PostgreSQL only)"
                        .to_owned(),
                );
            } else if self.auto_migrate && self.database_migration_url.is_none() {
                problems.push(
                    "DATABASE_MIGRATION_URL: required with DATABASE_POOLER=transaction and \
                     AUTO_MIGRATE on: migrations need a session of their own, which a \
                     transaction pooler does not give (a direct URL to PostgreSQL)"
                        .to_owned(),
                );
            }
        }
        if let Some(url) = &self.database_migration_url
            && !(postgres(url) && postgres(&self.database_url))
        {
            problems.push(
                "DATABASE_MIGRATION_URL: only for PostgreSQL (postgres://), beside a postgres:// \
                 DATABASE_URL"
                    .to_owned(),
            );
        }
        problems
    }
}

/// Authentication: tokens, password hashing, and how fast account changes reach tokens.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The HS256 signing secret (at least 32 bytes; required in production).
    #[garde(skip)]
    #[serde(serialize_with = "redacted_secret")]
    pub jwt_secret: Option<SecretString>,
    /// The `iss` of access tokens.
    #[garde(length(min = 1))]
    pub jwt_issuer: String,
    /// The `aud` of access tokens.
    #[garde(length(min = 1))]
    pub jwt_audience: String,
    /// Seconds an access token lives.
    #[garde(custom(between(60, 86_400)))]
    pub access_token_ttl: u64,
    /// Seconds a refresh token lives.
    #[garde(custom(between(300, 31_536_000)))]
    pub refresh_token_ttl: u64,
    /// Password hashes computed at once (0: one per core). Each holds 19 MiB.
    #[garde(custom(at_most(64)))]
    pub password_hash_concurrency: usize,
    /// Password hashes that may wait for a free slot; beyond, `503 SERVER_BUSY`.
    #[garde(custom(at_most(1024)))]
    pub password_hash_queue: usize,
    /// Seconds an account's role and session state are cached before a token is checked
    /// against the database again: the delay within which a deletion, a demotion or a new
    /// password reaches access tokens on other instances (0: check on every request).
    #[garde(custom(at_most(60)))]
    pub auth_cache_ttl: u64,
}

impl AuthSettings {
    fn defaults(_: AppEnv) -> Self {
        Self {
            jwt_secret: None,
            jwt_issuer: "orderly".to_owned(),
            jwt_audience: "orderly-api".to_owned(),
            access_token_ttl: 900,
            refresh_token_ttl: 1_209_600,
            password_hash_concurrency: 0,
            password_hash_queue: 16,
            auth_cache_ttl: 5,
        }
    }
}

/// Rate limits (GCRA; see `docs/operations.md`). Quotas are `requests/window`. Prefixed: the
/// variables are `RATE_LIMIT_` and the field (`orders` is `RATE_LIMIT_ORDERS`).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Turn every limit on or off.
    #[garde(skip)]
    pub enabled: bool,
    /// Anonymous requests, per client address, on every route.
    #[garde(skip)]
    pub anonymous: Quota,
    /// `POST /auth/token` and `POST /users`, per client address.
    #[garde(skip)]
    pub auth_per_ip: Quota,
    /// `POST /auth/token` and `POST /users`, per account (the e-mail address).
    #[garde(skip)]
    pub auth_per_account: Quota,
    /// Authenticated requests, per user.
    #[garde(skip)]
    pub authenticated: Quota,
    /// `POST /orders`, per user (on top of the per-user limit).
    #[garde(skip)]
    pub orders: Quota,
}

impl RateLimitSettings {
    fn defaults(_: AppEnv) -> Self {
        let quota = |requests: u32, minutes: u64| Quota {
            requests: NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN),
            window: Duration::from_secs(minutes * 60),
        };
        Self {
            enabled: true,
            anonymous: quota(300, 1),
            auth_per_ip: quota(20, 1),
            auth_per_account: quota(5, 1),
            authenticated: quota(600, 1),
            orders: quota(30, 1),
        }
    }
}

/// Redis, the store shared by several instances (rate limits).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://...` (optional: without it, limits are kept per instance).
    #[garde(inner(custom(check_redis_url)))]
    #[serde(serialize_with = "redacted_optional_url")]
    pub redis_url: Option<String>,
    /// The prefix of every key Orderly writes, so that several deployments can share a Redis.
    #[garde(length(min = 1, max = 64))]
    pub redis_key_prefix: String,
}

impl RedisSettings {
    fn defaults(_: AppEnv) -> Self {
        Self { redis_url: None, redis_key_prefix: "orderly".to_owned() }
    }
}

/// Orders.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct OrderSettings {
    /// Seconds an order waits for payment before it expires.
    #[garde(custom(between(60, 2_592_000)))]
    pub order_payment_timeout: u64,
    /// Seconds between runs of the order-expiry job (0 disables it on this instance).
    #[garde(custom(at_most(86_400)))]
    pub order_expiry_interval: u64,
    /// Seconds an `Idempotency-Key` is remembered (its response replayed) before the background
    /// job purges it.
    #[garde(custom(between(60, 2_592_000)))]
    pub idempotency_ttl: u64,
}

impl OrderSettings {
    fn defaults(_: AppEnv) -> Self {
        Self { order_payment_timeout: 1800, order_expiry_interval: 60, idempotency_ttl: 86_400 }
    }
}

/// The catalogue: the product cache (ADR 0025).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSettings {
    /// Seconds a product stays in an instance's cache for `GET /products/{id}` (0: no cache).
    /// Writes drop it at once, on every instance through Redis when `REDIS_URL` is set; this
    /// is the bound on a stale read when Redis cannot tell the others (or is not configured).
    #[garde(custom(at_most(300)))]
    pub product_cache_ttl: u64,
    /// Products an instance's cache holds at most.
    #[garde(custom(between(1, 10_000_000)))]
    pub product_cache_capacity: u64,
}

impl CatalogueSettings {
    fn defaults(_: AppEnv) -> Self {
        Self { product_cache_ttl: 5, product_cache_capacity: 10_000 }
    }
}

/// Payments. Prefixed: the variables are `PAYMENT_` and the field (`api_url` is
/// `PAYMENT_API_URL`).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// The gateway adapter.
    #[garde(skip)]
    pub gateway: PaymentGateway,
    /// The simulated gateway declines charges above this many minor units.
    #[garde(custom(at_least(0)))]
    pub simulated_decline_above: i64,
    /// The provider's base URL (`https://api.stripe.com`; required with `PAYMENT_GATEWAY=http`).
    #[garde(inner(custom(check_http_url)))]
    pub api_url: Option<String>,
    /// The provider's secret API key, sent as a bearer token (required with
    /// `PAYMENT_GATEWAY=http`).
    #[garde(skip)]
    #[serde(serialize_with = "redacted_secret")]
    pub api_key: Option<SecretString>,
    /// Milliseconds to open a connection to the provider.
    #[garde(custom(between(10, 60_000)))]
    pub connect_timeout_ms: u64,
    /// Milliseconds one attempt may take, request sent to answer read.
    #[garde(custom(between(10, 60_000)))]
    pub attempt_timeout_ms: u64,
    /// Milliseconds one call may take, every retry and backoff included.
    #[garde(custom(between(10, 120_000)))]
    pub call_timeout_ms: u64,
    /// Attempts per call, the first included (1: no retry).
    #[garde(custom(between(1, 10)))]
    pub max_attempts: u32,
    /// Milliseconds before the first retry; the wait doubles at each retry, plus jitter.
    #[garde(custom(between(1, 60_000)))]
    pub retry_base_delay_ms: u64,
    /// Consecutive failed calls that open the circuit breaker.
    #[garde(custom(between(1, 1_000)))]
    pub breaker_threshold: u32,
    /// Seconds an open circuit breaker refuses calls before it lets a probe through.
    #[garde(custom(between(1, 3_600)))]
    pub breaker_cool_down: u64,
}

impl PaymentSettings {
    fn defaults(_: AppEnv) -> Self {
        Self {
            gateway: PaymentGateway::Simulated,
            simulated_decline_above: 100_000_000,
            api_url: None,
            api_key: None,
            connect_timeout_ms: 1_000,
            attempt_timeout_ms: 3_000,
            call_timeout_ms: 8_000,
            max_attempts: 3,
            retry_base_delay_ms: 100,
            breaker_threshold: 5,
            breaker_cool_down: 30,
        }
    }
}

/// Metrics and traces (ADR 0018).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Count requests and business events and serve them at `GET /metrics` (Prometheus text
    /// format); `false` records nothing and serves no `/metrics`.
    #[garde(skip)]
    pub metrics_enabled: bool,
    /// An address and port (`127.0.0.1:9090`) for a listener of its own that serves only
    /// `/metrics`; the main listener then does not serve it. Unset: the main listener serves it.
    #[garde(inner(custom(check_socket_address)))]
    pub metrics_addr: Option<String>,
    /// The OpenTelemetry collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to
    /// `<url>/v1/traces`. Unset: no span is exported (log lines still carry trace ids).
    #[garde(inner(custom(check_otlp_endpoint)))]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans.
    #[garde(length(min = 1, max = 128))]
    pub otel_service_name: String,
}

impl TelemetrySettings {
    fn defaults(_: AppEnv) -> Self {
        Self {
            metrics_enabled: true,
            metrics_addr: None,
            otel_exporter_otlp_endpoint: None,
            otel_service_name: "orderly".to_owned(),
        }
    }
}

/// The lifecycle of `/api/v1` (RFC 9745 deprecation, RFC 8594 sunset; ADR 0031). Prefixed: the
/// variables are `API_V1_` and the field (`sunset_at` is `API_V1_SUNSET_AT`).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ApiV1Settings {
    /// From this instant v1 answers with `Deprecation`, `Sunset` and `Link` headers and its
    /// OpenAPI operations are deprecated. Unset: v1 is not deprecated.
    #[garde(skip)]
    pub deprecated_at: Option<Rfc3339>,
    /// From this instant v1 answers 410 `API_VERSION_SUNSET` (when enforced); announced in the
    /// `Sunset` header from the deprecation on. Needs `deprecated_at`, and is never before it.
    #[garde(skip)]
    pub sunset_at: Option<Rfc3339>,
    /// Whether v1 answers 410 after its sunset; `false` keeps serving it (headers included) for
    /// operators whose clients need more time.
    #[garde(skip)]
    pub enforce_sunset: bool,
    /// Where clients read the migration guide (`docs/api-versions.md`, as published for them):
    /// the `rel="deprecation"` link and the 410's `migration_guide`. Required with
    /// `deprecated_at`.
    #[garde(inner(custom(check_link_url)))]
    pub migration_guide_url: Option<String>,
}

impl ApiV1Settings {
    fn defaults(_: AppEnv) -> Self {
        Self {
            deprecated_at: None,
            sunset_at: None,
            enforce_sunset: true,
            migration_guide_url: None,
        }
    }

    /// The problems of the dates and the guide together: a sunset without a deprecation or
    /// before it (RFC 8594: a resource is deprecated before it goes), a deprecation without a
    /// guide.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (self.deprecated_at, self.sunset_at) {
            (None, Some(_)) => problems.push(
                "API_V1_SUNSET_AT: needs API_V1_DEPRECATED_AT (a version is deprecated before its \
                 sunset)"
                    .to_owned(),
            ),
            (Some(deprecated), Some(sunset)) if sunset < deprecated => problems.push(format!(
                "API_V1_SUNSET_AT: {sunset} is before API_V1_DEPRECATED_AT ({deprecated}); the \
                 sunset cannot come before the deprecation"
            )),
            _ => {}
        }
        if self.deprecated_at.is_some() && self.migration_guide_url.is_none() {
            problems.push(
                "API_V1_MIGRATION_GUIDE_URL: required with API_V1_DEPRECATED_AT (where clients \
                 read how to move to v2, docs/api-versions.md)"
                    .to_owned(),
            );
        }
        problems
    }

    /// What the HTTP layer is given: `None` unless v1 is deprecated.
    #[must_use]
    pub fn lifecycle(&self) -> Option<orderly_api::deprecation::Lifecycle> {
        Some(orderly_api::deprecation::Lifecycle {
            deprecated_at: self.deprecated_at?.0,
            sunset_at: self.sunset_at.map(|sunset| sunset.0),
            enforce_sunset: self.enforce_sunset,
            migration_guide_url: self.migration_guide_url.clone()?,
        })
    }
}

/// NATS JetStream, where the outbox relay publishes events (ADR 0033). Prefixed: the variables
/// are `NATS_` and the field (`subject_prefix` is `NATS_SUBJECT_PREFIX`).
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// `nats://host:4222`. Unset: events are recorded in the outbox and not published.
    #[garde(inner(custom(check_nats_url)))]
    #[serde(serialize_with = "redacted_optional_url")]
    pub url: Option<String>,
    /// The first token of every subject (`orderly.order.<id>`).
    #[garde(custom(check_token))]
    pub subject_prefix: String,
    /// The stream, created or updated at the first publish to cover `<prefix>.>`.
    #[garde(custom(check_token))]
    pub stream: String,
    /// Seconds the stream keeps an event (its `max_age`).
    #[garde(custom(between(60, 31_536_000)))]
    pub stream_max_age: u64,
    /// Seconds the stream remembers an event's id to drop a republished copy.
    #[garde(custom(between(1, 86_400)))]
    pub duplicate_window: u64,
    /// Seconds a publish waits for the stream's acknowledgement.
    #[garde(custom(between(1, 60)))]
    pub publish_timeout: u64,
}

impl NatsSettings {
    fn defaults(_: AppEnv) -> Self {
        Self {
            url: None,
            subject_prefix: "orderly".to_owned(),
            stream: "ORDERLY".to_owned(),
            stream_max_age: 604_800,
            duplicate_window: 120,
            publish_timeout: 5,
        }
    }

    /// What the publisher is given: `None` without a URL.
    #[must_use]
    pub fn adapter(&self) -> Option<orderly_infrastructure::services::NatsSettings> {
        Some(orderly_infrastructure::services::NatsSettings {
            url: self.url.clone()?,
            subject_prefix: self.subject_prefix.clone(),
            stream: self.stream.clone(),
            max_age: Duration::from_secs(self.stream_max_age),
            duplicate_window: Duration::from_secs(self.duplicate_window),
            publish_timeout: Duration::from_secs(self.publish_timeout),
        })
    }
}

/// The transactional outbox (ADR 0032) and its relay. Prefixed: the variables are `OUTBOX_` and
/// the field.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Seconds an event is kept once published (or, without `NATS_URL`, once written).
    #[garde(custom(between(3_600, 31_536_000)))]
    pub retention: u64,
    /// Events the relay claims and publishes at once.
    #[garde(custom(between(1, 1_000)))]
    pub batch: u32,
    /// Milliseconds the relay waits when the outbox is empty (a full batch is followed at once).
    #[garde(custom(between(10, 60_000)))]
    pub poll_interval: u64,
}

impl OutboxSettings {
    fn defaults(_: AppEnv) -> Self {
        Self { retention: 604_800, batch: 100, poll_interval: 200 }
    }
}

/// Delivering events to webhook endpoints (ADR 0034). Prefixed: the variables are `WEBHOOK_`
/// and the field.
#[derive(Debug, Clone, Deserialize, Serialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Allow endpoints on loopback, private, link-local and other non-public addresses. Off:
    /// such URLs are refused when registered and when connecting (server-side request forgery).
    /// Only for tests and closed networks.
    #[garde(skip)]
    pub allow_private_networks: bool,
    /// Seconds one delivery attempt may take, connecting and answering included.
    #[garde(custom(between(1, 60)))]
    pub timeout: u64,
}

impl WebhookSettings {
    fn defaults(_: AppEnv) -> Self {
        Self { allow_private_networks: false, timeout: 15 }
    }

    /// What the outbound adapters are given.
    #[must_use]
    pub fn adapter(&self) -> orderly_infrastructure::services::WebhookSettings {
        orderly_infrastructure::services::WebhookSettings {
            allow_private_networks: self.allow_private_networks,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

// --- rules ---------------------------------------------------------------------------------

fn between<T: PartialOrd + fmt::Display>(min: T, max: T) -> impl FnOnce(&T, &()) -> garde::Result {
    move |value, ()| {
        if *value < min || *value > max {
            Err(garde::Error::new(format!("must be from {min} to {max} (got {value})")))
        } else {
            Ok(())
        }
    }
}

fn at_most<T: PartialOrd + fmt::Display>(max: T) -> impl FnOnce(&T, &()) -> garde::Result {
    move |value, ()| {
        if *value > max {
            Err(garde::Error::new(format!("must be at most {max} (got {value})")))
        } else {
            Ok(())
        }
    }
}

fn at_least<T: PartialOrd + fmt::Display>(min: T) -> impl FnOnce(&T, &()) -> garde::Result {
    move |value, ()| {
        if *value < min {
            Err(garde::Error::new(format!("must be at least {min} (got {value})")))
        } else {
            Ok(())
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_database_url(url: &str, (): &()) -> garde::Result {
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:")
    {
        Ok(())
    } else {
        Err(garde::Error::new("must start with postgres://, postgresql:// or sqlite:"))
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_http_url(url: &str, (): &()) -> garde::Result {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(garde::Error::new("must start with https:// or http://"))
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
/// One NATS subject token or stream name: 1 to 64 letters, digits, `-` or `_`.
fn check_token(token: &str, (): &()) -> garde::Result {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if (1..=64).contains(&token.len()) && token.chars().all(valid) {
        Ok(())
    } else {
        Err(garde::Error::new("must be 1 to 64 letters, digits, `-` or `_`"))
    }
}

fn check_nats_url(url: &str, (): &()) -> garde::Result {
    if url.starts_with("nats://") {
        Ok(())
    } else {
        Err(garde::Error::new("must start with nats:// (tls:// is not supported yet)"))
    }
}

fn check_redis_url(url: &str, (): &()) -> garde::Result {
    if url.starts_with("redis://") {
        Ok(())
    } else if url.starts_with("rediss://") {
        Err(garde::Error::new(
            "TLS (rediss://) is not supported yet: use redis:// on a private network",
        ))
    } else {
        Err(garde::Error::new("must start with redis://"))
    }
}

/// An IP address and a port, as a listener binds them.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_socket_address(address: &str, (): &()) -> garde::Result {
    address.parse::<std::net::SocketAddr>().map(|_| ()).map_err(|_| {
        garde::Error::new(format!("`{address}` is not an address and port like 127.0.0.1:9090"))
    })
}

/// An `http://` URL: the exporter speaks plain OTLP/HTTP, to a collector on a private network.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_otlp_endpoint(url: &str, (): &()) -> garde::Result {
    let host = url.strip_prefix("http://").unwrap_or_default();
    if url.starts_with("https://") {
        Err(garde::Error::new(
            "TLS (https://) is not supported: run an OpenTelemetry Collector beside Orderly and send to it over http://",
        ))
    } else if host.is_empty() || host.starts_with('/') {
        Err(garde::Error::new(format!("`{url}` is not a URL like http://collector:4318")))
    } else {
        Ok(())
    }
}

/// An `http(s)://` URL that can stand in a `Link` header as it is: visible ASCII, none of
/// `<>"` and no space.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_link_url(url: &str, (): &()) -> garde::Result {
    check_http_url(url, &())?;
    if url.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"')) {
        Ok(())
    } else {
        Err(garde::Error::new("must be a URL without spaces, quotes or angle brackets"))
    }
}

/// An IP address or a CIDR range.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_proxy(proxy: &str, (): &()) -> garde::Result {
    orderly_api::client_ip::TrustedProxies::parse([proxy]).map(|_| ()).map_err(garde::Error::new)
}

/// `*`, or an origin as browsers send it: `http(s)://host[:port]`, no path.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_origin(origin: &str, (): &()) -> garde::Result {
    if origin == "*" {
        return Ok(());
    }
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let valid = host.is_some_and(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    if valid {
        Ok(())
    } else {
        Err(garde::Error::new(format!("`{origin}` is not an origin like https://shop.example")))
    }
}

// --- redaction: `Serialize` is the printable view ------------------------------------------

const REDACTED: &str = "<redacted>";

fn redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&orderly_infrastructure::persistence::redact(url))
}

#[allow(clippy::ref_option)]
fn redacted_optional_url<S: Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => redacted_url(url, serializer),
        None => serializer.serialize_none(),
    }
}

#[allow(clippy::ref_option)]
fn redacted_secret<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str(REDACTED),
        None => serializer.serialize_none(),
    }
}

// --- loading --------------------------------------------------------------------------------

/// One leaf of the settings tree: a config path (`database.database_url`) and its variable.
#[derive(Debug, Clone)]
struct Leaf {
    path: String,
    variable: String,
    list: bool,
}

/// The leaves of a serialized settings tree, in order.
fn leaves(tree: &serde_json::Value) -> Vec<(Leaf, serde_json::Value)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(Leaf, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let path =
                        if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, value, out);
                }
            }
            leaf => {
                out.push((
                    Leaf {
                        path: prefix.to_owned(),
                        variable: variable(prefix),
                        list: leaf.is_array(),
                    },
                    leaf.clone(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

/// A default, as the config crate holds it (built by hand rather than through the crate's
/// serializer, which drops empty lists).
fn config_value(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => ValueKind::Nil,
        serde_json::Value::Bool(flag) => ValueKind::Boolean(*flag),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(signed), _) => ValueKind::I64(signed),
            (None, Some(unsigned)) => ValueKind::U64(unsigned),
            (None, None) => ValueKind::Float(number.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(text) => ValueKind::String(text.clone()),
        serde_json::Value::Array(items) => {
            ValueKind::Array(items.iter().map(config_value).collect())
        }
        serde_json::Value::Object(_) => ValueKind::Nil,
    };
    Value::new(None, kind)
}

/// A raw environment value as a config value: lists are comma-separated (blank items dropped,
/// so an empty variable is an empty list).
fn env_value(leaf: &Leaf, raw: &str) -> Value {
    if leaf.list {
        let items: Vec<Value> = raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| Value::new(None, ValueKind::String(item.to_owned())))
            .collect();
        Value::new(None, ValueKind::Array(items))
    } else {
        Value::new(None, ValueKind::String(raw.to_owned()))
    }
}

/// A deserialization error message, as an operator reads it.
fn readable(error: &config::ConfigError) -> String {
    let message = error.to_string();
    let message = message.split(" for key").next().unwrap_or(&message).to_owned();
    [
        ("an unsigned 16 bit integer", "a whole number from 0 to 65535"),
        ("an unsigned 32 bit integer", "a whole number from 0 to 4294967295"),
        ("an unsigned 64 bit integer", "a whole number, 0 or more"),
        ("a 64-bit unsigned integer", "a whole number, 0 or more"),
        ("a 64-bit signed integer", "a whole number"),
        ("64-bit unsigned integer", "number"),
        ("64-bit signed integer", "number"),
    ]
    .iter()
    .fold(message, |message, (from, to)| message.replace(from, to))
}

/// The settings could not be loaded or are invalid; lists every problem.
#[derive(Debug)]
pub struct SettingsError(pub Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

impl fmt::Debug for Settings {
    /// The redacted view of [`Settings::describe`]: no secret or password can reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Settings");
        for (key, value) in self.describe() {
            debug.field(&key, &value);
        }
        debug.finish()
    }
}

impl Settings {
    /// The built-in defaults for `env`: safe for development; production changes a few.
    #[must_use]
    pub fn defaults(env: AppEnv) -> Self {
        Self {
            app_env: env,
            server: ServerSettings::defaults(env),
            log: LogSettings::defaults(env),
            database: DatabaseSettings::defaults(env),
            auth: AuthSettings::defaults(env),
            rate_limit: RateLimitSettings::defaults(env),
            redis: RedisSettings::defaults(env),
            orders: OrderSettings::defaults(env),
            catalogue: CatalogueSettings::defaults(env),
            payment: PaymentSettings::defaults(env),
            telemetry: TelemetrySettings::defaults(env),
            api_v1: ApiV1Settings::defaults(env),
            nats: NatsSettings::defaults(env),
            outbox: OutboxSettings::defaults(env),
            webhook: WebhookSettings::defaults(env),
        }
    }

    /// Loads and checks the settings from `orderly.toml` (optional) and the environment (with
    /// `.env` outside production).
    ///
    /// # Errors
    /// [`SettingsError`] listing every problem found.
    pub fn load() -> Result<Self, SettingsError> {
        if std::env::var("APP_ENV").map_or(true, |env| env.trim() != "production") {
            // `.env` never overrides variables that are already set.
            let _ = dotenvy::dotenv();
        }
        Self::load_from(|name| std::env::var(name).ok(), Some("orderly"))
    }

    /// Loads and checks the settings from the variables `env` returns and the optional config
    /// file `file` (a name without extension, as the config crate takes it).
    ///
    /// # Errors
    /// [`SettingsError`] listing every problem found.
    pub fn load_from(
        env: impl Fn(&str) -> Option<String>,
        file: Option<&str>,
    ) -> Result<Self, SettingsError> {
        let mut problems = Vec::new();
        // The defaults depend on the environment; an invalid one is reported with the rest below.
        let app_env = env("APP_ENV")
            .and_then(|value| AppEnv::try_from(value).ok())
            .unwrap_or(AppEnv::Development);
        let defaults = Self::defaults(app_env);
        let tree = serde_json::to_value(&defaults)
            .map_err(|error| SettingsError(vec![format!("the defaults: {error}")]))?;
        let leaves = leaves(&tree);
        let base = leaves
            .iter()
            .try_fold(Config::builder(), |builder, (leaf, value)| {
                builder.set_default(&leaf.path, config_value(value))
            })
            .and_then(|builder| builder.build())
            .map_err(|error| SettingsError(vec![format!("the defaults: {error}")]))?;

        let mut builder = Config::builder().add_source(base.clone());
        if let Some(file) = file {
            builder = builder.add_source(File::with_name(file).required(false));
        }
        let mut overrides = Vec::new();
        for (leaf, _) in &leaves {
            if let Some(raw) = env(&leaf.variable) {
                let value = env_value(leaf, &raw);
                overrides.push((leaf.clone(), value.clone()));
                builder = builder
                    .set_override(&leaf.path, value)
                    .map_err(|error| SettingsError(vec![error.to_string()]))?;
            }
        }
        let config = builder.build().map_err(|error| SettingsError(vec![error.to_string()]))?;
        let settings = match config.try_deserialize::<Self>() {
            Ok(settings) => settings,
            Err(whole) => {
                // Deserializing stops at the first bad value: try each override on its own so
                // that every one that does not parse is listed.
                for (leaf, value) in overrides {
                    let single = Config::builder()
                        .add_source(base.clone())
                        .set_override(&leaf.path, value)
                        .and_then(|builder| builder.build())
                        .and_then(Config::try_deserialize::<Self>);
                    if let Err(error) = single {
                        problems.push(format!("{}: {}", leaf.variable, readable(&error)));
                    }
                }
                if problems.is_empty() {
                    problems.push(readable(&whole));
                }
                if app_env == AppEnv::Production && env("JWT_SECRET").is_none() {
                    // The full check cannot run on values that do not parse; report this one too.
                    problems.push(format!("JWT_SECRET: required in production; {JWT_SECRET_HOW}"));
                }
                return Err(SettingsError(problems));
            }
        };
        settings.check()?;
        Ok(settings)
    }

    /// Runs every check: garde's rules and the cross-field ones.
    ///
    /// # Errors
    /// [`SettingsError`] listing every problem.
    pub fn check(&self) -> Result<(), SettingsError> {
        let mut problems: Vec<String> = match self.validate() {
            Ok(()) => Vec::new(),
            Err(report) => report
                .iter()
                // `server.trusted_proxies[1]` is TRUSTED_PROXIES[1].
                .map(|(path, error)| format!("{}: {error}", variable(&path.to_string())))
                .collect(),
        };
        if self.app_env == AppEnv::Production {
            match &self.auth.jwt_secret {
                None => {
                    problems.push(format!("JWT_SECRET: required in production; {JWT_SECRET_HOW}"));
                }
                Some(secret) if secret.expose_secret().len() < JWT_SECRET_MIN_BYTES => {
                    problems.push(format!(
                        "JWT_SECRET: must be at least {JWT_SECRET_MIN_BYTES} bytes in production; \
                         {JWT_SECRET_HOW}"
                    ));
                }
                Some(_) => {}
            }
        }
        if self.payment.gateway == PaymentGateway::Http {
            if self.payment.api_url.is_none() {
                problems.push("PAYMENT_API_URL: required with PAYMENT_GATEWAY=http".to_owned());
            }
            if self.payment.api_key.is_none() {
                problems.push("PAYMENT_API_KEY: required with PAYMENT_GATEWAY=http".to_owned());
            }
        }
        problems.extend(self.database.problems());
        problems.extend(self.api_v1.problems());
        if problems.is_empty() { Ok(()) } else { Err(SettingsError(problems)) }
    }

    /// The JWT secret, generating a random one outside production (production requires one:
    /// [`Settings::check`]).
    ///
    /// # Errors
    /// When no randomness is available.
    pub fn jwt_secret_bytes(&self) -> anyhow::Result<Vec<u8>> {
        match &self.auth.jwt_secret {
            Some(secret) => Ok(secret.expose_secret().as_bytes().to_vec()),
            None => {
                let mut bytes = vec![0_u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                Ok(bytes)
            }
        }
    }

    /// Warns when tokens would be signed with a development secret: a random one (none set) or a
    /// short one. Only what issues tokens (`serve`) calls it: `seed` and `admin create` wire the
    /// same adapters but issue none, and a warning there would only alarm.
    pub fn warn_about_jwt_secret(&self) {
        match &self.auth.jwt_secret {
            Some(secret) if secret.expose_secret().len() < JWT_SECRET_MIN_BYTES => tracing::warn!(
                "JWT_SECRET is shorter than {JWT_SECRET_MIN_BYTES} bytes: acceptable in development only"
            ),
            Some(_) => {}
            None => tracing::warn!(
                "JWT_SECRET is not set: using a random secret; tokens will not survive a restart"
            ),
        }
    }

    /// `(VARIABLE, value)` for every setting, secrets and URL passwords redacted, in the order
    /// of the groups: what `orderly config check` prints.
    #[must_use]
    pub fn describe(&self) -> Vec<(String, String)> {
        let Ok(tree) = serde_json::to_value(self) else { return Vec::new() };
        leaves(&tree)
            .into_iter()
            .map(|(leaf, value)| {
                let shown = match value {
                    serde_json::Value::Null => "<not set>".to_owned(),
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (leaf.variable, shown)
            })
            .collect()
    }

    /// The database pool timeout.
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.database.database_acquire_timeout)
    }

    /// Settings for tests: the given database, port 0, cheap hashing, a fixed secret, no
    /// background job, and rate limits high enough that only the tests about them meet them.
    #[must_use]
    pub fn for_tests(database_url: String) -> Self {
        let mut settings = Self::defaults(AppEnv::Test);
        settings.server.port = 0;
        settings.server.workers = 2;
        settings.server.shutdown_timeout = 5;
        settings.server.cors_allowed_origins = vec!["https://shop.example".to_owned()];
        settings.database.database_url = database_url;
        settings.database.auto_migrate = false;
        settings.auth.jwt_secret =
            Some(SecretString::from("test-secret-that-is-long-enough-0123456789"));
        settings.auth.refresh_token_ttl = 3600;
        settings.orders.order_expiry_interval = 0;
        settings.payment.simulated_decline_above = 1_000_000;
        let generous = Quota {
            requests: NonZeroU32::new(100_000).unwrap_or(NonZeroU32::MAX),
            window: Duration::from_secs(60),
        };
        let limits = &mut settings.rate_limit;
        for quota in [
            &mut limits.anonymous,
            &mut limits.auth_per_ip,
            &mut limits.auth_per_account,
            &mut limits.authenticated,
            &mut limits.orders,
        ] {
            *quota = generous;
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::load_from(|name| vars.get(name).cloned(), None)
    }

    #[test]
    fn test_settings_are_valid() {
        Settings::for_tests("sqlite::memory:".into()).check().expect("valid");
    }

    #[test]
    fn nothing_set_is_a_valid_development_configuration() {
        let settings = load(&[]).expect("valid");
        assert_eq!(settings.app_env, AppEnv::Development);
        assert_eq!(settings.server.port, 3000);
        assert!(settings.rate_limit.enabled, "limits are on by default");
    }

    #[test]
    fn every_leaf_is_one_distinct_variable() {
        let tree = serde_json::to_value(Settings::defaults(AppEnv::Development)).expect("json");
        let mut names: Vec<String> =
            leaves(&tree).into_iter().map(|(leaf, _)| leaf.variable).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "two settings share a variable name");
        for expected in ["APP_ENV", "HOST", "PORT", "DATABASE_URL", "JWT_SECRET", "REDIS_URL"] {
            assert!(names.iter().any(|name| name == expected), "{expected} missing");
        }
    }

    #[test]
    fn a_prefixed_group_names_its_variables_after_itself() {
        let tree = serde_json::to_value(Settings::defaults(AppEnv::Development)).expect("json");
        let leaves = leaves(&tree);
        for group in PREFIXED_GROUPS {
            let prefix = format!("{}_", group.to_uppercase());
            let members: Vec<&Leaf> = leaves
                .iter()
                .map(|(leaf, _)| leaf)
                .filter(|leaf| leaf.path.starts_with(&format!("{group}.")))
                .collect();
            assert!(!members.is_empty(), "{group} is not a group");
            for leaf in members {
                assert!(leaf.variable.starts_with(&prefix), "{leaf:?}");
                assert!(!leaf.path.contains(&format!(".{group}_")), "{leaf:?} stutters");
            }
        }
        assert_eq!(variable("payment.api_url"), "PAYMENT_API_URL");
        assert_eq!(variable("rate_limit.orders"), "RATE_LIMIT_ORDERS");
        assert_eq!(variable("database.auto_migrate"), "AUTO_MIGRATE");
        assert_eq!(variable("server.trusted_proxies[1]"), "TRUSTED_PROXIES[1]");
        assert_eq!(variable("app_env"), "APP_ENV");
    }

    #[test]
    fn the_defaults_survive_their_own_serialization() {
        // `Serialize` is the redacted view; the loader feeds it back as the defaults, so no
        // default may be a secret or a URL with a password.
        for env in [AppEnv::Development, AppEnv::Test, AppEnv::Production] {
            let defaults = Settings::defaults(env);
            let tree = serde_json::to_value(&defaults).expect("json");
            let back: Settings = leaves(&tree)
                .iter()
                .try_fold(Config::builder(), |builder, (leaf, value)| {
                    builder.set_default(&leaf.path, config_value(value))
                })
                .and_then(|builder| builder.build())
                .and_then(Config::try_deserialize)
                .expect("the defaults round-trip");
            assert_eq!(back.describe(), defaults.describe());
        }
    }

    #[test]
    fn variables_reach_their_nested_settings() {
        let settings = load(&[
            ("PORT", "8080"),
            ("DATABASE_URL", "postgres://app:pw@db/orderly"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example, https://b.example"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.7"),
            ("RATE_LIMIT_ORDERS", "10/30s"),
            ("LOG_FORMAT", "JSON"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .expect("valid");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.database.database_url, "postgres://app:pw@db/orderly");
        assert_eq!(
            settings.server.cors_allowed_origins,
            ["https://a.example".to_owned(), "https://b.example".to_owned()]
        );
        assert_eq!(settings.server.trusted_proxies.len(), 2);
        assert_eq!(settings.rate_limit.orders.requests.get(), 10);
        assert_eq!(settings.rate_limit.orders.window, Duration::from_secs(30));
        assert_eq!(settings.log.log_format, LogFormat::Json);
        assert_eq!(settings.redis.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
    }

    #[test]
    fn the_shipped_env_example_is_valid_verbatim() {
        let example = include_str!("../../../.env.example");
        let vars: Vec<(String, String)> = example
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        assert!(vars.len() > 20, "the example sets its variables: {}", vars.len());
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        load(&pairs).expect(".env.example is a valid configuration as shipped");
        let known: Vec<String> = Settings::defaults(AppEnv::Development)
            .describe()
            .into_iter()
            .map(|(variable, _)| variable)
            .collect();
        for (key, _) in &vars {
            assert!(key == "RUST_LOG" || known.contains(key), "{key} is not a setting");
        }
    }

    #[test]
    fn an_empty_list_means_none() {
        let settings = load(&[("CORS_ALLOWED_ORIGINS", ""), ("TRUSTED_PROXIES", " ")])
            .expect("empty lists are valid");
        assert!(settings.server.cors_allowed_origins.is_empty());
        assert!(settings.server.trusted_proxies.is_empty());
    }

    #[test]
    fn production_changes_the_defaults_and_requires_a_secret() {
        let SettingsError(problems) = load(&[("APP_ENV", "production")]).expect_err("invalid");
        assert_eq!(
            problems,
            vec!["JWT_SECRET: required in production; generate one with `openssl rand -hex 32`"]
        );
        let secret = "x".repeat(JWT_SECRET_MIN_BYTES);
        let settings = load(&[("APP_ENV", "production"), ("JWT_SECRET", &secret)]).expect("valid");
        assert_eq!(settings.server.host, "0.0.0.0");
        assert_eq!(settings.log.log_format, LogFormat::Json);
        assert!(!settings.database.auto_migrate);
    }

    #[test]
    fn the_http_payment_gateway_needs_its_url_and_key_and_never_prints_the_key() {
        let SettingsError(problems) = load(&[("PAYMENT_GATEWAY", "http")]).expect_err("invalid");
        assert_eq!(
            problems,
            vec![
                "PAYMENT_API_URL: required with PAYMENT_GATEWAY=http".to_owned(),
                "PAYMENT_API_KEY: required with PAYMENT_GATEWAY=http".to_owned(),
            ]
        );
        let SettingsError(problems) = load(&[
            ("PAYMENT_GATEWAY", "http"),
            ("PAYMENT_API_URL", "ftp://pay.example"),
            ("PAYMENT_API_KEY", "sk_test_swordfish"),
            ("PAYMENT_MAX_ATTEMPTS", "0"),
        ])
        .expect_err("invalid");
        let mut problems = problems;
        problems.sort();
        assert_eq!(
            problems,
            [
                "PAYMENT_API_URL: must start with https:// or http://",
                "PAYMENT_MAX_ATTEMPTS: must be from 1 to 10 (got 0)",
            ]
        );
        let settings = load(&[
            ("PAYMENT_GATEWAY", "http"),
            ("PAYMENT_API_URL", "https://pay.example"),
            ("PAYMENT_API_KEY", "sk_test_swordfish"),
            ("PAYMENT_BREAKER_THRESHOLD", "3"),
        ])
        .expect("valid");
        assert_eq!(settings.payment.gateway, PaymentGateway::Http);
        assert_eq!(settings.payment.breaker_threshold, 3);
        let described = format!("{:?}", settings.describe());
        assert!(described.contains("PAYMENT_API_KEY"), "{described}");
        assert!(!described.contains("swordfish"), "{described}");
        let SettingsError(problems) = load(&[("PAYMENT_GATEWAY", "paypal")]).expect_err("invalid");
        assert!(problems[0].contains("simulated, http"), "{problems:?}");
    }

    #[test]
    fn every_value_that_does_not_parse_is_listed_at_once_with_the_choices() {
        let SettingsError(problems) = load(&[
            ("PORT", "abc"),
            ("LOG_FORMAT", "xml"),
            ("ACCESS_TOKEN_TTL", "-5"),
            ("AUTO_MIGRATE", "sometimes"),
            ("RATE_LIMIT_ANONYMOUS", "lots"),
        ])
        .expect_err("invalid");
        let keys: Vec<&str> = problems.iter().filter_map(|p| p.split(':').next()).collect();
        for key in
            ["PORT", "LOG_FORMAT", "ACCESS_TOKEN_TTL", "AUTO_MIGRATE", "RATE_LIMIT_ANONYMOUS"]
        {
            assert!(keys.contains(&key), "{key} not reported: {problems:?}");
        }
        assert_eq!(problems.len(), 5, "{problems:?}");
        let log_format = problems.iter().find(|p| p.starts_with("LOG_FORMAT")).expect("reported");
        assert!(log_format.contains("pretty, json"), "{log_format}");
    }

    #[test]
    fn every_rule_problem_is_listed_at_once_with_the_valid_range() {
        let SettingsError(problems) = load(&[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("JWT_SECRET", "short"),
            ("ACCESS_TOKEN_TTL", "1"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("APP_ENV_TYPO_IS_IGNORED", "1"),
        ])
        .expect_err("invalid");
        assert_eq!(problems.len(), 5, "{problems:?}");
        let max_connections =
            problems.iter().find(|p| p.starts_with("DATABASE_MAX_CONNECTIONS")).expect("reported");
        assert!(max_connections.contains("from 1 to 1000"), "{max_connections}");
        for key in ["DATABASE_URL", "JWT_SECRET", "ACCESS_TOKEN_TTL", "TRUSTED_PROXIES"] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key}: {problems:?}");
        }
    }

    #[test]
    fn a_transaction_pooler_needs_postgres_and_a_direct_url_for_migrations() {
        let pooled = [
            ("DATABASE_URL", "postgres://app:pw@pgbouncer:6432/orderly"),
            ("DATABASE_POOLER", "transaction"),
        ];
        // Migrating at start-up through the pooler: refused, saying what to set.
        let SettingsError(problems) =
            load(&[pooled[0], pooled[1], ("AUTO_MIGRATE", "true")]).expect_err("invalid");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("DATABASE_MIGRATION_URL: required"), "{problems:?}");
        // Migrations elsewhere (`orderly migrate` with the direct URL), or with it given: valid.
        let settings = load(&[pooled[0], pooled[1], ("AUTO_MIGRATE", "false")]).expect("valid");
        assert_eq!(settings.database.adapter().pooler, orderly_infrastructure::Pooler::Transaction);
        let settings = load(&[
            pooled[0],
            pooled[1],
            ("AUTO_MIGRATE", "true"),
            ("DATABASE_MIGRATION_URL", "postgres://app:secret@db:5432/orderly"),
        ])
        .expect("valid");
        assert_eq!(
            settings.database.adapter().migration_url.as_deref(),
            Some("postgres://app:secret@db:5432/orderly")
        );
        let described = settings.describe();
        let shown = described
            .iter()
            .find(|(key, _)| key == "DATABASE_MIGRATION_URL")
            .map(|(_, value)| value.as_str());
        assert_eq!(shown, Some("postgres://app:***@db:5432/orderly"), "its password is masked");
        // No pooler stands before SQLite, and a migration URL is PostgreSQL's only.
        let SettingsError(problems) = load(&[
            ("DATABASE_URL", "sqlite::memory:"),
            ("DATABASE_POOLER", "transaction"),
            ("DATABASE_MIGRATION_URL", "sqlite://other.db"),
        ])
        .expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("DATABASE_POOLER: `transaction` needs a postgres://"));
        assert!(problems[1].starts_with("DATABASE_MIGRATION_URL: only for PostgreSQL"));
        let SettingsError(problems) =
            load(&[("DATABASE_POOLER", "statement")]).expect_err("invalid");
        assert_eq!(
            problems,
            vec!["DATABASE_POOLER: `statement` is not one of: none, transaction".to_owned()]
        );
    }

    #[test]
    fn an_unknown_app_env_lists_the_choices() {
        let SettingsError(problems) = load(&[("APP_ENV", "staging")]).expect_err("invalid");
        assert_eq!(
            problems,
            vec!["APP_ENV: `staging` is not one of: development, test, production".to_owned()]
        );
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let mut settings = Settings::for_tests("sqlite::memory:".into());
        settings.server.cors_allowed_origins = vec![
            "https://shop.example".into(),
            "*".into(),
            "http://localhost:5173".into(),
            "shop.example".into(),
            "https://x.example/path".into(),
        ];
        let SettingsError(problems) = settings.check().expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("CORS_ALLOWED_ORIGINS")), "{problems:?}");
    }

    #[test]
    fn quotas_read_and_print_as_operators_write_them() {
        for (text, requests, seconds) in
            [("20/1m", 20, 60), ("5/30s", 5, 30), ("1000/1h", 1000, 3600)]
        {
            let quota = Quota::try_from(text.to_owned()).expect("valid");
            assert_eq!((quota.requests.get(), quota.window.as_secs()), (requests, seconds));
            assert_eq!(String::from(quota), text);
        }
        for bad in ["", "20", "0/1m", "20/0m", "20/1d", "x/1m", "20/25h", "20/90000s"] {
            assert!(Quota::try_from(bad.to_owned()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn metrics_and_traces_are_configured_by_their_variables() {
        let settings = load(&[
            ("METRICS_ENABLED", "false"),
            ("METRICS_ADDR", "127.0.0.1:9090"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "orderly-eu"),
        ])
        .expect("valid");
        let telemetry = &settings.telemetry;
        assert!(!telemetry.metrics_enabled);
        assert_eq!(telemetry.metrics_addr.as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(telemetry.otel_exporter_otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(telemetry.otel_service_name, "orderly-eu");
        let defaults = load(&[]).expect("valid");
        assert!(defaults.telemetry.metrics_enabled, "metrics are on by default");
        assert_eq!(defaults.telemetry.metrics_addr, None, "on the main listener by default");
        assert_eq!(defaults.telemetry.otel_exporter_otlp_endpoint, None, "nothing exported");
        let SettingsError(problems) = load(&[
            ("METRICS_ADDR", "localhost"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
        ])
        .expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        for key in ["METRICS_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key}: {problems:?}");
        }
    }

    #[test]
    fn the_v1_lifecycle_reads_its_dates_and_refuses_a_sunset_before_the_deprecation() {
        const GUIDE: (&str, &str) =
            ("API_V1_MIGRATION_GUIDE_URL", "https://docs.example/api-versions.md");
        let none = load(&[]).expect("valid");
        assert!(none.api_v1.enforce_sunset, "enforced by default");
        assert_eq!(none.api_v1.lifecycle(), None, "not deprecated unless dated");

        let settings = load(&[
            ("API_V1_DEPRECATED_AT", "2026-06-01T02:00:00+02:00"),
            ("API_V1_SUNSET_AT", "2026-11-01T00:00:00Z"),
            ("API_V1_ENFORCE_SUNSET", "false"),
            GUIDE,
        ])
        .expect("valid");
        let lifecycle = settings.api_v1.lifecycle().expect("deprecated");
        assert_eq!(lifecycle.deprecated_at.timestamp(), 1_780_272_000);
        assert_eq!(lifecycle.sunset_at.map(|at| at.timestamp()), Some(1_793_491_200));
        assert!(!lifecycle.enforce_sunset);
        let described = settings.describe();
        assert!(
            described
                .contains(&("API_V1_DEPRECATED_AT".to_owned(), "2026-06-01T00:00:00Z".to_owned())),
            "{described:?}"
        );
        // What `describe` prints reads back as the same instant.
        assert_eq!(
            Rfc3339::try_from("2026-06-01T00:00:00.250Z".to_owned()).map(|at| at.to_string()),
            Ok("2026-06-01T00:00:00.250Z".to_owned())
        );
        // A sunset equal to the deprecation is allowed (RFC 8594: not earlier).
        load(&[
            ("API_V1_DEPRECATED_AT", "2026-06-01T00:00:00Z"),
            ("API_V1_SUNSET_AT", "2026-06-01T00:00:00Z"),
            GUIDE,
        ])
        .expect("valid");

        let problems = |vars: &[(&str, &str)]| load(vars).expect_err("invalid").0;
        assert_eq!(
            problems(&[
                ("API_V1_DEPRECATED_AT", "2026-06-01T00:00:00Z"),
                ("API_V1_SUNSET_AT", "2026-05-31T23:59:59Z"),
                GUIDE,
            ]),
            ["API_V1_SUNSET_AT: 2026-05-31T23:59:59Z is before API_V1_DEPRECATED_AT \
              (2026-06-01T00:00:00Z); the sunset cannot come before the deprecation"]
        );
        assert_eq!(
            problems(&[("API_V1_SUNSET_AT", "2026-11-01T00:00:00Z")]),
            ["API_V1_SUNSET_AT: needs API_V1_DEPRECATED_AT (a version is deprecated before its \
              sunset)"]
        );
        assert_eq!(
            problems(&[("API_V1_DEPRECATED_AT", "2026-06-01T00:00:00Z")]),
            ["API_V1_MIGRATION_GUIDE_URL: required with API_V1_DEPRECATED_AT (where clients read \
              how to move to v2, docs/api-versions.md)"]
        );
        let mut unreadable = problems(&[
            ("API_V1_DEPRECATED_AT", "2026-06-01"),
            ("API_V1_SUNSET_AT", "soon"),
            ("API_V1_MIGRATION_GUIDE_URL", "https://docs.example/<guide>"),
        ]);
        unreadable.sort();
        assert_eq!(unreadable.len(), 2, "{unreadable:?}");
        assert!(
            unreadable[0].starts_with(
                "API_V1_DEPRECATED_AT: `2026-06-01` is not an RFC 3339 date and time like 2026-06-01T00:00:00Z"
            ),
            "{unreadable:?}"
        );
        assert!(unreadable[1].starts_with("API_V1_SUNSET_AT: `soon` is not"), "{unreadable:?}");
        assert_eq!(
            problems(&[
                ("API_V1_DEPRECATED_AT", "2026-06-01T00:00:00Z"),
                ("API_V1_MIGRATION_GUIDE_URL", "https://docs.example/<guide>"),
            ]),
            ["API_V1_MIGRATION_GUIDE_URL: must be a URL without spaces, quotes or angle brackets"]
        );
    }

    #[test]
    fn secrets_never_print() {
        let mut settings = Settings::for_tests("postgres://app:hunter2@db/orderly".into());
        settings.redis.redis_url = Some("redis://:swordfish@cache:6379".into());
        let described = format!("{:?} {:?}", settings, settings.describe());
        assert!(!described.contains("test-secret"), "{described}");
        assert!(!described.contains("hunter2"), "{described}");
        assert!(!described.contains("swordfish"), "{described}");
        assert!(described.contains("JWT_SECRET"), "{described}");
    }
}
