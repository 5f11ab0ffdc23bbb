//! Rate limits (SPEC section 7, ADR 0012): which policy applies to which request, the
//! `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers, structured
//! fields), and the 429 problem.
//!
//! - Every request but the health probes counts against one base policy: `authenticated`,
//!   per user, when it carries a valid access token; `anonymous`, per client address,
//!   otherwise. The middleware [`limit`] applies it before anything else runs.
//! - Some handlers add a policy of their own on top, through [`enforce`]: the token endpoint
//!   and registration (`auth-ip` per address and `auth-account` per e-mail address), a user
//!   change that sends `current_password` (`auth-account` per user), placing an order
//!   (`orders` per user).
//!
//! Every decision taken for a request is kept in its extensions, and the middleware writes the
//! headers for all of them on the response, whatever produced it.

use std::{net::IpAddr, sync::Arc, time::Duration};

use actix_web::{
    Error, HttpMessage as _, HttpRequest,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use orderly_application::ports::{RateLimitDecision, RateLimitPolicy, RateLimiter};
use orderly_domain::UserId;
use sha2::{Digest as _, Sha256};

use crate::{
    client_ip::TrustedProxies,
    problem::{ApiError, ErrorCode},
    state::ApiState,
};

/// `RateLimit-Policy`: the policies that applied.
pub const RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of each.
pub const RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Paths that are never limited: orchestrators probe them, and a limited probe would take a
/// healthy instance out of service; a limited scrape would leave gaps in the metrics.
pub(crate) const UNLIMITED: &[&str] = &["/health", "/ready", crate::metrics::PATH];

/// The policies, by what they protect. `None` turns one off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitPolicies {
    /// Requests without a valid access token, per client address.
    pub anonymous: Option<RateLimitPolicy>,
    /// Requests with a valid access token, per user.
    pub authenticated: Option<RateLimitPolicy>,
    /// Logins and registrations, per client address.
    pub auth_per_ip: Option<RateLimitPolicy>,
    /// Logins and registrations, per account (e-mail address).
    pub auth_per_account: Option<RateLimitPolicy>,
    /// Placing orders, per user.
    pub orders: Option<RateLimitPolicy>,
}

/// The rate limiter with its policies and the proxies it trusts for client addresses.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Arc<dyn RateLimiter>,
    policies: Arc<RateLimitPolicies>,
    proxies: Arc<TrustedProxies>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("policies", &self.policies)
            .field("proxies", &self.proxies)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    #[must_use]
    pub fn new(
        limiter: Arc<dyn RateLimiter>,
        policies: RateLimitPolicies,
        proxies: TrustedProxies,
    ) -> Self {
        Self { limiter, policies: Arc::new(policies), proxies: Arc::new(proxies) }
    }

    /// The policies.
    #[must_use]
    pub fn policies(&self) -> &RateLimitPolicies {
        &self.policies
    }

    /// The client address of `request` (the peer, or what a trusted proxy says).
    #[must_use]
    pub fn client_ip(&self, request: &HttpRequest) -> Option<IpAddr> {
        self.proxies.client_of_request(request)
    }

    /// Whether the limiter's shared store answers (`None`: it has none).
    pub async fn store_healthy(&self) -> Option<bool> {
        self.limiter.store_healthy().await
    }
}

/// One decision, kept for the response headers.
#[derive(Debug, Clone)]
struct Decided {
    policy: RateLimitPolicy,
    decision: RateLimitDecision,
}

/// The decisions taken for a request so far.
#[derive(Debug, Clone, Default)]
struct Decisions(Vec<Decided>);

/// Which policy of [`RateLimitPolicies`] a handler applies on top of the base one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `auth_per_ip`, keyed by the client address.
    AuthPerIp,
    /// `auth_per_account`, keyed by the (lower-cased) account name.
    AuthPerAccount,
    /// `orders`, keyed by the user.
    Orders,
}

fn seconds_up(duration: Duration) -> u64 {
    let whole = duration.as_secs();
    if duration.subsec_nanos() > 0 { whole + 1 } else { whole }
}

/// Counts the request against `policy` for `key` and records the decision; a refusal is the
/// 429 problem (and counted in `orderly_rate_limited_total`).
async fn check(
    state: &ApiState,
    request: &HttpRequest,
    policy: &RateLimitPolicy,
    key: &str,
) -> Result<(), ApiError> {
    let decision = state.rate_limits.limiter.check(policy, key).await;
    request
        .extensions_mut()
        .get_or_insert_with(Decisions::default)
        .0
        .push(Decided { policy: policy.clone(), decision });
    if decision.allowed {
        Ok(())
    } else {
        if let Some(metrics) = &state.metrics {
            metrics.rate_limited(&policy.name);
        }
        let retry_after = seconds_up(decision.retry_after).max(1);
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "Rate limit `{}` ({} requests per {} s) exceeded; retry in {retry_after} s.",
                policy.name,
                policy.quota,
                policy.window.as_secs()
            ),
        )
        .with_extension("policy", serde_json::json!(policy.name))
        .with_header(header::RETRY_AFTER, retry_after.to_string()))
    }
}

/// Applies one of the handler-level policies to `request`: `key` is the account name for
/// [`Policy::AuthPerAccount`], ignored otherwise (the client address or the user is used).
///
/// # Errors
/// The 429 `RATE_LIMITED` problem when the policy refuses the request.
pub async fn enforce(
    request: &HttpRequest,
    policy: Policy,
    user: Option<UserId>,
    account: Option<&str>,
) -> Result<(), ApiError> {
    let Some(state) = request.app_data::<web::Data<ApiState>>() else { return Ok(()) };
    let limits = &state.rate_limits;
    let (chosen, key) = match policy {
        Policy::AuthPerIp => {
            (&limits.policies.auth_per_ip, limits.client_ip(request).map(|ip| format!("ip:{ip}")))
        }
        Policy::AuthPerAccount => (&limits.policies.auth_per_account, account.map(account_key)),
        Policy::Orders => (&limits.policies.orders, user.map(|id| format!("user:{id}"))),
    };
    match (chosen, key) {
        (Some(chosen), Some(key)) => check(state, request, chosen, &key).await,
        _ => Ok(()),
    }
}

/// The key of an account name: a digest of the trimmed, lower-cased name, so that the shared
/// store (Redis) holds no e-mail addresses.
fn account_key(name: &str) -> String {
    let digest = Sha256::digest(name.trim().to_lowercase().as_bytes());
    format!("account:{}", hex::encode(&digest[..16]))
}

/// The base policy of a request: `authenticated` per user when its bearer token verifies
/// (signature and expiry only: whether the account still exists is the extractor's question),
/// `anonymous` per client address otherwise.
fn base_policy(state: &ApiState, request: &ServiceRequest) -> Option<(RateLimitPolicy, String)> {
    let user = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, token)| state.access_tokens.verify(token.trim(), state.clock.now()).ok());
    let limits = &state.rate_limits;
    match user {
        Some(claims) => limits
            .policies
            .authenticated
            .clone()
            .map(|policy| (policy, format!("user:{}", claims.user_id))),
        None => {
            let ip = limits.proxies.client_of(request)?;
            limits.policies.anonymous.clone().map(|policy| (policy, format!("ip:{ip}")))
        }
    }
}

/// The middleware (see the module docs).
///
/// # Errors
/// Whatever the inner service fails with.
pub async fn limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = request.app_data::<web::Data<ApiState>>().cloned();
    let base = state
        .as_ref()
        .filter(|_| !UNLIMITED.contains(&request.path()))
        .and_then(|state| base_policy(state, &request));
    if let (Some(state), Some((policy, key))) = (state.as_ref(), base) {
        let http_request = request.request().clone();
        if let Err(refused) = check(state, &http_request, &policy, &key).await {
            let mut response = request.error_response(refused);
            write_headers(&http_request, response.headers_mut());
            return Ok(response.map_into_boxed_body());
        }
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    let http_request = response.request().clone();
    write_headers(&http_request, response.headers_mut());
    Ok(response)
}

/// `RateLimit-Policy: "orders";q=30;w=60` and `RateLimit: "orders";r=29;t=2`, one list member
/// per decision taken for the request.
fn write_headers(request: &HttpRequest, headers: &mut actix_web::http::header::HeaderMap) {
    let extensions = request.extensions();
    let Some(Decisions(decided)) = extensions.get::<Decisions>() else { return };
    if decided.is_empty() {
        return;
    }
    let policies: Vec<String> = decided
        .iter()
        .map(|d| {
            format!("\"{}\";q={};w={}", d.policy.name, d.policy.quota, d.policy.window.as_secs())
        })
        .collect();
    let states: Vec<String> = decided
        .iter()
        .map(|d| {
            format!(
                "\"{}\";r={};t={}",
                d.policy.name,
                d.decision.remaining,
                seconds_up(d.decision.reset)
            )
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&policies.join(", ")) {
        headers.insert(RATE_LIMIT_POLICY, value);
    }
    if let Ok(value) = HeaderValue::from_str(&states.join(", ")) {
        headers.insert(RATE_LIMIT, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_are_digests_of_the_normalised_name() {
        let key = account_key(" Ada@Example.com ");
        assert_eq!(key, account_key("ada@example.com"));
        assert!(!key.contains("example"), "{key}");
        assert_eq!(key.len(), "account:".len() + 32);
        assert_ne!(key, account_key("bob@example.com"));
    }

    #[test]
    fn partial_seconds_round_up() {
        assert_eq!(seconds_up(Duration::from_millis(0)), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_millis(1000)), 1);
        assert_eq!(seconds_up(Duration::from_millis(1001)), 2);
    }
}
