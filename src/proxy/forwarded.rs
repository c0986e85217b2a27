//! Who the client is when proxies stand in front of the engine (`proxy.trusted_proxies`).
//!
//! A request from a trusted proxy (a load balancer's address range) keeps the
//! `X-Forwarded-Proto` and `X-Forwarded-Host` it carries, and its client is the rightmost
//! `X-Forwarded-For` entry that is not itself a trusted proxy. Any other peer is the client:
//! what it says in those headers is replaced by what the engine saw (the listener's scheme,
//! the request's host); its `X-Forwarded-For` chain is kept, with the peer appended, as
//! every proxy does. This module does not forward anything.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The address ranges whose forwarded headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The ranges; empty: nobody's.
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// These ranges.
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    /// Whether no range is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return false;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer`: `peer` itself unless it is trusted, else the
    /// rightmost `X-Forwarded-For` address that is not trusted (the leftmost one when all
    /// are); entries that are not addresses end the walk.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`, `v4:port`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|address| address.ip())
}

/// Parses `text` as a range (`10.0.0.0/8`, `2001:db8::/32`) or one address.
pub fn parse_range(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is not an address or a range such as 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", value.parse().expect("value"));
        }
        headers
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let trusted = TrustedProxies::new(vec![
            parse_range("10.0.0.0/8").expect("range"),
            parse_range("2001:db8::1").expect("address"),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // An untrusted peer is the client, whatever it says.
        assert_eq!(
            trusted.client_ip(ip("203.0.113.5"), &headers(&["198.51.100.1"])),
            ip("203.0.113.5")
        );
        // Through two trusted hops.
        assert_eq!(
            trusted.client_ip(
                ip("10.1.2.3"),
                &headers(&["1.1.1.1, 198.51.100.7", "10.9.9.9"])
            ),
            ip("198.51.100.7")
        );
        // A trusted peer with no header is the client; ports are allowed.
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&[])),
            ip("10.1.2.3")
        );
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.0.0.1"), &headers(&["[2001:db8::9]:4000"])),
            ip("2001:db8::9")
        );
        // Garbage ends the walk at the last good address.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &headers(&["nonsense, 10.0.0.2"])),
            ip("10.0.0.2")
        );
        assert!(parse_range("10.0.0.300/8").is_err());
        assert_eq!(
            parse_range("192.168.1.7/24").expect("range").to_string(),
            "192.168.1.0/24"
        );
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }
}
