use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_amount: i64,
    pub price_currency: String,
    pub stock: i64,
    pub archived: bool,
    /// Lower-cased name and SKU for the `q` search, written by the application.
    pub search_text: String,
    /// How many visible reviews the product has, and the sum of their ratings: written by the
    /// review adapter in the same transaction as each review change.
    pub rating_count: i64,
    pub rating_sum: i64,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// A product as it is read: every column but `search_text`, which only searches use (in their
/// `WHERE`) and no representation shows.
#[derive(Clone, Debug, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "Entity")]
pub(crate) struct Readable {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_amount: i64,
    pub price_currency: String,
    pub stock: i64,
    pub archived: bool,
    pub rating_count: i64,
    pub rating_sum: i64,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
