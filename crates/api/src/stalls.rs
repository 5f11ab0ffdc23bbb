//! Bounded stalls (ADR 0028): a client that stops sending part-way through a request cannot hold
//! a connection, or the memory of a half-read body, for longer than a deadline.
//!
//! actix-http times only the first request head of a connection (`CLIENT_REQUEST_TIMEOUT`) and
//! the idle wait before the next one (`KEEP_ALIVE`); a request body, or a later head that has
//! begun, may stall for ever (ADR 0015). Two pieces close those gaps:
//!
//! - The middleware [`bound`] gives every request body a deadline, `body_timeout` from the moment
//!   its head was read. A body not complete by then fails the extractor reading it; the answer is
//!   `408 REQUEST_TIMEOUT`, a problem, and the connection is closed. What a stalled body holds
//!   meanwhile is bounded by the body limit the extractors already enforce.
//! - A per-connection watchdog, installed by [`on_connect`] (`HttpServer::on_connect`), shuts
//!   the socket down when the connection has had no request in progress for `idle_timeout`
//!   (`KEEP_ALIVE` plus `CLIENT_REQUEST_TIMEOUT`): a kept-alive connection whose next head began
//!   and stalled, or whose unread body stalled after its response, is closed within that bound.
//!   The time a handler takes is not counted: a request in progress is never cut.

use std::{
    any::Any,
    cell::Cell,
    future::poll_fn,
    io,
    pin::{Pin, pin},
    rc::Rc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use actix_web::{
    Error, HttpMessage as _,
    body::{BoxBody, MessageBody},
    dev::{Extensions, Payload, ServiceRequest, ServiceResponse},
    error::PayloadError,
    http::ConnectionType,
    middleware::Next,
    rt::time::{Instant, Sleep, sleep_until},
    web::Bytes,
};
use futures_util::Stream;

use crate::problem::{ApiError, ErrorCode};

/// The deadlines of [`bound`] and of the connection watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallLimits {
    /// The time a request body has to arrive in full, from the moment its head was read.
    pub body_timeout: Duration,
    /// The longest a connection may go without a request in progress before it is shut down.
    pub idle_timeout: Duration,
}

impl StallLimits {
    /// The limits of a server with these `HttpServer` settings: bodies get
    /// `client_request_timeout`, and a connection may wait `keep_alive` for the next head to begin
    /// and `client_request_timeout` more for it to complete.
    #[must_use]
    pub fn new(client_request_timeout: Duration, keep_alive: Duration) -> Self {
        Self {
            body_timeout: client_request_timeout,
            idle_timeout: keep_alive + client_request_timeout,
        }
    }
}

impl Default for StallLimits {
    /// actix-web's defaults: 5 s for a request, 5 s of keep-alive.
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(5))
    }
}

/// What the middleware and the watchdog of one connection share.
struct State {
    /// Requests in progress (more than one only while a response is still on its way out).
    busy: Cell<u32>,
    /// When the last request ended, or the connection began.
    idle_since: Cell<Instant>,
    /// The connection has ended: the watchdog stops and releases its socket.
    closed: Cell<bool>,
    /// The watchdog's waker, to stop it at once when the connection ends.
    waker: Cell<Option<Waker>>,
}

/// The connection data [`on_connect`] installs: its limits and the state it shares with its
/// watchdog, which stops when this is dropped with the connection.
struct Watch {
    limits: StallLimits,
    state: Rc<State>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.state.closed.set(true);
        if let Some(waker) = self.state.waker.take() {
            waker.wake();
        }
    }
}

/// A request in progress on a watched connection; its end restarts the idle clock.
struct Busy(Rc<State>);

impl Busy {
    fn new(state: &Rc<State>) -> Self {
        state.busy.set(state.busy.get() + 1);
        Self(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get().saturating_sub(1));
        self.0.idle_since.set(Instant::now());
    }
}

/// The `HttpServer::on_connect` callback: gives each connection its `limits` and, on a plain TCP
/// connection, a watchdog (see the module docs).
pub fn on_connect(
    limits: StallLimits,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, extensions| {
        let state = Rc::new(State {
            busy: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            closed: Cell::new(false),
            waker: Cell::new(None),
        });
        watch(connection, &state, limits.idle_timeout);
        extensions.insert(Watch { limits, state });
    }
}

/// Starts the watchdog of `connection` on this worker. It holds a duplicate of the socket's
/// descriptor (shutting the socket down through it ends the connection for actix-http too),
/// released as soon as the connection ends.
#[cfg(unix)]
fn watch(connection: &dyn Any, state: &Rc<State>, idle_timeout: Duration) {
    use std::os::fd::AsFd as _;
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match stream.as_fd().try_clone_to_owned() {
        Ok(descriptor) => {
            let socket = std::net::TcpStream::from(descriptor);
            actix_web::rt::spawn(watchdog(state.clone(), socket, idle_timeout));
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch a connection for stalls: no descriptor left");
        }
    }
}

#[cfg(not(unix))]
fn watch(_: &dyn Any, _: &Rc<State>, _: Duration) {}

/// Shuts `socket` down once the connection has gone `idle_timeout` without a request in
/// progress; returns when the connection ends.
async fn watchdog(state: Rc<State>, socket: std::net::TcpStream, idle_timeout: Duration) {
    loop {
        let wake_at = if state.busy.get() > 0 {
            Instant::now() + idle_timeout
        } else {
            state.idle_since.get() + idle_timeout
        };
        let mut sleep = pin!(sleep_until(wake_at));
        let closed = poll_fn(|cx| {
            if state.closed.get() {
                return Poll::Ready(true);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            state.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        if closed {
            return;
        }
        if state.busy.get() == 0 && Instant::now() >= state.idle_since.get() + idle_timeout {
            tracing::debug!("closing a connection that stalled between requests");
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A request body that fails once its deadline has passed.
struct Deadlined {
    inner: Payload,
    deadline: Instant,
    /// Armed at the first wait for data.
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Rc<Cell<bool>>,
    done: bool,
}

impl Stream for Deadlined {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(next) = Pin::new(&mut this.inner).poll_next(cx) {
            this.done = next.is_none();
            return Poll::Ready(next);
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.done = true;
        this.timed_out.set(true);
        Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }
}

/// The middleware (see the module docs). The limits are the connection's (see [`on_connect`]);
/// without them (a server built without the callback, a test service), a [`StallLimits`] in the
/// app data, or the defaults.
///
/// # Errors
/// Whatever the inner service fails with.
pub async fn bound(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let watch = request.conn_data::<Watch>();
    let limits = watch
        .map(|watch| watch.limits)
        .unwrap_or_else(|| request.app_data::<StallLimits>().copied().unwrap_or_default());
    let _busy = watch.map(|watch| Busy::new(&watch.state));
    let timed_out = Rc::new(Cell::new(false));
    let payload = request.take_payload();
    if matches!(payload, Payload::None) {
        request.set_payload(payload);
    } else {
        let body = Deadlined {
            inner: payload,
            deadline: Instant::now() + limits.body_timeout,
            sleep: None,
            timed_out: timed_out.clone(),
            done: false,
        };
        request.set_payload(Payload::Stream { payload: Box::pin(body) });
    }
    let result = next.call(request).await;
    if !timed_out.get() {
        return result.map(ServiceResponse::map_into_boxed_body);
    }
    let seconds = limits.body_timeout.as_secs_f64();
    let problem = ApiError::new(
        ErrorCode::RequestTimeout,
        format!("The request body did not arrive within {seconds} s of its head."),
    )
    .with_extension("timeout_seconds", seconds.into());
    // The handler failed on the body (whatever it made of the error): the answer is ours, and the
    // rest of the body is not waited for.
    let (http_request, _) = result?.into_parts();
    let mut response = ServiceResponse::from_err(problem, http_request);
    response.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    Ok(response.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, http::StatusCode, middleware::from_fn, test, web};
    use futures_util::{StreamExt as _, stream};

    use super::*;

    async fn echo(body: web::Bytes) -> HttpResponse {
        HttpResponse::Ok().body(body)
    }

    #[actix_web::test]
    async fn a_complete_body_passes_through() {
        let app =
            test::init_service(App::new().wrap(from_fn(bound)).route("/", web::post().to(echo)))
                .await;
        let response = test::call_service(
            &app,
            test::TestRequest::post().uri("/").set_payload("hello").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(test::read_body(response).await, "hello");
    }

    #[actix_web::test]
    async fn a_body_that_stops_is_a_request_timeout_and_closes_the_connection() {
        let limits = StallLimits::new(Duration::from_millis(200), Duration::ZERO);
        let app = test::init_service(
            App::new().app_data(limits).wrap(from_fn(bound)).route("/", web::post().to(echo)),
        )
        .await;
        let first = stream::iter([Ok::<_, PayloadError>(Bytes::from_static(b"{\"half\":"))]);
        let stalled: actix_web::dev::Payload =
            Payload::Stream { payload: Box::pin(first.chain(stream::pending())) };
        let (request, _) = test::TestRequest::post().uri("/").to_request().replace_payload(stalled);
        let started = Instant::now();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let elapsed = started.elapsed();
        assert!(elapsed >= limits.body_timeout, "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(response.response().head().connection_type(), ConnectionType::Close);
    }
}
