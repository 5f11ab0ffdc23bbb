use sea_orm_migration::prelude::*;

use crate::{
    columns::{timestamp, uuid},
    m20261124_000001_create_users::Users,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyRecords {
    Table,
    UserId,
    IdempotencyKey,
    RequestFingerprint,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
    CompletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .col(uuid(IdempotencyRecords::UserId))
                    .col(
                        ColumnDef::new(IdempotencyRecords::IdempotencyKey)
                            .string_len(255)
                            .not_null(),
                    )
                    // Hash of method, path and body: the same key with another request is a 422.
                    .col(
                        ColumnDef::new(IdempotencyRecords::RequestFingerprint)
                            .char_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(IdempotencyRecords::ResponseStatus).small_integer().null())
                    .col(ColumnDef::new(IdempotencyRecords::ResponseBody).text().null())
                    .col(timestamp(IdempotencyRecords::CreatedAt))
                    .col(
                        ColumnDef::new(IdempotencyRecords::CompletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IdempotencyRecords::UserId)
                            .col(IdempotencyRecords::IdempotencyKey),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_idempotency_records_user")
                            .from(IdempotencyRecords::Table, IdempotencyRecords::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyRecords::Table).to_owned()).await
    }
}
