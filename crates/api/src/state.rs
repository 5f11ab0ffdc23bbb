//! What the HTTP layer is given by the composition root: the use cases, the token checker, the
//! clock, a readiness probe, the rate limits, the instance's metrics and its own settings.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_application::{
    auth::{
        authenticate::Authenticate, authorize::Authorize, refresh_session::RefreshSession,
        revoke_token::RevokeToken,
    },
    orders::{
        get_order::GetOrder, list_orders::ListOrders, list_user_orders::ListUserOrders,
        move_order::MoveOrder, order_history::OrderHistory, pay_order::PayOrder,
        place_order::PlaceOrder,
    },
    ports::{AccessTokens, Clock},
    products::{
        archive_product::ArchiveProduct, create_product::CreateProduct, get_product::GetProduct,
        list_products::ListProducts, update_product::UpdateProduct,
    },
    users::{
        delete_user::DeleteUser, get_user::GetUser, list_users::ListUsers,
        register_user::RegisterUser, update_user::UpdateUser,
    },
};

/// One dependency as a readiness probe sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyStatus {
    /// `database`, `redis`, ...
    pub name: &'static str,
    /// Whether it answered.
    pub healthy: bool,
    /// Whether the service is unready without it (a required dependency), or only degraded
    /// (Redis: rate limits fall back to per-instance limits, ADR 0012).
    pub required: bool,
}

/// Checks the service's dependencies for `GET /ready`.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// The state of every dependency, asked now (`/ready`).
    async fn check(&self) -> Vec<DependencyStatus>;

    /// The state of every dependency as last known, asked again only when that is older than
    /// a second (`/metrics`: a scrape flood costs the dependencies nothing).
    async fn last_known(&self) -> Vec<DependencyStatus> {
        self.check().await
    }

    /// The migrations this binary needs and the database has not applied (empty: the schema
    /// is current). Asked only when every required dependency answers; a failure to find out
    /// is an empty list (the database check reports an unreachable database).
    async fn pending_migrations(&self) -> Vec<String>;
}

/// Every use case the API serves.
#[allow(missing_docs)]
pub struct UseCases {
    pub register_user: RegisterUser,
    pub get_user: GetUser,
    pub list_users: ListUsers,
    pub update_user: UpdateUser,
    pub delete_user: DeleteUser,
    pub authenticate: Authenticate,
    pub authorize: Authorize,
    pub refresh_session: RefreshSession,
    pub revoke_token: RevokeToken,
    pub create_product: CreateProduct,
    pub get_product: GetProduct,
    pub list_products: ListProducts,
    pub update_product: UpdateProduct,
    pub archive_product: ArchiveProduct,
    pub place_order: PlaceOrder,
    pub get_order: GetOrder,
    pub list_orders: ListOrders,
    pub list_user_orders: ListUserOrders,
    pub pay_order: PayOrder,
    pub move_order: MoveOrder,
    pub order_history: OrderHistory,
    pub reviews: orderly_application::reviews::Reviews,
    pub webhooks: orderly_application::webhooks::Webhooks,
}

/// The HTTP layer's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Serve Swagger UI at `/swagger-ui/`.
    pub enable_swagger_ui: bool,
    /// Origins allowed by CORS; empty means no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Longest accepted request target (path and query), in bytes.
    pub max_uri_length: usize,
    /// Most accepted request header fields.
    pub max_header_count: usize,
    /// Most accepted bytes of request header names and values together.
    pub max_header_bytes: usize,
    /// Serve `GET /metrics` on this listener (when metrics are on); off when it has a listener
    /// of its own.
    pub serve_metrics: bool,
    /// The deprecation of `/api/v1` (`deprecation.rs`); `None`: not deprecated.
    pub v1_lifecycle: Option<crate::deprecation::Lifecycle>,
}

impl ApiSettings {
    /// Settings for this crate's tests. Test values, not defaults: the HTTP layer has none of
    /// its own; the composition root builds these from the server's settings, which state
    /// every default once.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            enable_swagger_ui: true,
            cors_allowed_origins: Vec::new(),
            body_limit: 1024,
            max_uri_length: 1024,
            max_header_count: 16,
            max_header_bytes: 1024,
            serve_metrics: true,
            v1_lifecycle: None,
        }
    }
}

/// Shared, cheaply cloned state of the HTTP layer.
#[derive(Clone)]
pub struct ApiState {
    pub use_cases: Arc<UseCases>,
    pub access_tokens: Arc<dyn AccessTokens>,
    pub clock: Arc<dyn Clock>,
    pub readiness: Arc<dyn Readiness>,
    pub rate_limits: crate::rate_limit::RateLimits,
    /// The instance's metrics; `None` when metrics are off.
    pub metrics: Option<crate::metrics::ApiMetrics>,
    /// The callers of a deprecated version already logged today, shared by the workers.
    pub deprecation_log: crate::deprecation::DeprecationLog,
    pub settings: ApiSettings,
}
