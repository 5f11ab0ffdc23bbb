//! Reads one review.

use std::sync::Arc;

use orderly_domain::{Actor, Review, ReviewId};

use crate::{StoreError, reviews::ports::ReviewRepository};

/// Why the review could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetReviewError {
    /// No such review, or a hidden one the caller may not see.
    #[error("review not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct GetReview {
    reviews: Arc<dyn ReviewRepository>,
}

impl GetReview {
    #[must_use]
    pub fn new(reviews: Arc<dyn ReviewRepository>) -> Self {
        Self { reviews }
    }

    /// The review `id`, if `actor` (`None`: anonymous) may see it: anyone a visible one, its
    /// author and admins a hidden one.
    ///
    /// # Errors
    /// [`GetReviewError::NotFound`] or [`GetReviewError::Store`].
    pub async fn execute(
        &self,
        actor: Option<&Actor>,
        id: ReviewId,
    ) -> Result<Review, GetReviewError> {
        let review = self.reviews.find_by_id(id).await?.ok_or(GetReviewError::NotFound)?;
        if review.may_be_seen_by(actor) { Ok(review) } else { Err(GetReviewError::NotFound) }
    }
}
