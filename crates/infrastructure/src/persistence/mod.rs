//! SeaORM persistence on PostgreSQL and SQLite: the connection, error translation, and one
//! adapter per aggregate (each implementing its repository port and its query port).

mod accounts;
mod connection;
mod error;
mod groups;
mod health;
mod idempotency;
mod keyset;
mod location;
mod mapping;
mod orders;
mod outbox;
mod placements;
mod products;
mod refresh_tokens;
mod reviews;
mod users;
mod webhooks;

pub use accounts::SeaOrmAccounts;
pub(crate) use connection::WriteTransaction;
pub use connection::{Database, DatabaseSettings, Engine, Pooler, redact};
pub use idempotency::SeaOrmIdempotencyStore;
pub use location::{
    ConnectionError, ConnectionProblem, Created, Location, create as create_database,
};
pub use orders::SeaOrmOrderRepository;
pub use outbox::{IdOnly, SeaOrmOutbox};
pub use products::SeaOrmProductRepository;
pub use refresh_tokens::SeaOrmRefreshTokens;
pub use reviews::SeaOrmReviewRepository;
pub use users::SeaOrmUserRepository;
pub use webhooks::SeaOrmWebhooks;
