//! One error format for everything: the framework's own rejections (unknown route, wrong method,
//! unreadable body, wrong content type, body too large, bad path or query parameter) and a
//! database that is down all answer RFC 9457 problems, and every problem `type` is a page the
//! server itself describes.

use std::time::{Duration, Instant};

use orderly_api::routes::table::{Endpoint, endpoints};
use orderly_infrastructure::{Database, DatabaseSettings};
use orderly_server::{settings::Settings, startup::Application};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, http_client, json_body};

const SOME_ID: &str = "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d";

/// A client's request target for a path template: each `{parameter}` filled in.
fn instance(path: &str) -> String {
    path.replace("{id}", SOME_ID).replace("{slug}", "x")
}

/// The method of an operation of the route table, as the test client spells it.
fn method_of(endpoint: &Endpoint) -> Method {
    Method::from_bytes(endpoint.method().as_str().as_bytes()).expect("a valid method")
}

/// Every path of the route table (with its parameters filled in) and the `Allow` header its 405
/// must carry: the methods declared for it, with `HEAD` beside `GET`, in the usual order.
fn declared_paths() -> Vec<(String, String)> {
    let order =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    let mut paths: Vec<(&str, Vec<Method>)> = Vec::new();
    for endpoint in endpoints() {
        let mut methods = vec![method_of(endpoint)];
        if method_of(endpoint) == Method::GET {
            methods.push(Method::HEAD);
        }
        match paths.iter_mut().find(|(path, _)| *path == endpoint.path()) {
            Some((_, declared)) => declared.extend(methods),
            None => paths.push((endpoint.path(), methods)),
        }
    }
    assert!(paths.len() >= 14, "the route table lists the API: {paths:?}");
    paths
        .into_iter()
        .map(|(path, declared)| {
            let allow: Vec<&str> =
                order.iter().filter(|m| declared.contains(m)).map(Method::as_str).collect();
            (instance(path), allow.join(", "))
        })
        .collect()
}

/// Methods no path declares.
fn undeclared_methods() -> Vec<Method> {
    let methods = vec![
        Method::PUT,
        Method::TRACE,
        Method::from_bytes(b"FROBNICATE").expect("a valid method name"),
    ];
    for method in &methods {
        assert!(endpoints().iter().all(|e| method_of(e) != *method), "{method} is declared");
    }
    methods
}

async fn send(builder: reqwest::RequestBuilder) -> reqwest::Response {
    builder.send().await.expect("the request is sent")
}

/// The `type` of a problem body.
fn type_of(problem: &Value) -> String {
    problem["type"].as_str().expect("a problem type").to_owned()
}

async fn an_unknown_route_is_a_route_not_found_problem(app: TestApp) {
    for path in ["/api/v1/nope", "/nope"] {
        let response = send(app.request(Method::GET, path, None)).await;
        let problem = assert_problem(response, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await;
        assert_eq!(problem["type"], "/problems/route-not-found");
        assert!(
            problem["detail"].as_str().is_some_and(|detail| detail.contains(path)),
            "the detail names the path: {problem}"
        );
    }
}

async fn an_undeclared_method_on_any_declared_path_is_405_with_the_allowed_methods(app: TestApp) {
    for (path, allow) in declared_paths() {
        for method in undeclared_methods() {
            let response = send(app.request(method.clone(), &path, None)).await;
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            assert_eq!(allowed.as_deref(), Some(allow.as_str()), "Allow of {method} {path}");
            let problem =
                assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
                    .await;
            assert_eq!(problem["type"], "/problems/method-not-allowed", "{method} {path}");
        }
    }
}

async fn every_operation_of_the_route_table_is_routed_to_a_handler(app: TestApp) {
    for endpoint in endpoints() {
        let path = instance(endpoint.path());
        let response = send(app.request(method_of(endpoint), &path, None)).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{} {path}: {body}", endpoint.method());
        assert_ne!(body["code"], "ROUTE_NOT_FOUND", "{} {path}", endpoint.method());
    }
}

async fn malformed_json_is_a_malformed_request(app: TestApp) {
    let response = send(
        app.request(Method::POST, "/api/v1/users", None)
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"email":"#),
    )
    .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}

async fn json_of_the_wrong_types_is_a_malformed_request(app: TestApp) {
    let response =
        app.register(&json!({"email": 42, "password": true, "name": ["not", "a", "name"]})).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
    assert_eq!(problem["type"], "/problems/malformed-request");
}

async fn a_json_route_refuses_a_body_without_a_json_content_type(app: TestApp) {
    let body = r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}"#;
    let without_content_type =
        send(app.request(Method::POST, "/api/v1/users", None).body(body)).await;
    assert_problem(
        without_content_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;

    let as_text = send(
        app.request(Method::POST, "/api/v1/users", None)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body),
    )
    .await;
    let problem =
        assert_problem(as_text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(problem["type"], "/problems/unsupported-media-type");
}

async fn the_token_endpoint_refuses_json_as_an_unsupported_media_type(app: TestApp) {
    let response = send(
        app.request(Method::POST, "/api/v1/auth/token", None)
            .json(&json!({"grant_type": "password", "username": "a@example.com", "password": "x"})),
    )
    .await;
    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE").await;
}

async fn a_body_over_the_limit_is_payload_too_large(app: TestApp) {
    assert_eq!(app.settings.server.body_limit, 65_536, "the test settings' limit");
    let name = "x".repeat(100 * 1024);
    let body =
        json!({"email": "big@example.com", "password": "correct horse battery", "name": name});
    let response = app.register(&body).await;
    let problem =
        assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(problem["type"], "/problems/payload-too-large");
}

async fn a_path_parameter_that_is_not_a_uuid_is_a_malformed_request(app: TestApp) {
    let response = app.get_product("not-a-uuid", None).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}

async fn a_query_parameter_of_the_wrong_type_is_a_malformed_request(app: TestApp) {
    for query in ["?limit=abc", "?include_archived=maybe"] {
        let response = app.list_products(None, query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
        assert_eq!(problem["type"], "/problems/malformed-request", "{query}");
    }
}

async fn a_problem_type_is_a_page_describing_the_problem(app: TestApp) {
    let response = send(app.request(Method::GET, "/problems/insufficient-stock", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.expect("a page");
    assert!(page.contains("INSUFFICIENT_STOCK"), "{page}");
    assert!(page.contains("Insufficient stock"), "{page}");
    assert!(page.contains("409"), "{page}");
}

async fn an_unknown_problem_type_is_a_not_found_problem(app: TestApp) {
    let response = send(app.request(Method::GET, "/problems/nope", None)).await;
    assert_problem(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

async fn every_problem_type_met_here_is_answered_by_the_server(app: TestApp) {
    let mut types = Vec::new();
    let unknown_route = send(app.request(Method::GET, "/nope", None)).await;
    types.push(type_of(
        &assert_problem(unknown_route, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await,
    ));
    let wrong_method = send(app.request(Method::PUT, "/api/v1/products", None)).await;
    types.push(type_of(
        &assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await,
    ));
    let malformed = app.get_product("not-a-uuid", None).await;
    types.push(type_of(
        &assert_problem(malformed, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await,
    ));
    let as_text = send(
        app.request(Method::POST, "/api/v1/users", None)
            .header(header::CONTENT_TYPE, "text/plain")
            .body("{}"),
    )
    .await;
    types.push(type_of(
        &assert_problem(as_text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            .await,
    ));
    let too_large = app
        .register(
            &json!({"email": "big@example.com", "password": "x", "name": "x".repeat(100 * 1024)}),
        )
        .await;
    types.push(type_of(
        &assert_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await,
    ));
    let unknown_type = send(app.request(Method::GET, "/problems/nope", None)).await;
    types.push(type_of(&assert_problem(unknown_type, StatusCode::NOT_FOUND, "NOT_FOUND").await));

    for problem_type in types {
        assert_type_is_described(&app.client, &app.address, &problem_type).await;
    }
}

/// Asserts that the server answers the problem `type` URI with a page.
async fn assert_type_is_described(client: &reqwest::Client, address: &str, problem_type: &str) {
    let response =
        client.get(format!("{address}{problem_type}")).send().await.expect("the request is sent");
    assert_eq!(response.status(), StatusCode::OK, "GET {problem_type}");
    let page = response.text().await.expect("a page");
    let code = problem_type.trim_start_matches("/problems/").replace('-', "_").to_uppercase();
    assert!(page.contains(&code), "{problem_type} names {code}: {page}");
}

async fn the_internal_error_problem_type_promises_an_opaque_body(app: TestApp) {
    let response = send(app.request(Method::GET, "/problems/internal-error", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("a page");
    assert!(page.contains("INTERNAL_ERROR"), "{page}");
    assert!(page.contains("500"), "{page}");
    assert!(page.contains("request_id"), "the client is told to quote the request id: {page}");
    let lowered = page.to_lowercase();
    for internal in ["panic", "backtrace", "stack", "sql", "sea_orm", "sqlx", "anyhow", ".rs"] {
        assert!(!lowered.contains(internal), "the description mentions `{internal}`: {page}");
    }
}

api_tests!(
    an_unknown_route_is_a_route_not_found_problem,
    an_undeclared_method_on_any_declared_path_is_405_with_the_allowed_methods,
    every_operation_of_the_route_table_is_routed_to_a_handler,
    malformed_json_is_a_malformed_request,
    json_of_the_wrong_types_is_a_malformed_request,
    a_json_route_refuses_a_body_without_a_json_content_type,
    the_token_endpoint_refuses_json_as_an_unsupported_media_type,
    a_body_over_the_limit_is_payload_too_large,
    a_path_parameter_that_is_not_a_uuid_is_a_malformed_request,
    a_query_parameter_of_the_wrong_type_is_a_malformed_request,
    a_problem_type_is_a_page_describing_the_problem,
    an_unknown_problem_type_is_a_not_found_problem,
    every_problem_type_met_here_is_answered_by_the_server,
    the_internal_error_problem_type_promises_an_opaque_body,
    an_undeclared_method_on_the_api_docs_is_405_with_the_allowed_methods,
    head_on_a_readable_route_is_answered_like_get,
);

/// An application whose PostgreSQL server does not exist (nothing listens on port 1).
async fn spawn_app_without_a_database() -> String {
    let url = "postgres://postgres@127.0.0.1:1/none";
    let database = Database::connect(&DatabaseSettings {
        url: url.into(),
        acquire_timeout: Duration::from_millis(500),
        ..DatabaseSettings::new(url)
    })
    .await
    .expect("the pool connects lazily, so it builds");
    let application = Application::build_with(&Settings::for_tests(url.to_owned()), database)
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    address
}

/// Asserts that `response` is a fast `DATABASE_UNAVAILABLE` with `Retry-After` and no internals.
async fn assert_database_unavailable(response: reqwest::Response, started: Instant) -> Value {
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "a dead database fails fast, took {elapsed:?}");
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    assert!(
        retry_after.as_deref().is_some_and(|seconds| seconds.parse::<u32>().is_ok()),
        "Retry-After in seconds on {}: {retry_after:?}",
        response.url()
    );
    let problem =
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "DATABASE_UNAVAILABLE").await;
    let text = problem.to_string().to_lowercase();
    for internal in ["127.0.0.1", "postgres://", "refused", "sqlx", "pool"] {
        assert!(!text.contains(internal), "the body leaks `{internal}`: {problem}");
    }
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_fails_fast_with_503_while_liveness_holds() {
    let address = spawn_app_without_a_database().await;
    let client = http_client().timeout(Duration::from_secs(30)).build().expect("a client");

    let started = Instant::now();
    let listed =
        client.get(format!("{address}/api/v1/products")).send().await.expect("the request is sent");
    let problem = assert_database_unavailable(listed, started).await;
    assert_type_is_described(&client, &address, &type_of(&problem)).await;

    let started = Instant::now();
    let registered = client
        .post(format!("{address}/api/v1/users"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}))
        .send()
        .await
        .expect("the request is sent");
    assert_database_unavailable(registered, started).await;

    let started = Instant::now();
    let login = client
        .post(format!("{address}/api/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ada@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("the request is sent");
    assert_database_unavailable(login, started).await;

    let started = Instant::now();
    let ready = client.get(format!("{address}/ready")).send().await.expect("the request is sent");
    let problem = assert_database_unavailable(ready, started).await;
    assert_eq!(problem["checks"], json!({"database": "unavailable"}), "{problem}");

    let health = client.get(format!("{address}/health")).send().await.expect("the request is sent");
    assert_eq!(json_body(health, StatusCode::OK).await, json!({"status": "ok"}));
}

async fn an_undeclared_method_on_the_api_docs_is_405_with_the_allowed_methods(app: TestApp) {
    assert!(app.settings.server.enable_swagger_ui, "the default test settings serve Swagger UI");
    for (path, allow) in [("/api-docs/openapi.json", "GET, HEAD"), ("/swagger-ui/", "GET")] {
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let response = send(app.request(method.clone(), path, None)).await;
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            assert_eq!(allowed.as_deref(), Some(allow), "Allow of {method} {path}");
            assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
        }
    }
}

async fn head_on_a_readable_route_is_answered_like_get(app: TestApp) {
    for path in ["/health", "/api/v1/products", "/problems/not-found"] {
        let response = send(app.request(Method::HEAD, path, None)).await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path} (RFC 9110 section 9.3.2)");
        assert!(response.bytes().await.expect("no body").is_empty(), "HEAD {path} has no body");
    }
}
