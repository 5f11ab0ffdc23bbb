use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyRecords {
    Table,
    ResponseStatus,
    ResponseLocation,
    ResponseEtag,
}

/// The three columns the replay no longer needs, one per statement (SQLite alters one thing at
/// a time), with how `down` recreates them.
fn columns() -> [ColumnDef; 3] {
    [
        ColumnDef::new(IdempotencyRecords::ResponseStatus).small_integer().null().take(),
        ColumnDef::new(IdempotencyRecords::ResponseLocation).string_len(2048).null().take(),
        ColumnDef::new(IdempotencyRecords::ResponseEtag).string_len(255).null().take(),
    ]
}

/// An idempotent replay is opaque to the application and the store (issue 18, ADR 0023
/// amended): the HTTP layer keeps status, `Location`, `ETag` and body in one JSON envelope in
/// `response_body`. Completed records written before are converted into that envelope, and the
/// status, location and ETag columns are dropped; `down` converts back.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let envelope = match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                "json_build_object('status', response_status, 'location', response_location, \
                 'etag', response_etag, 'body', response_body)::text"
            }
            _ => {
                "json_object('status', response_status, 'location', response_location, \
                 'etag', response_etag, 'body', response_body)"
            }
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "UPDATE idempotency_records SET response_body = {envelope} \
                 WHERE response_status IS NOT NULL AND response_body IS NOT NULL"
            ))
            .await?;
        for column in [
            IdempotencyRecords::ResponseStatus,
            IdempotencyRecords::ResponseLocation,
            IdempotencyRecords::ResponseEtag,
        ] {
            manager
                .alter_table(
                    Table::alter().table(IdempotencyRecords::Table).drop_column(column).to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(IdempotencyRecords::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let unpack = match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                "response_status = (response_body::json ->> 'status')::smallint, \
                 response_location = response_body::json ->> 'location', \
                 response_etag = response_body::json ->> 'etag', \
                 response_body = response_body::json ->> 'body'"
            }
            _ => {
                "response_status = json_extract(response_body, '$.status'), \
                 response_location = json_extract(response_body, '$.location'), \
                 response_etag = json_extract(response_body, '$.etag'), \
                 response_body = json_extract(response_body, '$.body')"
            }
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "UPDATE idempotency_records SET {unpack} WHERE response_body IS NOT NULL"
            ))
            .await?;
        Ok(())
    }
}
