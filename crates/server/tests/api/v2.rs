//! `/api/v2` over HTTP: money as decimal strings in the currency's exponent, lists with
//! `has_more` and an absolute `next`, order summaries unless `include=items`, transitions that
//! answer with the order and its `ETag`, `Location` under `/api/v2`, idempotent replays of v2
//! renderings, v1 unchanged beside it, and every v2 route of the route table answering.

use orderly_api::routes::table::{Version, endpoints};
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body};

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

fn header_of(response: &Response, name: impl header::AsHeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A request to `/api/v2{path}`.
fn v2(app: &TestApp, method: Method, path: &str, user: Option<&TestUser>) -> RequestBuilder {
    app.request(method, &format!("/api/v2{path}"), user.map(|u| u.access_token.as_str()))
}

async fn send(builder: RequestBuilder) -> Response {
    builder.send().await.expect("the request is sent")
}

fn product_body(sku: &str, amount: &str, currency: &str) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "price": {"amount": amount, "currency": currency}, "stock": 50})
}

/// Creates a product through v2; returns the response.
async fn create_product(app: &TestApp, admin: &TestUser, body: &Value) -> Response {
    send(v2(app, Method::POST, "/products", Some(admin)).json(body)).await
}

/// Creates a product through v2 priced `amount` in `currency`; returns its JSON.
async fn product(
    app: &TestApp,
    admin: &TestUser,
    sku: &str,
    amount: &str,
    currency: &str,
) -> Value {
    let response = create_product(app, admin, &product_body(sku, amount, currency)).await;
    json_body(response, StatusCode::CREATED).await
}

/// Places an order through v2; returns the response.
async fn place(app: &TestApp, user: &TestUser, product: &Value, quantity: u32) -> Response {
    let body = json!({"items": [{"product_id": id_of(product), "quantity": quantity}]});
    send(v2(app, Method::POST, "/orders", Some(user)).json(&body)).await
}

async fn order(app: &TestApp, user: &TestUser, product: &Value, quantity: u32) -> Value {
    json_body(place(app, user, product, quantity).await, StatusCode::CREATED).await
}

/// Moves an order through v2; returns the response.
async fn transition(app: &TestApp, user: &TestUser, order: &Value, action: &str) -> Response {
    let path = format!("/orders/{}/transitions", id_of(order));
    send(v2(app, Method::POST, &path, Some(user)).json(&json!({"action": action}))).await
}

/// The field errors of a `VALIDATION_FAILED` problem, as `(field, code)`.
fn field_codes(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (e["field"].as_str().unwrap_or("").into(), e["code"].as_str().unwrap_or("").into())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(f, c)| ((*f).to_owned(), (*c).to_owned())).collect()
}

/// Reads every page of a v2 list from `first` (a path below `/api/v2`) by following `next`;
/// returns the pages.
async fn every_page(app: &TestApp, user: Option<&TestUser>, first: &str) -> Vec<Value> {
    let mut pages =
        vec![json_body(send(v2(app, Method::GET, first, user)).await, StatusCode::OK).await];
    while let Some(next) = pages.last().and_then(|page| page["next"].as_str()).map(str::to_owned) {
        assert_eq!(pages.last().map(|page| &page["has_more"]), Some(&json!(true)));
        assert!(next.starts_with(&format!("{}/api/v2/", app.address)), "absolute: {next}");
        // The URL as given, absolute: no path joined by the client.
        let mut request = app.client.get(&next);
        if let Some(user) = user {
            request = request.bearer_auth(&user.access_token);
        }
        pages.push(json_body(send(request).await, StatusCode::OK).await);
        assert!(pages.len() < 50, "the pages end");
    }
    let last = pages.last().expect("a page");
    assert_eq!(last["has_more"], json!(false), "{last}");
    assert!(last.get("next").is_some_and(Value::is_null), "`next` is sent, null: {last}");
    pages
}

fn data(pages: &[Value]) -> Vec<Value> {
    pages.iter().flat_map(|page| page["data"].as_array().expect("data").clone()).collect()
}

// --- money ---

async fn prices_are_decimal_strings_in_the_currency_s_exponent_both_ways(app: TestApp) {
    let admin = app.admin().await;
    for (sku, sent, currency, read) in [
        ("EUR-1", "19.99", "EUR", "19.99"),
        ("EUR-2", "19.9", "EUR", "19.90"),
        ("EUR-3", "19", "EUR", "19.00"),
        ("EUR-4", "0.05", "EUR", "0.05"),
        ("JPY-1", "1999", "JPY", "1999"),
        ("KWD-1", "1.999", "KWD", "1.999"),
        ("KWD-2", "1.5", "KWD", "1.500"),
        ("BHD-1", "0.125", "BHD", "0.125"),
    ] {
        let response = create_product(&app, &admin, &product_body(sku, sent, currency)).await;
        let location = header_of(&response, header::LOCATION).expect("a Location");
        let created = json_body(response, StatusCode::CREATED).await;
        assert_eq!(created["price"], json!({"amount": read, "currency": currency}), "{sku}");
        assert_eq!(location, format!("/api/v2/products/{}", id_of(&created)));
        let path = format!("/products/{}", id_of(&created));
        let stored =
            json_body(send(v2(&app, Method::GET, &path, None)).await, StatusCode::OK).await;
        assert_eq!(stored["price"]["amount"], json!(read), "{sku}");
    }

    // The same product through v1: minor units, the same data.
    let euros = product(&app, &admin, "EUR-5", "89.99", "EUR").await;
    let v1 = json_body(app.get_product(id_of(&euros), None).await, StatusCode::OK).await;
    assert_eq!(v1["price"], json!({"amount": 8999, "currency": "EUR"}));

    // A change reads its price the same way.
    let path = format!("/products/{}", id_of(&euros));
    let body = json!({"price": {"amount": "5.5", "currency": "EUR"}});
    let changed = send(v2(&app, Method::PATCH, &path, Some(&admin)).json(&body)).await;
    let changed = json_body(changed, StatusCode::OK).await;
    assert_eq!(changed["price"], json!({"amount": "5.50", "currency": "EUR"}));

    // Orders, their totals and payments, in the currency of their lines.
    let customer = app.customer("Ada").await;
    for (sku, price, currency, quantity, total) in [
        ("EUR-6", "19.99", "EUR", 3, "59.97"),
        ("JPY-2", "1999", "JPY", 2, "3998"),
        ("KWD-3", "1.5", "KWD", 3, "4.500"),
    ] {
        let product = product(&app, &admin, sku, price, currency).await;
        let placed = order(&app, &customer, &product, quantity).await;
        let item = &placed["items"][0];
        assert_eq!(item["unit_price"]["amount"], json!(product["price"]["amount"]), "{sku}");
        assert_eq!(item["line_total"], json!({"amount": total, "currency": currency}), "{sku}");
        assert_eq!(placed["total"], json!({"amount": total, "currency": currency}), "{sku}");
        let paid =
            json_body(transition(&app, &customer, &placed, "pay").await, StatusCode::OK).await;
        assert_eq!(paid["payment"]["amount"], json!({"amount": total, "currency": currency}));
    }
}

async fn more_decimals_than_the_currency_has_is_a_field_error_naming_the_amount(app: TestApp) {
    let admin = app.admin().await;
    for (amount, currency) in [
        ("19.999", "EUR"),
        ("19.990", "EUR"),
        ("1999.0", "JPY"),
        ("1.0001", "KWD"),
        ("0.1234", "BHD"),
    ] {
        let response = create_product(&app, &admin, &product_body("DEC-1", amount, currency)).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(
            field_codes(&problem),
            pairs(&[("price.amount", "decimals")]),
            "{amount} {currency}"
        );
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(currency), "the message names the currency: {message}");
    }
    let product = product(&app, &admin, "DEC-2", "1.00", "EUR").await;
    let path = format!("/products/{}", id_of(&product));
    let body = json!({"price": {"amount": "1.001", "currency": "EUR"}, "stock": 1_000_000_001});
    let response = send(v2(&app, Method::PATCH, &path, Some(&admin)).json(&body)).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let mut found = field_codes(&problem);
    found.sort();
    assert_eq!(
        found,
        pairs(&[("price.amount", "decimals"), ("stock", "range")]),
        "every field at once"
    );
}

async fn malformed_negative_and_too_large_amounts_are_field_errors(app: TestApp) {
    let admin = app.admin().await;
    for (amount, code) in [
        ("-1", "range"),
        ("-0.01", "range"),
        ("10000000000.01", "range"),
        ("1e3", "pattern"),
        ("+1", "pattern"),
        (" 1", "pattern"),
        ("1 ", "pattern"),
        ("", "pattern"),
        ("abc", "pattern"),
        ("01", "pattern"),
        ("1.", "pattern"),
        (".5", "pattern"),
        ("1,50", "pattern"),
    ] {
        let response = create_product(&app, &admin, &product_body("BAD-1", amount, "EUR")).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[("price.amount", code)]), "{amount:?}");
    }
    // The largest amount is v1's.
    let largest = product(&app, &admin, "MAX-1", "10000000000.00", "EUR").await;
    assert_eq!(largest["price"]["amount"], "10000000000.00");
    // v1's integer minor units are not a v2 amount.
    let body = json!({"sku": "NUM-1", "name": "N", "price": {"amount": 1999, "currency": "EUR"}, "stock": 1});
    let response = create_product(&app, &admin, &body).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("decimal string")), "{problem}");
}

// --- lists ---

async fn lists_carry_has_more_and_an_absolute_next_url_followed_to_the_end(app: TestApp) {
    let admin = app.admin().await;
    for sku in ["L-5", "L-3", "L-1", "L-4", "L-2"] {
        product(&app, &admin, sku, "1.00", "EUR").await;
    }
    let pages = every_page(&app, None, "/products?limit=2&sort=name&q=L-").await;
    assert_eq!(pages.len(), 3);
    for page in &pages[..2] {
        let next = page["next"].as_str().expect("a next page");
        assert!(
            next.contains("limit=2") && next.contains("sort=name") && next.contains("q=L-"),
            "{next}"
        );
    }
    let skus: Vec<Value> = data(&pages).iter().map(|p| p["sku"].clone()).collect();
    assert_eq!(skus, ["L-1", "L-2", "L-3", "L-4", "L-5"].map(|s| json!(s)));
    assert!(data(&pages).iter().all(|p| p["price"]["amount"] == "1.00"));

    // One page: no next.
    let all = every_page(&app, None, "/products?limit=100").await;
    assert_eq!(all.len(), 1);

    // Users, a product's reviews and an order's history are v2 lists too.
    for _ in 0..2 {
        app.customer("Page").await;
    }
    let users = every_page(&app, Some(&admin), "/users?limit=1").await;
    assert_eq!(users.len(), 3, "an admin and two customers, one per page");
    let product = data(&all)[0].clone();
    let reviews = every_page(&app, None, &format!("/products/{}/reviews", id_of(&product))).await;
    assert_eq!(data(&reviews), Vec::<Value>::new());
}

async fn order_lists_are_summaries_unless_items_are_included(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = product(&app, &admin, "KB-1", "49.99", "EUR").await;
    for quantity in [1, 2, 3] {
        order(&app, &customer, &keyboard, quantity).await;
    }
    let lists = ["/orders?limit=2".to_owned(), format!("/users/{}/orders?limit=2", customer.id)];
    for list in &lists {
        let summaries = data(&every_page(&app, Some(&customer), list).await);
        assert_eq!(summaries.len(), 3, "{list}");
        for summary in &summaries {
            assert!(summary.get("items").is_none(), "a summary has no items: {summary}");
            assert_eq!(summary["total"]["currency"], "EUR");
            assert!(summary["total"]["amount"].is_string());
            assert!(summary["allowed_actions"].is_array() && summary.get("payment").is_some());
        }

        let pages = every_page(&app, Some(&customer), &format!("{list}&include=items")).await;
        assert!(pages[0]["next"].as_str().is_some_and(|next| next.contains("include=items")));
        let whole = data(&pages);
        assert_eq!(whole.len(), 3, "{list}");
        // Newest first: 3, 2, 1 units.
        let quantities: Vec<Value> =
            whole.iter().map(|o| o["items"][0]["quantity"].clone()).collect();
        assert_eq!(quantities, [json!(3), json!(2), json!(1)], "{list}");
        assert_eq!(
            whole[0]["items"][0]["unit_price"],
            json!({"amount": "49.99", "currency": "EUR"})
        );
        assert_eq!(whole[0]["total"]["amount"], "149.97");

        let response =
            send(v2(&app, Method::GET, &format!("{list}&include=payments"), Some(&customer))).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[("include", "one_of")]));
    }
}

// --- transitions ---

async fn a_transition_answers_with_the_order_and_its_etag(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = product(&app, &admin, "KB-1", "49.99", "EUR").await;
    let placed = order(&app, &customer, &keyboard, 2).await;
    let path = format!("/orders/{}", id_of(&placed));

    let response = transition(&app, &customer, &placed, "pay").await;
    let etag = header_of(&response, header::ETAG).expect("an ETag");
    assert_eq!(header_of(&response, header::CONTENT_LOCATION), Some(format!("/api/v2{path}")));
    assert_eq!(header_of(&response, header::LOCATION), None);
    let paid = json_body(response, StatusCode::OK).await;
    assert_eq!(paid["id"], placed["id"]);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["total"], json!({"amount": "99.98", "currency": "EUR"}));
    assert_eq!(paid["payment"]["status"], "captured");
    assert_eq!(paid["items"][0]["line_total"]["amount"], "99.98");
    assert_eq!(paid["allowed_actions"], json!([]), "a paid order, for its customer");

    // The ETag is the order's: a read with it is not modified, and it is a valid If-Match.
    let unchanged = send(
        v2(&app, Method::GET, &path, Some(&customer)).header(header::IF_NONE_MATCH, etag.as_str()),
    )
    .await;
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let read = send(v2(&app, Method::GET, &path, Some(&customer))).await;
    assert_eq!(header_of(&read, header::ETAG), Some(etag.clone()));
    assert_eq!(json_body(read, StatusCode::OK).await, paid);
    let shipped = send(
        v2(&app, Method::POST, &format!("{path}/transitions"), Some(&admin))
            .header(header::IF_MATCH, etag.as_str())
            .json(&json!({"action": "ship"})),
    )
    .await;
    let new_etag = header_of(&shipped, header::ETAG).expect("an ETag");
    assert_ne!(new_etag, etag);
    let shipped = json_body(shipped, StatusCode::OK).await;
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["allowed_actions"], json!(["deliver"]), "for an admin");

    // The history is still written, and is a v2 list in one page.
    let history = every_page(&app, Some(&customer), &format!("{path}/transitions")).await;
    let actions: Vec<Value> = data(&history).iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, [json!("place"), json!("pay"), json!("ship")]);

    // A refusal is v1's problem.
    let response = transition(&app, &customer, &placed, "pay").await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "ORDER_INVALID_TRANSITION").await;
    assert_eq!(problem["current_status"], "shipped");
}

// --- locations and idempotency ---

async fn locations_name_v2_paths(app: TestApp) {
    let admin = app.admin().await;
    let email = format!("grace-{}@example.com", orderly_domain::Uuid::now_v7().simple());
    let body = json!({"email": email, "password": "correct horse battery staple", "name": "Grace"});
    let response = send(v2(&app, Method::POST, "/users", None).json(&body)).await;
    let location = header_of(&response, header::LOCATION);
    let user = json_body(response, StatusCode::CREATED).await;
    assert_eq!(location, Some(format!("/api/v2/users/{}", id_of(&user))));

    let customer = app.customer("Ada").await;
    let keyboard = product(&app, &admin, "KB-1", "49.99", "EUR").await;
    let response = place(&app, &customer, &keyboard, 1).await;
    let location = header_of(&response, header::LOCATION);
    let placed = json_body(response, StatusCode::CREATED).await;
    assert_eq!(location, Some(format!("/api/v2/orders/{}", id_of(&placed))));

    for (who, action) in [(&customer, "pay"), (&admin, "ship"), (&admin, "deliver")] {
        json_body(transition(&app, who, &placed, action).await, StatusCode::OK).await;
    }
    let path = format!("/products/{}/reviews", id_of(&keyboard));
    let review = json!({"rating": 5, "title": "Quiet", "body": "Typing all day."});
    let response = send(v2(&app, Method::POST, &path, Some(&customer)).json(&review)).await;
    let location = header_of(&response, header::LOCATION);
    let written = json_body(response, StatusCode::CREATED).await;
    assert_eq!(location, Some(format!("/api/v2/reviews/{}", id_of(&written))));
    let reviews = data(&every_page(&app, None, &path).await);
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["id"], written["id"]);
    let product =
        send(v2(&app, Method::GET, &format!("/products/{}", id_of(&keyboard)), None)).await;
    assert_eq!(json_body(product, StatusCode::OK).await["rating"]["count"], 1);
}

async fn an_idempotent_v2_order_and_move_are_replayed_as_v2(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = product(&app, &admin, "KB-1", "49.99", "EUR").await;
    let body = json!({"items": [{"product_id": id_of(&keyboard), "quantity": 2}]});
    let post = |path: &str, body: &Value, key: &str| {
        v2(&app, Method::POST, path, Some(&customer)).header("Idempotency-Key", key).json(body)
    };
    let snapshot = |response: Response| async move {
        let headers = [header::LOCATION, header::ETAG, header::CONTENT_LOCATION]
            .map(|name| header_of(&response, name));
        let replayed = header_of(&response, "idempotent-replayed");
        (response.status(), headers, replayed, response.text().await.expect("a body"))
    };

    let first = snapshot(send(post("/orders", &body, "v2-order-1")).await).await;
    let again = snapshot(send(post("/orders", &body, "v2-order-1")).await).await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!((first.2.as_deref(), again.2.as_deref()), (None, Some("true")));
    assert_eq!(
        (&first.0, &first.1, &first.3),
        (&again.0, &again.1, &again.3),
        "the first answer again"
    );
    let placed: Value = serde_json::from_str(&first.3).expect("JSON");
    assert_eq!(placed["total"]["amount"], "99.98");
    let orders = data(&every_page(&app, Some(&customer), "/orders").await);
    assert_eq!(orders.len(), 1, "one order");

    // The key was used for a v2 request: the same key on v1 is another request.
    let v1 = app
        .request(Method::POST, "/api/v1/orders", Some(&customer.access_token))
        .header("Idempotency-Key", "v2-order-1")
        .json(&body);
    assert_problem(send(v1).await, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
        .await;

    let path = format!("/orders/{}/transitions", id_of(&placed));
    let pay = json!({"action": "pay"});
    let first = snapshot(send(post(&path, &pay, "v2-pay-1")).await).await;
    let again = snapshot(send(post(&path, &pay, "v2-pay-1")).await).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(again.2.as_deref(), Some("true"));
    assert_eq!(
        (&first.0, &first.1, &first.3),
        (&again.0, &again.1, &again.3),
        "the first answer again"
    );
    assert_eq!(first.1[2], Some(format!("/api/v2/orders/{}", id_of(&placed))), "Content-Location");
    let paid: Value = serde_json::from_str(&first.3).expect("JSON");
    assert_eq!(
        (&paid["status"], &paid["payment"]["amount"]["amount"]),
        (&json!("paid"), &json!("99.98"))
    );
}

// --- v1 beside v2 ---

async fn v1_answers_as_before(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = app.product(&admin, "KB-1", 4999, 10).await;
    assert_eq!(keyboard["price"], json!({"amount": 4999, "currency": "EUR"}));
    let placed = app.order(&customer, id_of(&keyboard), 2).await;
    assert_eq!(placed["total"], json!({"amount": 9998, "currency": "EUR"}));
    let list = json_body(app.list_orders(&customer.access_token, "").await, StatusCode::OK).await;
    assert!(list.get("has_more").is_none() && list.get("next_cursor").is_some(), "{list}");
    assert!(list["data"][0]["items"].is_array(), "v1 lists whole orders");
    let moved = app
        .transition(&customer.access_token, id_of(&placed), &json!({"action": "pay"}), None)
        .await;
    let location = header_of(&moved, header::LOCATION);
    let entry = json_body(moved, StatusCode::CREATED).await;
    assert_eq!(location, Some(format!("/api/v1/orders/{}/transitions", id_of(&placed))));
    assert_eq!((&entry["action"], &entry["to"]), (&json!("pay"), &json!("paid")));
}

// --- every route ---

async fn every_v2_route_answers(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let keyboard = product(&app, &admin, "KB-1", "49.99", "EUR").await;
    let placed = order(&app, &customer, &keyboard, 1).await;
    for (who, action) in [(&customer, "pay"), (&admin, "ship"), (&admin, "deliver")] {
        json_body(transition(&app, who, &placed, action).await, StatusCode::OK).await;
    }
    let path = format!("/products/{}/reviews", id_of(&keyboard));
    let review = json!({"rating": 4, "title": "Good", "body": "Fine."});
    let review = json_body(
        send(v2(&app, Method::POST, &path, Some(&customer)).json(&review)).await,
        StatusCode::CREATED,
    )
    .await;

    // A public address: registered without a lookup, for an event the run never makes.
    let hook = json!({"url": "http://1.1.1.1/hook", "event_types": ["orderly.user.deleted.v1"]});
    let hook = json_body(
        send(v2(&app, Method::POST, "/webhook-endpoints", Some(&admin)).json(&hook)).await,
        StatusCode::CREATED,
    )
    .await;

    // Reads of real resources answer 200 in v2's shapes; writes, sent an empty body or an
    // unknown id, answer a problem of their handler, never a routing one.
    let unknown = orderly_domain::Uuid::now_v7().to_string();
    let v2_endpoints: Vec<_> =
        endpoints().iter().filter(|e| e.version() == Some(Version::V2)).collect();
    assert!(v2_endpoints.len() >= 22, "v2 serves every resource: {v2_endpoints:?}");
    for endpoint in v2_endpoints {
        let template = endpoint.path();
        let method = Method::from_bytes(endpoint.method().as_str().as_bytes()).expect("a method");
        let target = if method == Method::GET {
            let id = match template {
                t if t.starts_with("/api/v2/products/") => id_of(&keyboard),
                t if t.starts_with("/api/v2/orders/") => id_of(&placed),
                t if t.starts_with("/api/v2/users/") => customer.id.as_str(),
                t if t.starts_with("/api/v2/reviews/") => id_of(&review),
                t if t.starts_with("/api/v2/webhook-endpoints/") => id_of(&hook),
                _ => "",
            };
            template.replace("{id}", id)
        } else {
            template.replace("{id}", &unknown).replace("{delivery_id}", &unknown)
        };
        let mut request = app.request(method.clone(), &target, Some(&admin.access_token));
        if method != Method::GET && method != Method::DELETE {
            request = request.json(&json!({}));
        }
        let response = send(request).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let what = format!("{method} {target}: {status} {body}");
        if method == Method::GET {
            assert_eq!(status, StatusCode::OK, "{what}");
            if let Some(data) = body.get("data") {
                assert!(data.is_array() && body["has_more"].is_boolean(), "{what}");
                assert!(body.get("next").is_some() && body.get("next_cursor").is_none(), "{what}");
            }
        } else {
            assert!(status.is_client_error(), "{what}");
            assert!(
                !["ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"]
                    .contains(&body["code"].as_str().unwrap_or("")),
                "{what}"
            );
        }
    }
}

api_tests!(
    prices_are_decimal_strings_in_the_currency_s_exponent_both_ways,
    more_decimals_than_the_currency_has_is_a_field_error_naming_the_amount,
    malformed_negative_and_too_large_amounts_are_field_errors,
    lists_carry_has_more_and_an_absolute_next_url_followed_to_the_end,
    order_lists_are_summaries_unless_items_are_included,
    a_transition_answers_with_the_order_and_its_etag,
    locations_name_v2_paths,
    an_idempotent_v2_order_and_move_are_replayed_as_v2,
    v1_answers_as_before,
    every_v2_route_answers,
);
