//! Reads one product, archived or not.

use std::sync::Arc;

use orderly_domain::{Product, ProductId};

use crate::{StoreError, ports::ProductQueries};

/// Why the product could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetProductError {
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct GetProduct {
    products: Arc<dyn ProductQueries>,
}

impl GetProduct {
    #[must_use]
    pub fn new(products: Arc<dyn ProductQueries>) -> Self {
        Self { products }
    }

    /// The product `id`. Archived products are still served (orders link to them), flagged.
    ///
    /// # Errors
    /// [`GetProductError::NotFound`] or [`GetProductError::Store`].
    pub async fn execute(&self, id: ProductId) -> Result<Product, GetProductError> {
        self.products.find(id).await?.ok_or(GetProductError::NotFound)
    }
}
