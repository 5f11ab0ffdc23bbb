//! Adapters for the non-persistence ports: password hashing, access tokens, the clock and the
//! payment gateway.

mod clock;
mod password;
mod payment;
mod tokens;

pub use clock::SystemClock;
pub use password::Argon2PasswordHasher;
pub use payment::SimulatedPaymentGateway;
pub use tokens::{JwtAccessTokens, JwtSettings};
