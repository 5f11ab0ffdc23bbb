//! Conversions between SeaORM models and domain aggregates. A row that does not make a valid
//! aggregate is corrupt data: an error, never a silently "fixed" value.

use anyhow::{Context as _, anyhow};
use orderly_domain::{
    Currency, Email, Money, Order, OrderAction, OrderId, OrderItem, OrderParts, OrderStatus,
    OrderTransition, PasswordHash, Payment, PaymentParts, Product, ProductDescription, ProductId,
    ProductName, ProductParts, ProductRating, ProductSnapshot, Quantity, Reason, Sku, User, UserId,
    UserName, UserParts,
};

use orderly_domain::time::Timestamp;

use crate::entity::{order, order_item, order_transition, product, user};

pub(crate) fn version_to_db(version: u64) -> anyhow::Result<i64> {
    i64::try_from(version).context("version out of range")
}

pub(crate) fn version_from_db(version: i64) -> anyhow::Result<u64> {
    u64::try_from(version).context("negative version")
}

fn money(amount: i64, currency: &str) -> anyhow::Result<Money> {
    let currency = Currency::parse(currency)?;
    Ok(Money::new(amount, currency)?)
}

impl TryFrom<user::Model> for User {
    type Error = anyhow::Error;

    fn try_from(row: user::Model) -> anyhow::Result<Self> {
        Ok(User::restore(UserParts {
            id: UserId::from_uuid(row.id),
            email: Email::parse(&row.email)?,
            name: UserName::parse(&row.name)?,
            role: row.role.parse()?,
            password_hash: PasswordHash::new(row.password_hash),
            session_epoch: u64::try_from(row.session_epoch).context("negative session epoch")?,
            version: version_from_db(row.version)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }))
    }
}

pub(crate) fn user_row(user: &User) -> anyhow::Result<user::Model> {
    Ok(user::Model {
        id: user.id().into_uuid(),
        email: user.email().as_str().to_owned(),
        name: user.name().as_str().to_owned(),
        role: user.role().as_str().to_owned(),
        password_hash: user.password_hash().as_str().to_owned(),
        session_epoch: i64::try_from(user.session_epoch()).context("session epoch out of range")?,
        version: version_to_db(user.version())?,
        created_at: user.created_at(),
        updated_at: user.updated_at(),
    })
}

impl TryFrom<product::Readable> for Product {
    type Error = anyhow::Error;

    fn try_from(row: product::Readable) -> anyhow::Result<Self> {
        Ok(Product::restore(ProductParts {
            id: ProductId::from_uuid(row.id),
            sku: Sku::parse(&row.sku)?,
            name: ProductName::parse(&row.name)?,
            description: row.description.as_deref().map(ProductDescription::parse).transpose()?,
            price: money(row.price_amount, &row.price_currency)?,
            stock: u32::try_from(row.stock).context("stock out of range")?,
            archived: row.archived,
            rating: ProductRating::new(
                u32::try_from(row.rating_count).context("rating count out of range")?,
                u64::try_from(row.rating_sum).context("rating sum out of range")?,
            ),
            version: version_from_db(row.version)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }))
    }
}

pub(crate) fn product_row(product: &Product) -> anyhow::Result<product::Model> {
    Ok(product::Model {
        id: product.id().into_uuid(),
        sku: product.sku().as_str().to_owned(),
        name: product.name().as_str().to_owned(),
        description: product.description().map(|d| d.as_str().to_owned()),
        price_amount: product.price().amount_minor(),
        price_currency: product.price().currency().code().to_owned(),
        stock: i64::from(product.stock()),
        archived: product.is_archived(),
        search_text: search_text(product),
        rating_count: i64::from(product.rating().count()),
        rating_sum: i64::try_from(product.rating().sum()).context("rating sum out of range")?,
        version: version_to_db(product.version())?,
        created_at: product.created_at(),
        updated_at: product.updated_at(),
    })
}

/// What the `q` search matches: name and SKU, lower-cased with Unicode rules in Rust, so that
/// both engines search alike (SQLite's `lower()` only folds ASCII).
pub(crate) fn search_text(product: &Product) -> String {
    format!("{} {}", product.name().as_str().to_lowercase(), product.sku().as_str().to_lowercase())
}

impl TryFrom<order_item::Model> for OrderItem {
    type Error = anyhow::Error;

    fn try_from(row: order_item::Model) -> anyhow::Result<Self> {
        let snapshot = ProductSnapshot {
            product_id: ProductId::from_uuid(row.product_id),
            sku: Sku::parse(&row.sku)?,
            name: ProductName::parse(&row.name)?,
            unit_price: money(row.unit_price_amount, &row.currency)?,
        };
        let quantity = Quantity::new(u32::try_from(row.quantity).context("negative quantity")?)?;
        let item = OrderItem::new(snapshot, quantity)?;
        if item.line_total().amount_minor() != row.line_total_amount {
            return Err(anyhow!("stored line total disagrees with price x quantity"));
        }
        Ok(item)
    }
}

pub(crate) fn item_rows(order: &Order) -> Vec<order_item::Model> {
    order
        .items()
        .iter()
        .map(|item| order_item::Model {
            order_id: order.id().into_uuid(),
            product_id: item.product_id().into_uuid(),
            sku: item.sku().as_str().to_owned(),
            name: item.name().as_str().to_owned(),
            unit_price_amount: item.unit_price().amount_minor(),
            currency: item.unit_price().currency().code().to_owned(),
            quantity: i32::try_from(item.quantity().get()).unwrap_or(i32::MAX),
            line_total_amount: item.line_total().amount_minor(),
        })
        .collect()
}

/// Rebuilds an order from its row and its item rows.
pub(crate) fn order_from_rows(
    row: order::Model,
    items: Vec<order_item::Model>,
) -> anyhow::Result<Order> {
    let items = items.into_iter().map(OrderItem::try_from).collect::<anyhow::Result<Vec<_>>>()?;
    let payment = payment_from_row(&row)?;
    let order = Order::restore(OrderParts {
        id: OrderId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        status: row.status.parse()?,
        items,
        payment_due_at: row.payment_due_at,
        payment,
        version: version_from_db(row.version)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })?;
    if order.total().amount_minor() != row.total_amount {
        return Err(anyhow!("stored order total disagrees with its items"));
    }
    Ok(order)
}

/// The payment columns of an order row: all set or none (status, amount and times).
fn payment_from_row(row: &order::Model) -> anyhow::Result<Option<Payment>> {
    let (Some(status), Some(amount), Some(created_at), Some(updated_at)) = (
        row.payment_status.as_deref(),
        row.payment_amount,
        row.payment_created_at,
        row.payment_updated_at,
    ) else {
        if row.payment_status.is_some() {
            return Err(anyhow!("a stored payment is missing its amount or times"));
        }
        return Ok(None);
    };
    Ok(Some(Payment::restore(PaymentParts {
        status: status.parse()?,
        reference: row.payment_reference.clone(),
        attempt: row
            .payment_attempt
            .map(|attempt| u64::try_from(attempt).context("negative payment attempt"))
            .transpose()?,
        failures: u32::try_from(row.payment_failures).context("negative payment failures")?,
        amount: money(amount, &row.currency)?,
        created_at,
        updated_at,
    })))
}

/// The payment columns to write for `order`, in [`order::Model`]'s order.
pub(crate) struct PaymentColumns {
    pub(crate) reference: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) amount: Option<i64>,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) updated_at: Option<Timestamp>,
    pub(crate) attempt: Option<i64>,
    pub(crate) failures: i32,
}

pub(crate) fn payment_columns(order: &Order) -> PaymentColumns {
    let payment = order.payment();
    PaymentColumns {
        reference: payment.and_then(Payment::reference).map(str::to_owned),
        status: payment.map(|payment| payment.status().as_str().to_owned()),
        amount: payment.map(|payment| payment.amount().amount_minor()),
        created_at: payment.map(Payment::created_at),
        updated_at: payment.map(Payment::updated_at),
        attempt: payment.and_then(Payment::attempt).and_then(|attempt| i64::try_from(attempt).ok()),
        failures: payment
            .map_or(0, |payment| i32::try_from(payment.failures()).unwrap_or(i32::MAX)),
    }
}

pub(crate) fn order_row(order: &Order) -> anyhow::Result<order::Model> {
    let payment = payment_columns(order);
    Ok(order::Model {
        id: order.id().into_uuid(),
        user_id: order.user_id().into_uuid(),
        status: order.status().as_str().to_owned(),
        total_amount: order.total().amount_minor(),
        currency: order.total().currency().code().to_owned(),
        payment_due_at: order.payment_due_at(),
        payment_reference: payment.reference,
        payment_status: payment.status,
        payment_amount: payment.amount,
        payment_created_at: payment.created_at,
        payment_updated_at: payment.updated_at,
        payment_attempt: payment.attempt,
        payment_failures: payment.failures,
        version: version_to_db(order.version())?,
        created_at: order.created_at(),
        updated_at: order.updated_at(),
    })
}

impl TryFrom<order_transition::Model> for OrderTransition {
    type Error = anyhow::Error;

    fn try_from(row: order_transition::Model) -> anyhow::Result<Self> {
        Ok(OrderTransition {
            order_id: OrderId::from_uuid(row.order_id),
            from: row.from_status.as_deref().map(str::parse::<OrderStatus>).transpose()?,
            to: row.to_status.parse()?,
            action: row.action.parse::<OrderAction>()?,
            actor_id: row.actor_id.map(UserId::from_uuid),
            reason: row.reason.as_deref().map(Reason::parse).transpose()?,
            at: row.at,
            request_id: row.request_id,
        })
    }
}

pub(crate) fn transition_row(entry: &OrderTransition) -> order_transition::ActiveModel {
    use sea_orm::{ActiveValue::NotSet, Set};
    order_transition::ActiveModel {
        id: NotSet,
        order_id: Set(entry.order_id.into_uuid()),
        from_status: Set(entry.from.map(|status| status.as_str().to_owned())),
        to_status: Set(entry.to.as_str().to_owned()),
        action: Set(entry.action.as_str().to_owned()),
        actor_id: Set(entry.actor_id.map(UserId::into_uuid)),
        reason: Set(entry.reason.as_ref().map(|reason| reason.as_str().to_owned())),
        request_id: Set(entry.request_id.clone()),
        at: Set(entry.at),
    }
}
