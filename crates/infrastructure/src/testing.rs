//! Fresh, migrated databases for tests: an SQLite file per test, always; a PostgreSQL database
//! per test when `TEST_DATABASE_URL` is set, cloned from a migrated template database and dropped
//! when the test ends (the approach of crates.io's `crates_io_test_db`).
//!
//! When `TEST_DATABASE_URL` is set and the server cannot be reached, [`TestDatabase::postgres`]
//! panics: CI sets it, and a missing server must fail CI rather than skip the tests.
//!
//! When `TEST_DATABASE_POOLER_URL` names a pooler in transaction mode in front of that server
//! (PgBouncer's `pool_mode = transaction`, any database name passed through), the databases are
//! still made through `TEST_DATABASE_URL`, but the tests' pools reach them through the pooler, as
//! a deployment with `DATABASE_POOLER=transaction` does, and migrate through the direct URL.

use std::path::PathBuf;

use orderly_domain::Uuid;
use orderly_migrations::{Migrator, MigratorTrait as _};
use sea_orm::{ConnectOptions, ConnectionTrait as _, DatabaseConnection, Statement};
use sha2::{Digest as _, Sha256};

use crate::{Database, DatabaseSettings, Pooler};

/// The variable naming the PostgreSQL server for tests.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// The variable naming a transaction pooler in front of that server, through which the tests'
/// pools reach their databases (any database name in it is replaced).
pub const TEST_DATABASE_POOLER_URL: &str = "TEST_DATABASE_POOLER_URL";

/// Serializes template creation and cloning across test processes.
const TEMPLATE_LOCK: i64 = 0x006f_7264_6572_6c79;

enum Cleanup {
    SqliteFile(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// A migrated database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    database: Option<Database>,
    settings: DatabaseSettings,
    cleanup: Cleanup,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &crate::persistence::redact(&self.settings.url))
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// A new SQLite file in the temporary directory, migrated.
    ///
    /// # Panics
    /// When the file cannot be created or migrated.
    pub async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("orderly-test-{}.db", Uuid::now_v7()));
        let settings = DatabaseSettings::new(format!("sqlite://{}?mode=rwc", path.display()));
        let database = Database::connect(&settings).await.expect("opening a test SQLite database");
        database.migrate_up(None).await.expect("migrating a test SQLite database");
        Self { database: Some(database), settings, cleanup: Cleanup::SqliteFile(path) }
    }

    /// A new PostgreSQL database cloned from the migrated template, or `None` when
    /// `TEST_DATABASE_URL` is not set.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is set but the server cannot be reached or the database cannot
    /// be created: a configured PostgreSQL run must fail, never skip.
    pub async fn postgres() -> Option<Self> {
        let admin_url = std::env::var(TEST_DATABASE_URL).ok().filter(|url| !url.is_empty())?;
        let name = format!("orderly_test_{}", Uuid::now_v7().simple());
        let admin = admin_connection(&admin_url).await;
        lock(&admin, true).await;
        let template = ensure_template(&admin, &admin_url).await;
        execute(&admin, &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).await;
        lock(&admin, false).await;
        drop(admin);
        let direct = with_database(&admin_url, &name);
        let settings = match std::env::var(TEST_DATABASE_POOLER_URL).ok().filter(|u| !u.is_empty())
        {
            Some(pooler) => DatabaseSettings {
                pooler: Pooler::Transaction,
                migration_url: Some(direct),
                ..DatabaseSettings::new(with_database(&pooler, &name))
            },
            None => DatabaseSettings::new(direct),
        };
        let database = Database::connect(&settings).await.expect("opening a test database");
        let cleanup = Cleanup::Postgres { admin_url, name };
        Some(Self { database: Some(database), settings, cleanup })
    }

    /// Both engines: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<Self> {
        let mut databases = vec![Self::sqlite().await];
        databases.extend(Self::postgres().await);
        databases
    }

    /// The pool.
    ///
    /// # Panics
    /// Never while the value lives.
    #[must_use]
    pub fn database(&self) -> &Database {
        self.database.as_ref().expect("the database lives until drop")
    }

    /// The URL of this database (through the pooler, when there is one).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// How the pool reaches this database: its URL, the pooler in between, and the direct URL
    /// migrations take.
    #[must_use]
    pub fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop(self.database.take());
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres { admin_url, name } => drop_postgres_database(admin_url, name),
        }
    }
}

/// Drops the PostgreSQL database `name` if it exists, from a `Drop` impl.
fn drop_postgres_database(admin_url: &str, name: &str) {
    let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
    // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
    let dropped = std::thread::spawn({
        let name = name.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let admin = admin_connection(&admin_url).await;
                    execute(&admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                });
            }
        }
    })
    .join();
    if dropped.is_err() {
        eprintln!("could not drop test database {name}");
    }
}

/// A PostgreSQL database name on the `TEST_DATABASE_URL` server that does not exist, for tests
/// of what a missing database does (`orderly db create`, the error that names it). Whatever a
/// test creates under this name is dropped with the value.
pub struct ScratchPostgres {
    admin_url: String,
    name: String,
}

impl ScratchPostgres {
    /// A fresh name, or `None` when `TEST_DATABASE_URL` is not set.
    #[must_use]
    pub fn new() -> Option<Self> {
        let admin_url = std::env::var(TEST_DATABASE_URL).ok().filter(|url| !url.is_empty())?;
        Some(Self { admin_url, name: format!("orderly_scratch_{}", Uuid::now_v7().simple()) })
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the database, with the credentials of `TEST_DATABASE_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// Whether the database exists now.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn exists(&self) -> bool {
        let admin = admin_connection(&self.admin_url).await;
        admin
            .query_one_raw(Statement::from_string(
                admin.get_database_backend(),
                format!("SELECT 1 FROM pg_database WHERE datname = '{}'", self.name),
            ))
            .await
            .expect("looking for the database")
            .is_some()
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        drop_postgres_database(&self.admin_url, &self.name);
    }
}

async fn admin_connection(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options).await.unwrap_or_else(|error| {
        panic!(
            "{TEST_DATABASE_URL} is set but PostgreSQL at {} cannot be reached: {error}",
            crate::persistence::redact(url)
        )
    })
}

async fn execute(connection: &DatabaseConnection, sql: &str) {
    connection
        .execute_raw(Statement::from_string(connection.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

async fn lock(connection: &DatabaseConnection, acquire: bool) {
    let function = if acquire { "pg_advisory_lock" } else { "pg_advisory_unlock" };
    execute(connection, &format!("SELECT {function}({TEMPLATE_LOCK})")).await;
}

/// The template's name changes with the set of migrations, so a new migration gets a new
/// template and old test runs never see a stale schema.
async fn ensure_template(admin: &DatabaseConnection, admin_url: &str) -> String {
    let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    let digest = hex::encode(Sha256::digest(names.join(",").as_bytes()));
    let template = format!("orderly_template_{}", &digest[..16]);
    let exists = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
        ))
        .await
        .expect("looking for the template database")
        .is_some();
    if !exists {
        // Build under a temporary name and rename when complete: a crash mid-way never leaves
        // a half-migrated template behind under the real name.
        let building = format!("{template}_building");
        execute(admin, &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).await;
        execute(admin, &format!("CREATE DATABASE \"{building}\"")).await;
        let database =
            Database::connect(&DatabaseSettings::new(with_database(admin_url, &building)))
                .await
                .expect("opening the template database");
        database.migrate_up(None).await.expect("migrating the template database");
        database.close().await.expect("closing the template database");
        execute(admin, &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\"")).await;
    }
    template
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Sample count and sum of the histogram `name` in `registry`: how many groups, and how many
/// items in all, for the sizes of grouped work (ADR 0042, 0044).
///
/// # Panics
/// When `registry` has no such series.
#[must_use]
pub fn histogram(registry: &prometheus::Registry, name: &str) -> (u64, f64) {
    let family = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name)
        .unwrap_or_else(|| panic!("{name} is registered"));
    let histogram = family.get_metric()[0].get_histogram();
    (histogram.get_sample_count(), histogram.get_sample_sum())
}

/// A builder of the tests' HTTP clients (plain HTTP). reqwest is built without a TLS provider of
/// its own (ADR 0022) and refuses to build a client until the process has one, so it is installed
/// first, as the server's `main` does.
pub fn http_client() -> reqwest::ClientBuilder {
    crate::install_tls_provider();
    reqwest::Client::builder()
}

/// Runs each named test body, an `async fn(&Database)`, on SQLite and, when configured, on
/// PostgreSQL, as separate tests named `sqlite::<name>` and `postgres::<name>`. Bodies that
/// need the [`TestDatabase`] itself (its URL, its settings) are listed after
/// `with_test_database:` and take `&TestDatabase`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_engines!(@passing database; $($name),*);
    };
    (with_test_database: $($name:ident),* $(,)?) => {
        $crate::on_both_engines!(@passing test_database; $($name),*);
    };
    (@passing $pass:ident; $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::testing::TestDatabase::sqlite().await;
                    super::$name($crate::on_both_engines!(@pass $pass db)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::testing::TestDatabase::postgres().await else {
                        eprintln!("{} is not set: PostgreSQL not tested", $crate::testing::TEST_DATABASE_URL);
                        return;
                    };
                    super::$name($crate::on_both_engines!(@pass $pass db)).await;
                }
            )*
        }
    };
    (@pass database $db:ident) => { $db.database() };
    (@pass test_database $db:ident) => { &$db };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_in_any_url_shape() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t"), "postgres://u@h:5432/t");
        assert_eq!(with_database("postgres://u@h:5432", "t"), "postgres://u@h:5432/t");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t"),
            "postgres://u:p@h/t?sslmode=disable"
        );
    }
}
