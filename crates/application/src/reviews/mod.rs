//! Product reviews: a customer who received a product reviews it once; anyone reads the visible
//! reviews; the author edits or deletes theirs; an admin hides or deletes any. Each change moves
//! the product's rating in the same transaction (the [`ReviewRepository`] contract).
//!
//! The aggregate's ports live here, beside its use cases ([`ports`]); [`Reviews`] is the group
//! the composition root builds and the HTTP layer calls.

pub mod delete_review;
pub mod get_review;
pub mod list_reviews;
pub mod ports;
pub mod update_review;
pub mod write_review;

use std::sync::Arc;

pub use ports::{ReviewQueries, ReviewRepository};

use crate::ports::{Clock, ProductQueries, ProductRepository, UserRepository};

/// Every review use case, built from the ports they need.
#[derive(Clone)]
pub struct Reviews {
    pub write: write_review::WriteReview,
    pub get: get_review::GetReview,
    pub list: list_reviews::ListReviews,
    pub update: update_review::UpdateReview,
    pub delete: delete_review::DeleteReview,
}

impl Reviews {
    /// The use cases over `store` (one adapter is both the repository and the query port).
    #[must_use]
    pub fn new<S: ReviewRepository + ReviewQueries + 'static>(
        store: Arc<S>,
        products: Arc<dyn ProductRepository>,
        product_queries: Arc<dyn ProductQueries>,
        users: Arc<dyn UserRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            write: write_review::WriteReview::new(store.clone(), products, users, clock.clone()),
            get: get_review::GetReview::new(store.clone()),
            list: list_reviews::ListReviews::new(store.clone(), product_queries),
            update: update_review::UpdateReview::new(store.clone(), clock),
            delete: delete_review::DeleteReview::new(store),
        }
    }
}
