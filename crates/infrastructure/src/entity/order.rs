use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub total_amount: i64,
    pub currency: String,
    pub payment_due_at: DateTimeUtc,
    pub payment_reference: Option<String>,
    pub payment_status: Option<String>,
    pub payment_amount: Option<i64>,
    pub payment_created_at: Option<DateTimeUtc>,
    pub payment_updated_at: Option<DateTimeUtc>,
    /// The attempt a `pending` authorization was asked with.
    pub payment_attempt: Option<i64>,
    /// How many times in a row the provider failed the work the payment owes.
    pub payment_failures: i32,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
