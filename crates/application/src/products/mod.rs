//! Use cases about the catalogue. Anyone reads it; only admins change it.

pub mod archive_product;
pub mod create_product;
pub mod get_product;
pub mod list_products;
pub mod update_product;
