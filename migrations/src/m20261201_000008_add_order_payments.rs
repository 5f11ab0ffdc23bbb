use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    PaymentStatus,
    PaymentAmount,
    PaymentCreatedAt,
    PaymentUpdatedAt,
    RefundRequired,
}

const INDEX: &str = "idx_orders_payment_status";

/// The order's payment (ADR 0024): its status, amount and times beside the provider reference
/// the orders table already has. `refund_required` becomes the payment status `refund_pending`.
/// One column per statement: SQLite alters one thing at a time.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new(Orders::PaymentStatus).string_len(20).null().take(),
            ColumnDef::new(Orders::PaymentAmount).big_integer().null().take(),
            ColumnDef::new(Orders::PaymentCreatedAt).timestamp_with_time_zone().null().take(),
            ColumnDef::new(Orders::PaymentUpdatedAt).timestamp_with_time_zone().null().take(),
        ];
        for mut column in columns {
            manager
                .alter_table(Table::alter().table(Orders::Table).add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE orders SET
                    payment_status = CASE
                        WHEN refund_required THEN 'refund_pending'
                        WHEN status IN ('paid', 'shipped', 'delivered') THEN 'captured'
                        ELSE 'authorized' END,
                    payment_amount = total_amount,
                    payment_created_at = updated_at,
                    payment_updated_at = updated_at
                 WHERE payment_reference IS NOT NULL",
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Orders::Table).drop_column(Orders::RefundRequired).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Orders::Table)
                    .col(Orders::PaymentStatus)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Orders::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(
                        ColumnDef::new(Orders::RefundRequired).boolean().not_null().default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE orders SET refund_required = TRUE WHERE payment_status = 'refund_pending'",
            )
            .await?;
        for column in [
            Orders::PaymentStatus,
            Orders::PaymentAmount,
            Orders::PaymentCreatedAt,
            Orders::PaymentUpdatedAt,
        ] {
            manager
                .alter_table(Table::alter().table(Orders::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
