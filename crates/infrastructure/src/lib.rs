//! Adapters for the ports of `orderly-application`.
//!
//! `persistence` implements every repository and query port with SeaORM on PostgreSQL and
//! SQLite. SeaORM entities are private to this crate: they are mapped to and from domain
//! aggregates here and never appear in a public signature. Database errors are translated into
//! the ports' error variants (unique violation -> `Duplicate`, missing row -> `NotFound`,
//! serialization failure or busy database -> `Contention`, unreachable -> `Unavailable`).

mod entity;
pub mod metrics;
pub mod persistence;
pub mod services;
#[cfg(feature = "testing")]
pub mod testing;

pub use persistence::{
    Database, DatabaseSettings, Engine, SeaOrmAccounts, SeaOrmIdempotencyStore,
    SeaOrmOrderRepository, SeaOrmProductRepository, SeaOrmRefreshTokens, SeaOrmUserRepository,
};
