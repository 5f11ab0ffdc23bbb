//! SeaORM entities: the tables as SeaORM sees them. Private to the crate.

pub(crate) mod idempotency_record;
pub(crate) mod order;
pub(crate) mod order_item;
pub(crate) mod order_transition;
pub(crate) mod outbox_event;
pub(crate) mod product;
pub(crate) mod refresh_token;
pub(crate) mod review;
pub(crate) mod user;
pub(crate) mod webhook_delivery;
pub(crate) mod webhook_endpoint;
