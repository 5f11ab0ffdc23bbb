//! The ports: traits this layer owns and adapters implement.
//!
//! Every method documents under `# Errors` which variant an adapter MUST return for which
//! situation; use cases rely on that contract to give each failure its meaning.

mod clock;
mod events;
mod idempotency;
mod orders;
mod payment;
mod products;
mod rate_limit;
mod security;
mod users;

pub use clock::Clock;
pub use events::EventData;
pub use idempotency::{
    Claim, Completion, IDEMPOTENCY_KEY_MAX_LEN, IDEMPOTENCY_LEASE, IdempotencyKey,
    IdempotencyStore, IdempotentRequest, InvalidIdempotencyKey, Lease, Replay,
};
pub use orders::{
    OrderFilter, OrderQueries, OrderRepository, OrderWriteError, OverdueBatch, OverdueClaim,
    OverdueCursor, PlaceOrderFailure, UnreadableOrder,
};
pub use payment::{PaymentError, PaymentGateway};
pub use products::{
    ProductFilter, ProductQueries, ProductRepository, ProductSort, ProductWriteError, UnknownSort,
};
pub use rate_limit::{RateLimitDecision, RateLimitPolicy, RateLimiter};
pub use security::{
    AccessToken, AccessTokens, AccountDirectory, AccountStatus, Claims, HashError, InvalidToken,
    PasswordHasher, RefreshTokenError, RefreshTokens,
};
pub use users::{UserQueries, UserReferrer, UserRepository, UserWriteError};

/// The ports' `Mock*` twins (mockall), for this crate's tests and, through the `mocks` feature,
/// other crates'.
#[cfg(any(test, feature = "mocks"))]
pub use self::{
    clock::MockClock,
    events::MockEventData,
    idempotency::MockIdempotencyStore,
    orders::{MockOrderQueries, MockOrderRepository, MockOverdueClaim},
    payment::MockPaymentGateway,
    products::{MockProductQueries, MockProductRepository},
    rate_limit::MockRateLimiter,
    security::{MockAccessTokens, MockAccountDirectory, MockPasswordHasher, MockRefreshTokens},
    users::{MockUserQueries, MockUserRepository},
};
