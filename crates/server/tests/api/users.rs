//! Users: registration, profiles, the admin list with cursor pagination, updates with ETags and
//! If-Match, roles, deletion, and a user's orders. Every response body read here is checked for
//! password material.

use reqwest::{
    Method, Response, StatusCode,
    header::{self, HeaderMap},
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem};

const PASSWORD: &str = "correct horse battery staple";

/// Fails when `value` has a key that names a password anywhere in it.
fn assert_no_password_key(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                assert!(!key.to_lowercase().contains("password"), "a `{key}` member: {value}");
                assert_no_password_key(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_password_key),
        _ => {}
    }
}

/// Fails when a response text carries a password hash or a password member.
fn assert_no_secrets(text: &str) {
    assert!(!text.to_lowercase().contains("argon2"), "a password hash in {text}");
    if !text.is_empty() {
        let value: Value = serde_json::from_str(text).expect("a JSON body");
        assert_no_password_key(&value);
    }
}

/// The headers and JSON body of a response that must have `status`, checked for secrets.
async fn read(response: Response, status: StatusCode) -> (HeaderMap, Value) {
    let actual = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_no_secrets(&text);
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON expected, got {text}"));
    (headers, body)
}

async fn body(response: Response, status: StatusCode) -> Value {
    read(response, status).await.1
}

/// [`assert_problem`], plus the secrets check on the problem body.
async fn problem(response: Response, status: StatusCode, code: &str) -> Value {
    let body = assert_problem(response, status, code).await;
    assert_no_secrets(&body.to_string());
    body
}

/// A response that must have `status` and an empty body (204, 304); returns its headers.
async fn empty(response: Response, status: StatusCode) -> HeaderMap {
    let actual = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(text, "", "no body expected");
    headers
}

fn header_value<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

async fn register(app: &TestApp, email: &str, name: &str) -> (HeaderMap, Value) {
    read(
        app.register(&json!({"email": email, "password": PASSWORD, "name": name})).await,
        StatusCode::CREATED,
    )
    .await
}

async fn access_token_of(app: &TestApp, email: &str, password: &str) -> String {
    let tokens = body(app.login(email, password).await, StatusCode::OK).await;
    tokens["access_token"].as_str().expect("an access token").to_owned()
}

async fn get_with_if_none_match(app: &TestApp, user: &TestUser, tag: &str) -> Response {
    app.request(Method::GET, &format!("/api/v1/users/{}", user.id), Some(&user.access_token))
        .header(header::IF_NONE_MATCH, tag)
        .send()
        .await
        .expect("the request is sent")
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|user| user["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The target of a `Link: <target>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = header_value(headers, &header::LINK)?;
    assert!(link.ends_with(r#"; rel="next""#), "{link}");
    let target = link.strip_prefix('<')?.split_once('>')?.0;
    Some(target.to_owned())
}

// --- registration ---

async fn registering_creates_a_customer_with_a_location_and_an_etag(app: TestApp) {
    let (headers, user) = register(&app, "Ada.Lovelace@Example.COM", "Ada Lovelace").await;

    let id = user["id"].as_str().expect("an id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id.as_bytes()[14], b'7', "a UUIDv7: {id}");
    assert_eq!(header_value(&headers, &header::LOCATION), Some(&*format!("/api/v1/users/{id}")));
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));
    assert_eq!(user["email"], "ada.lovelace@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["role"], "customer");
    let mut keys: Vec<&str> =
        user.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "email", "id", "name", "role", "updated_at"]);

    let token = access_token_of(&app, "ada.lovelace@example.com", PASSWORD).await;
    let (_, fetched) = read(
        app.request(Method::GET, &format!("/api/v1/users/{id}"), Some(&token))
            .send()
            .await
            .expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched, user, "the Location names the user");
}

async fn an_email_taken_in_another_case_is_a_conflict(app: TestApp) {
    register(&app, "grace@example.com", "Grace").await;

    let response = app
        .register(&json!({"email": "GRACE@Example.com", "password": PASSWORD, "name": "Other"}))
        .await;

    problem(response, StatusCode::CONFLICT, "EMAIL_TAKEN").await;
}

async fn every_invalid_registration_field_is_reported_at_once(app: TestApp) {
    let response =
        app.register(&json!({"email": "not-an-email", "password": "short", "name": ""})).await;

    let body = problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let errors = body["errors"].as_array().expect("errors");
    let mut fields: Vec<(&str, &str)> = errors
        .iter()
        .map(|error| {
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
            (error["field"].as_str().expect("field"), error["code"].as_str().expect("code"))
        })
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, [("email", "email"), ("name", "length"), ("password", "length")], "{body}");
}

async fn registering_with_a_role_is_refused_and_creates_nobody(app: TestApp) {
    let email = "mallory@example.com";

    let response = app
        .register(
            &json!({"email": email, "password": PASSWORD, "name": "Mallory", "role": "admin"}),
        )
        .await;

    problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    problem(app.login(email, PASSWORD).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    let (_, user) = register(&app, email, "Mallory").await;
    assert_eq!(user["role"], "customer", "the address was still free");
}

// --- reading ---

async fn a_user_reads_their_own_profile_at_me(app: TestApp) {
    let ada = app.customer("Ada").await;

    let (headers, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;

    assert_eq!(me["id"], json!(ada.id));
    assert_eq!(me["email"], json!(ada.email));
    assert_eq!(me["name"], "Ada");
    assert_eq!(me["role"], "customer");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));
}

async fn a_customer_cannot_see_another_customer_but_an_admin_can(app: TestApp) {
    let ada = app.customer("Ada").await;
    let grace = app.customer("Grace").await;
    let admin = app.admin().await;

    problem(app.get_user(&ada.access_token, &grace.id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    let (headers, user) =
        read(app.get_user(&admin.access_token, &grace.id).await, StatusCode::OK).await;
    assert_eq!(user["id"], json!(grace.id));
    assert_eq!(user["email"], json!(grace.email));
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));
}

async fn an_unknown_user_is_not_found_even_for_an_admin(app: TestApp) {
    let admin = app.admin().await;

    let response = app.get_user(&admin.access_token, "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d").await;

    problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

async fn a_malformed_user_id_is_a_malformed_request(app: TestApp) {
    let ada = app.customer("Ada").await;

    let response = app.get_user(&ada.access_token, "not-a-uuid").await;

    problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    let patched =
        app.patch_user(&ada.access_token, "not-a-uuid", &json!({"name": "X"}), None).await;
    problem(patched, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    let deleted = app.delete_user(&ada.access_token, "not-a-uuid").await;
    problem(deleted, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    let orders = app.user_orders(&ada.access_token, "not-a-uuid", "").await;
    problem(orders, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}

async fn a_get_with_the_current_etag_in_if_none_match_is_not_modified(app: TestApp) {
    let ada = app.customer("Ada").await;

    let headers =
        empty(get_with_if_none_match(&app, &ada, "\"v1\"").await, StatusCode::NOT_MODIFIED).await;
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));

    let (headers, user) =
        read(get_with_if_none_match(&app, &ada, "\"v7\"").await, StatusCode::OK).await;
    assert_eq!(user["id"], json!(ada.id), "a stale copy gets the resource");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));
}

// --- the admin list ---

async fn only_admins_list_users(app: TestApp) {
    let ada = app.customer("Ada").await;

    problem(app.list_users(&ada.access_token, "").await, StatusCode::FORBIDDEN, "FORBIDDEN").await;
}

async fn an_admin_pages_through_every_user_with_cursors_and_link_headers(app: TestApp) {
    let admin = app.admin().await;
    let mut expected = vec![admin.id.clone()];
    for name in ["Ada", "Grace", "Alan", "Barbara", "Edsger"] {
        let (_, user) = register(&app, &format!("{}@example.com", name.to_lowercase()), name).await;
        expected.push(user["id"].as_str().expect("an id").to_owned());
    }

    // Page 1 by query string; page 2 by following the Link header itself; page 3 by next_cursor.
    let (headers, first) =
        read(app.list_users(&admin.access_token, "?limit=2").await, StatusCode::OK).await;
    let cursor = first["next_cursor"].as_str().expect("a next cursor").to_owned();
    let link = next_link(&headers).expect("a Link to the next page");
    assert!(link.starts_with("/api/v1/users?"), "{link}");
    assert!(link.contains("limit=2"), "the Link keeps the limit: {link}");
    assert!(link.contains(&format!("cursor={cursor}")), "{link} carries {cursor}");

    let (headers, second) = read(
        app.request(Method::GET, &link, Some(&admin.access_token)).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert!(next_link(&headers).is_some());
    let cursor = second["next_cursor"].as_str().expect("a next cursor").to_owned();

    let (headers, third) = read(
        app.list_users(&admin.access_token, &format!("?limit=2&cursor={cursor}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(third["next_cursor"], Value::Null, "{third}");
    assert!(header_value(&headers, &header::LINK).is_none(), "no Link on the last page");

    let pages = [ids(&first), ids(&second), ids(&third)];
    assert!(pages.iter().all(|page| page.len() == 2), "{pages:?}");
    let seen: Vec<String> = pages.concat();
    assert_eq!(seen, expected, "every user once, oldest first");
}

async fn a_page_limit_outside_1_to_100_is_a_validation_failure(app: TestApp) {
    let admin = app.admin().await;

    for query in ["?limit=0", "?limit=101"] {
        let body = problem(
            app.list_users(&admin.access_token, query).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        )
        .await;
        let errors = body["errors"].as_array().expect("errors");
        assert!(errors.iter().any(|error| error["field"] == "limit"), "{query}: {body}");
    }
    for query in ["?limit=1", "?limit=100"] {
        let page = body(app.list_users(&admin.access_token, query).await, StatusCode::OK).await;
        assert_eq!(ids(&page).len(), 1, "{query}: the admin is the only user");
    }
}

async fn a_garbage_cursor_is_an_invalid_cursor(app: TestApp) {
    let admin = app.admin().await;

    let response = app.list_users(&admin.access_token, "?cursor=garbage").await;

    problem(response, StatusCode::BAD_REQUEST, "INVALID_CURSOR").await;
}

async fn a_cursor_from_another_list_is_an_invalid_cursor(app: TestApp) {
    let admin = app.admin().await;
    app.product(&admin, "SKU-1", 100, 1).await;
    app.product(&admin, "SKU-2", 100, 1).await;
    let products = body(app.list_products(None, "?limit=1").await, StatusCode::OK).await;
    let cursor = products["next_cursor"].as_str().expect("a product cursor");

    let response = app.list_users(&admin.access_token, &format!("?cursor={cursor}")).await;

    problem(response, StatusCode::BAD_REQUEST, "INVALID_CURSOR").await;
}

async fn a_non_numeric_limit_is_a_malformed_request(app: TestApp) {
    let admin = app.admin().await;

    let response = app.list_users(&admin.access_token, "?limit=abc").await;

    problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}

// --- updates ---

async fn renaming_yourself_answers_a_new_etag_and_a_stale_if_match_is_refused(app: TestApp) {
    let ada = app.customer("Ada").await;

    let (headers, renamed) = read(
        app.patch_user(&ada.access_token, &ada.id, &json!({"name": "Ada King"}), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "Ada King");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v2\""));

    let stale = app
        .patch_user(&ada.access_token, &ada.id, &json!({"name": "Lost Update"}), Some("\"v1\""))
        .await;
    let current_tag = stale.headers().get(header::ETAG).cloned();
    problem(stale, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    assert_eq!(
        current_tag.as_ref().and_then(|v| v.to_str().ok()),
        Some("\"v2\""),
        "the 412 names the current version"
    );
    let (_, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["name"], "Ada King", "the stale update changed nothing");

    let (headers, current) = read(
        app.patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"name": "Countess of Lovelace"}),
            Some("\"v2\""),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(current["name"], "Countess of Lovelace");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v3\""));
}

async fn a_customer_cannot_promote_themselves(app: TestApp) {
    let ada = app.customer("Ada").await;

    let response =
        app.patch_user(&ada.access_token, &ada.id, &json!({"role": "admin"}), None).await;

    problem(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let (headers, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["role"], "customer");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""), "nothing changed");
    let token = access_token_of(&app, &ada.email, &ada.password).await;
    problem(app.list_users(&token, "").await, StatusCode::FORBIDDEN, "FORBIDDEN").await;
}

async fn an_admin_promotion_takes_effect_in_the_next_tokens(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;

    let (headers, promoted) = read(
        app.patch_user(&admin.access_token, &ada.id, &json!({"role": "admin"}), Some("\"v1\""))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(promoted["role"], "admin");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v2\""));

    let token = access_token_of(&app, &ada.email, &ada.password).await;
    let page = body(app.list_users(&token, "").await, StatusCode::OK).await;
    assert!(ids(&page).contains(&ada.id));

    // A role change ends the sessions opened before it: the old refresh token is refused.
    problem(app.refresh(&ada.refresh_token).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
}

async fn a_password_change_ends_the_other_sessions(app: TestApp) {
    let ada = app.customer("Ada").await;
    let other_device = body(app.login(&ada.email, &ada.password).await, StatusCode::OK).await;

    body(
        app.patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": "a new long passphrase", "current_password": ada.password}),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;

    let other_refresh = other_device["refresh_token"].as_str().expect("a refresh token");
    problem(app.refresh(other_refresh).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    problem(app.refresh(&ada.refresh_token).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    body(app.login(&ada.email, "a new long passphrase").await, StatusCode::OK).await;
}

async fn a_customer_cannot_change_another_customer(app: TestApp) {
    let ada = app.customer("Ada").await;
    let grace = app.customer("Grace").await;

    let response =
        app.patch_user(&ada.access_token, &grace.id, &json!({"name": "Hacked"}), None).await;

    problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let (_, me) = read(app.me(&grace.access_token).await, StatusCode::OK).await;
    assert_eq!(me["name"], "Grace");
}

async fn changing_your_email_to_a_taken_one_is_a_conflict(app: TestApp) {
    let ada = app.customer("Ada").await;
    let grace = app.customer("Grace").await;

    let response = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"email": grace.email.to_uppercase(), "current_password": ada.password}),
            None,
        )
        .await;

    problem(response, StatusCode::CONFLICT, "EMAIL_TAKEN").await;
    let (_, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["email"], json!(ada.email));
}

async fn changing_your_password_changes_how_you_log_in(app: TestApp) {
    let ada = app.customer("Ada").await;

    let response = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": "a brand new passphrase", "current_password": ada.password}),
            None,
        )
        .await;

    let (headers, _) = read(response, StatusCode::OK).await;
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v2\""));
    access_token_of(&app, &ada.email, "a brand new passphrase").await;
    problem(app.login(&ada.email, &ada.password).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
        .await;
}

/// The `(field, code)` pairs of a `VALIDATION_FAILED` body.
fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| {
            let text = |member: &str| error[member].as_str().expect("a string").to_owned();
            (text("field"), text("code"))
        })
        .collect()
}

/// Asserts a 403 `REAUTHENTICATION_REQUIRED` whose detail contains `says`.
async fn reauthentication_required(response: Response, says: &str) {
    let body = problem(response, StatusCode::FORBIDDEN, "REAUTHENTICATION_REQUIRED").await;
    assert!(body["detail"].as_str().is_some_and(|detail| detail.contains(says)), "{body}");
}

async fn changing_your_password_needs_your_current_password(app: TestApp) {
    let ada = app.customer("Ada").await;
    let new_password = "a brand new passphrase";

    let missing =
        app.patch_user(&ada.access_token, &ada.id, &json!({"password": new_password}), None).await;
    reauthentication_required(missing, "needs your current password").await;
    let wrong = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": new_password, "current_password": "not my password"}),
            None,
        )
        .await;
    reauthentication_required(wrong, "is not your current password").await;
    let (headers, _) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""), "nothing changed");
    problem(app.login(&ada.email, new_password).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
        .await;

    let right = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": new_password, "current_password": ada.password}),
            None,
        )
        .await;
    let (headers, _) = read(right, StatusCode::OK).await;
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v2\""));
    access_token_of(&app, &ada.email, new_password).await;
    problem(app.login(&ada.email, &ada.password).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
        .await;
}

async fn changing_your_email_needs_your_current_password(app: TestApp) {
    let ada = app.customer("Ada").await;
    let new_email = "ada.king@example.com";

    let missing =
        app.patch_user(&ada.access_token, &ada.id, &json!({"email": new_email}), None).await;
    reauthentication_required(missing, "needs your current password").await;
    let wrong = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"email": new_email, "current_password": "not my password"}),
            None,
        )
        .await;
    reauthentication_required(wrong, "is not your current password").await;
    let (_, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["email"], json!(ada.email), "nothing changed");

    let right = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"email": new_email, "current_password": ada.password}),
            None,
        )
        .await;
    let changed = body(right, StatusCode::OK).await;
    assert_eq!(changed["email"], new_email);
    access_token_of(&app, new_email, &ada.password).await;
    problem(app.login(&ada.email, &ada.password).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
        .await;
}

async fn a_name_or_your_own_address_again_needs_no_password(app: TestApp) {
    let ada = app.customer("Ada").await;

    let renamed = app
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"name": "Ada King", "email": ada.email.to_uppercase()}),
            None,
        )
        .await;

    let renamed = body(renamed, StatusCode::OK).await;
    assert_eq!(
        (renamed["name"].as_str(), renamed["email"].as_str()),
        (Some("Ada King"), Some(ada.email.as_str()))
    );
}

async fn an_admin_changes_another_users_credentials_without_their_password(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;

    let changed = app
        .patch_user(
            &admin.access_token,
            &ada.id,
            &json!({"email": "ada.king@example.com", "password": "reset by the shop"}),
            None,
        )
        .await;

    body(changed, StatusCode::OK).await;
    access_token_of(&app, "ada.king@example.com", "reset by the shop").await;
}

async fn an_admin_changing_their_own_password_needs_their_current_one(app: TestApp) {
    let admin = app.admin().await;

    let missing = app
        .patch_user(
            &admin.access_token,
            &admin.id,
            &json!({"password": "a new admin phrase"}),
            None,
        )
        .await;
    reauthentication_required(missing, "needs your current password").await;

    let right = app
        .patch_user(
            &admin.access_token,
            &admin.id,
            &json!({"password": "a new admin phrase", "current_password": admin.password}),
            None,
        )
        .await;
    body(right, StatusCode::OK).await;
    access_token_of(&app, &admin.email, "a new admin phrase").await;
}

async fn a_name_with_an_invisible_formatting_character_is_refused(app: TestApp) {
    let expected = [("name".to_owned(), "format_characters".to_owned())];
    let email = "mallory@example.com";
    let registration =
        app.register(&json!({"email": email, "password": PASSWORD, "name": "\u{202e}admin"})).await;
    let refused = problem(registration, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert_eq!(field_errors(&refused), expected, "{refused}");
    problem(app.login(email, PASSWORD).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;

    let ada = app.customer("Ada").await;
    for name in ["\u{202e}admin", "ad\u{200b}min", "\u{2066}Ada\u{2069}", "Ada\u{feff}"] {
        let renamed =
            app.patch_user(&ada.access_token, &ada.id, &json!({"name": name}), None).await;
        let refused = problem(renamed, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(field_errors(&refused), expected, "{refused}");
    }
    let (_, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["name"], "Ada");
    let renamed =
        app.patch_user(&ada.access_token, &ada.id, &json!({"name": "Zoë 李雷 Ωmega"}), None).await;
    assert_eq!(body(renamed, StatusCode::OK).await["name"], "Zoë 李雷 Ωmega");
}

async fn an_invalid_update_is_a_validation_failure(app: TestApp) {
    let ada = app.customer("Ada").await;

    let response = app
        .patch_user(&ada.access_token, &ada.id, &json!({"name": "", "email": "nope"}), None)
        .await;

    let body = problem(response, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| error["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "name"], "{body}");
}

async fn an_update_with_an_unknown_field_is_refused(app: TestApp) {
    let ada = app.customer("Ada").await;

    for field in ["password_hash", "version", "id"] {
        let response = app
            .patch_user(&ada.access_token, &ada.id, &json!({"name": "Eve", field: "x"}), None)
            .await;
        problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    }
    let (headers, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["name"], "Ada");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""));
}

// --- deletion ---

async fn deleting_yourself_ends_your_logins(app: TestApp) {
    let ada = app.customer("Ada").await;
    let admin = app.admin().await;

    empty(app.delete_user(&ada.access_token, &ada.id).await, StatusCode::NO_CONTENT).await;

    problem(app.login(&ada.email, &ada.password).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
        .await;
    problem(app.get_user(&admin.access_token, &ada.id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
}

async fn a_customer_cannot_delete_another_customer_but_an_admin_can(app: TestApp) {
    let ada = app.customer("Ada").await;
    let grace = app.customer("Grace").await;
    let admin = app.admin().await;

    problem(
        app.delete_user(&ada.access_token, &grace.id).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    read(app.me(&grace.access_token).await, StatusCode::OK).await;

    empty(app.delete_user(&admin.access_token, &grace.id).await, StatusCode::NO_CONTENT).await;
    problem(app.get_user(&admin.access_token, &grace.id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    problem(
        app.delete_user(&admin.access_token, &grace.id).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}

async fn a_user_with_orders_cannot_be_deleted(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let product = app.product(&admin, "KB-001", 4999, 10).await;
    app.order(&ada, product["id"].as_str().expect("an id"), 1).await;

    problem(
        app.delete_user(&ada.access_token, &ada.id).await,
        StatusCode::CONFLICT,
        "USER_HAS_ORDERS",
    )
    .await;
    problem(
        app.delete_user(&admin.access_token, &ada.id).await,
        StatusCode::CONFLICT,
        "USER_HAS_ORDERS",
    )
    .await;

    read(app.me(&ada.access_token).await, StatusCode::OK).await;
    // The refused deletion rolled back whole: the sessions it would have revoked still work.
    body(app.refresh(&ada.refresh_token).await, StatusCode::OK).await;
}

// --- the last admin ---

async fn the_only_admin_can_be_neither_deleted_nor_demoted(app: TestApp) {
    let admin = app.admin().await;

    let refused = problem(
        app.delete_user(&admin.access_token, &admin.id).await,
        StatusCode::CONFLICT,
        "LAST_ADMIN",
    )
    .await;
    assert_eq!(refused["type"], "/problems/last-admin");
    for if_match in [None, Some("\"v1\"")] {
        problem(
            app.patch_user(&admin.access_token, &admin.id, &json!({"role": "customer"}), if_match)
                .await,
            StatusCode::CONFLICT,
            "LAST_ADMIN",
        )
        .await;
    }

    let token = access_token_of(&app, &admin.email, &admin.password).await;
    let (headers, me) = read(app.me(&token).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(header_value(&headers, &header::ETAG), Some("\"v1\""), "nothing was stored");
    body(app.list_users(&token, "").await, StatusCode::OK).await;
}

async fn with_two_admins_one_may_be_deleted_but_then_not_the_other(app: TestApp) {
    let first = app.admin().await;
    let second = app.admin().await;

    empty(app.delete_user(&first.access_token, &first.id).await, StatusCode::NO_CONTENT).await;

    problem(
        app.delete_user(&second.access_token, &second.id).await,
        StatusCode::CONFLICT,
        "LAST_ADMIN",
    )
    .await;
    let (_, me) = read(app.me(&second.access_token).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
}

async fn with_two_admins_one_may_be_demoted_but_then_not_the_other(app: TestApp) {
    let first = app.admin().await;
    let second = app.admin().await;

    let (_, demoted) = read(
        app.patch_user(&first.access_token, &second.id, &json!({"role": "customer"}), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(demoted["role"], "customer");

    problem(
        app.patch_user(&first.access_token, &first.id, &json!({"role": "customer"}), None).await,
        StatusCode::CONFLICT,
        "LAST_ADMIN",
    )
    .await;
    // The former admin is an ordinary customer now, and may leave.
    let token = access_token_of(&app, &second.email, &second.password).await;
    empty(app.delete_user(&token, &second.id).await, StatusCode::NO_CONTENT).await;
    let (_, me) = read(app.me(&first.access_token).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
}

// --- concurrent updates ---

async fn parallel_patches_of_a_user_with_the_same_if_match_let_one_win_and_refuse_the_rest_with_412(
    app: TestApp,
) {
    let ada = app.customer("Ada").await;

    let responses = futures::future::join_all((0..20).map(|i| {
        let (app, ada) = (&app, &ada);
        async move {
            app.patch_user(
                &ada.access_token,
                &ada.id,
                &json!({"name": format!("Ada {i}")}),
                Some("\"v1\""),
            )
            .await
        }
    }))
    .await;

    let (won, lost): (Vec<Response>, Vec<Response>) =
        responses.into_iter().partition(|response| response.status() == StatusCode::OK);
    assert_eq!((won.len(), lost.len()), (1, 19), "exactly one PATCH wins");
    let (_, winner) = read(won.into_iter().next().expect("a winner"), StatusCode::OK).await;
    for response in lost {
        assert_eq!(
            header_value(response.headers(), &header::ETAG),
            Some("\"v2\""),
            "every 412 names the winner's version"
        );
        problem(response, StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED").await;
    }
    let (_, me) = read(app.me(&ada.access_token).await, StatusCode::OK).await;
    assert_eq!(me["name"], winner["name"]);
}

// --- a user's orders ---

async fn a_users_orders_are_visible_to_them_and_to_admins_only(app: TestApp) {
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let grace = app.customer("Grace").await;
    let product = app.product(&admin, "KB-001", 4999, 10).await;
    let order = app.order(&ada, product["id"].as_str().expect("an id"), 2).await;
    app.order(&grace, product["id"].as_str().expect("an id"), 1).await;

    let own = body(app.user_orders(&ada.access_token, &ada.id, "").await, StatusCode::OK).await;
    assert_eq!(ids(&own), [order["id"].as_str().expect("an id")]);
    assert_eq!(own["data"][0]["user_id"], json!(ada.id));

    problem(
        app.user_orders(&grace.access_token, &ada.id, "").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    let seen_by_admin =
        body(app.user_orders(&admin.access_token, &ada.id, "").await, StatusCode::OK).await;
    assert_eq!(ids(&seen_by_admin), ids(&own));
}

api_tests!(
    registering_creates_a_customer_with_a_location_and_an_etag,
    an_email_taken_in_another_case_is_a_conflict,
    every_invalid_registration_field_is_reported_at_once,
    registering_with_a_role_is_refused_and_creates_nobody,
    a_user_reads_their_own_profile_at_me,
    a_customer_cannot_see_another_customer_but_an_admin_can,
    an_unknown_user_is_not_found_even_for_an_admin,
    a_malformed_user_id_is_a_malformed_request,
    a_get_with_the_current_etag_in_if_none_match_is_not_modified,
    only_admins_list_users,
    an_admin_pages_through_every_user_with_cursors_and_link_headers,
    a_page_limit_outside_1_to_100_is_a_validation_failure,
    a_garbage_cursor_is_an_invalid_cursor,
    a_cursor_from_another_list_is_an_invalid_cursor,
    a_non_numeric_limit_is_a_malformed_request,
    renaming_yourself_answers_a_new_etag_and_a_stale_if_match_is_refused,
    a_customer_cannot_promote_themselves,
    an_admin_promotion_takes_effect_in_the_next_tokens,
    a_password_change_ends_the_other_sessions,
    a_customer_cannot_change_another_customer,
    changing_your_email_to_a_taken_one_is_a_conflict,
    changing_your_password_changes_how_you_log_in,
    changing_your_password_needs_your_current_password,
    changing_your_email_needs_your_current_password,
    a_name_or_your_own_address_again_needs_no_password,
    an_admin_changes_another_users_credentials_without_their_password,
    an_admin_changing_their_own_password_needs_their_current_one,
    a_name_with_an_invisible_formatting_character_is_refused,
    an_invalid_update_is_a_validation_failure,
    an_update_with_an_unknown_field_is_refused,
    deleting_yourself_ends_your_logins,
    a_customer_cannot_delete_another_customer_but_an_admin_can,
    a_user_with_orders_cannot_be_deleted,
    the_only_admin_can_be_neither_deleted_nor_demoted,
    with_two_admins_one_may_be_deleted_but_then_not_the_other,
    with_two_admins_one_may_be_demoted_but_then_not_the_other,
    parallel_patches_of_a_user_with_the_same_if_match_let_one_win_and_refuse_the_rest_with_412,
    a_users_orders_are_visible_to_them_and_to_admins_only,
);
