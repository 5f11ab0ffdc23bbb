//! `Idempotency-Key` over HTTP (ADR 0023) and the payment owned by the order (ADR 0024): replays,
//! refusals, caller scope, keys not burnt by failures, duplicates in flight, and pay/cancel races
//! that never leave a cancelled order charged.

use futures::future::join_all;
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body};

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

fn header_of(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The status, `Location`, `ETag`, `Idempotent-Replayed` and body of a response.
#[derive(Debug, PartialEq)]
struct Seen {
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    replayed: Option<String>,
    body: String,
}

async fn seen(response: Response) -> Seen {
    Seen {
        status: response.status(),
        location: header_of(&response, "location"),
        etag: header_of(&response, "etag"),
        replayed: header_of(&response, "idempotent-replayed"),
        body: response.text().await.expect("a body"),
    }
}

/// `POST path` as `user` with `body` sent verbatim as JSON and the given key.
async fn post(app: &TestApp, user: &TestUser, path: &str, body: &str, key: &str) -> Response {
    app.request(Method::POST, path, Some(&user.access_token))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("the request is sent")
}

fn order_body(product: &Value, quantity: u32) -> String {
    json!({"items": [{"product_id": id_of(product), "quantity": quantity}]}).to_string()
}

async fn order_count(app: &TestApp, user: &TestUser) -> usize {
    let page =
        json_body(app.list_orders(&user.access_token, "?limit=100").await, StatusCode::OK).await;
    page["data"].as_array().expect("data").len()
}

async fn stock_of(app: &TestApp, product: &Value) -> i64 {
    let body = json_body(app.get_product(id_of(product), None).await, StatusCode::OK).await;
    body["stock"].as_i64().expect("stock")
}

async fn a_repeated_key_replays_the_first_response_and_orders_once(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let body = order_body(&keyboard, 2);

    let first = seen(post(&app, &ada, "/api/v1/orders", &body, "order-1").await).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.replayed, None, "the first response is not a replay");
    let order: Value = serde_json::from_str(&first.body).expect("JSON");

    // The same JSON written differently is the same request.
    let spaced = format!(
        "{{ \"items\" : [ {{ \"quantity\": 2.0, \"product_id\": \"{}\" }} ] }}",
        id_of(&keyboard)
    );
    let again = seen(post(&app, &ada, "/api/v1/orders", &spaced, "order-1").await).await;
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(
        Seen { replayed: None, ..again },
        first,
        "status, Location, ETag and body are those of the first response"
    );
    assert_eq!(order_count(&app, &ada).await, 1, "one order");
    assert_eq!(stock_of(&app, &keyboard).await, 8, "reserved once");
    assert_eq!(order["status"], "pending_payment");
}

async fn the_same_key_with_another_request_is_refused(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    json_body(
        post(&app, &ada, "/api/v1/orders", &order_body(&keyboard, 1), "k").await,
        StatusCode::CREATED,
    )
    .await;

    let response = post(&app, &ada, "/api/v1/orders", &order_body(&keyboard, 3), "k").await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED").await;
    let order = app.order(&ada, id_of(&keyboard), 1).await;
    let path = format!("/api/v1/orders/{}/transitions", id_of(&order));
    let response = post(&app, &ada, &path, &json!({"action": "pay"}).to_string(), "k").await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(order_count(&app, &ada).await, 2, "nothing more was ordered");
    assert_eq!(stock_of(&app, &keyboard).await, 8);
}

async fn keys_belong_to_the_caller(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let bob = app.customer("Bob").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let body = order_body(&keyboard, 1);

    let for_ada = seen(post(&app, &ada, "/api/v1/orders", &body, "shared").await).await;
    let for_bob = seen(post(&app, &bob, "/api/v1/orders", &body, "shared").await).await;
    assert_eq!((for_ada.status, for_bob.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(for_bob.replayed, None, "another caller's key is another key");
    assert_ne!(for_ada.location, for_bob.location, "two orders");
    assert_eq!(stock_of(&app, &keyboard).await, 8);
}

async fn a_failed_request_does_not_burn_its_key(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 1).await;
    let body = order_body(&keyboard, 2);

    let response = post(&app, &ada, "/api/v1/orders", &body, "retry-me").await;
    assert_problem(response, StatusCode::CONFLICT, "INSUFFICIENT_STOCK").await;
    let restock =
        app.patch_product(&admin.access_token, id_of(&keyboard), &json!({"stock": 5}), None).await;
    assert_eq!(restock.status(), StatusCode::OK);

    let retried = seen(post(&app, &ada, "/api/v1/orders", &body, "retry-me").await).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
    assert_eq!(retried.replayed, None, "the failure was not recorded");
    assert_eq!(stock_of(&app, &keyboard).await, 3);
}

async fn duplicates_in_flight_make_one_order(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 100).await;
    let body = order_body(&keyboard, 1);

    let answers =
        join_all((0..20).map(|_| async {
            seen(post(&app, &ada, "/api/v1/orders", &body, "burst").await).await
        }))
        .await;
    let created: Vec<&Seen> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    let in_use: Vec<&Seen> = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).collect();
    assert_eq!(created.len() + in_use.len(), answers.len(), "only 201 and 409: {answers:?}");
    assert_eq!(
        created.iter().filter(|a| a.replayed.is_none()).count(),
        1,
        "exactly one request placed the order"
    );
    assert!(
        created.iter().all(|answer| answer.location == created[0].location),
        "every 201 names the one order"
    );
    for refusal in &in_use {
        let problem: Value = serde_json::from_str(&refusal.body).expect("JSON");
        assert_eq!(problem["code"], "IDEMPOTENCY_KEY_IN_USE");
    }
    assert_eq!(order_count(&app, &ada).await, 1);
    assert_eq!(stock_of(&app, &keyboard).await, 99);
}

async fn a_retried_payment_is_replayed_and_charged_once(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&ada, id_of(&keyboard), 1).await;
    let path = format!("/api/v1/orders/{}/transitions", id_of(&order));
    let pay = json!({"action": "pay"}).to_string();

    let first = seen(post(&app, &ada, &path, &pay, "pay-1").await).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = seen(post(&app, &ada, &path, &pay, "pay-1").await).await;
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(Seen { replayed: None, ..again }, first);

    let response = app.get_order(&ada.access_token, id_of(&order)).await;
    assert_eq!(header_of(&response, "etag"), first.etag, "the replayed ETag is current");
    let stored = json_body(response, StatusCode::OK).await;
    assert_eq!(stored["payment"]["status"], "captured");
    let history =
        json_body(app.history(&ada.access_token, id_of(&order)).await, StatusCode::OK).await;
    assert_eq!(history["data"].as_array().expect("data").len(), 2, "placed, paid once");
}

async fn a_malformed_key_is_a_validation_error(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 4999, 10).await;
    let body = order_body(&keyboard, 1);
    for key in [String::new(), "x".repeat(256), "with space".to_owned(), "tab\there".to_owned()] {
        let response = post(&app, &ada, "/api/v1/orders", &body, &key).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key", "{key:?}");
    }
    let longest = "k".repeat(255);
    let response = post(&app, &ada, "/api/v1/orders", &body, &longest).await;
    assert_eq!(response.status(), StatusCode::CREATED, "255 characters are accepted");
    assert_eq!(order_count(&app, &ada).await, 1);
}

async fn pay_and_cancel_races_never_leave_a_cancelled_order_charged(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-001", 1000, 1000).await;
    let mut orders = Vec::new();
    for _ in 0..50 {
        orders.push(app.order(&ada, id_of(&keyboard), 2).await);
    }
    let races = orders.iter().map(|order| async {
        let (pay_body, cancel_body) = (json!({"action": "pay"}), json!({"action": "cancel"}));
        let pay = app.transition(&ada.access_token, id_of(order), &pay_body, None);
        let cancel = app.transition(&admin.access_token, id_of(order), &cancel_body, None);
        let (paid, cancelled) = futures::join!(pay, cancel);
        (paid.status(), cancelled.status())
    });
    for (paid, cancelled) in join_all(races).await {
        for status in [paid, cancelled] {
            assert!(
                [StatusCode::CREATED, StatusCode::CONFLICT].contains(&status),
                "only 201 or 409, got {status}"
            );
        }
    }
    let mut outcomes = std::collections::BTreeMap::new();
    let mut kept = 0;
    for order in &orders {
        let stored =
            json_body(app.get_order(&ada.access_token, id_of(order)).await, StatusCode::OK).await;
        let status = stored["status"].as_str().expect("status").to_owned();
        let payment = stored["payment"]["status"].as_str().unwrap_or("none").to_owned();
        match status.as_str() {
            "cancelled" => assert!(
                ["none", "voided", "refunded"].contains(&payment.as_str()),
                "a cancelled order holds no money: payment {payment}"
            ),
            "paid" => {
                assert_eq!(payment, "captured", "a paid order is captured");
                kept += 2;
            }
            other => panic!("an order ended {other}"),
        }
        *outcomes.entry((status, payment)).or_insert(0) += 1;
    }
    eprintln!("pay/cancel races: {outcomes:?}");
    assert_eq!(stock_of(&app, &keyboard).await, 1000 - kept, "stock is conserved");
}

api_tests!(
    a_repeated_key_replays_the_first_response_and_orders_once,
    the_same_key_with_another_request_is_refused,
    keys_belong_to_the_caller,
    a_failed_request_does_not_burn_its_key,
    duplicates_in_flight_make_one_order,
    a_retried_payment_is_replayed_and_charged_once,
    a_malformed_key_is_a_validation_error,
    pay_and_cancel_races_never_leave_a_cancelled_order_charged,
);
