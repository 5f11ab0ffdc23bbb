//! Takes a product out of the catalogue (admins only, as the database has them: ADR 0027). Orders keep referring to it.

use std::sync::Arc;

use orderly_domain::{Actor, ProductId};

use crate::{
    StoreError, WRITE_ATTEMPTS,
    auth::admin_check::AdminCheck,
    ports::{Clock, ProductRepository, ProductWriteError},
};

/// Why the product could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveProductError {
    /// Only admins change the catalogue: the actor is not one as the database has it now (a
    /// demoted admin, or an account deleted since its token was checked).
    #[error("only administrators may archive products")]
    Forbidden,
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// Other requests kept changing the product while archiving it was tried
    /// [`WRITE_ATTEMPTS`] times; retrying may succeed.
    #[error("the product was changed concurrently")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ProductWriteError> for ArchiveProductError {
    fn from(error: ProductWriteError) -> Self {
        match error {
            ProductWriteError::NotFound => Self::NotFound,
            ProductWriteError::Stale => Self::Conflict,
            ProductWriteError::Store(store) => Self::Store(store),
            // Archiving writes the SKU the product already has.
            other @ ProductWriteError::SkuTaken => {
                Self::Unexpected(anyhow::Error::new(other).context("archiving a product"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct ArchiveProduct {
    products: Arc<dyn ProductRepository>,
    admins: AdminCheck,
    clock: Arc<dyn Clock>,
}

impl ArchiveProduct {
    #[must_use]
    pub fn new(
        products: Arc<dyn ProductRepository>,
        admins: AdminCheck,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { products, admins, clock }
    }

    /// Archives the product; archiving an archived product succeeds and changes nothing.
    ///
    /// Every stock reservation moves the product's version, so a concurrent change makes the
    /// use case re-read the product and archive it again, up to [`WRITE_ATTEMPTS`] times.
    ///
    /// # Errors
    /// See [`ArchiveProductError`].
    pub async fn execute(&self, actor: &Actor, id: ProductId) -> Result<(), ArchiveProductError> {
        let actor = self.admins.recheck(actor).await?.ok_or(ArchiveProductError::Forbidden)?;
        if !actor.is_admin() {
            return Err(ArchiveProductError::Forbidden);
        }
        let mut attempt = 1;
        loop {
            let mut product =
                self.products.find_by_id(id).await?.ok_or(ArchiveProductError::NotFound)?;
            let loaded = product.version();
            product.archive(self.clock.now());
            if product.version() == loaded {
                return Ok(());
            }
            match self.products.update(&product, loaded).await {
                Ok(()) => return Ok(()),
                Err(ProductWriteError::Stale) if attempt < WRITE_ATTEMPTS => attempt += 1,
                Err(other) => return Err(other.into()),
            }
        }
    }
}
