//! Products in SeaORM.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Cursor, Page, PageRequest, SortValue},
    ports::{ProductFilter, ProductQueries, ProductRepository, ProductSort, ProductWriteError},
};
use orderly_domain::{Product, ProductId};
use sea_orm::{
    ColumnTrait as _, EntityTrait as _, IntoActiveModel as _, QueryFilter as _,
    sea_query::{Expr, ExprTrait as _, LikeExpr},
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{
    Database,
    error::{Failure, classify, shared, store},
    groups::{self, Groups},
    keyset::{self, Direction},
    mapping::{product_row, version_to_db},
    outbox::Outbox,
};
use crate::{entity::product, services::ProductCache};

/// [`ProductRepository`] and [`ProductQueries`] on SeaORM.
#[derive(Debug, Clone)]
pub struct SeaOrmProductRepository {
    db: Database,
    cache: ProductCache,
    /// [`ProductQueries::find`]'s reads, grouped (ADR 0044).
    reads: Arc<Groups<Read>>,
}

/// How many grouped reads of products by id run at once (ADR 0044).
const READS_AT_ONCE: usize = 2;

/// The sizes a grouped read asks for: its ids are padded to the next one by repeating the last,
/// so that each connection keeps at most this many such statements prepared. The largest is the
/// most products one read asks for.
const READ_SIZES: [usize; 4] = [1, 4, 16, 64];

/// A read of one product for display, waiting for its group.
struct Read {
    id: ProductId,
    answer: oneshot::Sender<Result<Option<Product>, StoreError>>,
}

impl SeaOrmProductRepository {
    #[must_use]
    pub fn new(db: Database) -> Self {
        let most = READ_SIZES[READ_SIZES.len() - 1];
        let sizes = groups::sizes(
            "orderly_product_read_group_size",
            "Reads of one product by id answered by one statement (grouped reads, ADR 0044)",
            most,
        );
        let reads = Arc::new(Groups::new(READS_AT_ONCE, most, sizes));
        Self { db, cache: ProductCache::disabled(), reads }
    }

    /// Registers `orderly_product_read_group_size` in `registry`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.reads.sizes().clone()))
    }

    /// Drops a product's entry in `cache` after every update of it (ADR 0025), and outdates the
    /// cached list pages after every insert or update (ADR 0043).
    #[must_use]
    pub fn invalidating(mut self, cache: ProductCache) -> Self {
        self.cache = cache;
        self
    }
}

/// A refused insert or update of a product. Products are archived, never deleted, and have no
/// foreign key: only their SKU can collide.
fn write_error(failure: Failure) -> ProductWriteError {
    match failure {
        Failure::UniqueViolation => ProductWriteError::SkuTaken,
        Failure::ForeignKeyViolation => ProductWriteError::Store(StoreError::Unexpected(
            anyhow::anyhow!("a foreign key refused a product write, yet products refer to nothing"),
        )),
        Failure::Store(store) => ProductWriteError::Store(store),
    }
}

pub(crate) fn to_product(row: product::Readable) -> Result<Product, StoreError> {
    Product::try_from(row).context("reading a stored product").map_err(StoreError::Unexpected)
}

#[async_trait]
impl ProductRepository for SeaOrmProductRepository {
    async fn insert(&self, product: &Product) -> Result<(), ProductWriteError> {
        let row = product_row(product).map_err(StoreError::Unexpected)?;
        let mut outbox = Outbox::default();
        outbox.product(self.db.event_data().as_ref(), product, 0)?;
        let tx = self.db.begin_write().await.map_err(store("starting to insert a product"))?;
        product::Entity::insert(row.into_active_model())
            .exec_without_returning(&*tx)
            .await
            .map_err(|error| write_error(classify(error, "inserting a product")))?;
        outbox.write(&tx).await?;
        let committed = tx.commit().await.map_err(store("committing a product"));
        // A new product changes the lists it belongs in: cached pages must not hide it (ADR 0043).
        self.cache.invalidate(&[product.id()]).await;
        Ok(committed?)
    }

    async fn find_by_id(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        let row = product::Entity::find_by_id(id.into_uuid())
            .into_partial_model::<product::Readable>()
            .one(self.db.connection())
            .await
            .map_err(store("reading a product"))?;
        row.map(to_product).transpose()
    }

    async fn find_many(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        select_many(&self.db, ids).await
    }

    async fn update(
        &self,
        product: &Product,
        expected_version: u64,
    ) -> Result<(), ProductWriteError> {
        let row = product_row(product).map_err(StoreError::Unexpected)?;
        let expected = version_to_db(expected_version).map_err(StoreError::Unexpected)?;
        // One save is one version step (`Product::touch`): a product not one step past
        // `expected` has no change of that version to write, or was saved already (its events
        // with it). Refused as the stored row says: gone, moved on, or a caller's mistake.
        if product.version() != expected_version.saturating_add(1) {
            let stored = product::Entity::find_by_id(row.id)
                .one(self.db.connection())
                .await
                .map_err(store("checking a product before an update"))?;
            return Err(match stored {
                None => ProductWriteError::NotFound,
                Some(stored) if stored.version != expected => ProductWriteError::Stale,
                Some(_) => ProductWriteError::Store(StoreError::Unexpected(anyhow::anyhow!(
                    "product {} at version {} saved as the change of version {expected_version}",
                    product.id(),
                    product.version()
                ))),
            });
        }
        let mut outbox = Outbox::default();
        outbox.product(self.db.event_data().as_ref(), product, expected_version)?;
        let tx = self.db.begin_write().await.map_err(store("starting to update a product"))?;
        let result = product::Entity::update_many()
            .col_expr(product::Column::Sku, Expr::value(row.sku))
            .col_expr(product::Column::Name, Expr::value(row.name))
            .col_expr(product::Column::Description, Expr::value(row.description))
            .col_expr(product::Column::PriceAmount, Expr::value(row.price_amount))
            .col_expr(product::Column::PriceCurrency, Expr::value(row.price_currency))
            .col_expr(product::Column::Stock, Expr::value(row.stock))
            .col_expr(product::Column::Archived, Expr::value(row.archived))
            .col_expr(product::Column::SearchText, Expr::value(row.search_text))
            .col_expr(product::Column::Version, Expr::value(expected + 1))
            .col_expr(product::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(product::Column::Id.eq(row.id))
            .filter(product::Column::Version.eq(expected))
            .exec(&*tx)
            .await;
        let result = result.map_err(|error| write_error(classify(error, "updating a product")));
        if let Ok(result) = &result
            && result.rows_affected == 1
        {
            let written = match outbox.write(&tx).await {
                Ok(()) => tx.commit().await.map_err(store("committing a product")),
                Err(error) => Err(error),
            };
            self.cache.invalidate(&[product.id()]).await;
            return written.map_err(ProductWriteError::Store);
        }
        drop(tx);
        self.cache.invalidate(&[product.id()]).await;
        result?;
        let exists = product::Entity::find_by_id(row.id)
            .one(self.db.connection())
            .await
            .map_err(store("checking a product after a refused update"))?;
        Err(if exists.is_some() { ProductWriteError::Stale } else { ProductWriteError::NotFound })
    }
}

/// `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(q: &str) -> String {
    let escaped: String = q
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            other => vec![other],
        })
        .collect();
    format!("%{escaped}%")
}

/// The products of `ids` that exist, in no particular order.
async fn select_many(db: &Database, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = product::Entity::find()
        .filter(product::Column::Id.is_in(ids.iter().map(|id| id.into_uuid())))
        .into_partial_model::<product::Readable>()
        .all(db.connection())
        .await
        .map_err(store("reading products"))?;
    rows.into_iter().map(to_product).collect()
}

/// Reads the products `group` asks for in one statement and answers each read.
async fn read_group(db: Database, group: Vec<Read>, _slot: OwnedSemaphorePermit) {
    let mut ids: Vec<ProductId> = group.iter().map(|read| read.id).collect();
    ids.sort_unstable_by_key(|id| id.into_uuid());
    ids.dedup();
    if let (Some(&last), Some(&size)) =
        (ids.last(), READ_SIZES.iter().find(|size| **size >= ids.len()))
    {
        ids.resize(size, last);
    }
    match select_many(&db, &ids).await {
        Ok(products) => {
            let found: HashMap<ProductId, Product> =
                products.into_iter().map(|product| (product.id(), product)).collect();
            for read in group {
                // The caller may have gone away.
                let _ = read.answer.send(Ok(found.get(&read.id).cloned()));
            }
        }
        Err(error) => {
            for read in group {
                let _ = read.answer.send(Err(shared(&error)));
            }
        }
    }
}

#[async_trait]
impl ProductQueries for SeaOrmProductRepository {
    /// Reads that come while others are running wait and are read together, in one statement
    /// (ADR 0044): under load, one round trip serves many; alone, a read goes at once.
    async fn find(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        let (answer, answered) = oneshot::channel();
        let start = |group, slot| read_group(self.db.clone(), group, slot);
        self.reads.join(Read { id, answer }, answered, start).await.unwrap_or_else(|| {
            Err(StoreError::Unexpected(anyhow::anyhow!(
                "the read of this product stopped before it ended"
            )))
        })
    }

    async fn list(
        &self,
        filter: ProductFilter,
        page: PageRequest,
    ) -> Result<Page<Product>, StoreError> {
        let mut select = product::Entity::find();
        if !filter.include_archived {
            select = select.filter(product::Column::Archived.eq(false));
        }
        if let Some(q) = &filter.q {
            select = select.filter(
                Expr::col(product::Column::SearchText)
                    .like(LikeExpr::new(contains_pattern(q)).escape('\\')),
            );
        }
        let (key, direction) = match filter.sort {
            ProductSort::CreatedAsc => (None, Direction::Ascending),
            ProductSort::CreatedDesc => (None, Direction::Descending),
            ProductSort::NameAsc => (Some(product::Column::Name), Direction::Ascending),
            ProductSort::NameDesc => (Some(product::Column::Name), Direction::Descending),
            ProductSort::PriceAsc => (Some(product::Column::PriceAmount), Direction::Ascending),
            ProductSort::PriceDesc => (Some(product::Column::PriceAmount), Direction::Descending),
        };
        let select = keyset::page(select, key, product::Column::Id, direction, &page);
        let rows = select
            .into_partial_model::<product::Readable>()
            .all(self.db.connection())
            .await
            .map_err(store("listing products"))?;
        let products = rows.into_iter().map(to_product).collect::<Result<Vec<_>, _>>()?;
        Ok(keyset::finish(products, &page, |product| {
            let value = match filter.sort {
                ProductSort::CreatedAsc | ProductSort::CreatedDesc => SortValue::None,
                ProductSort::NameAsc | ProductSort::NameDesc => {
                    SortValue::Text(product.name().as_str().to_owned())
                }
                ProductSort::PriceAsc | ProductSort::PriceDesc => {
                    SortValue::Int(product.price().amount_minor())
                }
            };
            Cursor { value, id: product.id().into_uuid() }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_violation_is_a_taken_sku() {
        let error = write_error(Failure::UniqueViolation);
        assert!(matches!(error, ProductWriteError::SkuTaken), "{error:?}");
    }

    #[test]
    fn a_foreign_key_violation_is_unexpected_as_products_refer_to_nothing() {
        let error = write_error(Failure::ForeignKeyViolation);
        assert!(matches!(error, ProductWriteError::Store(StoreError::Unexpected(_))), "{error:?}");
    }

    #[test]
    fn like_wildcards_in_the_query_are_taken_literally() {
        assert_eq!(contains_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("Keyboard"), "%keyboard%");
    }
}
