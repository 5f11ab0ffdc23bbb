//! The database health gate (ADR 0021). After connection failures it opens, and every
//! statement fails at once with a connection error (503 `DATABASE_UNAVAILABLE`) instead of
//! waiting out the acquire timeout; while it is open, one probe task at a time asks the database,
//! and the first answer closes it.
//!
//! Statements inside a transaction run on the transaction's connection, outside the gate: when
//! one fails, the gate checks at once with a connection of its own whether PostgreSQL accepts
//! connections, and opens when it does not. That is what opens it within milliseconds when the
//! database goes away under load, as most of the work in flight is then inside transactions. A
//! check that times out while the pool's connections keep answering found a busy machine, not a
//! database gone, and leaves the gate closed.
//!
//! The state machine, the failure count and the back-off between probes are `failsafe`'s.
//! Requests never ask it for permission (its half-open state would let every waiting request
//! through at once, each to wait out the acquire timeout): they read one flag that only the
//! breaker's transitions change, and the probe task is the only caller of `is_call_permitted`.

use std::{
    future::Future,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use failsafe::{
    Config, Instrument, StateMachine,
    failure_policy::{ConsecutiveFailures, consecutive_failures},
};
use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, TransactionOptions, TransactionTrait as _,
};
use tokio::sync::watch;

use super::{connection::Pooler, error::is_connection_failure, location::ConnectionProblem};

/// Consecutive connection failures that open the gate: a stale pooled connection or two (the
/// pool does not ping before lending one) must not shut the service.
const FAILURES_TO_OPEN: u32 = 3;
/// How long the gate stays open before its first probe; the wait doubles after each failed
/// probe, up to [`LONGEST_PROBE_INTERVAL`].
const FIRST_PROBE_AFTER: Duration = Duration::from_millis(250);
/// The longest wait between probes: the gate closes at most this long (plus one probe) after
/// the database answers again.
const LONGEST_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often the probe task looks whether the wait has passed.
const PROBE_TICK: Duration = Duration::from_millis(50);
/// The longest a probe waits for the database's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a check with a connection of its own waits for PostgreSQL's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// A statement still waiting after this long starts a check.
const SLOW: Duration = Duration::from_millis(500);
/// After a check found PostgreSQL accepting connections, failures in transactions (a deadlock, a
/// stale connection) start no other check for this long.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// Set while a statement runs through [`GatedConnection::run`], which counts its outcome
    /// itself: the pool's statement callback then leaves it alone.
    static COUNTED: ();
}

type Backoff = std::iter::Successors<Duration, fn(&Duration) -> Option<Duration>>;
type Breaker = StateMachine<ConsecutiveFailures<Backoff>, Signal>;

fn next_wait(wait: &Duration) -> Option<Duration> {
    Some((*wait * 2).min(LONGEST_PROBE_INTERVAL))
}

/// The error of a statement the gate refused or abandoned: a connection error, so it is
/// translated to `StoreError::Unavailable` like any other.
fn refused() -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(
        "the database health gate is open: the database did not answer; not tried".to_owned(),
    ))
}

/// What the breaker's transitions change, read by every statement.
#[derive(Debug)]
struct Shared {
    /// Open or half-open: statements fail at once.
    open: AtomicBool,
    /// The same, for statements that wait (see [`GatedConnection::run`]).
    changes: watch::Sender<bool>,
    /// Since when the gate is open, for the log line that closes it.
    opened_at: Mutex<Option<Instant>>,
    /// The last failure counted, for the log line that opens the gate.
    last_failure: Mutex<Option<String>>,
}

/// The breaker's instrument: mirrors its state into [`Shared`] and logs the two transitions an
/// operator cares about.
#[derive(Debug)]
struct Signal(Arc<Shared>);

impl Instrument for Signal {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        let shared = &self.0;
        shared.open.store(true, Ordering::SeqCst);
        if shared.changes.send_if_modified(|open| !std::mem::replace(open, true)) {
            *shared.opened_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            let cause = shared.last_failure.lock().unwrap_or_else(PoisonError::into_inner).clone();
            tracing::warn!(
                error = cause.as_deref().unwrap_or("-"),
                "the database does not answer: requests fail at once with 503 \
                 DATABASE_UNAVAILABLE until a probe reaches it"
            );
        } else {
            tracing::debug!("the database still does not answer; probing again later");
        }
    }

    fn on_half_open(&self) {
        tracing::debug!("probing the database");
    }

    fn on_closed(&self) {
        let shared = &self.0;
        shared.open.store(false, Ordering::SeqCst);
        if shared.changes.send_if_modified(|open| std::mem::replace(open, false)) {
            let since = shared.opened_at.lock().unwrap_or_else(PoisonError::into_inner).take();
            let outage_ms = since.map_or(0, |since| since.elapsed().as_millis());
            tracing::info!(outage_ms, "the database answers again: requests go through");
        }
    }
}

/// The gate: a breaker on connection failures, and whether a probe task runs.
struct HealthGate {
    breaker: Breaker,
    shared: Arc<Shared>,
    /// A failure was counted since the last answer: the next answer resets the count (checked
    /// so that the common case, no failures, never takes the breaker's lock).
    suspect: AtomicBool,
    /// A probe task runs (at most one).
    probing: AtomicBool,
}

impl HealthGate {
    fn new() -> Self {
        let (changes, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            open: AtomicBool::new(false),
            changes,
            opened_at: Mutex::new(None),
            last_failure: Mutex::new(None),
        });
        let backoff: Backoff = std::iter::successors(Some(FIRST_PROBE_AFTER), next_wait);
        let breaker = Config::new()
            .failure_policy(consecutive_failures(FAILURES_TO_OPEN, backoff))
            .instrument(Signal(shared.clone()))
            .build();
        Self { breaker, shared, suspect: AtomicBool::new(false), probing: AtomicBool::new(false) }
    }

    fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The database answered (a result or an error of its own, such as a constraint violation).
    fn answered(&self) {
        if self.suspect.swap(false, Ordering::AcqRel) {
            self.breaker.on_success();
        }
    }

    /// A connection failure.
    fn failed(&self, error: &DbErr) {
        *self.shared.last_failure.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(error.to_string());
        self.suspect.store(true, Ordering::Release);
        self.breaker.on_error();
    }
}

/// The pool behind the health gate: every statement of the adapters goes through it (it is a
/// [`ConnectionTrait`]), and so do the transactions' `BEGIN`s (see `Database::begin_write`).
/// Statements inside a transaction run on the transaction's connection: they are not counted,
/// but their failures start a check (see [`GatedConnection::check`]).
pub(crate) struct GatedConnection {
    raw: DatabaseConnection,
    gate: HealthGate,
    /// How many connections a probe may find dead in the pool before it reaches the database.
    max_connections: u32,
    /// The PostgreSQL URL, for checks with a connection of their own (`None` for SQLite, which
    /// has no server to go away).
    url: Option<String>,
    /// What stands between the pool and PostgreSQL: behind a transaction pooler, statements
    /// outside a transaction get one of their own (see [`Pooler::Transaction`]).
    pooler: Pooler,
    /// A check runs (at most one), and when the last one found PostgreSQL accepting connections.
    checking: AtomicBool,
    /// A statement through the pool was answered while the running check waited.
    answered_while_checking: AtomicBool,
    checked_at: Mutex<Option<Instant>>,
    this: Weak<GatedConnection>,
}

impl GatedConnection {
    /// `raw` behind a gate; `postgres_url` names the server [`GatedConnection::check`] asks.
    pub(crate) fn new(
        mut raw: DatabaseConnection,
        max_connections: u32,
        postgres_url: Option<String>,
        pooler: Pooler,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this: &Weak<Self>| {
            let connection = this.clone();
            // Called after every statement, in transactions too (their statements are not run
            // through `run`): a failure there may be the first sign of an outage.
            raw.set_metric_callback(move |info| {
                if info.failed
                    && COUNTED.try_with(|()| ()).is_err()
                    && let Some(connection) = connection.upgrade()
                {
                    connection.check();
                }
            });
            Self {
                raw,
                gate: HealthGate::new(),
                max_connections,
                url: postgres_url,
                pooler,
                checking: AtomicBool::new(false),
                answered_while_checking: AtomicBool::new(false),
                checked_at: Mutex::new(None),
                this: this.clone(),
            }
        })
    }

    /// The pool itself, for what must work whatever the gate says (migrations, closing).
    pub(crate) fn raw(&self) -> &DatabaseConnection {
        &self.raw
    }

    /// Fails at once while the gate is open.
    ///
    /// # Errors
    /// A connection error ([`DbErr::Conn`]) while the gate is open.
    pub(crate) fn admit(&self) -> Result<(), DbErr> {
        if self.gate.is_open() { Err(refused()) } else { Ok(()) }
    }

    /// Begins a transaction through the gate (its `BEGIN` writes nothing, so it is abandoned
    /// when the gate opens).
    ///
    /// # Errors
    /// The error of `BEGIN` (or of `DEALLOCATE ALL`), or a connection error while the gate is
    /// open.
    pub(crate) async fn begin(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.run(true, self.begin_ungated(options)).await
    }

    /// `BEGIN`, and behind a transaction pooler `DEALLOCATE ALL`: the PostgreSQL session the
    /// pooler lends for this transaction may hold statements another client prepared, under
    /// the names this connection is about to give its own.
    async fn begin_ungated(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        let tx = self.raw.begin_with_options(options).await?;
        if self.pooler == Pooler::Transaction {
            tx.execute_unprepared("DEALLOCATE ALL").await?;
        }
        Ok(tx)
    }

    /// Runs one statement behind a transaction pooler, through the gate: in a transaction of
    /// its own, so that its preparation and its execution reach the same PostgreSQL session.
    async fn in_own_transaction<T: Send>(
        &self,
        abandonable: bool,
        statement: impl for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<T, DbErr>>
        + Send,
    ) -> Result<T, DbErr> {
        let work = async move {
            let tx = self.begin_ungated(TransactionOptions::default()).await?;
            let result = statement(&tx).await?;
            tx.commit().await?;
            Ok(result)
        };
        self.run(abandonable, work).await
    }

    /// The PostgreSQL pool (for its gauges).
    ///
    /// # Panics
    /// When the pool is SQLite's.
    pub(crate) fn get_postgres_connection_pool(&self) -> &sea_orm::sqlx::PgPool {
        self.raw.get_postgres_connection_pool()
    }

    /// The SQLite pool (for its gauges).
    ///
    /// # Panics
    /// When the pool is PostgreSQL's.
    pub(crate) fn get_sqlite_connection_pool(&self) -> &sea_orm::sqlx::SqlitePool {
        self.raw.get_sqlite_connection_pool()
    }

    /// Runs `work` unless the gate is open, and counts its outcome; on PostgreSQL, work still
    /// waiting after [`SLOW`] starts a check. When `abandonable` (work that cannot have written
    /// anything: a `SELECT`, a ping, a `BEGIN`), it is also abandoned the moment the gate opens,
    /// so that requests already waiting for a connection fail as fast as the ones that come
    /// after them.
    ///
    /// # Errors
    /// The error of `work`, or a connection error when the gate is or becomes open.
    pub(crate) async fn run<T>(
        &self,
        abandonable: bool,
        work: impl Future<Output = Result<T, DbErr>> + Send,
    ) -> Result<T, DbErr> {
        self.admit()?;
        let work = COUNTED.scope((), work);
        let result = if abandonable || self.url.is_some() {
            tokio::pin!(work);
            let mut changes = self.gate.shared.changes.subscribe();
            let slow = tokio::time::sleep(SLOW);
            tokio::pin!(slow);
            let mut checked = self.url.is_none();
            loop {
                tokio::select! {
                    biased;
                    result = &mut work => break result,
                    Ok(_) = changes.wait_for(|open| *open), if abandonable => {
                        return Err(refused());
                    }
                    () = &mut slow, if !checked => {
                        // Waiting this long for a connection is how a stopped PostgreSQL looks
                        // to an idle pool (sqlx retries a refused connection until the acquire
                        // timeout): ask it directly.
                        checked = true;
                        self.check();
                    }
                }
            }
        } else {
            work.await
        };
        match &result {
            Err(error) if is_connection_failure(error) => self.failed(error),
            _ => {
                self.gate.answered();
                if self.checking.load(Ordering::Relaxed) {
                    self.answered_while_checking.store(true, Ordering::Relaxed);
                }
            }
        }
        result
    }

    fn failed(&self, error: &DbErr) {
        self.gate.failed(error);
        self.probe_if_open();
        self.check();
    }

    /// Opens the gate at once: PostgreSQL refused a connection of the gate's own.
    fn unreachable(&self, cause: &str) {
        *self.gate.shared.last_failure.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(cause.to_owned());
        for _ in 0..FAILURES_TO_OPEN {
            if self.gate.is_open() {
                break;
            }
            self.gate.suspect.store(true, Ordering::Release);
            self.gate.breaker.on_error();
        }
        self.probe_if_open();
    }

    /// Checks, with a connection of its own and in the background, whether PostgreSQL accepts
    /// connections, and opens the gate when it does not (a timeout does not count when
    /// statements through the pool were answered meanwhile): one check at a time, none while
    /// the gate is open (the probe task has the matter in hand), and none within
    /// [`CHECK_INTERVAL`] of one that found PostgreSQL reachable.
    fn check(&self) {
        let Some(url) = self.url.clone() else { return };
        if self.gate.is_open() || self.checking.swap(true, Ordering::SeqCst) {
            return;
        }
        let recent = self
            .checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < CHECK_INTERVAL);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.checking.store(false, Ordering::SeqCst);
            return;
        };
        if recent {
            self.checking.store(false, Ordering::SeqCst);
            return;
        }
        self.answered_while_checking.store(false, Ordering::SeqCst);
        let this = self.this.clone();
        runtime.spawn(async move {
            let result = super::location::check_postgres(&url, CHECK_TIMEOUT).await;
            let Some(connection) = this.upgrade() else { return };
            let reachable = match result {
                Ok(()) => true,
                // A new connection that takes this long while the pool's connections answer is
                // a busy machine, not a database gone: opening would refuse requests the
                // database is serving. (sqlx 0.9.0 made it slower: without `TCP_NODELAY`, the
                // TLS handshake waited out delayed ACKs. ADR 0021 says what is still unknown.)
                Err(error)
                    if matches!(error.problem(), ConnectionProblem::TimedOut(_))
                        && connection.answered_while_checking.load(Ordering::SeqCst) =>
                {
                    tracing::info!(
                        timeout = ?CHECK_TIMEOUT,
                        "a new connection to the database got no answer in time while the pooled \
                         ones kept answering: the machine is busy; requests go through"
                    );
                    true
                }
                Err(error) => {
                    connection.unreachable(&error.to_string());
                    false
                }
            };
            if reachable {
                *connection.checked_at.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now());
            }
            connection.checking.store(false, Ordering::SeqCst);
        });
    }

    fn probe_if_open(&self) {
        if self.gate.is_open() && !self.gate.probing.swap(true, Ordering::SeqCst) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(probe_until_closed(self.this.clone()));
                }
                Err(_) => self.gate.probing.store(false, Ordering::SeqCst),
            }
        }
    }

    /// One probe: a ping through the pool, bounded by [`PROBE_TIMEOUT`]. A pooled connection
    /// that died with the outage fails its ping at once and is discarded by the pool, so the
    /// probe tries again, at most once per pooled connection: its success means the pool holds
    /// no dead connection any more, and requests find live ones.
    async fn probe(&self) -> Result<(), DbErr> {
        let attempts = self.max_connections.saturating_add(1);
        let pinging = async {
            let mut last = None;
            for _ in 0..attempts {
                match self.raw.ping().await {
                    Ok(()) => return Ok(()),
                    Err(error) if is_connection_failure(&error) => last = Some(error),
                    Err(error) => return Err(error),
                }
            }
            Err(last.unwrap_or_else(refused))
        };
        tokio::time::timeout(PROBE_TIMEOUT, pinging).await.unwrap_or_else(|_| {
            Err(DbErr::Conn(RuntimeErr::Internal(format!(
                "no answer to a probe within {PROBE_TIMEOUT:?}"
            ))))
        })
    }
}

/// The probe task: while the gate is open, probes whenever the breaker's back-off allows it,
/// until a probe succeeds (which closes the gate) or the pool is dropped.
async fn probe_until_closed(connection: Weak<GatedConnection>) {
    loop {
        tokio::time::sleep(PROBE_TICK).await;
        let Some(connection) = connection.upgrade() else { return };
        let gate = &connection.gate;
        if !gate.is_open() {
            gate.probing.store(false, Ordering::SeqCst);
            // A failure that opened the gate again before the store saw a probe running, and
            // left the probing to this task.
            if gate.is_open() && !gate.probing.swap(true, Ordering::SeqCst) {
                continue;
            }
            return;
        }
        if !gate.breaker.is_call_permitted() {
            continue;
        }
        match connection.probe().await {
            Ok(()) => {
                gate.suspect.store(false, Ordering::Release);
                gate.breaker.on_success();
            }
            Err(error) => {
                tracing::debug!(error = %error, "database probe failed");
                gate.failed(&error);
            }
        }
    }
}

/// `SELECT`s can be abandoned: they write nothing.
fn is_read(sql: &str) -> bool {
    sql.trim_start().get(..6).is_some_and(|word| word.eq_ignore_ascii_case("select"))
}

#[async_trait]
impl ConnectionTrait for GatedConnection {
    fn get_database_backend(&self) -> DbBackend {
        self.raw.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if self.pooler == Pooler::Transaction {
            return self.in_own_transaction(false, |tx| tx.execute_raw(stmt)).await;
        }
        self.run(false, self.raw.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // The simple query protocol: nothing is prepared, so no transaction is needed.
        self.run(false, self.raw.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let read = is_read(&stmt.sql);
        if self.pooler == Pooler::Transaction {
            return self.in_own_transaction(read, |tx| tx.query_one_raw(stmt)).await;
        }
        self.run(read, self.raw.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let read = is_read(&stmt.sql);
        if self.pooler == Pooler::Transaction {
            return self.in_own_transaction(read, |tx| tx.query_all_raw(stmt)).await;
        }
        self.run(read, self.raw.query_all_raw(stmt)).await
    }

    fn support_returning(&self) -> bool {
        self.raw.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.raw.is_mock_connection()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, sqlx};

    use super::*;

    /// An in-memory SQLite pool behind the gate; with `checks_at`, its checks ask the PostgreSQL
    /// server at that URL.
    async fn sqlite(checks_at: Option<String>) -> Arc<GatedConnection> {
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).sqlx_logging(false);
        let raw = sea_orm::Database::connect(options).await.expect("an in-memory SQLite");
        GatedConnection::new(raw, 1, checks_at, Pooler::None)
    }

    fn connection_failure() -> DbErr {
        DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))))
    }

    async fn select_one(connection: &GatedConnection) -> Result<Option<QueryResult>, DbErr> {
        connection
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT 1".to_owned()))
            .await
    }

    /// A PostgreSQL URL whose server accepts connections and never answers (a hung host, or a
    /// machine too busy to get to them), for as long as the runtime runs.
    async fn silent_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("postgres://postgres@127.0.0.1:{port}/none?sslmode=disable")
    }

    /// A PostgreSQL URL nothing listens on: a check is refused at once.
    const REFUSING: &str = "postgres://postgres@127.0.0.1:1/none";

    #[test]
    fn only_selects_may_be_abandoned() {
        assert!(is_read("SELECT 1"));
        assert!(is_read("  select \"id\" FROM \"order\""));
        assert!(!is_read("INSERT INTO x VALUES (1) RETURNING id"));
        assert!(!is_read("UPDATE x SET y = 1 RETURNING y"));
        assert!(!is_read("SEL"));
    }

    #[test]
    fn the_wait_between_probes_doubles_up_to_the_longest() {
        let waits: Vec<Duration> =
            std::iter::successors(Some(FIRST_PROBE_AFTER), next_wait).take(6).collect();
        assert_eq!(waits[0], Duration::from_millis(250));
        assert_eq!(waits[1], Duration::from_millis(500));
        assert_eq!(waits[5], LONGEST_PROBE_INTERVAL);
    }

    #[tokio::test]
    async fn consecutive_connection_failures_open_the_gate_and_an_answer_in_between_resets_them() {
        let connection = sqlite(None).await;
        for _ in 1..FAILURES_TO_OPEN {
            connection.failed(&connection_failure());
        }
        assert!(select_one(&connection).await.is_ok(), "the gate is still closed");
        // The answer reset the count: as many failures again leave it closed.
        for _ in 1..FAILURES_TO_OPEN {
            connection.failed(&connection_failure());
        }
        assert!(!connection.gate.is_open());
        connection.failed(&connection_failure());
        assert!(connection.gate.is_open());
    }

    #[tokio::test]
    async fn an_open_gate_refuses_at_once_and_closes_when_a_probe_answers() {
        let connection = sqlite(None).await;
        for _ in 0..FAILURES_TO_OPEN {
            connection.failed(&connection_failure());
        }
        let started = Instant::now();
        let error = select_one(&connection).await.expect_err("refused while open");
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
        assert!(is_connection_failure(&error), "a refusal reads as unavailable: {error}");
        assert!(connection.run(false, async { Ok(()) }).await.is_err(), "writes too");

        let deadline = Instant::now() + Duration::from_secs(5);
        while connection.gate.is_open() {
            assert!(Instant::now() < deadline, "the probe closes the gate");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(select_one(&connection).await.is_ok());
    }

    #[tokio::test]
    async fn a_server_that_refuses_a_connection_of_the_gates_own_opens_it_at_once() {
        // Nothing listens on port 1: the check is refused at once.
        let connection = sqlite(Some(REFUSING.to_owned())).await;
        connection.check();
        gate_opens_within(&connection, Duration::from_secs(2), "the check opens the gate").await;
    }

    #[tokio::test]
    async fn a_check_that_times_out_while_nothing_answers_opens_the_gate() {
        let connection = sqlite(Some(silent_server().await)).await;
        connection.check();
        let within = CHECK_TIMEOUT + Duration::from_secs(1);
        gate_opens_within(&connection, within, "the timed-out check opens the gate").await;
    }

    /// Waits for `connection`'s gate to open, failing with `expected` after `within`.
    async fn gate_opens_within(connection: &GatedConnection, within: Duration, expected: &str) {
        let deadline = Instant::now() + within;
        while !connection.gate.is_open() {
            assert!(Instant::now() < deadline, "{expected}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_check_that_times_out_while_the_pool_answers_leaves_the_gate_closed() {
        let connection = sqlite(Some(silent_server().await)).await;
        connection.check();
        assert!(connection.checking.load(Ordering::SeqCst));
        while connection.checking.load(Ordering::SeqCst) {
            assert!(select_one(&connection).await.is_ok(), "statements go through meanwhile");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!connection.gate.is_open());
        assert!(select_one(&connection).await.is_ok());
        // The check counts as one that found the server: the next is a while away.
        assert!(connection.checked_at.lock().expect("not poisoned").is_some());
    }

    #[tokio::test]
    async fn a_read_still_waiting_after_a_while_checks_the_server_and_is_abandoned() {
        let connection = sqlite(Some(REFUSING.to_owned())).await;
        let started = Instant::now();
        let result = connection.run(true, std::future::pending::<Result<(), DbErr>>()).await;
        assert!(result.is_err());
        assert!(connection.gate.is_open());
        let waited = started.elapsed();
        assert!(waited >= SLOW && waited < SLOW + Duration::from_secs(1), "{waited:?}");
    }

    #[tokio::test]
    async fn errors_of_a_database_that_answered_do_not_count() {
        let connection = sqlite(None).await;
        for _ in 0..FAILURES_TO_OPEN * 2 {
            let error = connection
                .execute_unprepared("INSERT INTO no_such_table VALUES (1)")
                .await
                .expect_err("no such table");
            assert!(!is_connection_failure(&error), "{error}");
        }
        assert!(!connection.gate.is_open());
    }

    #[tokio::test]
    async fn a_read_waiting_when_the_gate_opens_is_abandoned_at_once() {
        let connection = sqlite(None).await;
        let waiting = {
            let connection = connection.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result =
                    connection.run(true, std::future::pending::<Result<(), DbErr>>()).await;
                (result, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..FAILURES_TO_OPEN {
            connection.failed(&connection_failure());
        }
        let (result, waited) = waiting.await.expect("the task ends");
        assert!(result.is_err());
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }
}
