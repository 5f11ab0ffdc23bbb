//! Bounded stalls (ADR 0028): a request body that stops part-way is a `408 REQUEST_TIMEOUT`
//! problem once `CLIENT_REQUEST_TIMEOUT` has passed, and the connection is closed; a kept-alive
//! connection whose next head begins and stalls is closed once `KEEP_ALIVE` plus
//! `CLIENT_REQUEST_TIMEOUT` have passed; other connections are served meanwhile. HTTP matters
//! here, not the database: SQLite only.

use std::time::{Duration, Instant};

use orderly_infrastructure::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

use crate::helpers::{TestApp, spawn_app_with};

/// Longer than any bound under test: past it, the connection is taken to hang.
const HANG: Duration = Duration::from_secs(10);

/// The app with one-second deadlines.
async fn spawn() -> TestApp {
    spawn_app_with(TestDatabase::sqlite().await, |settings| {
        settings.server.client_request_timeout = 1;
        settings.server.keep_alive = 1;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("a connection")
}

/// Reads until the server closes the connection (or resets it), within [`HANG`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 4096];
    timeout(HANG, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => raw.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await
    .expect("the server closes the connection instead of hanging");
    raw
}

/// Reads one complete response with a `Content-Length`, within [`HANG`].
async fn read_response(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 4096];
    timeout(HANG, async {
        loop {
            let read = stream.read(&mut chunk).await.expect("the response is read");
            assert!(read > 0, "closed before a whole response: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&raw);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .expect("a content-length");
                if raw.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await
    .expect("a whole response");
    String::from_utf8(raw).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_half_way_is_a_408_problem_and_the_connection_is_closed() {
    let app = spawn().await;
    let mut stream = connect(&app).await;
    let half = br#"{"email":"stall@example.com","#;
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        half.len() * 2
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("the head is sent");
    stream.write_all(half).await.expect("half the body is sent");

    // Another client is served while this one stalls.
    let health = app.health().await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());

    let raw = read_until_closed(&mut stream).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/problem+json"), "{text}");
    assert!(lower.contains("connection: close"), "{text}");
    let body = &text[text.find("\r\n\r\n").expect("a head") + 4..];
    let problem: Value = serde_json::from_str(body).expect("a problem body");
    assert_eq!(problem["code"], "REQUEST_TIMEOUT", "{problem}");
    assert_eq!(problem["status"], 408, "{problem}");
    assert_eq!(problem["timeout_seconds"], 1.0, "{problem}");
    assert!(problem["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{problem}");
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_head_that_stalls_half_way_is_closed_within_keep_alive_and_request_timeout() {
    let app = spawn().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("the first request is sent");
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");

    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Half")
        .await
        .expect("half of the second head is sent");

    // Another client is served while this one stalls.
    let health = app.health().await;
    assert_eq!(health.status(), StatusCode::OK);

    let rest = read_until_closed(&mut stream).await;
    let elapsed = started.elapsed();
    // Shut down without an answer: actix-http never saw a complete head.
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // KEEP_ALIVE + CLIENT_REQUEST_TIMEOUT = 2 s after the first response, at most.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_that_keeps_sending_requests_is_not_cut() {
    let app = spawn().await;
    let mut stream = connect(&app).await;
    // Ten requests over three seconds, each within the bounds (actix-http's own keep-alive, 1 s
    // here, counts on a clock of 500 ms steps): longer than the 2 s idle bound in all, so only
    // the time between requests is counted.
    for _ in 0..10 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("a request is sent");
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
