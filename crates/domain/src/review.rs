//! Reviews: what a customer who received a product says of it.
//!
//! A review belongs to a product and to its author, is written once per product and author, and
//! counts towards the product's [`ProductRating`] while it is visible. An administrator hides a
//! review (it leaves the lists and the rating; its author still sees it). Who may do what is
//! decided here ([`Review::may_revise`], ...); the purchase rule (a delivered order containing the
//! product) is a fact only the store knows, so the use case asks for it.

use crate::{
    ProductId, Reason, UserId, UserName, id::typed_id, order::Actor, text, text::TextError,
    time::Timestamp,
};

typed_id!(
    /// Identifies a [`Review`].
    ReviewId
);

/// Lowest rating.
pub const MIN_RATING: u8 = 1;
/// Highest rating.
pub const MAX_RATING: u8 = 5;
/// Longest review title, in characters.
pub const REVIEW_TITLE_MAX_LEN: usize = 120;
/// Longest review body, in characters.
pub const REVIEW_BODY_MAX_LEN: usize = 4000;

/// A rating outside `MIN_RATING..=MAX_RATING`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rating must be between {MIN_RATING} and {MAX_RATING}")]
pub struct InvalidRating;

impl crate::RuleError for InvalidRating {
    fn code(&self) -> &'static str {
        crate::rule::RANGE
    }
}

/// A rating from [`MIN_RATING`] to [`MAX_RATING`] stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rating(u8);

impl Rating {
    /// Parses a rating.
    ///
    /// # Errors
    /// [`InvalidRating`] outside `MIN_RATING..=MAX_RATING`.
    pub fn new(stars: i64) -> Result<Self, InvalidRating> {
        u8::try_from(stars)
            .ok()
            .filter(|stars| (MIN_RATING..=MAX_RATING).contains(stars))
            .map(Self)
            .ok_or(InvalidRating)
    }

    /// The number of stars.
    #[must_use]
    pub const fn stars(self) -> u8 {
        self.0
    }
}

/// Why a review title was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("title {0}")]
pub struct InvalidReviewTitle(#[from] pub TextError);

impl crate::RuleError for InvalidReviewTitle {
    fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A review's title: one line of 1 to [`REVIEW_TITLE_MAX_LEN`] characters, trimmed, without
/// invisible formatting characters (as names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewTitle(String);

impl ReviewTitle {
    /// Parses a title.
    ///
    /// # Errors
    /// [`InvalidReviewTitle`] when blank, too long or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidReviewTitle> {
        Ok(Self(text::name(raw, REVIEW_TITLE_MAX_LEN)?))
    }

    /// The title.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a review body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("body {0}")]
pub struct InvalidReviewBody(#[from] pub TextError);

impl crate::RuleError for InvalidReviewBody {
    fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A review's text: 1 to [`REVIEW_BODY_MAX_LEN`] characters, trimmed, line breaks allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewBody(String);

impl ReviewBody {
    /// Parses a body.
    ///
    /// # Errors
    /// [`InvalidReviewBody`] when blank, too long or holding control characters other than
    /// line breaks and tabs.
    pub fn parse(raw: &str) -> Result<Self, InvalidReviewBody> {
        Ok(Self(text::bounded(raw, REVIEW_BODY_MAX_LEN, true)?))
    }

    /// The body.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The author of a review as readers see them: the account's id and display name, never its
/// e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewAuthor {
    pub id: UserId,
    pub name: UserName,
}

/// What it takes to write a review.
#[derive(Debug, Clone)]
pub struct ReviewDraft {
    pub rating: Rating,
    pub title: ReviewTitle,
    pub body: ReviewBody,
}

/// Everything a stored review consists of, for repositories that rebuild a [`Review`].
#[derive(Debug, Clone)]
pub struct ReviewParts {
    pub id: ReviewId,
    pub product_id: ProductId,
    /// `None` once the author's account is deleted: the review stays, from "a deleted account".
    pub author: Option<ReviewAuthor>,
    pub rating: Rating,
    pub title: ReviewTitle,
    pub body: ReviewBody,
    pub verified_purchase: bool,
    /// Whether an administrator hid the review.
    pub hidden: bool,
    /// The reason the administrator gave, if any (only while hidden).
    pub hidden_reason: Option<Reason>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A product review.
#[derive(Debug, Clone)]
pub struct Review {
    id: ReviewId,
    product_id: ProductId,
    author: Option<ReviewAuthor>,
    rating: Rating,
    title: ReviewTitle,
    body: ReviewBody,
    verified_purchase: bool,
    hidden: bool,
    hidden_reason: Option<Reason>,
    version: u64,
    /// The version in storage when loaded (0 before the first save).
    stored_version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Review {
    /// A new, visible review by `author` of `product_id`, at version 1. `verified_purchase` says
    /// whether the store found a delivered order of the product for the author.
    #[must_use]
    pub fn write(
        product_id: ProductId,
        author: ReviewAuthor,
        draft: ReviewDraft,
        verified_purchase: bool,
        now: Timestamp,
    ) -> Self {
        let ReviewDraft { rating, title, body } = draft;
        Self {
            id: ReviewId::new(),
            product_id,
            author: Some(author),
            rating,
            title,
            body,
            verified_purchase,
            hidden: false,
            hidden_reason: None,
            version: 1,
            stored_version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Rebuilds a stored review.
    #[must_use]
    pub fn restore(parts: ReviewParts) -> Self {
        let ReviewParts {
            id,
            product_id,
            author,
            rating,
            title,
            body,
            verified_purchase,
            hidden,
            hidden_reason,
            version,
            created_at,
            updated_at,
        } = parts;
        Self {
            id,
            product_id,
            author,
            rating,
            title,
            body,
            verified_purchase,
            hidden,
            hidden_reason: hidden_reason.filter(|_| hidden),
            version,
            stored_version: version,
            created_at,
            updated_at,
        }
    }

    #[must_use]
    pub fn id(&self) -> ReviewId {
        self.id
    }
    #[must_use]
    pub fn product_id(&self) -> ProductId {
        self.product_id
    }
    /// The author, `None` once their account is deleted.
    #[must_use]
    pub fn author(&self) -> Option<&ReviewAuthor> {
        self.author.as_ref()
    }
    #[must_use]
    pub fn rating(&self) -> Rating {
        self.rating
    }
    #[must_use]
    pub fn title(&self) -> &ReviewTitle {
        &self.title
    }
    #[must_use]
    pub fn body(&self) -> &ReviewBody {
        &self.body
    }
    #[must_use]
    pub fn is_verified_purchase(&self) -> bool {
        self.verified_purchase
    }
    #[must_use]
    pub fn is_hidden(&self) -> bool {
        self.hidden
    }
    /// Why an administrator hid it (`None` while visible).
    #[must_use]
    pub fn hidden_reason(&self) -> Option<&Reason> {
        self.hidden_reason.as_ref()
    }
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// The rating this review adds to its product's [`ProductRating`]: none while hidden.
    #[must_use]
    pub fn counted_rating(&self) -> Option<Rating> {
        (!self.hidden).then_some(self.rating)
    }

    /// Whether `actor` wrote it.
    #[must_use]
    pub fn is_by(&self, actor: &Actor) -> bool {
        let author = self.author.as_ref().map(|author| author.id);
        actor.user_id().is_some_and(|id| Some(id) == author)
    }

    /// Whether `actor` may read it: anyone while visible; once hidden, its author and admins.
    #[must_use]
    pub fn may_be_seen_by(&self, actor: Option<&Actor>) -> bool {
        !self.hidden || actor.is_some_and(|actor| actor.is_admin() || self.is_by(actor))
    }

    /// Whether `actor` may change its rating, title or body: its author only.
    #[must_use]
    pub fn may_revise(&self, actor: &Actor) -> bool {
        self.is_by(actor)
    }

    /// Whether `actor` may delete it: its author or an admin.
    #[must_use]
    pub fn may_delete(&self, actor: &Actor) -> bool {
        actor.is_admin() || self.is_by(actor)
    }

    /// Whether `actor` may hide or show it: admins only.
    #[must_use]
    pub fn may_moderate(actor: &Actor) -> bool {
        actor.is_admin()
    }

    /// Changes the rating.
    pub fn rate(&mut self, rating: Rating, now: Timestamp) {
        if self.rating != rating {
            self.rating = rating;
            self.touch(now);
        }
    }

    /// Changes the title.
    pub fn retitle(&mut self, title: ReviewTitle, now: Timestamp) {
        if self.title != title {
            self.title = title;
            self.touch(now);
        }
    }

    /// Changes the body.
    pub fn rewrite(&mut self, body: ReviewBody, now: Timestamp) {
        if self.body != body {
            self.body = body;
            self.touch(now);
        }
    }

    /// Hides it from readers other than its author and admins, with the moderator's reason;
    /// hiding again replaces the reason.
    pub fn hide(&mut self, reason: Option<Reason>, now: Timestamp) {
        if !self.hidden || self.hidden_reason != reason {
            self.hidden = true;
            self.hidden_reason = reason;
            self.touch(now);
        }
    }

    /// Shows a hidden review again.
    pub fn show(&mut self, now: Timestamp) {
        if self.hidden {
            self.hidden = false;
            self.hidden_reason = None;
            self.touch(now);
        }
    }

    fn touch(&mut self, now: Timestamp) {
        self.version = self.stored_version + 1;
        self.updated_at = now;
    }
}

/// What a product's reviews add up to: the visible reviews' count and the sum of their ratings,
/// kept exact by the store in the same transaction as every review change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductRating {
    count: u32,
    sum: u64,
}

impl ProductRating {
    /// A rating from stored counts.
    #[must_use]
    pub const fn new(count: u32, sum: u64) -> Self {
        Self { count, sum }
    }

    /// How many visible reviews there are.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The sum of their ratings.
    #[must_use]
    pub const fn sum(&self) -> u64 {
        self.sum
    }

    /// The mean rating rounded to two decimals, `None` without reviews.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.sum as f64 / f64::from(self.count) * 100.0).round() / 100.0)
    }
}

/// How a review change moves its product's [`ProductRating`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RatingDelta {
    /// Added to the count.
    pub count: i64,
    /// Added to the sum.
    pub sum: i64,
}

impl RatingDelta {
    /// The change from a review counting `before` to counting `after` (`None`: not counted, as
    /// a hidden, new or deleted review).
    #[must_use]
    pub fn between(before: Option<Rating>, after: Option<Rating>) -> Self {
        let weight = |rating: Option<Rating>| rating.map_or((0, 0), |r| (1, i64::from(r.stars())));
        let (before_count, before_sum) = weight(before);
        let (after_count, after_sum) = weight(after);
        Self { count: after_count - before_count, sum: after_sum - before_sum }
    }

    /// Whether the rating does not move.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.count == 0 && self.sum == 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Role;

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    fn author() -> ReviewAuthor {
        ReviewAuthor { id: UserId::new(), name: UserName::parse("Ada").expect("valid") }
    }

    fn review(author: &ReviewAuthor) -> Review {
        Review::write(
            ProductId::new(),
            author.clone(),
            ReviewDraft {
                rating: Rating::new(4).expect("valid"),
                title: ReviewTitle::parse(" Quiet ").expect("valid"),
                body: ReviewBody::parse("Solid.\nWould buy again.").expect("valid"),
            },
            true,
            now(),
        )
    }

    fn user(id: UserId, role: Role) -> Actor {
        Actor::User { id, role }
    }

    #[test]
    fn ratings_are_one_to_five_stars() {
        for stars in 1..=5 {
            assert_eq!(
                Rating::new(stars).map(Rating::stars),
                Ok(u8::try_from(stars).expect("a small number"))
            );
        }
        for stars in [0, 6, -1, 256, i64::MAX] {
            assert_eq!(Rating::new(stars), Err(InvalidRating));
        }
    }

    #[test]
    fn titles_are_one_line_and_bodies_may_break_lines() {
        assert_eq!(
            ReviewTitle::parse("  Great  ").map(|t| t.as_str().to_owned()),
            Ok("Great".into())
        );
        assert!(ReviewTitle::parse("   ").is_err());
        assert!(ReviewTitle::parse("a\nb").is_err());
        let bidi = ReviewTitle::parse("\u{202e}great").expect_err("a bidi override");
        assert_eq!(crate::RuleError::code(&bidi), crate::rule::FORMAT_CHARACTERS);
        assert!(ReviewTitle::parse(&"é".repeat(REVIEW_TITLE_MAX_LEN)).is_ok());
        assert!(ReviewTitle::parse(&"é".repeat(REVIEW_TITLE_MAX_LEN + 1)).is_err());
        assert!(ReviewBody::parse("one\ntwo").is_ok());
        assert!(ReviewBody::parse("a\u{0}b").is_err());
        assert!(ReviewBody::parse(&"😀".repeat(REVIEW_BODY_MAX_LEN)).is_ok());
        assert!(ReviewBody::parse(&"😀".repeat(REVIEW_BODY_MAX_LEN + 1)).is_err());
    }

    #[test]
    fn a_new_review_is_visible_at_version_one_and_counts() {
        let review = review(&author());
        assert_eq!(review.version(), 1);
        assert!(!review.is_hidden());
        assert_eq!(review.title().as_str(), "Quiet");
        assert_eq!(review.counted_rating(), Rating::new(4).ok());
    }

    #[test]
    fn only_the_author_revises_the_author_or_an_admin_deletes_and_admins_moderate() {
        let author = author();
        let review = review(&author);
        let own = user(author.id, Role::Customer);
        let other = user(UserId::new(), Role::Customer);
        let admin = user(UserId::new(), Role::Admin);
        assert!(
            review.may_revise(&own) && !review.may_revise(&other) && !review.may_revise(&admin)
        );
        assert!(review.may_delete(&own) && review.may_delete(&admin) && !review.may_delete(&other));
        assert!(Review::may_moderate(&admin) && !Review::may_moderate(&own));
        assert!(!review.may_revise(&Actor::System));
    }

    #[test]
    fn a_hidden_review_is_seen_by_its_author_and_admins_only_and_stops_counting() {
        let author = author();
        let mut review = review(&author);
        review.hide(Some(Reason::parse("spam").expect("valid")), now());
        assert!(review.is_hidden());
        assert_eq!(review.hidden_reason().map(Reason::as_str), Some("spam"));
        assert_eq!(review.counted_rating(), None);
        assert!(review.may_be_seen_by(Some(&user(author.id, Role::Customer))));
        assert!(review.may_be_seen_by(Some(&user(UserId::new(), Role::Admin))));
        assert!(!review.may_be_seen_by(Some(&user(UserId::new(), Role::Customer))));
        assert!(!review.may_be_seen_by(None));
        review.show(now());
        assert!(!review.is_hidden() && review.hidden_reason().is_none());
        assert!(review.may_be_seen_by(None));
    }

    #[test]
    fn a_deleted_authors_review_is_by_nobody() {
        let mut parts_review = review(&author());
        parts_review.author = None;
        assert!(!parts_review.is_by(&user(UserId::new(), Role::Customer)));
        assert!(!parts_review.may_revise(&Actor::System));
    }

    #[test]
    fn any_number_of_changes_before_a_save_is_one_version_step() {
        let mut review = review(&author());
        review.rate(Rating::new(2).expect("valid"), now());
        review.retitle(ReviewTitle::parse("Meh").expect("valid"), now());
        review.hide(None, now());
        assert_eq!(review.version(), 1);
        let mut stored = Review::restore(ReviewParts {
            id: review.id(),
            product_id: review.product_id(),
            author: review.author().cloned(),
            rating: review.rating(),
            title: review.title().clone(),
            body: review.body().clone(),
            verified_purchase: true,
            hidden: false,
            hidden_reason: None,
            version: 7,
            created_at: now(),
            updated_at: now(),
        });
        stored.rate(Rating::new(2).expect("valid"), now());
        assert_eq!(stored.version(), 7, "an unchanged value is no change");
        stored.rate(Rating::new(5).expect("valid"), now());
        stored.rewrite(ReviewBody::parse("Better now").expect("valid"), now());
        assert_eq!(stored.version(), 8);
    }

    #[test]
    fn the_average_is_rounded_to_two_decimals_and_absent_without_reviews() {
        assert_eq!(ProductRating::default().average(), None);
        assert_eq!(ProductRating::new(3, 13).average(), Some(4.33));
        assert_eq!(ProductRating::new(2, 9).average(), Some(4.5));
    }

    fn rating() -> impl Strategy<Value = Option<Rating>> {
        prop::option::of((1i64..=5).prop_map(|stars| Rating::new(stars).expect("in range")))
    }

    proptest! {
        /// Any sequence of review changes, applied as deltas, leaves the product's rating equal
        /// to the visible reviews' count and sum.
        #[test]
        fn deltas_keep_the_rating_equal_to_the_visible_reviews(
            steps in prop::collection::vec((0usize..4, rating()), 0..40)
        ) {
            let mut counted: Vec<Option<Rating>> = vec![None; 4];
            let (mut count, mut sum) = (0i64, 0i64);
            for (slot, after) in steps {
                let delta = RatingDelta::between(counted[slot], after);
                count += delta.count;
                sum += delta.sum;
                counted[slot] = after;
            }
            let visible: Vec<Rating> = counted.into_iter().flatten().collect();
            prop_assert_eq!(count, i64::try_from(visible.len()).expect("a few reviews"));
            prop_assert_eq!(sum, visible.iter().map(|r| i64::from(r.stars())).sum::<i64>());
        }
    }
}
