//! What events carry (`orderly_application::ports::EventData`): the resource as the v1 API
//! represents it (the schemas of the v1 document), with its `version`, so that an event's
//! `data` is what `GET /api/v1/...` answered at that version. An order is shown as its customer
//! sees it (`allowed_actions` are the customer's, when the change was made). A type's `.v1` is
//! bound to these shapes: a change a consumer could trip on is a `.v2` type (`orderly_domain::
//! event`).

use orderly_application::ports::EventData;
use orderly_domain::{Actor, Order, Product, Role, User, UserId};
use serde::Serialize;
use serde_json::{Value, json};

use crate::routes::{orders::OrderResponse, products::ProductResponse, users::UserResponse};

/// The v1 representations, for the store to write into events.
#[derive(Debug, Default, Clone, Copy)]
pub struct V1EventData;

/// `representation` with a `version` member.
fn versioned(representation: impl Serialize, version: u64) -> String {
    let mut value = serde_json::to_value(representation).unwrap_or(Value::Null);
    if let Value::Object(members) = &mut value {
        members.insert("version".to_owned(), json!(version));
    }
    value.to_string()
}

impl EventData for V1EventData {
    fn order(&self, order: &Order) -> String {
        let customer = Actor::User { id: order.user_id(), role: Role::Customer };
        let representation = OrderResponse::new(order, &customer, order.updated_at());
        versioned(representation, order.version())
    }

    fn product(&self, product: &Product) -> String {
        versioned(ProductResponse::from(product), product.version())
    }

    fn user(&self, user: &User) -> String {
        versioned(UserResponse::from(user), user.version())
    }

    fn deleted_user(&self, id: UserId) -> String {
        json!({ "id": id.into_uuid() }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::{Currency, Money, ProductDraft, ProductName, Sku, time::Timestamp};

    use super::*;

    #[test]
    fn a_product_event_carries_its_v1_representation_and_version() {
        let draft = ProductDraft {
            sku: Sku::parse("KB-001").expect("valid"),
            name: ProductName::parse("Keyboard").expect("valid"),
            description: None,
            price: Money::new(4999, Currency::parse("EUR").expect("EUR")).expect("valid"),
            stock: 3,
        };
        let product = Product::create(draft, Timestamp::default()).expect("valid");
        let data: Value = serde_json::from_str(&V1EventData.product(&product)).expect("JSON");
        let mut expected = serde_json::to_value(ProductResponse::from(&product)).expect("JSON");
        expected["version"] = json!(1);
        assert_eq!(data, expected);
        assert_eq!(data["price"], json!({"amount": 4999, "currency": "EUR"}));
    }
}
