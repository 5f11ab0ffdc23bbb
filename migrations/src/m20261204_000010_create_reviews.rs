use sea_orm_migration::prelude::*;

use crate::{
    columns::{timestamp, uuid, uuid_pk, version},
    m20261124_000001_create_users::Users,
    m20261124_000002_create_products::Products,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Reviews {
    Table,
    Id,
    ProductId,
    AuthorId,
    Rating,
    Title,
    Body,
    VerifiedPurchase,
    Hidden,
    HiddenReason,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Rating {
    RatingCount,
    RatingSum,
}

/// Product reviews, one per product and author, and each product's rating (the count and sum of
/// its visible reviews' ratings, kept in the same transaction as every review change). A deleted
/// author's reviews stay, with no author (`ON DELETE SET NULL`): they never block the deletion.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reviews::Table)
                    .col(uuid_pk(Reviews::Id))
                    .col(uuid(Reviews::ProductId))
                    .col(ColumnDef::new(Reviews::AuthorId).uuid().null())
                    .col(
                        ColumnDef::new(Reviews::Rating)
                            .small_integer()
                            .not_null()
                            .check(Expr::col(Reviews::Rating).between(1, 5)),
                    )
                    .col(ColumnDef::new(Reviews::Title).string_len(120).not_null())
                    .col(ColumnDef::new(Reviews::Body).text().not_null())
                    .col(ColumnDef::new(Reviews::VerifiedPurchase).boolean().not_null())
                    .col(ColumnDef::new(Reviews::Hidden).boolean().not_null().default(false))
                    .col(ColumnDef::new(Reviews::HiddenReason).text().null())
                    .col(version(Reviews::Version))
                    .col(timestamp(Reviews::CreatedAt))
                    .col(timestamp(Reviews::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reviews_product")
                            .from(Reviews::Table, Reviews::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reviews_author")
                            .from(Reviews::Table, Reviews::AuthorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // One review per product and author; also the author's reviews.
        manager
            .create_index(
                Index::create()
                    .name("uq_reviews_author_product")
                    .table(Reviews::Table)
                    .col(Reviews::AuthorId)
                    .col(Reviews::ProductId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A product's visible reviews, newest first or by rating.
        for (name, columns) in [
            ("idx_reviews_product_id", vec![Reviews::ProductId, Reviews::Hidden, Reviews::Id]),
            (
                "idx_reviews_product_rating",
                vec![Reviews::ProductId, Reviews::Hidden, Reviews::Rating, Reviews::Id],
            ),
        ] {
            let mut index = Index::create().name(name).table(Reviews::Table).to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        for column in [Rating::RatingCount, Rating::RatingSum] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Products::Table)
                        .add_column(
                            ColumnDef::new(column)
                                .big_integer()
                                .not_null()
                                .default(0)
                                .check(Expr::col(column).gte(0)),
                        )
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Rating::RatingSum, Rating::RatingCount] {
            manager
                .alter_table(Table::alter().table(Products::Table).drop_column(column).to_owned())
                .await?;
        }
        manager.drop_table(Table::drop().table(Reviews::Table).to_owned()).await
    }
}
