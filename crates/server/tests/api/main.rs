//! Integration tests: the real application on port 0 against a fresh, migrated database per test,
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set (see `helpers::api_tests!`).

// Test modules share helpers with `pub`; the binary has no public API for the lint to protect.
#![allow(unreachable_pub)]

mod helpers;

mod account_changes;
mod auth;
mod deprecation;
mod errors;
mod first_run;
mod flow;
mod idempotency;
mod limits;
mod metrics;
mod operations;
mod orders;
mod outage;
mod payments;
mod product_cache;
mod products;
mod rate_limits;
mod redis_hang;
mod reviews;
mod sessions;
mod stalls;
mod users;
mod v2;
mod webhooks;
