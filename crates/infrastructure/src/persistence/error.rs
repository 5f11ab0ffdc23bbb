//! Translation of database errors into the ports' error variants.
//!
//! [`classify`] tells a constraint violation from a store failure; each repository then gives a
//! violation the meaning its port's error enum has for the write it was doing (a unique
//! violation is a taken e-mail address for a user and a taken SKU for a product; a foreign key
//! refusing a delete is the row still being referenced, and the user repository finds out by
//! what).

use orderly_application::StoreError;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// What a database error means for the caller.
pub(crate) enum Failure {
    /// A unique constraint refused the write.
    UniqueViolation,
    /// A foreign key refused the write: an insert or update naming a parent that does not exist,
    /// or a delete of a row other rows still reference. Neither engine's error is read for which
    /// key it was (SQLite's message does not say): a repository that must tell asks the
    /// database.
    ForeignKeyViolation,
    Store(StoreError),
}

/// Classifies `error`, wrapping it with `context` for the log.
pub(crate) fn classify(error: DbErr, context: &'static str) -> Failure {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => return Failure::UniqueViolation,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return Failure::ForeignKeyViolation,
        _ => {}
    }
    // SQLite reports a `RESTRICT` foreign key as SQLITE_CONSTRAINT_TRIGGER (1811), which SeaORM
    // does not recognise as a foreign-key violation.
    if sqlite_code(&error).as_deref() == Some("1811") {
        return Failure::ForeignKeyViolation;
    }
    Failure::Store(store_error(error, context))
}

/// Translates an error that has no data-level meaning.
pub(crate) fn store_error(error: DbErr, context: &'static str) -> StoreError {
    let kind = kind_of(&error);
    let error = anyhow::Error::new(error).context(context);
    match kind {
        Kind::Unavailable => StoreError::Unavailable(error),
        Kind::Contention => StoreError::Contention(error),
        Kind::Other => StoreError::Unexpected(error),
    }
}

/// `error` again, for each of the callers that one failed group of work answers (ADR 0042, 0044).
pub(crate) fn shared(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(cause) => StoreError::Unavailable(anyhow::anyhow!("{cause:#}")),
        StoreError::Contention(cause) => StoreError::Contention(anyhow::anyhow!("{cause:#}")),
        StoreError::Unexpected(cause) => StoreError::Unexpected(anyhow::anyhow!("{cause:#}")),
    }
}

/// Shorthand for `map_err(|e| store_error(e, context))`.
pub(crate) fn store(context: &'static str) -> impl FnOnce(DbErr) -> StoreError {
    move |error| store_error(error, context)
}

/// Whether `error` says the database could not be reached (no connection within the acquire
/// timeout, a refused or broken connection, a server shutting down), as opposed to an answer
/// such as a constraint violation: what the health gate counts (ADR 0021).
pub(crate) fn is_connection_failure(error: &DbErr) -> bool {
    matches!(kind_of(error), Kind::Unavailable)
}

fn sqlite_code(error: &DbErr) -> Option<String> {
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            match inner.as_ref() {
                sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
                _ => None,
            }
        }
        _ => None,
    }
}

enum Kind {
    Unavailable,
    Contention,
    Other,
}

fn kind_of(error: &DbErr) -> Kind {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Kind::Unavailable,
        DbErr::Custom(message) if message == super::connection::WRITER_BUSY => Kind::Contention,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            kind_of_sqlx(inner)
        }
        _ => Kind::Other,
    }
}

fn kind_of_sqlx(error: &sqlx::Error) -> Kind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Kind::Unavailable,
        sqlx::Error::Database(database) => match database.code().as_deref() {
            // PostgreSQL: serialization failure, deadlock, lock not available.
            Some("40001" | "40P01" | "55P03")
            // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
            | Some("5" | "6" | "261" | "262" | "517") => Kind::Contention,
            // PostgreSQL: connection exceptions, shutdown, too many connections.
            Some(code) if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
                Kind::Unavailable
            }
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}
