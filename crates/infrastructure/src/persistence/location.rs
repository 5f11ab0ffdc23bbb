//! Where the database is, why it cannot be used, and creating it: what an operator needs when
//! the first connection fails. Messages name the engine, the host, the port and the database (or
//! the SQLite file), show `DATABASE_URL` with its password masked, and end with a hint.
//!
//! The pool hides why a PostgreSQL connection failed (it retries until its timeout and then
//! reports only "pool timed out"), so [`check`] opens one connection of its own.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    str::FromStr as _,
    time::Duration,
};

use sea_orm::sqlx::{
    self, Connection as _,
    postgres::{PgConnectOptions, PgConnection},
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

use super::connection::redact;

/// Where a database URL points, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A PostgreSQL database.
    Postgres {
        /// The host name or address (or the Unix socket's directory).
        host: String,
        /// The port.
        port: u16,
        /// The database name.
        database: String,
        /// The user name.
        user: String,
    },
    /// An SQLite file.
    Sqlite {
        /// The file, as an absolute path.
        path: PathBuf,
    },
    /// An in-memory SQLite database (tests).
    SqliteMemory,
}

impl Location {
    /// Reads the location out of a `postgres://` or `sqlite:` URL.
    ///
    /// # Errors
    /// When the URL is neither, or the driver cannot parse it.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|error| {
                anyhow::anyhow!("DATABASE_URL {} cannot be read: {error}", redact(url))
            })?;
            let host = match options.get_socket() {
                Some(socket) => socket.display().to_string(),
                None => options.get_host().to_owned(),
            };
            let user = options.get_username().to_owned();
            // Without a database name, PostgreSQL uses the user's name.
            let database = options.get_database().unwrap_or(&user).to_owned();
            Ok(Self::Postgres { host, port: options.get_port(), database, user })
        } else if url.starts_with("sqlite:") {
            let location = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let (file, query) = location.split_once('?').unwrap_or((location, ""));
            if file.is_empty() || file == ":memory:" || query.split('&').any(|p| p == "mode=memory")
            {
                return Ok(Self::SqliteMemory);
            }
            let options = SqliteConnectOptions::from_str(url).map_err(|error| {
                anyhow::anyhow!("DATABASE_URL {} cannot be read: {error}", redact(url))
            })?;
            let path = options.get_filename();
            Ok(Self::Sqlite { path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()) })
        } else {
            anyhow::bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
        }
    }

    /// The engine's name as logs show it: `postgres` or `sqlite`.
    #[must_use]
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Sqlite { .. } | Self::SqliteMemory => "sqlite",
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { host, port, database, user } => {
                write!(f, "PostgreSQL database \"{database}\" on {host}:{port} (user \"{user}\")")
            }
            Self::Sqlite { path } => write!(f, "SQLite file {}", path.display()),
            Self::SqliteMemory => f.write_str("in-memory SQLite database"),
        }
    }
}

/// What went wrong when the database was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionProblem {
    /// The PostgreSQL server answers, but has no database of that name.
    DatabaseMissing,
    /// Nothing accepts connections at the host and port.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// Something answers at the host and port, but not as PostgreSQL does.
    NotPostgres,
    /// No answer within the timeout.
    TimedOut(Duration),
    /// The server refused the user name or password.
    AuthenticationFailed(String),
    /// The user may not do what was asked (create a database).
    NotPermitted(String),
    /// The SQLite file cannot be opened or created.
    CannotOpen(String),
    /// Anything else, with the driver's message.
    Other(String),
    /// `DATABASE_URL` cannot be read.
    InvalidUrl(String),
}

/// The database cannot be used: what failed, where, and what to try. Never shows a password.
#[derive(Debug, Clone)]
pub struct ConnectionError {
    /// `None` when the URL cannot be read.
    location: Option<Location>,
    url: String,
    problem: ConnectionProblem,
}

impl ConnectionError {
    fn new(location: &Location, url: &str, problem: ConnectionProblem) -> Self {
        Self { location: Some(location.clone()), url: redact(url), problem }
    }

    fn invalid_url(url: &str, error: &anyhow::Error) -> Self {
        Self {
            location: None,
            url: redact(url),
            problem: ConnectionProblem::InvalidUrl(format!("{error:#}")),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn problem(&self) -> &ConnectionProblem {
        &self.problem
    }

    /// Where (`None` when the URL cannot be read).
    #[must_use]
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    fn hint(&self) -> String {
        let (host, port, database, user) = match &self.location {
            Some(Location::Postgres { host, port, database, user }) => {
                (host.as_str(), *port, database.as_str(), user.as_str())
            }
            _ => ("", 0, "", ""),
        };
        match &self.problem {
            ConnectionProblem::DatabaseMissing => format!(
                "create it with `orderly db create` (or `createdb -h {host} -p {port} -U {user} {database}`), \
                 or point DATABASE_URL at an existing database"
            ),
            ConnectionProblem::Refused => format!(
                "nothing accepts connections on {host}:{port}: start PostgreSQL (`docker compose up -d postgres` \
                 runs one on 127.0.0.1:5432) or correct the host and port in DATABASE_URL"
            ),
            ConnectionProblem::UnknownHost => format!(
                "the host `{host}` does not resolve: correct it in DATABASE_URL (`127.0.0.1` for a local server, \
                 the service name inside docker compose)"
            ),
            ConnectionProblem::NotPostgres => format!(
                "something other than PostgreSQL answers on {host}:{port}: correct the port in DATABASE_URL"
            ),
            ConnectionProblem::TimedOut(_) => {
                "check the host and port in DATABASE_URL and that no firewall drops the connection; \
                 DATABASE_ACQUIRE_TIMEOUT sets how long to wait"
                    .to_owned()
            }
            ConnectionProblem::AuthenticationFailed(_) => {
                format!("check the user (`{user}`) and the password in DATABASE_URL")
            }
            ConnectionProblem::NotPermitted(_) => format!(
                "the user `{user}` may not create databases: create it as a superuser \
                 (`createdb -h {host} -p {port} -O {user} {database}`)"
            ),
            ConnectionProblem::CannotOpen(_) => {
                "check that the file's directory exists and is writable; without `mode=rwc` in \
                 DATABASE_URL the file must exist (`orderly db create` creates it)"
                    .to_owned()
            }
            ConnectionProblem::Other(_) => "check DATABASE_URL".to_owned(),
            ConnectionProblem::InvalidUrl(_) => {
                "write it as `postgres://user:password@host:5432/database` or \
                 `sqlite://path/to/file.db?mode=rwc`"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(location) = &self.location else {
            let message = match &self.problem {
                ConnectionProblem::InvalidUrl(message) => message.as_str(),
                _ => "cannot be read",
            };
            return write!(f, "{message}\n  hint: {}", self.hint());
        };
        match &self.problem {
            ConnectionProblem::DatabaseMissing => {
                if let Location::Postgres { host, port, database, .. } = location {
                    write!(
                        f,
                        "the PostgreSQL server on {host}:{port} has no database \"{database}\""
                    )?;
                } else {
                    write!(f, "{location} does not exist")?;
                }
            }
            ConnectionProblem::Refused => {
                write!(f, "cannot connect to the {location}: connection refused")?;
            }
            ConnectionProblem::UnknownHost => {
                write!(f, "cannot connect to the {location}: unknown host")?;
            }
            ConnectionProblem::NotPostgres => {
                write!(f, "cannot connect to the {location}: it does not answer as PostgreSQL")?;
            }
            ConnectionProblem::TimedOut(after) if after.is_zero() => {
                write!(f, "cannot connect to the {location}: no answer in time")?;
            }
            ConnectionProblem::TimedOut(after) => write!(
                f,
                "cannot connect to the {location}: no answer within {} s",
                after.as_secs_f32()
            )?,
            ConnectionProblem::AuthenticationFailed(message) => {
                write!(f, "the {location} refused the login: {message}")?;
            }
            ConnectionProblem::NotPermitted(message)
            | ConnectionProblem::CannotOpen(message)
            | ConnectionProblem::Other(message)
            | ConnectionProblem::InvalidUrl(message) => {
                write!(f, "cannot use the {location}: {message}")?;
            }
        }
        write!(f, " (DATABASE_URL={})\n  hint: {}", self.url, self.hint())
    }
}

impl std::error::Error for ConnectionError {}

/// Why a connection attempt failed, as the operator should read it.
fn classify(error: &sqlx::Error) -> ConnectionProblem {
    match error {
        sqlx::Error::Database(database) => {
            let message = database.message().to_owned();
            match database.code().as_deref() {
                // invalid_catalog_name
                Some("3D000") => ConnectionProblem::DatabaseMissing,
                // invalid_password, invalid_authorization_specification
                Some("28P01" | "28000") => ConnectionProblem::AuthenticationFailed(message),
                // insufficient_privilege
                Some("42501") => ConnectionProblem::NotPermitted(message),
                // SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM
                Some("14" | "8" | "3") => ConnectionProblem::CannotOpen(message),
                _ => ConnectionProblem::Other(message),
            }
        }
        sqlx::Error::Io(io) => classify_io(io),
        sqlx::Error::PoolTimedOut => ConnectionProblem::TimedOut(Duration::ZERO),
        sqlx::Error::Tls(tls) => ConnectionProblem::Other(format!("TLS failed: {tls}")),
        sqlx::Error::Protocol(_) => ConnectionProblem::NotPostgres,
        other => ConnectionProblem::Other(other.to_string()),
    }
}

fn classify_io(error: &io::Error) -> ConnectionProblem {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectionProblem::Refused,
        io::ErrorKind::TimedOut => ConnectionProblem::TimedOut(Duration::ZERO),
        _ => {
            let message = error.to_string();
            // getaddrinfo's failures carry no error kind of their own.
            if message.contains("lookup address") || message.contains("Name or service not known") {
                ConnectionProblem::UnknownHost
            } else {
                ConnectionProblem::Other(message)
            }
        }
    }
}

/// Opens one PostgreSQL connection within `timeout`.
async fn connect_postgres(
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, ConnectionProblem> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Err(_) => Err(ConnectionProblem::TimedOut(timeout)),
        Ok(Err(error)) => Err(match classify(&error) {
            ConnectionProblem::TimedOut(_) => ConnectionProblem::TimedOut(timeout),
            problem => problem,
        }),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// Checks that PostgreSQL at `url` accepts a connection within `timeout`, with one connection
/// of its own (outside any pool, so that the cause of a failure is not lost).
///
/// # Errors
/// [`ConnectionError`] naming the server, the database and what to try.
pub(crate) async fn check_postgres(url: &str, timeout: Duration) -> Result<(), ConnectionError> {
    let location =
        Location::parse(url).map_err(|error| ConnectionError::invalid_url(url, &error))?;
    let fail = |problem| ConnectionError::new(&location, url, problem);
    let options = PgConnectOptions::from_str(url)
        .map_err(|error| fail(ConnectionProblem::Other(error.to_string())))?;
    let connection = connect_postgres(&options, timeout).await.map_err(fail)?;
    let _ = connection.close().await;
    Ok(())
}

/// The [`ConnectionError`] of a failed query through the pool on `url` (SQLite reports why it
/// cannot open its file through the pool).
pub(crate) fn connection_error(url: &str, error: &sea_orm::DbErr) -> ConnectionError {
    use sea_orm::{DbErr, RuntimeErr};
    let problem = match error {
        DbErr::Conn(RuntimeErr::SqlxError(error))
        | DbErr::Exec(RuntimeErr::SqlxError(error))
        | DbErr::Query(RuntimeErr::SqlxError(error)) => classify(error),
        DbErr::ConnectionAcquire(_) => ConnectionProblem::TimedOut(Duration::ZERO),
        other => ConnectionProblem::Other(other.to_string()),
    };
    match Location::parse(url) {
        Ok(location) => ConnectionError::new(&location, url, problem),
        Err(error) => ConnectionError::invalid_url(url, &error),
    }
}

/// What [`create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The database (or file) was created.
    Created,
    /// It existed already; nothing was changed.
    AlreadyExists,
    /// An in-memory database: there is nothing to create.
    InMemory,
}

/// Creates the database `url` names if it does not exist: the PostgreSQL database (connecting
/// to the server's `postgres` database, or `template1`, as the same user), or the SQLite file
/// and its directory.
///
/// # Errors
/// [`ConnectionError`] when the server cannot be reached, or the user may not create databases.
pub async fn create(url: &str, timeout: Duration) -> Result<(Location, Created), ConnectionError> {
    let location =
        Location::parse(url).map_err(|error| ConnectionError::invalid_url(url, &error))?;
    let fail = |problem| ConnectionError::new(&location, url, problem);
    let created = match &location {
        Location::SqliteMemory => Created::InMemory,
        Location::Sqlite { path } => create_sqlite(url, path).await.map_err(fail)?,
        Location::Postgres { database, .. } => {
            let options = PgConnectOptions::from_str(url)
                .map_err(|error| fail(ConnectionProblem::Other(error.to_string())))?;
            create_postgres(&options, database, timeout).await.map_err(fail)?
        }
    };
    Ok((location, created))
}

async fn create_sqlite(url: &str, path: &Path) -> Result<Created, ConnectionProblem> {
    if path.exists() {
        return Ok(Created::AlreadyExists);
    }
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory).map_err(|error| {
            ConnectionProblem::CannotOpen(format!(
                "cannot create the directory {}: {error}",
                directory.display()
            ))
        })?;
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| ConnectionProblem::Other(error.to_string()))?
        .create_if_missing(true);
    let connection =
        SqliteConnection::connect_with(&options).await.map_err(|error| classify(&error))?;
    let _ = connection.close().await;
    Ok(Created::Created)
}

async fn create_postgres(
    target: &PgConnectOptions,
    database: &str,
    timeout: Duration,
) -> Result<Created, ConnectionProblem> {
    // The target may be missing, so connect to a database every server has.
    let mut admin = match connect_postgres(&target.clone().database("postgres"), timeout).await {
        Err(ConnectionProblem::DatabaseMissing) => {
            connect_postgres(&target.clone().database("template1"), timeout).await?
        }
        other => other?,
    };
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(database)
        .fetch_optional(&mut admin)
        .await
        .map_err(|error| classify(&error))?
        .is_some();
    let created = if exists {
        Created::AlreadyExists
    } else {
        let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await {
            Ok(_) => Created::Created,
            // duplicate_database: created by someone else in the meantime.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {
                Created::AlreadyExists
            }
            Err(error) => return Err(classify(&error)),
        }
    };
    let _ = admin.close().await;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_its_host_port_database_and_user_but_not_its_password() {
        let location = Location::parse("postgres://app:hunter2@db.internal:6543/shop").expect("ok");
        assert_eq!(
            location,
            Location::Postgres {
                host: "db.internal".into(),
                port: 6543,
                database: "shop".into(),
                user: "app".into()
            }
        );
        assert_eq!(
            location.to_string(),
            "PostgreSQL database \"shop\" on db.internal:6543 (user \"app\")"
        );
        assert_eq!(location.engine(), "postgres");
    }

    #[test]
    fn a_postgres_url_without_port_or_database_uses_the_defaults() {
        let Location::Postgres { port, database, .. } =
            Location::parse("postgres://app@localhost").expect("ok")
        else {
            panic!("a PostgreSQL location");
        };
        assert_eq!((port, database.as_str()), (5432, "app"));
    }

    #[test]
    fn an_sqlite_url_names_its_file() {
        let Location::Sqlite { path } =
            Location::parse("sqlite://data/orderly.db?mode=rwc").expect("ok")
        else {
            panic!("an SQLite location");
        };
        assert!(path.is_absolute() && path.ends_with("data/orderly.db"), "{}", path.display());
        assert_eq!(Location::parse("sqlite::memory:").ok(), Some(Location::SqliteMemory));
    }

    #[test]
    fn an_error_message_masks_the_password_and_gives_a_hint() {
        let url = "postgres://app:hunter2@db:5432/shop";
        let location = Location::parse(url).expect("ok");
        let message =
            ConnectionError::new(&location, url, ConnectionProblem::DatabaseMissing).to_string();
        assert!(message.contains("db:5432"), "{message}");
        assert!(message.contains("\"shop\""), "{message}");
        assert!(message.contains("postgres://app:***@db:5432/shop"), "{message}");
        assert!(message.contains("hint: create it with `orderly db create`"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_refused_connection_is_told_from_an_unknown_host() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_io(&refused), ConnectionProblem::Refused);
        let dns =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(classify_io(&dns), ConnectionProblem::UnknownHost);
    }
}
