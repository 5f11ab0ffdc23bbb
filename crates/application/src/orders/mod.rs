//! Use cases about orders. Customers see and act on their own orders; another customer's order
//! does not exist for them (404). Admins see all. The status changes only through `pay_order`,
//! `move_order` (cancel, ship, deliver) and `expire_orders` (the system), all via the `Order`
//! aggregate; `settle_payments` asks the payment provider for what orders owe it.

pub mod expire_orders;
pub mod get_order;
pub mod list_orders;
pub mod list_user_orders;
pub mod move_order;
pub mod moves;
pub mod order_history;
pub mod pay_order;
pub mod place_order;
pub mod settle_payments;

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
