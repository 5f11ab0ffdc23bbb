//! Adapters for the non-persistence ports: password hashing, access tokens, the clock, the
//! payment gateway and rate limiting; and the per-instance caches (accounts, products) with the
//! Redis invalidations they share.

mod account_cache;
mod clock;
mod invalidation;
mod nats;
mod password;
mod payment;
mod product_cache;
mod rate_limit;
mod tokens;
pub mod webhooks;

pub use account_cache::{CachedAccounts, ForgettingUsers};
pub use clock::SystemClock;
pub use nats::{EVENT_SOURCE, NatsPublisher, NatsSettings, envelope};
pub use password::{Argon2PasswordHasher, HashingLimits, HashingStatus};
pub use payment::{
    BreakerMonitor, BreakerState, HttpGatewaySettings, HttpPaymentGateway, MeteredPaymentGateway,
    SimulatedPaymentGateway,
};
pub use product_cache::{CachedProducts, ProductCache, ProductCacheSettings};
pub use rate_limit::{DEFAULT_KEY_PREFIX, InMemoryRateLimiter, RedisRateLimiter};
pub use tokens::{JwtAccessTokens, JwtSettings};
pub use webhooks::{HttpWebhookSender, NetworkGuard, RandomSecrets, WebhookSettings};
