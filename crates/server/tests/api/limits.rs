//! Request-head limits (ADR 0015): over `MAX_URI_LENGTH`, `MAX_HEADER_COUNT` or
//! `MAX_HEADER_BYTES` a request is a problem like any other error; a head actix-http cannot take
//! in at all (too slow, a target over 65,534 bytes, more than 96 header fields) is answered by
//! actix-http itself, with an empty body, and the connection is closed rather than left hanging.

use std::time::{Duration, Instant};

use orderly_infrastructure::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{TestApp, api_tests, assert_problem, spawn_app_with};

/// Longer than any answer may take: past it, the connection is taken to hang.
const HANG: Duration = Duration::from_secs(10);

/// A response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    /// `HTTP/1.1 408 Request Timeout`.
    status_line: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// From the first byte sent to the connection's close.
    elapsed: Duration,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Asserts an answer actix-http wrote itself: `status`, no body, and the connection closed.
    fn assert_empty(&self, status: StatusCode) {
        let expected =
            format!("HTTP/1.1 {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
        assert_eq!(self.status_line, expected, "{self:?}");
        assert_eq!(self.header("content-length"), Some("0"), "{self:?}");
        assert!(self.body.is_empty(), "{self:?}");
        assert_eq!(self.header("content-type"), None, "{self:?}");
    }
}

/// Sends `request` as is on a fresh connection, then reads until the server closes it.
async fn exchange(app: &TestApp, request: &[u8]) -> RawResponse {
    let address = app.address.trim_start_matches("http://");
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    stream.write_all(request).await.expect("the request is sent");
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes the connection instead of hanging")
        .expect("the response is read");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    RawResponse { status_line, headers, body: body.as_bytes().to_vec(), elapsed }
}

/// `GET target` with `fields` after `Host`, closing the connection after the response.
fn request(target: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// `/health?pad=aaa...`, `length` bytes long.
fn health_target(length: usize) -> String {
    let prefix = "/health?pad=";
    format!("{prefix}{}", "a".repeat(length - prefix.len()))
}

async fn a_uri_over_the_limit_is_a_uri_too_long_problem(app: TestApp) {
    assert_eq!(app.settings.server.max_uri_length, 8192);
    let path = format!("/api/v1/products?q={}", "a".repeat(9 * 1024));
    let response = app.request(Method::GET, &path, None).send().await.expect("sent");
    let problem = assert_problem(response, StatusCode::URI_TOO_LONG, "URI_TOO_LONG").await;
    assert_eq!(problem["type"], "/problems/uri-too-long");
    assert_eq!(problem["max_uri_length"], json!(8192));
}

async fn eighty_header_fields_are_a_headers_too_large_problem(app: TestApp) {
    assert_eq!(app.settings.server.max_header_count, 64);
    let mut builder = app.request(Method::GET, "/api/v1/products", None);
    for i in 0..80 {
        builder = builder.header(format!("x-filler-{i}"), "1");
    }
    let response = builder.send().await.expect("sent");
    let problem =
        assert_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "HEADERS_TOO_LARGE")
            .await;
    assert_eq!(problem["max_header_count"], json!(64));
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("header fields")), "{problem}");
}

async fn twenty_kilobytes_of_headers_are_a_headers_too_large_problem(app: TestApp) {
    assert_eq!(app.settings.server.max_header_bytes, 16_384);
    let mut builder = app.request(Method::GET, "/api/v1/products", None);
    for i in 0..20 {
        builder = builder.header(format!("x-filler-{i}"), "v".repeat(1024));
    }
    let response = builder.send().await.expect("sent");
    let problem =
        assert_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "HEADERS_TOO_LARGE")
            .await;
    assert_eq!(problem["max_header_bytes"], json!(16_384));
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("bytes")), "{problem}");
}

/// Exactly at every limit at once: a target of `MAX_URI_LENGTH` bytes, `MAX_HEADER_COUNT`
/// fields whose names and values take `MAX_HEADER_BYTES`.
async fn a_request_exactly_at_the_limits_is_served(app: TestApp) {
    let server = &app.settings.server;
    let fixed = ["host".len() + "localhost".len(), "connection".len() + "close".len()];
    let fillers = server.max_header_count - fixed.len();
    let mut left = server.max_header_bytes - fixed.iter().sum::<usize>();
    let fields: Vec<(String, String)> = (0..fillers)
        .map(|i| {
            let name = format!("x-pad-{i:03}");
            let share = left / (fillers - i);
            left -= share;
            let value = "v".repeat(share - name.len());
            (name, value)
        })
        .collect();
    let bytes: usize =
        fixed.iter().sum::<usize>() + fields.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
    assert_eq!((fields.len() + fixed.len(), bytes), (64, 16_384));

    let response = exchange(&app, &request(&health_target(server.max_uri_length), &fields)).await;
    assert_eq!(response.status_line, "HTTP/1.1 200 OK", "{response:?}");

    let one_more = [fields.as_slice(), &[("x-one-more".to_owned(), "1".to_owned())]].concat();
    let response = exchange(&app, &request(&health_target(server.max_uri_length), &one_more)).await;
    assert!(response.status_line.starts_with("HTTP/1.1 431 "), "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
}

/// actix-http refuses a request target over 65,534 bytes (the `http` crate's `Uri` limit) with an
/// empty 400 before the application runs.
async fn a_uri_over_the_http_layers_hard_limit_is_an_empty_400(app: TestApp) {
    let response = exchange(&app, &request(&health_target(100 * 1024), &[])).await;
    response.assert_empty(StatusCode::BAD_REQUEST);
}

/// actix-http parses at most 96 header fields and answers more with an empty 431.
async fn more_header_fields_than_the_http_layer_parses_are_an_empty_431(app: TestApp) {
    let fields: Vec<(String, String)> =
        (0..100).map(|i| (format!("x-filler-{i}"), "1".to_owned())).collect();
    let response = exchange(&app, &request("/health", &fields)).await;
    response.assert_empty(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

api_tests!(
    a_uri_over_the_limit_is_a_uri_too_long_problem,
    eighty_header_fields_are_a_headers_too_large_problem,
    twenty_kilobytes_of_headers_are_a_headers_too_large_problem,
    a_request_exactly_at_the_limits_is_served,
    a_uri_over_the_http_layers_hard_limit_is_an_empty_400,
    more_header_fields_than_the_http_layer_parses_are_an_empty_431,
);

/// A setting, not a database matter: one engine is enough. A client that sends half a request
/// head and stalls gets actix-http's empty 408 once `CLIENT_REQUEST_TIMEOUT` has passed, and the
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_head_gets_an_empty_408_after_the_request_timeout() {
    let app = spawn_app_with(TestDatabase::sqlite().await, |settings| {
        settings.server.client_request_timeout = 1;
    })
    .await;
    let response = exchange(&app, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Half").await;
    response.assert_empty(StatusCode::REQUEST_TIMEOUT);
    // actix-http counts the deadline from a clock it refreshes every 500 ms, so the client gets
    // between half a second and a second; the default (5 s) would be well past the bound.
    assert!(response.elapsed >= Duration::from_millis(450), "{response:?}");
    assert!(response.elapsed < Duration::from_secs(3), "{response:?}");
}
