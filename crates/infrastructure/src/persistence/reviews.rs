//! Reviews in SeaORM, and the rating they add up to on their product.

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    reviews::ports::{ReviewFilter, ReviewQueries, ReviewRepository, ReviewSort, ReviewWriteError},
};
use orderly_domain::{
    OrderStatus, ProductId, Rating, RatingDelta, Reason, Review, ReviewAuthor, ReviewBody,
    ReviewId, ReviewParts, ReviewTitle, UserId, UserName, Uuid,
};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, EntityTrait as _, IntoActiveModel as _, PaginatorTrait as _,
    QueryFilter as _, QuerySelect as _,
    sea_query::{Expr, ExprTrait as _, Query},
};

use super::{
    Database,
    error::{Failure, classify, store},
    keyset::{self, Direction},
    mapping::{version_from_db, version_to_db},
};
use crate::{
    entity::{order, order_item, product, review, user},
    services::ProductCache,
};

/// [`ReviewRepository`] and [`ReviewQueries`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmReviewRepository {
    db: Database,
    cache: ProductCache,
}

impl SeaOrmReviewRepository {
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db, cache: ProductCache::disabled() }
    }

    /// Drops the product's entry in `cache` after every change of its rating (ADR 0025).
    #[must_use]
    pub fn invalidating(mut self, cache: ProductCache) -> Self {
        self.cache = cache;
        self
    }

    /// The display names of these authors.
    async fn author_names(
        &self,
        ids: impl Iterator<Item = Uuid>,
    ) -> Result<HashMap<Uuid, String>, StoreError> {
        let mut ids: Vec<Uuid> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let names: Vec<(Uuid, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(ids))
            .into_tuple()
            .all(self.db.connection())
            .await
            .map_err(store("reading the authors of reviews"))?;
        Ok(names.into_iter().collect())
    }

    async fn to_reviews(&self, rows: Vec<review::Model>) -> Result<Vec<Review>, StoreError> {
        let names = self.author_names(rows.iter().filter_map(|row| row.author_id)).await?;
        rows.into_iter()
            .map(|row| {
                let name = row.author_id.and_then(|id| names.get(&id)).cloned();
                to_review(row, name)
                    .context("reading a stored review")
                    .map_err(StoreError::Unexpected)
            })
            .collect()
    }
}

fn to_review(row: review::Model, author_name: Option<String>) -> anyhow::Result<Review> {
    // An author row deleted between the two reads is a deleted author, as `SET NULL` makes it.
    let author = match (row.author_id, author_name) {
        (Some(id), Some(name)) => {
            Some(ReviewAuthor { id: UserId::from_uuid(id), name: UserName::parse(&name)? })
        }
        _ => None,
    };
    Ok(Review::restore(ReviewParts {
        id: ReviewId::from_uuid(row.id),
        product_id: ProductId::from_uuid(row.product_id),
        author,
        rating: Rating::new(row.rating.into())?,
        title: ReviewTitle::parse(&row.title)?,
        body: ReviewBody::parse(&row.body)?,
        verified_purchase: row.verified_purchase,
        hidden: row.hidden,
        hidden_reason: row.hidden_reason.as_deref().map(Reason::parse).transpose()?,
        version: version_from_db(row.version)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

fn review_row(review: &Review) -> anyhow::Result<review::Model> {
    Ok(review::Model {
        id: review.id().into_uuid(),
        product_id: review.product_id().into_uuid(),
        author_id: review.author().map(|author| author.id.into_uuid()),
        rating: review.rating().stars().into(),
        title: review.title().as_str().to_owned(),
        body: review.body().as_str().to_owned(),
        verified_purchase: review.is_verified_purchase(),
        hidden: review.is_hidden(),
        hidden_reason: review.hidden_reason().map(|reason| reason.as_str().to_owned()),
        version: version_to_db(review.version())?,
        created_at: review.created_at(),
        updated_at: review.updated_at(),
    })
}

fn write_error(failure: Failure) -> ReviewWriteError {
    match failure {
        Failure::UniqueViolation => ReviewWriteError::AlreadyReviewed,
        Failure::ForeignKeyViolation => ReviewWriteError::MissingParent,
        Failure::Store(store) => ReviewWriteError::Store(store),
    }
}

/// Moves `product`'s rating by `delta` and its version one step (its representation changes),
/// inside the review's transaction: the increments are evaluated on the row as it is when the
/// update takes its lock, so concurrent reviews of one product add up exactly. False when the
/// product is gone.
async fn move_rating(
    tx: &impl ConnectionTrait,
    product: ProductId,
    delta: RatingDelta,
) -> Result<bool, StoreError> {
    let result = product::Entity::update_many()
        .col_expr(
            product::Column::RatingCount,
            Expr::col(product::Column::RatingCount).add(delta.count),
        )
        .col_expr(product::Column::RatingSum, Expr::col(product::Column::RatingSum).add(delta.sum))
        .col_expr(product::Column::Version, Expr::col(product::Column::Version).add(1))
        .filter(product::Column::Id.eq(product.into_uuid()))
        .exec(tx)
        .await
        .map_err(store("moving a product's rating"))?;
    Ok(result.rows_affected == 1)
}

impl SeaOrmReviewRepository {
    /// What a write that matched no row met: a stale version, or no review.
    async fn refused(&self, tx: &impl ConnectionTrait, id: ReviewId) -> ReviewWriteError {
        match review::Entity::find_by_id(id.into_uuid()).count(tx).await {
            Ok(0) => ReviewWriteError::NotFound,
            Ok(_) => ReviewWriteError::Stale,
            Err(error) => store("checking a review after a refused write")(error).into(),
        }
    }
}

#[async_trait]
impl ReviewRepository for SeaOrmReviewRepository {
    async fn has_received(&self, customer: UserId, product: ProductId) -> Result<bool, StoreError> {
        let containing = Query::select()
            .column(order_item::Column::OrderId)
            .from(order_item::Entity)
            .and_where(Expr::col(order_item::Column::ProductId).eq(product.into_uuid()))
            .to_owned();
        let delivered = order::Entity::find()
            .filter(order::Column::UserId.eq(customer.into_uuid()))
            .filter(order::Column::Status.eq(OrderStatus::Delivered.as_str()))
            .filter(order::Column::Id.in_subquery(containing))
            .count(self.db.connection())
            .await
            .map_err(store("looking for a delivered order of a product"))?;
        Ok(delivered > 0)
    }

    async fn insert(&self, review: &Review) -> Result<(), ReviewWriteError> {
        let row = review_row(review).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to write a review"))?;
        review::Entity::insert(row.into_active_model())
            .exec_without_returning(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "inserting a review")))?;
        let delta = RatingDelta::between(None, review.counted_rating());
        if !move_rating(&*tx, review.product_id(), delta).await? {
            return Err(ReviewWriteError::MissingParent);
        }
        tx.commit().await.map_err(store("committing a review"))?;
        self.cache.invalidate(&[review.product_id()]).await;
        Ok(())
    }

    async fn find_by_id(&self, id: ReviewId) -> Result<Option<Review>, StoreError> {
        let row = review::Entity::find_by_id(id.into_uuid())
            .one(self.db.connection())
            .await
            .map_err(store("reading a review"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.to_reviews(vec![row]).await?.pop())
    }

    async fn update(
        &self,
        review: &Review,
        expected_version: u64,
        rating: RatingDelta,
    ) -> Result<(), ReviewWriteError> {
        let row = review_row(review).map_err(StoreError::Unexpected)?;
        let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to update a review"))?;
        let result = review::Entity::update_many()
            .col_expr(review::Column::Rating, Expr::value(row.rating))
            .col_expr(review::Column::Title, Expr::value(row.title))
            .col_expr(review::Column::Body, Expr::value(row.body))
            .col_expr(review::Column::Hidden, Expr::value(row.hidden))
            .col_expr(review::Column::HiddenReason, Expr::value(row.hidden_reason))
            .col_expr(review::Column::Version, Expr::value(expected + 1))
            .col_expr(review::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(review::Column::Id.eq(row.id))
            .filter(review::Column::Version.eq(expected))
            .exec(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "updating a review")))?;
        if result.rows_affected != 1 {
            return Err(self.refused(&*tx, review.id()).await);
        }
        if !rating.is_zero() && !move_rating(&*tx, review.product_id(), rating).await? {
            return Err(ReviewWriteError::MissingParent);
        }
        tx.commit().await.map_err(store("committing a review update"))?;
        if !rating.is_zero() {
            self.cache.invalidate(&[review.product_id()]).await;
        }
        Ok(())
    }

    async fn delete(&self, review: &Review) -> Result<(), ReviewWriteError> {
        let version = version_to_db(review.version()).map_err(StoreError::Unexpected)?;
        let tx = self.db.begin_write().await.map_err(store("starting to delete a review"))?;
        let result = review::Entity::delete_many()
            .filter(review::Column::Id.eq(review.id().into_uuid()))
            .filter(review::Column::Version.eq(version))
            .exec(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "deleting a review")))?;
        if result.rows_affected != 1 {
            return Err(self.refused(&*tx, review.id()).await);
        }
        let delta = RatingDelta::between(review.counted_rating(), None);
        if !delta.is_zero() {
            // The product cannot be gone while its review was there (the key cascades).
            move_rating(&*tx, review.product_id(), delta).await?;
        }
        tx.commit().await.map_err(store("committing a review deletion"))?;
        if !delta.is_zero() {
            self.cache.invalidate(&[review.product_id()]).await;
        }
        Ok(())
    }
}

#[async_trait]
impl ReviewQueries for SeaOrmReviewRepository {
    async fn list(
        &self,
        product: ProductId,
        filter: ReviewFilter,
        page: PageRequest,
    ) -> Result<Page<Review>, StoreError> {
        let mut select = review::Entity::find()
            .filter(review::Column::ProductId.eq(product.into_uuid()))
            .filter(review::Column::Hidden.eq(false));
        if let Some(rating) = filter.rating {
            select = select.filter(review::Column::Rating.eq(i16::from(rating.stars())));
        }
        let (key, direction) = match filter.sort {
            ReviewSort::Newest => (None, Direction::Descending),
            ReviewSort::Oldest => (None, Direction::Ascending),
            ReviewSort::RatingDesc => (Some(review::Column::Rating), Direction::Descending),
            ReviewSort::RatingAsc => (Some(review::Column::Rating), Direction::Ascending),
        };
        let rows = keyset::page(select, key, review::Column::Id, direction, &page)
            .all(self.db.connection())
            .await
            .map_err(store("listing reviews"))?;
        let reviews = self.to_reviews(rows).await?;
        Ok(keyset::finish(reviews, &page, |review| {
            let value = match filter.sort {
                ReviewSort::Newest | ReviewSort::Oldest => SortValue::None,
                ReviewSort::RatingDesc | ReviewSort::RatingAsc => {
                    SortValue::Int(review.rating().stars().into())
                }
            };
            Cursor { value, id: review.id().into_uuid() }
        }))
    }
}
