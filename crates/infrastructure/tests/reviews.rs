//! The SeaORM review adapter against real, migrated databases, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL: who has received a product, the round trip of a
//! review, the refusal of every write, the product's rating kept equal to its visible reviews by
//! every write (also under concurrent writers), a deleted author's reviews, and the lists.
//!
//! Each test gets a fresh database. Timestamps carry microseconds (never nanoseconds), the finest
//! precision PostgreSQL keeps, so round-tripped values compare exactly on both engines.

use orderly_application::{
    pagination::{Cursor, Page, PageLimit, PageRequest},
    ports::{OrderRepository as _, ProductRepository as _, UserRepository as _, UserWriteError},
    reviews::ports::{
        ReviewFilter, ReviewQueries as _, ReviewRepository as _, ReviewSort, ReviewWriteError,
    },
};
use orderly_domain::{
    Actor, Currency, Email, Money, Order, OrderAction, OrderLines, PasswordHash, Product,
    ProductDraft, ProductId, ProductName, ProductRating, Quantity, Rating, RatingDelta, Reason,
    Review, ReviewAuthor, ReviewBody, ReviewDraft, ReviewId, ReviewTitle, Role, Sku, User, UserId,
    UserName,
    time::{TimeDelta, Timestamp},
};
use orderly_infrastructure::{
    Database, SeaOrmOrderRepository, SeaOrmProductRepository, SeaOrmReviewRepository,
    SeaOrmUserRepository, on_both_engines,
};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fixed instant plus `seconds`, with a microsecond fraction so that sub-second precision is
/// part of every round trip.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 123_456_000).expect("a valid instant")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("an amount in range")
}

fn user(login: &str, name: &str, role: Role) -> User {
    User::register(
        Email::parse(&format!("{login}@example.com")).expect("a valid e-mail address"),
        UserName::parse(name).expect("a valid name"),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash".into()),
        role,
        at(0),
    )
}

fn product(sku: &str) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(&format!("Product {sku}")).expect("a valid name"),
        description: None,
        price: eur(1000),
        stock: 100,
    };
    Product::create(draft, at(0)).expect("a valid product")
}

fn stars(stars: i64) -> Rating {
    Rating::new(stars).expect("a valid rating")
}

fn title(text: &str) -> ReviewTitle {
    ReviewTitle::parse(text).expect("a valid title")
}

fn body(text: &str) -> ReviewBody {
    ReviewBody::parse(text).expect("a valid body")
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("a valid reason")
}

fn actor(user: &User) -> Actor {
    Actor::User { id: user.id(), role: user.role() }
}

fn author_of(user: &User) -> ReviewAuthor {
    ReviewAuthor { id: user.id(), name: user.name().clone() }
}

/// A new (not yet stored) review of `product` by `author`.
fn review_by(author: &User, product: ProductId, rating: i64, now: Timestamp) -> Review {
    let draft = ReviewDraft {
        rating: stars(rating),
        title: title(&format!("{rating} stars from {}", author.name().as_str())),
        body: body("It does what it says."),
    };
    Review::write(product, author_of(author), draft, false, now)
}

fn page_of(limit: u32, after: Option<Cursor>) -> PageRequest {
    PageRequest { limit: PageLimit::new(limit).expect("a valid limit"), after }
}

type ReviewFields = (
    ReviewId,
    ProductId,
    Option<(UserId, String)>,
    u8,
    String,
    String,
    bool,
    bool,
    Option<String>,
    u64,
    Timestamp,
    Timestamp,
);

/// Every field of a review, for comparisons with a readable diff (`Review` has no `PartialEq`).
fn review_fields(review: &Review) -> ReviewFields {
    (
        review.id(),
        review.product_id(),
        review.author().map(|author| (author.id, author.name.as_str().to_owned())),
        review.rating().stars(),
        review.title().as_str().to_owned(),
        review.body().as_str().to_owned(),
        review.is_verified_purchase(),
        review.is_hidden(),
        review.hidden_reason().map(|reason| reason.as_str().to_owned()),
        review.version(),
        review.created_at(),
        review.updated_at(),
    )
}

fn ids(reviews: &[Review]) -> Vec<ReviewId> {
    reviews.iter().map(Review::id).collect()
}

/// What `reviews` add up to when they are the visible reviews of a product.
fn rating_of_reviews<'a>(reviews: impl IntoIterator<Item = &'a Review>) -> ProductRating {
    let (count, sum) = reviews
        .into_iter()
        .filter_map(Review::counted_rating)
        .fold((0u32, 0u64), |(count, sum), rating| (count + 1, sum + u64::from(rating.stars())));
    ProductRating::new(count, sum)
}

/// `reviews` in `sort`'s order, as the store should list them: by id for the date orders (ids
/// are UUIDv7), by rating then id for the rating orders.
fn sorted(mut reviews: Vec<Review>, sort: ReviewSort) -> Vec<Review> {
    match sort {
        ReviewSort::Newest => reviews.sort_by_key(|review| std::cmp::Reverse(review.id())),
        ReviewSort::Oldest => reviews.sort_by_key(Review::id),
        ReviewSort::RatingDesc => {
            reviews.sort_by_key(|review| std::cmp::Reverse((review.rating(), review.id())));
        }
        ReviewSort::RatingAsc => reviews.sort_by_key(|review| (review.rating(), review.id())),
    }
    reviews
}

async fn joined<T: Send + 'static>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("the task did not panic"))
        .collect()
}

/// The repositories a review scenario needs.
struct Shop {
    users: SeaOrmUserRepository,
    products: SeaOrmProductRepository,
    orders: SeaOrmOrderRepository,
    reviews: SeaOrmReviewRepository,
}

impl Shop {
    fn new(db: &Database) -> Self {
        Self {
            users: SeaOrmUserRepository::new(db.clone()),
            products: SeaOrmProductRepository::new(db.clone()),
            orders: SeaOrmOrderRepository::new(db.clone()),
            reviews: SeaOrmReviewRepository::new(db.clone()),
        }
    }

    async fn member(&self, login: &str, name: &str, role: Role) -> User {
        let member = user(login, name, role);
        self.users.insert(&member).await.expect("inserting a user");
        member
    }

    async fn customer(&self, name: &str) -> User {
        self.member(name, name, Role::Customer).await
    }

    async fn admin(&self) -> User {
        self.member("admin", "admin", Role::Admin).await
    }

    async fn stocked(&self, sku: &str) -> Product {
        let product = product(sku);
        self.products.insert(&product).await.expect("inserting a product");
        product
    }

    /// The stored rating and version of `product`, read through the product repository.
    async fn rating(&self, product: &Product) -> (ProductRating, u64) {
        let stored = self
            .products
            .find_by_id(product.id())
            .await
            .expect("reading a product")
            .expect("the product exists");
        (stored.rating(), stored.version())
    }

    /// The stored rating of `product`, recomputed from its visible reviews as listed.
    async fn recomputed(&self, product: &Product) -> ProductRating {
        rating_of_reviews(&self.list(product.id(), ReviewFilter::default()).await)
    }

    /// Places an order of one unit of each of `products` by `customer`.
    async fn place(&self, customer: &User, products: &[&Product], now: Timestamp) -> Order {
        let lines = OrderLines::new(
            products.iter().map(|product| (product.id(), Quantity::new(1).expect("a quantity"))),
        )
        .expect("valid lines");
        let products: Vec<Product> = products.iter().map(|product| (*product).clone()).collect();
        let (order, placed) =
            Order::place(customer.id(), &lines, &products, now, now + TimeDelta::minutes(30))
                .expect("a valid order");
        self.orders.place(&order, &placed, None).await.expect("placing an order");
        order
    }

    /// Applies `action` to `order` as `by` and saves it at the version it had before; `pay`
    /// goes through [`Order::pay`].
    async fn advance(&self, order: &mut Order, action: OrderAction, by: &User, now: Timestamp) {
        let expected = order.version();
        let entry = if action == OrderAction::Pay {
            order.pay(&actor(by), None, "ch_test".to_owned(), now)
        } else {
            order.apply(action, &actor(by), None, now)
        }
        .expect("a legal transition");
        self.orders
            .save_transition(order, &entry, expected, None)
            .await
            .expect("saving a transition");
    }

    /// Pays, ships and delivers `order`.
    async fn deliver(&self, order: &mut Order, customer: &User, admin: &User, now: Timestamp) {
        self.advance(order, OrderAction::Pay, customer, now).await;
        self.advance(order, OrderAction::Ship, admin, now + TimeDelta::seconds(1)).await;
        self.advance(order, OrderAction::Deliver, admin, now + TimeDelta::seconds(2)).await;
    }

    async fn received(&self, customer: &User, product: &Product) -> bool {
        self.reviews.has_received(customer.id(), product.id()).await.expect("asking the store")
    }

    /// Stores a new review of `product` by `author`.
    async fn write(&self, author: &User, product: &Product, rating: i64, now: Timestamp) -> Review {
        let review = review_by(author, product.id(), rating, now);
        self.reviews.insert(&review).await.expect("inserting a review");
        review
    }

    async fn find(&self, id: ReviewId) -> Option<Review> {
        self.reviews.find_by_id(id).await.expect("reading a review")
    }

    async fn stored(&self, id: ReviewId) -> Review {
        self.find(id).await.expect("the review exists")
    }

    /// Applies `change` to `loaded` and writes it at the loaded version, moving the product's
    /// rating by what the change does to the counted rating, as the use cases do. Returns the
    /// review as stored afterwards.
    async fn revise(
        &self,
        loaded: &Review,
        change: impl FnOnce(&mut Review),
    ) -> Result<Review, ReviewWriteError> {
        let mut changed = loaded.clone();
        change(&mut changed);
        let delta = RatingDelta::between(loaded.counted_rating(), changed.counted_rating());
        self.reviews.update(&changed, loaded.version(), delta).await?;
        Ok(self.stored(loaded.id()).await)
    }

    /// Every review `list` shows for `product` and `filter`, from one page of 100.
    async fn list(&self, product: ProductId, filter: ReviewFilter) -> Vec<Review> {
        let page = self.reviews.list(product, filter, page_of(100, None)).await.expect("listing");
        assert!(page.next.is_none(), "everything fits on one page");
        page.items
    }

    /// Follows the cursors of a list from its first page to its last, checking that every page
    /// but the last is full and that only the last has no cursor. Returns the pages.
    async fn pages(
        &self,
        product: ProductId,
        filter: ReviewFilter,
        limit: u32,
    ) -> Vec<Vec<Review>> {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let Page { items, next } = self
                .reviews
                .list(product, filter, page_of(limit, after))
                .await
                .expect("listing a page");
            assert!(items.len() <= limit as usize, "a page holds at most its limit");
            let last = next.is_none();
            if !last {
                assert_eq!(items.len(), limit as usize, "a page with a cursor is full");
            }
            pages.push(items);
            if last {
                return pages;
            }
            after = next;
            assert!(pages.len() <= 100, "the cursors never reach a last page");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Purchases
// ---------------------------------------------------------------------------------------------

async fn a_customer_has_received_a_product_only_once_an_order_containing_it_is_delivered(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let admin = shop.admin().await;
    let lamp = shop.stocked("LAMP-1").await;
    let desk = shop.stocked("DESK-1").await;
    let chair = shop.stocked("CHAIR-1").await;

    assert!(!shop.received(&ada, &lamp).await, "no order at all");

    // A delivered order of another product.
    let mut desk_order = shop.place(&ada, &[&desk], at(10)).await;
    shop.deliver(&mut desk_order, &ada, &admin, at(20)).await;
    assert!(shop.received(&ada, &desk).await);
    assert!(!shop.received(&ada, &lamp).await, "a delivered order of another product");

    // Another customer's cancelled order of the lamp.
    let mut cancelled = shop.place(&bob, &[&lamp], at(30)).await;
    shop.advance(&mut cancelled, OrderAction::Cancel, &bob, at(31)).await;
    assert!(!shop.received(&bob, &lamp).await, "a cancelled order");

    // An order of the lamp (and a chair) through every status before delivered.
    let mut order = shop.place(&ada, &[&chair, &lamp], at(40)).await;
    assert!(!shop.received(&ada, &lamp).await, "a pending order");
    shop.advance(&mut order, OrderAction::Pay, &ada, at(41)).await;
    assert!(!shop.received(&ada, &lamp).await, "a paid order");
    shop.advance(&mut order, OrderAction::Ship, &admin, at(42)).await;
    assert!(!shop.received(&ada, &lamp).await, "a shipped order");
    shop.advance(&mut order, OrderAction::Deliver, &admin, at(43)).await;
    assert!(shop.received(&ada, &lamp).await, "a delivered order containing the product");
    assert!(shop.received(&ada, &chair).await, "every line of a delivered order counts");

    assert!(!shop.received(&bob, &lamp).await, "another customer's delivered order");
    assert!(!shop.received(&bob, &desk).await, "another customer's delivered order");
    assert!(!shop.received(&admin, &lamp).await, "the admin who delivered it");
    let nobody = user("nobody", "nobody", Role::Customer);
    assert!(!shop.received(&nobody, &lamp).await, "a user who does not exist");
}

// ---------------------------------------------------------------------------------------------
// Insert and read
// ---------------------------------------------------------------------------------------------

async fn an_inserted_review_round_trips_every_field_and_counts_once_in_its_products_rating(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.member("ada", "Ada Lovelace ✓", Role::Customer).await;
    let lamp = shop.stocked("LAMP-1").await;
    assert_eq!(shop.rating(&lamp).await, (ProductRating::default(), 1));

    let draft = ReviewDraft {
        rating: stars(4),
        title: title("  Bright, and quiet — très bien  "),
        body: body("First line.\nSecond line.\r\n\n\tIndented after a blank line: ünïcödé 😀"),
    };
    let review = Review::write(lamp.id(), author_of(&ada), draft, true, at(100));
    shop.reviews.insert(&review).await.expect("inserting a review");

    let stored = shop.stored(review.id()).await;
    assert_eq!(review_fields(&stored), review_fields(&review));
    assert_eq!(stored.author(), Some(&author_of(&ada)));
    assert_eq!(stored.author().map(|author| author.name.as_str()), Some("Ada Lovelace ✓"));
    assert_eq!(stored.product_id(), lamp.id());
    assert_eq!(stored.rating(), stars(4));
    assert_eq!(stored.title().as_str(), "Bright, and quiet — très bien");
    assert_eq!(
        stored.body().as_str(),
        "First line.\nSecond line.\r\n\n\tIndented after a blank line: ünïcödé 😀"
    );
    assert!(stored.is_verified_purchase());
    assert!(!stored.is_hidden());
    assert_eq!(stored.hidden_reason(), None);
    assert_eq!(stored.version(), 1);
    assert_eq!((stored.created_at(), stored.updated_at()), (at(100), at(100)));

    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(1, 4), 2));
    assert!(shop.find(ReviewId::new()).await.is_none());
}

async fn a_second_review_by_the_same_author_is_already_reviewed_and_a_missing_parent_is_refused(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let lamp = shop.stocked("LAMP-1").await;
    let desk = shop.stocked("DESK-1").await;
    let first = shop.write(&ada, &lamp, 5, at(10)).await;

    let second = review_by(&ada, lamp.id(), 1, at(20));
    let result = shop.reviews.insert(&second).await;
    assert!(matches!(result, Err(ReviewWriteError::AlreadyReviewed)), "{result:?}");
    assert!(shop.find(second.id()).await.is_none());
    assert_eq!(review_fields(&shop.stored(first.id()).await), review_fields(&first));
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(1, 5), 2));

    // One review per product and author: the same author may review another product.
    shop.write(&ada, &desk, 2, at(30)).await;
    assert_eq!(shop.rating(&desk).await, (ProductRating::new(1, 2), 2));

    let of_nothing = review_by(&ada, ProductId::new(), 3, at(40));
    let result = shop.reviews.insert(&of_nothing).await;
    assert!(matches!(result, Err(ReviewWriteError::MissingParent)), "{result:?}");
    assert!(shop.find(of_nothing.id()).await.is_none());

    let ghost = user("ghost", "ghost", Role::Customer);
    let by_nobody = review_by(&ghost, lamp.id(), 1, at(50));
    let result = shop.reviews.insert(&by_nobody).await;
    assert!(matches!(result, Err(ReviewWriteError::MissingParent)), "{result:?}");
    assert!(shop.find(by_nobody.id()).await.is_none());
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(1, 5), 2));
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

async fn updating_a_review_at_its_loaded_version_writes_it_and_moves_the_rating_by_the_delta(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let lamp = shop.stocked("LAMP-1").await;
    let review = shop.write(&ada, &lamp, 4, at(10)).await;
    let other = shop.write(&bob, &lamp, 2, at(11)).await;
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(2, 6), 3));

    let loaded = shop.stored(review.id()).await;
    let mut changed = loaded.clone();
    changed.rate(stars(1), at(20));
    changed.retitle(title("Broke after a week"), at(20));
    changed.rewrite(body("It flickers.\nThen it died."), at(20));
    assert_eq!(changed.version(), 2, "one save, one version step");
    let delta = RatingDelta::between(loaded.counted_rating(), changed.counted_rating());
    assert_eq!(delta, RatingDelta { count: 0, sum: -3 });
    shop.reviews.update(&changed, loaded.version(), delta).await.expect("updating");

    let stored = shop.stored(review.id()).await;
    assert_eq!(review_fields(&stored), review_fields(&changed));
    assert_eq!((stored.version(), stored.created_at(), stored.updated_at()), (2, at(10), at(20)));
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(2, 3), 4));
    assert_eq!(review_fields(&shop.stored(other.id()).await), review_fields(&other));

    // The next update starts from the stored version.
    let again = shop.revise(&stored, |r| r.rate(stars(5), at(30))).await.expect("updating");
    assert_eq!((again.rating(), again.version()), (stars(5), 3));
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(2, 7), 5));
    assert_eq!(shop.recomputed(&lamp).await, ProductRating::new(2, 7));
}

async fn updating_a_review_at_a_stale_version_is_stale_and_changes_nothing(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let lamp = shop.stocked("LAMP-1").await;
    let review = shop.write(&ada, &lamp, 4, at(10)).await;
    let loaded = shop.stored(review.id()).await;

    let first = shop.revise(&loaded, |r| r.rate(stars(5), at(20))).await.expect("the first wins");
    let rating = shop.rating(&lamp).await;
    assert_eq!(rating, (ProductRating::new(1, 5), 3));

    // Loaded at version 1 too, but written after the first update.
    let mut late = loaded.clone();
    late.rate(stars(1), at(30));
    late.hide(Some(reason("late")), at(30));
    let delta = RatingDelta::between(loaded.counted_rating(), late.counted_rating());
    let result = shop.reviews.update(&late, loaded.version(), delta).await;
    assert!(matches!(result, Err(ReviewWriteError::Stale)), "{result:?}");
    // A version from the future is just as stale.
    let result = shop.reviews.update(&late, 7, delta).await;
    assert!(matches!(result, Err(ReviewWriteError::Stale)), "{result:?}");

    assert_eq!(review_fields(&shop.stored(review.id()).await), review_fields(&first));
    assert_eq!(shop.rating(&lamp).await, rating);
}

async fn updating_a_deleted_review_is_not_found(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let lamp = shop.stocked("LAMP-1").await;
    let review = shop.write(&ada, &lamp, 4, at(10)).await;
    let loaded = shop.stored(review.id()).await;
    shop.reviews.delete(&loaded).await.expect("deleting");
    let rating = shop.rating(&lamp).await;

    let result = shop.revise(&loaded, |r| r.rate(stars(2), at(20))).await;
    assert!(matches!(result, Err(ReviewWriteError::NotFound)), "{result:?}");
    let never_stored = review_by(&ada, lamp.id(), 3, at(30));
    let result = shop.reviews.update(&never_stored, 1, RatingDelta { count: 0, sum: -1 }).await;
    assert!(matches!(result, Err(ReviewWriteError::NotFound)), "{result:?}");

    assert!(shop.find(review.id()).await.is_none());
    assert_eq!(shop.rating(&lamp).await, rating);
    assert_eq!(rating.0, ProductRating::default());
}

async fn hiding_and_showing_reviews_keeps_the_rating_equal_to_the_visible_reviews(db: &Database) {
    let shop = Shop::new(db);
    let lamp = shop.stocked("LAMP-1").await;
    let mut reviews = Vec::new();
    for (i, (name, rating)) in [("ada", 5), ("bob", 3), ("cleo", 4)].into_iter().enumerate() {
        let author = shop.customer(name).await;
        let review =
            shop.write(&author, &lamp, rating, at(10 + i64::try_from(i).expect("small"))).await;
        reviews.push(review.id());
    }
    let [ada, bob, cleo] = reviews[..] else { unreachable!() };
    let check = async |expected: ProductRating| {
        assert_eq!(shop.rating(&lamp).await.0, expected);
        assert_eq!(shop.recomputed(&lamp).await, expected, "the visible reviews add up to it");
    };
    check(ProductRating::new(3, 12)).await;

    let hidden = shop
        .revise(&shop.stored(bob).await, |r| r.hide(Some(reason("off-topic")), at(20)))
        .await
        .expect("hiding");
    assert!(hidden.is_hidden());
    assert_eq!(hidden.hidden_reason().map(Reason::as_str), Some("off-topic"));
    assert_eq!(hidden.version(), 2);
    check(ProductRating::new(2, 9)).await;

    shop.revise(&shop.stored(ada).await, |r| r.hide(None, at(21))).await.expect("hiding");
    check(ProductRating::new(1, 4)).await;

    // Hiding again with another reason is a change, but the rating stays.
    let (_, version) = shop.rating(&lamp).await;
    shop.revise(&hidden, |r| r.hide(Some(reason("spam")), at(22))).await.expect("re-hiding");
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(1, 4), version));

    let shown = shop.revise(&shop.stored(bob).await, |r| r.show(at(23))).await.expect("showing");
    assert!(!shown.is_hidden());
    assert_eq!(shown.hidden_reason(), None);
    check(ProductRating::new(2, 7)).await;

    // Re-rating a hidden review, then showing it, counts its new rating.
    shop.revise(&shop.stored(ada).await, |r| r.rate(stars(1), at(24))).await.expect("rating");
    check(ProductRating::new(2, 7)).await;
    shop.revise(&shop.stored(ada).await, |r| r.show(at(25))).await.expect("showing");
    check(ProductRating::new(3, 8)).await;

    shop.revise(&shop.stored(cleo).await, |r| {
        r.rate(stars(2), at(26));
        r.hide(None, at(26));
    })
    .await
    .expect("re-rating and hiding at once");
    check(ProductRating::new(2, 4)).await;
}

async fn an_update_that_does_not_move_the_rating_leaves_the_products_version_alone(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let lamp = shop.stocked("LAMP-1").await;
    let review = shop.write(&ada, &lamp, 4, at(10)).await;
    let before = shop.rating(&lamp).await;
    assert_eq!(before, (ProductRating::new(1, 4), 2));

    let loaded = shop.stored(review.id()).await;
    let mut changed = loaded.clone();
    changed.retitle(title("Still bright"), at(20));
    changed.rewrite(body("A year on, still fine."), at(20));
    let delta = RatingDelta::between(loaded.counted_rating(), changed.counted_rating());
    assert!(delta.is_zero());
    shop.reviews.update(&changed, loaded.version(), delta).await.expect("updating");
    assert_eq!(review_fields(&shop.stored(review.id()).await), review_fields(&changed));
    assert_eq!(shop.rating(&lamp).await, before, "neither the rating nor the version moved");

    // A hidden review's new rating does not count either.
    let hidden = shop.write(&bob, &lamp, 2, at(30)).await;
    let hidden =
        shop.revise(&shop.stored(hidden.id()).await, |r| r.hide(None, at(31))).await.expect("hide");
    let before = shop.rating(&lamp).await;
    assert_eq!(before.0, ProductRating::new(1, 4));
    let rerated = shop.revise(&hidden, |r| r.rate(stars(5), at(32))).await.expect("re-rating");
    assert_eq!((rerated.rating(), rerated.version()), (stars(5), 3));
    assert_eq!(shop.rating(&lamp).await, before);
}

// ---------------------------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------------------------

async fn deleting_a_review_removes_it_and_takes_its_counted_rating_out(db: &Database) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let lamp = shop.stocked("LAMP-1").await;
    let visible = shop.write(&ada, &lamp, 5, at(10)).await;
    let hidden = shop.write(&bob, &lamp, 2, at(11)).await;
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(2, 7), 3));

    shop.reviews.delete(&shop.stored(visible.id()).await).await.expect("deleting");
    assert!(shop.find(visible.id()).await.is_none());
    assert_eq!(shop.rating(&lamp).await, (ProductRating::new(1, 2), 4));
    assert_eq!(ids(&shop.list(lamp.id(), ReviewFilter::default()).await), [hidden.id()]);

    let hidden =
        shop.revise(&shop.stored(hidden.id()).await, |r| r.hide(None, at(20))).await.expect("hide");
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::default());
    shop.reviews.delete(&hidden).await.expect("deleting a hidden review");
    assert!(shop.find(hidden.id()).await.is_none());
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::default(), "it was not counted");

    // The author may review the product again once their review is gone.
    shop.write(&ada, &lamp, 3, at(30)).await;
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::new(1, 3));
}

async fn deleting_a_review_at_a_stale_version_is_stale_and_deleting_twice_is_not_found(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let lamp = shop.stocked("LAMP-1").await;
    let review = shop.write(&ada, &lamp, 4, at(10)).await;
    let loaded = shop.stored(review.id()).await;
    let current = shop.revise(&loaded, |r| r.rate(stars(2), at(20))).await.expect("updating");
    let rating = shop.rating(&lamp).await;

    let result = shop.reviews.delete(&loaded).await;
    assert!(matches!(result, Err(ReviewWriteError::Stale)), "{result:?}");
    assert_eq!(review_fields(&shop.stored(review.id()).await), review_fields(&current));
    assert_eq!(shop.rating(&lamp).await, rating);

    shop.reviews.delete(&current).await.expect("deleting at the stored version");
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::default());
    let result = shop.reviews.delete(&current).await;
    assert!(matches!(result, Err(ReviewWriteError::NotFound)), "{result:?}");
    let result = shop.reviews.delete(&review_by(&ada, lamp.id(), 1, at(30))).await;
    assert!(matches!(result, Err(ReviewWriteError::NotFound)), "{result:?}");
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::default());
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// Twenty authors review one product at once, then half of the reviews are re-rated and a
/// quarter hidden at once: every increment lands, so the product's rating equals its visible
/// reviews exactly.
async fn concurrent_reviews_updates_and_hides_keep_the_products_rating_exact(db: &Database) {
    const AUTHORS: usize = 20;
    let shop = Shop::new(db);
    let lamp = shop.stocked("LAMP-1").await;
    let mut written = Vec::new();
    for i in 0..AUTHORS {
        let author = shop.customer(&format!("author{i}")).await;
        let rating = i64::try_from(i % 5 + 1).expect("small");
        written.push(review_by(&author, lamp.id(), rating, at(i64::try_from(i).expect("small"))));
    }

    let tasks = written
        .iter()
        .cloned()
        .map(|review| {
            let reviews = shop.reviews.clone();
            tokio::spawn(async move { reviews.insert(&review).await })
        })
        .collect();
    for result in joined(tasks).await {
        result.expect("every insert succeeds");
    }
    let inserted = rating_of_reviews(&written);
    assert_eq!(inserted, ProductRating::new(20, 60));
    assert_eq!(shop.rating(&lamp).await, (inserted, 1 + 20));
    assert_eq!(shop.recomputed(&lamp).await, inserted);

    let mut loaded = Vec::new();
    for review in &written {
        loaded.push(shop.stored(review.id()).await);
    }
    let mut expected = Vec::new();
    let mut tasks = Vec::new();
    for (i, review) in loaded.into_iter().enumerate() {
        let mut changed = review.clone();
        if i < AUTHORS / 2 {
            // Always another rating: i % 5 + 1 becomes (i + 2) % 5 + 1.
            changed.rate(stars(i64::try_from((i + 2) % 5 + 1).expect("small")), at(100));
        } else if i < AUTHORS / 2 + AUTHORS / 4 {
            changed.hide(Some(reason("moderated")), at(100));
        }
        let delta = RatingDelta::between(review.counted_rating(), changed.counted_rating());
        expected.push(changed.clone());
        if changed.version() != review.version() {
            let reviews = shop.reviews.clone();
            tasks.push(tokio::spawn(async move {
                reviews.update(&changed, review.version(), delta).await
            }));
        }
    }
    assert_eq!(tasks.len(), 15);
    for result in joined(tasks).await {
        result.expect("every update succeeds");
    }

    let expected_rating = rating_of_reviews(&expected);
    assert_eq!(expected_rating.count(), 15);
    let listed = shop.list(lamp.id(), ReviewFilter::default()).await;
    assert_eq!(listed.len(), 15);
    assert_eq!(rating_of_reviews(&listed), expected_rating);
    assert_eq!(shop.rating(&lamp).await, (expected_rating, 1 + 20 + 15));
    for review in &expected {
        assert_eq!(review_fields(&shop.stored(review.id()).await), review_fields(review));
    }
}

// ---------------------------------------------------------------------------------------------
// Deleted authors
// ---------------------------------------------------------------------------------------------

async fn deleting_an_author_keeps_their_reviews_without_an_author_listed_and_counted(
    db: &Database,
) {
    let shop = Shop::new(db);
    let ada = shop.customer("ada").await;
    let bob = shop.customer("bob").await;
    let lamp = shop.stocked("LAMP-1").await;
    // No purchase: the repository does not check purchases, the use case does.
    let by_ada = shop.write(&ada, &lamp, 2, at(10)).await;
    let by_bob = shop.write(&bob, &lamp, 5, at(11)).await;
    let rating = shop.rating(&lamp).await;
    assert_eq!(rating, (ProductRating::new(2, 7), 3));

    match shop.users.delete(ada.id()).await {
        Ok(()) => {}
        Err(UserWriteError::StillReferenced(referrer)) => {
            panic!("a review kept its author from being deleted ({referrer:?})")
        }
        Err(error) => panic!("deleting the author: {error:?}"),
    }
    assert!(shop.users.find_by_id(ada.id()).await.expect("reading").is_none());

    let stored = shop.stored(by_ada.id()).await;
    assert_eq!(stored.author(), None);
    let mut expected = review_fields(&by_ada);
    expected.2 = None;
    assert_eq!(review_fields(&stored), expected, "nothing but the author changed");
    assert_eq!(shop.stored(by_bob.id()).await.author(), Some(&author_of(&bob)));

    let listed = shop.list(lamp.id(), ReviewFilter::default()).await;
    let listed_by_ada =
        listed.iter().find(|review| review.id() == by_ada.id()).expect("still listed");
    assert_eq!(listed_by_ada.author(), None);
    assert_eq!(listed.len(), 2);
    assert_eq!(shop.rating(&lamp).await, rating, "still counted");

    // An authorless review can still be moderated and deleted.
    let hidden = shop.revise(&stored, |r| r.hide(None, at(20))).await.expect("hiding");
    assert_eq!(hidden.author(), None);
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::new(1, 5));
    shop.reviews.delete(&hidden).await.expect("deleting");
    assert_eq!(shop.rating(&lamp).await.0, ProductRating::new(1, 5));
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

/// Seven visible reviews of a lamp (ratings 5, 5, 1, 4, 3, 5, 2), one hidden review of it
/// (rating 3) and one review of a desk. Returns the lamp, its visible reviews as stored, the
/// hidden one and the desk's.
async fn reviews_to_list(shop: &Shop) -> (Product, Vec<Review>, Review, Review) {
    let lamp = shop.stocked("LAMP-1").await;
    let desk = shop.stocked("DESK-1").await;
    let mut visible = Vec::new();
    let mut hidden = None;
    for (i, rating) in [5, 3, 5, 1, 4, 3, 5, 2].into_iter().enumerate() {
        let author = shop.customer(&format!("reader{i}")).await;
        // Creation times run against the ids: the date orders follow the ids alone.
        let review =
            shop.write(&author, &lamp, rating, at(1000 - i64::try_from(i).expect("small"))).await;
        if i == 1 {
            let stored = shop.stored(review.id()).await;
            hidden = Some(shop.revise(&stored, |r| r.hide(None, at(2000))).await.expect("hiding"));
        } else {
            visible.push(shop.stored(review.id()).await);
        }
    }
    let other = shop.write(&shop.customer("desk-reader").await, &desk, 4, at(0)).await;
    (lamp, visible, hidden.expect("one hidden"), other)
}

async fn lists_show_the_visible_reviews_of_the_product_filtered_by_rating_in_every_sort_order(
    db: &Database,
) {
    let shop = Shop::new(db);
    let (lamp, visible, hidden, other) = reviews_to_list(&shop).await;

    for sort in ReviewSort::ALL {
        let filter = ReviewFilter { rating: None, sort };
        let listed = shop.list(lamp.id(), filter).await;
        let expected = sorted(visible.clone(), sort);
        assert_eq!(ids(&listed), ids(&expected), "{sort:?}");
        assert!(!ids(&listed).contains(&hidden.id()), "a hidden review is never listed");
        assert!(!ids(&listed).contains(&other.id()), "another product's review is never listed");
        let fields: Vec<_> = listed.iter().map(review_fields).collect();
        let expected_fields: Vec<_> = expected.iter().map(review_fields).collect();
        assert_eq!(fields, expected_fields, "{sort:?}: listed reviews carry every field");

        for stars_filter in 1..=5 {
            let rating = stars(stars_filter);
            let filter = ReviewFilter { rating: Some(rating), sort };
            let expected = sorted(
                visible.iter().filter(|review| review.rating() == rating).cloned().collect(),
                sort,
            );
            assert_eq!(ids(&shop.list(lamp.id(), filter).await), ids(&expected), "{filter:?}");
        }
    }
    let fives = shop
        .list(lamp.id(), ReviewFilter { rating: Some(stars(5)), sort: ReviewSort::Newest })
        .await;
    assert_eq!(fives.len(), 3);
    let threes = shop
        .list(lamp.id(), ReviewFilter { rating: Some(stars(3)), sort: ReviewSort::Newest })
        .await;
    assert_eq!(threes.len(), 1, "the hidden three is left out");

    assert_eq!(ids(&shop.list(other.product_id(), ReviewFilter::default()).await), [other.id()]);
    assert!(shop.list(ProductId::new(), ReviewFilter::default()).await.is_empty());
}

async fn review_pages_of_two_cover_every_visible_review_once_in_every_sort_order(db: &Database) {
    let shop = Shop::new(db);
    let (lamp, visible, _, _) = reviews_to_list(&shop).await;

    for sort in ReviewSort::ALL {
        for rating in [None, Some(stars(5))] {
            let filter = ReviewFilter { rating, sort };
            let pages = shop.pages(lamp.id(), filter, 2).await;
            let expected = sorted(
                visible
                    .iter()
                    .filter(|review| rating.is_none_or(|rating| review.rating() == rating))
                    .cloned()
                    .collect(),
                sort,
            );
            let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
            let expected_sizes = if rating.is_none() { vec![2, 2, 2, 1] } else { vec![2, 1] };
            assert_eq!(sizes, expected_sizes, "{filter:?}");
            let paged: Vec<Review> = pages.into_iter().flatten().collect();
            assert_eq!(ids(&paged), ids(&expected), "{filter:?}: every review once, in order");
        }
    }
}

on_both_engines!(
    a_customer_has_received_a_product_only_once_an_order_containing_it_is_delivered,
    an_inserted_review_round_trips_every_field_and_counts_once_in_its_products_rating,
    a_second_review_by_the_same_author_is_already_reviewed_and_a_missing_parent_is_refused,
    updating_a_review_at_its_loaded_version_writes_it_and_moves_the_rating_by_the_delta,
    updating_a_review_at_a_stale_version_is_stale_and_changes_nothing,
    updating_a_deleted_review_is_not_found,
    hiding_and_showing_reviews_keeps_the_rating_equal_to_the_visible_reviews,
    an_update_that_does_not_move_the_rating_leaves_the_products_version_alone,
    deleting_a_review_removes_it_and_takes_its_counted_rating_out,
    deleting_a_review_at_a_stale_version_is_stale_and_deleting_twice_is_not_found,
    concurrent_reviews_updates_and_hides_keep_the_products_rating_exact,
    deleting_an_author_keeps_their_reviews_without_an_author_listed_and_counted,
    lists_show_the_visible_reviews_of_the_product_filtered_by_rating_in_every_sort_order,
    review_pages_of_two_cover_every_visible_review_once_in_every_sort_order,
);
