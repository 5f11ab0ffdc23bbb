use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub position: i64,
    pub id: Uuid,
    pub event_type: String,
    pub aggregate: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub occurred_at: DateTimeUtc,
    /// The resource's representation as the write left it (JSON): at `aggregate_version`, or
    /// later when one write made several versions (ADR 0032).
    pub data: String,
    pub published_at: Option<DateTimeUtc>,
    /// When webhook delivery scheduled it (null until then).
    pub webhooks_scheduled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
