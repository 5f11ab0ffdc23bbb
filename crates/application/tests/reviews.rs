//! Use-case tests for product reviews: every port is a mockall mock, so each test states exactly
//! what the use case may ask of the store (`never()` where a port must not be reached) and what
//! it must answer for each port outcome.

mod support;

use std::sync::{Arc, Mutex};

use orderly_application::{
    StoreError, WRITE_ATTEMPTS,
    pagination::{Cursor, InvalidCursor, ListRequest, Page, PageLimit, SortValue},
    ports::{MockProductQueries, MockProductRepository, MockUserRepository},
    reviews::{
        delete_review::{DeleteReview, DeleteReviewError},
        get_review::{GetReview, GetReviewError},
        list_reviews::{self, ListReviews, ListReviewsError},
        ports::{
            MockReviewQueries, MockReviewRepository, ReviewFilter, ReviewSort, ReviewWriteError,
        },
        update_review::{Moderation, UpdateReview, UpdateReviewError, UpdateReviewInput},
        write_review::{WriteReview, WriteReviewError},
    },
};
use orderly_domain::{
    Actor, Email, PasswordHash, Product, ProductId, ProductName, ProductParts, ProductRating,
    Rating, RatingDelta, Reason, Review, ReviewAuthor, ReviewBody, ReviewDraft, ReviewId,
    ReviewParts, ReviewTitle, Role, Sku, User, UserId, UserName, UserParts,
};
use support::{
    admin, customer, eur, products_holding, reason, store_down,
    stored_a_month_ago::{clock, created_at, now},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The version every stored fixture review is at, so a write must expect it.
const STORED_VERSION: u64 = 3;

/// The stars of every stored fixture review.
const STORED_STARS: i64 = 4;

/// A customer who wrote none of the fixture reviews.
fn another_customer() -> Actor {
    customer(UserId::new())
}

fn rating(stars: i64) -> Rating {
    Rating::new(stars).expect("a valid rating")
}

fn title(raw: &str) -> ReviewTitle {
    ReviewTitle::parse(raw).expect("a valid title")
}

fn body(raw: &str) -> ReviewBody {
    ReviewBody::parse(raw).expect("a valid body")
}

fn user_name(raw: &str) -> UserName {
    UserName::parse(raw).expect("a valid name")
}

/// An active product as the repository would return it.
fn stored_product() -> Product {
    Product::restore(ProductParts {
        id: ProductId::new(),
        sku: Sku::parse("KB-001").expect("a valid SKU"),
        name: ProductName::parse("Keyboard").expect("a valid name"),
        description: None,
        price: eur(4999),
        stock: 12,
        archived: false,
        rating: ProductRating::default(),
        version: 7,
        created_at: created_at(),
        updated_at: created_at(),
    })
}

/// The account `id` as the user repository would return it, named "Ada Lovelace".
fn stored_user(id: UserId) -> User {
    User::restore(UserParts {
        id,
        email: Email::parse("ada@example.com").expect("a valid address"),
        name: user_name("Ada Lovelace"),
        role: Role::Customer,
        password_hash: PasswordHash::new("$argon2id$...".into()),
        session_epoch: 0,
        version: 2,
        created_at: created_at(),
        updated_at: created_at(),
    })
}

/// The author of the fixture reviews.
fn author() -> ReviewAuthor {
    ReviewAuthor { id: UserId::new(), name: user_name("Ada") }
}

/// The parts of a visible review by `author`, rated [`STORED_STARS`], at [`STORED_VERSION`].
fn stored_parts(author: &ReviewAuthor) -> ReviewParts {
    ReviewParts {
        id: ReviewId::new(),
        product_id: ProductId::new(),
        author: Some(author.clone()),
        rating: rating(STORED_STARS),
        title: title("Quiet"),
        body: body("Solid.\nWould buy again."),
        verified_purchase: true,
        hidden: false,
        hidden_reason: None,
        version: STORED_VERSION,
        created_at: created_at(),
        updated_at: created_at(),
    }
}

/// The parts of the same review, hidden by an admin because of "spam".
fn hidden_parts(author: &ReviewAuthor) -> ReviewParts {
    ReviewParts { hidden: true, hidden_reason: Some(reason("spam")), ..stored_parts(author) }
}

/// A repository whose `find_by_id` answers `review` for its id, once.
fn repository_holding(review: &Review) -> MockReviewRepository {
    let mut reviews = MockReviewRepository::new();
    let (id, found) = (review.id(), review.clone());
    reviews
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(move |_| Ok(Some(found.clone())));
    reviews
}

/// A repository whose `find_by_id` answers the review of `parts` one concurrent change further
/// on at each of its `reads` calls (version + 1 each time), as another writer would leave it.
fn repository_changing(parts: &ReviewParts, reads: usize) -> MockReviewRepository {
    let mut reviews = MockReviewRepository::new();
    let (id, parts) = (parts.id, parts.clone());
    let mut changes = 0;
    reviews.expect_find_by_id().withf(move |asked| *asked == id).times(reads).returning(
        move |_| {
            let found =
                Review::restore(ReviewParts { version: parts.version + changes, ..parts.clone() });
            changes += 1;
            Ok(Some(found))
        },
    );
    reviews
}

/// What each `update` call was given: (expected version, new version, delta).
type Updates = Arc<Mutex<Vec<(u64, u64, RatingDelta)>>>;

/// Expects `update` once per answer (`Stale` for each of `stale`, then `Ok` if `ok`), recording
/// what each call was given.
fn updates_answering(reviews: &mut MockReviewRepository, stale: usize, ok: bool) -> Updates {
    let updates = Updates::default();
    let recorded = Arc::clone(&updates);
    let mut calls = 0;
    reviews.expect_update().times(stale + usize::from(ok)).returning(
        move |review, expected, delta| {
            recorded.lock().expect("not poisoned").push((expected, review.version(), delta));
            calls += 1;
            if calls <= stale { Err(ReviewWriteError::Stale) } else { Ok(()) }
        },
    );
    updates
}

/// Expects `delete` once per answer (`Stale` for each of `stale`, then `Ok` if `ok`), recording
/// the version of each review it was given.
fn deletes_answering(
    reviews: &mut MockReviewRepository,
    stale: usize,
    ok: bool,
) -> Arc<Mutex<Vec<u64>>> {
    let deletes = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&deletes);
    let mut calls = 0;
    reviews.expect_delete().times(stale + usize::from(ok)).returning(move |review| {
        recorded.lock().expect("not poisoned").push(review.version());
        calls += 1;
        if calls <= stale { Err(ReviewWriteError::Stale) } else { Ok(()) }
    });
    deletes
}

fn get_use_case(reviews: MockReviewRepository) -> GetReview {
    GetReview::new(Arc::new(reviews))
}

fn update_use_case(reviews: MockReviewRepository) -> UpdateReview {
    UpdateReview::new(Arc::new(reviews), Arc::new(clock()))
}

fn delete_use_case(reviews: MockReviewRepository) -> DeleteReview {
    DeleteReview::new(Arc::new(reviews))
}

// ---------------------------------------------------------------------------------------------
// write_review
// ---------------------------------------------------------------------------------------------

mod writing {
    use super::*;

    fn draft() -> ReviewDraft {
        ReviewDraft { rating: rating(5), title: title("Great"), body: body("Typing is a joy.") }
    }

    /// A user repository that holds the account `id`, asked once.
    fn users_holding(id: UserId) -> MockUserRepository {
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .withf(move |asked| *asked == id)
            .times(1)
            .returning(|id| Ok(Some(stored_user(id))));
        users
    }

    /// A review repository asked once whether `customer` received `product`, answering
    /// `received`.
    fn reviews_answering_purchase(
        customer: UserId,
        product: ProductId,
        received: bool,
    ) -> MockReviewRepository {
        let mut reviews = MockReviewRepository::new();
        reviews
            .expect_has_received()
            .withf(move |asked_customer, asked_product| {
                *asked_customer == customer && *asked_product == product
            })
            .times(1)
            .returning(move |_, _| Ok(received));
        reviews
    }

    /// A customer who received `product`, whose account exists, and whose review's `insert`
    /// answers `outcome`.
    fn purchase_then_insert(
        customer: UserId,
        product: &Product,
        outcome: impl FnOnce() -> Result<(), ReviewWriteError> + Send + 'static,
    ) -> WriteReview {
        let mut reviews = reviews_answering_purchase(customer, product.id(), true);
        reviews.expect_insert().times(1).return_once(move |_| outcome());
        use_case(reviews, products_holding(product), users_holding(customer))
    }

    fn use_case(
        reviews: MockReviewRepository,
        products: MockProductRepository,
        users: MockUserRepository,
    ) -> WriteReview {
        WriteReview::new(Arc::new(reviews), Arc::new(products), Arc::new(users), Arc::new(clock()))
    }

    #[tokio::test]
    async fn a_customer_with_a_delivered_order_writes_a_verified_review_at_version_one() {
        let product = stored_product();
        let (customer_id, product_id) = (UserId::new(), product.id());
        let inserted = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&inserted);
        let mut reviews = reviews_answering_purchase(customer_id, product_id, true);
        reviews
            .expect_insert()
            .withf(move |review: &Review| {
                review.product_id() == product_id
                    && review.author()
                        == Some(&ReviewAuthor { id: customer_id, name: user_name("Ada Lovelace") })
                    && review.version() == 1
                    && review.is_verified_purchase()
                    && !review.is_hidden()
                    && review.hidden_reason().is_none()
                    && review.rating() == rating(5)
                    && review.title().as_str() == "Great"
                    && review.body().as_str() == "Typing is a joy."
                    && review.created_at() == now()
                    && review.updated_at() == now()
            })
            .times(1)
            .returning(move |review| {
                *seen.lock().expect("not poisoned") = Some(review.id());
                Ok(())
            });

        let written = use_case(reviews, products_holding(&product), users_holding(customer_id))
            .execute(&customer(customer_id), product_id, draft())
            .await
            .expect("a customer who received the product reviews it");

        assert_eq!(written.product_id(), product_id);
        assert_eq!(written.author().map(|author| author.id), Some(customer_id));
        assert_eq!(written.author().map(|author| author.name.as_str()), Some("Ada Lovelace"));
        assert_eq!(written.version(), 1);
        assert!(written.is_verified_purchase());
        assert_eq!(written.counted_rating(), Some(rating(5)));
        assert_eq!(
            *inserted.lock().expect("not poisoned"),
            Some(written.id()),
            "the review returned is the one stored"
        );
    }

    #[tokio::test]
    async fn a_customer_without_a_delivered_order_requires_a_purchase_and_nothing_is_stored() {
        let product = stored_product();
        let customer_id = UserId::new();
        let mut reviews = reviews_answering_purchase(customer_id, product.id(), false);
        reviews.expect_insert().never();
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().never();

        let result = use_case(reviews, products_holding(&product), users)
            .execute(&customer(customer_id), product.id(), draft())
            .await;

        assert!(matches!(result, Err(WriteReviewError::RequiresPurchase)), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_who_never_received_the_product_requires_a_purchase_too() {
        let product = stored_product();
        let admin = admin();
        let admin_id = admin.user_id().expect("an admin is a user");
        let mut reviews = reviews_answering_purchase(admin_id, product.id(), false);
        reviews.expect_insert().never();
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().never();

        let result = use_case(reviews, products_holding(&product), users)
            .execute(&admin, product.id(), draft())
            .await;

        assert!(matches!(result, Err(WriteReviewError::RequiresPurchase)), "{result:?}");
    }

    #[tokio::test]
    async fn the_system_actor_requires_a_purchase_and_the_store_is_not_asked_about_one() {
        let product = stored_product();
        let mut reviews = MockReviewRepository::new();
        reviews.expect_has_received().never();
        reviews.expect_insert().never();

        let result = use_case(reviews, products_holding(&product), MockUserRepository::new())
            .execute(&Actor::System, product.id(), draft())
            .await;

        assert!(matches!(result, Err(WriteReviewError::RequiresPurchase)), "{result:?}");
    }

    #[tokio::test]
    async fn an_unknown_product_is_not_found_and_the_purchase_is_never_checked() {
        let product_id = ProductId::new();
        let mut products = MockProductRepository::new();
        products
            .expect_find_by_id()
            .withf(move |asked| *asked == product_id)
            .times(1)
            .returning(|_| Ok(None));
        let mut reviews = MockReviewRepository::new();
        reviews.expect_has_received().never();
        reviews.expect_insert().never();

        let result = use_case(reviews, products, MockUserRepository::new())
            .execute(&another_customer(), product_id, draft())
            .await;

        assert!(matches!(result, Err(WriteReviewError::ProductNotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_second_review_of_the_same_product_by_the_same_customer_is_already_reviewed() {
        let product = stored_product();
        let customer_id = UserId::new();

        let result =
            purchase_then_insert(customer_id, &product, || Err(ReviewWriteError::AlreadyReviewed))
                .execute(&customer(customer_id), product.id(), draft())
                .await;

        assert!(matches!(result, Err(WriteReviewError::AlreadyReviewed)), "{result:?}");
    }

    #[tokio::test]
    async fn a_product_gone_before_the_insert_is_product_not_found() {
        let product = stored_product();
        let customer_id = UserId::new();

        let result =
            purchase_then_insert(customer_id, &product, || Err(ReviewWriteError::MissingParent))
                .execute(&customer(customer_id), product.id(), draft())
                .await;

        assert!(matches!(result, Err(WriteReviewError::ProductNotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn an_author_whose_account_is_gone_is_an_unknown_author_and_nothing_is_stored() {
        let product = stored_product();
        let customer_id = UserId::new();
        let mut reviews = reviews_answering_purchase(customer_id, product.id(), true);
        reviews.expect_insert().never();
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .withf(move |asked| *asked == customer_id)
            .times(1)
            .returning(|_| Ok(None));

        let result = use_case(reviews, products_holding(&product), users)
            .execute(&customer(customer_id), product.id(), draft())
            .await;

        assert!(matches!(result, Err(WriteReviewError::UnknownAuthor)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_inserting_is_a_store_error() {
        let product = stored_product();
        let customer_id = UserId::new();

        let result = purchase_then_insert(customer_id, &product, || {
            Err(ReviewWriteError::Store(store_down()))
        })
        .execute(&customer(customer_id), product.id(), draft())
        .await;

        assert!(
            matches!(result, Err(WriteReviewError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_while_checking_the_purchase_is_a_store_error() {
        let product = stored_product();
        let mut reviews = MockReviewRepository::new();
        reviews.expect_has_received().times(1).returning(|_, _| Err(store_down()));
        reviews.expect_insert().never();

        let result = use_case(reviews, products_holding(&product), MockUserRepository::new())
            .execute(&another_customer(), product.id(), draft())
            .await;

        assert!(
            matches!(result, Err(WriteReviewError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_insert_answering_stale_breaks_the_port_contract_and_is_unexpected() {
        let product = stored_product();
        let customer_id = UserId::new();

        let result = purchase_then_insert(customer_id, &product, || Err(ReviewWriteError::Stale))
            .execute(&customer(customer_id), product.id(), draft())
            .await;

        assert!(
            matches!(result, Err(WriteReviewError::Store(StoreError::Unexpected(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// get_review
// ---------------------------------------------------------------------------------------------

mod getting {
    use super::*;

    #[tokio::test]
    async fn a_visible_review_is_returned_to_an_anonymous_reader() {
        let stored = Review::restore(stored_parts(&author()));

        let found = get_use_case(repository_holding(&stored))
            .execute(None, stored.id())
            .await
            .expect("anyone reads a visible review");

        assert_eq!(found.id(), stored.id());
        assert_eq!(found.version(), STORED_VERSION);
        assert!(!found.is_hidden());
    }

    #[tokio::test]
    async fn a_hidden_review_is_not_found_for_an_anonymous_reader() {
        let stored = Review::restore(hidden_parts(&author()));

        let result = get_use_case(repository_holding(&stored)).execute(None, stored.id()).await;

        assert!(matches!(result, Err(GetReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_hidden_review_is_not_found_for_another_customer() {
        let stored = Review::restore(hidden_parts(&author()));

        let result = get_use_case(repository_holding(&stored))
            .execute(Some(&another_customer()), stored.id())
            .await;

        assert!(matches!(result, Err(GetReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_hidden_review_is_returned_to_its_author_with_the_reason() {
        let author = author();
        let stored = Review::restore(hidden_parts(&author));

        let found = get_use_case(repository_holding(&stored))
            .execute(Some(&customer(author.id)), stored.id())
            .await
            .expect("the author sees their hidden review");

        assert_eq!(found.id(), stored.id());
        assert!(found.is_hidden());
        assert_eq!(found.hidden_reason().map(Reason::as_str), Some("spam"));
    }

    #[tokio::test]
    async fn a_hidden_review_is_returned_to_an_admin() {
        let stored = Review::restore(hidden_parts(&author()));

        let found = get_use_case(repository_holding(&stored))
            .execute(Some(&admin()), stored.id())
            .await
            .expect("an admin sees hidden reviews");

        assert_eq!(found.id(), stored.id());
        assert!(found.is_hidden());
    }

    #[tokio::test]
    async fn a_missing_review_is_not_found() {
        let mut reviews = MockReviewRepository::new();
        reviews.expect_find_by_id().times(1).returning(|_| Ok(None));

        let result = get_use_case(reviews).execute(Some(&admin()), ReviewId::new()).await;

        assert!(matches!(result, Err(GetReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_is_a_store_error() {
        let mut reviews = MockReviewRepository::new();
        reviews.expect_find_by_id().times(1).returning(|_| Err(store_down()));

        let result = get_use_case(reviews).execute(None, ReviewId::new()).await;

        assert!(
            matches!(result, Err(GetReviewError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// list_reviews
// ---------------------------------------------------------------------------------------------

mod listing {
    use super::*;

    /// Five-star reviews, best rated first.
    fn five_stars_best_first() -> ReviewFilter {
        ReviewFilter { rating: Some(rating(5)), sort: ReviewSort::RatingDesc }
    }

    /// Product queries that know `product`, asked once.
    fn products_knowing(product: ProductId) -> MockProductQueries {
        let mut products = MockProductQueries::new();
        products
            .expect_find()
            .withf(move |asked| *asked == product)
            .times(1)
            .returning(|_| Ok(Some(stored_product())));
        products
    }

    fn use_case(reviews: MockReviewQueries, products: MockProductQueries) -> ListReviews {
        ListReviews::new(Arc::new(reviews), Arc::new(products))
    }

    /// A review of `product` rated `stars`.
    fn review_of(product: ProductId, stars: i64) -> Review {
        Review::restore(ReviewParts {
            product_id: product,
            rating: rating(stars),
            ..stored_parts(&author())
        })
    }

    #[tokio::test]
    async fn an_unknown_product_is_not_found_and_its_reviews_are_never_listed() {
        let product = ProductId::new();
        let mut products = MockProductQueries::new();
        products
            .expect_find()
            .withf(move |asked| *asked == product)
            .times(1)
            .returning(|_| Ok(None));
        let mut reviews = MockReviewQueries::new();
        reviews.expect_list().never();

        let result = use_case(reviews, products)
            .execute(product, ReviewFilter::default(), ListRequest::default())
            .await;

        assert!(matches!(result, Err(ListReviewsError::ProductNotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn the_page_from_the_query_port_is_passed_through_with_its_next_cursor_encoded() {
        let product = ProductId::new();
        let (first, second) = (review_of(product, 5), review_of(product, 5));
        let ids = vec![first.id(), second.id()];
        let next = Cursor { value: SortValue::Int(5), id: second.id().into_uuid() };
        let answered = Page { items: vec![first, second], next: Some(next.clone()) };
        let mut reviews = MockReviewQueries::new();
        reviews
            .expect_list()
            .withf(move |asked, filter, page| {
                *asked == product
                    && *filter == five_stars_best_first()
                    && page.after.is_none()
                    && page.limit == PageLimit::default()
            })
            .times(1)
            .return_once(move |_, _, _| Ok(answered));

        let listed = use_case(reviews, products_knowing(product))
            .execute(product, five_stars_best_first(), ListRequest::default())
            .await
            .expect("anyone reads a product's reviews");

        assert_eq!(listed.items.iter().map(Review::id).collect::<Vec<_>>(), ids);
        let scope = list_reviews::scope(product, &five_stars_best_first());
        let cursor = listed.next_cursor.expect("more pages follow");
        assert_eq!(cursor, next.encode(&scope));
        assert_eq!(Cursor::decode(&cursor, &scope), Ok(next));
    }

    #[tokio::test]
    async fn the_last_page_has_no_next_cursor() {
        let product = ProductId::new();
        let only = review_of(product, 3);
        let only_id = only.id();
        let mut reviews = MockReviewQueries::new();
        reviews
            .expect_list()
            .times(1)
            .return_once(move |_, _, _| Ok(Page { items: vec![only], next: None }));

        let listed = use_case(reviews, products_knowing(product))
            .execute(product, ReviewFilter::default(), ListRequest::default())
            .await
            .expect("a page");

        assert_eq!(listed.items.iter().map(Review::id).collect::<Vec<_>>(), vec![only_id]);
        assert_eq!(listed.next_cursor, None);
    }

    #[tokio::test]
    async fn a_cursor_from_the_previous_page_continues_after_its_last_item() {
        let product = ProductId::new();
        let after = Cursor { value: SortValue::Int(5), id: ReviewId::new().into_uuid() };
        let expected_after = after.clone();
        let limit = PageLimit::new(5).expect("a valid limit");
        let mut reviews = MockReviewQueries::new();
        reviews
            .expect_list()
            .withf(move |asked, filter, page| {
                *asked == product
                    && *filter == five_stars_best_first()
                    && page.after.as_ref() == Some(&expected_after)
                    && page.limit == limit
            })
            .times(1)
            .returning(|_, _, _| Ok(Page { items: Vec::new(), next: None }));
        let cursor = after.encode(&list_reviews::scope(product, &five_stars_best_first()));

        let result = use_case(reviews, products_knowing(product))
            .execute(product, five_stars_best_first(), ListRequest { limit, cursor: Some(cursor) })
            .await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn a_cursor_made_for_another_sort_order_is_refused_without_asking_the_store() {
        let product = ProductId::new();
        let newest = ReviewFilter { sort: ReviewSort::Newest, ..five_stars_best_first() };
        let made_for_newest = Cursor { value: SortValue::None, id: ReviewId::new().into_uuid() }
            .encode(&list_reviews::scope(product, &newest));
        let mut reviews = MockReviewQueries::new();
        reviews.expect_list().never();

        let result = use_case(reviews, products_knowing(product))
            .execute(
                product,
                five_stars_best_first(),
                ListRequest { cursor: Some(made_for_newest), ..ListRequest::default() },
            )
            .await;

        assert!(
            matches!(result, Err(ListReviewsError::InvalidCursor(InvalidCursor))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_cursor_made_for_another_product_is_refused_without_asking_the_store() {
        let product = ProductId::new();
        let elsewhere = Cursor { value: SortValue::Int(5), id: ReviewId::new().into_uuid() }
            .encode(&list_reviews::scope(ProductId::new(), &five_stars_best_first()));
        let mut reviews = MockReviewQueries::new();
        reviews.expect_list().never();

        let result = use_case(reviews, products_knowing(product))
            .execute(
                product,
                five_stars_best_first(),
                ListRequest { cursor: Some(elsewhere), ..ListRequest::default() },
            )
            .await;

        assert!(
            matches!(result, Err(ListReviewsError::InvalidCursor(InvalidCursor))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_is_a_store_error() {
        let product = ProductId::new();
        let mut reviews = MockReviewQueries::new();
        reviews.expect_list().times(1).returning(|_, _, _| Err(store_down()));

        let result = use_case(reviews, products_knowing(product))
            .execute(product, ReviewFilter::default(), ListRequest::default())
            .await;

        assert!(
            matches!(result, Err(ListReviewsError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// update_review
// ---------------------------------------------------------------------------------------------

mod updating {
    use super::*;

    /// The author's change of mind: two stars instead of four.
    fn rate_two() -> UpdateReviewInput {
        UpdateReviewInput { rating: Some(rating(2)), ..UpdateReviewInput::default() }
    }

    fn hide_as_spam() -> UpdateReviewInput {
        UpdateReviewInput {
            moderation: Some(Moderation::Hide(Some(reason("spam")))),
            ..UpdateReviewInput::default()
        }
    }

    #[tokio::test]
    async fn the_author_revises_and_the_write_expects_the_loaded_version_and_moves_the_rating() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let id = stored.id();
        let mut reviews = repository_holding(&stored);
        reviews
            .expect_update()
            .withf(move |review: &Review, expected: &u64, delta: &RatingDelta| {
                *expected == STORED_VERSION
                    && *delta == RatingDelta { count: 0, sum: -2 }
                    && review.id() == id
                    && review.version() == STORED_VERSION + 1
                    && review.rating() == rating(2)
                    && review.title().as_str() == "Meh"
                    && review.body().as_str() == "Keys started to squeak."
                    && !review.is_hidden()
                    && review.updated_at() == now()
                    && review.created_at() == created_at()
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let updated = update_use_case(reviews)
            .execute(
                &customer(author.id),
                id,
                UpdateReviewInput {
                    expected_version: Some(STORED_VERSION),
                    rating: Some(rating(2)),
                    title: Some(title("Meh")),
                    body: Some(body("Keys started to squeak.")),
                    moderation: None,
                },
            )
            .await
            .expect("the author revises their review");

        assert_eq!(updated.rating(), rating(2));
        assert_eq!(updated.title().as_str(), "Meh");
        assert_eq!(updated.version(), STORED_VERSION + 1);
        assert_eq!(updated.updated_at(), now());
    }

    #[tokio::test]
    async fn another_customer_may_not_revise_a_review() {
        let stored = Review::restore(stored_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let result =
            update_use_case(reviews).execute(&another_customer(), stored.id(), rate_two()).await;

        assert!(matches!(result, Err(UpdateReviewError::Forbidden(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_may_not_change_a_reviews_text() {
        let stored = Review::restore(stored_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let result = update_use_case(reviews)
            .execute(
                &admin(),
                stored.id(),
                UpdateReviewInput { body: Some(body("Edited.")), ..UpdateReviewInput::default() },
            )
            .await;

        assert!(matches!(result, Err(UpdateReviewError::Forbidden(_))), "{result:?}");
    }

    #[tokio::test]
    async fn the_author_may_not_hide_their_own_review() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let result = update_use_case(reviews)
            .execute(&customer(author.id), stored.id(), hide_as_spam())
            .await;

        assert!(matches!(result, Err(UpdateReviewError::Forbidden(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_hides_a_review_with_a_reason_and_it_stops_counting() {
        let stored = Review::restore(stored_parts(&author()));
        let id = stored.id();
        let mut reviews = repository_holding(&stored);
        reviews
            .expect_update()
            .withf(move |review: &Review, expected: &u64, delta: &RatingDelta| {
                *expected == STORED_VERSION
                    && *delta == RatingDelta { count: -1, sum: -STORED_STARS }
                    && review.id() == id
                    && review.is_hidden()
                    && review.hidden_reason().map(Reason::as_str) == Some("spam")
                    && review.rating() == rating(STORED_STARS)
                    && review.version() == STORED_VERSION + 1
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let hidden = update_use_case(reviews)
            .execute(&admin(), id, hide_as_spam())
            .await
            .expect("an admin hides a review");

        assert!(hidden.is_hidden());
        assert_eq!(hidden.hidden_reason().map(Reason::as_str), Some("spam"));
        assert_eq!(hidden.counted_rating(), None);
    }

    #[tokio::test]
    async fn an_admin_shows_a_hidden_review_again_and_it_counts_again() {
        let stored = Review::restore(hidden_parts(&author()));
        let id = stored.id();
        let mut reviews = repository_holding(&stored);
        reviews
            .expect_update()
            .withf(move |review: &Review, expected: &u64, delta: &RatingDelta| {
                *expected == STORED_VERSION
                    && *delta == RatingDelta { count: 1, sum: STORED_STARS }
                    && review.id() == id
                    && !review.is_hidden()
                    && review.hidden_reason().is_none()
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let shown = update_use_case(reviews)
            .execute(
                &admin(),
                id,
                UpdateReviewInput {
                    moderation: Some(Moderation::Show),
                    ..UpdateReviewInput::default()
                },
            )
            .await
            .expect("an admin shows a review again");

        assert!(!shown.is_hidden());
        assert_eq!(shown.counted_rating(), Some(rating(STORED_STARS)));
    }

    #[tokio::test]
    async fn the_author_revising_a_hidden_review_does_not_move_the_rating() {
        let author = author();
        let stored = Review::restore(hidden_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews
            .expect_update()
            .withf(|review: &Review, _, delta: &RatingDelta| {
                delta.is_zero() && review.is_hidden() && review.rating() == rating(2)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let result =
            update_use_case(reviews).execute(&customer(author.id), stored.id(), rate_two()).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn an_outdated_if_match_is_a_version_mismatch_and_nothing_is_written() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let result = update_use_case(reviews)
            .execute(
                &customer(author.id),
                stored.id(),
                UpdateReviewInput { expected_version: Some(STORED_VERSION - 1), ..rate_two() },
            )
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateReviewError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION - 1 && current == STORED_VERSION
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn without_if_match_a_concurrent_change_makes_the_update_re_read_and_re_apply() {
        let author = author();
        let parts = stored_parts(&author);
        let mut reviews = repository_changing(&parts, 2);
        let updates = updates_answering(&mut reviews, 1, true);

        let updated = update_use_case(reviews)
            .execute(&customer(author.id), parts.id, rate_two())
            .await
            .expect("the second attempt wins");

        let two_stars_fewer = RatingDelta { count: 0, sum: -2 };
        assert_eq!(
            *updates.lock().expect("not poisoned"),
            [
                (STORED_VERSION, STORED_VERSION + 1, two_stars_fewer),
                (STORED_VERSION + 1, STORED_VERSION + 2, two_stars_fewer),
            ],
            "the second write expects the version it re-read"
        );
        assert_eq!((updated.version(), updated.rating()), (STORED_VERSION + 2, rating(2)));
    }

    #[tokio::test]
    async fn with_if_match_a_write_that_loses_the_race_is_a_version_mismatch_naming_the_re_read_version()
     {
        let author = author();
        let parts = stored_parts(&author);
        // Read at the client's version, then (after the lost write) at the winner's.
        let mut reviews = repository_changing(&parts, 2);
        let updates = updates_answering(&mut reviews, 1, false);

        let result = update_use_case(reviews)
            .execute(
                &customer(author.id),
                parts.id,
                UpdateReviewInput { expected_version: Some(STORED_VERSION), ..rate_two() },
            )
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateReviewError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 1
            ),
            "{result:?}"
        );
        assert_eq!(updates.lock().expect("not poisoned").len(), 1, "never retried");
    }

    #[tokio::test]
    async fn without_if_match_an_update_gives_up_with_a_conflict_after_the_bounded_attempts() {
        let author = author();
        let parts = stored_parts(&author);
        let mut reviews = repository_changing(&parts, WRITE_ATTEMPTS);
        let updates = updates_answering(&mut reviews, WRITE_ATTEMPTS, false);

        let result =
            update_use_case(reviews).execute(&customer(author.id), parts.id, rate_two()).await;

        assert!(matches!(result, Err(UpdateReviewError::Conflict)), "{result:?}");
        assert_eq!(updates.lock().expect("not poisoned").len(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn an_update_that_changes_nothing_is_not_written() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let unchanged = update_use_case(reviews)
            .execute(
                &customer(author.id),
                stored.id(),
                UpdateReviewInput {
                    expected_version: Some(STORED_VERSION),
                    rating: Some(stored.rating()),
                    title: Some(stored.title().clone()),
                    body: Some(stored.body().clone()),
                    moderation: None,
                },
            )
            .await
            .expect("a no-op update succeeds");

        assert_eq!(unchanged.id(), stored.id());
        assert_eq!(unchanged.version(), STORED_VERSION);
        assert_eq!(unchanged.updated_at(), created_at());
    }

    #[tokio::test]
    async fn a_hidden_review_changed_by_another_customer_is_not_found() {
        let stored = Review::restore(hidden_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().never();

        let result =
            update_use_case(reviews).execute(&another_customer(), stored.id(), rate_two()).await;

        assert!(matches!(result, Err(UpdateReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_review_deleted_before_the_write_is_not_found() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews.expect_update().times(1).returning(|_, _, _| Err(ReviewWriteError::NotFound));

        let result =
            update_use_case(reviews).execute(&customer(author.id), stored.id(), rate_two()).await;

        assert!(matches!(result, Err(UpdateReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_writing_is_a_store_error() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews
            .expect_update()
            .times(1)
            .returning(|_, _, _| Err(ReviewWriteError::Store(store_down())));

        let result =
            update_use_case(reviews).execute(&customer(author.id), stored.id(), rate_two()).await;

        assert!(
            matches!(result, Err(UpdateReviewError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// delete_review
// ---------------------------------------------------------------------------------------------

mod deleting {
    use super::*;

    /// A repository holding `review` whose `delete` of exactly that review answers `Ok`, once.
    fn repository_deleting(review: &Review) -> MockReviewRepository {
        let mut reviews = repository_holding(review);
        let id = review.id();
        reviews
            .expect_delete()
            .withf(move |review: &Review| review.id() == id && review.version() == STORED_VERSION)
            .times(1)
            .returning(|_| Ok(()));
        reviews
    }

    #[tokio::test]
    async fn the_author_deletes_their_review() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));

        let result = delete_use_case(repository_deleting(&stored))
            .execute(&customer(author.id), stored.id())
            .await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_deletes_any_review() {
        let stored = Review::restore(stored_parts(&author()));

        let result =
            delete_use_case(repository_deleting(&stored)).execute(&admin(), stored.id()).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_deletes_a_hidden_review() {
        let stored = Review::restore(hidden_parts(&author()));

        let result =
            delete_use_case(repository_deleting(&stored)).execute(&admin(), stored.id()).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn another_customer_may_not_delete_a_review() {
        let stored = Review::restore(stored_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_delete().never();

        let result = delete_use_case(reviews).execute(&another_customer(), stored.id()).await;

        assert!(matches!(result, Err(DeleteReviewError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn a_hidden_review_is_not_found_for_another_customer() {
        let stored = Review::restore(hidden_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_delete().never();

        let result = delete_use_case(reviews).execute(&another_customer(), stored.id()).await;

        assert!(matches!(result, Err(DeleteReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_concurrent_change_makes_the_deletion_re_read_and_delete_the_new_version() {
        let author = author();
        let parts = stored_parts(&author);
        let mut reviews = repository_changing(&parts, 2);
        let deletes = deletes_answering(&mut reviews, 1, true);

        let result = delete_use_case(reviews).execute(&customer(author.id), parts.id).await;

        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            *deletes.lock().expect("not poisoned"),
            [STORED_VERSION, STORED_VERSION + 1],
            "the second deletion names the version it re-read"
        );
    }

    #[tokio::test]
    async fn a_deletion_gives_up_with_a_conflict_after_the_bounded_attempts() {
        let author = author();
        let parts = stored_parts(&author);
        let mut reviews = repository_changing(&parts, WRITE_ATTEMPTS);
        let deletes = deletes_answering(&mut reviews, WRITE_ATTEMPTS, false);

        let result = delete_use_case(reviews).execute(&customer(author.id), parts.id).await;

        assert!(matches!(result, Err(DeleteReviewError::Conflict)), "{result:?}");
        assert_eq!(deletes.lock().expect("not poisoned").len(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_review_gone_before_the_deletion_is_not_found() {
        let author = author();
        let stored = Review::restore(stored_parts(&author));
        let mut reviews = repository_holding(&stored);
        reviews.expect_delete().times(1).returning(|_| Err(ReviewWriteError::NotFound));

        let result = delete_use_case(reviews).execute(&customer(author.id), stored.id()).await;

        assert!(matches!(result, Err(DeleteReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_missing_review_is_not_found_and_nothing_is_deleted() {
        let mut reviews = MockReviewRepository::new();
        reviews.expect_find_by_id().times(1).returning(|_| Ok(None));
        reviews.expect_delete().never();

        let result = delete_use_case(reviews).execute(&admin(), ReviewId::new()).await;

        assert!(matches!(result, Err(DeleteReviewError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_deleting_is_a_store_error() {
        let stored = Review::restore(stored_parts(&author()));
        let mut reviews = repository_holding(&stored);
        reviews.expect_delete().times(1).returning(|_| Err(ReviewWriteError::Store(store_down())));

        let result = delete_use_case(reviews).execute(&admin(), stored.id()).await;

        assert!(
            matches!(result, Err(DeleteReviewError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}
