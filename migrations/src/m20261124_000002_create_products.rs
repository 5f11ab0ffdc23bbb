use sea_orm_migration::prelude::*;

use crate::columns::{currency, money, timestamp, uuid_pk, version};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Products {
    Table,
    Id,
    Sku,
    Name,
    Description,
    PriceAmount,
    PriceCurrency,
    Stock,
    Archived,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(uuid_pk(Products::Id))
                    .col(ColumnDef::new(Products::Sku).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Products::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Products::Description).text().null())
                    .col(money(Products::PriceAmount))
                    .col(currency(Products::PriceCurrency))
                    .col(
                        ColumnDef::new(Products::Stock)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(Products::Stock).gte(0)),
                    )
                    .col(ColumnDef::new(Products::Archived).boolean().not_null().default(false))
                    .col(version(Products::Version))
                    .col(timestamp(Products::CreatedAt))
                    .col(timestamp(Products::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Keyset pagination for the name and price sort orders (id order is the primary key).
        for (name, column) in [
            ("idx_products_name_id", Products::Name),
            ("idx_products_price_id", Products::PriceAmount),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Products::Table)
                        .col(column)
                        .col(Products::Id)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Products::Table).to_owned()).await
    }
}
