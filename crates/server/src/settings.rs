//! Configuration: defaults, then an optional `orderly.toml`, then the environment (and `.env` in
//! development), into typed settings checked with garde before anything starts. Every problem is
//! reported at once; secrets never print.

use std::{fmt, time::Duration};

use config::{Config, ConfigBuilder, Environment, File, builder::DefaultState};
use garde::Validate;
use serde::Deserialize;

/// Where Orderly runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// A developer's machine: safe defaults, generated secrets, pretty logs, auto-migration.
    Development,
    /// Automated tests: like development, with cheap password hashing.
    Test,
    /// Real traffic: every secret must be given; JSON logs.
    Production,
}

impl AppEnv {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for terminals.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A secret value: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The smallest accepted `JWT_SECRET`, in bytes.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// Every setting, as read from the environment (names are the upper-cased field names).
#[derive(Clone, Deserialize, Validate)]
pub struct Settings {
    #[garde(skip)]
    pub app_env: AppEnv,
    #[garde(length(min = 1))]
    pub host: String,
    #[garde(skip)]
    pub port: u16,
    #[garde(custom(check_database_url))]
    pub database_url: String,
    #[garde(range(min = 1, max = 1000))]
    pub database_max_connections: u32,
    /// Seconds a request waits for a database connection before answering 503.
    #[garde(range(min = 1, max = 300))]
    pub database_acquire_timeout: u64,
    /// Apply pending migrations when `serve` starts.
    #[garde(skip)]
    pub auto_migrate: bool,
    #[garde(skip)]
    pub jwt_secret: Option<Secret>,
    #[garde(length(min = 1))]
    pub jwt_issuer: String,
    #[garde(length(min = 1))]
    pub jwt_audience: String,
    /// Seconds an access token lives.
    #[garde(range(min = 60, max = 86_400))]
    pub access_token_ttl: u64,
    /// Seconds a refresh token lives.
    #[garde(range(min = 300, max = 31_536_000))]
    pub refresh_token_ttl: u64,
    /// Origins allowed by CORS, comma-separated (`*` for any).
    #[garde(inner(custom(check_origin)))]
    pub cors_allowed_origins: Vec<String>,
    #[garde(skip)]
    pub enable_swagger_ui: bool,
    #[garde(skip)]
    pub log_format: LogFormat,
    /// Largest request body, in bytes.
    #[garde(range(min = 1024, max = 10_485_760))]
    pub body_limit: usize,
    /// Seconds an order waits for payment before it expires.
    #[garde(range(min = 60, max = 2_592_000))]
    pub order_payment_timeout: u64,
    /// Seconds between runs of the order-expiry job (0 disables it on this instance).
    #[garde(range(max = 86_400))]
    pub order_expiry_interval: u64,
    /// `simulated` is the only gateway so far.
    #[garde(custom(check_payment_gateway))]
    pub payment_gateway: String,
    /// The simulated gateway declines charges above this many minor units.
    #[garde(range(min = 0))]
    pub payment_simulated_decline_above: i64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[garde(range(max = 300))]
    pub shutdown_timeout: u64,
    /// Worker threads (0: one per core).
    #[garde(range(max = 256))]
    pub workers: usize,
}

impl fmt::Debug for Settings {
    /// The redacted view of [`Settings::describe`]: no secret or password can reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Settings");
        for (key, value) in self.describe() {
            debug.field(key, &value);
        }
        debug.finish()
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

#[allow(clippy::trivially_copy_pass_by_ref)]
fn check_payment_gateway(name: &str, (): &()) -> garde::Result {
    if name == "simulated" { Ok(()) } else { Err(garde::Error::new("must be `simulated`")) }
}

/// The built-in defaults, safe for development; production changes a few.
fn defaults(production: bool) -> Result<ConfigBuilder<DefaultState>, config::ConfigError> {
    Config::builder()
        .set_default("app_env", "development")
        .and_then(|b| b.set_default("host", if production { "0.0.0.0" } else { "127.0.0.1" }))
        .and_then(|b| b.set_default("port", 3000))
        .and_then(|b| b.set_default("database_url", "sqlite://data/orderly.db?mode=rwc"))
        .and_then(|b| b.set_default("database_max_connections", 10))
        .and_then(|b| b.set_default("database_acquire_timeout", 3))
        .and_then(|b| b.set_default("auto_migrate", !production))
        .and_then(|b| b.set_default("jwt_issuer", "orderly"))
        .and_then(|b| b.set_default("jwt_audience", "orderly-api"))
        .and_then(|b| b.set_default("access_token_ttl", 900))
        .and_then(|b| b.set_default("refresh_token_ttl", 1_209_600))
        .and_then(|b| b.set_default("cors_allowed_origins", Vec::<String>::new()))
        .and_then(|b| b.set_default("enable_swagger_ui", true))
        .and_then(|b| b.set_default("log_format", if production { "json" } else { "pretty" }))
        .and_then(|b| b.set_default("body_limit", 65_536))
        .and_then(|b| b.set_default("order_payment_timeout", 1800))
        .and_then(|b| b.set_default("order_expiry_interval", 60))
        .and_then(|b| b.set_default("payment_gateway", "simulated"))
        .and_then(|b| b.set_default("payment_simulated_decline_above", 100_000_000))
        .and_then(|b| b.set_default("shutdown_timeout", 30))
        .and_then(|b| b.set_default("workers", 0))
}

/// Reads every typed setting on its own, so that all the values that do not parse are reported
/// together (deserializing the whole struct stops at the first).
fn type_problems(config: &Config) -> Result<(), SettingsError> {
    fn check<T: serde::de::DeserializeOwned>(
        config: &Config,
        key: &str,
        problems: &mut Vec<String>,
    ) {
        if let Err(error) = config.get::<T>(key) {
            let message = error.to_string();
            let message = message.split(" for key").next().unwrap_or(&message).to_owned();
            problems.push(format!("{}: {message}", key.to_uppercase()));
        }
    }
    let mut problems = Vec::new();
    check::<AppEnv>(config, "app_env", &mut problems);
    check::<u16>(config, "port", &mut problems);
    check::<u32>(config, "database_max_connections", &mut problems);
    check::<bool>(config, "auto_migrate", &mut problems);
    check::<bool>(config, "enable_swagger_ui", &mut problems);
    check::<LogFormat>(config, "log_format", &mut problems);
    check::<usize>(config, "body_limit", &mut problems);
    check::<usize>(config, "workers", &mut problems);
    check::<i64>(config, "payment_simulated_decline_above", &mut problems);
    for key in [
        "database_acquire_timeout",
        "access_token_ttl",
        "refresh_token_ttl",
        "order_payment_timeout",
        "order_expiry_interval",
        "shutdown_timeout",
    ] {
        check::<u64>(config, key, &mut problems);
    }
    if !problems.is_empty() && config.get_string("app_env").is_ok_and(|env| env == "production") {
        // The full check cannot run on values that do not parse; report this one with them.
        let secret = config.get_string("jwt_secret").unwrap_or_default();
        if secret.len() < JWT_SECRET_MIN_BYTES {
            problems.push(format!(
                "JWT_SECRET: must be set, at least {JWT_SECRET_MIN_BYTES} bytes, in production"
            ));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(SettingsError(problems)) }
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

impl Settings {
    /// Loads and checks the settings from `orderly.toml` (optional) and the environment.
    ///
    /// # Errors
    /// [`SettingsError`] listing every problem found.
    pub fn load() -> Result<Self, SettingsError> {
        let env = std::env::var("APP_ENV").unwrap_or_else(|_| "development".to_owned());
        if env != "production" {
            // `.env` never overrides variables that are already set.
            let _ = dotenvy::dotenv();
        }
        let env = std::env::var("APP_ENV").unwrap_or_else(|_| "development".to_owned());
        let production = env == "production";
        let config = defaults(production)
            .map_err(|error| SettingsError(vec![error.to_string()]))?
            .add_source(File::with_name("orderly").required(false))
            .add_source(
                Environment::default()
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("cors_allowed_origins"),
            )
            .build()
            .map_err(|error| SettingsError(vec![error.to_string()]))?;
        type_problems(&config)?;
        let settings: Self =
            config.try_deserialize().map_err(|error| SettingsError(vec![error.to_string()]))?;
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
                .map(|(path, error)| format!("{}: {error}", path.to_string().to_uppercase()))
                .collect(),
        };
        if self.app_env == AppEnv::Production {
            match &self.jwt_secret {
                None => problems.push("JWT_SECRET: required in production".to_owned()),
                Some(secret) if secret.expose().len() < JWT_SECRET_MIN_BYTES => {
                    problems.push(format!(
                        "JWT_SECRET: must be at least {JWT_SECRET_MIN_BYTES} bytes in production"
                    ));
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(SettingsError(problems)) }
    }

    /// The JWT secret, generating a random one outside production (with a warning).
    ///
    /// # Errors
    /// When no randomness is available.
    pub fn jwt_secret_bytes(&self) -> anyhow::Result<Vec<u8>> {
        match &self.jwt_secret {
            Some(secret) => {
                if secret.expose().len() < JWT_SECRET_MIN_BYTES {
                    tracing::warn!(
                        "JWT_SECRET is shorter than {JWT_SECRET_MIN_BYTES} bytes: acceptable in development only"
                    );
                }
                Ok(secret.expose().as_bytes().to_vec())
            }
            None => {
                tracing::warn!(
                    "JWT_SECRET is not set: using a random secret; tokens will not survive a restart"
                );
                let mut bytes = vec![0_u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                Ok(bytes)
            }
        }
    }

    /// The database pool timeout.
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.database_acquire_timeout)
    }

    /// `KEY=value` lines of the effective settings, secrets redacted, for `orderly config check`.
    #[must_use]
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APP_ENV", self.app_env.as_str().to_owned()),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("DATABASE_URL", orderly_infrastructure::persistence::redact(&self.database_url)),
            ("DATABASE_MAX_CONNECTIONS", self.database_max_connections.to_string()),
            ("DATABASE_ACQUIRE_TIMEOUT", self.database_acquire_timeout.to_string()),
            ("AUTO_MIGRATE", self.auto_migrate.to_string()),
            (
                "JWT_SECRET",
                if self.jwt_secret.is_some() {
                    "<redacted>".to_owned()
                } else {
                    "<not set: random per process>".to_owned()
                },
            ),
            ("JWT_ISSUER", self.jwt_issuer.clone()),
            ("JWT_AUDIENCE", self.jwt_audience.clone()),
            ("ACCESS_TOKEN_TTL", self.access_token_ttl.to_string()),
            ("REFRESH_TOKEN_TTL", self.refresh_token_ttl.to_string()),
            ("CORS_ALLOWED_ORIGINS", self.cors_allowed_origins.join(",")),
            ("ENABLE_SWAGGER_UI", self.enable_swagger_ui.to_string()),
            ("LOG_FORMAT", format!("{:?}", self.log_format).to_lowercase()),
            ("BODY_LIMIT", self.body_limit.to_string()),
            ("ORDER_PAYMENT_TIMEOUT", self.order_payment_timeout.to_string()),
            ("ORDER_EXPIRY_INTERVAL", self.order_expiry_interval.to_string()),
            ("PAYMENT_GATEWAY", self.payment_gateway.clone()),
            ("PAYMENT_SIMULATED_DECLINE_ABOVE", self.payment_simulated_decline_above.to_string()),
            ("SHUTDOWN_TIMEOUT", self.shutdown_timeout.to_string()),
            ("WORKERS", self.workers.to_string()),
        ]
    }

    /// Settings for tests: the given database, port 0, cheap hashing, a fixed secret.
    #[must_use]
    pub fn for_tests(database_url: String) -> Self {
        Self {
            app_env: AppEnv::Test,
            host: "127.0.0.1".to_owned(),
            port: 0,
            database_url,
            database_max_connections: 10,
            database_acquire_timeout: 3,
            auto_migrate: false,
            jwt_secret: Some(Secret::new("test-secret-that-is-long-enough-0123456789".to_owned())),
            jwt_issuer: "orderly".to_owned(),
            jwt_audience: "orderly-api".to_owned(),
            access_token_ttl: 900,
            refresh_token_ttl: 3600,
            cors_allowed_origins: vec!["https://shop.example".to_owned()],
            enable_swagger_ui: true,
            log_format: LogFormat::Pretty,
            body_limit: 65_536,
            order_payment_timeout: 1800,
            order_expiry_interval: 0,
            payment_gateway: "simulated".to_owned(),
            payment_simulated_decline_above: 1_000_000,
            shutdown_timeout: 5,
            workers: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_settings_are_valid() {
        Settings::for_tests("sqlite::memory:".into()).check().expect("valid");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let settings = Settings {
            app_env: AppEnv::Production,
            database_url: "mysql://x".into(),
            database_max_connections: 0,
            jwt_secret: Some(Secret::new("short".into())),
            access_token_ttl: 1,
            ..Settings::for_tests(String::new())
        };
        let SettingsError(problems) = settings.check().expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("DATABASE_URL")));
        assert!(problems.iter().any(|p| p.starts_with("JWT_SECRET")));
        assert!(problems.iter().any(|p| p.starts_with("ACCESS_TOKEN_TTL")));
    }

    #[test]
    fn every_value_that_does_not_parse_is_listed_at_once() {
        let config = defaults(false)
            .and_then(|b| b.set_override("port", "abc"))
            .and_then(|b| b.set_override("log_format", "xml"))
            .and_then(|b| b.set_override("access_token_ttl", "-5"))
            .and_then(|b| b.set_override("auto_migrate", "sometimes"))
            .and_then(|b| b.build())
            .expect("a config");
        let SettingsError(problems) = type_problems(&config).expect_err("invalid");
        let keys: Vec<&str> = problems.iter().filter_map(|p| p.split(':').next()).collect();
        assert_eq!(
            keys,
            ["PORT", "AUTO_MIGRATE", "LOG_FORMAT", "ACCESS_TOKEN_TTL"],
            "{problems:?}"
        );
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let settings = Settings {
            cors_allowed_origins: vec![
                "https://shop.example".into(),
                "*".into(),
                "http://localhost:5173".into(),
                "shop.example".into(),
                "https://x.example/path".into(),
            ],
            ..Settings::for_tests("sqlite::memory:".into())
        };
        let SettingsError(problems) = settings.check().expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("CORS_ALLOWED_ORIGINS")), "{problems:?}");
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let settings = Settings {
            app_env: AppEnv::Production,
            jwt_secret: None,
            ..Settings::for_tests("sqlite::memory:".into())
        };
        let SettingsError(problems) = settings.check().expect_err("invalid");
        assert_eq!(problems, vec!["JWT_SECRET: required in production".to_owned()]);
    }

    #[test]
    fn secrets_never_print() {
        let settings = Settings::for_tests("postgres://app:hunter2@db/orderly".into());
        let described = format!("{:?} {:?}", settings, settings.describe());
        assert!(!described.contains("test-secret"));
        assert!(!described.contains("hunter2"));
    }
}
