//! Prometheus series read from the adapters when Prometheus scrapes (ADR 0018): the database
//! pool and the password-hashing gate. Each is registered in the registry of the application
//! instance that owns the adapter. (The payment gateway counts its calls itself:
//! `services::MeteredPaymentGateway`.)

use prometheus::{
    IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::{Database, Engine, services::Argon2PasswordHasher};

/// The pool's connections at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections, idle or in use.
    pub open: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl PoolStatus {
    /// Connections lent to a query or a transaction.
    #[must_use]
    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}

impl Database {
    /// The pool's connections now (on an SQLite file, the writer's connection included).
    #[must_use]
    pub fn pool_status(&self) -> PoolStatus {
        let connection = self.connection();
        let (open, idle, max) = match self.engine() {
            Engine::Postgres => {
                let pool = connection.get_postgres_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            Engine::Sqlite => {
                // The shared pool and, on a file, the writer's connection beside it.
                let pools = std::iter::once(connection)
                    .chain(self.writer_connection())
                    .map(|connection| connection.get_sqlite_connection_pool());
                pools.fold((0, 0, 0), |(open, idle, max), pool| {
                    (
                        open + pool.size(),
                        idle + pool.num_idle(),
                        max + pool.options().get_max_connections(),
                    )
                })
            }
        };
        PoolStatus { open, idle: u32::try_from(idle).unwrap_or(u32::MAX), max }
    }

    /// Registers `orderly_db_connections{state="idle|in_use"}` and
    /// `orderly_db_connections_max`, read from the pool at each scrape.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        let connections = IntGaugeVec::new(
            Opts::new(
                "orderly_db_connections",
                "Open database connections, by state: idle in the pool, or in_use.",
            ),
            &["state"],
        )?;
        let max = IntGauge::new(
            "orderly_db_connections_max",
            "The most database connections the pool opens (DATABASE_MAX_CONNECTIONS; on an SQLite file, one more for writes).",
        )?;
        registry.register(Box::new(PoolCollector { database: self.clone(), connections, max }))
    }
}

struct PoolCollector {
    database: Database,
    connections: IntGaugeVec,
    max: IntGauge,
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.connections.desc().into_iter().chain(self.max.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = self.database.pool_status();
        self.connections.with_label_values(&["idle"]).set(i64::from(status.idle));
        self.connections.with_label_values(&["in_use"]).set(i64::from(status.in_use()));
        self.max.set(i64::from(status.max));
        let mut families = self.connections.collect();
        families.extend(self.max.collect());
        families
    }
}

impl Argon2PasswordHasher {
    /// Registers the hashing gate's series, read at each scrape:
    /// `orderly_password_hash_slots`, `orderly_password_hash_in_use`,
    /// `orderly_password_hash_waiting` and `orderly_password_hash_refused_total`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        registry.register(Box::new(HashingCollector {
            hasher: self.clone(),
            slots: gauge(
                "orderly_password_hash_slots",
                "Password hashes that may run at once (PASSWORD_HASH_CONCURRENCY).",
            )?,
            in_use: gauge("orderly_password_hash_in_use", "Password hashes running.")?,
            waiting: gauge(
                "orderly_password_hash_waiting",
                "Password hashes queued for a free slot (at most PASSWORD_HASH_QUEUE).",
            )?,
            refused: IntCounter::new(
                "orderly_password_hash_refused_total",
                "Requests refused with 503 SERVER_BUSY because the hashing slots and queue were full.",
            )?,
        }))
    }
}

struct HashingCollector {
    hasher: Argon2PasswordHasher,
    slots: IntGauge,
    in_use: IntGauge,
    waiting: IntGauge,
    refused: IntCounter,
}

impl Collector for HashingCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.slots, &self.in_use, &self.waiting]
            .into_iter()
            .flat_map(Collector::desc)
            .chain(self.refused.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = self.hasher.status();
        let as_i64 = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
        self.slots.set(as_i64(status.slots));
        self.in_use.set(as_i64(status.in_use));
        self.waiting.set(as_i64(status.waiting));
        // The gate keeps the count; the counter shows it.
        self.refused.inc_by(status.refused.saturating_sub(self.refused.get()));
        [&self.slots, &self.in_use, &self.waiting]
            .into_iter()
            .flat_map(Collector::collect)
            .chain(self.refused.collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatabaseSettings, services::HashingLimits};

    #[tokio::test]
    async fn the_pool_and_the_hashing_gate_are_read_at_each_scrape() {
        let mut settings = DatabaseSettings::new("sqlite::memory:");
        settings.max_connections = 3;
        let database = Database::connect(&settings).await.expect("a pool");
        let hasher = Argon2PasswordHasher::for_tests(HashingLimits::new(2, 5)).expect("a hasher");
        let registry = Registry::new();
        database.register_metrics(&registry).expect("registers");
        hasher.register_metrics(&registry).expect("registers");
        database.ping().await.expect("the database answers");
        let text =
            prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("renders");
        for line in [
            "orderly_db_connections_max 3",
            "orderly_password_hash_slots 2",
            "orderly_password_hash_in_use 0",
            "orderly_password_hash_waiting 0",
            "orderly_password_hash_refused_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let pool = database.pool_status();
        assert!(pool.idle <= pool.open && pool.open <= pool.max, "{pool:?}");
        for state in ["idle", "in_use"] {
            let series = format!(r#"orderly_db_connections{{state="{state}"}} "#);
            assert!(text.lines().any(|l| l.starts_with(&series)), "{series} missing from\n{text}");
        }
    }
}
