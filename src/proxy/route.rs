//! Phase **route**: Host header -> route key -> app, through an in-memory table.
//!
//! The host is taken from the request target's authority (absolute-form, HTTP/2) or the one
//! `Host` header, its port stripped, lowercased, a trailing dot dropped. The route key is what
//! stands left of the longest matching configured domain, or the first DNS label when no
//! domain matches. The table the key is looked up in is the lifecycle's
//! ([`crate::lifecycle::route`]): this module only reads requests' hosts, and never calls a
//! provider.

use std::borrow::Cow;

use http::Request;
use http::header::HOST;

/// Why a request's host cannot be routed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No host in the request target nor a `Host` header.
    #[error("the request has no Host header")]
    Missing,
    /// Several `Host` headers.
    #[error("the request has several Host headers")]
    Duplicate,
    /// The request target names one host and the `Host` header another.
    #[error("the request target's host and the Host header differ")]
    Mismatch,
    /// A host that is not a host name.
    #[error("the Host header is not a valid host name")]
    Malformed,
}

/// The request's host: lowercased, without port or trailing dot.
pub fn request_host<B>(request: &Request<B>) -> Result<Cow<'_, str>, HostError> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    // An absolute-form target (or HTTP/2 :authority) names the host (RFC 9112 3.2.2); a
    // Host header that says otherwise makes the request ambiguous (RFC 9113 8.3.1 calls it
    // malformed), so it is refused rather than routed by either.
    match (request.uri().authority(), header) {
        (Some(authority), Some(value)) => {
            let target = normalize_host(authority.as_str())?;
            let header = normalize_host(value.to_str().map_err(|_| HostError::Malformed)?)?;
            if target != header {
                return Err(HostError::Mismatch);
            }
            Ok(target)
        }
        (Some(authority), None) => normalize_host(authority.as_str()),
        (None, Some(value)) => normalize_host(value.to_str().map_err(|_| HostError::Malformed)?),
        (None, None) => Err(HostError::Missing),
    }
}

/// Strips the port and a trailing dot, lowercases, and checks the characters (a bracketed
/// host must be an IPv6 address). A name is read in one pass over its bytes: this runs for
/// every request.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    if raw.starts_with('[') {
        // An IPv6 literal: valid, but never an app's route.
        let end = raw.find(']').ok_or(HostError::Malformed)?;
        if raw[1..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostError::Malformed);
        }
        let rest = &raw[end + 1..];
        if !(rest.is_empty() || is_port_suffix(rest)) {
            return Err(HostError::Malformed);
        }
        return Ok(Cow::Borrowed(&raw[..=end]));
    }
    // Labels of letters, digits, `-` and `_` (1 to 63 bytes) between dots, perhaps a last
    // dot, then perhaps `:port`.
    let bytes = raw.as_bytes();
    let (mut end, mut label, mut upper) = (bytes.len(), 0usize, false);
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label += 1,
            b'A'..=b'Z' => {
                label += 1;
                upper = true;
            }
            b'.' if label > 0 => label = 0,
            b':' if raw.len() > at + 1 && is_port_suffix(&raw[at..]) => {
                end = at;
                break;
            }
            _ => return Err(HostError::Malformed),
        }
        if label > 63 {
            return Err(HostError::Malformed);
        }
    }
    let host = &raw[..end];
    let host = host.strip_suffix('.').unwrap_or(host);
    // An empty name, or one ending in two dots (the loop saw every other empty label).
    if host.is_empty() || host.len() > 253 || host.ends_with('.') {
        return Err(HostError::Malformed);
    }
    if upper {
        Ok(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(host))
    }
}

fn is_port_suffix(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|port| port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Where a host stands among some owners' domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Under<'h, T> {
    /// The host is one of `T`'s domains itself (no app is served there).
    Domain(T),
    /// The host is under `T`'s domain; the route key is what stands left of it.
    Key(T, &'h str),
    /// Under none of them.
    None,
}

/// The owner of the longest domain the host is under (a whole-label suffix), and the route
/// key left of it. `owner_of` names the owner of a domain, if it is one: the host's
/// suffixes are looked up from the longest (the host itself) to the shortest, so the cost
/// grows with the host's labels, not with the number of domains.
pub fn under<'h, T>(host: &'h str, owner_of: impl Fn(&str) -> Option<T>) -> Under<'h, T> {
    if let Some(owner) = owner_of(host) {
        return Under::Domain(owner);
    }
    // The dots found byte by byte: host names are short, and a character search is set up
    // at each call.
    for (dot, _) in host.bytes().enumerate().filter(|&(_, byte)| byte == b'.') {
        if let Some(owner) = host.get(dot + 1..).and_then(&owner_of) {
            return Under::Key(owner, &host[..dot]);
        }
    }
    Under::None
}

/// The route key of a host: what stands left of the longest matching domain, or the first
/// label when none matches. `None` when the host is a domain itself.
pub fn route_key<'h>(host: &'h str, domains: &[String]) -> Option<&'h str> {
    match under(host, |suffix| {
        domains.iter().any(|d| d == suffix).then_some(())
    }) {
        Under::Domain(()) => None,
        Under::Key((), key) => Some(key),
        Under::None => first_label(host),
    }
}

/// The first DNS label of a host.
pub fn first_label(host: &str) -> Option<&str> {
    let end = host
        .bytes()
        .position(|byte| byte == b'.')
        .unwrap_or(host.len());
    host.get(..end).filter(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(
            normalize_host("Hello.LocalHost:3000").as_deref(),
            Ok("hello.localhost")
        );
        assert_eq!(
            normalize_host("hello.localhost.").as_deref(),
            Ok("hello.localhost")
        );
        assert_eq!(normalize_host("hello").as_deref(), Ok("hello"));
        assert_eq!(normalize_host("[::1]:3000").as_deref(), Ok("[::1]"));
        for bad in [
            "",
            ":80",
            "a..b",
            "a b",
            "a:b",
            "a:",
            "héllo",
            "a/b",
            "user@host",
            "[::1",
            "[<script>]",
            "[not-an-address]:80",
            "[\0::1]",
            "[::1]x",
            "a:123456",
            ".",
            "a..",
            "a:80:80",
            ".a",
        ] {
            assert_eq!(normalize_host(bad), Err(HostError::Malformed), "{bad:?}");
        }
        assert_eq!(normalize_host("A.b.:8080").as_deref(), Ok("a.b"));
        let long = format!("{}.example", "a".repeat(63));
        assert_eq!(normalize_host(&long).as_deref(), Ok(long.as_str()));
        assert!(normalize_host(&format!("{}.example", "a".repeat(64))).is_err());
        let longest = ["a".repeat(63).as_str(); 4].join(".");
        assert!(normalize_host(&longest[..253]).is_ok());
        assert!(normalize_host(&format!("{longest}.")).is_err(), "254 bytes");
    }

    /// The rules as they read best (split on the port, then on dots), to compare with.
    fn normalize_by_the_rules(raw: &str) -> Option<String> {
        if raw.contains('@') {
            return None;
        }
        // Bracketed IPv6 addresses are read the same way by both.
        if raw.starts_with('[') {
            return normalize_host(raw).ok().map(Cow::into_owned);
        }
        let host = match raw.rsplit_once(':') {
            Some((host, port)) if is_port_suffix(&raw[host.len()..]) && !port.is_empty() => host,
            Some(_) => return None,
            None => raw,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        valid.then(|| host.to_ascii_lowercase())
    }

    #[test]
    fn the_one_pass_reading_of_a_host_agrees_with_the_rules() {
        // Every string of up to 5 bytes from an alphabet with each kind of byte, and longer
        // ones around the length limits.
        let alphabet = ["a", "Z", "9", "-", ".", ":", "@", " ", "é"];
        let mut texts = vec![String::new()];
        let mut generation = vec![String::new()];
        for _ in 0..5 {
            generation = generation
                .iter()
                .flat_map(|text| alphabet.iter().map(move |piece| format!("{text}{piece}")))
                .collect();
            texts.extend(generation.iter().cloned());
        }
        for size in [62, 63, 64, 252, 253, 254] {
            texts.push("b".repeat(size));
            texts.push(format!("{}.", "c".repeat(size)));
            texts.push(format!("x.{}:80", "d".repeat(size)));
        }
        for text in &texts {
            assert_eq!(
                normalize_host(text).ok().map(Cow::into_owned),
                normalize_by_the_rules(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_longest_domain_wins_as_a_scan_of_every_domain_would_find() {
        // A plain scan of every domain, as the reference.
        fn scan<'h>(host: &'h str, domains: &[(usize, &str)]) -> Under<'h, usize> {
            let mut best: Option<(usize, usize)> = None;
            for &(owner, domain) in domains {
                if host == domain {
                    return Under::Domain(owner);
                }
                if host.len() > domain.len()
                    && host.ends_with(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                    && best.is_none_or(|(_, len)| len < domain.len())
                {
                    best = Some((owner, domain.len()));
                }
            }
            match best {
                Some((owner, len)) => Under::Key(owner, &host[..host.len() - len - 1]),
                None => Under::None,
            }
        }
        let domains = [
            (0, "example.test"),
            (1, "acme.example.test"),
            (2, "eu.acme.example.test"),
            (3, "globex.test"),
            (4, "test"),
            (5, "a.b"),
        ];
        let labels = [
            "a",
            "b",
            "test",
            "example",
            "acme",
            "eu",
            "globex",
            "x-y",
            "acmeexample",
        ];
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..20_000 {
            let host: Vec<&str> = (0..rng.usize(1..6))
                .map(|_| labels[rng.usize(..labels.len())])
                .collect();
            let host = host.join(".");
            let indexed = under(&host, |suffix| {
                domains.iter().find(|(_, d)| *d == suffix).map(|(o, _)| *o)
            });
            assert_eq!(indexed, scan(&host, &domains), "{host}");
        }
    }

    #[test]
    fn route_keys_follow_domains() {
        let none = domains(&[]);
        assert_eq!(route_key("hello.localhost", &none), Some("hello"));
        assert_eq!(
            route_key("shop--heroku.localhost", &none),
            Some("shop--heroku")
        );
        let some = domains(&["proxy.example.com", "example.com"]);
        assert_eq!(route_key("hello.proxy.example.com", &some), Some("hello"));
        assert_eq!(route_key("a.b.proxy.example.com", &some), Some("a.b"));
        assert_eq!(route_key("hello.example.com", &some), Some("hello"));
        assert_eq!(route_key("proxy.example.com", &some), None);
        assert_eq!(route_key("hello.localhost", &some), Some("hello"));
        assert_eq!(route_key("xproxy.example.com", &some), Some("xproxy"));
    }
}
