use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    PaymentFailures,
}

/// How many times in a row the provider failed the work a payment owes (issue 21, ADR 0026), so
/// that one it keeps failing is surfaced (`payment.needs_attention`, a gauge and an alert) rather
/// than retried silently.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(
                        ColumnDef::new(Orders::PaymentFailures)
                            .integer()
                            .not_null()
                            .default(0)
                            .check(Expr::col(Orders::PaymentFailures).gte(0)),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Orders::Table).drop_column(Orders::PaymentFailures).to_owned(),
            )
            .await
    }
}
