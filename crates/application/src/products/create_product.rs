//! Adds a product to the catalogue (admins only, as the database has them: ADR 0027).

use std::sync::Arc;

use orderly_domain::{Actor, Product, ProductDraft, ProductError, ProductId};

use crate::{
    StoreError,
    auth::admin_check::AdminCheck,
    ports::{Clock, ProductRepository, ProductWriteError},
};

/// Why the product could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateProductError {
    /// Only admins change the catalogue: the actor is not one as the database has it now (a
    /// demoted admin, or an account deleted since its token was checked).
    #[error("only administrators may create products")]
    Forbidden,
    /// The draft breaks a product rule.
    #[error(transparent)]
    Invalid(#[from] ProductError),
    /// The SKU belongs to another product.
    #[error("a product with this SKU already exists")]
    DuplicateSku,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ProductWriteError> for CreateProductError {
    fn from(error: ProductWriteError) -> Self {
        match error {
            ProductWriteError::SkuTaken => Self::DuplicateSku,
            ProductWriteError::Store(store) => Self::Store(store),
            // An insert touches no existing product.
            other @ (ProductWriteError::NotFound | ProductWriteError::Stale) => {
                Self::Unexpected(anyhow::Error::new(other).context("inserting a product"))
            }
        }
    }
}

/// The use case.
#[derive(Clone)]
pub struct CreateProduct {
    products: Arc<dyn ProductRepository>,
    admins: AdminCheck,
    clock: Arc<dyn Clock>,
}

impl CreateProduct {
    #[must_use]
    pub fn new(
        products: Arc<dyn ProductRepository>,
        admins: AdminCheck,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { products, admins, clock }
    }

    /// Creates the product and returns it.
    ///
    /// # Errors
    /// See [`CreateProductError`]; nothing is stored on error.
    pub async fn execute(
        &self,
        actor: &Actor,
        draft: ProductDraft,
    ) -> Result<Product, CreateProductError> {
        self.execute_with_id(actor, ProductId::new(), draft).await
    }

    /// Creates the product under an id the caller chose (`orderly seed`: the demo catalogue's
    /// ids are derived from their SKUs).
    ///
    /// # Errors
    /// As [`CreateProduct::execute`]. The id must be new: check first (the adapters report a
    /// taken id as the store's failure, or as a taken SKU).
    pub async fn execute_with_id(
        &self,
        actor: &Actor,
        id: ProductId,
        draft: ProductDraft,
    ) -> Result<Product, CreateProductError> {
        let actor = self.admins.recheck(actor).await?.ok_or(CreateProductError::Forbidden)?;
        if !actor.is_admin() {
            return Err(CreateProductError::Forbidden);
        }
        let product = Product::create_with_id(id, draft, self.clock.now())?;
        self.products.insert(&product).await?;
        Ok(product)
    }
}
