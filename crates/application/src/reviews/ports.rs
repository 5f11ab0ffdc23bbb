//! The ports of the review aggregate: its repository (with the error enum only it returns) and
//! its query port.

use async_trait::async_trait;
use orderly_domain::{ProductId, Rating, RatingDelta, Review, ReviewId, UserId};

use crate::{
    StoreError,
    pagination::{Page, PageRequest},
};

/// Why the store refused to write a review. Only what can happen to a review: it has no
/// children, and a deleted author leaves their reviews in place (from "a deleted account").
#[derive(Debug, thiserror::Error)]
pub enum ReviewWriteError {
    /// The author already reviewed this product (one review per product and author).
    #[error("this author already reviewed this product")]
    AlreadyReviewed,
    /// The product or the author does not exist (any more).
    #[error("the product or the author does not exist")]
    MissingParent,
    /// There is no such review.
    #[error("the review does not exist")]
    NotFound,
    /// The review changed since it was read (its version moved on).
    #[error("the review was changed by someone else")]
    Stale,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores [`Review`] aggregates, and keeps each product's rating in step with them: every write
/// moves the product's rating count and sum (and its version, as its representation changes) in
/// the same transaction as the review.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ReviewRepository: Send + Sync {
    /// Whether `customer` has a delivered order containing `product`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn has_received(&self, customer: UserId, product: ProductId) -> Result<bool, StoreError>;

    /// Stores a new review and adds its counted rating to its product's.
    ///
    /// # Errors
    /// [`ReviewWriteError::AlreadyReviewed`] when its author already reviewed the product,
    /// [`ReviewWriteError::MissingParent`] when the product or the author is gone,
    /// [`ReviewWriteError::Store`] when the store fails.
    async fn insert(&self, review: &Review) -> Result<(), ReviewWriteError>;

    /// The review `id`, hidden or not, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn find_by_id(&self, id: ReviewId) -> Result<Option<Review>, StoreError>;

    /// Writes `review` if the stored row still has `expected_version`, moving it to
    /// `expected_version + 1`, and moves its product's rating by `rating`.
    ///
    /// # Errors
    /// [`ReviewWriteError::NotFound`] when the review is gone, [`ReviewWriteError::Stale`] when
    /// its version moved on, [`ReviewWriteError::Store`] otherwise.
    async fn update(
        &self,
        review: &Review,
        expected_version: u64,
        rating: RatingDelta,
    ) -> Result<(), ReviewWriteError>;

    /// Deletes `review` if the stored row still has its version, and takes its counted rating
    /// out of its product's.
    ///
    /// # Errors
    /// [`ReviewWriteError::NotFound`] when the review is gone, [`ReviewWriteError::Stale`] when
    /// its version moved on, [`ReviewWriteError::Store`] otherwise.
    async fn delete(&self, review: &Review) -> Result<(), ReviewWriteError>;
}

/// How a review list is ordered. Ties are broken by id, so every order is total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReviewSort {
    /// Newest first.
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Best rated first.
    RatingDesc,
    /// Worst rated first.
    RatingAsc,
}

impl ReviewSort {
    /// Every order, for documentation and tests.
    pub const ALL: [Self; 4] = [Self::Newest, Self::Oldest, Self::RatingDesc, Self::RatingAsc];

    /// The name used in query strings and cursors (`-` prefix for descending).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Newest => "-created_at",
            Self::Oldest => "created_at",
            Self::RatingDesc => "-rating",
            Self::RatingAsc => "rating",
        }
    }

    /// Parses a query-string name.
    ///
    /// # Errors
    /// [`UnknownReviewSort`] for a name none of [`ReviewSort::ALL`] has.
    pub fn parse(name: &str) -> Result<Self, UnknownReviewSort> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == name).ok_or(UnknownReviewSort)
    }
}

/// A sort order none of [`ReviewSort::ALL`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sort must be one of -created_at, created_at, -rating, rating")]
pub struct UnknownReviewSort;

impl orderly_domain::RuleError for UnknownReviewSort {
    fn code(&self) -> &'static str {
        orderly_domain::rule::ONE_OF
    }
}

/// Which reviews of a product a list shows: always the visible ones only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only reviews with this rating.
    pub rating: Option<Rating>,
    /// The order.
    pub sort: ReviewSort,
}

/// Reads reviews for display.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ReviewQueries: Send + Sync {
    /// One page of the visible reviews of `product` matching `filter`, in its sort order.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn list(
        &self,
        product: ProductId,
        filter: ReviewFilter,
        page: PageRequest,
    ) -> Result<Page<Review>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sort_order_parses_from_its_name_and_the_refusal_lists_them_all() {
        let message = UnknownReviewSort.to_string();
        for sort in ReviewSort::ALL {
            assert_eq!(ReviewSort::parse(sort.as_str()), Ok(sort));
            assert!(message.contains(&format!(" {}", sort.as_str())), "{message}");
        }
        assert_eq!(ReviewSort::parse("stars"), Err(UnknownReviewSort));
    }
}
