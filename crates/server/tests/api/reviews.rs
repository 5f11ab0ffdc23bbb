//! Product reviews over HTTP: the purchase rule, one review per product and author, the fields'
//! bounds, the product's rating kept exact through writes, edits, hiding and deletion (also under
//! concurrent writes), conditional edits, moderation, listing with its sorts, filters and
//! cursors, deleting an author, and the rate-limit and metrics coverage every route has.

use std::collections::HashSet;

use futures::future::join_all;
use orderly_domain::time::{DateTime, Utc};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body};

// --- helpers of this file ---

fn header_of(response: &Response, name: impl header::AsHeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn etag_of(response: &Response) -> String {
    header_of(response, header::ETAG).expect("an ETag header")
}

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// The path and query of the `Link: <...>; rel="next"` header, if any.
fn next_link(response: &Response) -> Option<String> {
    let link = header_of(response, header::LINK)?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link.strip_prefix('<')?.split_once('>')?.0.to_owned())
}

/// The `(field, code)` pairs of a validation problem.
fn field_codes(problem: &Value) -> HashSet<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|error| {
            let text = |key: &str| error[key].as_str().expect("a string").to_owned();
            (text("field"), text("code"))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> HashSet<(String, String)> {
    expected.iter().map(|(field, code)| ((*field).to_owned(), (*code).to_owned())).collect()
}

/// The `field` of every item of a page, in order.
fn column(page: &Value, field: &str) -> Vec<Value> {
    page["data"].as_array().expect("a data array").iter().map(|item| item[field].clone()).collect()
}

fn review_body(rating: i64, title: &str) -> Value {
    json!({"rating": rating, "title": title, "body": "Typing all day.\nNo complaints."})
}

// The endpoints (helpers.rs has no review methods).

async fn write_review(app: &TestApp, token: Option<&str>, product: &str, body: &Value) -> Response {
    let path = format!("/api/v1/products/{product}/reviews");
    app.request(Method::POST, &path, token).json(body).send().await.expect("sent")
}

async fn list_reviews(app: &TestApp, product: &str, query: &[(&str, &str)]) -> Response {
    let path = format!("/api/v1/products/{product}/reviews");
    app.request(Method::GET, &path, None).query(query).send().await.expect("sent")
}

async fn get_review(
    app: &TestApp,
    token: Option<&str>,
    id: &str,
    if_none_match: Option<&str>,
) -> Response {
    let mut builder = app.request(Method::GET, &format!("/api/v1/reviews/{id}"), token);
    if let Some(tag) = if_none_match {
        builder = builder.header(header::IF_NONE_MATCH, tag);
    }
    builder.send().await.expect("sent")
}

async fn patch_review(
    app: &TestApp,
    token: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Response {
    let mut builder =
        app.request(Method::PATCH, &format!("/api/v1/reviews/{id}"), Some(token)).json(body);
    if let Some(tag) = if_match {
        builder = builder.header(header::IF_MATCH, tag);
    }
    builder.send().await.expect("sent")
}

async fn delete_review(app: &TestApp, token: Option<&str>, id: &str) -> Response {
    app.request(Method::DELETE, &format!("/api/v1/reviews/{id}"), token).send().await.expect("sent")
}

// Fixtures.

/// Makes `action` on `order` as `user` and checks that it was accepted.
async fn act(app: &TestApp, user: &TestUser, order: &Value, action: &str) {
    let response =
        app.transition(&user.access_token, id_of(order), &json!({"action": action}), None).await;
    json_body(response, StatusCode::CREATED).await;
}

/// A new customer called `name` with a delivered order of one unit of `product` (paid by them,
/// shipped and delivered by `admin`).
async fn customer_who_received(
    app: &TestApp,
    admin: &TestUser,
    name: &str,
    product: &str,
) -> TestUser {
    let customer = app.customer(name).await;
    let order = app.order(&customer, product, 1).await;
    act(app, &customer, &order, "pay").await;
    act(app, admin, &order, "ship").await;
    act(app, admin, &order, "deliver").await;
    customer
}

/// `customer`'s review of `product` with `rating` stars; returns it as created.
async fn review(app: &TestApp, customer: &TestUser, product: &str, rating: i64) -> Value {
    let body = review_body(rating, &format!("{rating} stars"));
    let response = write_review(app, Some(&customer.access_token), product, &body).await;
    json_body(response, StatusCode::CREATED).await
}

/// The product's `rating` as anyone reads it.
async fn rating_of(app: &TestApp, product: &str) -> Value {
    json_body(app.get_product(product, None).await, StatusCode::OK).await["rating"].clone()
}

/// Every visible review of `product` (one page of the largest size).
async fn listed(app: &TestApp, product: &str) -> Vec<Value> {
    let page =
        json_body(list_reviews(app, product, &[("limit", "100")]).await, StatusCode::OK).await;
    assert_eq!(page["next_cursor"], Value::Null);
    page["data"].as_array().expect("a data array").clone()
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    let raw = value.as_str().expect("a timestamp");
    DateTime::parse_from_rfc3339(raw).expect("RFC 3339").to_utc()
}

fn ids_of(reviews: &[Value]) -> Vec<String> {
    reviews.iter().map(|review| id_of(review).to_owned()).collect()
}

/// Asserts that a body names no e-mail address: neither a key nor the author's address.
fn assert_no_email(text: &str, author: &TestUser) {
    assert!(!text.contains(&author.email), "the author's address leaked: {text}");
    assert!(!text.to_lowercase().contains("email"), "an e-mail field: {text}");
}

// --- the purchase rule ---

async fn only_a_customer_whose_order_was_delivered_may_review_the_product(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let elsewhere = app.product(&admin, "REV-002", 999, 10).await;
    let id = id_of(&product);
    let ada = app.customer("Ada").await;
    let body = review_body(5, "Quiet and solid");
    let refuse = |token: String, product: String| {
        let app = &app;
        let body = &body;
        async move {
            let response = write_review(app, Some(&token), &product, body).await;
            assert_problem(response, StatusCode::FORBIDDEN, "REVIEW_REQUIRES_PURCHASE").await;
        }
    };

    refuse(ada.access_token.clone(), id.to_owned()).await;
    let order = app.order(&ada, id, 1).await;
    refuse(ada.access_token.clone(), id.to_owned()).await; // pending payment
    act(&app, &ada, &order, "pay").await;
    refuse(ada.access_token.clone(), id.to_owned()).await; // paid
    act(&app, &admin, &order, "ship").await;
    refuse(ada.access_token.clone(), id.to_owned()).await; // shipped
    act(&app, &admin, &order, "deliver").await;
    // A delivered order of one product is no purchase of another.
    refuse(ada.access_token.clone(), id_of(&elsewhere).to_owned()).await;

    let response = write_review(&app, Some(&ada.access_token), id, &body).await;
    let location = header_of(&response, header::LOCATION).expect("a Location header");
    assert_eq!(etag_of(&response), "\"v1\"");
    let text = response.text().await.expect("a body");
    assert_no_email(&text, &ada);
    let created: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(location, format!("/api/v1/reviews/{}", id_of(&created)));
    let keys: HashSet<&str> =
        created.as_object().expect("an object").keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "id",
        "product_id",
        "author",
        "rating",
        "title",
        "body",
        "verified_purchase",
        "hidden",
        "hidden_reason",
        "created_at",
        "updated_at",
    ]
    .into();
    assert_eq!(keys, expected, "{created}");
    assert_eq!(created["product_id"], product["id"]);
    assert_eq!(created["author"], json!({"id": ada.id, "name": "Ada"}));
    assert_eq!(created["rating"], 5);
    assert_eq!(created["title"], "Quiet and solid");
    assert_eq!(created["body"], "Typing all day.\nNo complaints.");
    assert_eq!(created["verified_purchase"], true);
    assert_eq!((&created["hidden"], &created["hidden_reason"]), (&json!(false), &Value::Null));
    assert_eq!(created["created_at"], created["updated_at"]);

    // Anyone reads it at its Location, and in the product's list; never with an address.
    let fetched = app.request(Method::GET, &location, None).send().await.expect("sent");
    assert_eq!(etag_of(&fetched), "\"v1\"");
    let text = fetched.text().await.expect("a body");
    assert_no_email(&text, &ada);
    assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), created);
    let list = list_reviews(&app, id, &[]).await.text().await.expect("a body");
    assert_no_email(&list, &ada);
    assert_eq!(serde_json::from_str::<Value>(&list).expect("JSON")["data"], json!([created]));
    assert_eq!(rating_of(&app, id).await, json!({"average": 5.0, "count": 1}));

    // The rule holds for administrators too.
    refuse(admin.access_token.clone(), id.to_owned()).await;
}

async fn writing_a_review_needs_a_token_and_an_existing_product(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let ada = customer_who_received(&app, &admin, "Ada", id_of(&product)).await;
    let body = review_body(4, "Fine");

    let anonymous = write_review(&app, None, id_of(&product), &body).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let unknown = orderly_domain::Uuid::now_v7().to_string();
    let nowhere = write_review(&app, Some(&ada.access_token), &unknown, &body).await;
    assert_problem(nowhere, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(listed(&app, id_of(&product)).await, Vec::<Value>::new());
}

// --- one review per product ---

async fn a_second_review_of_the_same_product_by_the_same_author_is_a_conflict(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let first = review(&app, &ada, id, 5).await;

    let again = write_review(&app, Some(&ada.access_token), id, &review_body(1, "Changed")).await;
    assert_problem(again, StatusCode::CONFLICT, "REVIEW_EXISTS").await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 5.0, "count": 1}));
    assert_eq!(ids_of(&listed(&app, id).await), vec![id_of(&first).to_owned()]);
}

// --- bounds ---

async fn review_fields_out_of_bounds_are_refused_with_their_codes(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let refused = |body: Value, expected: &'static [(&'static str, &'static str)]| {
        let (app, token) = (&app, ada.access_token.clone());
        async move {
            let response = write_review(app, Some(&token), id, &body).await;
            let problem =
                assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
            assert_eq!(field_codes(&problem), pairs(expected), "{body}: {problem}");
        }
    };

    refused(json!({"rating": 0, "title": "Fine", "body": "Fine"}), &[("rating", "range")]).await;
    refused(json!({"rating": 6, "title": "Fine", "body": "Fine"}), &[("rating", "range")]).await;
    refused(
        json!({"rating": 0, "title": "   ", "body": "x".repeat(4001)}),
        &[("rating", "range"), ("title", "length"), ("body", "length")],
    )
    .await;
    refused(json!({"rating": 3, "title": "t".repeat(121), "body": "Fine"}), &[("title", "length")])
        .await;
    refused(json!({"rating": 3, "title": "Fine", "body": " \n "}), &[("body", "length")]).await;
    refused(
        json!({"rating": 3, "title": "Two\nlines", "body": "Fine"}),
        &[("title", "control_characters")],
    )
    .await;
    refused(
        json!({"rating": 3, "title": "Fine", "body": "A bell\u{7}"}),
        &[("body", "control_characters")],
    )
    .await;
    let unknown = json!({"rating": 3, "title": "Fine", "body": "Fine", "status": "published"});
    let response = write_review(&app, Some(&ada.access_token), id, &unknown).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(listed(&app, id).await, Vec::<Value>::new(), "nothing was stored");
    assert_eq!(rating_of(&app, id).await, json!({"average": null, "count": 0}));

    // The limits are characters, counted after trimming; line breaks are allowed in the body.
    let title = "é".repeat(120);
    let text = format!("{}\n\n{}\r\n{}", "a".repeat(1000), "b".repeat(1996), "c".repeat(1000));
    assert_eq!(text.chars().count(), 4000);
    let padded =
        json!({"rating": 3, "title": format!("  {title} "), "body": format!("\n {text}\n\t")});
    let response = write_review(&app, Some(&ada.access_token), id, &padded).await;
    let created = json_body(response, StatusCode::CREATED).await;
    assert_eq!((&created["title"], &created["body"]), (&json!(title), &json!(text)));
    let stored =
        json_body(get_review(&app, None, id_of(&created), None).await, StatusCode::OK).await;
    assert_eq!((&stored["title"], &stored["body"]), (&json!(title), &json!(text)));

    // A change is held to the same bounds.
    for (body, expected) in [
        (json!({"rating": 6}), ("rating", "range")),
        (json!({"title": "t".repeat(121)}), ("title", "length")),
        (json!({"title": "a\nb"}), ("title", "control_characters")),
        (json!({"body": "  "}), ("body", "length")),
    ] {
        let response = patch_review(&app, &ada.access_token, id_of(&created), &body, None).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[expected]), "{body}: {problem}");
    }
    let response =
        patch_review(&app, &ada.access_token, id_of(&created), &json!({"status": "x"}), None).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    let unchanged = get_review(&app, None, id_of(&created), None).await;
    assert_eq!(etag_of(&unchanged), "\"v1\"", "no refused change was stored");
}

// --- the product's rating ---

async fn the_products_rating_follows_writes_edits_hiding_and_deletions(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let bob = customer_who_received(&app, &admin, "Bob", id).await;
    let cyd = customer_who_received(&app, &admin, "Cyd", id).await;
    let before = app.get_product(id, None).await;
    let old_tag = etag_of(&before);
    assert_eq!(
        json_body(before, StatusCode::OK).await["rating"],
        json!({"average": null, "count": 0})
    );

    let five = review(&app, &ada, id, 5).await;
    let fresh = app.get_product(id, Some(&old_tag)).await;
    assert_ne!(etag_of(&fresh), old_tag, "a review changes the product's representation");
    let fresh = json_body(fresh, StatusCode::OK).await;
    assert_eq!(fresh["rating"], json!({"average": 5.0, "count": 1}));
    let four = review(&app, &bob, id, 4).await;
    review(&app, &cyd, id, 4).await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 4.33, "count": 3}));
    let catalogue = json_body(app.list_products(None, "").await, StatusCode::OK).await;
    assert_eq!(catalogue["data"][0]["rating"], json!({"average": 4.33, "count": 3}));

    let edited =
        patch_review(&app, &bob.access_token, id_of(&four), &json!({"rating": 1}), None).await;
    assert_eq!(json_body(edited, StatusCode::OK).await["rating"], 1);
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.33, "count": 3}), "5 + 1 + 4");

    let hide = json!({"hidden": true, "hidden_reason": "Off-topic"});
    json_body(
        patch_review(&app, &admin.access_token, id_of(&five), &hide, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 2.5, "count": 2}), "1 + 4");
    // Hiding again (another reason) changes no count.
    let rehide = json!({"hidden": true, "hidden_reason": "Spam"});
    json_body(
        patch_review(&app, &admin.access_token, id_of(&five), &rehide, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 2.5, "count": 2}));
    let show = json!({"hidden": false});
    json_body(
        patch_review(&app, &admin.access_token, id_of(&five), &show, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.33, "count": 3}));

    let deleted = delete_review(&app, Some(&bob.access_token), id_of(&four)).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(rating_of(&app, id).await, json!({"average": 4.5, "count": 2}), "5 + 4");
}

async fn concurrent_reviews_of_one_product_all_count(app: TestApp) {
    const RATINGS: [i64; 9] = [5, 4, 4, 3, 5, 2, 4, 5, 1];
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 100).await;
    let id = id_of(&product);
    let customers = join_all((0..RATINGS.len()).map(|n| {
        let (app, admin) = (&app, &admin);
        async move { customer_who_received(app, admin, &format!("Rater{n}"), id).await }
    }))
    .await;

    let responses = join_all(customers.iter().zip(RATINGS).map(|(customer, rating)| {
        let body = review_body(rating, "Concurrent");
        let token = customer.access_token.clone();
        let app = &app;
        async move { write_review(app, Some(&token), id, &body).await }
    }))
    .await;
    for response in responses {
        json_body(response, StatusCode::CREATED).await;
    }

    // 33 / 9 = 3.666..., rounded to two decimals.
    assert_eq!(RATINGS.iter().sum::<i64>(), 33);
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.67, "count": RATINGS.len()}));
    let mut stars: Vec<i64> = listed(&app, id)
        .await
        .iter()
        .map(|review| review["rating"].as_i64().expect("a rating"))
        .collect();
    stars.sort_unstable();
    let mut expected = RATINGS.to_vec();
    expected.sort_unstable();
    assert_eq!(stars, expected);
}

// --- editing ---

async fn the_author_edits_with_if_match_and_nobody_else_edits_the_text(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let bob = app.customer("Bob").await;
    let created = review(&app, &ada, id, 4).await;
    let review_id = id_of(&created);

    let change = json!({"rating": 3, "title": "  Better than expected  "});
    let response = patch_review(&app, &ada.access_token, review_id, &change, Some("\"v1\"")).await;
    let tag = etag_of(&response);
    assert_ne!(tag, "\"v1\"", "a change makes a new ETag");
    let edited = json_body(response, StatusCode::OK).await;
    assert_eq!(edited["rating"], 3);
    assert_eq!(edited["title"], "Better than expected");
    assert_eq!(edited["body"], created["body"], "an absent field is kept");
    assert_eq!(edited["created_at"], created["created_at"]);
    assert!(timestamp(&edited["updated_at"]) >= timestamp(&created["updated_at"]), "{edited}");

    let stale =
        patch_review(&app, &ada.access_token, review_id, &json!({"rating": 1}), Some("\"v1\""))
            .await;
    assert_problem(stale, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    let current = get_review(&app, None, review_id, Some(&tag)).await;
    assert_eq!(current.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag_of(&current), tag);
    let old = get_review(&app, None, review_id, Some("\"v1\"")).await;
    assert_eq!(json_body(old, StatusCode::OK).await, edited, "the stale change was not stored");

    let by_bob =
        patch_review(&app, &bob.access_token, review_id, &json!({"rating": 1}), None).await;
    assert_problem(by_bob, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let by_admin =
        patch_review(&app, &admin.access_token, review_id, &json!({"title": "Edited"}), None).await;
    assert_problem(by_admin, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    for hidden in [true, false] {
        let response =
            patch_review(&app, &ada.access_token, review_id, &json!({"hidden": hidden}), None)
                .await;
        assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    let anonymous = app
        .request(Method::PATCH, &format!("/api/v1/reviews/{review_id}"), None)
        .json(&json!({"rating": 1}))
        .send()
        .await
        .expect("sent");
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let unchanged = get_review(&app, None, review_id, None).await;
    assert_eq!(etag_of(&unchanged), tag, "no refused change was stored");
    assert_eq!(json_body(unchanged, StatusCode::OK).await, edited);

    // Without If-Match the author's change is applied to the current version.
    let response =
        patch_review(&app, &ada.access_token, review_id, &json!({"body": "Even better."}), None)
            .await;
    assert_ne!(etag_of(&response), tag);
    assert_eq!(json_body(response, StatusCode::OK).await["body"], "Even better.");
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.0, "count": 1}));
}

async fn parallel_edits_of_one_review_keep_the_products_rating_exact(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let written = review(&app, &ada, id, 3).await;
    let review_id = id_of(&written);

    // Ten edits of version 1: exactly one is applied, the others are refused as stale.
    let edits = join_all((0..10).map(|n| {
        let (app, token) = (&app, ada.access_token.clone());
        async move {
            let body = json!({"rating": n % 5 + 1, "title": format!("Edit {n}")});
            patch_review(app, &token, review_id, &body, Some("\"v1\"")).await
        }
    }))
    .await;
    let mut applied = Vec::new();
    for response in edits {
        if response.status() == StatusCode::OK {
            applied.push(json_body(response, StatusCode::OK).await);
        } else {
            assert_problem(response, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
        }
    }
    assert_eq!(applied.len(), 1, "{applied:?}");
    let stored = json_body(get_review(&app, None, review_id, None).await, StatusCode::OK).await;
    assert_eq!(stored, applied[0]);
    let stars = stored["rating"].as_f64().expect("a rating");
    assert_eq!(rating_of(&app, id).await, json!({"average": stars, "count": 1}));

    // Unconditional edits and moderation racing: whatever wins, the rating matches the review.
    let changes = join_all((0..8).map(|n| {
        let (app, ada, admin) = (&app, &ada, &admin);
        async move {
            let (token, body) = match n % 4 {
                0 => (&admin.access_token, json!({"hidden": true})),
                2 => (&admin.access_token, json!({"hidden": false})),
                _ => (&ada.access_token, json!({"rating": n % 5 + 1})),
            };
            patch_review(app, token, review_id, &body, None).await
        }
    }))
    .await;
    for response in changes {
        if response.status() != StatusCode::OK {
            assert_problem(response, StatusCode::CONFLICT, "CONCURRENT_MODIFICATION").await;
        }
    }
    let last = json_body(
        get_review(&app, Some(&admin.access_token), review_id, None).await,
        StatusCode::OK,
    )
    .await;
    let expected = if last["hidden"] == json!(true) {
        json!({"average": null, "count": 0})
    } else {
        json!({"average": last["rating"].as_f64().expect("a rating"), "count": 1})
    };
    assert_eq!(rating_of(&app, id).await, expected, "{last}");
}

// --- hiding ---

async fn a_hidden_review_is_seen_only_by_its_author_and_admins(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let bob = customer_who_received(&app, &admin, "Bob", id).await;
    let hidden = review(&app, &ada, id, 1).await;
    let kept = review(&app, &bob, id, 5).await;
    let review_id = id_of(&hidden);

    for (body, code) in [
        (json!({"hidden": true, "hidden_reason": "r".repeat(501)}), "length"),
        (json!({"hidden": true, "hidden_reason": " "}), "length"),
    ] {
        let response = patch_review(&app, &admin.access_token, review_id, &body, None).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[("hidden_reason", code)]), "{problem}");
    }
    assert_eq!(listed(&app, id).await.len(), 2, "nothing was hidden");

    let hide = json!({"hidden": true, "hidden_reason": "  Off-topic  "});
    let response = patch_review(&app, &admin.access_token, review_id, &hide, Some("\"v1\"")).await;
    let tag = etag_of(&response);
    let moderated = json_body(response, StatusCode::OK).await;
    assert_eq!(
        (&moderated["hidden"], &moderated["hidden_reason"]),
        (&json!(true), &json!("Off-topic"))
    );
    assert_eq!(moderated["author"], json!({"id": ada.id, "name": "Ada"}));

    assert_eq!(ids_of(&listed(&app, id).await), vec![id_of(&kept).to_owned()]);
    for token in [None, Some(bob.access_token.as_str())] {
        let response = get_review(&app, token, review_id, None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
    for reader in [&ada, &admin] {
        let response = get_review(&app, Some(&reader.access_token), review_id, None).await;
        assert_eq!(etag_of(&response), tag);
        let seen = json_body(response, StatusCode::OK).await;
        assert_eq!(seen, moderated);
    }
    // To anyone else it does not exist: no change, no deletion.
    let response =
        patch_review(&app, &bob.access_token, review_id, &json!({"rating": 5}), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = delete_review(&app, Some(&bob.access_token), review_id).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    // The author may still revise it; it stays hidden.
    let revised =
        patch_review(&app, &ada.access_token, review_id, &json!({"rating": 2}), None).await;
    let revised = json_body(revised, StatusCode::OK).await;
    assert_eq!((&revised["hidden"], &revised["rating"]), (&json!(true), &json!(2)));
    assert_eq!(rating_of(&app, id).await, json!({"average": 5.0, "count": 1}));

    let show =
        patch_review(&app, &admin.access_token, review_id, &json!({"hidden": false}), None).await;
    let shown = json_body(show, StatusCode::OK).await;
    assert_eq!((&shown["hidden"], &shown["hidden_reason"]), (&json!(false), &Value::Null));
    let visible = json_body(get_review(&app, None, review_id, None).await, StatusCode::OK).await;
    assert_eq!(visible, shown);
    assert_eq!(listed(&app, id).await.len(), 2);
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.5, "count": 2}));

    // Every body the schema allows means one thing: a reason alone hides, showing drops it.
    let reason_alone = json!({"hidden_reason": "Spam"});
    let response = patch_review(&app, &admin.access_token, review_id, &reason_alone, None).await;
    let hidden_again = json_body(response, StatusCode::OK).await;
    assert_eq!(
        (&hidden_again["hidden"], &hidden_again["hidden_reason"]),
        (&json!(true), &json!("Spam"))
    );
    let show_with_reason = json!({"hidden": false, "hidden_reason": "Spam"});
    let response =
        patch_review(&app, &admin.access_token, review_id, &show_with_reason, None).await;
    let shown = json_body(response, StatusCode::OK).await;
    assert_eq!((&shown["hidden"], &shown["hidden_reason"]), (&json!(false), &Value::Null));
    let response = patch_review(&app, &ada.access_token, review_id, &reason_alone, None).await;
    assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
}

// --- listing ---

async fn reviews_are_listed_in_pages_sorted_and_filtered(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let mut created = Vec::new();
    for (n, stars) in [3, 5, 4, 4, 1].into_iter().enumerate() {
        let customer = customer_who_received(&app, &admin, &format!("Lister{n}"), id).await;
        created.push(review(&app, &customer, id, stars).await);
    }
    let newest_first: Vec<String> = ids_of(&created).into_iter().rev().collect();

    // Pages of two, following the Link header, cover all five once, newest first.
    let mut seen = Vec::new();
    let mut response = list_reviews(&app, id, &[("limit", "2")]).await;
    let mut pages = 0;
    loop {
        pages += 1;
        let link = next_link(&response);
        let page = json_body(response, StatusCode::OK).await;
        assert!(page["data"].as_array().expect("data").len() <= 2, "{page}");
        seen.extend(ids_of(page["data"].as_array().expect("data")));
        let Some(link) = link else {
            assert_eq!(page["next_cursor"], Value::Null);
            break;
        };
        let cursor = page["next_cursor"].as_str().expect("a cursor with a Link");
        let url = reqwest::Url::parse(&app.url(&link)).expect("a URL");
        assert_eq!(url.path(), format!("/api/v1/products/{id}/reviews"));
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(query.contains(&("limit".to_owned(), "2".to_owned())), "{link}");
        assert!(query.contains(&("cursor".to_owned(), cursor.to_owned())), "{link}");
        response = app.request(Method::GET, &link, None).send().await.expect("sent");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    // The same through next_cursor, oldest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2"), ("sort", "created_at")];
        if let Some(cursor) = cursor.as_deref() {
            query.push(("cursor", cursor));
        }
        let page = json_body(list_reviews(&app, id, &query).await, StatusCode::OK).await;
        seen.extend(ids_of(page["data"].as_array().expect("data")));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids_of(&created));

    // By rating, both ways, in pages of two (ties on 4 stars cross a page boundary).
    for (sort, descending) in [("-rating", true), ("rating", false)] {
        let mut stars = Vec::new();
        let mut ids = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "2"), ("sort", sort)];
            if let Some(cursor) = cursor.as_deref() {
                query.push(("cursor", cursor));
            }
            let page = json_body(list_reviews(&app, id, &query).await, StatusCode::OK).await;
            for item in page["data"].as_array().expect("data") {
                assert!(ids.insert(id_of(item).to_owned()), "{sort}: listed twice: {item}");
                stars.push(item["rating"].as_i64().expect("a rating"));
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let expected = if descending { vec![5, 4, 4, 3, 1] } else { vec![1, 3, 4, 4, 5] };
        assert_eq!(stars, expected, "sort={sort}");
        assert_eq!(ids.len(), 5);
    }

    let fours = json_body(list_reviews(&app, id, &[("rating", "4")]).await, StatusCode::OK).await;
    assert_eq!(column(&fours, "rating"), vec![json!(4), json!(4)]);
    assert_eq!(column(&fours, "id"), vec![json!(created[3]["id"]), json!(created[2]["id"])]);
    let none = json_body(list_reviews(&app, id, &[("rating", "2")]).await, StatusCode::OK).await;
    assert_eq!(none, json!({"data": [], "next_cursor": null}));

    for (query, field) in [
        (("sort", "bogus"), "sort"),
        (("rating", "6"), "rating"),
        (("rating", "0"), "rating"),
        (("limit", "0"), "limit"),
        (("limit", "101"), "limit"),
    ] {
        let response = list_reviews(&app, id, &[query]).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        let fields: HashSet<String> = field_codes(&problem).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, HashSet::from([field.to_owned()]), "{query:?}: {problem}");
    }

    // A cursor is valid only for the sort and the filter it was made in.
    let by_rating = json_body(
        list_reviews(&app, id, &[("limit", "2"), ("sort", "-rating")]).await,
        StatusCode::OK,
    )
    .await;
    let cursor = by_rating["next_cursor"].as_str().expect("a next page");
    for query in [
        vec![("cursor", cursor)],
        vec![("sort", "rating"), ("cursor", cursor)],
        vec![("sort", "-rating"), ("rating", "4"), ("cursor", cursor)],
    ] {
        let response = list_reviews(&app, id, &query).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_CURSOR").await;
    }
    let other = app.product(&admin, "REV-002", 999, 10).await;
    let response =
        list_reviews(&app, id_of(&other), &[("sort", "-rating"), ("cursor", cursor)]).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_CURSOR").await;

    let unknown = orderly_domain::Uuid::now_v7().to_string();
    assert_problem(list_reviews(&app, &unknown, &[]).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
}

// --- deleting ---

async fn an_author_with_a_review_cannot_be_deleted_because_of_their_orders(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let written = review(&app, &ada, id, 4).await;

    for deleter in [&admin, &ada] {
        let response = app.delete_user(&deleter.access_token, &ada.id).await;
        assert_problem(response, StatusCode::CONFLICT, "USER_HAS_ORDERS").await;
    }
    let listed = listed(&app, id).await;
    assert_eq!(listed, vec![written.clone()]);
    assert_eq!(listed[0]["author"], json!({"id": ada.id, "name": "Ada"}));
    let fetched = get_review(&app, None, id_of(&written), None).await;
    assert_eq!(json_body(fetched, StatusCode::OK).await, written);
}

async fn a_review_is_deleted_by_its_author_or_an_admin_only(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let bob = customer_who_received(&app, &admin, "Bob", id).await;
    let carl = app.customer("Carl").await;
    let adas = review(&app, &ada, id, 5).await;
    let bobs = review(&app, &bob, id, 3).await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 4.0, "count": 2}));

    let response = delete_review(&app, Some(&carl.access_token), id_of(&adas)).await;
    assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let response = delete_review(&app, Some(&bob.access_token), id_of(&adas)).await;
    assert_problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let response = delete_review(&app, None, id_of(&adas)).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(listed(&app, id).await.len(), 2, "nothing was deleted");

    let response = delete_review(&app, Some(&ada.access_token), id_of(&adas)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("a body"), "");
    for token in [None, Some(ada.access_token.as_str()), Some(admin.access_token.as_str())] {
        let response = get_review(&app, token, id_of(&adas), None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
    let again = delete_review(&app, Some(&ada.access_token), id_of(&adas)).await;
    assert_problem(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(rating_of(&app, id).await, json!({"average": 3.0, "count": 1}));
    assert_eq!(ids_of(&listed(&app, id).await), vec![id_of(&bobs).to_owned()]);

    let response = delete_review(&app, Some(&admin.access_token), id_of(&bobs)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(rating_of(&app, id).await, json!({"average": null, "count": 0}));
    assert_eq!(listed(&app, id).await, Vec::<Value>::new());
}

// --- rate limits and metrics ---

async fn review_routes_carry_rate_limit_policies_and_are_measured_by_template(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "REV-001", 4999, 10).await;
    let id = id_of(&product);
    let ada = customer_who_received(&app, &admin, "Ada", id).await;
    let policy = |response: &Response| header_of(response, "ratelimit-policy").unwrap_or_default();

    let response = write_review(&app, Some(&ada.access_token), id, &review_body(4, "Fine")).await;
    assert!(policy(&response).contains(r#""authenticated";"#), "{}", policy(&response));
    let written = json_body(response, StatusCode::CREATED).await;
    let review_id = id_of(&written);
    let response = list_reviews(&app, id, &[]).await;
    assert!(policy(&response).contains(r#""anonymous";"#), "{}", policy(&response));
    assert_eq!(response.status(), StatusCode::OK);
    let response = get_review(&app, None, review_id, None).await;
    assert!(policy(&response).contains(r#""anonymous";"#), "{}", policy(&response));
    assert_eq!(response.status(), StatusCode::OK);
    let response =
        patch_review(&app, &ada.access_token, review_id, &json!({"rating": 5}), None).await;
    assert!(policy(&response).contains(r#""authenticated";"#), "{}", policy(&response));
    assert_eq!(response.status(), StatusCode::OK);
    let response = delete_review(&app, Some(&ada.access_token), review_id).await;
    assert!(policy(&response).contains(r#""authenticated";"#), "{}", policy(&response));
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = get_review(&app, None, review_id, None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let scraped = app.request(Method::GET, "/metrics", None).send().await.expect("sent");
    let scraped = scraped.text().await.expect("a body");
    let count = |method: &str, route: &str, status: &str| -> Option<f64> {
        let labels = [
            format!("method=\"{method}\""),
            format!("route=\"{route}\""),
            format!("status=\"{status}\""),
        ];
        scraped
            .lines()
            .filter(|line| line.starts_with("http_requests_total{"))
            .find(|line| labels.iter().all(|label| line.contains(label.as_str())))
            .and_then(|line| line.rsplit_once(' '))
            .map(|(_, value)| value.parse().expect("a number"))
    };
    let reviews_of = "/api/v1/products/{id}/reviews";
    let one = "/api/v1/reviews/{id}";
    assert_eq!(count("POST", reviews_of, "201"), Some(1.0), "{scraped}");
    assert_eq!(count("GET", reviews_of, "200"), Some(1.0), "{scraped}");
    assert_eq!(count("GET", one, "200"), Some(1.0), "{scraped}");
    assert_eq!(count("GET", one, "404"), Some(1.0), "{scraped}");
    assert_eq!(count("PATCH", one, "200"), Some(1.0), "{scraped}");
    assert_eq!(count("DELETE", one, "204"), Some(1.0), "{scraped}");
    assert!(!scraped.contains(review_id) && !scraped.contains(id), "a raw id in a label");
}

api_tests!(
    only_a_customer_whose_order_was_delivered_may_review_the_product,
    writing_a_review_needs_a_token_and_an_existing_product,
    a_second_review_of_the_same_product_by_the_same_author_is_a_conflict,
    review_fields_out_of_bounds_are_refused_with_their_codes,
    the_products_rating_follows_writes_edits_hiding_and_deletions,
    concurrent_reviews_of_one_product_all_count,
    the_author_edits_with_if_match_and_nobody_else_edits_the_text,
    parallel_edits_of_one_review_keep_the_products_rating_exact,
    a_hidden_review_is_seen_only_by_its_author_and_admins,
    reviews_are_listed_in_pages_sorted_and_filtered,
    an_author_with_a_review_cannot_be_deleted_because_of_their_orders,
    a_review_is_deleted_by_its_author_or_an_admin_only,
    review_routes_carry_rate_limit_policies_and_are_measured_by_template,
);
