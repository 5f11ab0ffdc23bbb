//! What events carry: the representation of the resource that changed.

use orderly_domain::{Order, Product, User, UserId};

/// How an event spells the resource it is about (CloudEvents' `data`): the resource's
/// representation at the version the change made, as JSON text, so that a consumer needs no
/// call back. The API owns the representations and implements this; the store calls it inside
/// the change's transaction, so an event and its change are written together or not at all.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait EventData: Send + Sync + std::fmt::Debug {
    /// An order (with its items and payment).
    fn order(&self, order: &Order) -> String;
    /// A product.
    fn product(&self, product: &Product) -> String;
    /// A user (never the password hash).
    fn user(&self, user: &User) -> String;
    /// A user deleted: only its id is left to tell.
    fn deleted_user(&self, id: UserId) -> String;
}
