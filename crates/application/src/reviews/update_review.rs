//! Changes a review: its author revises it, an admin hides or shows it.

use std::sync::Arc;

use orderly_domain::{
    Actor, Rating, RatingDelta, Reason, Review, ReviewBody, ReviewId, ReviewTitle,
};

use crate::{
    StoreError, WRITE_ATTEMPTS,
    ports::Clock,
    reviews::ports::{ReviewRepository, ReviewWriteError},
};

/// What a moderator does with a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Hide it from everyone but its author and admins, with an optional reason.
    Hide(Option<Reason>),
    /// Show it again.
    Show,
}

/// What to change; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateReviewInput {
    /// The version the client last saw (`If-Match`), if it sent one.
    pub expected_version: Option<u64>,
    pub rating: Option<Rating>,
    pub title: Option<ReviewTitle>,
    pub body: Option<ReviewBody>,
    /// Hiding or showing (admins only).
    pub moderation: Option<Moderation>,
}

impl UpdateReviewInput {
    fn revises(&self) -> bool {
        self.rating.is_some() || self.title.is_some() || self.body.is_some()
    }
}

/// Why the review was not changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateReviewError {
    /// No such review, or a hidden one the caller may not see.
    #[error("review not found")]
    NotFound,
    /// Only the author revises a review; only admins hide or show one.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The client's version is not the current one (HTTP 412).
    #[error("the review has changed since version {expected}; it is now at version {current}")]
    VersionMismatch {
        /// What the client sent.
        expected: u64,
        /// What is stored.
        current: u64,
    },
    /// The review kept changing while the change was tried [`WRITE_ATTEMPTS`] times.
    #[error("the review was changed concurrently")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Clone)]
pub struct UpdateReview {
    reviews: Arc<dyn ReviewRepository>,
    clock: Arc<dyn Clock>,
}

impl UpdateReview {
    #[must_use]
    pub fn new(reviews: Arc<dyn ReviewRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { reviews, clock }
    }

    /// Applies the changes and returns the review as stored. Without `expected_version` the
    /// last writer wins (the review is re-read and the change re-applied on a concurrent
    /// change, up to [`WRITE_ATTEMPTS`] times).
    ///
    /// # Errors
    /// See [`UpdateReviewError`]; nothing is stored on error.
    #[tracing::instrument(name = "update_review", skip_all, fields(review = %id))]
    pub async fn execute(
        &self,
        actor: &Actor,
        id: ReviewId,
        input: UpdateReviewInput,
    ) -> Result<Review, UpdateReviewError> {
        for _ in 0..WRITE_ATTEMPTS {
            let mut review = self.visible(actor, id).await?;
            if input.revises() && !review.may_revise(actor) {
                return Err(UpdateReviewError::Forbidden("only its author may change a review"));
            }
            if input.moderation.is_some() && !Review::may_moderate(actor) {
                return Err(UpdateReviewError::Forbidden(
                    "only administrators may hide or show a review",
                ));
            }
            let loaded = review.version();
            if let Some(expected) = input.expected_version.filter(|expected| *expected != loaded) {
                return Err(UpdateReviewError::VersionMismatch { expected, current: loaded });
            }
            let counted = review.counted_rating();
            let now = self.clock.now();
            if let Some(rating) = input.rating {
                review.rate(rating, now);
            }
            if let Some(title) = input.title.clone() {
                review.retitle(title, now);
            }
            if let Some(body) = input.body.clone() {
                review.rewrite(body, now);
            }
            match input.moderation.clone() {
                Some(Moderation::Hide(reason)) => review.hide(reason, now),
                Some(Moderation::Show) => review.show(now),
                None => {}
            }
            if review.version() == loaded {
                return Ok(review);
            }
            let delta = RatingDelta::between(counted, review.counted_rating());
            match self.reviews.update(&review, loaded, delta).await {
                Ok(()) => return Ok(review),
                Err(ReviewWriteError::Stale) => {
                    if let Some(expected) = input.expected_version {
                        let current = self.visible(actor, id).await?.version();
                        return Err(UpdateReviewError::VersionMismatch { expected, current });
                    }
                }
                Err(ReviewWriteError::NotFound) => return Err(UpdateReviewError::NotFound),
                Err(ReviewWriteError::Store(store)) => return Err(store.into()),
                Err(
                    other @ (ReviewWriteError::AlreadyReviewed | ReviewWriteError::MissingParent),
                ) => {
                    let error = anyhow::Error::new(other).context("updating a review");
                    return Err(StoreError::Unexpected(error).into());
                }
            }
        }
        Err(UpdateReviewError::Conflict)
    }

    /// The review, if `actor` may see it.
    async fn visible(&self, actor: &Actor, id: ReviewId) -> Result<Review, UpdateReviewError> {
        let review = self.reviews.find_by_id(id).await?.ok_or(UpdateReviewError::NotFound)?;
        if review.may_be_seen_by(Some(actor)) {
            Ok(review)
        } else {
            Err(UpdateReviewError::NotFound)
        }
    }
}
