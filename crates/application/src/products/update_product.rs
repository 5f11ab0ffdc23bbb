//! Changes a product (admins only, as the database has them: ADR 0027).

use std::sync::Arc;

use orderly_domain::{
    Actor, Money, Product, ProductDescription, ProductError, ProductId, ProductName, Sku,
};

use crate::{
    StoreError, WRITE_ATTEMPTS,
    auth::admin_check::AdminCheck,
    ports::{Clock, ProductRepository, ProductWriteError},
};

/// What to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateProductInput {
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    pub sku: Option<Sku>,
    pub name: Option<ProductName>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<ProductDescription>>,
    pub price: Option<Money>,
    pub stock: Option<u32>,
}

/// Why the update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateProductError {
    /// Only admins change the catalogue: the actor is not one as the database has it now (a
    /// demoted admin, or an account deleted since its token was checked).
    #[error("only administrators may change products")]
    Forbidden,
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// The change breaks a product rule.
    #[error(transparent)]
    Invalid(#[from] ProductError),
    /// The client's version is not the current one (HTTP 412).
    #[error("the product has changed since version {expected}; it is now at version {current}")]
    VersionMismatch {
        /// What the client sent.
        expected: u64,
        /// What is stored.
        current: u64,
    },
    /// Other requests kept changing the product while this change was tried
    /// [`WRITE_ATTEMPTS`] times; retrying may succeed.
    #[error("the product was changed concurrently")]
    Conflict,
    /// The new SKU belongs to another product.
    #[error("a product with this SKU already exists")]
    DuplicateSku,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ProductWriteError> for UpdateProductError {
    fn from(error: ProductWriteError) -> Self {
        match error {
            ProductWriteError::NotFound => Self::NotFound,
            ProductWriteError::Stale => Self::Conflict,
            ProductWriteError::SkuTaken => Self::DuplicateSku,
            ProductWriteError::Store(store) => Self::Store(store),
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct UpdateProduct {
    products: Arc<dyn ProductRepository>,
    admins: AdminCheck,
    clock: Arc<dyn Clock>,
}

impl UpdateProduct {
    #[must_use]
    pub fn new(
        products: Arc<dyn ProductRepository>,
        admins: AdminCheck,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { products, admins, clock }
    }

    /// Applies the changes and returns the product as stored.
    ///
    /// With `expected_version` (`If-Match`), a concurrent change is a
    /// [`UpdateProductError::VersionMismatch`] naming the current version. Without it the last
    /// writer wins: every stock reservation moves the product's version, so the product is
    /// re-read and the change re-applied, up to [`WRITE_ATTEMPTS`] times.
    ///
    /// # Errors
    /// See [`UpdateProductError`]; nothing is stored on error.
    pub async fn execute(
        &self,
        actor: &Actor,
        id: ProductId,
        input: UpdateProductInput,
    ) -> Result<Product, UpdateProductError> {
        let actor = self.admins.recheck(actor).await?.ok_or(UpdateProductError::Forbidden)?;
        if !actor.is_admin() {
            return Err(UpdateProductError::Forbidden);
        }
        let mut attempt = 1;
        loop {
            let mut product =
                self.products.find_by_id(id).await?.ok_or(UpdateProductError::NotFound)?;
            let loaded = product.version();
            if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
                return Err(UpdateProductError::VersionMismatch { expected, current: loaded });
            }
            let now = self.clock.now();
            if let Some(sku) = input.sku.clone() {
                product.change_sku(sku, now);
            }
            if let Some(name) = input.name.clone() {
                product.rename(name, now);
            }
            if let Some(description) = input.description.clone() {
                product.describe(description, now);
            }
            if let Some(price) = input.price {
                product.reprice(price, now);
            }
            if let Some(stock) = input.stock {
                product.restock(stock, now)?;
            }
            if product.version() == loaded {
                return Ok(product);
            }
            match self.products.update(&product, loaded).await {
                Ok(()) => return Ok(product),
                Err(ProductWriteError::Stale) => match input.expected_version {
                    Some(expected) => return Err(self.version_mismatch(id, expected).await),
                    None if attempt < WRITE_ATTEMPTS => attempt += 1,
                    None => return Err(UpdateProductError::Conflict),
                },
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// The answer to a write guarded by `If-Match` that lost to a concurrent change: the version
    /// the client named, and the one stored now (for the `ETag` of the answer).
    async fn version_mismatch(&self, id: ProductId, expected: u64) -> UpdateProductError {
        match self.products.find_by_id(id).await {
            Ok(Some(current)) => {
                UpdateProductError::VersionMismatch { expected, current: current.version() }
            }
            Ok(None) => UpdateProductError::NotFound,
            Err(error) => error.into(),
        }
    }
}
