//! Integration tests: the real application on port 0 against a fresh, migrated database per test,
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set (see `helpers::api_tests!`).

mod helpers;

mod auth;
mod errors;
mod flow;
mod operations;
mod orders;
mod products;
mod users;
