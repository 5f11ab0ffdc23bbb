//! Use cases about orders. Customers see and act on their own orders; another customer's order
//! does not exist for them (404). Admins see all. The status changes only through
//! `transition_order` (and `expire_orders` for the system), both via the `Order` aggregate;
//! `settle_payments` asks the payment provider for what orders owe it.

pub mod expire_orders;
pub mod get_order;
pub mod list_orders;
pub mod list_user_orders;
pub mod order_history;
pub mod place_order;
pub mod settle_payments;
pub mod transition_order;

use std::sync::Arc;

use orderly_domain::{Actor, Order, OrderId};

use crate::{StoreError, ports::OrderRepository};

/// Loads an order if `actor` may see it; `Ok(None)` for missing and foreign orders alike.
async fn find_visible(
    orders: &Arc<dyn OrderRepository>,
    actor: &Actor,
    id: OrderId,
) -> Result<Option<Order>, StoreError> {
    Ok(orders.find_by_id(id).await?.filter(|order| order.is_visible_to(actor)))
}
