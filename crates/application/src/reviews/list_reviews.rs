//! Lists a product's visible reviews, one page at a time.

use std::sync::Arc;

use orderly_domain::{ProductId, Review};

use crate::{
    StoreError,
    pagination::{InvalidCursor, KeyKind, ListRequest, Listed},
    ports::ProductQueries,
    reviews::ports::{ReviewFilter, ReviewQueries, ReviewSort},
};

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListReviewsError {
    /// No such product.
    #[error("product not found")]
    ProductNotFound,
    /// The cursor is not one this list (product, filter and order) handed out.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cursor scope: a cursor is valid only for the product, filter and order it was made in.
#[must_use]
pub fn scope(product: ProductId, filter: &ReviewFilter) -> String {
    let rating = filter.rating.map_or(0, orderly_domain::Rating::stars);
    format!("reviews:{product}:{rating}:{}", filter.sort.as_str())
}

/// The use case.
#[derive(Clone)]
pub struct ListReviews {
    reviews: Arc<dyn ReviewQueries>,
    products: Arc<dyn ProductQueries>,
}

impl ListReviews {
    #[must_use]
    pub fn new(reviews: Arc<dyn ReviewQueries>, products: Arc<dyn ProductQueries>) -> Self {
        Self { reviews, products }
    }

    /// One page of the visible reviews of `product` matching `filter` (anyone may read them).
    ///
    /// # Errors
    /// See [`ListReviewsError`].
    pub async fn execute(
        &self,
        product: ProductId,
        filter: ReviewFilter,
        request: ListRequest,
    ) -> Result<Listed<Review>, ListReviewsError> {
        if self.products.find(product).await?.is_none() {
            return Err(ListReviewsError::ProductNotFound);
        }
        let scope = scope(product, &filter);
        let kind = match filter.sort {
            ReviewSort::Newest | ReviewSort::Oldest => KeyKind::Id,
            ReviewSort::RatingDesc | ReviewSort::RatingAsc => KeyKind::Int,
        };
        let page = request.into_page_request_for(&scope, kind)?;
        Ok(self.reviews.list(product, filter, page).await?.into_listed(&scope))
    }
}
