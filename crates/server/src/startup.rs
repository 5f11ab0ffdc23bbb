//! The composition root: the one place that knows every layer and wires adapters into use cases.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{HttpServer, dev::Server};
use anyhow::Context as _;
use async_trait::async_trait;
use orderly_api::{
    ApiSettings, ApiState, DependencyStatus, Readiness, UseCases,
    client_ip::TrustedProxies,
    deprecation::DeprecationLog,
    metrics::ApiMetrics,
    rate_limit::{RateLimitPolicies, RateLimits},
};
use orderly_application::{
    auth::{
        admin_check::AdminCheck, authenticate::Authenticate, authorize::Authorize,
        refresh_session::RefreshSession, revoke_token::RevokeToken,
    },
    events::{Outbox, RelayEvents},
    orders::{
        expire_orders::ExpireOrders, get_order::GetOrder, list_orders::ListOrders,
        list_user_orders::ListUserOrders, move_order::MoveOrder, order_history::OrderHistory,
        pay_order::PayOrder, place_order::PlaceOrder, settle_payments::SettlePayments,
    },
    ports::{
        AccessTokens, AccountDirectory, Clock, IdempotencyStore, OrderRepository, PasswordHasher,
        PaymentGateway, ProductQueries, ProductRepository, RateLimitPolicy, RateLimiter,
        UserRepository,
    },
    products::{
        archive_product::ArchiveProduct, create_product::CreateProduct, get_product::GetProduct,
        list_products::ListProducts, update_product::UpdateProduct,
    },
    reviews::Reviews,
    users::{
        delete_user::DeleteUser, get_user::GetUser, list_users::ListUsers,
        register_user::RegisterUser, update_user::UpdateUser,
    },
    webhooks::{DeliveryQueue, Webhooks, deliver::DeliverWebhooks},
};
use orderly_domain::time::TimeDelta;
use orderly_infrastructure::{
    Database, SeaOrmAccounts, SeaOrmIdempotencyStore, SeaOrmOrderRepository, SeaOrmOutbox,
    SeaOrmProductRepository, SeaOrmRefreshTokens, SeaOrmReviewRepository, SeaOrmUserRepository,
    SeaOrmWebhooks,
    services::{
        Argon2PasswordHasher, CachedAccounts, CachedProducts, ForgettingUsers, HashingLimits,
        HttpGatewaySettings, HttpPaymentGateway, InMemoryRateLimiter, JwtAccessTokens, JwtSettings,
        MeteredPaymentGateway, NatsPublisher, ProductCache, ProductCacheSettings, RedisRateLimiter,
        SimulatedPaymentGateway, SystemClock,
        webhooks::{HttpWebhookSender, NetworkGuard, RandomSecrets},
    },
};
use prometheus::Registry;
use tokio::task::{AbortHandle, JoinHandle};

use crate::{
    metrics::{ExpiryMetrics, SettlementMetrics, register_build_info},
    relay::{Relay, RelayMetrics},
    settings::{AppEnv, PaymentGateway as GatewayChoice, PaymentSettings, Quota, Settings},
    webhooks::{DeliveryMetrics, DeliveryWorker},
};

fn seconds(value: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Opens the database pool described by `settings`.
///
/// # Errors
/// When the URL is invalid or the SQLite directory cannot be created.
pub async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    Database::connect(&settings.database.adapter()).await
}

/// Every use case, wired to its adapters.
pub struct Wiring {
    pub use_cases: UseCases,
    /// The users, for commands that look one up by e-mail (`orderly seed`).
    pub users: Arc<dyn UserRepository>,
    pub accounts: Arc<dyn AccountDirectory>,
    pub expire_orders: ExpireOrders,
    /// The background job's other work: settling payments, purging idempotency records.
    pub housekeeping: Housekeeping,
    /// The webhook worker's use case, and its queue (for the retention).
    pub deliver_webhooks: DeliverWebhooks,
    pub delivery_queue: Arc<dyn DeliveryQueue>,
    pub access_tokens: Arc<dyn AccessTokens>,
    pub clock: Arc<dyn Clock>,
    /// The instance's metrics registry, with the adapters' series (the pool, the hashing gate,
    /// the payment gateway) in it; `Application` adds the HTTP layer's and its own.
    pub registry: Registry,
}

/// Wires the adapters of `database` and `settings` into the use cases.
///
/// # Errors
/// When the password hasher or the secret cannot be set up.
pub fn wire(database: &Database, settings: &Settings) -> anyhow::Result<Wiring> {
    let registry = Registry::new();
    database.register_metrics(&registry)?;
    // Every write records its events with the v1 representations (the transactional outbox).
    let database = &database.clone().with_event_data(Arc::new(orderly_api::events::V1EventData));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let users_repo = Arc::new(SeaOrmUserRepository::new(database.clone()));
    // The access-token check reads accounts through a short cache; changes made here drop
    // their entry at once, and on every instance through Redis (ADRs 0013, 0027).
    let cached_accounts = Arc::new(account_cache(settings, database)?);
    let accounts: Arc<dyn AccountDirectory> = cached_accounts.clone();
    let users: Arc<dyn UserRepository> =
        Arc::new(ForgettingUsers::new(users_repo.clone(), cached_accounts));
    // Admin-only use cases confirm the actor's role in the database, not the cache (ADR 0027).
    let admins = AdminCheck::new(users.clone());
    // GET /products/{id} reads through a cache that every product write drops (ADR 0025).
    let product_cache = product_cache(settings)?;
    product_cache.register_metrics(&registry)?;
    let products_repo = Arc::new(
        SeaOrmProductRepository::new(database.clone()).invalidating(product_cache.clone()),
    );
    products_repo.register_metrics(&registry)?;
    let orders_repo =
        Arc::new(SeaOrmOrderRepository::new(database.clone()).invalidating(product_cache.clone()));
    orders_repo.register_metrics(&registry)?;
    let reviews =
        Arc::new(SeaOrmReviewRepository::new(database.clone()).invalidating(product_cache.clone()));
    let webhooks = Arc::new(SeaOrmWebhooks::new(database.clone()));
    let product_queries: Arc<dyn ProductQueries> =
        Arc::new(CachedProducts::new(products_repo.clone(), product_cache));
    let products: Arc<dyn ProductRepository> = products_repo.clone();
    let orders: Arc<dyn OrderRepository> = orders_repo.clone();
    let idempotency: Arc<dyn IdempotencyStore> =
        Arc::new(SeaOrmIdempotencyStore::new(database.clone()));
    let refresh_tokens = Arc::new(SeaOrmRefreshTokens::new(
        database.clone(),
        seconds(settings.auth.refresh_token_ttl),
    ));
    let limits = HashingLimits::new(
        settings.auth.password_hash_concurrency,
        settings.auth.password_hash_queue,
    );
    let argon2 = match settings.app_env {
        AppEnv::Test => Argon2PasswordHasher::for_tests(limits)?,
        AppEnv::Development | AppEnv::Production => Argon2PasswordHasher::new(limits)?,
    };
    argon2.register_metrics(&registry)?;
    let hasher: Arc<dyn PasswordHasher> = Arc::new(argon2);
    let access_tokens: Arc<dyn AccessTokens> = Arc::new(JwtAccessTokens::new(JwtSettings {
        secret: settings.jwt_secret_bytes()?,
        issuer: settings.auth.jwt_issuer.clone(),
        audience: settings.auth.jwt_audience.clone(),
        ttl: seconds(settings.auth.access_token_ttl),
    }));
    let payments: Arc<dyn PaymentGateway> =
        Arc::new(payment_gateway(&settings.payment, &registry)?);
    let use_cases = UseCases {
        register_user: RegisterUser::new(users.clone(), hasher.clone(), clock.clone()),
        get_user: GetUser::new(users.clone(), admins.clone()),
        list_users: ListUsers::new(users_repo, admins.clone()),
        update_user: UpdateUser::new(
            users.clone(),
            hasher.clone(),
            refresh_tokens.clone(),
            admins.clone(),
            clock.clone(),
        ),
        delete_user: DeleteUser::new(users.clone(), admins.clone()),
        authenticate: Authenticate::new(
            users.clone(),
            hasher,
            access_tokens.clone(),
            refresh_tokens.clone(),
            clock.clone(),
        ),
        authorize: Authorize::new(access_tokens.clone(), accounts.clone(), clock.clone()),
        refresh_session: RefreshSession::new(
            users.clone(),
            access_tokens.clone(),
            refresh_tokens.clone(),
            clock.clone(),
        ),
        revoke_token: RevokeToken::new(refresh_tokens, clock.clone()),
        create_product: CreateProduct::new(products.clone(), admins.clone(), clock.clone()),
        get_product: GetProduct::new(product_queries.clone()),
        list_products: ListProducts::new(product_queries.clone(), admins.clone()),
        update_product: UpdateProduct::new(products.clone(), admins.clone(), clock.clone()),
        archive_product: ArchiveProduct::new(products.clone(), admins.clone(), clock.clone()),
        place_order: PlaceOrder::new(
            products.clone(),
            orders.clone(),
            idempotency.clone(),
            clock.clone(),
            seconds(settings.orders.order_payment_timeout),
        ),
        get_order: GetOrder::new(orders.clone()),
        list_orders: ListOrders::new(orders_repo.clone()),
        list_user_orders: ListUserOrders::new(users.clone(), orders_repo.clone()),
        pay_order: PayOrder::new(
            orders.clone(),
            payments.clone(),
            idempotency.clone(),
            clock.clone(),
        ),
        move_order: MoveOrder::new(
            orders.clone(),
            payments.clone(),
            idempotency.clone(),
            clock.clone(),
        ),
        order_history: OrderHistory::new(orders.clone(), orders_repo),
        reviews: Reviews::new(
            reviews,
            products.clone(),
            product_queries,
            users.clone(),
            clock.clone(),
        ),
        webhooks: Webhooks::new(
            webhooks.clone(),
            admins,
            Arc::new(NetworkGuard::new(&settings.webhook.adapter())),
            Arc::new(RandomSecrets::new()?),
            clock.clone(),
        ),
    };
    let deliver_webhooks = DeliverWebhooks::new(
        webhooks.clone(),
        webhooks.clone(),
        Arc::new(HttpWebhookSender::new(&settings.webhook.adapter())?),
        clock.clone(),
    );
    let expire_orders = ExpireOrders::new(orders.clone(), clock.clone());
    let housekeeping = Housekeeping {
        settle_payments: SettlePayments::new(orders, payments, clock.clone()),
        metrics: settings
            .telemetry
            .metrics_enabled
            .then(|| SettlementMetrics::register(&registry))
            .transpose()?,
        idempotency,
        idempotency_ttl: seconds(settings.orders.idempotency_ttl),
        clock: clock.clone(),
    };
    Ok(Wiring {
        use_cases,
        users,
        accounts,
        expire_orders,
        housekeeping,
        deliver_webhooks,
        delivery_queue: webhooks,
        access_tokens,
        clock,
        registry,
    })
}

/// The payment gateway `settings` choose, traced and counted.
///
/// # Errors
/// When the provider settings are missing or invalid, or a metric is registered twice.
fn payment_gateway(
    settings: &PaymentSettings,
    registry: &Registry,
) -> anyhow::Result<MeteredPaymentGateway> {
    let millis = Duration::from_millis;
    Ok(match settings.gateway {
        GatewayChoice::Simulated => MeteredPaymentGateway::new(
            Arc::new(SimulatedPaymentGateway::new(settings.simulated_decline_above)),
            None,
            registry,
        )?,
        GatewayChoice::Http => {
            let gateway = HttpPaymentGateway::new(HttpGatewaySettings {
                base_url: settings
                    .api_url
                    .clone()
                    .context("PAYMENT_API_URL is required with PAYMENT_GATEWAY=http")?,
                api_key: settings
                    .api_key
                    .clone()
                    .context("PAYMENT_API_KEY is required with PAYMENT_GATEWAY=http")?,
                connect_timeout: millis(settings.connect_timeout_ms),
                attempt_timeout: millis(settings.attempt_timeout_ms),
                call_timeout: millis(settings.call_timeout_ms),
                max_attempts: settings.max_attempts,
                retry_base_delay: millis(settings.retry_base_delay_ms),
                breaker_threshold: settings.breaker_threshold,
                breaker_cool_down: Duration::from_secs(settings.breaker_cool_down),
            })?;
            let breaker = gateway.breaker();
            MeteredPaymentGateway::new(Arc::new(gateway), Some(breaker), registry)?
        }
    })
}

/// The account cache of the access-token check: its invalidations travel through Redis when
/// `REDIS_URL` is set, so that a deletion, a new role, password or e-mail address reaches every
/// instance at once; without Redis, the other instances follow within `AUTH_CACHE_TTL`.
///
/// # Errors
/// When the Redis URL is invalid.
fn account_cache(settings: &Settings, database: &Database) -> anyhow::Result<CachedAccounts> {
    let directory = Arc::new(SeaOrmAccounts::new(database.clone()));
    let ttl = Duration::from_secs(settings.auth.auth_cache_ttl);
    Ok(match &settings.redis.redis_url {
        Some(url) => CachedAccounts::shared(
            directory,
            ttl,
            url,
            format!("{}:accounts:invalidated", settings.redis.redis_key_prefix),
        )?,
        None => CachedAccounts::new(directory, ttl),
    })
}

/// The product cache of `settings`: its invalidations travel through Redis when `REDIS_URL` is
/// set, so that every instance drops a product that any of them wrote.
///
/// # Errors
/// When the Redis URL is invalid.
fn product_cache(settings: &Settings) -> anyhow::Result<ProductCache> {
    let cache = ProductCacheSettings {
        ttl: Duration::from_secs(settings.catalogue.product_cache_ttl),
        capacity: settings.catalogue.product_cache_capacity,
    };
    Ok(match &settings.redis.redis_url {
        Some(url) => ProductCache::shared(
            cache,
            url,
            format!("{}:products:invalidated", settings.redis.redis_key_prefix),
        )?,
        None => ProductCache::local(cache),
    })
}

/// The rate limiter: shared through Redis when `REDIS_URL` is set, per process otherwise.
///
/// # Errors
/// When the Redis URL is invalid.
pub async fn rate_limiter(settings: &Settings) -> anyhow::Result<Arc<dyn RateLimiter>> {
    Ok(match &settings.redis.redis_url {
        Some(url) => Arc::new(
            RedisRateLimiter::connect(url, format!("{}:rl", settings.redis.redis_key_prefix))
                .await?,
        ),
        None => Arc::new(InMemoryRateLimiter::new()),
    })
}

/// The policies of `settings`, named as clients see them in the `RateLimit-Policy` header.
fn rate_limit_policies(settings: &Settings) -> RateLimitPolicies {
    let limits = &settings.rate_limit;
    let policy = |name: &str, quota: Quota| {
        limits.enabled.then(|| RateLimitPolicy {
            name: name.to_owned(),
            quota: quota.requests,
            window: quota.window,
        })
    };
    RateLimitPolicies {
        anonymous: policy("anonymous", limits.anonymous),
        authenticated: policy("authenticated", limits.authenticated),
        auth_per_ip: policy("auth-ip", limits.auth_per_ip),
        auth_per_account: policy("auth-account", limits.auth_per_account),
        orders: policy("orders", limits.orders),
    }
}

/// Readiness: the database's answer to a ping (required), and the last known health of Redis
/// (reported; without it rate limits fall back to per-instance limits and the caches are
/// bypassed, so the instance still serves). Redis is not asked per call: its health is what the
/// Redis users of the instance last found, a `PING` of a subscription at most 100 ms ago, or
/// one `PING` per second when nothing else reported (ADR 0029).
struct Dependencies {
    database: Database,
    rate_limits: RateLimits,
    /// The database's last known health: `/metrics` reads it, so a scrape flood pings at most
    /// once a second.
    database_health: KnownHealth,
}

/// How old a known database health `/metrics` accepts before it pings again.
const KNOWN_HEALTH_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// A health answer, kept: asked again only when older than the caller accepts; concurrent askers
/// wait for the one probe under way and share its answer.
#[derive(Default)]
struct KnownHealth {
    last: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl KnownHealth {
    async fn get(
        &self,
        max_age: std::time::Duration,
        probe: impl std::future::Future<Output = bool>,
    ) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, healthy)) = *last
            && at.elapsed() < max_age
        {
            return healthy;
        }
        let healthy = probe.await;
        *last = Some((std::time::Instant::now(), healthy));
        healthy
    }
}

impl Dependencies {
    fn new(database: Database, rate_limits: RateLimits) -> Self {
        Self { database, rate_limits, database_health: KnownHealth::default() }
    }

    /// Whether the database answers, pinging it unless a ping younger than `max_age` said.
    async fn database_healthy(&self, max_age: std::time::Duration) -> bool {
        let ping = async {
            match self.database.ping().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "readiness: the database does not answer");
                    false
                }
            }
        };
        self.database_health.get(max_age, ping).await
    }

    async fn statuses(&self, max_age: std::time::Duration) -> Vec<DependencyStatus> {
        let healthy = self.database_healthy(max_age).await;
        let mut checks = vec![DependencyStatus { name: "database", healthy, required: true }];
        if let Some(healthy) = self.rate_limits.store_healthy().await {
            if !healthy {
                tracing::warn!(
                    "readiness: Redis fails or hangs; rate limits are per instance, caches bypassed"
                );
            }
            checks.push(DependencyStatus { name: "redis", healthy, required: false });
        }
        checks
    }
}

#[async_trait]
impl Readiness for Dependencies {
    async fn check(&self) -> Vec<DependencyStatus> {
        self.statuses(std::time::Duration::ZERO).await
    }

    async fn last_known(&self) -> Vec<DependencyStatus> {
        self.statuses(KNOWN_HEALTH_MAX_AGE).await
    }

    async fn pending_migrations(&self) -> Vec<String> {
        self.database.pending_migrations().await.unwrap_or_else(|error| {
            tracing::warn!(error = %format!("{error:#}"), "readiness: cannot read the applied migrations");
            Vec::new()
        })
    }
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    /// The internal listener serving only `/metrics` (`METRICS_ADDR`), and its port.
    metrics: Option<(u16, Server)>,
    expiry: Option<JoinHandle<()>>,
    /// The outbox relay (ADR 0033).
    relay: JoinHandle<()>,
    /// The webhook delivery worker (ADR 0034).
    deliveries: JoinHandle<()>,
}

impl Application {
    /// Connects, migrates when configured, wires everything and binds the listener (port 0 picks a
    /// free port: see [`Application::port`]).
    ///
    /// # Errors
    /// When the database cannot be opened or migrated, or the address cannot be bound.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let database = connect(settings).await?;
        if settings.database.auto_migrate {
            database.check().await?;
            database.migrate_up(None).await?;
            tracing::info!("database migrations applied");
        } else if let Err(error) = database.check().await {
            // Without migrations to apply, serving can start while the database is down: the
            // pool connects when it comes back, and `/ready` says 503 until then.
            tracing::warn!("{error}");
        }
        Self::build_with(settings, database).await
    }

    /// Like [`Application::build`], on an already opened (and migrated) database.
    ///
    /// # Errors
    /// When the address cannot be bound or the wiring fails.
    pub async fn build_with(settings: &Settings, database: Database) -> anyhow::Result<Self> {
        let Wiring {
            use_cases,
            expire_orders,
            housekeeping,
            deliver_webhooks,
            delivery_queue,
            access_tokens,
            clock,
            registry,
            ..
        } = wire(&database, settings)?;
        settings.warn_about_jwt_secret();
        warn_about_pending_migrations(&database).await;
        let engine = database.location().map_or("unknown", |location| location.engine());
        let database_url = database.redacted_url();
        let proxies =
            TrustedProxies::parse(settings.server.trusted_proxies.iter().map(String::as_str))
                .map_err(|problem| anyhow::anyhow!("TRUSTED_PROXIES: {problem}"))?;
        let rate_limits =
            RateLimits::new(rate_limiter(settings).await?, rate_limit_policies(settings), proxies);
        let metrics = if settings.telemetry.metrics_enabled {
            register_build_info(&registry)?;
            Some(ApiMetrics::register(&registry, rate_limits.policies())?)
        } else {
            None
        };
        let expiry_metrics =
            metrics.clone().map(|moves| ExpiryMetrics::register(&registry, moves)).transpose()?;
        let relay = relay(settings, &database, clock.clone(), metrics.is_some(), &registry).await?;
        let deliveries = DeliveryWorker {
            deliver: deliver_webhooks,
            queue: delivery_queue,
            clock: clock.clone(),
            metrics: metrics.is_some().then(|| DeliveryMetrics::register(&registry)).transpose()?,
            retention: Duration::from_secs(settings.outbox.retention),
            poll_interval: Duration::from_millis(settings.outbox.poll_interval),
        };
        let state = ApiState {
            use_cases: Arc::new(use_cases),
            access_tokens,
            clock,
            readiness: Arc::new(Dependencies::new(database.clone(), rate_limits.clone())),
            rate_limits,
            metrics: metrics.clone(),
            deprecation_log: DeprecationLog::default(),
            settings: ApiSettings {
                enable_swagger_ui: settings.server.enable_swagger_ui,
                cors_allowed_origins: settings.server.cors_allowed_origins.clone(),
                body_limit: settings.server.body_limit,
                max_uri_length: settings.server.max_uri_length,
                max_header_count: settings.server.max_header_count,
                max_header_bytes: settings.server.max_header_bytes,
                serve_metrics: settings.telemetry.metrics_addr.is_none(),
                v1_lifecycle: settings.api_v1.lifecycle(),
            },
        };
        let metrics_listener = match (&metrics, &settings.telemetry.metrics_addr) {
            (Some(_), Some(address)) => Some(metrics_server(address, state.clone())?),
            _ => None,
        };
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = bind(&address, "PORT", "HOST and PORT")?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        // What the HTTP layer answers itself, with empty bodies, is in ADR 0015.
        let mut server = HttpServer::new(move || orderly_api::app(state.clone()))
            .shutdown_timeout(settings.server.shutdown_timeout)
            .client_request_timeout(Duration::from_secs(settings.server.client_request_timeout))
            .client_disconnect_timeout(Duration::from_secs(
                settings.server.client_disconnect_timeout,
            ))
            .keep_alive(Duration::from_secs(settings.server.keep_alive))
            .max_connections(settings.server.max_connections_per_worker)
            // Request bodies and later heads get deadlines too (ADR 0028).
            .on_connect(orderly_api::stalls::on_connect(orderly_api::stalls::StallLimits::new(
                Duration::from_secs(settings.server.client_request_timeout),
                Duration::from_secs(settings.server.keep_alive),
            )));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener).context("listening")?.run();
        let expiry = (settings.orders.order_expiry_interval > 0).then(|| {
            let interval = std::time::Duration::from_secs(settings.orders.order_expiry_interval);
            tokio::spawn(run_background(
                expire_orders,
                housekeeping,
                interval,
                database,
                expiry_metrics,
            ))
        });
        let base = base_url(&settings.server.host, port);
        let open = if settings.server.enable_swagger_ui {
            format!("{base}/swagger-ui/")
        } else {
            format!("{base}/")
        };
        tracing::info!(
            %address,
            port,
            engine = %engine,
            database = %database_url,
            url = %open,
            "listening on {base}; open {open}"
        );
        if let Some((metrics_port, _)) = &metrics_listener {
            tracing::info!(port = metrics_port, "serving /metrics on its own listener");
        }
        Ok(Self {
            port,
            server,
            metrics: metrics_listener,
            expiry,
            relay: relay.spawn(),
            deliveries: deliveries.spawn(),
        })
    }

    /// The port the service listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the listener that serves only `/metrics`, when `METRICS_ADDR` set one.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves until a signal: on SIGTERM it stops accepting and drains in-flight requests (up to
    /// `SHUTDOWN_TIMEOUT`); SIGINT (Ctrl-C) and SIGQUIT stop at once. The background jobs stop
    /// at the signal, before the drain ends (`stop_on_signal`).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // The metrics listener ignores signals and stops when the main one has: Prometheus can
        // watch a draining instance to the end.
        let metrics = self.metrics.map(|(_, server)| (server.handle(), tokio::spawn(server)));
        let jobs: Vec<AbortHandle> = self
            .expiry
            .iter()
            .chain([&self.relay, &self.deliveries])
            .map(JoinHandle::abort_handle)
            .collect();
        let stop_jobs = tokio::spawn(stop_on_signal(jobs.clone()));
        let result = self.server.await.context("serving");
        stop_jobs.abort();
        if let Some((handle, task)) = metrics {
            handle.stop(false).await;
            let _ = task.await;
        }
        jobs.iter().for_each(AbortHandle::abort);
        tracing::info!("stopped");
        result
    }
}

/// Stops the background jobs as soon as the server is told to stop, while it drains. Each HTTP
/// worker runs a runtime of its own, and the pool's connections that a worker opened stop
/// working when that runtime stops; a job still running after that would take the database for
/// unreachable (a warning on every stop). The jobs lose nothing: what they had claimed (in a
/// transaction, or under a delivery's lease) is taken up again by a later run, here or on
/// another instance.
async fn stop_on_signal(jobs: Vec<AbortHandle>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // The signals the server itself stops on (actix-server); where one cannot be watched,
        // the jobs stop after the server, as before.
        let (Ok(mut terminate), Ok(mut interrupt), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
            _ = quit.recv() => {}
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    jobs.iter().for_each(AbortHandle::abort);
}

/// The outbox relay: publishing to NATS JetStream with `NATS_URL`, otherwise only the retention.
async fn relay(
    settings: &Settings,
    database: &Database,
    clock: Arc<dyn Clock>,
    with_metrics: bool,
    registry: &Registry,
) -> anyhow::Result<Relay> {
    let outbox: Arc<dyn Outbox> = Arc::new(SeaOrmOutbox::new(database.clone()));
    let relay = match settings.nats.adapter() {
        Some(nats) => {
            let publisher = NatsPublisher::connect(nats).await?;
            tracing::info!(
                stream = %settings.nats.stream,
                subjects = %format!("{}.>", settings.nats.subject_prefix),
                "the outbox relay publishes events to NATS JetStream"
            );
            Some(
                RelayEvents::new(outbox.clone(), Arc::new(publisher), clock.clone())
                    .with_batch(settings.outbox.batch),
            )
        }
        None => None,
    };
    let metrics =
        (with_metrics && relay.is_some()).then(|| RelayMetrics::register(registry)).transpose()?;
    Ok(Relay {
        relay,
        outbox,
        clock,
        metrics,
        retention: Duration::from_secs(settings.outbox.retention),
        poll_interval: Duration::from_millis(settings.outbox.poll_interval),
    })
}

/// The internal listener of `METRICS_ADDR`: `GET /metrics` only, on one worker, deaf to
/// signals (`run_until_stopped` stops it after the main listener).
fn metrics_server(address: &str, state: ApiState) -> anyhow::Result<(u16, Server)> {
    let listener = bind(address, "METRICS_ADDR", "METRICS_ADDR")?;
    let port = listener.local_addr().context("reading the bound address")?.port();
    let server = HttpServer::new(move || orderly_api::metrics::metrics_app(state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .context("listening for /metrics")?
        .run();
    Ok((port, server))
}

/// Binds `address`, or says which address could not be bound and what to change: the variable
/// that picks the port (`port_setting`) when it is taken or privileged, else every variable that
/// makes up the address (`address_settings`).
fn bind(address: &str, port_setting: &str, address_settings: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).map_err(|error| {
        let hint = match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process (another orderly?) listens there: stop it, or set {port_setting} \
                 to another port"
            ),
            std::io::ErrorKind::PermissionDenied => {
                format!("ports below 1024 need privileges: set {port_setting} to another port")
            }
            _ => format!("check {address_settings}"),
        };
        anyhow::anyhow!("cannot listen on {address}: {error}\n  hint: {hint}")
    })
}

/// The address to open in a browser: the bound host, or the loopback address when the
/// listener is bound to every interface (`0.0.0.0`, `::`).
pub fn base_url(host: &str, port: u16) -> String {
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_owned(),
    };
    format!("http://{host}:{port}")
}

/// Warns, at start, when the database schema is behind this binary: requests would fail with
/// 500s on missing tables, so `/ready` answers 503 `MIGRATIONS_PENDING` until they are applied.
async fn warn_about_pending_migrations(database: &Database) {
    match database.pending_migrations().await {
        Ok(pending) if !pending.is_empty() => tracing::warn!(
            pending = pending.len(),
            first = %pending[0],
            "the database schema is behind this binary: {} migration{} pending; /ready answers 503 \
             MIGRATIONS_PENDING until `orderly migrate up` applies {} (or start with AUTO_MIGRATE=true)",
            pending.len(),
            if pending.len() == 1 { " is" } else { "s are" },
            if pending.len() == 1 { "it" } else { "them" },
        ),
        Ok(_) => {}
        // An unreachable database has been reported already (see `Application::build`).
        Err(error) => {
            tracing::debug!(error = %format!("{error:#}"), "cannot read the applied migrations")
        }
    }
}

/// The background work beside expiry: every tick, asks the payment provider again for what
/// orders still owe (captures, voids, refunds the requests could not finish; ADR 0024) and purges
/// idempotency records older than `IDEMPOTENCY_TTL` (ADR 0023). Safe on several instances: every
/// settlement is version-guarded and idempotent at the provider.
pub struct Housekeeping {
    settle_payments: SettlePayments,
    /// The settlement job's gauge; `None` when metrics are off.
    metrics: Option<SettlementMetrics>,
    idempotency: Arc<dyn IdempotencyStore>,
    idempotency_ttl: TimeDelta,
    clock: Arc<dyn Clock>,
}

/// Orders settled per tick at most; the rest wait for the next tick.
const SETTLEMENT_BATCH: u32 = 100;

impl Housekeeping {
    /// One round: settle, then purge. Failures are logged; the next tick tries again.
    pub async fn run_once(&self) {
        match self.settle_payments.execute(SETTLEMENT_BATCH).await {
            Ok(report) if report.settled + report.deferred + report.declined > 0 => {
                tracing::info!(
                    settled = report.settled,
                    deferred = report.deferred,
                    declined = report.declined,
                    "settled payments the provider still owed"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "payment settlement failed; retrying next tick");
            }
        }
        if let Some(metrics) = &self.metrics {
            match self.settle_payments.payments_needing_attention().await {
                Ok(count) => metrics.needing_attention(count),
                Err(error) => tracing::warn!(error = %format!("{error:#}"),
                    "the payments needing attention could not be counted; retrying next tick"),
            }
        }
        match self.idempotency.purge(self.clock.now() - self.idempotency_ttl).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired idempotency records"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "purging idempotency records failed; retrying next tick");
            }
        }
    }
}

/// The background jobs: every `interval`, expires overdue orders in batches, then runs the
/// [`Housekeeping`]. Safe on several instances at once (each expiry is a guarded update: one
/// instance wins, the others skip). While the schema is behind this binary it waits (saying so
/// once) instead of failing on missing tables every tick; housekeeping also waits while the
/// migrations cannot be read.
async fn run_background(
    expire_orders: ExpireOrders,
    housekeeping: Housekeeping,
    interval: std::time::Duration,
    database: Database,
    metrics: Option<ExpiryMetrics>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting = false;
    loop {
        ticker.tick().await;
        let pending = database.pending_migrations().await;
        let behind = pending.as_ref().is_ok_and(|pending| !pending.is_empty());
        if behind != waiting {
            waiting = behind;
            if behind {
                tracing::warn!(
                    "the order-expiry job waits until the pending migrations are applied"
                );
            } else {
                tracing::info!("migrations applied: the order-expiry job runs again");
            }
        }
        if behind {
            continue;
        }
        let (expired, ok) = match expire_orders.execute().await {
            Ok(report) => {
                if report.expired + report.skipped + report.unreadable > 0 {
                    tracing::info!(
                        expired = report.expired,
                        skipped = report.skipped,
                        unreadable = report.unreadable,
                        "expired unpaid orders"
                    );
                }
                (report.expired, true)
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "the order-expiry job failed; retrying later");
                (0, false)
            }
        };
        if let Some(metrics) = &metrics {
            metrics.ran(expired, ok);
        }
        if pending.is_ok() {
            housekeeping.run_once().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::KnownHealth;

    #[tokio::test]
    async fn a_known_health_is_asked_again_only_when_older_than_the_caller_accepts() {
        let health = KnownHealth::default();
        let probes = AtomicUsize::new(0);
        // Counts the probes that run (a probe not awaited never pings).
        let probe = |answer: bool| {
            let probes = &probes;
            async move {
                probes.fetch_add(1, Ordering::SeqCst);
                answer
            }
        };

        for _ in 0..100 {
            assert!(health.get(Duration::from_secs(60), probe(true)).await);
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1, "a flood of scrapes probes once");

        assert!(!health.get(Duration::ZERO, probe(false)).await, "a fresh ask probes");
        assert_eq!(probes.load(Ordering::SeqCst), 2);
        assert!(
            !health.get(Duration::from_secs(60), probe(true)).await,
            "the last answer is what is known"
        );
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }
}
