//! Orders over HTTP: placing (stock, validation), who sees what, the state machine with its
//! permissions and preconditions, payment, history, pagination and concurrent ordering.

use std::collections::HashSet;

use futures::future::join_all;
use orderly_domain::time::{DateTime, TimeDelta};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body};

// --- helpers of this file ---

fn header_of(response: &Response, name: header::HeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn etag_of(response: &Response) -> String {
    header_of(response, header::ETAG).expect("an ETag header")
}

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// The ids of the items of a page, in order.
fn ids(page: &Value) -> Vec<Value> {
    page["data"].as_array().expect("a data array").iter().map(|item| item["id"].clone()).collect()
}

fn error_fields(problem: &Value) -> HashSet<String> {
    problem["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|error| error["field"].as_str().expect("a field").to_owned())
        .collect()
}

fn lines(items: &[(&Value, u32)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(product, quantity)| json!({"product_id": product["id"], "quantity": quantity}))
        .collect();
    json!({ "items": items })
}

async fn stock_of(app: &TestApp, product: &Value) -> i64 {
    let stored = json_body(app.get_product(id_of(product), None).await, StatusCode::OK).await;
    stored["stock"].as_i64().expect("a stock")
}

async fn order_as(app: &TestApp, user: &TestUser, order: &Value) -> Value {
    json_body(app.get_order(&user.access_token, id_of(order)).await, StatusCode::OK).await
}

async fn history_of(app: &TestApp, user: &TestUser, order: &Value) -> Vec<Value> {
    let history =
        json_body(app.history(&user.access_token, id_of(order)).await, StatusCode::OK).await;
    history["data"].as_array().expect("entries").clone()
}

/// Makes `action` as `user` with no precondition and checks that it was accepted.
async fn act(app: &TestApp, user: &TestUser, order: &Value, action: &str) -> Value {
    let response =
        app.transition(&user.access_token, id_of(order), &json!({"action": action}), None).await;
    json_body(response, StatusCode::CREATED).await
}

fn timestamp(value: &Value) -> DateTime<orderly_domain::time::Utc> {
    let raw = value.as_str().expect("a timestamp");
    DateTime::parse_from_rfc3339(raw).expect("RFC 3339").to_utc()
}

// --- placing ---

async fn placing_an_order_returns_it_with_location_etag_total_and_payment_deadline(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 10).await;

    let response =
        app.place_order(&customer.access_token, &lines(&[(&keyboard, 2), (&mouse, 3)])).await;
    let location = header_of(&response, header::LOCATION).expect("a Location header");
    let tag = etag_of(&response);
    let order = json_body(response, StatusCode::CREATED).await;

    assert_eq!(location, format!("/api/v1/orders/{}", id_of(&order)));
    assert_eq!(tag, "\"v1\"");
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["user_id"], json!(customer.id));
    assert_eq!(order["allowed_actions"], json!(["pay", "cancel"]));
    assert_eq!(order["payment"], Value::Null, "no payment before the first pay");
    assert_eq!(order["total"], json!({"amount": 2 * 4999 + 3 * 1999, "currency": "EUR"}));
    let items = order["items"].as_array().expect("items");
    let sum: i64 =
        items.iter().map(|item| item["line_total"]["amount"].as_i64().expect("amount")).sum();
    assert_eq!(json!(sum), order["total"]["amount"], "the total is the sum of the lines");
    let keyboard_line =
        items.iter().find(|item| item["product_id"] == keyboard["id"]).expect("a keyboard line");
    assert_eq!(
        keyboard_line,
        &json!({"product_id": keyboard["id"], "sku": "KB-001", "name": "Product KB-001",
                "unit_price": {"amount": 4999, "currency": "EUR"}, "quantity": 2,
                "line_total": {"amount": 9998, "currency": "EUR"}})
    );

    let deadline = timestamp(&order["payment_due_at"]) - timestamp(&order["created_at"]);
    assert!(
        (deadline - TimeDelta::minutes(30)).abs() <= TimeDelta::seconds(1),
        "payment is due 30 minutes after placing, not {deadline}"
    );

    let response = app.request(Method::GET, &location, Some(&customer.access_token)).send().await;
    let response = response.expect("sent");
    assert_eq!(etag_of(&response), tag);
    let fetched = json_body(response, StatusCode::OK).await;
    assert_eq!(fetched["id"], order["id"], "Location names the new order");
    assert_eq!(fetched["total"], order["total"]);
}

async fn lines_for_the_same_product_are_merged(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;

    let body = lines(&[(&keyboard, 1), (&keyboard, 2), (&keyboard, 4)]);
    let order =
        json_body(app.place_order(&customer.access_token, &body).await, StatusCode::CREATED).await;
    let items = order["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{order}");
    assert_eq!(items[0]["quantity"], 7);
    assert_eq!(items[0]["line_total"], json!({"amount": 7 * 4999, "currency": "EUR"}));
    assert_eq!(order["total"], items[0]["line_total"]);
    assert_eq!(stock_of(&app, &keyboard).await, 3);
}

async fn placing_an_order_reserves_its_stock(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 5).await;

    let response =
        app.place_order(&customer.access_token, &lines(&[(&keyboard, 4), (&mouse, 5)])).await;
    json_body(response, StatusCode::CREATED).await;
    assert_eq!(stock_of(&app, &keyboard).await, 6);
    assert_eq!(stock_of(&app, &mouse).await, 0);
}

async fn insufficient_stock_is_a_conflict_that_reserves_nothing(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    // Created first, so its line is reserved first (lines are taken in product-id order).
    let plenty = app.product(&admin, "PLENTY", 100, 10).await;
    let scarce = app.product(&admin, "SCARCE", 100, 2).await;

    let response =
        app.place_order(&customer.access_token, &lines(&[(&plenty, 3), (&scarce, 5)])).await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "INSUFFICIENT_STOCK").await;
    assert_eq!(problem["product_id"], scarce["id"]);
    assert_eq!(problem["requested"], 5);
    assert_eq!(problem["available"], 2);

    assert_eq!(stock_of(&app, &plenty).await, 10, "the line that fitted was not reserved");
    assert_eq!(stock_of(&app, &scarce).await, 2);
    let listed = json_body(app.list_orders(&customer.access_token, "").await, StatusCode::OK).await;
    assert_eq!(listed["data"], json!([]), "no order was stored");
}

async fn an_order_naming_an_unknown_product_is_a_bad_request(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let unknown = json!({"id": orderly_domain::Uuid::now_v7()});

    let response =
        app.place_order(&customer.access_token, &lines(&[(&keyboard, 1), (&unknown, 1)])).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "PRODUCT_NOT_FOUND").await;
    assert_eq!(problem["product_id"], unknown["id"]);
    assert_eq!(stock_of(&app, &keyboard).await, 10);
}

async fn an_order_needs_one_to_fifty_lines(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 100).await;

    let response = app.place_order(&customer.access_token, &json!({"items": []})).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(error_fields(&problem), HashSet::from(["items".to_owned()]), "{problem}");

    let many: Vec<Value> =
        (0..51).map(|_| json!({"product_id": keyboard["id"], "quantity": 1})).collect();
    let response = app.place_order(&customer.access_token, &json!({"items": many})).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(error_fields(&problem), HashSet::from(["items".to_owned()]), "{problem}");

    let fifty: Vec<Value> =
        (0..50).map(|_| json!({"product_id": keyboard["id"], "quantity": 1})).collect();
    let response = app.place_order(&customer.access_token, &json!({"items": fifty})).await;
    assert_eq!(json_body(response, StatusCode::CREATED).await["items"][0]["quantity"], 50);
    assert_eq!(stock_of(&app, &keyboard).await, 50, "only the valid order reserved stock");
}

async fn quantities_outside_one_to_a_thousand_are_invalid(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 5000).await;
    let mouse = app.product(&admin, "MS-001", 1999, 5000).await;

    let response = app.place_order(&customer.access_token, &lines(&[(&keyboard, 0)])).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(error_fields(&problem), HashSet::from(["items[0].quantity".to_owned()]));

    let body = lines(&[(&keyboard, 1), (&mouse, 1001)]);
    let response = app.place_order(&customer.access_token, &body).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(error_fields(&problem), HashSet::from(["items[1].quantity".to_owned()]));

    let body = lines(&[(&keyboard, 0), (&mouse, 1001)]);
    let response = app.place_order(&customer.access_token, &body).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let expected: HashSet<String> =
        ["items[0].quantity", "items[1].quantity"].map(str::to_owned).into();
    assert_eq!(error_fields(&problem), expected, "every line is reported at once");

    assert_eq!(stock_of(&app, &keyboard).await, 5000);
    assert_eq!(stock_of(&app, &mouse).await, 5000);
    let response = app.place_order(&customer.access_token, &lines(&[(&mouse, 1000)])).await;
    assert_eq!(json_body(response, StatusCode::CREATED).await["items"][0]["quantity"], 1000);
}

async fn a_status_in_the_create_body_is_refused(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;

    let mut body = lines(&[(&keyboard, 1)]);
    body["status"] = json!("paid");
    let response = app.place_order(&customer.access_token, &body).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(stock_of(&app, &keyboard).await, 10);
}

async fn placing_an_order_without_a_token_is_unauthenticated(app: TestApp) {
    let admin = app.admin().await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let response = app
        .request(Method::POST, "/api/v1/orders", None)
        .json(&lines(&[(&keyboard, 1)]))
        .send()
        .await
        .expect("sent");
    let challenge = header_of(&response, header::WWW_AUTHENTICATE).expect("a challenge");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(stock_of(&app, &keyboard).await, 10);
}

// --- who sees what ---

async fn another_customers_order_is_not_found_on_every_route(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let bob = app.customer("Bob").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let adas = app.order(&ada, id_of(&keyboard), 1).await;
    let bobs = app.order(&bob, id_of(&keyboard), 1).await;
    let id = id_of(&adas);

    let response = app.get_order(&bob.access_token, id).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = app.history(&bob.access_token, id).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    for action in ["pay", "cancel", "ship"] {
        let response =
            app.transition(&bob.access_token, id, &json!({"action": action}), None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
    let response =
        app.transition(&bob.access_token, id, &json!({"action": "pay"}), Some("\"v999\"")).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = app.user_orders(&bob.access_token, &ada.id, "").await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let listed = json_body(app.list_orders(&bob.access_token, "").await, StatusCode::OK).await;
    assert_eq!(ids(&listed), vec![bobs["id"].clone()]);

    let untouched = order_as(&app, &ada, &adas).await;
    assert_eq!(untouched["status"], "pending_payment", "Bob's attempts changed nothing");
    assert_eq!(history_of(&app, &ada, &adas).await.len(), 1);

    let response =
        app.get_order(&ada.access_token, &orderly_domain::Uuid::now_v7().to_string()).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

async fn an_admin_sees_every_order_and_filters_by_status_and_user(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let bob = app.customer("Bob").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let ada_first = app.order(&ada, id_of(&keyboard), 1).await;
    let bob_first = app.order(&bob, id_of(&keyboard), 1).await;
    let ada_second = app.order(&ada, id_of(&keyboard), 1).await;
    act(&app, &ada, &ada_first, "pay").await;

    let all = json_body(app.list_orders(&admin.access_token, "").await, StatusCode::OK).await;
    assert_eq!(
        ids(&all),
        vec![ada_second["id"].clone(), bob_first["id"].clone(), ada_first["id"].clone()],
        "every order, newest first"
    );

    let paid =
        json_body(app.list_orders(&admin.access_token, "?status=paid").await, StatusCode::OK).await;
    assert_eq!(ids(&paid), vec![ada_first["id"].clone()]);
    assert_eq!(paid["data"][0]["status"], "paid");
    assert_eq!(
        paid["data"][0]["allowed_actions"],
        json!(["cancel", "ship"]),
        "as the admin sees it"
    );

    let adas = json_body(
        app.list_orders(&admin.access_token, &format!("?user_id={}", ada.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&adas), vec![ada_second["id"].clone(), ada_first["id"].clone()]);

    let adas_pending = json_body(
        app.list_orders(
            &admin.access_token,
            &format!("?user_id={}&status=pending_payment", ada.id),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&adas_pending), vec![ada_second["id"].clone()]);

    let bobs =
        json_body(app.get_order(&admin.access_token, id_of(&bob_first)).await, StatusCode::OK)
            .await;
    assert_eq!(bobs["user_id"], json!(bob.id));
    let history =
        json_body(app.history(&admin.access_token, id_of(&bob_first)).await, StatusCode::OK).await;
    assert_eq!(history["data"].as_array().map(Vec::len), Some(1));
    let listed =
        json_body(app.user_orders(&admin.access_token, &bob.id, "").await, StatusCode::OK).await;
    assert_eq!(ids(&listed), vec![bob_first["id"].clone()]);
}

async fn a_customer_filtering_by_another_user_still_sees_only_their_own_orders(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let bob = app.customer("Bob").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let adas = app.order(&ada, id_of(&keyboard), 1).await;
    let bobs = app.order(&bob, id_of(&keyboard), 1).await;
    act(&app, &bob, &bobs, "pay").await;

    let listed = json_body(
        app.list_orders(&ada.access_token, &format!("?user_id={}", bob.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&listed), vec![adas["id"].clone()]);

    let paid = json_body(
        app.list_orders(&ada.access_token, &format!("?user_id={}&status=paid", bob.id)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(paid["data"], json!([]), "Bob's paid order stays hidden");
}

// --- the state machine ---

async fn a_customer_may_not_ship_a_paid_order(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;
    act(&app, &customer, &order, "pay").await;

    let response = app
        .transition(&customer.access_token, id_of(&order), &json!({"action": "ship"}), None)
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    assert_eq!(order_as(&app, &customer, &order).await["status"], "paid");
}

async fn shipping_an_unpaid_order_is_a_conflict_naming_the_status_and_the_callers_actions(
    app: TestApp,
) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;

    for user in [&admin, &customer] {
        for action in ["ship", "deliver"] {
            let response = app
                .transition(&user.access_token, id_of(&order), &json!({"action": action}), None)
                .await;
            let problem =
                assert_problem(response, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
            assert_eq!(problem["current_status"], "pending_payment");
            assert_eq!(problem["allowed_actions"], json!(["pay", "cancel"]));
        }
    }
    assert_eq!(order_as(&app, &customer, &order).await["status"], "pending_payment");
}

async fn paying_records_the_step_and_changes_the_etag(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 2).await;
    let id = id_of(&order);

    let response =
        app.transition(&customer.access_token, id, &json!({"action": "pay"}), None).await;
    assert_eq!(
        header_of(&response, header::LOCATION),
        Some(format!("/api/v1/orders/{id}/transitions"))
    );
    let tag = etag_of(&response);
    assert_ne!(tag, "\"v1\"");
    let entry = json_body(response, StatusCode::CREATED).await;
    assert_eq!(entry["from"], "pending_payment");
    assert_eq!(entry["to"], "paid");
    assert_eq!(entry["action"], "pay");
    assert_eq!(entry["actor_id"], json!(customer.id));
    assert_eq!(entry["reason"], Value::Null);
    assert!(timestamp(&entry["at"]) >= timestamp(&order["created_at"]));

    let response = app.get_order(&customer.access_token, id).await;
    assert_eq!(etag_of(&response), tag, "the order is at the version the transition named");
    let paid = json_body(response, StatusCode::OK).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["allowed_actions"], json!([]), "a customer has nothing left to do");
    assert_eq!(paid["payment"]["status"], "captured", "authorized, then captured");
    assert_eq!(paid["payment"]["amount"], json!({"amount": 9998, "currency": "EUR"}));
    assert!(paid["payment"]["reference"].as_str().is_some_and(|reference| !reference.is_empty()));
    assert_eq!(stock_of(&app, &keyboard).await, 8, "paying keeps the reservation");
}

async fn paying_twice_is_a_conflict(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;
    act(&app, &customer, &order, "pay").await;

    let response = app
        .transition(&customer.access_token, id_of(&order), &json!({"action": "pay"}), None)
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
    assert_eq!(problem["current_status"], "paid");
    assert_eq!(problem["allowed_actions"], json!([]));

    let response =
        app.transition(&admin.access_token, id_of(&order), &json!({"action": "pay"}), None).await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
    assert_eq!(problem["allowed_actions"], json!(["cancel", "ship"]));
    assert_eq!(history_of(&app, &customer, &order).await.len(), 2, "one payment recorded");
}

async fn a_customer_may_not_cancel_a_paid_order(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 3).await;
    act(&app, &customer, &order, "pay").await;

    let response = app
        .transition(&customer.access_token, id_of(&order), &json!({"action": "cancel"}), None)
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let stored = order_as(&app, &customer, &order).await;
    assert_eq!(stored["status"], "paid");
    assert_eq!(stored["payment"]["status"], "captured");
    assert_eq!(stock_of(&app, &keyboard).await, 7);
}

async fn an_admin_cancelling_a_paid_order_refunds_it_and_releases_stock(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 3).await;
    act(&app, &customer, &order, "pay").await;
    assert_eq!(stock_of(&app, &keyboard).await, 7);

    let entry = act(&app, &admin, &order, "cancel").await;
    assert_eq!((&entry["from"], &entry["to"]), (&json!("paid"), &json!("cancelled")));
    assert_eq!(entry["actor_id"], json!(admin.id));

    let stored = order_as(&app, &customer, &order).await;
    assert_eq!(stored["status"], "cancelled");
    assert_eq!(stored["payment"]["status"], "refunded", "the captured payment was given back");
    assert_eq!(stored["allowed_actions"], json!([]));
    assert_eq!(stock_of(&app, &keyboard).await, 10, "the stock is back");
}

async fn a_customer_cancelling_an_unpaid_order_releases_stock(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let mouse = app.product(&admin, "MS-001", 1999, 4).await;
    let order = json_body(
        app.place_order(&customer.access_token, &lines(&[(&keyboard, 2), (&mouse, 4)])).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(stock_of(&app, &mouse).await, 0);

    let entry = act(&app, &customer, &order, "cancel").await;
    assert_eq!((&entry["from"], &entry["to"]), (&json!("pending_payment"), &json!("cancelled")));

    let stored = order_as(&app, &customer, &order).await;
    assert_eq!(stored["status"], "cancelled");
    assert_eq!(stored["payment"], Value::Null, "nothing was paid");
    assert_eq!(stock_of(&app, &keyboard).await, 10);
    assert_eq!(stock_of(&app, &mouse).await, 4);
}

async fn cancelling_a_cancelled_order_is_a_conflict_with_no_allowed_actions(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 2).await;
    act(&app, &customer, &order, "cancel").await;

    for user in [&customer, &admin] {
        let response = app
            .transition(&user.access_token, id_of(&order), &json!({"action": "cancel"}), None)
            .await;
        let problem =
            assert_problem(response, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
        assert_eq!(problem["current_status"], "cancelled");
        assert_eq!(problem["allowed_actions"], json!([]));
    }
    assert_eq!(stock_of(&app, &keyboard).await, 10, "the stock was released once");
    assert_eq!(history_of(&app, &customer, &order).await.len(), 2);
}

async fn expire_and_refund_are_not_actions_a_client_may_request(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;

    for user in [&customer, &admin] {
        for action in ["expire", "refund", "place", "PAY"] {
            let response = app
                .transition(&user.access_token, id_of(&order), &json!({"action": action}), None)
                .await;
            assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
        }
    }
    assert_eq!(order_as(&app, &customer, &order).await["status"], "pending_payment");
    assert_eq!(history_of(&app, &customer, &order).await.len(), 1);
}

async fn a_transition_with_a_current_if_match_succeeds_and_a_stale_one_changes_nothing(
    app: TestApp,
) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let placed = app.place_order(&customer.access_token, &lines(&[(&keyboard, 1)])).await;
    let placed_tag = etag_of(&placed);
    let order = json_body(placed, StatusCode::CREATED).await;
    let id = id_of(&order);

    let paid = app
        .transition(&customer.access_token, id, &json!({"action": "pay"}), Some(&placed_tag))
        .await;
    let paid_tag = etag_of(&paid);
    json_body(paid, StatusCode::CREATED).await;

    let response = app
        .transition(&admin.access_token, id, &json!({"action": "ship"}), Some(&placed_tag))
        .await;
    assert_eq!(header_of(&response, header::ETAG), Some(paid_tag.clone()), "names the current tag");
    assert_problem(response, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    let response = app.get_order(&admin.access_token, id).await;
    assert_eq!(etag_of(&response), paid_tag);
    assert_eq!(json_body(response, StatusCode::OK).await["status"], "paid");
    assert_eq!(history_of(&app, &admin, &order).await.len(), 2, "no history was written");

    let shipped =
        app.transition(&admin.access_token, id, &json!({"action": "ship"}), Some(&paid_tag)).await;
    assert_ne!(etag_of(&shipped), paid_tag);
    assert_eq!(json_body(shipped, StatusCode::CREATED).await["to"], "shipped");
}

async fn a_declined_payment_leaves_the_order_pending(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let piano = app.product(&admin, "PIANO", 600_000, 5).await;
    let order = app.order(&customer, id_of(&piano), 2).await;
    assert_eq!(order["total"]["amount"], 1_200_000);

    let response = app
        .transition(&customer.access_token, id_of(&order), &json!({"action": "pay"}), None)
        .await;
    assert_problem(response, StatusCode::PAYMENT_REQUIRED, "PAYMENT_DECLINED").await;

    let response = app.get_order(&customer.access_token, id_of(&order)).await;
    assert_eq!(
        etag_of(&response),
        "\"v3\"",
        "the authorization asked for, then its decline, are recorded (ADR 0026)"
    );
    let stored = json_body(response, StatusCode::OK).await;
    assert_eq!(stored["status"], "pending_payment");
    assert_eq!(stored["payment"]["status"], "failed");
    assert_eq!(stored["payment"]["reference"], Value::Null);
    assert_eq!(stored["allowed_actions"], json!(["pay", "cancel"]));
    assert_eq!(history_of(&app, &customer, &order).await.len(), 1);
    assert_eq!(stock_of(&app, &piano).await, 3, "the stock stays reserved");

    let cheap = app.order(&customer, id_of(&piano), 1).await;
    let entry = act(&app, &customer, &cheap, "pay").await;
    assert_eq!(entry["to"], "paid", "a total within the limit is charged");
}

async fn the_history_lists_every_step_with_its_actor_and_reason(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&customer, id_of(&keyboard), 1).await;
    let id = id_of(&order);

    let pay = json!({"action": "pay", "reason": "paid by card"});
    json_body(app.transition(&customer.access_token, id, &pay, None).await, StatusCode::CREATED)
        .await;
    let refused =
        app.transition(&customer.access_token, id, &json!({"action": "cancel"}), None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let cancel = json!({"action": "cancel", "reason": "warehouse fire"});
    json_body(app.transition(&admin.access_token, id, &cancel, None).await, StatusCode::CREATED)
        .await;

    for viewer in [&customer, &admin] {
        let history = history_of(&app, viewer, &order).await;
        let steps: Vec<Value> = history
            .iter()
            .map(|entry| {
                json!([
                    entry["action"],
                    entry["from"],
                    entry["to"],
                    entry["actor_id"],
                    entry["reason"]
                ])
            })
            .collect();
        assert_eq!(
            steps,
            vec![
                json!(["place", null, "pending_payment", customer.id, null]),
                json!(["pay", "pending_payment", "paid", customer.id, "paid by card"]),
                json!(["cancel", "paid", "cancelled", admin.id, "warehouse fire"]),
            ],
            "the refused attempt left no trace"
        );
        let times: Vec<_> = history.iter().map(|entry| timestamp(&entry["at"])).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "oldest first: {times:?}");
    }
}

async fn a_users_orders_come_newest_first_in_pages(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let other = app.customer("Bob").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 100).await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(app.order(&customer, id_of(&keyboard), 1).await["id"].clone());
    }
    app.order(&other, id_of(&keyboard), 1).await;
    let newest_first: Vec<Value> = placed.iter().rev().cloned().collect();

    for viewer in [&customer, &admin] {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut query = "?limit=2".to_owned();
        loop {
            let response = app.user_orders(&viewer.access_token, &customer.id, &query).await;
            let link = header_of(&response, header::LINK);
            let page = json_body(response, StatusCode::OK).await;
            sizes.push(page["data"].as_array().map_or(0, Vec::len));
            seen.extend(ids(&page));
            assert!(sizes.len() <= 5, "the pages never end");
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    let link = link.expect("a Link header with a next page");
                    assert_eq!(
                        link,
                        format!(
                            "</api/v1/users/{}/orders?limit=2&cursor={cursor}>; rel=\"next\"",
                            customer.id
                        )
                    );
                    query = format!("?limit=2&cursor={cursor}");
                }
                None => {
                    assert_eq!(link, None, "no Link on the last page");
                    break;
                }
            }
        }
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(seen, newest_first, "every order once, newest first, none of Bob's");
    }
}

// --- concurrency ---

async fn parallel_transitions_with_the_same_if_match_let_one_win_and_refuse_the_rest_with_412(
    app: TestApp,
) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let placed = app.place_order(&customer.access_token, &lines(&[(&keyboard, 2)])).await;
    let tag = etag_of(&placed);
    let order = json_body(placed, StatusCode::CREATED).await;

    let responses = join_all((0..10).map(|_| {
        let (app, customer, tag, order) = (&app, &customer, &tag, &order);
        async move {
            app.transition(
                &customer.access_token,
                id_of(order),
                &json!({"action": "cancel"}),
                Some(tag),
            )
            .await
        }
    }))
    .await;

    let (won, lost): (Vec<Response>, Vec<Response>) =
        responses.into_iter().partition(|response| response.status() == StatusCode::CREATED);
    assert_eq!((won.len(), lost.len()), (1, 9), "exactly one cancellation wins");
    let current_tag = etag_of(&app.get_order(&customer.access_token, id_of(&order)).await);
    for response in lost {
        assert_eq!(header_of(&response, header::ETAG), Some(current_tag.clone()));
        assert_problem(response, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    }
    assert_eq!(history_of(&app, &customer, &order).await.len(), 2, "one cancellation stored");
    assert_eq!(stock_of(&app, &keyboard).await, 10, "the stock came back once");
}

async fn concurrent_orders_never_sell_more_than_the_stock(app: TestApp) {
    let admin = app.admin().await;
    let keyboard = app.product(&admin, "KB-001", 4999, 5).await;
    let customers = join_all((0..20).map(|i| {
        let app = &app;
        async move { app.customer(&format!("Buyer{i}")).await }
    }))
    .await;

    let body = lines(&[(&keyboard, 1)]);
    let responses =
        join_all(customers.iter().map(|customer| app.place_order(&customer.access_token, &body)))
            .await;
    let (created, refused): (Vec<Response>, Vec<Response>) =
        responses.into_iter().partition(|response| response.status() == StatusCode::CREATED);
    assert_eq!(created.len(), 5, "exactly the stock is sold");
    assert_eq!(refused.len(), 15);
    for response in refused {
        let problem = assert_problem(response, StatusCode::CONFLICT, "INSUFFICIENT_STOCK").await;
        assert_eq!(problem["available"], 0);
        assert_eq!(problem["requested"], 1);
    }
    assert_eq!(stock_of(&app, &keyboard).await, 0);
    let all = json_body(app.list_orders(&admin.access_token, "").await, StatusCode::OK).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(5), "five orders were stored");
}

/// 200 orders of two lines at once, over two products of 10 units each: the one `UPDATE` that
/// reserves every line of an order (issue 11) sells exactly the stock, each order takes both
/// lines or nothing, and every other order is refused with 409 (no deadlock, no 5xx).
async fn two_hundred_parallel_orders_of_two_lines_sell_exactly_the_stock(app: TestApp) {
    let admin = app.admin().await;
    let first = app.product(&admin, "PAR-001", 1000, 10).await;
    let second = app.product(&admin, "PAR-002", 2000, 10).await;
    // Registered ten at a time: the password-hashing bound refuses floods (ADR 0016).
    let mut customers = Vec::new();
    for batch in 0..20 {
        customers.extend(
            join_all((0..10).map(|i| {
                let app = &app;
                async move { app.customer(&format!("Parallel{batch}x{i}")).await }
            }))
            .await,
        );
    }

    // Half the orders list the lines the other way round.
    let forward = lines(&[(&first, 1), (&second, 1)]);
    let backward = lines(&[(&second, 1), (&first, 1)]);
    let responses = join_all(customers.iter().enumerate().map(|(i, customer)| {
        let body = if i % 2 == 0 { &forward } else { &backward };
        app.place_order(&customer.access_token, body)
    }))
    .await;
    let mut created = Vec::new();
    for response in responses {
        if response.status() == StatusCode::CREATED {
            created.push(json_body(response, StatusCode::CREATED).await);
        } else {
            assert_problem(response, StatusCode::CONFLICT, "INSUFFICIENT_STOCK").await;
        }
    }

    assert_eq!(created.len(), 10, "exactly the stock is sold");
    for order in &created {
        assert_eq!(order["items"].as_array().map(Vec::len), Some(2), "both lines: {order}");
    }
    assert_eq!((stock_of(&app, &first).await, stock_of(&app, &second).await), (0, 0));
    let all =
        json_body(app.list_orders(&admin.access_token, "?limit=100").await, StatusCode::OK).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(10), "ten orders were stored");
}

/// JSON Schema (OpenAPI 3.1) counts `2.0` as the integer 2; `1.5` is no integer.
async fn a_quantity_written_with_a_zero_fraction_is_an_integer(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("ada").await;
    let product = app.product(&admin, "KB-001", 4999, 10).await;
    let id = product["id"].as_str().expect("an id");
    let body = json!({"items": [{"product_id": id, "quantity": 2.0}]});
    let order =
        json_body(app.place_order(&customer.access_token, &body).await, StatusCode::CREATED).await;
    assert_eq!(order["items"][0]["quantity"], 2, "{order}");
    let body = json!({"items": [{"product_id": id, "quantity": 1.5}]});
    let response = app.place_order(&customer.access_token, &body).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}

api_tests!(
    two_hundred_parallel_orders_of_two_lines_sell_exactly_the_stock,
    a_quantity_written_with_a_zero_fraction_is_an_integer,
    placing_an_order_returns_it_with_location_etag_total_and_payment_deadline,
    lines_for_the_same_product_are_merged,
    placing_an_order_reserves_its_stock,
    insufficient_stock_is_a_conflict_that_reserves_nothing,
    an_order_naming_an_unknown_product_is_a_bad_request,
    an_order_needs_one_to_fifty_lines,
    quantities_outside_one_to_a_thousand_are_invalid,
    a_status_in_the_create_body_is_refused,
    placing_an_order_without_a_token_is_unauthenticated,
    another_customers_order_is_not_found_on_every_route,
    an_admin_sees_every_order_and_filters_by_status_and_user,
    a_customer_filtering_by_another_user_still_sees_only_their_own_orders,
    a_customer_may_not_ship_a_paid_order,
    shipping_an_unpaid_order_is_a_conflict_naming_the_status_and_the_callers_actions,
    paying_records_the_step_and_changes_the_etag,
    paying_twice_is_a_conflict,
    a_customer_may_not_cancel_a_paid_order,
    an_admin_cancelling_a_paid_order_refunds_it_and_releases_stock,
    a_customer_cancelling_an_unpaid_order_releases_stock,
    cancelling_a_cancelled_order_is_a_conflict_with_no_allowed_actions,
    expire_and_refund_are_not_actions_a_client_may_request,
    a_transition_with_a_current_if_match_succeeds_and_a_stale_one_changes_nothing,
    parallel_transitions_with_the_same_if_match_let_one_win_and_refuse_the_rest_with_412,
    a_declined_payment_leaves_the_order_pending,
    the_history_lists_every_step_with_its_actor_and_reason,
    a_users_orders_come_newest_first_in_pages,
    concurrent_orders_never_sell_more_than_the_stock,
);

/// Tests of fixes found in review, each on its own app (SQLite: they test HTTP behaviour, not the
/// engines, which the repository tests cover).
mod review {
    use std::time::Duration;

    use orderly_infrastructure::testing::TestDatabase;
    use reqwest::StatusCode;
    use serde_json::json;

    use crate::helpers::{assert_problem, json_body, spawn_app_with};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_past_its_payment_deadline_can_no_longer_be_paid_only_cancelled() {
        let app = spawn_app_with(TestDatabase::sqlite().await, |settings| {
            settings.orders.order_payment_timeout = 1
        })
        .await;
        let admin = app.admin().await;
        let customer = app.customer("Ada").await;
        let product = app.product(&admin, "LATE-1", 1000, 5).await;
        let order = app.order(&customer, product["id"].as_str().expect("id"), 1).await;
        let id = order["id"].as_str().expect("id");
        tokio::time::sleep(Duration::from_millis(1200)).await;

        let current =
            json_body(app.get_order(&customer.access_token, id).await, StatusCode::OK).await;
        assert_eq!(current["allowed_actions"], json!(["cancel"]));
        let paid =
            app.transition(&customer.access_token, id, &json!({"action": "pay"}), None).await;
        let problem = assert_problem(paid, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
        assert_eq!(problem["allowed_actions"], json!(["cancel"]));
        assert_eq!(problem["current_status"], "pending_payment");
        let after =
            json_body(app.get_order(&customer.access_token, id).await, StatusCode::OK).await;
        assert_eq!(after["status"], "pending_payment");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_users_orders_are_not_found_even_for_an_admin() {
        let app = spawn_app_with(TestDatabase::sqlite().await, |_| {}).await;
        let admin = app.admin().await;
        let nobody = orderly_domain::Uuid::now_v7().to_string();
        let response = app.user_orders(&admin.access_token, &nobody, "").await;
        assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_users_token_cannot_place_an_order() {
        let app = spawn_app_with(TestDatabase::sqlite().await, |_| {}).await;
        let admin = app.admin().await;
        let customer = app.customer("Ada").await;
        let product = app.product(&admin, "GONE-1", 1000, 5).await;
        let deleted = app.delete_user(&customer.access_token, &customer.id).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

        let body = json!({"items": [{"product_id": product["id"], "quantity": 1}]});
        let response = app.place_order(&customer.access_token, &body).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
        let stock = json_body(
            app.get_product(product["id"].as_str().expect("id"), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(stock["stock"], 5, "nothing was reserved");
    }
}
