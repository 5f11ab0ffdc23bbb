//! Writes a customer's review of a product they received.

use std::sync::Arc;

use orderly_domain::{Actor, ProductId, Review, ReviewAuthor, ReviewDraft};

use crate::{
    StoreError,
    ports::{Clock, ProductRepository, UserRepository},
    reviews::ports::{ReviewRepository, ReviewWriteError},
};

/// Why the review was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteReviewError {
    /// No such product.
    #[error("product not found")]
    ProductNotFound,
    /// The actor has no delivered order containing the product (the rule holds for admins too).
    #[error("only a customer who received this product may review it")]
    RequiresPurchase,
    /// The actor already reviewed this product.
    #[error("you already reviewed this product")]
    AlreadyReviewed,
    /// The actor's account no longer exists.
    #[error("the account no longer exists")]
    UnknownAuthor,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct WriteReview {
    reviews: Arc<dyn ReviewRepository>,
    products: Arc<dyn ProductRepository>,
    users: Arc<dyn UserRepository>,
    clock: Arc<dyn Clock>,
}

impl WriteReview {
    #[must_use]
    pub fn new(
        reviews: Arc<dyn ReviewRepository>,
        products: Arc<dyn ProductRepository>,
        users: Arc<dyn UserRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { reviews, products, users, clock }
    }

    /// Writes `actor`'s review of `product` and returns it as stored.
    ///
    /// # Errors
    /// See [`WriteReviewError`]; nothing is stored on error.
    #[tracing::instrument(name = "write_review", skip_all, fields(product = %product))]
    pub async fn execute(
        &self,
        actor: &Actor,
        product: ProductId,
        draft: ReviewDraft,
    ) -> Result<Review, WriteReviewError> {
        if self.products.find_by_id(product).await?.is_none() {
            return Err(WriteReviewError::ProductNotFound);
        }
        let author = actor.user_id().ok_or(WriteReviewError::RequiresPurchase)?;
        if !self.reviews.has_received(author, product).await? {
            return Err(WriteReviewError::RequiresPurchase);
        }
        let user = self.users.find_by_id(author).await?.ok_or(WriteReviewError::UnknownAuthor)?;
        let author = ReviewAuthor { id: author, name: user.name().clone() };
        let review = Review::write(product, author, draft, true, self.clock.now());
        match self.reviews.insert(&review).await {
            Ok(()) => Ok(review),
            Err(ReviewWriteError::AlreadyReviewed) => Err(WriteReviewError::AlreadyReviewed),
            // The product or the account went away since they were read.
            Err(ReviewWriteError::MissingParent) => Err(WriteReviewError::ProductNotFound),
            Err(ReviewWriteError::Store(store)) => Err(store.into()),
            Err(other @ (ReviewWriteError::NotFound | ReviewWriteError::Stale)) => {
                Err(StoreError::Unexpected(anyhow::Error::new(other).context("inserting a review"))
                    .into())
            }
        }
    }
}
