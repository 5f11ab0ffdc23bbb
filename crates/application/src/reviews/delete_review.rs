//! Deletes a review (its author, or an admin).

use std::sync::Arc;

use orderly_domain::{Actor, ReviewId};

use crate::{
    StoreError, WRITE_ATTEMPTS,
    reviews::ports::{ReviewRepository, ReviewWriteError},
};

/// Why the review was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteReviewError {
    /// No such review, or a hidden one the caller may not see.
    #[error("review not found")]
    NotFound,
    /// Only its author or an admin deletes a review.
    #[error("only the author or an administrator may delete a review")]
    Forbidden,
    /// The review kept changing while the deletion was tried [`WRITE_ATTEMPTS`] times.
    #[error("the review was changed concurrently")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct DeleteReview {
    reviews: Arc<dyn ReviewRepository>,
}

impl DeleteReview {
    #[must_use]
    pub fn new(reviews: Arc<dyn ReviewRepository>) -> Self {
        Self { reviews }
    }

    /// Deletes the review `id`; its product's rating no longer counts it.
    ///
    /// # Errors
    /// See [`DeleteReviewError`].
    #[tracing::instrument(name = "delete_review", skip_all, fields(review = %id))]
    pub async fn execute(&self, actor: &Actor, id: ReviewId) -> Result<(), DeleteReviewError> {
        for _ in 0..WRITE_ATTEMPTS {
            let review = self.reviews.find_by_id(id).await?.ok_or(DeleteReviewError::NotFound)?;
            if !review.may_be_seen_by(Some(actor)) {
                return Err(DeleteReviewError::NotFound);
            }
            if !review.may_delete(actor) {
                return Err(DeleteReviewError::Forbidden);
            }
            match self.reviews.delete(&review).await {
                Ok(()) => return Ok(()),
                Err(ReviewWriteError::Stale) => {}
                Err(ReviewWriteError::NotFound) => return Err(DeleteReviewError::NotFound),
                Err(ReviewWriteError::Store(store)) => return Err(store.into()),
                Err(
                    other @ (ReviewWriteError::AlreadyReviewed | ReviewWriteError::MissingParent),
                ) => {
                    let error = anyhow::Error::new(other).context("deleting a review");
                    return Err(StoreError::Unexpected(error).into());
                }
            }
        }
        Err(DeleteReviewError::Conflict)
    }
}
