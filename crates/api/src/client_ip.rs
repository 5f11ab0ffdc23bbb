//! The client's address: the socket's peer, or what a trusted reverse proxy says it is.
//!
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only when the peer is one of the
//! `TRUSTED_PROXIES`: anyone can send them, so trusting them from anyone would let a client pick
//! its own rate-limit key. Behind a chain of proxies, the list is read from the right (the hop
//! nearest to us) and the first address that is not a trusted proxy is the client.

use std::net::IpAddr;

use actix_web::{HttpRequest, dev::ServiceRequest, http::header::HeaderMap};
use ipnet::IpNet;

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and CIDR ranges (`10.0.0.0/8`).
    ///
    /// # Errors
    /// A message naming the first entry that is neither.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        entries
            .into_iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is not an IP address or a CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client address of a request that came from `peer` with `headers`.
    #[must_use]
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops = forwarded_for(headers);
        // Right to left: the nearest hop first; the first one we do not trust is the client.
        let client = hops.iter().rev().copied().find(|hop| !self.trusts(*hop));
        Some(client.or_else(|| hops.first().copied()).unwrap_or(peer))
    }

    /// The client address of an incoming request.
    #[must_use]
    pub fn client_of(&self, request: &ServiceRequest) -> Option<IpAddr> {
        self.client(request.peer_addr().map(|addr| addr.ip()), request.headers())
    }

    /// The client address of a request, inside a handler.
    #[must_use]
    pub fn client_of_request(&self, request: &HttpRequest) -> Option<IpAddr> {
        self.client(request.peer_addr().map(|addr| addr.ip()), request.headers())
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are their IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The hops named by `Forwarded` (preferred, RFC 7239) or `X-Forwarded-For`, leftmost first.
/// Entries that are not addresses (`unknown`, obfuscated names) end the list's usable part:
/// nothing left of them can be believed.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<String> = headers
        .get_all("forwarded")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| value.trim().to_owned())
            })
        })
        .collect();
    let raw: Vec<String> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|hop| hop.trim().to_owned())
            .collect()
    } else {
        forwarded
    };
    let parsed: Vec<Option<IpAddr>> = raw.iter().map(|hop| parse_hop(hop)).collect();
    // Keep only the unbroken run of addresses nearest to us.
    let start = parsed.iter().rposition(Option::is_none).map_or(0, |i| i + 1);
    parsed[start..].iter().flatten().copied().map(canonical).collect()
}

/// `203.0.113.7`, `203.0.113.7:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(address, _)| address.parse().ok());
    }
    hop.rsplit_once(':').and_then(|(address, port)| {
        port.parse::<u16>()
            .ok()
            .and_then(|_| address.parse::<std::net::Ipv4Addr>().ok())
            .map(IpAddr::V4)
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).expect("valid");
        let claims = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(proxies.client(Some(ip("203.0.113.9")), &claims), Some(ip("203.0.113.9")));
        let none = TrustedProxies::default();
        assert_eq!(none.client(Some(ip("10.0.0.1")), &claims), Some(ip("10.0.0.1")));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_read_from_the_right() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.7"]).expect("valid");
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.2.3")]);
        // 10.1.2.3 is one of ours; 198.51.100.4 is the first hop we do not trust. 6.6.6.6 is
        // what the client claimed, and is not believed.
        assert_eq!(proxies.client(Some(ip("192.168.1.7")), &chain), Some(ip("198.51.100.4")));
    }

    #[test]
    fn forwarded_is_preferred_and_understood_with_ports_and_brackets() {
        let proxies = TrustedProxies::parse(["127.0.0.1"]).expect("valid");
        let v6 = headers(&[
            ("forwarded", r#"for="[2001:db8::1]:4711";proto=https"#),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &v6), Some(ip("2001:db8::1")));
        let v4 = headers(&[("forwarded", "for=192.0.2.60:8080;by=203.0.113.43")]);
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &v4), Some(ip("192.0.2.60")));
    }

    #[test]
    fn garbage_in_the_chain_is_not_believed() {
        let proxies = TrustedProxies::parse(["127.0.0.1"]).expect("valid");
        let broken = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &broken), Some(ip("127.0.0.1")));
        let missing = headers(&[]);
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &missing), Some(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_ipv6_addresses_are_their_ipv4_address() {
        let proxies = TrustedProxies::parse(["127.0.0.1"]).expect("valid");
        let chain = headers(&[("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(proxies.client(Some(ip("::ffff:127.0.0.1")), &chain), Some(ip("198.51.100.4")));
    }

    #[test]
    fn only_addresses_and_ranges_are_accepted() {
        assert!(TrustedProxies::parse(["10.0.0.0/8", "::1", "fd00::/8"]).is_ok());
        for bad in ["10.0.0.0/33", "proxy.internal", ""] {
            assert!(TrustedProxies::parse([bad]).is_err(), "{bad} accepted");
        }
    }
}
