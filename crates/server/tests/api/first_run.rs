//! A newcomer's first minutes: `/` leads somewhere useful, and an instance whose database schema
//! is behind the binary says so on `/ready` instead of answering 500s.

use orderly_infrastructure::{Database, DatabaseSettings};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, json_body};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(Method::GET, path, None).send().await.expect("the request is sent")
}

/// The name of the newest migration the database has applied.
async fn newest_migration(database: &Database) -> String {
    let status = database.migration_status().await.expect("the migration status");
    status.into_iter().rev().find(|(_, applied)| *applied).expect("an applied migration").0
}

// --- the front door ---

async fn the_root_redirects_to_swagger_ui(app: TestApp) {
    let response = get(&app, "/").await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
    assert_eq!(location, Some("/swagger-ui/"));
    // ... and the UI is there.
    assert_eq!(get(&app, "/swagger-ui/").await.status(), StatusCode::OK);
}

async fn without_swagger_ui_the_root_is_a_json_index_of_links_that_work(app: TestApp) {
    let bare = app.another_instance(|settings| settings.server.enable_swagger_ui = false).await;
    let index = json_body(get(&bare, "/").await, StatusCode::OK).await;
    assert_eq!(index["service"], "orderly", "{index}");
    assert_eq!(index["links"]["openapi"], "/api-docs/v2/openapi.json", "{index}");
    assert!(index["links"].get("swagger_ui").is_none(), "{index}");
    for link in ["openapi", "health", "ready", "products"] {
        let path = index["links"][link].as_str().expect("a link");
        assert_eq!(get(&bare, path).await.status(), StatusCode::OK, "{link}: {path}");
    }
    assert_eq!(get(&bare, "/swagger-ui/").await.status(), StatusCode::NOT_FOUND);
}

async fn the_root_answers_405_to_other_methods(app: TestApp) {
    let response = app.request(Method::POST, "/", None).send().await.expect("sent");
    let allow = response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok());
    assert_eq!(allow, Some("GET, HEAD"));
    assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
}

// --- readiness and migrations ---

async fn ready_is_503_migrations_pending_while_the_schema_is_a_step_behind_then_200(app: TestApp) {
    let newest = newest_migration(&app.database).await;
    // The operator migrates from a process of their own (`orderly migrate`), with one
    // connection, not through the serving instance's pool (with the instance's settings: behind
    // a transaction pooler, migrations take DATABASE_MIGRATION_URL).
    let operator = DatabaseSettings { max_connections: 1, ..app.settings.database.adapter() };
    let operator = Database::connect(&operator).await.expect("the operator's connection");
    operator.migrate_down(Some(1)).await.expect("one migration reverted");

    let response = app.ready().await;
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let problem =
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "MIGRATIONS_PENDING").await;
    assert_eq!(problem["pending_migrations"], json!([newest]), "{problem}");
    assert_eq!(problem["checks"]["database"], "ok", "{problem}");
    assert_eq!(problem["checks"]["migrations"], "pending", "{problem}");
    assert!(retry_after.is_some(), "a Retry-After header");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("orderly migrate up"), "{detail}");

    operator.migrate_up(None).await.expect("migrated");
    operator.close().await.expect("closing the operator's connection");
    let body: Value = json_body(app.ready().await, StatusCode::OK).await;
    assert_eq!(body["checks"]["migrations"], "ok", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
}

api_tests!(
    the_root_redirects_to_swagger_ui,
    without_swagger_ui_the_root_is_a_json_index_of_links_that_work,
    the_root_answers_405_to_other_methods,
    ready_is_503_migrations_pending_while_the_schema_is_a_step_behind_then_200,
);
