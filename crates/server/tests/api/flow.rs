//! The whole journey: register, log in, admin stocks the catalogue, customer orders and pays,
//! admin ships and delivers, and the history tells every step.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, api_tests, json_body};

async fn a_customer_orders_pays_and_receives_while_the_history_records_every_step(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 5).await;

    let order = json_body(
        app.place_order(
            &customer.access_token,
            &json!({"items": [
                {"product_id": keyboard["id"], "quantity": 1},
                {"product_id": mouse["id"], "quantity": 2},
                {"product_id": keyboard["id"], "quantity": 1},
            ]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["total"], json!({"amount": 2 * 4999 + 2 * 1999, "currency": "EUR"}));
    assert_eq!(
        order["items"].as_array().map(Vec::len),
        Some(2),
        "lines for one product are merged"
    );
    assert_eq!(order["allowed_actions"], json!(["pay", "cancel"]));
    let id = order["id"].as_str().expect("an id");

    let stock = json_body(
        app.get_product(keyboard["id"].as_str().expect("id"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stock["stock"], 8, "stock is reserved when the order is placed");

    let paid = app.transition(&customer.access_token, id, &json!({"action": "pay"}), None).await;
    let pay_request_id =
        paid.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(json_body(paid, StatusCode::CREATED).await["to"], "paid");
    let shipped = app.transition(&admin.access_token, id, &json!({"action": "ship"}), None).await;
    assert_eq!(json_body(shipped, StatusCode::CREATED).await["to"], "shipped");
    let delivered = app
        .transition(
            &admin.access_token,
            id,
            &json!({"action": "deliver", "reason": "signed for"}),
            None,
        )
        .await;
    assert_eq!(json_body(delivered, StatusCode::CREATED).await["to"], "delivered");

    let order = json_body(app.get_order(&customer.access_token, id).await, StatusCode::OK).await;
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["allowed_actions"], json!([]));

    let history = json_body(app.history(&customer.access_token, id).await, StatusCode::OK).await;
    let steps: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = history["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| (entry["action"].clone(), entry["from"].clone(), entry["to"].clone()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (json!("place"), json!(null), json!("pending_payment")),
            (json!("pay"), json!("pending_payment"), json!("paid")),
            (json!("ship"), json!("paid"), json!("shipped")),
            (json!("deliver"), json!("shipped"), json!("delivered")),
        ]
    );
    assert_eq!(history["data"][0]["actor_id"], json!(customer.id));
    assert_eq!(history["data"][2]["actor_id"], json!(admin.id));
    assert_eq!(history["data"][3]["reason"], "signed for");
    assert_eq!(
        history["data"][1]["request_id"].as_str(),
        pay_request_id.as_deref(),
        "the audit log names the request"
    );
    assert!(
        history["data"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|entry| entry["request_id"].is_string())
    );
}

api_tests!(a_customer_orders_pays_and_receives_while_the_history_records_every_step);
