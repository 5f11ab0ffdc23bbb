//! What operators and browsers rely on: health and readiness, the request id, security headers,
//! compression, CORS, Swagger UI and the served OpenAPI document.

use orderly_api::routes::table::{Version, endpoints};
use orderly_domain::Uuid;
use orderly_infrastructure::testing::TestDatabase;
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, json_body, spawn_app_with};

const REQUEST_ID: &str = "x-request-id";

async fn send(builder: reqwest::RequestBuilder) -> Response {
    builder.send().await.expect("the request is sent")
}

fn header_of(response: &Response, name: impl header::AsHeaderName) -> Option<String> {
    response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn assert_is_a_uuid(request_id: Option<&str>) {
    let id = request_id.expect("an X-Request-Id header");
    let uuid = Uuid::parse_str(id).unwrap_or_else(|_| panic!("a UUID request id, got {id}"));
    assert_eq!(uuid.get_version_num(), 7, "a time-ordered UUIDv7: {id}");
}

// --- health and readiness ---

async fn liveness_answers_ok(app: TestApp) {
    assert_eq!(json_body(app.health().await, StatusCode::OK).await, json!({"status": "ok"}));
}

async fn readiness_reports_the_database_ok(app: TestApp) {
    let body = json_body(app.ready().await, StatusCode::OK).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
}

// --- request id ---

async fn a_request_id_is_generated_when_none_is_sent(app: TestApp) {
    let first = app.health().await;
    let second = app.health().await;
    let (first, second) = (header_of(&first, REQUEST_ID), header_of(&second, REQUEST_ID));
    assert_is_a_uuid(first.as_deref());
    assert_is_a_uuid(second.as_deref());
    assert_ne!(first, second, "each request gets its own id");
}

async fn a_valid_request_id_is_echoed(app: TestApp) {
    let response =
        send(app.request(Method::GET, "/health", None).header(REQUEST_ID, "abc-123")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_of(&response, REQUEST_ID).as_deref(), Some("abc-123"));
}

async fn an_invalid_request_id_is_replaced_by_a_generated_one(app: TestApp) {
    for invalid in ["a".repeat(200), "has spaces in it".to_owned()] {
        let response =
            send(app.request(Method::GET, "/health", None).header(REQUEST_ID, invalid.as_str()))
                .await;
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = header_of(&response, REQUEST_ID);
        assert_ne!(echoed.as_deref(), Some(invalid.as_str()), "an invalid id is not echoed");
        assert_is_a_uuid(echoed.as_deref());
    }
}

async fn a_problem_body_carries_the_request_id(app: TestApp) {
    let response =
        send(app.request(Method::GET, "/api/v1/nope", None).header(REQUEST_ID, "abc-123")).await;
    assert_eq!(header_of(&response, REQUEST_ID).as_deref(), Some("abc-123"));
    let problem = assert_problem(response, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await;
    assert_eq!(problem["request_id"], "abc-123");

    let unauthenticated = app.me("not-a-token").await;
    let generated = header_of(&unauthenticated, REQUEST_ID);
    assert_is_a_uuid(generated.as_deref());
    let problem =
        assert_problem(unauthenticated, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(problem["request_id"].as_str(), generated.as_deref());
}

// --- security headers ---

fn assert_security_headers(response: &Response, what: &str) {
    assert_eq!(
        header_of(response, header::X_CONTENT_TYPE_OPTIONS).as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header_of(response, header::X_FRAME_OPTIONS).as_deref(), Some("DENY"), "{what}");
    assert_eq!(header_of(response, header::CACHE_CONTROL).as_deref(), Some("no-store"), "{what}");
}

async fn api_responses_carry_the_security_headers_on_success_and_on_error(app: TestApp) {
    let listed = app.list_products(None, "").await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_security_headers(&listed, "GET /api/v1/products");

    let unknown = send(app.request(Method::GET, "/api/v1/nope", None)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&unknown, "an unknown route");

    let wrong_method = send(app.request(Method::PUT, "/api/v1/products", None)).await;
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(&wrong_method, "a wrong method");

    let unauthenticated = send(app.request(Method::GET, "/api/v1/users/me", None)).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&unauthenticated, "a missing token");

    let malformed = send(
        app.request(Method::POST, "/api/v1/users", None)
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"email":"#),
    )
    .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_security_headers(&malformed, "malformed JSON");
}

// --- compression ---

async fn raw_openapi(app: &TestApp, encoding: &str) -> (Option<String>, Vec<u8>) {
    let response = send(
        app.request(Method::GET, "/api-docs/openapi.json", None)
            .header(header::ACCEPT_ENCODING, encoding),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "Accept-Encoding: {encoding}");
    let content_encoding = header_of(&response, header::CONTENT_ENCODING);
    let body = response.bytes().await.expect("a body").to_vec();
    (content_encoding, body)
}

async fn responses_are_compressed_with_gzip_or_brotli_on_request(app: TestApp) {
    let (identity_encoding, plain) = raw_openapi(&app, "identity").await;
    assert_eq!(identity_encoding, None);
    serde_json::from_slice::<Value>(&plain).expect("an uncompressed body is the JSON itself");

    let (gzip_encoding, gzipped) = raw_openapi(&app, "gzip").await;
    assert_eq!(gzip_encoding.as_deref(), Some("gzip"));
    assert!(gzipped.starts_with(&[0x1f, 0x8b]), "a gzip stream starts with its magic number");
    assert!(gzipped.len() < plain.len(), "gzip: {} >= {} bytes", gzipped.len(), plain.len());

    let (brotli_encoding, brotli) = raw_openapi(&app, "br").await;
    assert_eq!(brotli_encoding.as_deref(), Some("br"));
    assert!(brotli.len() < plain.len(), "br: {} >= {} bytes", brotli.len(), plain.len());
    assert!(serde_json::from_slice::<Value>(&brotli).is_err(), "the body is not plain JSON");
}

// --- CORS ---

async fn preflight(app: &TestApp, origin: &str) -> Response {
    send(
        app.request(Method::OPTIONS, "/api/v1/products", None)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
    )
    .await
}

async fn an_allowed_origin_passes_the_cors_preflight(app: TestApp) {
    let response = preflight(&app, "https://shop.example").await;
    assert!(response.status().is_success(), "status {}", response.status());
    assert_eq!(
        header_of(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("https://shop.example")
    );
    let methods = header_of(&response, header::ACCESS_CONTROL_ALLOW_METHODS).unwrap_or_default();
    assert!(methods.contains("POST"), "allowed methods: {methods}");

    let listed = send(
        app.request(Method::GET, "/api/v1/products", None)
            .header(header::ORIGIN, "https://shop.example"),
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        header_of(&listed, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("https://shop.example")
    );
}

async fn an_unknown_origin_is_not_allowed_by_cors(app: TestApp) {
    let response = preflight(&app, "https://evil.example").await;
    assert_eq!(header_of(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);

    let listed = send(
        app.request(Method::GET, "/api/v1/products", None)
            .header(header::ORIGIN, "https://evil.example"),
    )
    .await;
    assert_eq!(header_of(&listed, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
}

// --- Swagger UI ---

async fn swagger_ui_is_served_from_vendored_assets(app: TestApp) {
    let index = send(app.request(Method::GET, "/swagger-ui/", None)).await;
    assert_eq!(index.status(), StatusCode::OK);
    let content_type = header_of(&index, header::CONTENT_TYPE).unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = index.text().await.expect("a page");
    assert!(page.to_lowercase().contains("swagger"), "{page}");

    let css = send(app.request(Method::GET, "/swagger-ui/swagger-ui.css", None)).await;
    assert_eq!(css.status(), StatusCode::OK);
    let content_type = header_of(&css, header::CONTENT_TYPE).unwrap_or_default();
    assert!(content_type.starts_with("text/css"), "{content_type}");
    assert!(!css.bytes().await.expect("a stylesheet").is_empty());
}

async fn swagger_ui_without_its_trailing_slash_redirects_permanently(app: TestApp) {
    let response = send(app.request(Method::GET, "/swagger-ui", None)).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header_of(&response, header::LOCATION).as_deref(), Some("/swagger-ui/"));
}

/// A setting, not a database matter: one engine is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_can_be_disabled_while_the_document_stays_served() {
    let app = spawn_app_with(TestDatabase::sqlite().await, |settings| {
        settings.server.enable_swagger_ui = false;
    })
    .await;
    let index = send(app.request(Method::GET, "/swagger-ui/", None)).await;
    assert_problem(index, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await;
    let document = json_body(app.openapi().await, StatusCode::OK).await;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{document}");
}

// --- the OpenAPI document ---

async fn served_document(app: &TestApp) -> Value {
    json_body(app.openapi().await, StatusCode::OK).await
}

async fn the_openapi_document_describes_every_route_and_both_security_schemes(app: TestApp) {
    let document = served_document(&app).await;
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "OpenAPI version {version}");

    // The document lists exactly the operations of the route table, which the router serves.
    let paths = document["paths"].as_object().expect("paths");
    let mut documented: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|item| item.keys())
                .filter(|key| ["get", "post", "put", "patch", "delete"].contains(&key.as_str()))
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    // (the document at the older address is the first version's)
    let mut routed: Vec<String> = endpoints()
        .iter()
        .filter(|e| e.version().is_none_or(|version| version == Version::V1))
        .map(|e| format!("{} {}", e.method(), e.path()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    assert!(routed.len() >= 22, "the route table lists the API: {routed:?}");

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http", "{schemes}");
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["oauth2"]["type"], "oauth2", "{schemes}");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"], "/api/v1/auth/token",
        "{schemes}"
    );

    let problem = &document["components"]["schemas"]["Problem"];
    assert!(problem.is_object(), "the Problem schema is a component");
    // With its flattened extensions the schema is an `allOf`; the members are in one part.
    let parts: Vec<&Value> = match problem["allOf"].as_array() {
        Some(parts) => parts.iter().collect(),
        None => vec![problem],
    };
    for member in ["type", "title", "status", "detail", "instance", "code", "request_id"] {
        assert!(
            parts.iter().any(|part| {
                part["properties"].get(member).is_some()
                    && part["required"]
                        .as_array()
                        .is_some_and(|required| required.contains(&json!(member)))
            }),
            "Problem requires `{member}`: {problem}"
        );
    }
}

async fn the_served_openapi_documents_are_the_committed_ones(app: TestApp) {
    let committed = [
        ("v1", include_str!("../../../../docs/openapi-v1.json")),
        ("v2", include_str!("../../../../docs/openapi-v2.json")),
    ];
    for (version, committed) in committed {
        let path = format!("/api-docs/{version}/openapi.json");
        let response = send(app.request(Method::GET, &path, None)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let served: Value = response.json().await.expect("a JSON document");
        let committed: Value = serde_json::from_str(committed).expect("committed JSON");
        assert!(
            served == committed,
            "docs/openapi-{version}.json has drifted from the code: run `make openapi` and commit the result"
        );
    }
    // The first version's older address still serves it.
    assert_eq!(
        served_document(&app).await,
        serde_json::from_str::<Value>(committed[0].1).expect("committed JSON")
    );
}

api_tests!(
    liveness_answers_ok,
    readiness_reports_the_database_ok,
    a_request_id_is_generated_when_none_is_sent,
    a_valid_request_id_is_echoed,
    an_invalid_request_id_is_replaced_by_a_generated_one,
    a_problem_body_carries_the_request_id,
    api_responses_carry_the_security_headers_on_success_and_on_error,
    responses_are_compressed_with_gzip_or_brotli_on_request,
    an_allowed_origin_passes_the_cors_preflight,
    an_unknown_origin_is_not_allowed_by_cors,
    swagger_ui_is_served_from_vendored_assets,
    swagger_ui_without_its_trailing_slash_redirects_permanently,
    the_openapi_document_describes_every_route_and_both_security_schemes,
    the_served_openapi_documents_are_the_committed_ones,
    a_refused_cors_preflight_carries_the_security_headers,
);

async fn a_refused_cors_preflight_carries_the_security_headers(app: TestApp) {
    let response = preflight(&app, "https://evil.example").await;
    assert!(response.status().is_client_error(), "refused: {}", response.status());
    assert_security_headers(&response, "a refused preflight");
    assert_problem(response, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST").await;
}
