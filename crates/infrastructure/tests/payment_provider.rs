//! The HTTP payment gateway against a fake Stripe-shaped provider (wiremock), over real HTTP:
//! what it sends, how it reads the answers, which failures it retries and with which key, how
//! long a call may take, its circuit breaker, and the metrics around it.

use std::{
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use orderly_application::ports::{PaymentError, PaymentGateway as _};
use orderly_domain::{Currency, Money, OrderId};
use orderly_infrastructure::services::{
    BreakerState, HttpGatewaySettings, HttpPaymentGateway, MeteredPaymentGateway,
};
use prometheus::Registry;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{any, header, method, path},
};

const API_KEY: &str = "sk_test_orderly";

/// Short time-outs so that a failing provider costs milliseconds, and a breaker that opens
/// after a few failed calls.
fn settings(base_url: String) -> HttpGatewaySettings {
    HttpGatewaySettings {
        base_url,
        api_key: SecretString::from(API_KEY),
        connect_timeout: Duration::from_millis(200),
        attempt_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_secs(2),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(5),
        breaker_threshold: 5,
        breaker_cool_down: Duration::from_millis(300),
    }
}

fn gateway(settings: HttpGatewaySettings) -> HttpPaymentGateway {
    HttpPaymentGateway::new(settings).expect("a valid base URL")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("a valid amount")
}

fn intent(id: &str, status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "object": "payment_intent", "id": id, "status": status }))
}

fn provider_error(status: u16, kind: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({ "error": { "type": kind, "code": code, "message": message } }))
}

fn card_declined() -> ResponseTemplate {
    provider_error(402, "card_error", "card_declined", "Your card was declined.")
}

fn authorize_key(order: OrderId, attempt: u64) -> String {
    format!("{}-authorize-{attempt}", order.as_uuid())
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("request recording is on")
}

fn idempotency_keys(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            request
                .headers
                .get("idempotency-key")
                .expect("every request carries an idempotency key")
                .to_str()
                .expect("an ASCII key")
                .to_owned()
        })
        .collect()
}

fn form(request: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&request.body).expect("a form body")
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

/// The whole cause chain of an unavailable provider, and when it says to retry.
fn unavailable<T: std::fmt::Debug>(result: Result<T, PaymentError>) -> (Option<Duration>, String) {
    match result {
        Err(PaymentError::Unavailable { retry_after, source }) => {
            (retry_after, format!("{source:#}"))
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A local port nothing listens on.
fn refused_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{address}")
}

// 1. What the adapter sends.

#[tokio::test]
async fn an_authorization_posts_a_confirmed_manual_capture_intent_with_the_attempt_key() {
    let server = MockServer::start().await;
    let order = OrderId::new();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("authorization", format!("Bearer {API_KEY}").as_str()))
        .and(header("idempotency-key", authorize_key(order, 7).as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(intent("pi_123", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;

    let reference =
        gateway(settings(server.uri())).authorize(order, 7, eur(1999)).await.expect("authorized");

    assert_eq!(reference, "pi_123");
    let requests = received(&server).await;
    let order_id = order.as_uuid().to_string();
    assert_eq!(
        form(&requests[0]),
        pairs(&[
            ("amount", "1999"),
            ("currency", "eur"),
            ("capture_method", "manual"),
            ("confirm", "true"),
            ("metadata[order_id]", &order_id),
        ])
    );
}

#[tokio::test]
async fn amounts_are_sent_in_the_currency_s_minor_units() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .mount(&server)
        .await;
    let yen = Money::new(500, Currency::parse("JPY").expect("JPY")).expect("valid");

    gateway(settings(server.uri())).authorize(OrderId::new(), 1, yen).await.expect("authorized");

    let sent = form(&received(&server).await[0]);
    assert!(sent.contains(&("amount".to_owned(), "500".to_owned())), "{sent:?}");
    assert!(sent.contains(&("currency".to_owned(), "jpy".to_owned())), "{sent:?}");
}

#[tokio::test]
async fn each_authorization_attempt_has_its_own_key_and_a_repeated_attempt_the_same() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(3)
        .mount(&server)
        .await;
    let gateway = gateway(settings(server.uri()));
    let order = OrderId::new();

    for attempt in [1, 1, 2] {
        gateway.authorize(order, attempt, eur(500)).await.expect("authorized");
    }

    assert_eq!(
        idempotency_keys(&received(&server).await),
        [authorize_key(order, 1), authorize_key(order, 1), authorize_key(order, 2)]
    );
}

#[tokio::test]
async fn capture_void_and_refund_post_to_their_paths_with_their_own_keys() {
    let server = MockServer::start().await;
    let order = OrderId::new();
    let uuid = order.as_uuid().to_string();
    let bearer = format!("Bearer {API_KEY}");
    for (route, key, answer) in [
        ("/v1/payment_intents/pi_1/capture", "capture", intent("pi_1", "succeeded")),
        ("/v1/payment_intents/pi_1/cancel", "void", intent("pi_1", "canceled")),
        (
            "/v1/refunds",
            "refund",
            ResponseTemplate::new(200)
                .set_body_json(json!({ "object": "refund", "id": "re_1", "status": "succeeded" })),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(route))
            .and(header("authorization", bearer.as_str()))
            .and(header("idempotency-key", format!("{uuid}-{key}").as_str()))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
    }
    let gateway = gateway(settings(server.uri()));

    gateway.capture(order, "pi_1", eur(1999)).await.expect("captured");
    gateway.void(order, "pi_1").await.expect("voided");
    gateway.refund(order, "pi_1", eur(500)).await.expect("refunded");

    let requests = received(&server).await;
    assert_eq!(form(&requests[0]), pairs(&[("amount_to_capture", "1999")]));
    assert_eq!(form(&requests[1]), pairs(&[]), "a cancellation has no fields");
    assert_eq!(
        form(&requests[2]),
        pairs(&[("payment_intent", "pi_1"), ("amount", "500"), ("metadata[order_id]", &uuid)])
    );
}

#[tokio::test]
async fn a_reference_stays_one_path_segment() {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(intent("pi_1", "succeeded")).mount(&server).await;

    gateway(settings(server.uri()))
        .capture(OrderId::new(), "pi_1/../../refunds?x=1", eur(100))
        .await
        .expect("captured");

    let requests = received(&server).await;
    assert_eq!(
        requests[0].url.path(),
        "/v1/payment_intents/pi_1%2F..%2F..%2Frefunds%3Fx=1/capture"
    );
    assert_eq!(requests[0].url.query(), None);
}

/// `url`'s `PathSegmentsMut::extend` silently skips a `.` or `..` segment, so such a reference
/// would post to `/v1/payment_intents/capture` instead of failing.
#[tokio::test]
async fn a_dot_segment_reference_is_refused_without_reaching_another_path() {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(intent("pi_1", "succeeded")).mount(&server).await;
    let gateway = gateway(settings(server.uri()));

    let mut results = Vec::new();
    for reference in ["..", "."] {
        results.push(gateway.capture(OrderId::new(), reference, eur(100)).await);
    }

    let paths: Vec<_> =
        received(&server).await.iter().map(|request| request.url.path().to_owned()).collect();
    assert!(
        paths.is_empty()
            && results.iter().all(|result| matches!(result, Err(PaymentError::Unexpected(_)))),
        "a dot reference must be refused before sending; got {results:?}, requests to {paths:?}"
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_keeps_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/stripe/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;

    gateway(settings(format!("{}/stripe/", server.uri())))
        .authorize(OrderId::new(), 1, eur(100))
        .await
        .expect("authorized");
}

#[test]
fn the_api_key_is_never_printed() {
    let settings = settings("http://127.0.0.1:9".to_owned());
    let printed = format!("{settings:?} {:?}", gateway(settings.clone()));
    assert!(!printed.contains(API_KEY), "{printed}");
}

#[test]
fn a_base_url_that_is_not_http_is_refused() {
    for base_url in ["not a url", "ftp://example.com", "mailto:pay@example.com"] {
        assert!(HttpPaymentGateway::new(settings(base_url.to_owned())).is_err(), "{base_url}");
    }
}

// 2. Declines.

#[tokio::test]
async fn a_card_decline_is_declined_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(card_declined())
        .expect(1)
        .mount(&server)
        .await;

    let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(1999)).await;

    assert!(
        matches!(&result, Err(PaymentError::Declined(message)) if message == "Your card was declined."),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_intent_that_needs_its_card_holder_is_declined() {
    for status in ["requires_payment_method", "requires_action", "canceled"] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(intent("pi_1", status))
            .expect(1)
            .mount(&server)
            .await;

        let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(100)).await;

        assert!(matches!(result, Err(PaymentError::Declined(_))), "{status}: {result:?}");
    }
}

#[tokio::test]
async fn a_failed_refund_is_declined() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "object": "refund", "id": "re_1", "status": "failed" })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let result = gateway(settings(server.uri())).refund(OrderId::new(), "pi_1", eur(100)).await;

    assert!(matches!(result, Err(PaymentError::Declined(_))), "{result:?}");
}

// 3. Retries, always with the same key.

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_key_up_to_max_attempts() {
    for status in [500, 502, 503] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents/pi_1/capture"))
            .respond_with(provider_error(status, "api_error", "", "Something went wrong"))
            .expect(3)
            .mount(&server)
            .await;
        let order = OrderId::new();

        let result = gateway(settings(server.uri())).capture(order, "pi_1", eur(100)).await;

        let (retry_after, cause) = unavailable(result);
        assert_eq!(retry_after, None, "{status}");
        assert!(cause.contains("after 3 attempt(s)"), "{status}: {cause}");
        let capture_key = format!("{}-capture", order.as_uuid());
        assert_eq!(
            idempotency_keys(&received(&server).await),
            [capture_key.clone(), capture_key.clone(), capture_key]
        );
    }
}

#[tokio::test]
async fn a_server_error_then_success_succeeds_with_the_same_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;
    let order = OrderId::new();

    let reference =
        gateway(settings(server.uri())).authorize(order, 3, eur(100)).await.expect("authorized");

    assert_eq!(reference, "pi_1");
    let requests = received(&server).await;
    assert_eq!(idempotency_keys(&requests), [authorize_key(order, 3), authorize_key(order, 3)]);
    assert_eq!(form(&requests[0]), form(&requests[1]), "a retry sends the same fields");
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_then_unavailable() {
    let started = Instant::now();

    let result = gateway(settings(refused_address())).void(OrderId::new(), "pi_1").await;

    let (retry_after, cause) = unavailable(result);
    assert_eq!(retry_after, None);
    assert!(cause.contains("after 3 attempt(s)"), "{cause}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_answer_slower_than_the_attempt_time_out_is_retried_with_the_same_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "id": "re_1", "status": "succeeded" }))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(3)
        .mount(&server)
        .await;
    let order = OrderId::new();
    let mut settings = settings(server.uri());
    settings.attempt_timeout = Duration::from_millis(150);

    let result = gateway(settings).refund(order, "pi_1", eur(100)).await;

    let (_, cause) = unavailable(result);
    assert!(cause.contains("after 3 attempt(s)"), "{cause}");
    let refund_key = format!("{}-refund", order.as_uuid());
    assert_eq!(
        idempotency_keys(&received(&server).await),
        [refund_key.clone(), refund_key.clone(), refund_key]
    );
}

#[tokio::test]
async fn a_slow_first_answer_then_a_fast_one_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture").set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;
    let order = OrderId::new();
    let mut settings = settings(server.uri());
    settings.attempt_timeout = Duration::from_millis(150);

    let reference = gateway(settings).authorize(order, 1, eur(100)).await.expect("authorized");

    assert_eq!(reference, "pi_1");
    assert_eq!(
        idempotency_keys(&received(&server).await),
        [authorize_key(order, 1), authorize_key(order, 1)]
    );
}

/// Stripe answers 409 `idempotency_key_in_use` to a request whose key is still being processed:
/// exactly what a retry after an attempt time-out can meet. The first request's outcome is
/// unknown, so the answer is "try again", not a bug; Stripe's own libraries retry every 409.
#[tokio::test]
async fn a_conflict_with_the_same_key_still_in_flight_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(provider_error(
            409,
            "idempotency_error",
            "idempotency_key_in_use",
            "There is currently another in-progress request using this Idempotent Key. Please try again later.",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;
    let order = OrderId::new();

    let result = gateway(settings(server.uri())).authorize(order, 1, eur(100)).await;

    assert_eq!(result.expect("authorized once the first request has finished"), "pi_1");
    assert_eq!(
        idempotency_keys(&received(&server).await),
        [authorize_key(order, 1), authorize_key(order, 1)]
    );
}

// 4. Rate limiting.

#[tokio::test]
async fn a_retry_after_that_fits_before_the_deadline_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            provider_error(429, "invalid_request_error", "rate_limit", "Too many requests")
                .insert_header("Retry-After", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;
    let mut settings = settings(server.uri());
    settings.call_timeout = Duration::from_secs(3);
    let order = OrderId::new();
    let started = Instant::now();

    let reference = gateway(settings).authorize(order, 1, eur(100)).await.expect("authorized");

    let elapsed = started.elapsed();
    assert_eq!(reference, "pi_1");
    assert!(
        elapsed >= Duration::from_secs(1),
        "waited the asked second, not the backoff: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(
        idempotency_keys(&received(&server).await),
        [authorize_key(order, 1), authorize_key(order, 1)]
    );
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_ends_the_call_and_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "60"))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();

    let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(100)).await;

    let (retry_after, _) = unavailable(result);
    assert_eq!(retry_after, Some(Duration::from_secs(60)));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting in vain: {:?}",
        started.elapsed()
    );
}

// 5. The call's deadline.

#[tokio::test]
async fn a_call_never_outlasts_its_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(intent("pi_1", "requires_capture").set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let mut settings = settings(server.uri());
    settings.attempt_timeout = Duration::from_secs(5);
    settings.call_timeout = Duration::from_millis(400);
    settings.max_attempts = 10;
    let started = Instant::now();

    let result = gateway(settings).authorize(OrderId::new(), 1, eur(100)).await;

    let elapsed = started.elapsed();
    let (_, cause) = unavailable(result);
    assert!(cause.contains("no answer within 400 ms"), "{cause}");
    assert!(elapsed < Duration::from_millis(400) + Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn retries_stop_at_the_deadline_however_many_attempts_are_left() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let mut settings = settings(server.uri());
    settings.call_timeout = Duration::from_millis(500);
    settings.max_attempts = 1_000;
    settings.retry_base_delay = Duration::from_millis(50);
    let started = Instant::now();

    let result = gateway(settings).capture(OrderId::new(), "pi_1", eur(100)).await;

    let elapsed = started.elapsed();
    unavailable(result);
    assert!(elapsed < Duration::from_millis(500) + Duration::from_secs(1), "{elapsed:?}");
    assert!(received(&server).await.len() < 20, "backoff between attempts");
}

// 6. The circuit breaker.

fn breaker_settings(base_url: String) -> HttpGatewaySettings {
    HttpGatewaySettings {
        max_attempts: 2,
        breaker_threshold: 2,
        breaker_cool_down: Duration::from_millis(300),
        ..settings(base_url)
    }
}

async fn after_the_cool_down() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn consecutive_failed_calls_open_the_breaker_which_refuses_without_calling() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let gateway = gateway(breaker_settings(server.uri()));
    let order = OrderId::new();

    for _ in 0..2 {
        assert_eq!(gateway.breaker().state(), BreakerState::Closed);
        unavailable(gateway.capture(order, "pi_1", eur(100)).await);
    }
    assert_eq!(gateway.breaker().state(), BreakerState::Open);
    assert_eq!(received(&server).await.len(), 4, "two calls of two attempts");

    let (retry_after, cause) = unavailable(gateway.capture(order, "pi_1", eur(100)).await);

    let retry_after = retry_after.expect("an open breaker says when to retry");
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(300),
        "{retry_after:?}"
    );
    assert!(cause.contains("circuit breaker is open"), "{cause}");
    assert_eq!(received(&server).await.len(), 4, "the refused call was not sent");
}

#[tokio::test]
async fn a_successful_probe_after_the_cool_down_closes_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let gateway = gateway(breaker_settings(server.uri()));
    for _ in 0..2 {
        unavailable(gateway.authorize(OrderId::new(), 1, eur(100)).await);
    }
    assert_eq!(gateway.breaker().state(), BreakerState::Open);

    after_the_cool_down().await;
    assert_eq!(gateway.breaker().state(), BreakerState::HalfOpen);
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(2)
        .mount(&server)
        .await;

    gateway.authorize(OrderId::new(), 1, eur(100)).await.expect("the probe went through");
    assert_eq!(gateway.breaker().state(), BreakerState::Closed);
    gateway.authorize(OrderId::new(), 1, eur(100)).await.expect("closed: calls go through");
    assert_eq!(received(&server).await.len(), 2);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let gateway = gateway(breaker_settings(server.uri()));
    for _ in 0..2 {
        unavailable(gateway.void(OrderId::new(), "pi_1").await);
    }
    after_the_cool_down().await;
    assert_eq!(gateway.breaker().state(), BreakerState::HalfOpen);

    unavailable(gateway.void(OrderId::new(), "pi_1").await);

    assert_eq!(gateway.breaker().state(), BreakerState::Open);
    assert_eq!(received(&server).await.len(), 6, "the probe reached the provider");
    let (retry_after, _) = unavailable(gateway.void(OrderId::new(), "pi_1").await);
    let retry_after = retry_after.expect("when to retry");
    assert!(retry_after > Duration::from_millis(150), "a whole new cool-down: {retry_after:?}");
    assert_eq!(received(&server).await.len(), 6, "refused again without calling");
}

#[tokio::test]
async fn only_one_probe_at_a_time_reaches_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(4)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(intent("pi_1", "canceled").set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    let gateway = gateway(breaker_settings(server.uri()));
    for _ in 0..2 {
        unavailable(gateway.void(OrderId::new(), "pi_1").await);
    }
    after_the_cool_down().await;

    let (probe, other) =
        tokio::join!(gateway.void(OrderId::new(), "pi_1"), gateway.void(OrderId::new(), "pi_2"));

    probe.expect("the probe went through");
    let (retry_after, _) = unavailable(other);
    assert!(retry_after.is_some(), "refused while the probe runs");
    assert_eq!(received(&server).await.len(), 5, "four failures and one probe");
    assert_eq!(gateway.breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn declines_and_refusals_do_not_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(card_declined())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/capture"))
        .respond_with(provider_error(400, "invalid_request_error", "parameter_invalid", "Bad."))
        .mount(&server)
        .await;
    let mut settings = breaker_settings(server.uri());
    settings.breaker_threshold = 1;
    let gateway = gateway(settings);

    for _ in 0..3 {
        let declined = gateway.authorize(OrderId::new(), 1, eur(100)).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))), "{declined:?}");
        let refused = gateway.capture(OrderId::new(), "pi_1", eur(100)).await;
        assert!(matches!(refused, Err(PaymentError::Unexpected(_))), "{refused:?}");
    }

    assert_eq!(gateway.breaker().state(), BreakerState::Closed);
    assert_eq!(received(&server).await.len(), 6, "every call reached the provider");
}

// 7. Other refusals and malformed answers.

#[tokio::test]
async fn an_invalid_request_or_a_bad_key_is_unexpected_and_not_retried() {
    for answer in [
        provider_error(
            400,
            "invalid_request_error",
            "parameter_missing",
            "Missing required param: amount.",
        ),
        provider_error(401, "invalid_request_error", "", "Invalid API Key provided: sk_test_****"),
        ResponseTemplate::new(403),
        ResponseTemplate::new(404).set_body_string("<html>not found</html>"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(answer).expect(1).mount(&server).await;

        let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(100)).await;

        assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{result:?}");
    }
}

#[tokio::test]
async fn a_refund_already_made_is_a_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(provider_error(
            400,
            "invalid_request_error",
            "charge_already_refunded",
            "Charge ch_1 has already been refunded.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    gateway(settings(server.uri()))
        .refund(OrderId::new(), "pi_1", eur(100))
        .await
        .expect("the refund exists");
}

#[tokio::test]
async fn only_a_refund_reads_already_refunded_as_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(provider_error(
            400,
            "invalid_request_error",
            "charge_already_refunded",
            "Charge ch_1 has already been refunded.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let result = gateway(settings(server.uri())).capture(OrderId::new(), "pi_1", eur(100)).await;

    assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{result:?}");
}

#[tokio::test]
async fn a_malformed_or_unexpected_answer_is_unexpected_and_not_retried() {
    for answer in [
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_json(json!({ "id": "pi_1" })),
        ResponseTemplate::new(200).set_body_json(Value::Array(vec![])),
        intent("pi_1", "processing"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(answer).expect(1).mount(&server).await;

        let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(100)).await;

        assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{result:?}");
    }
}

#[tokio::test]
async fn a_capture_answered_with_another_status_is_unexpected() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(1)
        .mount(&server)
        .await;

    let result = gateway(settings(server.uri())).capture(OrderId::new(), "pi_1", eur(100)).await;

    assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{result:?}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("Location", format!("{}/v1/elsewhere", server.uri()).as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .and(path("/v1/elsewhere"))
        .respond_with(intent("pi_1", "requires_capture"))
        .expect(0)
        .mount(&server)
        .await;

    let result = gateway(settings(server.uri())).authorize(OrderId::new(), 1, eur(100)).await;

    assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{result:?}");
}

// 8. Metrics.

fn calls(registry: &Registry, operation: &str, outcome: &str) -> f64 {
    let families = registry.gather();
    let family = families
        .iter()
        .find(|family| family.name() == "orderly_payment_gateway_calls_total")
        .expect("the calls are registered");
    let has = |metric: &prometheus::proto::Metric, name: &str, value: &str| {
        metric.get_label().iter().any(|label| label.name() == name && label.value() == value)
    };
    family
        .get_metric()
        .iter()
        .find(|metric| has(metric, "operation", operation) && has(metric, "outcome", outcome))
        .map(|metric| metric.get_counter().get_value())
        .expect("every operation and outcome is listed")
}

fn breaker_gauge(registry: &Registry) -> f64 {
    let families = registry.gather();
    let family = families
        .iter()
        .find(|family| family.name() == "orderly_payment_breaker_state")
        .expect("the breaker state is registered");
    family.get_metric()[0].get_gauge().get_value()
}

#[tokio::test]
async fn metered_calls_are_counted_by_outcome_and_the_open_breaker_reads_two() {
    let server = MockServer::start().await;
    let order = OrderId::new();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("idempotency-key", authorize_key(order, 2).as_str()))
        .respond_with(card_declined())
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(intent("pi_1", "requires_capture"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/capture"))
        .respond_with(provider_error(
            400,
            "invalid_request_error",
            "amount_too_large",
            "Too large.",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/cancel"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let mut settings = settings(server.uri());
    settings.max_attempts = 1;
    settings.breaker_threshold = 1;
    settings.breaker_cool_down = Duration::from_secs(60);
    let http = gateway(settings);
    let breaker = http.breaker();
    let registry = Registry::new();
    let metered =
        MeteredPaymentGateway::new(Arc::new(http), Some(breaker), &registry).expect("registered");

    let reference = metered.authorize(order, 1, eur(100)).await.expect("authorized");
    let declined = metered.authorize(order, 2, eur(100)).await;
    let refused = metered.capture(order, &reference, eur(100)).await;
    assert_eq!(breaker_gauge(&registry), 0.0, "closed");
    let down = metered.void(order, &reference).await;
    let not_sent = metered.void(order, &reference).await;

    assert!(matches!(declined, Err(PaymentError::Declined(_))), "{declined:?}");
    assert!(matches!(refused, Err(PaymentError::Unexpected(_))), "{refused:?}");
    unavailable(down);
    unavailable(not_sent);
    assert_eq!(breaker_gauge(&registry), 2.0, "open");
    assert_eq!(calls(&registry, "authorize", "approved"), 1.0);
    assert_eq!(calls(&registry, "authorize", "declined"), 1.0);
    assert_eq!(calls(&registry, "capture", "error"), 1.0);
    assert_eq!(calls(&registry, "void", "unavailable"), 2.0, "the refused call counts too");
    assert_eq!(calls(&registry, "refund", "approved"), 0.0);
}

// Unknown outcomes: a void that finds the payment already captured or already released.

/// Stripe's answer to cancelling an intent that is no longer a hold, with the intent's state.
fn unexpected_state(intent_status: Option<&str>) -> ResponseTemplate {
    let mut error = json!({
        "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
        "message": "This PaymentIntent's status is not one that can be canceled."
    });
    if let Some(status) = intent_status {
        error["payment_intent"] = json!({"id": "pi_1", "status": status});
    }
    ResponseTemplate::new(400).set_body_json(json!({ "error": error }))
}

#[tokio::test]
async fn a_void_refused_because_the_payment_was_captured_is_already_captured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/cancel"))
        .respond_with(unexpected_state(Some("succeeded")))
        .expect(1)
        .mount(&server)
        .await;
    let gateway = gateway(settings(server.uri()));

    let voided = gateway.void(OrderId::new(), "pi_1").await;

    assert!(matches!(voided, Err(PaymentError::AlreadyCaptured)), "{voided:?}");
    assert!(gateway.breaker().state() == BreakerState::Closed, "a refusal is no outage");
}

#[tokio::test]
async fn a_refused_void_that_does_not_say_why_asks_the_provider_for_the_payment() {
    for (state, captured) in [("succeeded", true), ("canceled", false)] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents/pi_1/cancel"))
            .respond_with(unexpected_state(None))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents/pi_1"))
            .and(header("authorization", format!("Bearer {API_KEY}").as_str()))
            .respond_with(intent("pi_1", state))
            .expect(1)
            .mount(&server)
            .await;

        let voided = gateway(settings(server.uri())).void(OrderId::new(), "pi_1").await;

        if captured {
            assert!(matches!(voided, Err(PaymentError::AlreadyCaptured)), "{state}: {voided:?}");
        } else {
            assert!(voided.is_ok(), "a hold released already is released: {voided:?}");
        }
    }
}

#[tokio::test]
async fn a_void_of_a_payment_already_released_is_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/cancel"))
        .respond_with(unexpected_state(Some("canceled")))
        .mount(&server)
        .await;

    let voided = gateway(settings(server.uri())).void(OrderId::new(), "pi_1").await;

    assert!(voided.is_ok(), "{voided:?}");
}

#[tokio::test]
async fn a_refused_void_of_a_payment_in_another_state_is_unexpected() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/cancel"))
        .respond_with(unexpected_state(Some("processing")))
        .mount(&server)
        .await;

    let voided = gateway(settings(server.uri())).void(OrderId::new(), "pi_1").await;

    let Err(PaymentError::Unexpected(error)) = voided else { panic!("{voided:?}") };
    assert!(format!("{error:#}").contains("processing"), "{error:#}");
}

/// A provider that reads each request whole, then drops the connection without answering: the
/// work may be done, the answer is lost. Returns its address and the `Idempotency-Key` of every
/// request it read.
async fn dropping_provider() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = format!("http://{}", listener.local_addr().expect("its address"));
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&keys);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                // Read until the head and a form body have arrived (bounded by the test's own
                // time-outs: the client gives up first).
                while let Ok(read) = socket.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())
                                    .flatten()
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            let key = head.lines().find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("idempotency-key")
                                    .then(|| value.trim().to_owned())
                            });
                            seen.lock().expect("not poisoned").push(key.unwrap_or_default());
                            break;
                        }
                    }
                }
                drop(socket);
            });
        }
    });
    (address, keys)
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_is_unavailable_and_retried_with_the_same_key() {
    let (address, keys) = dropping_provider().await;
    let gateway = gateway(settings(address));
    let order = OrderId::new();

    let authorized = gateway.authorize(order, 7, eur(2500)).await;

    let (_, cause) = unavailable(authorized);
    assert!(cause.contains("after 3 attempt(s)"), "{cause}");
    let keys = keys.lock().expect("not poisoned").clone();
    assert_eq!(keys, vec![authorize_key(order, 7); 3], "the same request, three times");
}
