//! The OAuth2 token endpoint (password and refresh grants, RFC 6749), revocation (RFC 7009), and
//! the bearer check every protected route makes.

use futures::future::join_all;
use orderly_application::ports::{AccessTokens as _, Claims};
use orderly_domain::{
    Role, UserId,
    time::{TimeDelta, Utc},
};
use orderly_infrastructure::services::{JwtAccessTokens, JwtSettings};
use orderly_server::startup::wire;
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, json_body};

const TOKEN_PATH: &str = "/api/v1/auth/token";

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 section 5), as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |bits, (i, byte)| bits | u32::from(*byte) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[((bits >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn unbase64url(text: &str) -> Vec<u8> {
    let (mut bits, mut pending, mut out) = (0_u32, 0_u32, Vec::new());
    for c in text.bytes() {
        let value = BASE64URL.iter().position(|a| *a == c).expect("a base64url character");
        bits = (bits << 6) | u32::try_from(value).expect("< 64");
        pending += 6;
        if pending >= 8 {
            pending -= 8;
            out.push(u8::try_from((bits >> pending) & 0xff).expect("one byte"));
            bits &= (1 << pending) - 1;
        }
    }
    out
}

/// The decoded header and claims of a JWT (the signature is not checked).
fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let decode = |part: &str| -> Value {
        let bytes = unbase64url(part);
        assert_eq!(base64url(&bytes), part, "the test's base64url codec round-trips");
        serde_json::from_slice(&bytes).expect("a JSON segment")
    };
    (decode(parts[0]), decode(parts[1]))
}

/// A token signer with the app's issuer and audience (unless overridden) and `secret`.
fn signer(app: &TestApp, secret: &[u8], audience: Option<&str>) -> JwtAccessTokens {
    JwtAccessTokens::new(JwtSettings {
        secret: secret.to_vec(),
        issuer: app.settings.auth.jwt_issuer.clone(),
        audience: audience.map_or_else(|| app.settings.auth.jwt_audience.clone(), str::to_owned),
        ttl: TimeDelta::minutes(15),
    })
}

fn claims(user_id: &str, role: Role) -> Claims {
    Claims { user_id: user_id.parse::<UserId>().expect("a user id"), role, session_epoch: 0 }
}

async fn me_with_authorization(app: &TestApp, authorization: &str) -> Response {
    app.client
        .get(app.url("/api/v1/users/me"))
        .header(header::AUTHORIZATION, authorization)
        .send()
        .await
        .expect("the request is sent")
}

fn challenge(response: &Response) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .expect("a WWW-Authenticate header")
        .to_owned()
}

/// Asserts the 401 answer to a bearer token that was sent but is not acceptable.
async fn assert_invalid_token(response: Response) {
    let challenge = challenge(&response);
    assert!(challenge.starts_with(r#"Bearer realm="orderly""#), "{challenge}");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> Response {
    app.client.post(app.url(TOKEN_PATH)).form(form).send().await.expect("the request is sent")
}

// --- the password grant ---

async fn the_password_grant_answers_an_rfc_6749_token_response(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = app.login(&customer.email, &customer.password).await;
    let cache_control = response.headers().get(header::CACHE_CONTROL).cloned();
    let pragma = response.headers().get(header::PRAGMA).cloned();
    let body = json_body(response, StatusCode::OK).await;

    assert_eq!(cache_control.as_ref().and_then(|v| v.to_str().ok()), Some("no-store"));
    assert_eq!(pragma.as_ref().and_then(|v| v.to_str().ok()), Some("no-cache"));
    let mut keys: Vec<&str> =
        body.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"], "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let refresh_token = body["refresh_token"].as_str().expect("a refresh token");
    assert!(refresh_token.len() >= 32, "a refresh token is long and random: {refresh_token}");

    let access_token = body["access_token"].as_str().expect("an access token");
    let (jwt_header, jwt_claims) = jwt_parts(access_token);
    assert_eq!(jwt_header["alg"], "HS256");
    assert_eq!(jwt_claims["sub"], json!(customer.id));
    assert_eq!(jwt_claims["role"], "customer");
    assert_eq!(jwt_claims["iss"], "orderly");
    assert_eq!(jwt_claims["aud"], "orderly-api");
    let lifetime =
        jwt_claims["exp"].as_i64().expect("exp") - jwt_claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 900);

    let me = json_body(app.me(access_token).await, StatusCode::OK).await;
    assert_eq!(me["id"], json!(customer.id));
}

async fn the_password_grant_accepts_the_email_in_any_case(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = app.login(&customer.email.to_uppercase(), &customer.password).await;

    let body = json_body(response, StatusCode::OK).await;
    let me =
        json_body(app.me(body["access_token"].as_str().expect("a token")).await, StatusCode::OK)
            .await;
    assert_eq!(me["id"], json!(customer.id));
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_invalid_grant(app: TestApp) {
    let customer = app.customer("Ada").await;

    let wrong_password = assert_problem(
        app.login(&customer.email, "not the right password").await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;
    let unknown_email = assert_problem(
        app.login("nobody@example.com", &customer.password).await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;

    for body in [&wrong_password, &unknown_email] {
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        assert!(body.get("access_token").is_none(), "{body}");
    }
    assert_eq!(wrong_password["detail"], unknown_email["detail"], "the answer tells nothing");
    assert_eq!(wrong_password["error_description"], unknown_email["error_description"]);
}

async fn a_password_grant_without_a_username_is_an_invalid_request(app: TestApp) {
    let response = token_form(&app, &[("grant_type", "password"), ("password", "whatever")]).await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("username")), "{body}");
}

async fn a_password_grant_without_a_password_is_an_invalid_request(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response =
        token_form(&app, &[("grant_type", "password"), ("username", &customer.email)]).await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(body["error"], "invalid_request", "{body}");
}

async fn a_token_request_without_a_grant_type_is_an_invalid_request(app: TestApp) {
    let response = token_form(&app, &[("username", "ada@example.com"), ("password", "x")]).await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(body["error"], "invalid_request", "{body}");
}

async fn an_unknown_grant_type_is_unsupported(app: TestApp) {
    let response = token_form(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", "swagger"), ("client_secret", "x")],
    )
    .await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "UNSUPPORTED_GRANT_TYPE").await;
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");
}

async fn a_json_token_request_is_an_unsupported_media_type(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = app
        .client
        .post(app.url(TOKEN_PATH))
        .json(&json!({
            "grant_type": "password", "username": customer.email, "password": customer.password
        }))
        .send()
        .await
        .expect("the request is sent");

    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE").await;
}

async fn extra_parameters_such_as_client_id_and_scope_are_accepted(app: TestApp) {
    let customer = app.customer("Ada").await;

    // What Swagger UI's "Authorize" dialog sends for the OAuth2 password flow.
    let response = token_form(
        &app,
        &[
            ("grant_type", "password"),
            ("username", &customer.email),
            ("password", &customer.password),
            ("client_id", "swagger-ui"),
            ("client_secret", ""),
            ("scope", "read write"),
        ],
    )
    .await;

    let body = json_body(response, StatusCode::OK).await;
    assert_eq!(body["token_type"], "Bearer");
    json_body(app.me(body["access_token"].as_str().expect("a token")).await, StatusCode::OK).await;
}

// --- the refresh grant and revocation ---

async fn a_refresh_rotates_the_refresh_token_and_issues_a_working_access_token(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = app.refresh(&customer.refresh_token).await;
    let cache_control = response.headers().get(header::CACHE_CONTROL).cloned();
    let body = json_body(response, StatusCode::OK).await;

    assert_eq!(cache_control.as_ref().and_then(|v| v.to_str().ok()), Some("no-store"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let new_refresh = body["refresh_token"].as_str().expect("a refresh token");
    assert_ne!(new_refresh, customer.refresh_token, "refresh tokens are single use");
    let access_token = body["access_token"].as_str().expect("an access token");
    assert_eq!(jwt_parts(access_token).1["sub"], json!(customer.id));
    let me = json_body(app.me(access_token).await, StatusCode::OK).await;
    assert_eq!(me["id"], json!(customer.id));

    let again = json_body(app.refresh(new_refresh).await, StatusCode::OK).await;
    assert_ne!(again["refresh_token"].as_str(), Some(new_refresh));
}

async fn reusing_a_rotated_refresh_token_revokes_the_whole_session(app: TestApp) {
    let customer = app.customer("Ada").await;
    let other_session =
        json_body(app.login(&customer.email, &customer.password).await, StatusCode::OK).await;
    let rotated = json_body(app.refresh(&customer.refresh_token).await, StatusCode::OK).await;
    let new_refresh = rotated["refresh_token"].as_str().expect("a refresh token");

    let reuse = assert_problem(
        app.refresh(&customer.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;
    assert_eq!(reuse["error"], "invalid_grant", "{reuse}");

    let after =
        assert_problem(app.refresh(new_refresh).await, StatusCode::BAD_REQUEST, "INVALID_GRANT")
            .await;
    assert_eq!(after["error"], "invalid_grant", "{after}");

    let other = other_session["refresh_token"].as_str().expect("a refresh token");
    json_body(app.refresh(other).await, StatusCode::OK).await;
}

async fn a_revoked_refresh_token_can_no_longer_refresh(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = app.revoke(&customer.refresh_token).await;

    assert_eq!(response.status(), StatusCode::OK);
    let refused = assert_problem(
        app.refresh(&customer.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
}

async fn revoking_a_rotated_token_revokes_its_successor_too(app: TestApp) {
    let customer = app.customer("Ada").await;
    let rotated = json_body(app.refresh(&customer.refresh_token).await, StatusCode::OK).await;
    let new_refresh = rotated["refresh_token"].as_str().expect("a refresh token");

    let response = app.revoke(&customer.refresh_token).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_problem(app.refresh(new_refresh).await, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
}

async fn revoking_an_unknown_token_succeeds(app: TestApp) {
    let response = app.revoke("no-such-token-0123456789abcdef").await;

    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_revocation_without_a_token_is_an_invalid_request(app: TestApp) {
    let response = app
        .client
        .post(app.url("/api/v1/auth/revoke"))
        .form(&[("token_type_hint", "refresh_token")])
        .send()
        .await
        .expect("the request is sent");

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(body["error"], "invalid_request", "{body}");
}

async fn concurrent_refreshes_of_one_token_let_exactly_one_through(app: TestApp) {
    let customer = app.customer("Ada").await;

    let responses = join_all((0..5).map(|_| app.refresh(&customer.refresh_token))).await;

    let mut granted = 0;
    for response in responses {
        if response.status() == StatusCode::OK {
            granted += 1;
        } else {
            assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
        }
    }
    assert_eq!(granted, 1, "a refresh token is single use, also under concurrency");
}

/// Runs on an app whose refresh tokens expire the moment they are issued.
async fn an_expired_refresh_token_is_an_invalid_grant(app: TestApp) {
    let customer = app.customer("Ada").await;

    let refused = assert_problem(
        app.refresh(&customer.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;

    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    json_body(app.me(&customer.access_token).await, StatusCode::OK).await;
}

/// `api_tests!` for [`an_expired_refresh_token_is_an_invalid_grant`], which needs its own settings.
mod expired_refresh_token {
    use orderly_infrastructure::testing::TestDatabase;

    use crate::helpers::spawn_app_with;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = spawn_app_with(TestDatabase::sqlite().await, |settings| {
            settings.auth.refresh_token_ttl = 0;
        })
        .await;
        super::an_expired_refresh_token_is_an_invalid_grant(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = TestDatabase::postgres().await else {
            eprintln!("TEST_DATABASE_URL is not set: PostgreSQL not tested");
            return;
        };
        let app = spawn_app_with(db, |settings| settings.auth.refresh_token_ttl = 0).await;
        super::an_expired_refresh_token_is_an_invalid_grant(app).await;
    }
}

async fn a_deleted_users_refresh_token_can_no_longer_be_used(app: TestApp) {
    let customer = app.customer("Ada").await;

    let deleted = app.delete_user(&customer.access_token, &customer.id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let refused = assert_problem(
        app.refresh(&customer.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "INVALID_GRANT",
    )
    .await;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    // The access token is still well signed and unexpired, but names nobody any more: it is
    // refused (ADR 0013).
    assert_problem(
        app.me(&customer.access_token).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

// --- bearer authentication ---

async fn a_protected_route_without_a_token_is_unauthenticated_with_a_bearer_challenge(
    app: TestApp,
) {
    let response = app.request(Method::GET, "/api/v1/users/me", None).send().await.expect("sent");

    assert_eq!(challenge(&response), r#"Bearer realm="orderly""#);
    assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

async fn a_garbage_token_is_an_invalid_token(app: TestApp) {
    assert_invalid_token(app.me("garbage").await).await;
    assert_invalid_token(app.me("not.a.jwt").await).await;
}

async fn a_token_signed_with_another_secret_is_an_invalid_token(app: TestApp) {
    let customer = app.customer("Ada").await;
    let secret = app.settings.jwt_secret_bytes().expect("the test secret");
    let claims = claims(&customer.id, Role::Admin);
    let genuine = signer(&app, &secret, None).issue(claims, Utc::now()).expect("signed");
    let forged = signer(&app, b"another secret that is long enough 0123456789", None)
        .issue(claims, Utc::now())
        .expect("signed");

    json_body(app.me(&genuine.token).await, StatusCode::OK).await;
    assert_invalid_token(app.me(&forged.token).await).await;
}

async fn a_token_for_another_audience_is_an_invalid_token(app: TestApp) {
    let customer = app.customer("Ada").await;
    let secret = app.settings.jwt_secret_bytes().expect("the test secret");

    let token = signer(&app, &secret, Some("another-api"))
        .issue(claims(&customer.id, Role::Customer), Utc::now())
        .expect("signed");

    assert_invalid_token(app.me(&token.token).await).await;
}

async fn an_unsigned_token_with_alg_none_is_an_invalid_token(app: TestApp) {
    let admin = app.admin().await;
    let (_, genuine_claims) = jwt_parts(&admin.access_token);

    for alg in ["none", "None", "NONE"] {
        let header = base64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        let payload = base64url(genuine_claims.to_string().as_bytes());
        let unsigned = format!("{header}.{payload}.");

        assert_invalid_token(app.me(&unsigned).await).await;
        assert_invalid_token(app.list_users(&unsigned, "").await).await;
    }
}

async fn a_token_whose_claims_were_altered_is_an_invalid_token(app: TestApp) {
    let customer = app.customer("Ada").await;
    let parts: Vec<&str> = customer.access_token.split('.').collect();
    let (_, mut altered) = jwt_parts(&customer.access_token);
    altered["role"] = json!("admin");
    let tampered =
        format!("{}.{}.{}", parts[0], base64url(altered.to_string().as_bytes()), parts[2]);

    assert_invalid_token(app.list_users(&tampered, "").await).await;
    assert_problem(
        app.list_users(&customer.access_token, "").await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
}

async fn an_expired_token_is_an_invalid_token(app: TestApp) {
    let customer = app.customer("Ada").await;
    // The app's own signer, with the app's secret, issuing as if an hour ago (15 min lifetime).
    let wiring = wire(&app.database, &app.settings).expect("wiring");
    let claims = claims(&customer.id, Role::Customer);
    let fresh = wiring.access_tokens.issue(claims, Utc::now()).expect("signed");
    let expired =
        wiring.access_tokens.issue(claims, Utc::now() - TimeDelta::hours(1)).expect("signed");
    assert!(
        jwt_parts(&expired.token).1["exp"].as_i64().expect("exp") < Utc::now().timestamp(),
        "the token is expired"
    );

    json_body(app.me(&fresh.token).await, StatusCode::OK).await;
    assert_invalid_token(app.me(&expired.token).await).await;
}

async fn a_non_bearer_scheme_is_an_invalid_token(app: TestApp) {
    let customer = app.customer("Ada").await;

    // `ada:secret` in standard base64, as HTTP Basic sends it.
    assert_invalid_token(me_with_authorization(&app, "Basic YWRhOnNlY3JldA==").await).await;
    assert_invalid_token(
        me_with_authorization(&app, &format!("Token {}", customer.access_token)).await,
    )
    .await;
    assert_invalid_token(me_with_authorization(&app, "Bearer").await).await;
}

async fn the_bearer_scheme_name_is_case_insensitive(app: TestApp) {
    let customer = app.customer("Ada").await;

    let response = me_with_authorization(&app, &format!("bearer {}", customer.access_token)).await;

    assert_eq!(json_body(response, StatusCode::OK).await["id"], json!(customer.id));
}

api_tests!(
    the_password_grant_answers_an_rfc_6749_token_response,
    the_password_grant_accepts_the_email_in_any_case,
    a_wrong_password_and_an_unknown_email_get_the_same_invalid_grant,
    a_password_grant_without_a_username_is_an_invalid_request,
    a_password_grant_without_a_password_is_an_invalid_request,
    a_token_request_without_a_grant_type_is_an_invalid_request,
    an_unknown_grant_type_is_unsupported,
    a_json_token_request_is_an_unsupported_media_type,
    extra_parameters_such_as_client_id_and_scope_are_accepted,
    a_refresh_rotates_the_refresh_token_and_issues_a_working_access_token,
    reusing_a_rotated_refresh_token_revokes_the_whole_session,
    a_revoked_refresh_token_can_no_longer_refresh,
    revoking_a_rotated_token_revokes_its_successor_too,
    revoking_an_unknown_token_succeeds,
    a_revocation_without_a_token_is_an_invalid_request,
    concurrent_refreshes_of_one_token_let_exactly_one_through,
    a_deleted_users_refresh_token_can_no_longer_be_used,
    a_protected_route_without_a_token_is_unauthenticated_with_a_bearer_challenge,
    a_garbage_token_is_an_invalid_token,
    a_token_signed_with_another_secret_is_an_invalid_token,
    a_token_for_another_audience_is_an_invalid_token,
    an_unsigned_token_with_alg_none_is_an_invalid_token,
    a_token_whose_claims_were_altered_is_an_invalid_token,
    an_expired_token_is_an_invalid_token,
    a_non_bearer_scheme_is_an_invalid_token,
    the_bearer_scheme_name_is_case_insensitive,
);
