//! The deprecation lifecycle of v1 (`API_V1_DEPRECATED_AT`, `API_V1_SUNSET_AT`,
//! `API_V1_ENFORCE_SUNSET`): the RFC 9745 and RFC 8594 headers on every v1 answer once
//! deprecated, the 410 after the sunset, the counter, and the deprecated document. Each test
//! starts a second instance with the dates it needs on the first one's database; fixtures are
//! made through the first, which is not deprecated.

use orderly_api::routes::table::{Version, endpoints};
use orderly_server::settings::{Rfc3339, Settings};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, api_tests, assert_problem, json_body};

const GUIDE: &str = "https://docs.example/orderly/api-versions.md";

/// 2026-05-28T20:26:40Z, before the tests run: `Deprecation: @1780000000`.
const DEPRECATED: &str = "2026-05-28T20:26:40Z";
/// 2026-11-01, past too: with enforcement, v1 is gone.
const PAST_SUNSET: &str = "2026-11-01T00:00:00Z";
const PAST_SUNSET_HTTP: &str = "Sun, 01 Nov 2026 00:00:00 GMT";
/// 2099-11-01: v1 deprecated and still served.
const FUTURE_SUNSET: &str = "2099-11-01T00:00:00Z";
const FUTURE_SUNSET_HTTP: &str = "Sun, 01 Nov 2099 00:00:00 GMT";

fn at(text: &str) -> Option<Rfc3339> {
    Some(Rfc3339::try_from(text.to_owned()).expect("an RFC 3339 date"))
}

/// Dates v1's lifecycle in `settings`.
fn deprecate(settings: &mut Settings, deprecated: &str, sunset: Option<&str>, enforce: bool) {
    settings.api_v1.deprecated_at = at(deprecated);
    settings.api_v1.sunset_at = sunset.and_then(at);
    settings.api_v1.enforce_sunset = enforce;
    settings.api_v1.migration_guide_url = Some(GUIDE.to_owned());
    settings.check().expect("valid dates");
}

fn header_value(response: &Response, name: &str) -> Option<String> {
    let values: Vec<&str> =
        response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The `Link` entries of a response, each as written (`<target>; rel="..."; ...`).
fn links(response: &Response) -> Vec<String> {
    header_value(response, "link")
        .map(|value| {
            value.split(", <").map(|link| format!("<{}", link.trim_start_matches('<'))).collect()
        })
        .unwrap_or_default()
}

fn link_with_rel(response: &Response, rel: &str) -> Option<String> {
    links(response).into_iter().find(|link| link.contains(&format!("; rel=\"{rel}\"")))
}

const GUIDE_LINK: &str =
    "<https://docs.example/orderly/api-versions.md>; rel=\"deprecation\"; type=\"text/markdown\"";

/// Asserts the deprecation notice of a v1 answer, with the sunset `sunset` (IMF-fixdate).
fn assert_notice(response: &Response, sunset: Option<&str>) {
    let what = format!("{} {}", response.status(), response.url().path());
    assert_eq!(header_value(response, "deprecation").as_deref(), Some("@1780000000"), "{what}");
    assert_eq!(header_value(response, "sunset").as_deref(), sunset, "{what}");
    assert_eq!(link_with_rel(response, "deprecation").as_deref(), Some(GUIDE_LINK), "{what}");
}

fn assert_no_notice(response: &Response) {
    let what = format!("{} {}", response.status(), response.url().path());
    assert_eq!(header_value(response, "deprecation"), None, "{what}");
    assert_eq!(header_value(response, "sunset"), None, "{what}");
    for link in links(response) {
        assert!(!link.contains("rel=\"deprecation\""), "{what}: {link}");
        assert!(!link.contains("rel=\"successor-version\""), "{what}: {link}");
    }
}

/// Whether the route table serves `method` on the template `path` in v2.
fn v2_serves(method: &Method, path: &str) -> bool {
    endpoints().iter().any(|endpoint| {
        endpoint.version() == Some(Version::V2)
            && endpoint.path() == path
            && endpoint.method().as_str() == method.as_str()
    })
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> Response {
    app.request(method, path, token).send().await.expect("the request is sent")
}

async fn v1_carries_no_notice_unless_deprecated(app: TestApp) {
    let admin = app.admin().await;
    app.product(&admin, "DEP-NONE-1", 100, 1).await;
    app.product(&admin, "DEP-NONE-2", 100, 1).await;
    let later = app
        .another_instance(|settings| deprecate(settings, "2099-01-01T00:00:00Z", None, true))
        .await;
    for app in [&app, &later] {
        let page = app.list_products(None, "?limit=1").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(link_with_rel(&page, "next").is_some(), "a page link: {:?}", links(&page));
        assert_no_notice(&page);
        assert_no_notice(&send(app, Method::GET, "/api/v1/users/me", None).await);
        let document: Value = json_body(
            send(app, Method::GET, "/api-docs/v1/openapi.json", None).await,
            StatusCode::OK,
        )
        .await;
        let list = &document["paths"]["/api/v1/products"]["get"];
        assert!(list.is_object() && list.get("deprecated").is_none(), "{list}");
    }
}

async fn a_deprecated_v1_names_its_dates_its_guide_and_its_successor_on_every_answer(app: TestApp) {
    let admin = app.admin().await;
    app.product(&admin, "DEP-HDR-1", 100, 1).await;
    app.product(&admin, "DEP-HDR-2", 100, 1).await;
    let v1 = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(FUTURE_SUNSET), true))
        .await;

    // A list: its page link is kept, the notice's links follow it in the same field.
    let page = v1.list_products(None, "?limit=1").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_notice(&page, Some(FUTURE_SUNSET_HTTP));
    assert_eq!(page.headers().get_all(header::LINK).iter().count(), 1, "one Link field");
    let all = links(&page);
    assert!(
        all[0].starts_with("</api/v1/products?") && all[0].ends_with("; rel=\"next\""),
        "{all:?}"
    );
    let successor = link_with_rel(&page, "successor-version");
    if v2_serves(&Method::GET, "/api/v2/products") {
        assert_eq!(successor.as_deref(), Some("</api/v2/products>; rel=\"successor-version\""));
    } else {
        assert_eq!(successor, None);
    }

    // A route v2 serves, answering a problem: the successor is the same concrete path.
    assert!(v2_serves(&Method::POST, "/api/v2/auth/token"), "v2 serves the token endpoint");
    let refused = v1.login("nobody@example.com", "not the password").await;
    assert_notice(&refused, Some(FUTURE_SUNSET_HTTP));
    assert_eq!(
        link_with_rel(&refused, "successor-version").as_deref(),
        Some("</api/v2/auth/token>; rel=\"successor-version\"")
    );
    assert_problem(refused, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;

    // A concrete path with a parameter, a 401, a 404 and a 405: the notice on each; a
    // successor only where v2 has the template and the method.
    let id = "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d";
    let cases = [
        (
            Method::GET,
            format!("/api/v1/products/{id}"),
            StatusCode::NOT_FOUND,
            Some("/api/v1/products/{id}"),
        ),
        (
            Method::GET,
            "/api/v1/users/me".to_owned(),
            StatusCode::UNAUTHORIZED,
            Some("/api/v1/users/me"),
        ),
        (Method::GET, "/api/v1/nowhere".to_owned(), StatusCode::NOT_FOUND, None),
        (Method::DELETE, "/api/v1/auth/token".to_owned(), StatusCode::METHOD_NOT_ALLOWED, None),
    ];
    for (method, path, status, template) in cases {
        let response = send(&v1, method.clone(), &path, None).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_notice(&response, Some(FUTURE_SUNSET_HTTP));
        let expected = template
            .map(|template| template.replacen("/api/v1", "/api/v2", 1))
            .filter(|v2| v2_serves(&method, v2))
            .map(|_| {
                format!("<{}>; rel=\"successor-version\"", path.replacen("/api/v1", "/api/v2", 1))
            });
        assert_eq!(link_with_rel(&response, "successor-version"), expected, "{method} {path}");
    }

    // HEAD answers as GET does.
    let head = send(&v1, Method::HEAD, "/api/v1/products", None).await;
    assert_notice(&head, Some(FUTURE_SUNSET_HTTP));

    // Without a sunset date there is no `Sunset`.
    let undated =
        app.another_instance(|settings| deprecate(settings, DEPRECATED, None, true)).await;
    assert_notice(&undated.list_products(None, "").await, None);
}

async fn v2_and_the_operations_routes_never_carry_the_notice(app: TestApp) {
    let v1 = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(PAST_SUNSET), true))
        .await;
    let form = [("grant_type", "password"), ("username", "nobody@example.com"), ("password", "x")];
    let v2 = v1.client.post(v1.url("/api/v2/auth/token")).form(&form).send().await.expect("sent");
    assert_no_notice(&v2);
    assert_problem(v2, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    for path in [
        "/health",
        "/ready",
        "/api-docs/v2/openapi.json",
        "/problems/api-version-sunset",
        "/api/v10/x",
        "/api/v1x",
    ] {
        let response = send(&v1, Method::GET, path, None).await;
        assert_ne!(response.status(), StatusCode::GONE, "{path}");
        assert_no_notice(&response);
    }
}

async fn after_its_sunset_v1_is_gone_unless_the_operator_keeps_it(app: TestApp) {
    let admin = app.admin().await;
    let product = app.product(&admin, "DEP-GONE-1", 100, 1).await;
    let id = product["id"].as_str().expect("an id");
    let gone = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(PAST_SUNSET), true))
        .await;
    let path = format!("/api/v1/products/{id}");
    for (method, path) in [
        (Method::GET, path.as_str()),
        (Method::POST, "/api/v1/orders"),
        (Method::GET, "/api/v1/nowhere"),
        (Method::GET, "/api/v1"),
    ] {
        let response = send(&gone, method.clone(), path, Some(&admin.access_token)).await;
        assert_notice(&response, Some(PAST_SUNSET_HTTP));
        let problem = assert_problem(response, StatusCode::GONE, "API_VERSION_SUNSET").await;
        assert_eq!(problem["type"], "/problems/api-version-sunset");
        assert_eq!(problem["migration_guide"], GUIDE, "{method} {path}");
        assert_eq!(problem["sunset"], "2026-11-01T00:00:00Z", "{method} {path}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("/api/v2")), "{problem}");
    }
    // Nothing was done: the product is as it was, through the first instance.
    assert_eq!(json_body(app.get_product(id, None).await, StatusCode::OK).await["stock"], 1);
    // The problem type describes itself.
    let described = send(&gone, Method::GET, "/problems/api-version-sunset", None).await;
    assert_eq!(described.status(), StatusCode::OK);

    let kept = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(PAST_SUNSET), false))
        .await;
    let served = kept.get_product(id, None).await;
    assert_notice(&served, Some(PAST_SUNSET_HTTP));
    assert_eq!(json_body(served, StatusCode::OK).await["id"], id);
}

async fn deprecated_requests_are_counted_by_version_and_route(app: TestApp) {
    let v1 = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(FUTURE_SUNSET), true))
        .await;
    let before = send(&v1, Method::GET, "/metrics", None).await.text().await.expect("a body");
    // Every v1 route starts at 0, on an instance whether or not v1 is deprecated.
    let zero =
        r#"orderly_api_deprecated_requests_total{route="/api/v1/products/{id}",version="v1"} 0"#;
    assert!(before.contains(zero), "{before}");
    let plain = send(&app, Method::GET, "/metrics", None).await.text().await.expect("a body");
    assert!(plain.contains(zero), "{plain}");

    for _ in 0..3 {
        send(&v1, Method::GET, "/api/v1/products", None).await;
    }
    send(&v1, Method::GET, "/api/v1/nowhere", None).await;
    send(&v1, Method::GET, "/api/v2/auth/token", None).await;
    send(&v1, Method::GET, "/health", None).await;
    let after = send(&v1, Method::GET, "/metrics", None).await.text().await.expect("a body");
    assert!(
        after.contains(
            r#"orderly_api_deprecated_requests_total{route="/api/v1/products",version="v1"} 3"#
        ),
        "{after}"
    );
    assert!(
        after.contains(
            r#"orderly_api_deprecated_requests_total{route="<unmatched>",version="v1"} 1"#
        ),
        "{after}"
    );
    let series: Vec<&str> = after
        .lines()
        .filter(|line| line.starts_with("orderly_api_deprecated_requests_total{"))
        .collect();
    // v2 is not deprecated, nor anything outside the versions.
    assert!(
        series.iter().all(|line| line.contains("version=\"v1\"") && !line.contains("/api/v2")),
        "{series:?}"
    );
    // The sunset, for the alert on traffic close to it; 0 where none is set.
    assert!(
        after.contains(r#"orderly_api_sunset_timestamp_seconds{version="v1"} 4097174400"#),
        "{after}"
    );
    assert!(plain.contains(r#"orderly_api_sunset_timestamp_seconds{version="v1"} 0"#), "{plain}");
    // The instance that is not deprecated counts nothing.
    send(&app, Method::GET, "/api/v1/products", None).await;
    let plain = send(&app, Method::GET, "/metrics", None).await.text().await.expect("a body");
    assert!(
        plain.contains(
            r#"orderly_api_deprecated_requests_total{route="/api/v1/products",version="v1"} 0"#
        ),
        "{plain}"
    );
}

async fn the_served_v1_document_marks_its_operations_deprecated(app: TestApp) {
    let v1 = app
        .another_instance(|settings| deprecate(settings, DEPRECATED, Some(FUTURE_SUNSET), true))
        .await;
    for path in ["/api-docs/v1/openapi.json", "/api-docs/openapi.json"] {
        let document = json_body(send(&v1, Method::GET, path, None).await, StatusCode::OK).await;
        let mut count = 0;
        for (template, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("an item") {
                let versioned = template.starts_with("/api/v1/");
                assert_eq!(
                    operation["deprecated"] == true,
                    versioned,
                    "{path}: {method} {template}"
                );
                if versioned {
                    assert!(operation["responses"]["410"].is_object(), "{method} {template}");
                    count += 1;
                }
            }
        }
        assert!(count > 10, "{path}: {count} operations");
    }
    let v2 =
        json_body(send(&v1, Method::GET, "/api-docs/v2/openapi.json", None).await, StatusCode::OK)
            .await;
    for (template, item) in v2["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            assert!(operation.get("deprecated").is_none(), "v2 {method} {template}");
        }
    }
}

api_tests!(
    v1_carries_no_notice_unless_deprecated,
    a_deprecated_v1_names_its_dates_its_guide_and_its_successor_on_every_answer,
    v2_and_the_operations_routes_never_carry_the_notice,
    after_its_sunset_v1_is_gone_unless_the_operator_keeps_it,
    deprecated_requests_are_counted_by_version_and_route,
    the_served_v1_document_marks_its_operations_deprecated,
);
