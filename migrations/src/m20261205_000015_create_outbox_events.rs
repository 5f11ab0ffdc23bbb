use sea_orm_migration::prelude::*;

use crate::columns::{timestamp, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OutboxEvents {
    Table,
    Position,
    Id,
    EventType,
    Aggregate,
    AggregateId,
    AggregateVersion,
    OccurredAt,
    Data,
    PublishedAt,
}

/// The transactional outbox (issue 20): every state change writes its events here in its own
/// transaction, and relays publish them afterwards. `position` is the order events were written
/// in (one aggregate's writes are serialized by its row's lock, so its events are in the order
/// they happened); `id` is the event's id (UUIDv7), by which consumers deduplicate;
/// `published_at` stays null until a relay has the broker's acknowledgement.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxEvents::Table)
                    .col(
                        ColumnDef::new(OutboxEvents::Position)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid(OutboxEvents::Id).unique_key())
                    .col(ColumnDef::new(OutboxEvents::EventType).string_len(100).not_null())
                    .col(ColumnDef::new(OutboxEvents::Aggregate).string_len(20).not_null())
                    .col(uuid(OutboxEvents::AggregateId))
                    .col(
                        ColumnDef::new(OutboxEvents::AggregateVersion)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(OutboxEvents::AggregateVersion).gte(1)),
                    )
                    .col(timestamp(OutboxEvents::OccurredAt))
                    .col(ColumnDef::new(OutboxEvents::Data).text().not_null())
                    .col(
                        ColumnDef::new(OutboxEvents::PublishedAt).timestamp_with_time_zone().null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The relay's claim: unpublished events in position order.
        manager
            .create_index(
                Index::create()
                    .name("outbox_events_unpublished")
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::PublishedAt)
                    .col(OutboxEvents::Position)
                    .to_owned(),
            )
            .await?;
        // One aggregate's events, for "is an earlier one still unpublished?".
        manager
            .create_index(
                Index::create()
                    .name("outbox_events_aggregate")
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::AggregateId)
                    .col(OutboxEvents::Position)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(OutboxEvents::Table).to_owned()).await
    }
}
