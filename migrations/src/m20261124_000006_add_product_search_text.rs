use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    SearchText,
}

/// The product search matches a lower-cased copy of name and SKU that the application writes
/// (Unicode-aware), because SQLite's `lower()` only folds ASCII letters.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(ColumnDef::new(Products::SearchText).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        // Rows written before this migration: the database's own lower() is the best it can do;
        // every later write stores the application's Unicode lower-casing.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE products SET search_text = lower(name) || ' ' || lower(sku)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Products::Table).drop_column(Products::SearchText).to_owned(),
            )
            .await
    }
}
