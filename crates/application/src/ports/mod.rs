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

pub use clock::{Clock, MockClock};
pub use events::{EventData, MockEventData};
pub use idempotency::{
    Claim, Completion, IDEMPOTENCY_KEY_MAX_LEN, IDEMPOTENCY_LEASE, IdempotencyKey,
    IdempotencyStore, IdempotentRequest, InvalidIdempotencyKey, Lease, MockIdempotencyStore,
    Replay,
};
pub use orders::{
    MockOrderQueries, MockOrderRepository, MockOverdueClaim, OrderFilter, OrderQueries,
    OrderRepository, OrderWriteError, OverdueBatch, OverdueClaim, OverdueCursor, PlaceOrderFailure,
    UnreadableOrder,
};
pub use payment::{MockPaymentGateway, PaymentError, PaymentGateway};
pub use products::{
    MockProductQueries, MockProductRepository, ProductFilter, ProductQueries, ProductRepository,
    ProductSort, ProductWriteError, UnknownSort,
};
pub use rate_limit::{MockRateLimiter, RateLimitDecision, RateLimitPolicy, RateLimiter};
pub use security::{
    AccessToken, AccessTokens, AccountDirectory, AccountStatus, Claims, HashError, InvalidToken,
    MockAccessTokens, MockAccountDirectory, MockPasswordHasher, MockRefreshTokens, PasswordHasher,
    RefreshTokenError, RefreshTokens,
};
pub use users::{
    MockUserQueries, MockUserRepository, UserQueries, UserReferrer, UserRepository, UserWriteError,
};
