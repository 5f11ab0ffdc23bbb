//! The outbound side of webhooks: the guard that decides which hosts deliveries may go to, the
//! sender of signed deliveries (Standard Webhooks), and the generator of signing secrets.
//!
//! Server-side request forgery is refused twice. [`NetworkGuard`] checks an endpoint's URL when
//! an admin registers or moves it; [`HttpWebhookSender`] checks again when it connects, through
//! its own DNS resolver, so a name that resolved to a public address then and to a private one
//! now (a DNS change, DNS rebinding) cannot reach the private network.

use std::{
    error::Error as StdError,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac as _};
use orderly_application::webhooks::ports::{
    SecretGenerator, SendOutcome, UrlGuard, UrlRefused, WebhookMessage, WebhookSender,
};
use orderly_domain::{WebhookSecret, WebhookUrl};
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, RETRY_AFTER},
};
use rustls_platform_verifier::BuilderVerifierExt as _;
use sha2::Sha256;

/// The longest wait for a host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait for a connection to a receiver (shortened to the attempt's time-out).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer's body that is read (then dropped): a receiver cannot make Orderly
/// read, or wait for, a large body.
const ANSWER_READ_LIMIT: usize = 4 * 1024;

/// The prefix of a Standard Webhooks secret; the base64 of the key follows it.
const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// How deliveries reach receivers.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Whether receivers on loopback, private, link-local and other non-public addresses may be
    /// called (development and tests only).
    pub allow_private_networks: bool,
    /// The longest one attempt may take, from connecting to the end of the part of the answer
    /// read.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { allow_private_networks: false, timeout: Duration::from_secs(15) }
    }
}

/// Whether `ip` is a public unicast address a webhook may be sent to. Refused: unspecified,
/// loopback, private, link-local (the cloud metadata address 169.254.169.254 among them), shared
/// (CGNAT, and Alibaba's metadata 100.100.100.200), IETF protocol assignments, benchmarking,
/// documentation, broadcast, multicast, reserved, unique-local, site-local and discard-only
/// addresses, and IPv6 addresses that embed a refused IPv4 one (IPv4-mapped, IPv4-compatible,
/// NAT64, 6to4).
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 among it
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && b & 0xc0 == 64) // shared address space (CGNAT), 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && b & 0xfe == 18) // benchmarking, 198.18.0.0/15
        || ip.is_documentation()
        || ip.is_multicast()
        || a >= 240; // reserved 240.0.0.0/4, and the broadcast address within it
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible) reach the IPv4 address.
    if let Some(v4) = ip.to_ipv4() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // NAT64, 64:ff9b::/96: a translator reaches the IPv4 address in the last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => is_public_v4(embedded(high, low)),
        // Local-use NAT64, 64:ff9b:1::/48: a translator inside the network.
        [0x64, 0xff9b, 1, ..] => false,
        // 6to4, 2002::/16: the IPv4 address of the relay follows the prefix.
        [0x2002, high, low, ..] => is_public_v4(embedded(high, low)),
        // Discard-only, 100::/64.
        [0x100, 0, 0, 0, ..] => false,
        // Documentation, 2001:db8::/32 and 3fff::/20.
        [0x2001, 0xdb8, ..] => false,
        [first, ..] if first & 0xfff0 == 0x3ff0 => false,
        // Unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10 (deprecated).
        [first, ..] if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 => false,
        [first, ..] if first & 0xffc0 == 0xfec0 => false,
        _ => !ip.is_multicast(),
    }
}

/// The IP address a URL's host is written as, if it is one.
fn ip_literal(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The addresses `host` resolves to, within [`RESOLVE_TIMEOUT`].
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefused> {
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
    let addrs: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(error)) => {
            return Err(UrlRefused::Unresolvable(format!("{host} does not resolve: {error}")));
        }
        Err(_) => {
            return Err(UrlRefused::Unresolvable(format!(
                "{host} did not resolve within {} s",
                RESOLVE_TIMEOUT.as_secs()
            )));
        }
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable(format!("{host} resolves to no address")));
    }
    Ok(addrs)
}

fn not_public(host: &str, ip: IpAddr) -> String {
    if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
        format!("{ip} is a private address")
    } else {
        format!("{host} resolves to {ip}, a private address")
    }
}

/// The outbound guard: a URL's host must resolve, and, unless private networks are allowed,
/// every address it resolves to must be public.
#[derive(Debug, Clone)]
pub struct NetworkGuard {
    allow_private_networks: bool,
}

impl NetworkGuard {
    #[must_use]
    pub fn new(settings: &WebhookSettings) -> Self {
        Self { allow_private_networks: settings.allow_private_networks }
    }
}

#[async_trait]
impl UrlGuard for NetworkGuard {
    #[tracing::instrument(skip(self), fields(url = %url))]
    async fn check(&self, url: &WebhookUrl) -> Result<(), UrlRefused> {
        let parsed = Url::parse(url.as_str())
            .map_err(|error| UrlRefused::Unresolvable(format!("`{url}` is not a URL: {error}")))?;
        let Some(host) = parsed.host_str() else {
            return Err(UrlRefused::Unresolvable(format!("`{url}` names no host")));
        };
        let addrs = match ip_literal(&parsed) {
            Some(ip) => vec![ip],
            None => {
                let port = parsed.port_or_known_default().unwrap_or(80);
                resolve(host, port).await?.into_iter().map(|addr| addr.ip()).collect()
            }
        };
        if self.allow_private_networks {
            return Ok(());
        }
        match addrs.into_iter().find(|ip| !is_public(*ip)) {
            Some(ip) => Err(UrlRefused::NotPublic(not_public(host, ip))),
            None => Ok(()),
        }
    }
}

/// The connect-time guard's refusal, found again in the source chain of the client's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PrivateOnly(String);

/// The sender's resolver: the system's, with the non-public addresses dropped (unless private
/// networks are allowed). The client does not call it for an IP-literal host, which `send`
/// checks itself.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_private_networks: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private_networks = self.allow_private_networks;
        Box::pin(async move {
            // Port 0: the client puts the URL's port (or the scheme's) in.
            let (kept, dropped): (Vec<SocketAddr>, Vec<SocketAddr>) = resolve(&host, 0)
                .await?
                .into_iter()
                .partition(|addr| allow_private_networks || is_public(addr.ip()));
            match dropped.first() {
                Some(addr) if kept.is_empty() => {
                    Err(PrivateOnly(not_public(&host, addr.ip())).into())
                }
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

/// Sends deliveries over HTTP(S), signed as Standard Webhooks says.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private_networks: bool,
    timeout: Duration,
}

impl HttpWebhookSender {
    /// A sender with its own HTTP client: no redirects, no proxy, the guarded resolver.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no certificate store).
    pub fn new(settings: &WebhookSettings) -> anyhow::Result<Self> {
        // rustls on ring with the system's certificate store, as the payment adapter does.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_platform_verifier()
            .context("the system's certificate store")?
            .with_no_client_auth();
        let resolver = GuardedResolver { allow_private_networks: settings.allow_private_networks };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(resolver)
            // A redirect is the receiver's (failed) answer; following it would reach a host
            // the guard never saw.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect to the receiver itself, past the resolver's check.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(settings.timeout))
            .timeout(settings.timeout)
            .user_agent(concat!("orderly-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("the webhook sender's HTTP client")?;
        Ok(Self {
            client,
            allow_private_networks: settings.allow_private_networks,
            timeout: settings.timeout,
        })
    }

    /// What a failed request comes to: refused if the resolver refused the host, failed
    /// otherwise, with the cause chain (which holds no header, so no signature or secret).
    fn failure(&self, error: &reqwest::Error) -> SendOutcome {
        let mut source: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<PrivateOnly>() {
                return SendOutcome::Refused(refused.0.clone());
            }
            source = cause.source();
        }
        if error.is_timeout() {
            return SendOutcome::Failed(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ));
        }
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        SendOutcome::Failed(reason)
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    #[tracing::instrument(skip(self, message), fields(url = %message.url, id = %message.id))]
    async fn send(&self, message: &WebhookMessage) -> SendOutcome {
        let url = match Url::parse(message.url.as_str()) {
            Ok(url) => url,
            Err(error) => return SendOutcome::Failed(format!("not a URL: {error}")),
        };
        if let Some(ip) = ip_literal(&url)
            && !self.allow_private_networks
            && !is_public(ip)
        {
            return SendOutcome::Refused(format!("{ip} is a private address"));
        }
        let timestamp = message.timestamp.timestamp();
        let id = message.id.hyphenated().to_string();
        let signatures = match signatures(&message.secrets, &id, timestamp, &message.body) {
            Ok(signatures) => signatures,
            Err(why) => return SendOutcome::Failed(why.to_owned()),
        };
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures)
            .body(message.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return self.failure(&error.without_url()),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, SystemTime::now()));
        // A little of the body lets a short answer end, so the connection may be reused; the
        // rest is never read: dropping the response closes the connection.
        let mut read = 0;
        while read < ANSWER_READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        SendOutcome::Answered { status, retry_after }
    }
}

/// The `webhook-signature` header: `v1,<base64 of HMAC-SHA256>` of `{id}.{timestamp}.{body}`
/// under each secret, in order, separated by spaces.
fn signatures(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, &'static str> {
    if secrets.is_empty() {
        return Err("no secret to sign with");
    }
    let mut header = String::new();
    for secret in secrets {
        let encoded = secret.expose();
        let key = STANDARD
            .decode(encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded))
            .map_err(|_| "a signing secret is not base64")?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "a signing secret is unusable")?;
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
    }
    Ok(header)
}

/// A `Retry-After` value, delta-seconds or an HTTP date (a past date waits nothing).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64: as long as can be (the caller caps it anyway).
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Secrets of [`SECRET_BYTES`] random bytes from the operating system.
#[derive(Debug, Clone, Copy)]
pub struct RandomSecrets {
    _checked: (),
}

impl RandomSecrets {
    /// A generator, once the operating system has given random bytes.
    ///
    /// # Errors
    /// When the operating system has no source of randomness.
    pub fn new() -> anyhow::Result<Self> {
        getrandom::fill(&mut [0_u8; SECRET_BYTES])
            .map_err(|error| anyhow::anyhow!("no randomness for webhook secrets: {error}"))?;
        Ok(Self { _checked: () })
    }
}

impl SecretGenerator for RandomSecrets {
    fn generate(&self) -> WebhookSecret {
        let mut bytes = [0_u8; SECRET_BYTES];
        // The port cannot fail, and a secret without randomness must not be made; the source
        // worked when the generator was built, so this does not happen in practice.
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        WebhookSecret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.1.2.3",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ];
        for address in refused {
            let ip: IpAddr = address.parse().expect("an address");
            assert!(!is_public(ip), "{address} must be refused");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for address in public {
            let ip: IpAddr = address.parse().expect("an address");
            assert!(is_public(ip), "{address} must be public");
        }
    }

    #[test]
    fn signatures_match_the_standard_webhooks_reference_vector() {
        // The vector of the reference implementation's own tests.
        let secret = WebhookSecret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into());
        let body = r#"{"email":"test@example.com","username":"test_user"}"#;
        let header = signatures(
            &[secret.clone(), secret],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            body,
        );
        let one = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(header, Ok(format!("{one} {one}")));
        assert!(signatures(&[], "id", 1, body).is_err());
        let bad = WebhookSecret::new("whsec_not base64!".into());
        assert_eq!(signatures(&[bad], "id", 1, body), Err("a signing secret is not base64"));
    }

    #[test]
    fn retry_after_is_delta_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for nonsense in ["", "-5", "1.5", "soon"] {
            assert_eq!(retry_after(nonsense, now), None, "{nonsense:?}");
        }
    }
}
