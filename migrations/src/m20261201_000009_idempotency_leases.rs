use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyRecords {
    Table,
    ResponseLocation,
    ResponseEtag,
    Lease,
    LockedUntil,
}

const INDEX: &str = "idx_idempotency_records_created_at";

/// What an idempotent replay needs beyond status and body (`Location`, `ETag`), and the claim of
/// a request in flight: its lease token and when the claim lapses (ADR 0023). One column per
/// statement: SQLite alters one thing at a time.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new(IdempotencyRecords::ResponseLocation).string_len(2048).null().take(),
            ColumnDef::new(IdempotencyRecords::ResponseEtag).string_len(255).null().take(),
            ColumnDef::new(IdempotencyRecords::Lease).uuid().null().take(),
            ColumnDef::new(IdempotencyRecords::LockedUntil)
                .timestamp_with_time_zone()
                .null()
                .take(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(IdempotencyRecords::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(IdempotencyRecords::Table)
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(IdempotencyRecords::Table).to_owned())
            .await?;
        for column in [
            IdempotencyRecords::ResponseLocation,
            IdempotencyRecords::ResponseEtag,
            IdempotencyRecords::Lease,
            IdempotencyRecords::LockedUntil,
        ] {
            manager
                .alter_table(
                    Table::alter().table(IdempotencyRecords::Table).drop_column(column).to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
