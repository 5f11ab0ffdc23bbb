//! Takes a product out of the catalogue (admins only). Orders keep referring to it.

use std::sync::Arc;

use orderly_domain::{Actor, ProductId};

use crate::{
    StoreError, WriteError,
    ports::{Clock, ProductRepository},
};

/// Why the product could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveProductError {
    /// Only admins change the catalogue.
    #[error("only administrators may archive products")]
    Forbidden,
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// Another request changed the product at the same moment; retrying may succeed.
    #[error("the product was changed concurrently")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<WriteError> for ArchiveProductError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::Stale => Self::Conflict,
            WriteError::Store(store) => Self::Store(store),
            other @ (WriteError::Duplicate(_) | WriteError::Referenced) => {
                Self::Unexpected(anyhow::Error::new(other).context("archiving a product"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct ArchiveProduct {
    products: Arc<dyn ProductRepository>,
    clock: Arc<dyn Clock>,
}

impl ArchiveProduct {
    #[must_use]
    pub fn new(products: Arc<dyn ProductRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { products, clock }
    }

    /// Archives the product; archiving an archived product succeeds and changes nothing.
    ///
    /// # Errors
    /// See [`ArchiveProductError`].
    pub async fn execute(&self, actor: &Actor, id: ProductId) -> Result<(), ArchiveProductError> {
        if !actor.is_admin() {
            return Err(ArchiveProductError::Forbidden);
        }
        let mut product =
            self.products.find_by_id(id).await?.ok_or(ArchiveProductError::NotFound)?;
        let loaded = product.version();
        product.archive(self.clock.now());
        if product.version() != loaded {
            self.products.update(&product, loaded).await?;
        }
        Ok(())
    }
}
