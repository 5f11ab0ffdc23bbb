//! One connection setup for both engines, configured from a URL.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context as _;
use orderly_migrations::{Migrator, MigratorTrait as _, SchemaManager};
use sea_orm::{
    ConnectOptions, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use orderly_application::ports::EventData;

use super::{
    health::GatedConnection,
    location::{self, ConnectionError, Location},
    outbox::{Encoder, IdOnly},
};

/// How to reach the database, and the pool. No defaults here: the server's settings state them
/// (`DATABASE_MAX_CONNECTIONS`, `DATABASE_ACQUIRE_TIMEOUT`, crates/server/src/settings.rs) and
/// convert their group into this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `postgres://user@host:5432/db` or `sqlite://path/to/file.db?mode=rwc`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (and a new connection for its
    /// handshake) before failing with "database unavailable".
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before giving up (`busy_timeout`), and a
    /// write transaction for the instance's writer permit; normally
    /// [`DatabaseSettings::SQLITE_BUSY_TIMEOUT`].
    pub sqlite_busy_timeout: Duration,
    /// What stands between the pool and PostgreSQL.
    pub pooler: Pooler,
    /// A direct URL for migrations, which need a session of their own: `None` migrates through
    /// `url`, except behind a transaction pooler, where migrating then fails and says why.
    pub migration_url: Option<String>,
}

impl DatabaseSettings {
    /// SQLite's busy timeout. Not a setting: this is the one place its value is stated (the
    /// server passes it on; tests may shorten it).
    pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Settings for tests: `url`, a pool of ten connections that waits three seconds for one,
    /// and [`DatabaseSettings::SQLITE_BUSY_TIMEOUT`]. Test values, not defaults: the server's
    /// defaults are its settings' own.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_busy_timeout: Self::SQLITE_BUSY_TIMEOUT,
            pooler: Pooler::None,
            migration_url: None,
        }
    }
}

/// What stands between the pool and PostgreSQL (ADR 0035).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// Nothing, or a pooler in session mode: each pooled connection is one PostgreSQL session,
    /// and statements stay prepared on it.
    #[default]
    None,
    /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`, and the poolers of
    /// managed PostgreSQL services): a PostgreSQL session serves a connection for one transaction
    /// at a time, then other clients. Every statement then runs in a transaction of its own
    /// (where none is open already), each transaction first drops whatever statements another
    /// client left prepared on its session (`DEALLOCATE ALL`), and no statement stays prepared
    /// from one transaction to the next (the statement cache is off): no prepared statement is
    /// ever used outside the transaction that prepared it. Nothing else holds session state:
    /// no `SET`, advisory lock or `LISTEN` outside a transaction.
    Transaction,
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

/// A pool of connections to Orderly's database, PostgreSQL or SQLite, behind a health gate that
/// fails statements at once while the database does not answer (ADR 0021).
#[derive(Clone)]
pub struct Database {
    connection: Arc<GatedConnection>,
    /// The URL, password included: never printed (see the `Debug` impl and [`redact`]).
    url: Arc<str>,
    acquire_timeout: Duration,
    /// SQLite only: the instance's one writer (see [`Database::begin_write`]).
    writer: Option<Writer>,
    /// How long a write transaction waits for the permit: SQLite's busy timeout.
    writer_timeout: Duration,
    /// How events spell the resources they carry (the API's representations, once the server
    /// gives them: [`Database::with_event_data`]).
    event_data: Encoder,
    /// What stands between the pool and PostgreSQL.
    pooler: Pooler,
    /// Where migrations run, when not through the pool (see [`Database::migrate_up`]).
    migration_url: Option<Arc<str>>,
}

/// SQLite's one writer of an instance: the permit every write transaction takes first, and the
/// connection it then writes on.
#[derive(Clone)]
struct Writer {
    permit: Arc<Semaphore>,
    /// A pool of one connection that only write transactions use, so that the writer never
    /// waits for a connection behind the reads queued for the shared pool (issue 22 measured
    /// the permit held idle that way), and its page cache stays current (no other connection
    /// of the instance writes). `None` for an in-memory database: another pool's connection
    /// would open another database; writes then borrow from the shared pool.
    connection: Option<Arc<GatedConnection>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &redact(&self.url)).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens a pool. The pool connects lazily, so a service can start (and report itself not
    /// ready) while its database is down, and recovers when the database comes back.
    ///
    /// Connections are not pinged when the pool lends them (a round trip per request saved): one
    /// that died with an outage fails its first statement and is discarded, and the health gate
    /// (ADR 0021) drains the dead ones before it lets requests through again.
    ///
    /// SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions begin
    /// with `BEGIN IMMEDIATE` (see [`Database::begin_write`]). The SQLite file's directory is
    /// created if missing.
    ///
    /// # Errors
    /// When the URL is not a PostgreSQL or SQLite URL, the SQLite directory cannot be made, or
    /// the SQLite file cannot be opened (a [`ConnectionError`]).
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let engine = engine_of(&settings.url)?;
        if engine == Engine::Sqlite {
            create_sqlite_directory(&settings.url)?;
        }
        if settings.pooler == Pooler::Transaction && engine != Engine::Postgres {
            anyhow::bail!("a transaction pooler stands only before PostgreSQL");
        }
        if let Some(url) = &settings.migration_url
            && engine_of(url)? != engine
        {
            anyhow::bail!("the migration URL must name the same engine as the database URL");
        }
        let connection = pool(settings, settings.max_connections).await?;
        let writer = match engine {
            Engine::Postgres => None,
            Engine::Sqlite => Some(Writer {
                permit: Arc::new(Semaphore::new(1)),
                connection: match Location::parse(&settings.url) {
                    Ok(Location::SqliteMemory) => None,
                    _ => {
                        Some(GatedConnection::new(pool(settings, 1).await?, 1, None, Pooler::None))
                    }
                },
            }),
        };
        Ok(Self {
            connection: GatedConnection::new(
                connection,
                settings.max_connections,
                (engine == Engine::Postgres).then(|| settings.url.clone()),
                settings.pooler,
            ),
            url: settings.url.as_str().into(),
            acquire_timeout: settings.acquire_timeout,
            writer,
            writer_timeout: settings.sqlite_busy_timeout,
            event_data: Arc::new(IdOnly),
            pooler: settings.pooler,
            migration_url: settings.migration_url.as_deref().map(Into::into),
        })
    }

    /// The same pool, whose writes give their events `data` in `event_data`'s spelling (the
    /// server gives the API's; without it, events carry the resource's id and version only).
    #[must_use]
    pub fn with_event_data(mut self, event_data: Arc<dyn EventData>) -> Self {
        self.event_data = event_data;
        self
    }

    /// How events spell the resources they carry.
    pub(crate) fn event_data(&self) -> &Encoder {
        &self.event_data
    }

    /// Where the database is, for logs and messages (no password).
    #[must_use]
    pub fn location(&self) -> Option<Location> {
        Location::parse(&self.url).ok()
    }

    /// The URL with its password masked.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks that the database can be used, within the acquire timeout, and says why not:
    /// the server and database named, the password masked, and a hint (a missing database, a
    /// refused connection, an unknown host, a timeout, a refused login, an SQLite file that
    /// cannot be opened). Commands call it before their first query; the pool itself stays
    /// lazy, so `serve` can still start while the database is down.
    ///
    /// # Errors
    /// [`ConnectionError`] when the database cannot be used.
    pub async fn check(&self) -> Result<(), ConnectionError> {
        if self.engine() == Engine::Postgres {
            return location::check_postgres(&self.url, self.acquire_timeout).await;
        }
        self.connection
            .raw()
            .ping()
            .await
            .map_err(|error| location::connection_error(&self.url, &error))
    }

    /// The engine behind the pool.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self.connection.get_database_backend() {
            DbBackend::Sqlite => Engine::Sqlite,
            _ => Engine::Postgres,
        }
    }

    /// Checks that the database answers (a ping), for readiness probes: at once "no" while the
    /// health gate is open.
    ///
    /// # Errors
    /// The database error when it does not answer within the acquire timeout, or at once while
    /// the health gate is open.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let raw = self.connection.raw();
        self.connection.run(true, raw.ping()).await.context("pinging the database")
    }

    /// What migrations run on: the pool, or a connection of their own to the migration URL.
    /// Migrations need a PostgreSQL session (their statements run outside transactions too),
    /// which a transaction pooler does not give.
    ///
    /// # Errors
    /// Behind a transaction pooler without a migration URL, or when the migration URL cannot be
    /// reached.
    async fn migration_connection(&self) -> anyhow::Result<DatabaseConnection> {
        let Some(url) = &self.migration_url else {
            if self.pooler == Pooler::Transaction {
                anyhow::bail!(
                    "migrations need a PostgreSQL session of their own, which a transaction \
                     pooler does not give: set DATABASE_MIGRATION_URL to a direct URL"
                );
            }
            return Ok(self.connection.raw().clone());
        };
        let mut options = ConnectOptions::new(url.to_string());
        options
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .connect_timeout(self.acquire_timeout)
            .sqlx_logging(false);
        options.map_sqlx_sqlite_opts(|sqlite| sqlite.foreign_keys(true));
        sea_orm::Database::connect(options)
            .await
            .map_err(|error| location::connection_error(url, &error))
            .context("connecting to the migration URL")
    }

    /// Applies pending migrations, or `steps` of them.
    ///
    /// # Errors
    /// When a migration fails; the failed migration's transaction (PostgreSQL) is rolled back.
    pub async fn migrate_up(&self, steps: Option<u32>) -> anyhow::Result<()> {
        let connection = self.migration_connection().await?;
        Migrator::up(&connection, steps).await.context("applying migrations")
    }

    /// Reverts the last `steps` migrations (all of them with `None`).
    ///
    /// # Errors
    /// When a migration's `down` fails.
    pub async fn migrate_down(&self, steps: Option<u32>) -> anyhow::Result<()> {
        let connection = self.migration_connection().await?;
        Migrator::down(&connection, steps).await.context("reverting migrations")
    }

    /// Reverts every applied migration, then applies them all again: an empty, current schema.
    ///
    /// (SeaORM's own `fresh` drops tables in an order SQLite's foreign keys refuse; the
    /// migrations' `down`s know the right order.)
    ///
    /// # Errors
    /// When reverting or migrating fails.
    pub async fn migrate_fresh(&self) -> anyhow::Result<()> {
        self.migrate_down(None).await?;
        self.migrate_up(None).await
    }

    /// Every migration with whether it is applied, in order.
    ///
    /// # Errors
    /// When the migration table cannot be read.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let connection = self.migration_connection().await?;
        let applied: Vec<String> = Migrator::get_applied_migrations(&connection)
            .await
            .context("reading applied migrations")?
            .iter()
            .map(|migration| migration.name().to_owned())
            .collect();
        Ok(Migrator::migrations()
            .iter()
            .map(|migration| {
                let name = migration.name().to_owned();
                let is_applied = applied.contains(&name);
                (name, is_applied)
            })
            .collect())
    }

    /// The migrations this binary has and the database has not applied, in order (empty: the
    /// schema is current). Read-only: unlike [`Database::migration_status`] it never creates
    /// the migration table, so readiness probes can call it. Migrations the database has and
    /// this binary does not (a newer binary ran them) are not an error here: the schema is
    /// ahead, not behind.
    ///
    /// # Errors
    /// When the database cannot be read (at once while the health gate is open).
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<String>> {
        // One transaction: behind a transaction pooler, a statement outside one may reach
        // another PostgreSQL session than the one that prepared it.
        let tx = self
            .connection
            .begin(TransactionOptions::default())
            .await
            .context("looking for the migration table")?;
        let table = Migrator::migration_table_name().to_string();
        let has_table = SchemaManager::new(&tx)
            .has_table(&table)
            .await
            .context("looking for the migration table")?;
        let applied: HashSet<String> = if has_table {
            tx.query_all_raw(Statement::from_string(
                tx.get_database_backend(),
                format!("SELECT version FROM {table}"),
            ))
            .await
            .context("reading applied migrations")?
            .iter()
            .map(|row| row.try_get::<String>("", "version"))
            .collect::<Result<_, _>>()
            .context("reading applied migrations")?
        } else {
            HashSet::new()
        };
        tx.commit().await.context("reading applied migrations")?;
        Ok(Migrator::migrations()
            .iter()
            .map(|migration| migration.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    ///
    /// # Errors
    /// When closing fails.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(writer) = self.writer.as_ref().and_then(|writer| writer.connection.as_ref()) {
            writer.raw().close_by_ref().await.context("closing the writer's connection")?;
        }
        self.connection.raw().close_by_ref().await.context("closing the database pool")
    }

    /// SQLite on a file: the connection write transactions use (see `Writer`).
    pub(crate) fn writer_connection(&self) -> Option<&GatedConnection> {
        self.writer.as_ref()?.connection.as_deref()
    }

    /// The pool behind the health gate: what the adapters run their statements on.
    pub(crate) fn connection(&self) -> &GatedConnection {
        &self.connection
    }

    /// Begins a transaction that will write: `BEGIN IMMEDIATE` on SQLite, so that it takes the
    /// write lock up front instead of failing with `SQLITE_BUSY` when a read turns into a
    /// write; a plain `BEGIN` (read committed) on PostgreSQL, where the conditional updates
    /// themselves serialize writers. The `BEGIN` goes through the health gate (nothing is
    /// written yet, so it is abandoned when the gate opens).
    ///
    /// On SQLite, which has one writer at a time anyway, the transaction first waits (up to
    /// the busy timeout) for this instance's one writer permit and holds it to its end: the
    /// writers of the instance queue in order instead of contending for the file lock, whose
    /// busy handler sleeps in steps of up to 100 ms (issue 11 measured half the throughput of
    /// placing orders), and a queued writer holds no pooled connection meanwhile. It then
    /// writes on a connection of its own (see `Writer`). Other processes on the same file
    /// (`orderly` commands) still meet the busy timeout.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, DbErr> {
        let (permit, connection) = match &self.writer {
            None => (None, &self.connection),
            Some(writer) => (
                Some(
                    tokio::time::timeout(
                        self.writer_timeout,
                        writer.permit.clone().acquire_owned(),
                    )
                    .await
                    .map_err(|_| DbErr::Custom(WRITER_BUSY.to_owned()))?
                    .map_err(|_| DbErr::Custom(WRITER_BUSY.to_owned()))?,
                ),
                writer.connection.as_ref().unwrap_or(&self.connection),
            ),
        };
        let tx = connection
            .begin(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Ok(WriteTransaction { tx, _writer: permit })
    }
}

/// The error of a write transaction that waited longer than the busy timeout for the writer
/// permit: contention, as `SQLITE_BUSY` is (see `error.rs`).
pub(crate) const WRITER_BUSY: &str = "another write transaction held the database for longer \
                                      than the busy timeout";

/// A transaction begun by [`Database::begin_write`]: a [`DatabaseTransaction`] that, on SQLite,
/// holds the instance's writer permit until it is committed, rolled back or dropped.
pub(crate) struct WriteTransaction {
    tx: DatabaseTransaction,
    _writer: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

impl WriteTransaction {
    /// Commits, then lets the next writer in.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.tx.commit().await
    }

    /// Rolls back, then lets the next writer in.
    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.tx.rollback().await
    }
}

/// A pool of `max_connections` to the database of `settings`.
async fn pool(
    settings: &DatabaseSettings,
    max_connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .connect_lazy(true)
        .sqlx_logging(false);
    let busy_timeout = settings.sqlite_busy_timeout;
    options.map_sqlx_sqlite_opts(move |sqlite| {
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            .create_if_missing(true)
    });
    if settings.pooler == Pooler::Transaction {
        // No statement outlives its transaction (see `Pooler::Transaction`).
        options.map_sqlx_postgres_opts(|postgres| postgres.statement_cache_capacity(0));
    }
    // SQLite opens its file here already: say why it cannot, as `check` does.
    Ok(sea_orm::Database::connect(options)
        .await
        .map_err(|error| location::connection_error(&settings.url, &error))?)
}

fn engine_of(url: &str) -> anyhow::Result<Engine> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else {
        anyhow::bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
    }
}

/// Creates the directory of an SQLite file URL (`sqlite://data/orderly.db?mode=rwc`).
fn create_sqlite_directory(url: &str) -> anyhow::Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(directory) =
        std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating the database directory {}", directory.display()))?;
    }
    Ok(())
}

/// The URL without its password, for messages and logs: the password of the user information
/// (split at the last `@`, since an unencoded password may contain one) and any `password` query
/// parameter are masked.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let location = match location.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{credentials}@{host}"),
        },
        None => location.to_owned(),
    };
    let query = query.map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}://{location}?{query}"),
        None => format!("{scheme}://{location}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/orderly"),
            "postgres://app:***@db:5432/orderly"
        );
        assert_eq!(redact("postgres://app@db/orderly"), "postgres://app@db/orderly");
        assert_eq!(redact("sqlite://data/orderly.db"), "sqlite://data/orderly.db");
        assert_eq!(redact("postgres://app:p@ss@db/orderly"), "postgres://app:***@db/orderly");
        assert_eq!(
            redact("postgres://app@db/orderly?sslmode=require&password=hunter2"),
            "postgres://app@db/orderly?sslmode=require&password=***"
        );
        assert_eq!(
            redact("sqlite://data/orderly.db?mode=rwc"),
            "sqlite://data/orderly.db?mode=rwc"
        );
    }

    /// `.cargo/config.toml` builds SQLite with its query planner stability guarantee (ADR 0041):
    /// a statement with `LIMIT ?` is then planned once, not again at every execution.
    #[tokio::test]
    async fn sqlite_is_built_with_the_query_planner_stability_guarantee() {
        use sea_orm::{ConnectionTrait as _, Statement};
        let database = Database::connect(&DatabaseSettings::new("sqlite::memory:"))
            .await
            .expect("an in-memory database");
        let options = database
            .connection()
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .expect("the compile options");
        let options: Vec<String> =
            options.iter().filter_map(|row| row.try_get_by_index(0).ok()).collect();
        assert!(options.iter().any(|option| option == "ENABLE_QPSG"), "{options:?}");
    }

    #[test]
    fn only_postgres_and_sqlite_urls_are_accepted() {
        assert_eq!(engine_of("postgres://x").ok(), Some(Engine::Postgres));
        assert_eq!(engine_of("postgresql://x").ok(), Some(Engine::Postgres));
        assert_eq!(engine_of("sqlite::memory:").ok(), Some(Engine::Sqlite));
        assert!(engine_of("mysql://x").is_err());
    }
}
