//! The composition root: the one place that knows every layer and wires adapters into use cases.

use std::{net::TcpListener, sync::Arc};

use actix_web::{HttpServer, dev::Server};
use anyhow::Context as _;
use async_trait::async_trait;
use orderly_api::{ApiSettings, ApiState, DependencyStatus, Readiness, UseCases};
use orderly_application::{
    auth::{
        authenticate::Authenticate, refresh_session::RefreshSession, revoke_token::RevokeToken,
    },
    orders::{
        expire_orders::ExpireOrders, get_order::GetOrder, list_orders::ListOrders,
        list_user_orders::ListUserOrders, order_history::OrderHistory, place_order::PlaceOrder,
        transition_order::TransitionOrder,
    },
    ports::{
        AccessTokens, Clock, OrderRepository, PasswordHasher, ProductRepository, UserRepository,
    },
    products::{
        archive_product::ArchiveProduct, create_product::CreateProduct, get_product::GetProduct,
        list_products::ListProducts, update_product::UpdateProduct,
    },
    users::{
        delete_user::DeleteUser, get_user::GetUser, list_users::ListUsers,
        register_user::RegisterUser, update_user::UpdateUser,
    },
};
use orderly_domain::time::TimeDelta;
use orderly_infrastructure::{
    Database, DatabaseSettings, SeaOrmOrderRepository, SeaOrmProductRepository,
    SeaOrmRefreshTokens, SeaOrmUserRepository,
    services::{
        Argon2PasswordHasher, JwtAccessTokens, JwtSettings, SimulatedPaymentGateway, SystemClock,
    },
};

use crate::settings::{AppEnv, Settings};

fn seconds(value: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Opens the database pool described by `settings`.
///
/// # Errors
/// When the URL is invalid or the SQLite directory cannot be created.
pub async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    let mut database = DatabaseSettings::new(settings.database_url.clone());
    database.max_connections = settings.database_max_connections;
    database.acquire_timeout = settings.acquire_timeout();
    Database::connect(&database).await
}

/// Every use case, wired to its adapters.
pub struct Wiring {
    pub use_cases: UseCases,
    pub expire_orders: ExpireOrders,
    pub access_tokens: Arc<dyn AccessTokens>,
    pub clock: Arc<dyn Clock>,
}

/// Wires the adapters of `database` and `settings` into the use cases.
///
/// # Errors
/// When the password hasher or the secret cannot be set up.
pub fn wire(database: &Database, settings: &Settings) -> anyhow::Result<Wiring> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let users_repo = Arc::new(SeaOrmUserRepository::new(database.clone()));
    let users: Arc<dyn UserRepository> = users_repo.clone();
    let products_repo = Arc::new(SeaOrmProductRepository::new(database.clone()));
    let orders_repo = Arc::new(SeaOrmOrderRepository::new(database.clone()));
    let products: Arc<dyn ProductRepository> = products_repo.clone();
    let orders: Arc<dyn OrderRepository> = orders_repo.clone();
    let refresh_tokens =
        Arc::new(SeaOrmRefreshTokens::new(database.clone(), seconds(settings.refresh_token_ttl)));
    let hasher: Arc<dyn PasswordHasher> = Arc::new(match settings.app_env {
        AppEnv::Test => Argon2PasswordHasher::for_tests()?,
        AppEnv::Development | AppEnv::Production => Argon2PasswordHasher::new()?,
    });
    let access_tokens: Arc<dyn AccessTokens> = Arc::new(JwtAccessTokens::new(JwtSettings {
        secret: settings.jwt_secret_bytes()?,
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        ttl: seconds(settings.access_token_ttl),
    }));
    let payments = Arc::new(SimulatedPaymentGateway::new(settings.payment_simulated_decline_above));

    let use_cases = UseCases {
        register_user: RegisterUser::new(users.clone(), hasher.clone(), clock.clone()),
        get_user: GetUser::new(users.clone()),
        list_users: ListUsers::new(users_repo),
        update_user: UpdateUser::new(
            users.clone(),
            hasher.clone(),
            refresh_tokens.clone(),
            clock.clone(),
        ),
        delete_user: DeleteUser::new(users.clone()),
        authenticate: Authenticate::new(
            users.clone(),
            hasher,
            access_tokens.clone(),
            refresh_tokens.clone(),
            clock.clone(),
        ),
        refresh_session: RefreshSession::new(
            users.clone(),
            access_tokens.clone(),
            refresh_tokens.clone(),
            clock.clone(),
        ),
        revoke_token: RevokeToken::new(refresh_tokens, clock.clone()),
        create_product: CreateProduct::new(products.clone(), clock.clone()),
        get_product: GetProduct::new(products.clone()),
        list_products: ListProducts::new(products_repo),
        update_product: UpdateProduct::new(products.clone(), clock.clone()),
        archive_product: ArchiveProduct::new(products.clone(), clock.clone()),
        place_order: PlaceOrder::new(
            products,
            orders.clone(),
            clock.clone(),
            seconds(settings.order_payment_timeout),
        ),
        get_order: GetOrder::new(orders.clone()),
        list_orders: ListOrders::new(orders_repo.clone()),
        list_user_orders: ListUserOrders::new(users.clone(), orders_repo.clone()),
        transition_order: TransitionOrder::new(orders.clone(), payments, clock.clone()),
        order_history: OrderHistory::new(orders.clone(), orders_repo),
    };
    let expire_orders = ExpireOrders::new(orders, clock.clone());
    Ok(Wiring { use_cases, expire_orders, access_tokens, clock })
}

/// Readiness from the database's answer to a ping.
struct DatabaseReadiness(Database);

#[async_trait]
impl Readiness for DatabaseReadiness {
    async fn check(&self) -> Vec<DependencyStatus> {
        let healthy = match self.0.ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "readiness: the database does not answer");
                false
            }
        };
        vec![DependencyStatus { name: "database", healthy }]
    }
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    expiry: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connects, migrates when configured, wires everything and binds the listener (port 0 picks a
    /// free port: see [`Application::port`]).
    ///
    /// # Errors
    /// When the database cannot be opened or migrated, or the address cannot be bound.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let database = connect(settings).await?;
        if settings.auto_migrate {
            database.migrate_up(None).await?;
            tracing::info!("database migrations applied");
        }
        Self::build_with(settings, database)
    }

    /// Like [`Application::build`], on an already opened (and migrated) database.
    ///
    /// # Errors
    /// When the address cannot be bound or the wiring fails.
    pub fn build_with(settings: &Settings, database: Database) -> anyhow::Result<Self> {
        let Wiring { use_cases, expire_orders, access_tokens, clock } = wire(&database, settings)?;
        let state = ApiState {
            use_cases: Arc::new(use_cases),
            access_tokens,
            clock,
            readiness: Arc::new(DatabaseReadiness(database)),
            settings: ApiSettings {
                enable_swagger_ui: settings.enable_swagger_ui,
                cors_allowed_origins: settings.cors_allowed_origins.clone(),
                body_limit: settings.body_limit,
            },
        };
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        let mut server = HttpServer::new(move || orderly_api::app(state.clone()))
            .shutdown_timeout(settings.shutdown_timeout);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.listen(listener).context("listening")?.run();
        let expiry = (settings.order_expiry_interval > 0).then(|| {
            let interval = std::time::Duration::from_secs(settings.order_expiry_interval);
            tokio::spawn(run_expiry(expire_orders, interval))
        });
        tracing::info!(%address, port, "listening");
        Ok(Self { port, server, expiry })
    }

    /// The port the service listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a signal: on SIGTERM it stops accepting and drains in-flight requests (up to
    /// `SHUTDOWN_TIMEOUT`); SIGINT (Ctrl-C) and SIGQUIT stop at once.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await.context("serving");
        if let Some(expiry) = self.expiry {
            expiry.abort();
        }
        tracing::info!("stopped");
        result
    }
}

/// The order-expiry job: every `interval`, expires overdue orders in batches. Safe on several
/// instances at once (each expiry is a guarded update: one instance wins, the others skip).
async fn run_expiry(expire_orders: ExpireOrders, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        loop {
            match expire_orders.execute(100).await {
                Ok(report) if report.expired + report.skipped > 0 => {
                    tracing::info!(
                        expired = report.expired,
                        skipped = report.skipped,
                        "expired unpaid orders"
                    );
                    if report.expired == 0 || report.expired + report.skipped < 100 {
                        break;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "the order-expiry job failed; retrying later");
                    break;
                }
            }
        }
    }
}
