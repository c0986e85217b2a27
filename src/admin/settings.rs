//! The admin API's settings: the `admin` section (listener, the proxy's host names it
//! answers, token, metrics access, the original engine's system API, the live event
//! stream), typed, and how it is read with the shared [`Reader`].
//! Reading only: nothing here listens.

use std::net::SocketAddr;

use serde_json::Value;

use crate::settings::{Reader, kind};

/// `admin`: the admin API, dashboard and metrics listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Where it listens (`admin.listen`, default `127.0.0.1:3001`); `None`: no listener of
    /// its own (`admin.listen: off`, e.g. on a PaaS that routes one port).
    pub listen: Option<SocketAddr>,
    /// Host names whose requests on the proxy listener(s) the admin router answers instead
    /// of an app (`admin.host`): lowercased, without port or trailing dot.
    pub hosts: Vec<String>,
    /// Bearer token every API call must carry (`admin.token`, or `PAASTIS_ADMIN_TOKEN`);
    /// none: open, which only a loopback `listen` allows.
    pub token: Option<crate::secret::Secret>,
    /// Whether `/metrics` needs the token too (`admin.metrics_auth`).
    pub metrics_auth: bool,
    /// The original engine's header-routed system API on the proxy port, with its token
    /// (`admin.system_api`); `None`: off.
    pub system_api: Option<crate::secret::Secret>,
    /// The live event stream (`admin.events_stream`).
    pub events_stream: EventsStream,
}

/// `admin.events_stream`: the live event stream's heartbeat and per-client buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsStream {
    /// How often an idle stream gets a comment line (so proxies and clients know it is
    /// alive); also how long a client whose buffer is full may take no event before it is
    /// dropped (`admin.events_stream.heartbeat`, default 15 s).
    pub heartbeat: std::time::Duration,
    /// Events waiting per client, at most (`admin.events_stream.buffer`, default 256).
    pub buffer: usize,
}

/// The default `admin.events_stream.heartbeat`.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// The default `admin.events_stream.buffer`.
pub const DEFAULT_STREAM_BUFFER: usize = 256;

/// The largest `admin.events_stream.buffer`.
pub const MAX_STREAM_BUFFER: usize = 100_000;

impl Default for EventsStream {
    fn default() -> Self {
        EventsStream {
            heartbeat: DEFAULT_HEARTBEAT,
            buffer: DEFAULT_STREAM_BUFFER,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 3001))),
            hosts: Vec::new(),
            token: None,
            metrics_auth: false,
            system_api: None,
            events_stream: EventsStream::default(),
        }
    }
}

impl Reader<'_> {
    /// `admin`: the admin API's listener and token, and the original engine's system API.
    pub(crate) fn admin(&mut self, value: &Value, path: &str) -> Admin {
        let mut admin = Admin::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return admin;
        };
        let listen_path = format!("{path}.listen");
        match fields.take("listen") {
            None => {}
            Some((value, _)) if is_off(value) => admin.listen = None,
            Some((value, p)) => {
                if let Some(listen) = self.socket_addr(value, &p) {
                    admin.listen = Some(listen);
                }
            }
        }
        if let Some((value, p)) = fields.take("host") {
            admin.hosts = self.admin_hosts(value, &p);
        }
        admin.token = self.secret(&mut fields, "token", path);
        if admin.token.is_none()
            && let Some(token) = self.provenance.admin_token.clone()
        {
            admin.token = Some(token);
        }
        admin.metrics_auth = match fields.take("metrics_auth") {
            None => false,
            Some((Value::Bool(b), _)) => *b,
            Some((other, p)) => {
                self.error(&p, format!("expected true or false, found {}", kind(other)));
                false
            }
        };
        if let Some((value, system_path)) = fields.take("system_api")
            && let Some(mut system) = self.mapping(value, &system_path)
        {
            let enabled = match system.take("enabled") {
                None => false,
                Some((Value::Bool(b), _)) => *b,
                Some((other, p)) => {
                    self.error(&p, format!("expected true or false, found {}", kind(other)));
                    false
                }
            };
            let token = self.secret(&mut system, "token", &system_path);
            if enabled && token.is_none() {
                self.error(
                    &format!("{system_path}.token"),
                    "is required when the system API is enabled (or token_file)",
                );
            }
            self.finish(system, &[]);
            admin.system_api = token.filter(|_| enabled);
        }
        if let Some((value, p)) = fields.take("events_stream") {
            admin.events_stream = self.events_stream(value, &p);
        }
        if let Some(listen) = admin.listen
            && admin.token.is_none()
            && !listen.ip().is_loopback()
        {
            self.error(
                &listen_path,
                format!(
                    "{listen} is not a loopback address: set admin.token (or PAASTIS_ADMIN_TOKEN), \
                     the admin API must not be open to the network without one"
                ),
            );
        }
        self.finish(fields, &[]);
        admin
    }

    /// `admin.events_stream`: heartbeat and buffer of the live event stream.
    fn events_stream(&mut self, value: &Value, path: &str) -> EventsStream {
        let mut stream = EventsStream::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return stream;
        };
        if let Some((value, p)) = fields.take("heartbeat")
            && let Some(heartbeat) = self.positive_duration(value, &p)
        {
            stream.heartbeat = heartbeat;
        }
        if let Some((value, p)) = fields.take("buffer")
            && let Some(buffer) = self.count(value, &p, 1..=MAX_STREAM_BUFFER)
        {
            stream.buffer = buffer;
        }
        self.finish(fields, &[]);
        stream
    }

    /// `admin.host`: one host name or a list of them.
    fn admin_hosts(&mut self, value: &Value, path: &str) -> Vec<String> {
        let items: Vec<(&Value, String)> = match value {
            Value::Null => return Vec::new(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (item, format!("{path}[{index}]")))
                .collect(),
            single => vec![(single, path.to_owned())],
        };
        let mut hosts = Vec::new();
        for (item, item_path) in items {
            let Some(text) = self.string(item, &item_path) else {
                continue;
            };
            let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
            if !crate::settings::is_host_name(&host) {
                self.error(
                    &item_path,
                    format!("`{text}` is not a host name (no scheme, port or path)"),
                );
            } else if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }
}

/// `off` (or `false`): no admin listener.
fn is_off(value: &Value) -> bool {
    match value {
        Value::Bool(false) => true,
        Value::String(text) => {
            let text = text.trim();
            text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("false")
        }
        _ => false,
    }
}

use crate::settings::{Key, Kind};

/// The keys of `admin.system_api`, as `Reader::admin` takes them.
pub const SYSTEM_API_KEYS: &[Key] = &[
    Key::new(
        "enabled",
        Kind::Boolean,
        "Serve the original engine's header-routed system API on the proxy port.",
    )
    .default("false"),
    Key::new(
        "token",
        Kind::Secret,
        "Its token (PaastisProxySystemApiToken); required when enabled.",
    ),
];

/// The keys of `admin.events_stream`, as `Reader::events_stream` takes them.
pub const EVENTS_STREAM_KEYS: &[Key] = &[
    Key::new(
        "heartbeat",
        Kind::Duration,
        "How often an idle event stream (GET /api/v1/events/stream) gets a comment line; \
         a client whose buffer is full and that takes no event for this long is dropped.",
    )
    .default("15s"),
    Key::new(
        "buffer",
        Kind::Integer {
            min: 1,
            max: MAX_STREAM_BUFFER as u64,
        },
        "Events waiting per event stream client, at most: one that falls further behind is \
         dropped (it may reconnect with Last-Event-ID and miss nothing).",
    )
    .default("256"),
];

/// The keys of `admin`, as `Reader::admin` takes them.
pub const ADMIN_KEYS: &[Key] = &[
    Key::new(
        "listen",
        Kind::Either(&[Kind::Address, Kind::Enum(&["off"])]),
        "Where the admin API, dashboard and /metrics listen; `off`: no listener of their \
         own (serve them on the proxy's with `host`).",
    )
    .default("127.0.0.1:3001"),
    Key::new(
        "host",
        Kind::OneOrList(&Kind::Text("host name")),
        "Host name(s) whose requests on the proxy listener(s) the admin API, dashboard, \
         /metrics and health endpoints answer, never an app (for a platform that routes one \
         port); a token is required unless the proxy listens on loopback only.",
    ),
    Key::new(
        "token",
        Kind::Secret,
        "Bearer token every API call must carry (PAASTIS_ADMIN_TOKEN when not set); \
         without one the API is open, which only a loopback `listen` allows.",
    ),
    Key::new(
        "metrics_auth",
        Kind::Boolean,
        "Whether /metrics needs the token too.",
    )
    .default("false"),
    Key::new(
        "system_api",
        Kind::Section(&[SYSTEM_API_KEYS]),
        "The original engine's system API (GET /apps, DELETE /apps, GET /events of the \
         default space).",
    ),
    Key::new(
        "events_stream",
        Kind::Section(&[EVENTS_STREAM_KEYS]),
        "The live event stream (GET /api/v1/events/stream and the dashboard's live updates).",
    ),
];
