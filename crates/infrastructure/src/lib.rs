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

/// Makes rustls on ring the process's TLS provider. Every HTTP client built on the workspace's
/// reqwest 0.13 (the OTLP exporter's included) needs one, because reqwest is built without a
/// provider of its own (ADR 0022); the database driver already builds ring. Call it once at
/// start-up, before any client is built; calling it again does nothing.
pub fn install_tls_provider() {
    // `Err` only when a provider is already installed, which is what was asked.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use persistence::{
    Database, DatabaseSettings, Engine, IdOnly, Pooler, SeaOrmAccounts, SeaOrmIdempotencyStore,
    SeaOrmOrderRepository, SeaOrmOutbox, SeaOrmProductRepository, SeaOrmRefreshTokens,
    SeaOrmReviewRepository, SeaOrmUserRepository, SeaOrmWebhooks,
};
