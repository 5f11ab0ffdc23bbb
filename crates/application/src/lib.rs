//! Orderly's use cases and the ports they need.
//!
//! One module per use case (`orders::place_order`, `users::register_user`, ...), each with its
//! input type, its output and its own error enum. Use cases receive their collaborators as
//! `Arc<dyn Port>` (ADR 0002) and decide authorization: who may see or change what is answered
//! here, never in an HTTP handler. Ports (`ports`) are traits owned by this layer; adapters in
//! `orderly-infrastructure` implement them, and `#[mockall::automock]` gives each a `Mock*` twin
//! for tests (this crate's own, and other crates' through the `mocks` feature).

pub mod auth;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod orders;
pub mod pagination;
pub mod ports;
pub mod products;
pub mod reviews;
pub mod users;
pub mod webhooks;

pub use error::{StoreError, WRITE_ATTEMPTS};
