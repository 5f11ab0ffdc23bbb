//! Webhook endpoints over HTTP: admins only, the secret shown once (at creation and rotation),
//! the fields' bounds, the outbound guard against private and unresolvable hosts, conditional
//! changes, deliveries listed, failed by disabling and retried, deletion, and v2's lists.
//!
//! Most tests need endpoints on `127.0.0.1` (this machine resolves no public name), so they run
//! with `WEBHOOK_ALLOW_PRIVATE_NETWORKS` on (`private_network_tests!`); the guard's refusals run
//! with the default settings (`api_tests!`).

use std::{collections::HashSet, time::Duration};

use orderly_domain::time::{DateTime, TimeDelta, Utc};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body};

// --- helpers of this file ---

const V1: &str = "/api/v1";
const V2: &str = "/api/v2";

/// A URL that `127.0.0.1` refuses at once (the discard port, closed here).
const CLOSED_PORT: &str = "http://127.0.0.1:9/";
const PRODUCT_CREATED: &str = "orderly.product.created.v1";
/// How long the delivery worker gets to do what a test waits for.
const WORKER_DEADLINE: Duration = Duration::from_secs(10);

/// Runs each `async fn name(app: TestApp)` as `api_tests!` does, on an app whose outbound guard
/// allows private networks (`webhook.allow_private_networks = true`).
macro_rules! private_network_tests {
    ($($name:ident),* $(,)?) => {
        mod private_networks_allowed {
            mod sqlite {
                use orderly_infrastructure::testing::TestDatabase;

                use $crate::helpers::spawn_app_with;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let db = TestDatabase::sqlite().await;
                        let app = spawn_app_with(db, super::super::allow_private_networks).await;
                        super::super::$name(app).await;
                    }
                )*
            }
            mod postgres {
                use orderly_infrastructure::testing::TestDatabase;

                use $crate::helpers::spawn_app_with;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(db) = TestDatabase::postgres().await else {
                            eprintln!("TEST_DATABASE_URL is not set: PostgreSQL not tested");
                            return;
                        };
                        let app = spawn_app_with(db, super::super::allow_private_networks).await;
                        super::super::$name(app).await;
                    }
                )*
            }
        }
    };
}

fn allow_private_networks(settings: &mut orderly_server::settings::Settings) {
    settings.webhook.allow_private_networks = true;
}

fn header_of(response: &Response, name: impl header::AsHeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn etag_of(response: &Response) -> String {
    header_of(response, header::ETAG).expect("an ETag header")
}

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
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

fn timestamp(value: &Value) -> DateTime<Utc> {
    let raw = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    DateTime::parse_from_rfc3339(raw).expect("RFC 3339").to_utc()
}

/// Asserts that `at` is within `slack` of `expected`.
fn assert_near(at: DateTime<Utc>, expected: DateTime<Utc>, slack: TimeDelta) {
    assert!((at - expected).abs() <= slack, "{at} is not within {slack} of {expected}");
}

/// The key of a Standard Webhooks secret: `whsec_` and the standard base64 of 24 to 64 bytes
/// (`^whsec_[A-Za-z0-9+/]+={0,2}$`, decoded here by hand).
fn secret_key(secret: &Value) -> Vec<u8> {
    let secret = secret.as_str().unwrap_or_else(|| panic!("a secret, got {secret}"));
    let encoded = secret.strip_prefix("whsec_").unwrap_or_else(|| panic!("{secret}"));
    let digits = encoded.trim_end_matches('=');
    assert!(!digits.is_empty() && encoded.len() - digits.len() <= 2, "{secret}");
    assert_eq!(encoded.len() % 4, 0, "padded base64: {secret}");
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut key = Vec::new();
    for c in digits.chars() {
        let value = match c {
            'A'..='Z' => u32::from(c) - u32::from('A'),
            'a'..='z' => u32::from(c) - u32::from('a') + 26,
            '0'..='9' => u32::from(c) - u32::from('0') + 52,
            '+' => 62,
            '/' => 63,
            _ => panic!("`{c}` is not a base64 digit: {secret}"),
        };
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            key.push(u8::try_from((bits >> count) & 0xff).expect("a byte"));
        }
    }
    assert!((24..=64).contains(&key.len()), "{} bytes: {secret}", key.len());
    key
}

fn assert_no_secret(endpoint: &Value) {
    assert!(endpoint.get("secret").is_none(), "the secret is shown again: {endpoint}");
}

/// Someone unrelated: a UUID that names nothing.
fn nobody() -> String {
    orderly_domain::Uuid::now_v7().to_string()
}

// The endpoints (helpers.rs has no webhook methods). `version` is `V1` or `V2`.

async fn create_endpoint(
    app: &TestApp,
    token: Option<&str>,
    version: &str,
    body: &Value,
) -> Response {
    let path = format!("{version}/webhook-endpoints");
    app.request(Method::POST, &path, token).json(body).send().await.expect("sent")
}

async fn list_endpoints(
    app: &TestApp,
    token: Option<&str>,
    version: &str,
    query: &str,
) -> Response {
    let path = format!("{version}/webhook-endpoints{query}");
    app.request(Method::GET, &path, token).send().await.expect("sent")
}

async fn get_endpoint(app: &TestApp, token: Option<&str>, version: &str, id: &str) -> Response {
    let path = format!("{version}/webhook-endpoints/{id}");
    app.request(Method::GET, &path, token).send().await.expect("sent")
}

async fn patch_endpoint(
    app: &TestApp,
    token: Option<&str>,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Response {
    let path = format!("{V1}/webhook-endpoints/{id}");
    let mut builder = app.request(Method::PATCH, &path, token).json(body);
    if let Some(tag) = if_match {
        builder = builder.header(header::IF_MATCH, tag);
    }
    builder.send().await.expect("sent")
}

async fn delete_endpoint(app: &TestApp, token: Option<&str>, id: &str) -> Response {
    let path = format!("{V1}/webhook-endpoints/{id}");
    app.request(Method::DELETE, &path, token).send().await.expect("sent")
}

async fn rotate_secret(app: &TestApp, token: Option<&str>, id: &str) -> Response {
    let path = format!("{V1}/webhook-endpoints/{id}/secret/rotate");
    app.request(Method::POST, &path, token).send().await.expect("sent")
}

async fn list_deliveries(
    app: &TestApp,
    token: Option<&str>,
    version: &str,
    id: &str,
    query: &str,
) -> Response {
    let path = format!("{version}/webhook-endpoints/{id}/deliveries{query}");
    app.request(Method::GET, &path, token).send().await.expect("sent")
}

async fn retry_delivery(app: &TestApp, token: Option<&str>, id: &str, delivery: &str) -> Response {
    let path = format!("{V1}/webhook-endpoints/{id}/deliveries/{delivery}/retry");
    app.request(Method::POST, &path, token).send().await.expect("sent")
}

/// Creates an endpoint as `admin` through v1; returns its JSON (with its secret).
async fn endpoint(app: &TestApp, admin: &TestUser, body: &Value) -> Value {
    let response = create_endpoint(app, Some(&admin.access_token), V1, body).await;
    json_body(response, StatusCode::CREATED).await
}

/// The endpoint as an admin reads it now.
async fn read(app: &TestApp, admin: &TestUser, id: &str) -> Value {
    json_body(get_endpoint(app, Some(&admin.access_token), V1, id).await, StatusCode::OK).await
}

/// The deliveries of endpoint `id` (v1, first page, filtered by `query`).
async fn deliveries(app: &TestApp, admin: &TestUser, id: &str, query: &str) -> Vec<Value> {
    let response = list_deliveries(app, Some(&admin.access_token), V1, id, query).await;
    let page = json_body(response, StatusCode::OK).await;
    page["data"].as_array().expect("a data array").clone()
}

/// Polls the deliveries of `id` until `done` holds for one of them; panics after
/// [`WORKER_DEADLINE`].
async fn delivery_once(
    app: &TestApp,
    admin: &TestUser,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WORKER_DEADLINE;
    loop {
        let listed = deliveries(app, admin, id, "").await;
        if let Some(found) = listed.iter().find(|delivery| done(delivery)) {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery {what} within {WORKER_DEADLINE:?}: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- who may ---

async fn only_admins_manage_webhook_endpoints(app: TestApp) {
    let admin = app.admin().await;
    let customer = app.customer("Ada").await;
    let created = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let id = id_of(&created);
    let delivery = nobody();
    let body = json!({"url": "http://127.0.0.1:9/other", "event_types": [PRODUCT_CREATED]});

    for (token, status, code) in [
        (Some(customer.access_token.as_str()), StatusCode::FORBIDDEN, "FORBIDDEN"),
        (None, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    ] {
        for version in [V1, V2] {
            let response = create_endpoint(&app, token, version, &body).await;
            assert_problem(response, status, code).await;
            let response = list_endpoints(&app, token, version, "").await;
            assert_problem(response, status, code).await;
            let response = get_endpoint(&app, token, version, id).await;
            assert_problem(response, status, code).await;
            let response = list_deliveries(&app, token, version, id, "").await;
            assert_problem(response, status, code).await;
        }
        let response = patch_endpoint(&app, token, id, &json!({"enabled": false}), None).await;
        assert_problem(response, status, code).await;
        assert_problem(rotate_secret(&app, token, id).await, status, code).await;
        assert_problem(retry_delivery(&app, token, id, &delivery).await, status, code).await;
        assert_problem(delete_endpoint(&app, token, id).await, status, code).await;
        // Refused before the endpoint is looked up: an unknown one is no different.
        assert_problem(get_endpoint(&app, token, V1, &nobody()).await, status, code).await;
    }

    let response = get_endpoint(&app, Some(&admin.access_token), V1, id).await;
    assert_eq!(etag_of(&response), "\"v1\"", "no refused request changed the endpoint");
    let unchanged = json_body(response, StatusCode::OK).await;
    assert_eq!((&unchanged["url"], &unchanged["enabled"]), (&json!(CLOSED_PORT), &json!(true)));
    let listed =
        json_body(list_endpoints(&app, Some(&admin.access_token), V1, "").await, StatusCode::OK)
            .await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "nothing else was created");
}

// --- creating ---

async fn a_new_endpoint_shows_its_secret_once_and_never_again(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let before = Utc::now();
    let response = create_endpoint(&app, token, V1, &json!({"url": CLOSED_PORT})).await;
    let location = header_of(&response, header::LOCATION);
    let etag = etag_of(&response);
    let created = json_body(response, StatusCode::CREATED).await;
    let id = id_of(&created);
    assert_eq!(location, Some(format!("/api/v1/webhook-endpoints/{id}")));
    assert_eq!(etag, "\"v1\"");
    assert_eq!(created["url"], CLOSED_PORT);
    assert_eq!(created["event_types"], json!([]), "absent event types: every type");
    assert_eq!(created["enabled"], true, "enabled by default");
    assert_eq!(created["disabled_reason"], Value::Null);
    assert_eq!(created["failing_since"], Value::Null);
    assert_eq!(created["previous_secret_expires_at"], Value::Null);
    assert_near(timestamp(&created["created_at"]), before, TimeDelta::minutes(1));
    assert_eq!(created["created_at"], created["updated_at"]);
    secret_key(&created["secret"]);

    // Read back, alone and listed: everything but the secret.
    let response = get_endpoint(&app, token, V1, id).await;
    assert_eq!(etag_of(&response), etag);
    let alone = json_body(response, StatusCode::OK).await;
    assert_no_secret(&alone);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().expect("an object").remove("secret");
    assert_eq!(alone, without_secret);
    let listed = json_body(list_endpoints(&app, token, V1, "").await, StatusCode::OK).await;
    assert_eq!(listed, json!({"data": [without_secret], "next_cursor": null}));
    let listed_v2 = json_body(list_endpoints(&app, token, V2, "").await, StatusCode::OK).await;
    assert_no_secret(&listed_v2["data"][0]);
    let not_modified = app
        .request(Method::GET, &format!("{V1}/webhook-endpoints/{id}"), token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    // Each endpoint has its own secret.
    let other = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    assert_ne!(other["secret"], created["secret"]);
    assert_ne!(secret_key(&other["secret"]), secret_key(&created["secret"]));

    // Event types: duplicates collapse (into the catalogue's order); disabled from the start.
    let (paid, placed) = ("orderly.order.paid.v1", "orderly.order.placed.v1");
    let body = json!({
        "url": "http://127.0.0.1:9/orders",
        "event_types": [paid, placed, paid],
        "enabled": false,
    });
    let chosen = endpoint(&app, &admin, &body).await;
    assert_eq!(chosen["event_types"], json!([placed, paid]));
    assert_eq!((&chosen["enabled"], &chosen["disabled_reason"]), (&json!(false), &json!("manual")));
    secret_key(&chosen["secret"]);
    let stored = read(&app, &admin, id_of(&chosen)).await;
    assert_eq!(stored["event_types"], chosen["event_types"]);
    assert_eq!(stored["disabled_reason"], "manual");
    assert_no_secret(&stored);

    // An empty list is every type too, and `enabled: true` is the default said aloud.
    let every =
        endpoint(&app, &admin, &json!({"url": CLOSED_PORT, "event_types": [], "enabled": true}))
            .await;
    assert_eq!((&every["event_types"], &every["enabled"]), (&json!([]), &json!(true)));
}

async fn endpoint_fields_out_of_bounds_are_refused_with_their_codes(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let refused = |body: Value, expected: &'static [(&'static str, &'static str)]| {
        let app = &app;
        async move {
            let response = create_endpoint(app, token, V1, &body).await;
            let problem =
                assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
            assert_eq!(field_codes(&problem), pairs(expected), "{body}: {problem}");
        }
    };

    // Event types: known names only, and at most the catalogue's 19 (duplicates counted).
    let teleported = "orderly.order.teleported.v1";
    refused(
        json!({"url": CLOSED_PORT, "event_types": [PRODUCT_CREATED, teleported]}),
        &[("event_types", "one_of")],
    )
    .await;
    refused(json!({"url": CLOSED_PORT, "event_types": [""]}), &[("event_types", "one_of")]).await;
    refused(
        json!({"url": CLOSED_PORT, "event_types": vec![PRODUCT_CREATED; 20]}),
        &[("event_types", "length")],
    )
    .await;
    // URLs: http(s) only, with a host, no credentials, fragment or white space, 1..=2048 chars.
    for url in [
        "ftp://127.0.0.1/hook",
        "https://u:p@127.0.0.1/hook",
        "https://user@127.0.0.1/hook",
        "http://127.0.0.1/hook#part",
        "127.0.0.1/hook",
        "http:///hook",
        "http://127.0.0.1/a hook",
        "javascript:alert(1)",
    ] {
        refused(json!({"url": url}), &[("url", "pattern")]).await;
    }
    refused(json!({"url": ""}), &[("url", "length")]).await;
    let long = format!("http://127.0.0.1/{}", "a".repeat(2049 - "http://127.0.0.1/".len()));
    assert_eq!(long.len(), 2049);
    refused(json!({"url": long}), &[("url", "length")]).await;
    // Every field's problem at once.
    refused(
        json!({"url": "ftp://x/", "event_types": ["nope"]}),
        &[("url", "pattern"), ("event_types", "one_of")],
    )
    .await;
    // The body's shape.
    for body in [
        json!({"url": CLOSED_PORT, "secret": "whsec_mine"}),
        json!({"event_types": [PRODUCT_CREATED]}),
        json!({"url": 42}),
        json!({"url": CLOSED_PORT, "event_types": "orderly.order.paid.v1"}),
    ] {
        let response = create_endpoint(&app, token, V1, &body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    }
    // Allowing private networks does not allow a host that does not resolve.
    let response =
        create_endpoint(&app, token, V1, &json!({"url": "http://nonexistent.invalid/"})).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(field_codes(&problem), pairs(&[("url", "unresolvable")]), "{problem}");
    let listed = json_body(list_endpoints(&app, token, V1, "").await, StatusCode::OK).await;
    assert_eq!(listed["data"], json!([]), "nothing refused was stored");

    // The bounds themselves are allowed: 2048 characters, and all 19 types.
    let longest = &long[..2048];
    let every_type = [
        "orderly.order.placed.v1",
        "orderly.order.paid.v1",
        "orderly.order.shipped.v1",
        "orderly.order.delivered.v1",
        "orderly.order.cancelled.v1",
        "orderly.order.expired.v1",
        "orderly.payment.authorized.v1",
        "orderly.payment.captured.v1",
        "orderly.payment.voided.v1",
        "orderly.payment.refund_pending.v1",
        "orderly.payment.refunded.v1",
        "orderly.payment.failed.v1",
        "orderly.payment.needs_attention.v1",
        "orderly.product.created.v1",
        "orderly.product.updated.v1",
        "orderly.product.archived.v1",
        "orderly.product.stock_changed.v1",
        "orderly.user.registered.v1",
        "orderly.user.deleted.v1",
    ];
    let widest = endpoint(&app, &admin, &json!({"url": longest, "event_types": every_type})).await;
    assert_eq!(widest["url"], longest);
    assert_eq!(widest["event_types"], json!(every_type));
    let mixed_case = endpoint(&app, &admin, &json!({"url": "HTTP://127.0.0.1:9/Hook"})).await;
    assert_eq!(mixed_case["url"], "HTTP://127.0.0.1:9/Hook", "the URL is kept as written");

    // A change is held to the same rules.
    let id = id_of(&widest);
    for (body, expected) in [
        (json!({"url": "ftp://127.0.0.1/"}), ("url", "pattern")),
        (json!({"url": "https://u:p@127.0.0.1/"}), ("url", "pattern")),
        (json!({"url": ""}), ("url", "length")),
        (json!({"event_types": ["orderly.order.teleported.v1"]}), ("event_types", "one_of")),
        (json!({"event_types": vec![PRODUCT_CREATED; 20]}), ("event_types", "length")),
        (json!({"url": "http://nonexistent.invalid/"}), ("url", "unresolvable")),
    ] {
        let response = patch_endpoint(&app, token, id, &body, None).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[expected]), "{body}: {problem}");
    }
    for body in [json!({"secret": "whsec_mine"}), json!({"enabled": "no"})] {
        let response = patch_endpoint(&app, token, id, &body, None).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    }
    let unchanged = get_endpoint(&app, token, V1, id).await;
    assert_eq!(etag_of(&unchanged), "\"v1\"", "no refused change was stored");
}

// --- the outbound guard ---

async fn private_and_unresolvable_urls_are_refused_by_default(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let refused = |url: &'static str, code: &'static str| {
        let app = &app;
        async move {
            let body = json!({"url": url});
            let response = create_endpoint(app, token, V1, &body).await;
            let problem =
                assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
            assert_eq!(field_codes(&problem), pairs(&[("url", code)]), "{url}: {problem}");
        }
    };

    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://192.168.1.1:8080/hook",
        "http://172.16.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        // Other spellings of loopback that URL parsers read as an IPv4 address.
        "http://2130706433/",
        "http://0x7f.1/",
        "HTTP://LOCALHOST/",
    ] {
        refused(url, "not_public").await;
    }
    refused("http://nonexistent.invalid/", "unresolvable").await;
    let listed = json_body(list_endpoints(&app, token, V1, "").await, StatusCode::OK).await;
    assert_eq!(listed["data"], json!([]), "nothing refused was stored");

    // A public address passes (written as an address: this machine resolves no public name).
    let public = "http://93.184.215.14/hook";
    let body = json!({"url": public, "event_types": ["orderly.order.expired.v1"]});
    let created = endpoint(&app, &admin, &body).await;
    let id = id_of(&created);

    // Moving it to a private or unresolvable host is refused the same way.
    for (url, code) in [
        ("http://127.0.0.1/", "not_public"),
        ("http://localhost:8080/", "not_public"),
        ("http://169.254.169.254/latest/meta-data/", "not_public"),
        ("http://[::1]/", "not_public"),
        ("http://nonexistent.invalid/", "unresolvable"),
    ] {
        let response = patch_endpoint(&app, token, id, &json!({"url": url}), None).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[("url", code)]), "{url}: {problem}");
    }
    let response = get_endpoint(&app, token, V1, id).await;
    assert_eq!(etag_of(&response), "\"v1\"", "no refused change was stored");
    assert_eq!(json_body(response, StatusCode::OK).await["url"], public);
}

// --- changing ---

async fn patch_changes_an_endpoint_and_a_stale_if_match_is_refused(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let created = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let id = id_of(&created);

    let body = json!({"url": "http://127.0.0.1:9/moved", "event_types": ["orderly.order.paid.v1"]});
    let response = patch_endpoint(&app, token, id, &body, Some("\"v1\"")).await;
    let etag = etag_of(&response);
    let moved = json_body(response, StatusCode::OK).await;
    assert_eq!(etag, "\"v2\"", "one change, one version");
    assert_eq!(moved["url"], "http://127.0.0.1:9/moved");
    assert_eq!(moved["event_types"], json!(["orderly.order.paid.v1"]));
    assert_eq!(moved["enabled"], true, "what was not sent stays");
    assert_eq!(moved["created_at"], created["created_at"]);
    assert!(timestamp(&moved["updated_at"]) >= timestamp(&created["updated_at"]));
    assert_no_secret(&moved);
    assert_eq!(read(&app, &admin, id).await, moved);

    // A copy read before the change is stale.
    let stale = patch_endpoint(&app, token, id, &json!({"enabled": false}), Some("\"v1\"")).await;
    assert_problem(stale, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    assert_eq!(read(&app, &admin, id).await["enabled"], true, "the stale change was not stored");

    // Disabling, then enabling again.
    let response = patch_endpoint(&app, token, id, &json!({"enabled": false}), Some(&etag)).await;
    let etag = etag_of(&response);
    let disabled = json_body(response, StatusCode::OK).await;
    assert_eq!(etag, "\"v3\"");
    assert_eq!(
        (&disabled["enabled"], &disabled["disabled_reason"]),
        (&json!(false), &json!("manual"))
    );
    let response = patch_endpoint(&app, token, id, &json!({"enabled": false}), None).await;
    assert_eq!(etag_of(&response), "\"v3\"", "disabling a disabled endpoint changes nothing");
    let response = patch_endpoint(&app, token, id, &json!({"enabled": true}), None).await;
    assert_eq!(etag_of(&response), "\"v4\"");
    let enabled = json_body(response, StatusCode::OK).await;
    assert_eq!((&enabled["enabled"], &enabled["disabled_reason"]), (&json!(true), &Value::Null));
    assert_eq!(enabled["failing_since"], Value::Null);

    // Absent and null fields stay; an empty list is every type.
    let response = patch_endpoint(&app, token, id, &json!({}), None).await;
    assert_eq!(etag_of(&response), "\"v4\"");
    let response =
        patch_endpoint(&app, token, id, &json!({"url": null, "event_types": null}), None).await;
    assert_eq!(json_body(response, StatusCode::OK).await, enabled);
    let response = patch_endpoint(&app, token, id, &json!({"event_types": []}), None).await;
    assert_eq!(json_body(response, StatusCode::OK).await["event_types"], json!([]));

    let response = patch_endpoint(&app, token, &nobody(), &json!({"enabled": false}), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

// --- rotating ---

async fn rotating_the_secret_shows_a_new_one_and_keeps_the_old_for_a_day(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let created = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let id = id_of(&created);

    let response = rotate_secret(&app, token, id).await;
    let now = Utc::now();
    assert_eq!(etag_of(&response), "\"v2\"");
    let rotated = json_body(response, StatusCode::OK).await;
    assert_ne!(rotated["secret"], created["secret"]);
    assert_ne!(secret_key(&rotated["secret"]), secret_key(&created["secret"]));
    let until = timestamp(&rotated["previous_secret_expires_at"]);
    assert_near(until, now + TimeDelta::hours(24), TimeDelta::minutes(1));
    assert_eq!((&rotated["id"], &rotated["url"]), (&created["id"], &created["url"]));

    let stored = read(&app, &admin, id).await;
    assert_no_secret(&stored);
    assert_eq!(stored["previous_secret_expires_at"], rotated["previous_secret_expires_at"]);
    let listed = json_body(list_endpoints(&app, token, V1, "").await, StatusCode::OK).await;
    assert_no_secret(&listed["data"][0]);
    assert_eq!(
        listed["data"][0]["previous_secret_expires_at"],
        rotated["previous_secret_expires_at"]
    );

    // Again: another secret, and the grace starts over.
    let again = json_body(rotate_secret(&app, token, id).await, StatusCode::OK).await;
    assert_ne!(again["secret"], rotated["secret"]);
    assert_ne!(again["secret"], created["secret"]);
    assert!(timestamp(&again["previous_secret_expires_at"]) >= until);

    let response = rotate_secret(&app, token, &nobody()).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

// --- deliveries ---

async fn a_new_endpoint_has_no_deliveries_and_unknown_ones_are_not_found(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let created = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let id = id_of(&created);

    let empty = json_body(list_deliveries(&app, token, V1, id, "").await, StatusCode::OK).await;
    assert_eq!(empty, json!({"data": [], "next_cursor": null}));
    let empty = json_body(list_deliveries(&app, token, V2, id, "").await, StatusCode::OK).await;
    assert_eq!(empty, json!({"data": [], "has_more": false, "next": null}));
    for status in ["pending", "succeeded", "failed"] {
        let response = list_deliveries(&app, token, V1, id, &format!("?status={status}")).await;
        assert_eq!(json_body(response, StatusCode::OK).await["data"], json!([]), "{status}");
    }

    for version in [V1, V2] {
        let response = list_deliveries(&app, token, version, id, "?status=bogus").await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_codes(&problem), pairs(&[("status", "one_of")]), "{problem}");
        let response = list_deliveries(&app, token, version, &nobody(), "").await;
        assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }

    let response = retry_delivery(&app, token, id, &nobody()).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = retry_delivery(&app, token, &nobody(), &nobody()).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

async fn an_undeliverable_event_is_retried_failed_by_disabling_and_redelivered_on_request(
    app: TestApp,
) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let body = json!({"url": CLOSED_PORT, "event_types": [PRODUCT_CREATED]});
    let created = endpoint(&app, &admin, &body).await;
    let id = id_of(&created);
    app.product(&admin, "HOOK-1", 1000, 5).await;

    // The worker schedules the event and attempts it: the port is closed.
    let attempted = delivery_once(&app, &admin, id, "attempted", |delivery| {
        delivery["event_type"] == PRODUCT_CREATED && delivery["attempts"].as_u64() >= Some(1)
    })
    .await;
    let delivery = id_of(&attempted).to_owned();
    assert_eq!(attempted["endpoint_id"], created["id"]);
    assert_eq!(attempted["status"], "pending", "{attempted}");
    assert_eq!(attempted["response_status"], Value::Null, "{attempted}");
    let error = attempted["last_error"].as_str().expect("a last error").to_lowercase();
    assert!(error.contains("connection refused"), "{attempted}");
    assert!(!error.starts_with("refused:"), "not refused by the guard: {attempted}");
    let last = timestamp(&attempted["last_attempt_at"]);
    assert_near(
        timestamp(&attempted["next_attempt_at"]),
        last + TimeDelta::seconds(5),
        TimeDelta::seconds(1),
    );
    let listed = deliveries(&app, &admin, id, "").await;
    assert_eq!(listed.len(), 1, "one event of a subscribed type: {listed:?}");
    let failing = read(&app, &admin, id).await;
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert_eq!(failing["enabled"], true, "one failure does not disable it");

    // Disabled: what was pending fails, and cannot be retried.
    let response = patch_endpoint(&app, token, id, &json!({"enabled": false}), None).await;
    assert_eq!(json_body(response, StatusCode::OK).await["disabled_reason"], "manual");
    let failed = deliveries(&app, &admin, id, "?status=failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["id"], attempted["id"]);
    assert_eq!(failed[0]["next_attempt_at"], Value::Null, "{failed:?}");
    assert_eq!(failed[0]["attempts"], attempted["attempts"], "{failed:?}");
    assert_eq!(deliveries(&app, &admin, id, "?status=pending").await, Vec::<Value>::new());
    let response = retry_delivery(&app, token, id, &delivery).await;
    assert_problem(response, StatusCode::CONFLICT, "WEBHOOK_ENDPOINT_DISABLED").await;

    // Enabled again (its failures forgotten), the delivery is retried at once.
    let response = patch_endpoint(&app, token, id, &json!({"enabled": true}), None).await;
    let enabled = json_body(response, StatusCode::OK).await;
    assert_eq!(
        (&enabled["disabled_reason"], &enabled["failing_since"]),
        (&Value::Null, &Value::Null)
    );
    let response = retry_delivery(&app, token, id, &delivery).await;
    let now = Utc::now();
    let retried = json_body(response, StatusCode::ACCEPTED).await;
    assert_eq!(retried["id"], attempted["id"]);
    assert_eq!(retried["status"], "pending", "{retried}");
    assert_eq!(retried["attempts"], attempted["attempts"], "{retried}");
    assert_near(timestamp(&retried["next_attempt_at"]), now, TimeDelta::seconds(5));

    // That one more attempt is made, fails again, and the delivery fails for good.
    let attempts = attempted["attempts"].as_u64().expect("a count");
    let retried_once = delivery_once(&app, &admin, id, "attempted again", |delivery| {
        delivery["id"] == attempted["id"] && delivery["attempts"].as_u64() > Some(attempts)
    })
    .await;
    assert_eq!(retried_once["attempts"].as_u64(), Some(attempts + 1), "{retried_once}");
    assert_eq!(retried_once["status"], "failed", "{retried_once}");
    assert_eq!(retried_once["next_attempt_at"], Value::Null, "{retried_once}");
    assert!(retried_once["last_error"].is_string(), "{retried_once}");
}

// --- deleting ---

async fn a_deleted_endpoint_is_gone(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let kept = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let created = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let id = id_of(&created);

    let response = delete_endpoint(&app, token, id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("a body"), "");

    assert_problem(get_endpoint(&app, token, V1, id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    assert_problem(get_endpoint(&app, token, V2, id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    assert_problem(delete_endpoint(&app, token, id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let response = patch_endpoint(&app, token, id, &json!({"enabled": false}), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_problem(rotate_secret(&app, token, id).await, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = list_deliveries(&app, token, V1, id, "").await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let listed = json_body(list_endpoints(&app, token, V1, "").await, StatusCode::OK).await;
    assert_eq!(
        listed["data"].as_array().map(|data| data.iter().map(id_of).collect::<Vec<_>>()),
        Some(vec![id_of(&kept)])
    );
    assert_eq!(read(&app, &admin, id_of(&kept)).await["url"], CLOSED_PORT);
}

// --- versions ---

async fn v2_creates_and_reads_endpoints_and_lists_them_with_links_in_the_body(app: TestApp) {
    let admin = app.admin().await;
    let token = Some(admin.access_token.as_str());
    let body = json!({"url": CLOSED_PORT, "event_types": [PRODUCT_CREATED]});
    let response = create_endpoint(&app, token, V2, &body).await;
    let location = header_of(&response, header::LOCATION);
    assert_eq!(etag_of(&response), "\"v1\"");
    let created = json_body(response, StatusCode::CREATED).await;
    let id = id_of(&created).to_owned();
    assert_eq!(location, Some(format!("/api/v2/webhook-endpoints/{id}")));
    secret_key(&created["secret"]);
    assert_eq!(created["event_types"], json!([PRODUCT_CREATED]));

    let response = get_endpoint(&app, token, V2, &id).await;
    assert_eq!(etag_of(&response), "\"v1\"");
    let read_v2 = json_body(response, StatusCode::OK).await;
    assert_no_secret(&read_v2);
    assert_eq!(read_v2, read(&app, &admin, &id).await, "one representation in both versions");

    // Three endpoints, newest first, two to a page.
    let second = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let third = endpoint(&app, &admin, &json!({"url": CLOSED_PORT})).await;
    let newest_first = [id_of(&third), id_of(&second), id.as_str()].map(|id| json!(id));

    let first = json_body(list_endpoints(&app, token, V2, "?limit=2").await, StatusCode::OK).await;
    assert_eq!(first["has_more"], true, "{first}");
    assert!(first.get("next_cursor").is_none(), "{first}");
    let next = first["next"].as_str().expect("a next URL").to_owned();
    assert!(
        next.starts_with(&app.url("/api/v2/webhook-endpoints?")) && next.contains("limit=2"),
        "{next}"
    );
    let last = json_body(
        app.client.get(&next).bearer_auth(&admin.access_token).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!((&last["has_more"], &last["next"]), (&json!(false), &Value::Null), "{last}");
    let ids: Vec<Value> = [&first, &last]
        .iter()
        .flat_map(|page| page["data"].as_array().expect("data").clone())
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, newest_first);
    assert!(first["data"].as_array().expect("data").iter().all(|e| e.get("secret").is_none()));

    // v1 pages the same list with `next_cursor` and a `Link` header.
    let response = list_endpoints(&app, token, V1, "?limit=2").await;
    let link = header_of(&response, header::LINK).expect("a Link header");
    let page = json_body(response, StatusCode::OK).await;
    let cursor = page["next_cursor"].as_str().expect("a next cursor");
    assert!(link.contains(cursor) && link.ends_with("; rel=\"next\""), "{link}");
    assert!(page.get("has_more").is_none(), "{page}");
    let next = link.strip_prefix('<').and_then(|l| l.split_once('>')).expect("<path>").0;
    let rest = app.request(Method::GET, next, token).send().await.expect("sent");
    let rest = json_body(rest, StatusCode::OK).await;
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(rest["data"][0]["id"], newest_first[2]);
}

private_network_tests!(
    only_admins_manage_webhook_endpoints,
    a_new_endpoint_shows_its_secret_once_and_never_again,
    endpoint_fields_out_of_bounds_are_refused_with_their_codes,
    patch_changes_an_endpoint_and_a_stale_if_match_is_refused,
    rotating_the_secret_shows_a_new_one_and_keeps_the_old_for_a_day,
    a_new_endpoint_has_no_deliveries_and_unknown_ones_are_not_found,
    an_undeliverable_event_is_retried_failed_by_disabling_and_redelivered_on_request,
    a_deleted_endpoint_is_gone,
    v2_creates_and_reads_endpoints_and_lists_them_with_links_in_the_body,
);

api_tests!(private_and_unresolvable_urls_are_refused_by_default);
