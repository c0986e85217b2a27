//! The proxy's settings: the `proxy` section (drain, workers, upstream CA file and
//! timeouts, client limits, forwarded headers) and the `tls` listener, typed, and how they
//! are read with the shared [`Reader`]. Reading only: nothing here opens a socket or reads
//! a file (the TLS files are read when the engine starts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::forward::UpstreamTimeouts;
use crate::settings::{Reader, kind};

/// The `proxy` section, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long in-flight requests may take to finish once shutdown begins
    /// (`proxy.drain_timeout`).
    pub shutdown_timeout: Duration,
    /// Proxy worker threads (`proxy.workers`, default: one per CPU).
    pub workers: usize,
    /// Extra CA certificates (PEM) trusted for `https` upstreams (`proxy.upstream_ca_file`).
    pub upstream_ca_file: Option<PathBuf>,
    /// Client-side limits of the proxy listener.
    pub limits: Limits,
    /// How long the proxy waits on upstreams.
    pub upstream_timeouts: UpstreamTimeouts,
    /// Send the client's `Host` upstream instead of the upstream's (`proxy.preserve_host`).
    pub preserve_host: bool,
    /// Peers whose `X-Forwarded-*` headers are believed (`proxy.trusted_proxies`).
    pub trusted_proxies: crate::proxy::forwarded::TrustedProxies,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shutdown_timeout: DEFAULT_DRAIN,
            workers: default_workers(),
            upstream_ca_file: None,
            limits: Limits::default(),
            upstream_timeouts: UpstreamTimeouts::default(),
            preserve_host: false,
            trusted_proxies: Default::default(),
        }
    }
}

/// One proxy worker per CPU.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(2)
}

/// Default bound on draining in-flight requests at shutdown (`proxy.drain_timeout`).
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// `tls`: a second proxy listener that terminates TLS (HTTP/2 or HTTP/1.1 by ALPN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Where it listens (`tls.listen`, default `0.0.0.0:3443`).
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first (`tls.cert`); read again on SIGHUP.
    pub cert: std::path::PathBuf,
    /// PEM private key (`tls.key`); read again on SIGHUP.
    pub key: std::path::PathBuf,
}

/// Limits that protect the proxy from slow or oversized clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers (slowloris), `proxy.header_read_timeout`.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger gets 431,
    /// `proxy.max_header_bytes`.
    pub max_header_bytes: usize,
    /// Open client connections at most; more wait to be accepted, `proxy.max_connections`.
    pub max_connections: usize,
    /// Connections one client IP (IPv6: its /64) may hold, `proxy.max_connections_per_ip`.
    pub max_connections_per_ip: usize,
    /// How long an HTTP/2 connection may stay without a request in progress,
    /// `proxy.client_idle_timeout`.
    pub client_idle_timeout: Duration,
    /// How a request body must progress (`proxy.request_body_timeout`,
    /// `proxy.min_request_body_rate`): a trickled body is cut, and its app can sleep.
    pub body_progress: crate::proxy::body::BodyProgress,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 512,
            client_idle_timeout: Duration::from_secs(60),
            body_progress: crate::proxy::body::BodyProgress::default(),
        }
    }
}

impl Reader<'_> {
    /// `tls`: the HTTPS listener. The files are read when the engine starts (and on
    /// SIGHUP), not here.
    pub(crate) fn tls(&mut self, value: &Value, path: &str) -> Option<TlsListener> {
        if value.is_null() {
            return None;
        }
        let mut fields = self.mapping(value, path)?;
        let listen = fields
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3443)));
        let mut file = |name: &str| match fields.take(name) {
            Some((v, p)) => self.non_empty_string(v, &p).map(PathBuf::from),
            None => {
                self.error(
                    &format!("{path}.{name}"),
                    "is required (path of a PEM file)",
                );
                None
            }
        };
        let cert = file("cert");
        let key = file("key");
        self.finish(fields, &[]);
        Some(TlsListener {
            listen,
            cert: cert?,
            key: key?,
        })
    }

    /// `proxy`: drain timeout, worker threads, upstream CA file, client limits.
    pub(crate) fn proxy(&mut self, value: &Value, path: &str) -> Settings {
        let Some(mut fields) = self.mapping(value, path) else {
            return Settings::default();
        };
        let preserve_host = match fields.take("preserve_host") {
            None => false,
            Some((Value::Bool(b), _)) => *b,
            Some((other, p)) => {
                self.error(&p, format!("expected true or false, found {}", kind(other)));
                false
            }
        };
        let upstream_defaults = UpstreamTimeouts::default();
        let upstream_timeouts = UpstreamTimeouts {
            connect: fields
                .take("connect_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.connect),
            response_header: fields
                .take("response_header_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.response_header),
            idle: fields
                .take("idle_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.idle),
        };
        let defaults = Limits::default();
        let limits = Limits {
            header_read_timeout: fields
                .take("header_read_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(defaults.header_read_timeout),
            max_header_bytes: fields
                .take("max_header_bytes")
                .and_then(|(v, p)| self.count(v, &p, 8192..=16 * 1024 * 1024))
                .unwrap_or(defaults.max_header_bytes),
            max_connections: fields
                .take("max_connections")
                .and_then(|(v, p)| self.count(v, &p, 1..=10_000_000))
                .unwrap_or(defaults.max_connections),
            max_connections_per_ip: fields
                .take("max_connections_per_ip")
                .and_then(|(v, p)| self.count(v, &p, 1..=10_000_000))
                .unwrap_or(defaults.max_connections_per_ip),
            client_idle_timeout: fields
                .take("client_idle_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(defaults.client_idle_timeout),
            body_progress: crate::proxy::body::BodyProgress {
                timeout: fields
                    .take("request_body_timeout")
                    .and_then(|(v, p)| self.positive_duration(v, &p))
                    .unwrap_or(defaults.body_progress.timeout),
                min_rate: fields
                    .take("min_request_body_rate")
                    .and_then(|(v, p)| self.count(v, &p, 0..=1 << 40))
                    .map_or(defaults.body_progress.min_rate, |n| n as u64),
            },
        };
        let drain = fields
            .take("drain_timeout")
            .and_then(|(v, p)| self.duration(v, &p))
            .unwrap_or(DEFAULT_DRAIN);
        let workers = fields
            .take("workers")
            .and_then(|(v, p)| self.count(v, &p, 1..=1024))
            .unwrap_or_else(default_workers);
        let mut trusted = Vec::new();
        if let Some((value, list_path)) = fields.take("trusted_proxies")
            && let Some(items) = self.list(value, &list_path)
        {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{list_path}[{index}]");
                let Some(text) = self.string(item, &item_path) else {
                    continue;
                };
                match crate::proxy::forwarded::parse_range(text.trim()) {
                    Ok(net) => trusted.push(net),
                    Err(message) => self.error(&item_path, message),
                }
            }
        }
        let upstream_ca_file = fields
            .take("upstream_ca_file")
            .and_then(|(v, p)| self.non_empty_string(v, &p))
            .map(PathBuf::from);
        self.finish(fields, &[]);
        Settings {
            shutdown_timeout: drain,
            workers,
            upstream_ca_file,
            limits,
            upstream_timeouts,
            preserve_host,
            trusted_proxies: crate::proxy::forwarded::TrustedProxies::new(trusted),
        }
    }
}

use crate::settings::{Key, Kind};

/// The keys of `tls`, as `Reader::tls` takes them.
pub const TLS_KEYS: &[Key] = &[
    Key::new(
        "listen",
        Kind::Address,
        "Where the HTTPS listener listens, beside the plain one (same routes; HTTP/2 or \
         HTTP/1.1 by ALPN).",
    )
    .default("0.0.0.0:3443"),
    Key::new(
        "cert",
        Kind::Text("path"),
        "PEM certificate chain, leaf first; read again on SIGHUP (renewals).",
    )
    .required(),
    Key::new(
        "key",
        Kind::Text("path"),
        "PEM private key; read again on SIGHUP.",
    )
    .required(),
];

/// The keys of `proxy`, as `Reader::proxy` takes them.
pub const PROXY_KEYS: &[Key] = &[
    Key::new(
        "preserve_host",
        Kind::Boolean,
        "Send the client's Host upstream instead of the upstream's (PaaS routers route by \
         Host: keep false for platform apps).",
    )
    .default("false"),
    Key::new(
        "connect_timeout",
        Kind::Duration,
        "Connecting to an upstream (TCP and TLS); then 502.",
    )
    .default("5s"),
    Key::new(
        "response_header_timeout",
        Kind::Duration,
        "From the request sent to the response's headers; then 504.",
    )
    .default("60s"),
    Key::new(
        "idle_timeout",
        Kind::Duration,
        "Longest silence inside a response body; then the response is cut off (WebSockets \
         are not bounded by it).",
    )
    .default("90s"),
    Key::new(
        "header_read_timeout",
        Kind::Duration,
        "A connection must send each request head (and a TLS handshake) within this.",
    )
    .default("10s"),
    Key::new(
        "max_header_bytes",
        Kind::Integer {
            min: 8192,
            max: 16 * 1024 * 1024,
        },
        "Largest request head accepted; larger gets 431.",
    )
    .default("65536"),
    Key::new(
        "max_connections",
        Kind::Integer {
            min: 1,
            max: 10_000_000,
        },
        "Open client connections at most; more wait in the listen backlog.",
    )
    .default("10000"),
    Key::new(
        "max_connections_per_ip",
        Kind::Integer {
            min: 1,
            max: 10_000_000,
        },
        "Open connections of one client IP (IPv6: its /64); more are closed at once.",
    )
    .default("512"),
    Key::new(
        "client_idle_timeout",
        Kind::Duration,
        "An HTTP/2 connection with no request in progress is closed after this.",
    )
    .default("60s"),
    Key::new(
        "request_body_timeout",
        Kind::Duration,
        "Longest silence inside a request body; then 408.",
    )
    .default("30s"),
    Key::new(
        "min_request_body_rate",
        Kind::Integer {
            min: 0,
            max: 1 << 40,
        },
        "Bytes per second a request body must average once request_body_timeout has \
         passed (0: not checked); slower gets 408.",
    )
    .default("1024"),
    Key::new(
        "drain_timeout",
        Kind::Duration,
        "At shutdown, how long in-flight requests may take to finish.",
    )
    .default("30s"),
    Key::new(
        "workers",
        Kind::Integer { min: 1, max: 1024 },
        "Proxy threads (default: one per CPU), each with its own event loop and upstream pool.",
    ),
    Key::new(
        "trusted_proxies",
        Kind::List(&Kind::Text("address or range")),
        "Load balancers in front (addresses or ranges such as 10.0.0.0/8): their \
         X-Forwarded-Proto/-Host are kept and the client IP is the rightmost untrusted \
         X-Forwarded-For entry.",
    ),
    Key::new(
        "upstream_ca_file",
        Kind::Text("path"),
        "PEM file of extra CA certificates trusted for https upstreams (the public web \
         roots are always trusted).",
    ),
];
