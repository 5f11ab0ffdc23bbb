//! Orderly's schema, as sea-orm-migration migrations that run on PostgreSQL and SQLite alike.
//!
//! Every migration has a working `down`: `orderly migrate down` to zero and back up is tested on
//! both engines. Money is stored as integer minor units (`BIGINT`) next to its currency, ids as
//! UUIDs (native `uuid` on PostgreSQL), and the invariants the domain relies on are backed by
//! constraints (unique e-mail and SKU, stock never negative, positive quantities, foreign keys).

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_products;
mod m20261124_000003_create_orders;
mod m20261124_000004_create_refresh_tokens;
mod m20261124_000005_create_idempotency_records;
mod m20261124_000006_add_product_search_text;
mod m20261201_000007_add_user_session_epoch;
mod m20261201_000008_add_order_payments;
mod m20261201_000009_idempotency_leases;
mod m20261204_000010_create_reviews;
mod m20261204_000011_add_payment_attempt;
mod m20261204_000012_strip_format_characters_from_names;
mod m20261204_000013_add_payment_failures;
mod m20261204_000014_idempotency_opaque_replay;
mod m20261205_000015_create_outbox_events;
mod m20261205_000016_create_webhooks;
mod m20261206_000017_partial_outbox_indexes;

/// Runs Orderly's migrations in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_products::Migration),
            Box::new(m20261124_000003_create_orders::Migration),
            Box::new(m20261124_000004_create_refresh_tokens::Migration),
            Box::new(m20261124_000005_create_idempotency_records::Migration),
            Box::new(m20261124_000006_add_product_search_text::Migration),
            Box::new(m20261201_000007_add_user_session_epoch::Migration),
            Box::new(m20261201_000008_add_order_payments::Migration),
            Box::new(m20261201_000009_idempotency_leases::Migration),
            Box::new(m20261204_000010_create_reviews::Migration),
            Box::new(m20261204_000011_add_payment_attempt::Migration),
            Box::new(m20261204_000012_strip_format_characters_from_names::Migration),
            Box::new(m20261204_000013_add_payment_failures::Migration),
            Box::new(m20261204_000014_idempotency_opaque_replay::Migration),
            Box::new(m20261205_000015_create_outbox_events::Migration),
            Box::new(m20261205_000016_create_webhooks::Migration),
            Box::new(m20261206_000017_partial_outbox_indexes::Migration),
        ]
    }
}

/// Shorthands for the column types every table uses, so each is spelled once.
mod columns {
    use sea_orm_migration::prelude::*;

    pub(crate) fn uuid_pk(name: impl IntoIden) -> ColumnDef {
        ColumnDef::new(name).uuid().not_null().primary_key().take()
    }

    pub(crate) fn uuid(name: impl IntoIden) -> ColumnDef {
        ColumnDef::new(name).uuid().not_null().take()
    }

    pub(crate) fn timestamp(name: impl IntoIden) -> ColumnDef {
        ColumnDef::new(name).timestamp_with_time_zone().not_null().take()
    }

    pub(crate) fn version(name: impl IntoIden + Copy + 'static) -> ColumnDef {
        ColumnDef::new(name)
            .big_integer()
            .not_null()
            .default(1)
            .check(Expr::col(name).gte(1))
            .take()
    }

    pub(crate) fn money(name: impl IntoIden + Copy + 'static) -> ColumnDef {
        ColumnDef::new(name).big_integer().not_null().check(Expr::col(name).gte(0)).take()
    }

    pub(crate) fn currency(name: impl IntoIden) -> ColumnDef {
        ColumnDef::new(name).char_len(3).not_null().take()
    }
}
