//! Rate limits through real HTTP: each policy's headers, the 429 problem, client addresses
//! behind proxies, limits shared by two instances through Redis, an unreachable Redis, and the
//! bound on password hashing. Rate limiting does not touch the database: these run on SQLite.

use std::{num::NonZeroU32, time::Duration};

use orderly_server::settings::{AppEnv, Quota, Settings};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::{Engine, TestApp, assert_problem, json_body, spawn_app_with, test_redis_url};

fn quota(requests: u32, seconds: u64) -> Quota {
    Quota {
        requests: NonZeroU32::new(requests).expect("a positive quota"),
        window: Duration::from_secs(seconds),
    }
}

async fn app(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = orderly_infrastructure::testing::TestDatabase::sqlite().await;
    let _ = Engine::Sqlite;
    spawn_app_with(db, configure).await
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// A key prefix of its own, so that tests sharing the machine's Redis never meet.
fn redis_prefix() -> String {
    format!("orderly-test-{}", orderly_domain::Uuid::now_v7().simple())
}

async fn products_as(app: &TestApp, forwarded_for: Option<&str>) -> Response {
    let mut request = app.request(Method::GET, "/api/v1/products", None);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_carry_the_policy_headers_and_the_excess_is_a_429_problem() {
    let app = app(|settings| settings.rate_limit.anonymous = quota(3, 60)).await;

    for remaining in [2, 1, 0] {
        let response = products_as(&app, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit-policy").as_deref(),
            Some(r#""anonymous";q=3;w=60"#)
        );
        let state = header(&response, "ratelimit").expect("a RateLimit header");
        assert!(state.starts_with(&format!(r#""anonymous";r={remaining};t="#)), "{state}");
    }

    let refused = products_as(&app, None).await;
    let retry_after: u64 = header(&refused, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!((1..=20).contains(&retry_after), "one request comes back every 20 s: {retry_after}");
    assert_eq!(header(&refused, "ratelimit-policy").as_deref(), Some(r#""anonymous";q=3;w=60"#));
    assert!(header(&refused, "ratelimit").is_some_and(|v| v.contains("r=0")));
    let body = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    assert_eq!(body["policy"], json!("anonymous"));

    // A browser on an allowed origin can read the refusal: CORS and the security headers are on it.
    let cross_origin = app
        .request(Method::GET, "/api/v1/products", None)
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(cross_origin.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&cross_origin, "access-control-allow-origin").as_deref(),
        Some("https://shop.example")
    );
    assert_eq!(header(&cross_origin, "x-content-type-options").as_deref(), Some("nosniff"));
    assert!(
        header(&cross_origin, "access-control-expose-headers")
            .is_some_and(|exposed| exposed.to_lowercase().contains("ratelimit")),
        "the RateLimit headers are readable cross-origin"
    );

    // Health probes are never limited, and carry no policy.
    for _ in 0..5 {
        let health = app.health().await;
        assert_eq!(health.status(), StatusCode::OK);
        assert!(header(&health, "ratelimit-policy").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_are_limited_per_user_not_per_address() {
    let app = app(|settings| settings.rate_limit.authenticated = quota(2, 60)).await;
    let ada = app.customer("Ada").await;
    let bob = app.customer("Bob").await;

    for _ in 0..2 {
        let response = app.me(&ada.access_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit-policy").as_deref(),
            Some(r#""authenticated";q=2;w=60"#)
        );
    }
    assert_problem(app.me(&ada.access_token).await, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
        .await;
    // Same address, another user: a budget of its own.
    assert_eq!(app.me(&bob.access_token).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_limited_per_account_whatever_the_address() {
    let app = app(|settings| {
        settings.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
        settings.rate_limit.auth_per_account = quota(3, 60);
    })
    .await;
    let ada = app.customer("Ada").await;

    // Stuffing one account from many addresses.
    let attempt = |address: &'static str, email: String| {
        let form = [
            ("grant_type", "password".to_owned()),
            ("username", email),
            ("password", "wrong password!".to_owned()),
        ];
        app.client
            .post(app.url("/api/v1/auth/token"))
            .header("x-forwarded-for", address)
            .form(&form)
            .send()
    };
    // Ada's registration and first login counted already: one attempt is left.
    let second = attempt("198.51.100.1", ada.email.clone()).await.expect("sent");
    assert_problem(second, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    let third = attempt("198.51.100.2", ada.email.to_uppercase()).await.expect("sent");
    assert!(
        header(&third, "ratelimit-policy")
            .is_some_and(|v| v.contains(r#""auth-account";q=3;w=60"#)),
        "{:?}",
        header(&third, "ratelimit-policy")
    );
    assert_problem(third, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    // Another account is not affected.
    let other = attempt("198.51.100.3", "someone.else@example.com".to_owned()).await.expect("sent");
    assert_problem(other, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_password_guesses_are_limited_per_account() {
    let app = app(|settings| settings.rate_limit.auth_per_account = quota(3, 60)).await;
    let ada = app.customer("Ada").await;
    let guess =
        |current: &str| json!({"password": "a brand new passphrase", "current_password": current});

    for _ in 0..3 {
        let wrong =
            app.patch_user(&ada.access_token, &ada.id, &guess("not my password"), None).await;
        assert!(
            header(&wrong, "ratelimit-policy")
                .is_some_and(|v| v.contains(r#""auth-account";q=3;w=60"#)),
            "{:?}",
            header(&wrong, "ratelimit-policy")
        );
        assert_problem(wrong, StatusCode::FORBIDDEN, "REAUTHENTICATION_REQUIRED").await;
    }
    // The fourth guess is refused before any password is checked, even the right one.
    let right = app.patch_user(&ada.access_token, &ada.id, &guess(&ada.password), None).await;
    assert_problem(right, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    // Changes without a current password do not count.
    let renamed = app.patch_user(&ada.access_token, &ada.id, &json!({"name": "Ada K"}), None).await;
    json_body(renamed, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_registrations_are_limited_per_address() {
    let app = app(|settings| settings.rate_limit.auth_per_ip = quota(3, 60)).await;
    for n in 0..3 {
        let email = format!("spray-{n}@example.com");
        let response = app.login(&email, "Summer2026!").await;
        assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
    }
    // Spraying from one address: the 4th account is refused before any password is checked,
    // and so is a registration from the same address.
    assert_problem(
        app.login("spray-3@example.com", "Summer2026!").await,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
    )
    .await;
    let register = app
        .register(
            &json!({"email": "new@example.com", "password": "a long password", "name": "New"}),
        )
        .await;
    assert_problem(register, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_orders_has_a_tighter_limit_per_user() {
    let app = app(|settings| settings.rate_limit.orders = quota(1, 60)).await;
    let admin = app.admin().await;
    let ada = app.customer("Ada").await;
    let product = app.product(&admin, "RL-1", 500, 10).await;
    let id = product["id"].as_str().expect("an id");

    app.order(&ada, id, 1).await;
    let body = json!({"items": [{"product_id": id, "quantity": 1}]});
    let refused = app.place_order(&ada.access_token, &body).await;
    let policies = header(&refused, "ratelimit-policy").expect("policies");
    assert!(policies.contains(r#""authenticated";"#), "{policies}");
    assert!(policies.contains(r#""orders";q=1;w=60"#), "{policies}");
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    // Reading is still allowed: only placing is limited this tightly.
    assert_eq!(app.list_orders(&ada.access_token, "").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let behind_proxy = app(|settings| {
        settings.server.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
        settings.rate_limit.anonymous = quota(1, 60);
    })
    .await;
    assert_eq!(products_as(&behind_proxy, Some("198.51.100.1")).await.status(), StatusCode::OK);
    assert_eq!(
        products_as(&behind_proxy, Some("198.51.100.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        products_as(&behind_proxy, Some("198.51.100.2")).await.status(),
        StatusCode::OK,
        "another client behind the proxy has a budget of its own"
    );

    let exposed = app(|settings| settings.rate_limit.anonymous = quota(1, 60)).await;
    assert_eq!(products_as(&exposed, Some("198.51.100.1")).await.status(), StatusCode::OK);
    assert_eq!(
        products_as(&exposed, Some("198.51.100.2")).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "an untrusted peer cannot choose its own address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_hold_one_limit() {
    let prefix = redis_prefix();
    let first = app(|settings| {
        settings.redis.redis_url = Some(test_redis_url());
        settings.redis.redis_key_prefix.clone_from(&prefix);
        settings.rate_limit.anonymous = quota(3, 60);
    })
    .await;
    let second = first.another_instance(|_| {}).await;
    assert_ne!(first.address, second.address);

    let mut allowed = 0;
    for app in [&first, &second, &first, &second, &first, &second] {
        match products_as(app, None).await.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(allowed, 3, "one limit across both instances");

    let ready = json_body(first.ready().await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["redis"], json!("ok"), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_falls_back_to_limits_per_instance_without_errors() {
    let app = app(|settings| {
        settings.redis.redis_url = Some("redis://127.0.0.1:1".to_owned());
        settings.redis.redis_key_prefix = redis_prefix();
        settings.rate_limit.anonymous = quota(2, 60);
    })
    .await;
    let started = std::time::Instant::now();
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(products_as(&app, None).await.status());
        }
        statuses
    };
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    assert!(started.elapsed() < Duration::from_secs(5), "no request waits on the dead Redis");

    let ready = json_body(app.ready().await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["redis"], json!("unavailable"), "{ready}");
    assert_eq!(ready["checks"]["database"], json!("ok"), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_hashing_bound_get_503_server_busy_never_a_hang() {
    // Development settings hash with the production parameters (19 MiB, tens of ms each), so
    // concurrent logins really overlap; one slot and one waiting place.
    let app = app(|settings| {
        settings.app_env = AppEnv::Development;
        settings.auth.password_hash_concurrency = 1;
        settings.auth.password_hash_queue = 1;
    })
    .await;
    let logins = (0..16).map(|n| {
        let app = &app;
        async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                app.login(&format!("flood-{n}@example.com"), "wrong password!"),
            )
            .await
            .expect("every login is answered")
        }
    });
    let responses = futures::future::join_all(logins).await;
    let mut busy = 0;
    let mut refused = 0;
    for response in responses {
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
                assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "SERVER_BUSY").await;
                busy += 1;
            }
            StatusCode::BAD_REQUEST => {
                assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy >= 1, "beyond one slot and one waiting place, logins are turned away");
    assert!(refused >= 2, "the slot and the queue are served ({refused})");
    // Once the flood is over, logging in works again.
    let response = app.login("after@example.com", "wrong password!").await;
    assert_problem(response, StatusCode::BAD_REQUEST, "INVALID_GRANT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_products_need_credentials_first() {
    let app = app(|_| {}).await;
    let response = app.list_products(None, "?include_archived=true").await;
    assert_eq!(header(&response, "www-authenticate").as_deref(), Some(r#"Bearer realm="orderly""#));
    assert_problem(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}
