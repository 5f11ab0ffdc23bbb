//! The outbound side of webhooks against real receivers on this machine: signatures checked by
//! the reference Standard Webhooks verifier, answers, redirects, time-outs, endless bodies, and
//! the guard against requests to private addresses (at registration and when connecting).

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use orderly_application::webhooks::ports::{
    SecretGenerator as _, SendOutcome, UrlGuard as _, UrlRefused, WebhookMessage,
    WebhookSender as _,
};
use orderly_domain::{Uuid, WebhookSecret, WebhookUrl, time::Timestamp};
use orderly_infrastructure::services::{
    HttpWebhookSender, NetworkGuard, RandomSecrets, WebhookSettings,
};
use standardwebhooks::Webhook;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

const BODY: &str =
    r#"{"specversion":"1.0","type":"orderly.order.paid.v1","data":{"total":"12.50"}}"#;

fn settings(allow_private_networks: bool, timeout: Duration) -> WebhookSettings {
    WebhookSettings { allow_private_networks, timeout }
}

fn sender(allow_private_networks: bool) -> HttpWebhookSender {
    HttpWebhookSender::new(&settings(allow_private_networks, Duration::from_secs(10)))
        .expect("a client")
}

fn guard(allow_private_networks: bool) -> NetworkGuard {
    NetworkGuard::new(&settings(allow_private_networks, Duration::from_secs(10)))
}

fn secret() -> WebhookSecret {
    RandomSecrets::new().expect("randomness").generate()
}

fn url(url: &str) -> WebhookUrl {
    WebhookUrl::parse(url).expect("a webhook URL")
}

/// A message signed now (the reference verifier refuses timestamps five minutes off).
fn message(to: &str, secrets: Vec<WebhookSecret>) -> WebhookMessage {
    WebhookMessage {
        url: url(to),
        id: Uuid::now_v7(),
        timestamp: Timestamp::from(std::time::SystemTime::now()),
        body: BODY.to_owned(),
        secrets,
    }
}

async fn receiver(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer).mount(&server).await;
    server
}

async fn the_one_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1, "one request");
    requests.remove(0)
}

async fn nothing_reached(server: &MockServer) {
    let requests = server.received_requests().await.expect("recording");
    assert!(requests.is_empty(), "{} request(s) reached the receiver", requests.len());
}

fn verifies(secret: &WebhookSecret, body: &[u8], request: &Request) -> bool {
    Webhook::new(secret.expose()).expect("a secret").verify(body, &request.headers).is_ok()
}

#[tokio::test]
async fn a_delivery_carries_the_standard_webhooks_headers_and_a_verifiable_signature() {
    let server = receiver(ResponseTemplate::new(204)).await;
    let secret = secret();
    let message = message(&format!("{}/hooks/orderly", server.uri()), vec![secret.clone()]);

    let outcome = sender(true).send(&message).await;

    assert_eq!(outcome, SendOutcome::Answered { status: 204, retry_after: None });
    let request = the_one_request(&server).await;
    assert_eq!(request.url.path(), "/hooks/orderly");
    let header = |name: &str| {
        request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("webhook-id"), message.id.hyphenated().to_string());
    assert_eq!(header("webhook-timestamp"), message.timestamp.timestamp().to_string());
    assert!(header("webhook-signature").starts_with("v1,"), "{}", header("webhook-signature"));
    assert!(header("user-agent").starts_with("orderly-webhooks/"), "{}", header("user-agent"));
    assert_eq!(request.body, BODY.as_bytes());
    assert!(verifies(&secret, &request.body, &request), "the reference verifier accepts it");
}

#[tokio::test]
async fn a_tampered_body_or_another_secret_fails_verification() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let secret = secret();
    sender(true).send(&message(&server.uri(), vec![secret.clone()])).await;
    let request = the_one_request(&server).await;

    assert!(verifies(&secret, &request.body, &request));
    let tampered = BODY.replace("12.50", "0.01");
    assert!(!verifies(&secret, tampered.as_bytes(), &request), "a tampered body");
    assert!(!verifies(&self::secret(), &request.body, &request), "another secret");
}

#[tokio::test]
async fn during_a_rotation_either_secret_alone_verifies() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let (new, old) = (secret(), secret());
    sender(true).send(&message(&server.uri(), vec![new.clone(), old.clone()])).await;
    let request = the_one_request(&server).await;

    let signatures = request.headers["webhook-signature"].to_str().expect("ASCII");
    assert_eq!(signatures.split(' ').filter(|s| s.starts_with("v1,")).count(), 2, "{signatures}");
    assert!(verifies(&new, &request.body, &request), "the new secret");
    assert!(verifies(&old, &request.body, &request), "the previous secret");
    assert!(!verifies(&secret(), &request.body, &request), "a third secret");
}

#[tokio::test]
async fn answers_come_back_with_their_status_and_retry_after() {
    let server = MockServer::start().await;
    for status in [200_u16, 202, 400, 410, 500, 503] {
        Mock::given(path(format!("/{status}")))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
    }
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .mount(&server)
        .await;
    let sender = sender(true);
    let secrets = vec![secret()];

    for status in [200_u16, 202, 400, 410, 500, 503] {
        let message = message(&format!("{}/{status}", server.uri()), secrets.clone());
        let outcome = sender.send(&message).await;
        assert_eq!(outcome, SendOutcome::Answered { status, retry_after: None });
    }
    let outcome = sender.send(&message(&format!("{}/busy", server.uri()), secrets)).await;
    assert_eq!(
        outcome,
        SendOutcome::Answered { status: 429, retry_after: Some(Duration::from_secs(120)) }
    );
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let target = receiver(ResponseTemplate::new(200)).await;
    let redirecting = receiver(
        ResponseTemplate::new(302).insert_header("location", format!("{}/elsewhere", target.uri())),
    )
    .await;

    let outcome = sender(true).send(&message(&redirecting.uri(), vec![secret()])).await;

    assert_eq!(outcome, SendOutcome::Answered { status: 302, retry_after: None });
    the_one_request(&redirecting).await;
    nothing_reached(&target).await;
}

#[tokio::test]
async fn a_receiver_slower_than_the_time_out_fails_quickly() {
    let server = receiver(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let sender =
        HttpWebhookSender::new(&settings(true, Duration::from_millis(500))).expect("a client");

    let started = Instant::now();
    let outcome = sender.send(&message(&server.uri(), vec![secret()])).await;

    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    match outcome {
        SendOutcome::Failed(why) => assert!(why.contains("500 ms"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A receiver that answers 200 with a body announced as 50 GB and writes it until the client
/// hangs up; the thread ends (with the bytes written) only when it does.
fn endless_receiver() -> (String, std::thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = listener.local_addr().expect("an address");
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let mut request = [0_u8; 8192];
        let _ = stream.read(&mut request);
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 50000000000\r\n\r\n";
        let mut written = 0_u64;
        if stream.write_all(head.as_bytes()).is_err() {
            return written;
        }
        let chunk = vec![b'x'; 64 * 1024];
        while stream.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        written
    });
    (format!("http://{address}/"), thread)
}

#[tokio::test]
async fn a_huge_answer_is_not_read_to_its_end() {
    let (uri, receiver) = endless_receiver();
    // Reading the whole body would hit this time-out and fail instead.
    let sender =
        HttpWebhookSender::new(&settings(true, Duration::from_secs(10))).expect("a client");

    let started = Instant::now();
    let outcome = sender.send(&message(&uri, vec![secret()])).await;

    assert_eq!(outcome, SendOutcome::Answered { status: 200, retry_after: None });
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // The connection was closed, not kept open with the body unread: the receiver's writes fail.
    let written = tokio::task::spawn_blocking(move || receiver.join().expect("the receiver"));
    let written = tokio::time::timeout(Duration::from_secs(5), written)
        .await
        .expect("the sender hung up")
        .expect("joined");
    assert!(written < 64 * 1024 * 1024, "{written} bytes were written before it hung up");
}

#[tokio::test]
async fn the_guard_refuses_loopback_private_and_metadata_hosts() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let port = server.address().port();
    let guard = guard(false);

    for refused in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://[::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://0x7f.1/".to_owned(),
    ] {
        match guard.check(&url(&refused)).await {
            Err(UrlRefused::NotPublic(why)) => assert!(why.contains("private"), "{refused}: {why}"),
            other => panic!("{refused}: expected NotPublic, got {other:?}"),
        }
    }
    assert_eq!(guard.check(&url("http://93.184.215.14/hook")).await, Ok(()));
    nothing_reached(&server).await;
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_unresolvable_even_where_private_networks_are_allowed() {
    for allowed in [false, true] {
        let outcome = guard(allowed).check(&url("http://nonexistent.invalid/")).await;
        assert!(matches!(outcome, Err(UrlRefused::Unresolvable(_))), "{outcome:?}");
    }
}

#[tokio::test]
async fn allowing_private_networks_lets_loopback_through_the_guard() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let port = server.address().port();
    let guard = guard(true);

    assert_eq!(guard.check(&url(&server.uri())).await, Ok(()));
    assert_eq!(guard.check(&url(&format!("http://localhost:{port}/"))).await, Ok(()));
}

#[tokio::test]
async fn the_sender_refuses_private_addresses_literal_or_resolved_and_sends_nothing() {
    let server = receiver(ResponseTemplate::new(200)).await;
    let port = server.address().port();
    let sender = sender(false);

    // An IP literal, which the client would not resolve: `send` checks it itself.
    let outcome = sender.send(&message(&server.uri(), vec![secret()])).await;
    assert_eq!(outcome, SendOutcome::Refused("127.0.0.1 is a private address".to_owned()));
    // A name, refused by the sender's resolver when it connects.
    let named = format!("http://localhost:{port}/");
    match sender.send(&message(&named, vec![secret()])).await {
        SendOutcome::Refused(why) => {
            assert!(why.starts_with("localhost resolves to "), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    nothing_reached(&server).await;
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_failure_without_the_secret() {
    let port =
        TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("a port").port();
    let secret = secret();

    let outcome = sender(true)
        .send(&message(&format!("http://127.0.0.1:{port}/"), vec![secret.clone()]))
        .await;

    match outcome {
        SendOutcome::Failed(why) => {
            assert!(!why.is_empty());
            assert!(!why.contains(secret.expose()), "{why}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn secrets_are_whsec_and_32_random_bytes() {
    let generator = RandomSecrets::new().expect("randomness");
    let (one, two) = (generator.generate(), generator.generate());

    for secret in [&one, &two] {
        let encoded = secret.expose().strip_prefix("whsec_").expect("the whsec_ prefix");
        assert_eq!(STANDARD.decode(encoded).expect("base64").len(), 32);
    }
    assert_ne!(one.expose(), two.expose());
}
