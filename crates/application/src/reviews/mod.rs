//! Product reviews: a customer who received a product reviews it once; anyone reads the visible
//! reviews; the author edits or deletes theirs; an admin hides or deletes any. Each change moves
//! the product's rating in the same transaction (the [`ReviewRepository`] contract).
//!
//! [`ReviewRepository`]: crate::ports::ReviewRepository

pub mod delete_review;
pub mod get_review;
pub mod list_reviews;
pub mod update_review;
pub mod write_review;
