use sea_orm_migration::prelude::*;

use crate::{
    columns::{currency, money, timestamp, uuid, uuid_pk, version},
    m20261124_000001_create_users::Users,
    m20261124_000002_create_products::Products,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    UserId,
    Status,
    TotalAmount,
    Currency,
    PaymentDueAt,
    PaymentReference,
    RefundRequired,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderItems {
    Table,
    OrderId,
    ProductId,
    Sku,
    Name,
    UnitPriceAmount,
    Currency,
    Quantity,
    LineTotalAmount,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderTransitions {
    Table,
    Id,
    OrderId,
    FromStatus,
    ToStatus,
    Action,
    ActorId,
    Reason,
    RequestId,
    At,
}

const STATUSES: [&str; 6] =
    ["pending_payment", "paid", "shipped", "delivered", "cancelled", "expired"];
const ACTIONS: [&str; 6] = ["place", "pay", "cancel", "ship", "deliver", "expire"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(uuid_pk(Orders::Id))
                    .col(uuid(Orders::UserId))
                    .col(
                        ColumnDef::new(Orders::Status)
                            .string_len(32)
                            .not_null()
                            .check(Expr::col(Orders::Status).is_in(STATUSES)),
                    )
                    .col(money(Orders::TotalAmount))
                    .col(currency(Orders::Currency))
                    .col(timestamp(Orders::PaymentDueAt))
                    .col(ColumnDef::new(Orders::PaymentReference).string_len(255).null())
                    .col(ColumnDef::new(Orders::RefundRequired).boolean().not_null().default(false))
                    .col(version(Orders::Version))
                    .col(timestamp(Orders::CreatedAt))
                    .col(timestamp(Orders::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_user")
                            .from(Orders::Table, Orders::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // A customer's orders, newest first; an admin's filter by status; the expiry job's scan.
        let indexes = [
            ("idx_orders_user_id_id", [Orders::UserId, Orders::Id]),
            ("idx_orders_status_id", [Orders::Status, Orders::Id]),
            ("idx_orders_status_payment_due_at", [Orders::Status, Orders::PaymentDueAt]),
        ];
        for (name, [first, second]) in indexes {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Orders::Table)
                        .col(first)
                        .col(second)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .col(uuid(OrderItems::OrderId))
                    .col(uuid(OrderItems::ProductId))
                    .col(ColumnDef::new(OrderItems::Sku).string_len(64).not_null())
                    .col(ColumnDef::new(OrderItems::Name).string_len(200).not_null())
                    .col(money(OrderItems::UnitPriceAmount))
                    .col(currency(OrderItems::Currency))
                    .col(
                        ColumnDef::new(OrderItems::Quantity)
                            .integer()
                            .not_null()
                            .check(Expr::col(OrderItems::Quantity).gt(0)),
                    )
                    .col(money(OrderItems::LineTotalAmount))
                    .primary_key(
                        Index::create().col(OrderItems::OrderId).col(OrderItems::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_order")
                            .from(OrderItems::Table, OrderItems::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_product")
                            .from(OrderItems::Table, OrderItems::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_order_items_product_id")
                    .table(OrderItems::Table)
                    .col(OrderItems::ProductId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderTransitions::Table)
                    .col(
                        ColumnDef::new(OrderTransitions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid(OrderTransitions::OrderId))
                    .col(
                        ColumnDef::new(OrderTransitions::FromStatus)
                            .string_len(32)
                            .null()
                            .check(Expr::col(OrderTransitions::FromStatus).is_in(STATUSES)),
                    )
                    .col(
                        ColumnDef::new(OrderTransitions::ToStatus)
                            .string_len(32)
                            .not_null()
                            .check(Expr::col(OrderTransitions::ToStatus).is_in(STATUSES)),
                    )
                    .col(
                        ColumnDef::new(OrderTransitions::Action)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(OrderTransitions::Action).is_in(ACTIONS)),
                    )
                    // The actor is kept as a plain value: the audit log outlives user accounts.
                    .col(ColumnDef::new(OrderTransitions::ActorId).uuid().null())
                    .col(ColumnDef::new(OrderTransitions::Reason).text().null())
                    .col(ColumnDef::new(OrderTransitions::RequestId).string_len(128).null())
                    .col(timestamp(OrderTransitions::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_transitions_order")
                            .from(OrderTransitions::Table, OrderTransitions::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_order_transitions_order_id_id")
                    .table(OrderTransitions::Table)
                    .col(OrderTransitions::OrderId)
                    .col(OrderTransitions::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderTransitions::Table.into_iden(),
            OrderItems::Table.into_iden(),
            Orders::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
