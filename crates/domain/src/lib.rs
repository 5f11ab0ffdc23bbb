//! Orderly's domain: the language of users, products and orders.
//!
//! Everything here is pure: no IO, no framework, no clock (time is passed in). Value objects are
//! newtypes with private fields and fallible constructors, so a value that exists is valid; the
//! limits they enforce are public constants that the HTTP layer reuses in its validation rules.
//! Aggregates (`User`, `Product`, `Order`, `Review`) own their state and change only through methods named
//! after intentions. The order state machine lives in [`order::transition`], the one place that
//! decides which status follows which.

pub mod event;
pub mod id;
pub mod money;
pub mod order;
pub mod product;
pub mod review;
pub mod rule;
pub mod text;
pub mod user;
pub mod webhook;

pub use event::{Aggregate, Changes, EventType, Recorded};
pub use id::{InvalidId, OrderId, ProductId, UserId};
pub use money::{Currency, InvalidCurrency, Money, MoneyError};
pub use order::{
    Actor, ActorKind, InvalidQuantity, InvalidReason, Order, OrderAction, OrderError, OrderItem,
    OrderLines, OrderParts, OrderStatus, OrderTransition, Payment, PaymentChangeError, PaymentDue,
    PaymentParts, PaymentStatus, ProductSnapshot, Quantity, Reason, TransitionError,
    allowed_actions, transition,
};
pub use product::{
    InvalidDescription, InvalidProductName, InvalidSku, Product, ProductDescription, ProductDraft,
    ProductError, ProductName, ProductParts, Sku,
};
pub use review::{
    InvalidRating, InvalidReviewBody, InvalidReviewTitle, ProductRating, Rating, RatingDelta,
    Review, ReviewAuthor, ReviewBody, ReviewDraft, ReviewId, ReviewParts, ReviewTitle,
};
pub use rule::RuleError;
pub use text::TextError;
pub use user::{
    Email, InvalidEmail, InvalidPassword, InvalidRole, InvalidUserName, Password, PasswordHash,
    Role, User, UserName, UserParts,
};
pub use webhook::{
    AttemptOutcome, DeliveryStatus, DisabledReason, EventFilter, InvalidWebhookUrl,
    UnknownEventType, WebhookDelivery, WebhookDeliveryId, WebhookDeliveryParts, WebhookEndpoint,
    WebhookEndpointDraft, WebhookEndpointId, WebhookEndpointParts, WebhookSecret, WebhookUrl,
};

/// The time types the domain speaks in, re-exported so that inner layers share one definition.
pub mod time {
    pub use chrono::{DateTime, TimeDelta, Utc};

    /// An instant in UTC.
    pub type Timestamp = DateTime<Utc>;
}

pub use uuid::Uuid;
