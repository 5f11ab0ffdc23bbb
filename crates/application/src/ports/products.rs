use async_trait::async_trait;
use orderly_domain::{Product, ProductId};

use crate::{
    StoreError,
    pagination::{Page, PageRequest},
};

/// Why the store refused to write a product. Products are archived, never deleted, and refer to
/// nothing: a write can only collide on its SKU or lose to another writer.
#[derive(Debug, thiserror::Error)]
pub enum ProductWriteError {
    /// Another product has this SKU.
    #[error("the SKU is taken")]
    SkuTaken,
    /// There is no such product.
    #[error("the product does not exist")]
    NotFound,
    /// The product changed since it was read (its version moved on): reload and retry.
    #[error("the product was changed by someone else")]
    Stale,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores [`Product`] aggregates.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProductRepository: Send + Sync {
    /// Stores a new product.
    ///
    /// # Errors
    /// [`ProductWriteError::SkuTaken`] when the SKU is taken; [`ProductWriteError::Store`] when
    /// the store fails.
    async fn insert(&self, product: &Product) -> Result<(), ProductWriteError>;

    /// The product with this id, archived or not.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (a missing product is `Ok(None)`).
    async fn find_by_id(&self, id: ProductId) -> Result<Option<Product>, StoreError>;

    /// The products with these ids that exist, in any order, in one round trip.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (missing ids are simply absent).
    async fn find_many(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError>;

    /// Writes `product` if the stored row still has `expected_version`, and moves the stored
    /// version to `expected_version + 1` (what `product.version()` is after changes to a loaded
    /// product).
    ///
    /// # Errors
    /// [`ProductWriteError::NotFound`] when the product is gone, [`ProductWriteError::Stale`]
    /// when its version moved on, [`ProductWriteError::SkuTaken`] when the new SKU is taken,
    /// [`ProductWriteError::Store`] otherwise, with [`StoreError::Unexpected`] when the stored
    /// product is at `expected_version` but `product` is not one version past it (nothing to
    /// write, or a value saved already: its change and its events were written then).
    async fn update(
        &self,
        product: &Product,
        expected_version: u64,
    ) -> Result<(), ProductWriteError>;
}

/// How a product list is ordered. Ties are broken by id, so every order is total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProductSort {
    /// Oldest first.
    #[default]
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// By name, A to Z.
    NameAsc,
    /// By name, Z to A.
    NameDesc,
    /// Cheapest first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
}

impl ProductSort {
    /// Every order, for documentation and tests.
    pub const ALL: [Self; 6] = [
        Self::CreatedAsc,
        Self::CreatedDesc,
        Self::NameAsc,
        Self::NameDesc,
        Self::PriceAsc,
        Self::PriceDesc,
    ];

    /// The name used in query strings and cursors (`-` prefix for descending).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::CreatedAsc => "created_at",
            Self::CreatedDesc => "-created_at",
            Self::NameAsc => "name",
            Self::NameDesc => "-name",
            Self::PriceAsc => "price",
            Self::PriceDesc => "-price",
        }
    }

    /// Parses a query-string name.
    ///
    /// # Errors
    /// [`UnknownSort`] for a name none of [`ProductSort::ALL`] has.
    pub fn parse(name: &str) -> Result<Self, UnknownSort> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == name).ok_or(UnknownSort)
    }
}

/// A sort order none of [`ProductSort::ALL`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sort must be one of created_at, -created_at, name, -name, price, -price")]
pub struct UnknownSort;

impl orderly_domain::RuleError for UnknownSort {
    fn code(&self) -> &'static str {
        orderly_domain::rule::ONE_OF
    }
}

/// Which products a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ProductFilter {
    /// Case-insensitive substring of the name or SKU.
    pub q: Option<String>,
    /// Whether archived products are listed too.
    pub include_archived: bool,
    /// The order.
    pub sort: ProductSort,
}

/// Reads products for display. Unlike [`ProductRepository::find_by_id`], which writers use,
/// `find` may be answered from a cache that follows writes within a stated bound (ADR 0025).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProductQueries: Send + Sync {
    /// The product `id`, archived or not, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find(&self, id: ProductId) -> Result<Option<Product>, StoreError>;

    /// One page of the products matching `filter`, in its sort order.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(
        &self,
        filter: ProductFilter,
        page: PageRequest,
    ) -> Result<Page<Product>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sort_order_parses_from_its_name_and_the_refusal_lists_them_all() {
        let message = UnknownSort.to_string();
        for sort in ProductSort::ALL {
            assert_eq!(ProductSort::parse(sort.as_str()), Ok(sort));
            assert!(message.contains(&format!(" {}", sort.as_str())), "{message}");
        }
        assert_eq!(ProductSort::parse("bogus"), Err(UnknownSort));
    }
}
