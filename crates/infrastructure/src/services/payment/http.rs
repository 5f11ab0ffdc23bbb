//! The adapter of a Stripe-shaped card provider over HTTPS (ADR 0022): payment intents with
//! manual capture, their capture and cancellation, and refunds.
//!
//! Each call is bounded twice: every attempt by a connect time-out and a total time-out, and
//! the whole call, retries included, by a deadline. Network errors, time-outs, 5xx and 429 are
//! retried with jittered exponential backoff (a 429's `Retry-After` is honoured when it fits
//! before the deadline), always with the same `Idempotency-Key`, so a retry of a call that did
//! reach the provider is answered with the first result instead of moving money again. Calls go
//! through a circuit breaker that refuses them at once after repeated failures.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable as _};
use orderly_application::ports::{PaymentError, PaymentGateway};
use orderly_domain::{Money, OrderId};
use reqwest::{StatusCode, Url, header::HeaderMap};
use rustls_platform_verifier::BuilderVerifierExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use super::{BreakerMonitor, Operation, authorize_key, breaker::Breaker, idempotency_key};

/// How the adapter reaches the provider, and how long and how often it tries.
#[derive(Debug, Clone)]
pub struct HttpGatewaySettings {
    /// The provider's base URL (`https://api.stripe.com`); paths such as `/v1/refunds` are
    /// appended to it.
    pub base_url: String,
    /// The provider's secret API key, sent as a bearer token.
    pub api_key: SecretString,
    /// The longest wait for a connection to the provider.
    pub connect_timeout: Duration,
    /// The longest one attempt may take, from sending the request to the end of the answer.
    pub attempt_timeout: Duration,
    /// The longest one call may take, every attempt and backoff included.
    pub call_timeout: Duration,
    /// Attempts per call, the first included (1: no retry).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles at each retry, plus up to as much again
    /// of random jitter.
    pub retry_base_delay: Duration,
    /// Consecutive failed calls (provider unreachable after the retries) that open the breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub breaker_cool_down: Duration,
}

/// A Stripe-shaped REST provider: `POST /v1/payment_intents` (manual capture, confirmed at
/// once), `POST /v1/payment_intents/{id}/capture`, `POST /v1/payment_intents/{id}/cancel` and
/// `POST /v1/refunds`, with a bearer API key and an `Idempotency-Key` on every request.
pub struct HttpPaymentGateway {
    client: reqwest::Client,
    base: Url,
    api_key: SecretString,
    backoff: ExponentialBuilder,
    call_timeout: Duration,
    breaker: Breaker,
}

impl fmt::Debug for HttpPaymentGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPaymentGateway")
            .field("base", &self.base.as_str())
            .field("breaker", &self.breaker.monitor().state())
            .finish_non_exhaustive()
    }
}

impl HttpPaymentGateway {
    /// An adapter for the provider at `settings.base_url`.
    ///
    /// # Errors
    /// When the base URL is not an `http(s)://` URL, or the HTTP client cannot be built (no
    /// certificate store).
    pub fn new(settings: HttpGatewaySettings) -> anyhow::Result<Self> {
        let base = Url::parse(&settings.base_url)
            .with_context(|| format!("`{}` is not a URL", settings.base_url))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            anyhow::bail!("`{base}` is not an http:// or https:// URL");
        }
        // rustls on ring, the provider the database driver already builds, with the system's
        // certificate store, as reqwest's own default does with another provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_platform_verifier()
            .context("the system's certificate store")?
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.attempt_timeout)
            // A redirect is never a provider's answer to a payment call: report it.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orderly/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("the payment provider's HTTP client")?;
        let retries = usize::try_from(settings.max_attempts.max(1) - 1).unwrap_or(0);
        let backoff = ExponentialBuilder::new()
            .with_min_delay(settings.retry_base_delay)
            .with_max_delay(settings.call_timeout)
            .with_max_times(retries)
            .with_total_delay(Some(settings.call_timeout))
            .with_jitter();
        Ok(Self {
            client,
            base,
            api_key: settings.api_key,
            backoff,
            call_timeout: settings.call_timeout,
            breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cool_down),
        })
    }

    /// The circuit breaker's state, for the metrics.
    #[must_use]
    pub fn breaker(&self) -> BreakerMonitor {
        self.breaker.monitor()
    }

    /// `{base}/{segments...}`, each segment percent-encoded, so a reference cannot change the
    /// path; an empty, `.` or `..` segment (which URL resolution would drop or climb) is refused.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, PaymentError> {
        if let Some(bad) = segments.iter().find(|segment| matches!(**segment, "" | "." | "..")) {
            return Err(PaymentError::Unexpected(anyhow::anyhow!(
                "`{bad}` is not a payment reference the provider can be asked about"
            )));
        }
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    /// POSTs `form` to `url` for `operation` on `order`: through the breaker, retried within
    /// the call's deadline, with the operation's idempotency key on every attempt.
    async fn post(
        &self,
        operation: Operation,
        key: String,
        url: Url,
        form: &[(&str, String)],
    ) -> Result<Answer, PaymentError> {
        self.send(operation, reqwest::Method::POST, key, url, form).await
    }

    /// Asks the provider what became of the payment `reference` (`GET`), with the same bounds,
    /// retries and breaker as every call.
    async fn retrieve(
        &self,
        operation: Operation,
        reference: &str,
    ) -> Result<Answer, PaymentError> {
        let url = self.endpoint(&["v1", "payment_intents", reference])?;
        self.send(operation, reqwest::Method::GET, String::new(), url, &[]).await
    }

    async fn send(
        &self,
        operation: Operation,
        method: reqwest::Method,
        key: String,
        url: Url,
        form: &[(&str, String)],
    ) -> Result<Answer, PaymentError> {
        let attempts = AtomicU32::new(0);
        self.breaker
            .call(async {
                let deadline = Instant::now() + self.call_timeout;
                let attempt = || {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    self.attempt(method.clone(), url.clone(), &key, form)
                };
                let retried = attempt
                    .retry(self.backoff)
                    .when(|error| matches!(error, PaymentError::Unavailable { .. }))
                    .adjust(|error, backoff| next_wait(error, backoff, deadline))
                    .notify(|error, wait| {
                        tracing::warn!(
                            operation = operation.as_str(),
                            attempt = attempts.load(Ordering::Relaxed),
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            error = %error,
                            "the payment provider call failed; retrying with the same idempotency key"
                        );
                    });
                let result = match tokio::time::timeout_at(deadline, retried).await {
                    Ok(result) => result,
                    Err(_) => Err(PaymentError::unavailable(anyhow::anyhow!(
                        "no answer within {} ms",
                        self.call_timeout.as_millis()
                    ))),
                };
                result.map_err(|error| match error {
                    PaymentError::Unavailable { retry_after, source } => {
                        let tried = attempts.load(Ordering::Relaxed);
                        PaymentError::Unavailable {
                            retry_after,
                            source: source.context(format!(
                                "the payment provider failed to {} after {tried} attempt(s)",
                                operation.as_str()
                            )),
                        }
                    }
                    other => other,
                })
            })
            .await
    }

    /// One request and its answer, classified.
    async fn attempt(
        &self,
        method: reqwest::Method,
        url: Url,
        key: &str,
        form: &[(&str, String)],
    ) -> Result<Answer, PaymentError> {
        let mut request =
            self.client.request(method.clone(), url).bearer_auth(self.api_key.expose_secret());
        if method == reqwest::Method::POST {
            request = request.header("Idempotency-Key", key).form(form);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(transport)?;
        classify(status, retry_after, &body)
    }
}

/// The wait before the next attempt: the backoff, or the provider's `Retry-After` when it asks
/// for longer; none (give up now) when the attempts are spent or the wait would end past the
/// call's deadline.
fn next_wait(
    error: &PaymentError,
    backoff: Option<Duration>,
    deadline: Instant,
) -> Option<Duration> {
    let backoff = backoff?;
    let wait = match error {
        PaymentError::Unavailable { retry_after: Some(asked), .. } => backoff.max(*asked),
        _ => backoff,
    };
    (Instant::now() + wait < deadline).then_some(wait)
}

/// A request that did not get a whole answer: unreachable, timed out, or cut off. A request
/// that could not be built is a bug.
fn transport(error: reqwest::Error) -> PaymentError {
    if error.is_builder() {
        PaymentError::Unexpected(anyhow::Error::new(error).context("building the request"))
    } else {
        PaymentError::unavailable(anyhow::Error::new(error))
    }
}

/// `Retry-After` in seconds (the form providers send with 429 and 503).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A provider object in a successful answer: a payment intent or a refund.
#[derive(Debug, Deserialize)]
struct Answer {
    id: String,
    status: String,
}

/// A provider's error body: `{"error": {"type": "card_error", "message": "..."}}`.
#[derive(Debug, Default, Deserialize)]
struct IntentState {
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ProviderError,
}

#[derive(Debug, Default, Deserialize)]
struct ProviderError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    /// The payment the refused request was about, as it stands (Stripe sends it with
    /// `payment_intent_unexpected_state`).
    payment_intent: Option<IntentState>,
}

impl ProviderError {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice::<ErrorBody>(body).map(|body| body.error).unwrap_or_default()
    }

    fn describe(&self) -> String {
        [self.kind.as_deref(), self.code.as_deref(), self.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ")
    }
}

/// An answer as the port's outcome: 2xx is an object; 402 and card errors are declines;
/// 429, 5xx and 409 (the same idempotency key still in flight at the provider, after an attempt
/// that timed out) are the provider being unavailable (retried); anything else is unexpected.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Answer, PaymentError> {
    if status.is_success() {
        return serde_json::from_slice::<Answer>(body).map_err(|error| {
            PaymentError::Unexpected(
                anyhow::Error::new(error)
                    .context(format!("the payment provider's {status} answer is not an object")),
            )
        });
    }
    let error = ProviderError::parse(body);
    if status == StatusCode::PAYMENT_REQUIRED || error.kind.as_deref() == Some("card_error") {
        return Err(PaymentError::Declined(
            error.message.unwrap_or_else(|| "the card was declined".to_owned()),
        ));
    }
    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT)
        || status.is_server_error()
    {
        return Err(PaymentError::Unavailable {
            retry_after,
            source: anyhow::anyhow!("the payment provider answered {status} {}", error.describe()),
        });
    }
    Err(PaymentError::Unexpected(match error.code.as_deref() {
        Some(code) => {
            let intent_status = error.payment_intent.as_ref().and_then(|i| i.status.clone());
            ProviderRefusal {
                status,
                code: code.to_owned(),
                detail: error.describe(),
                intent_status,
            }
            .into()
        }
        None => anyhow::anyhow!(
            "the payment provider refused the request: {status} {}",
            error.describe()
        ),
    }))
}

/// A 4xx with a provider error code, kept as a type so an operation can recognise its own
/// "already done" answer.
#[derive(Debug, thiserror::Error)]
#[error("the payment provider refused the request: {status} {detail}")]
struct ProviderRefusal {
    status: StatusCode,
    code: String,
    detail: String,
    /// The state of the payment the request was about, when the provider said it.
    intent_status: Option<String>,
}

/// An answer whose object is in a state the operation did not ask for.
fn unexpected_status(operation: Operation, answer: &Answer) -> PaymentError {
    PaymentError::Unexpected(anyhow::anyhow!(
        "the payment provider answered {} of `{}` with status `{}`",
        operation.as_str(),
        answer.id,
        answer.status
    ))
}

/// Amount fields in minor units, as the provider takes them.
fn minor(amount: Money) -> String {
    amount.amount_minor().to_string()
}

#[async_trait]
impl PaymentGateway for HttpPaymentGateway {
    async fn authorize(
        &self,
        order: OrderId,
        attempt: u64,
        amount: Money,
    ) -> Result<String, PaymentError> {
        let form = [
            ("amount", minor(amount)),
            ("currency", amount.currency().code().to_ascii_lowercase()),
            ("capture_method", "manual".to_owned()),
            ("confirm", "true".to_owned()),
            ("metadata[order_id]", order.as_uuid().to_string()),
        ];
        let url = self.endpoint(&["v1", "payment_intents"])?;
        let intent =
            self.post(Operation::Authorize, authorize_key(order, attempt), url, &form).await?;
        match intent.status.as_str() {
            "requires_capture" => Ok(intent.id),
            // Confirmed, but the card needs its holder (3-D Secure) or was refused: nothing is
            // held, and this server-side flow cannot go further.
            "requires_payment_method"
            | "requires_action"
            | "requires_confirmation"
            | "canceled" => Err(PaymentError::Declined(format!(
                "the payment provider did not authorize the payment (status `{}`)",
                intent.status
            ))),
            _ => Err(unexpected_status(Operation::Authorize, &intent)),
        }
    }

    async fn capture(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError> {
        let form = [("amount_to_capture", minor(amount))];
        let url = self.endpoint(&["v1", "payment_intents", reference, "capture"])?;
        let intent = self
            .post(Operation::Capture, idempotency_key(order, Operation::Capture), url, &form)
            .await?;
        match intent.status.as_str() {
            "succeeded" => Ok(()),
            _ => Err(unexpected_status(Operation::Capture, &intent)),
        }
    }

    async fn void(&self, order: OrderId, reference: &str) -> Result<(), PaymentError> {
        let url = self.endpoint(&["v1", "payment_intents", reference, "cancel"])?;
        let refusal = match self
            .post(Operation::Void, idempotency_key(order, Operation::Void), url, &[])
            .await
        {
            Ok(intent) if intent.status == "canceled" => return Ok(()),
            Ok(intent) => return Err(unexpected_status(Operation::Void, &intent)),
            Err(PaymentError::Unexpected(error))
                if error
                    .downcast_ref::<ProviderRefusal>()
                    .is_some_and(|refusal| refusal.code == "payment_intent_unexpected_state") =>
            {
                error
            }
            Err(error) => return Err(error),
        };
        // The payment is no longer a hold: released already (a void whose answer was lost), or
        // captured (a capture whose answer was lost). The refusal says which, or the provider
        // is asked.
        let said = refusal.downcast_ref::<ProviderRefusal>().and_then(|r| r.intent_status.clone());
        let status = match said {
            Some(status) => status,
            None => self.retrieve(Operation::Void, reference).await?.status,
        };
        match status.as_str() {
            "canceled" => Ok(()),
            "succeeded" => Err(PaymentError::AlreadyCaptured),
            _ => Err(PaymentError::Unexpected(
                refusal.context(format!("the payment is `{status}`, neither held nor released")),
            )),
        }
    }

    async fn refund(
        &self,
        order: OrderId,
        reference: &str,
        amount: Money,
    ) -> Result<(), PaymentError> {
        let form = [
            ("payment_intent", reference.to_owned()),
            ("amount", minor(amount)),
            ("metadata[order_id]", order.as_uuid().to_string()),
        ];
        let url = self.endpoint(&["v1", "refunds"])?;
        let refund = match self
            .post(Operation::Refund, idempotency_key(order, Operation::Refund), url, &form)
            .await
        {
            Ok(refund) => refund,
            // A retry after the provider forgot the idempotency key (24 hours on Stripe) finds
            // the money already given back: the refund this call asks for exists.
            Err(PaymentError::Unexpected(error))
                if error
                    .downcast_ref::<ProviderRefusal>()
                    .is_some_and(|refusal| refusal.code == "charge_already_refunded") =>
            {
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        match refund.status.as_str() {
            // `pending` and `requires_action`: accepted, the money is on its way back.
            "succeeded" | "pending" | "requires_action" => Ok(()),
            "failed" | "canceled" => Err(PaymentError::Declined(format!(
                "the payment provider refused the refund (status `{}`)",
                refund.status
            ))),
            _ => Err(unexpected_status(Operation::Refund, &refund)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_and_error_type() {
        let ok = classify(StatusCode::OK, None, br#"{"id":"pi_1","status":"requires_capture"}"#);
        assert_eq!(ok.expect("an object").id, "pi_1");
        let card = br#"{"error":{"type":"card_error","message":"Your card was declined."}}"#;
        let declined = classify(StatusCode::PAYMENT_REQUIRED, None, card);
        assert!(
            matches!(declined, Err(PaymentError::Declined(m)) if m == "Your card was declined.")
        );
        let declined = classify(StatusCode::BAD_REQUEST, None, card);
        assert!(matches!(declined, Err(PaymentError::Declined(_))), "a card error is a decline");
        let limited = classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(2)), b"");
        assert!(matches!(
            limited,
            Err(PaymentError::Unavailable { retry_after: Some(after), .. }) if after == Duration::from_secs(2)
        ));
        let down = classify(StatusCode::BAD_GATEWAY, None, b"<html>");
        assert!(matches!(down, Err(PaymentError::Unavailable { retry_after: None, .. })));
        let in_flight = classify(StatusCode::CONFLICT, None, b"");
        assert!(matches!(in_flight, Err(PaymentError::Unavailable { .. })), "{in_flight:?}");
        for (status, body) in [
            (StatusCode::UNAUTHORIZED, &br#"{"error":{"type":"invalid_request_error"}}"#[..]),
            (StatusCode::OK, b"not json"),
            (StatusCode::MOVED_PERMANENTLY, b""),
        ] {
            let result = classify(status, None, body);
            assert!(matches!(result, Err(PaymentError::Unexpected(_))), "{status}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_the_time_left_ends_the_call() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let limited = |after| PaymentError::Unavailable {
            retry_after: Some(Duration::from_secs(after)),
            source: anyhow::anyhow!("429"),
        };
        let backoff = Some(Duration::from_millis(100));
        assert_eq!(next_wait(&limited(2), backoff, deadline), Some(Duration::from_secs(2)));
        assert_eq!(next_wait(&limited(60), backoff, deadline), None);
        assert_eq!(next_wait(&limited(0), None, deadline), None, "attempts spent");
        let down = PaymentError::unavailable(anyhow::anyhow!("502"));
        assert_eq!(next_wait(&down, backoff, deadline), backoff);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().expect("a header value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("a header value"),
        );
        assert_eq!(retry_after(&headers), None, "dates are not read");
    }
}
