use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OutboxEvents {
    Table,
    Position,
    PublishedAt,
    WebhooksScheduledAt,
}

/// The two claims on the outbox (the relay's unpublished events, webhook delivery's unscheduled
/// ones, each `... IS NULL ORDER BY position LIMIT n`) read partial indexes of the rows they
/// wait for, in position order (issue 22). The indexes they replace, on `(marker, position)`,
/// let PostgreSQL plan a claim as a scan of every waiting row and a sort of them all: measured
/// spilling 14 MB to disk per batch of 50 behind a backlog of 20,000 events (the 10,000 of
/// seeding a catalogue, or a burst of orders). A partial index also holds only the rows still
/// waiting, so marking a row shrinks it instead of adding an entry.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, marker) in MARKERS {
            manager
                .create_index(
                    Index::create()
                        .name(new)
                        .table(OutboxEvents::Table)
                        .col(OutboxEvents::Position)
                        .and_where(Expr::col(marker).is_null())
                        .to_owned(),
                )
                .await?;
            drop_index(manager, old).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, marker) in MARKERS {
            manager
                .create_index(
                    Index::create()
                        .name(old)
                        .table(OutboxEvents::Table)
                        .col(marker)
                        .col(OutboxEvents::Position)
                        .to_owned(),
                )
                .await?;
            drop_index(manager, new).await?;
        }
        Ok(())
    }
}

/// Each index replaced, its partial successor (under a new name: dropping an index and creating
/// one of the same name in this migration failed on SQLite with "index ... already exists"), and
/// the column whose null marks the rows the successor holds.
const MARKERS: [(&str, &str, OutboxEvents); 2] = [
    ("outbox_events_unpublished", "outbox_events_awaiting_relay", OutboxEvents::PublishedAt),
    (
        "outbox_events_webhooks_unscheduled",
        "outbox_events_awaiting_webhooks",
        OutboxEvents::WebhooksScheduledAt,
    ),
];

async fn drop_index(manager: &SchemaManager<'_>, name: &str) -> Result<(), DbErr> {
    manager.drop_index(Index::drop().name(name).table(OutboxEvents::Table).to_owned()).await
}
