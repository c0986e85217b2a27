//! Where an app answers, and the process types it runs: what providers report and every
//! other layer keeps.

use std::collections::BTreeMap;
use std::fmt;

use http::HeaderValue;
use http::uri::{Authority, Scheme};
use serde::{Deserialize, Serialize};

/// Process types and their amounts (`web: 2, worker: 1`), restored exactly on wake.
pub type Formation = BTreeMap<String, u32>;

/// Where requests for an app are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port of the upstream.
    pub authority: Authority,
    /// `Host` header sent upstream, built once (PaaS routers route by it).
    host_header: HeaderValue,
}

impl Upstream {
    /// An upstream at this scheme and authority.
    pub fn new(scheme: Scheme, authority: Authority) -> Upstream {
        // An authority is always a valid header value; the fallback is never taken.
        let host_header = HeaderValue::from_str(authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Upstream {
            scheme,
            authority,
            host_header,
        }
    }

    /// A plain-HTTP upstream on the loopback interface.
    pub fn local(port: u16) -> Upstream {
        let authority = Authority::try_from(format!("127.0.0.1:{port}"))
            .unwrap_or_else(|_| Authority::from_static("127.0.0.1"));
        Upstream::new(Scheme::HTTP, authority)
    }

    /// An upstream from an absolute URL given by a platform (`https://app.example.com/`);
    /// `None` for anything that is not an `http` or `https` URL with a host (a name, an IPv4
    /// address or a bracketed IPv6 one) and at most a numeric port.
    pub fn from_url(url: &str) -> Option<Upstream> {
        let uri: http::Uri = url.trim().parse().ok()?;
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return None;
        }
        let authority = uri.authority()?.clone();
        if authority.as_str().contains('@') {
            return None;
        }
        // The URI parser lets odd authorities through (`[]x:1;2`): host and port are
        // checked here, so every upstream can be connected to.
        let host = authority.host();
        let valid_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
            None => {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            }
        };
        let port = authority.as_str()[host.len()..].strip_prefix(':');
        let valid_port = authority.as_str().len() == host.len()
            || port.is_some_and(|port| {
                port.is_empty()
                    || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
            });
        (valid_host && valid_port).then(|| Upstream::new(scheme, authority))
    }

    /// Host and port to connect to (the scheme's default port when none is given).
    pub fn address(&self) -> (&str, u16) {
        let default = if self.scheme == Scheme::HTTPS {
            443
        } else {
            80
        };
        let host = self.authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        (host, self.authority.port_u16().unwrap_or(default))
    }

    /// The `Host` header for requests to this upstream.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// What a wake changed of what the engine knew, to match the platform: the `started`
/// event's `reconciled` details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Process types asked for that the platform no longer has: not started, and no longer
    /// remembered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// The formation started instead (what is remembered from now on).
    #[serde(default, skip_serializing_if = "Formation::is_empty")]
    pub formation: Formation,
    /// The platform's other process types, left at the platform's amounts (a type added
    /// while the app slept, at 0, stays at 0).
    #[serde(default, skip_serializing_if = "Formation::is_empty")]
    pub left: Formation,
    /// The app's address, when it moved since the engine last listed it: requests go there
    /// from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_from_platform_urls() {
        let up = Upstream::from_url("https://example-app.osc-fr1.scalingo.io/").expect("url");
        assert_eq!(up.scheme, Scheme::HTTPS);
        assert_eq!(up.address(), ("example-app.osc-fr1.scalingo.io", 443));
        assert_eq!(up.host_header(), "example-app.osc-fr1.scalingo.io");
        let local = Upstream::from_url("http://127.0.0.1:8080").expect("url");
        assert_eq!(local.address(), ("127.0.0.1", 8080));
        let v6 = Upstream::from_url("http://[::1]:81").expect("url");
        assert_eq!(v6.address(), ("::1", 81));
        for bad in [
            "ftp://x",
            "example.com",
            "https://user:pw@host/",
            "",
            // Authorities the URI parser lets through, that no connection can use.
            "http://[]z:2;81",
            "http://[]",
            "http://[::1]x:80/",
            "http://host:8080;x/",
            "http://host:99999/",
            "http://ho$t/",
        ] {
            assert!(Upstream::from_url(bad).is_none(), "{bad}");
        }
    }
}
