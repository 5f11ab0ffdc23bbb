use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    PaymentAttempt,
}

/// The attempt a `pending` authorization was asked with (issue 21): recorded before the provider
/// is asked, so that an authorization whose answer is lost is asked for again with the same
/// idempotent request, by the customer's retry or by reconciliation, instead of being forgotten.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(
                        ColumnDef::new(Orders::PaymentAttempt)
                            .big_integer()
                            .null()
                            .check(Expr::col(Orders::PaymentAttempt).gte(0)),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A payment still pending has no status the previous schema knows: it was never
        // answered, so it is recorded as failed (nothing known to be held).
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE orders SET payment_status = 'failed' WHERE payment_status = 'pending'",
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Orders::Table).drop_column(Orders::PaymentAttempt).to_owned(),
            )
            .await
    }
}
