//! The gate's settings: the `gate` section (its own listener, its token, forward-auth and the
//! Sablier-compatible API), typed, and how it is read with the shared [`Reader`]. Reading
//! only: nothing here listens.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::settings::{Fields, Key, Kind, Reader, kind};

/// Longest session a hit may ask for (a longer one is a mistake, or an attempt to keep an
/// app up for good: that is what pins are for).
pub const MAX_SESSION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `gate`: the engine as the decision maker behind another proxy.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// A listener of its own for the gate's endpoints (`gate.listen`); they are served on
    /// the admin listener and under `admin.host` besides.
    pub listen: Option<SocketAddr>,
    /// What a caller outside `proxy.trusted_proxies` must send as a bearer token
    /// (`gate.token`); none: only trusted peers may call.
    pub token: Option<crate::secret::Secret>,
    /// `gate.forward_auth`; `None`: off.
    pub forward_auth: Option<ForwardAuth>,
    /// `gate.sablier`; `None`: off.
    pub sablier: Option<Sablier>,
}

impl Gate {
    /// Whether any endpoint is on.
    pub fn enabled(&self) -> bool {
        self.forward_auth.is_some() || self.sablier.is_some()
    }
}

/// `gate.forward_auth`: the endpoint another proxy asks before forwarding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardAuth {
    /// How long each hit keeps its app awake at least (`session`), for traffic the other
    /// proxy carries without asking again; zero: only the app's `max_idle`.
    pub session: Duration,
}

/// `gate.sablier`: the Sablier-compatible API's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sablier {
    /// Session of a request that gives no `session_duration`.
    pub session_duration: Duration,
    /// How long the blocking strategy waits when the request gives no `timeout`.
    pub blocking_timeout: Duration,
    /// How often the dynamic strategy's page reloads, when the request does not say.
    pub refresh_frequency: Duration,
    /// Whether the dynamic page lists each app's state, when the request does not say.
    pub show_details: bool,
}

impl Default for Sablier {
    fn default() -> Self {
        Sablier {
            session_duration: Duration::from_secs(300),
            blocking_timeout: Duration::from_secs(60),
            refresh_frequency: Duration::from_secs(5),
            show_details: true,
        }
    }
}

impl Reader<'_> {
    /// `gate`: its listener, token and endpoints. `trusted` tells whether
    /// `proxy.trusted_proxies` names anyone (else only the token lets callers in).
    pub(crate) fn gate(&mut self, value: &Value, path: &str, trusted: bool) -> Gate {
        let mut gate = Gate::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return gate;
        };
        if let Some((value, p)) = fields.take("listen") {
            gate.listen = self.socket_addr(value, &p);
        }
        gate.token = self.secret(&mut fields, "token", path);
        if let Some((value, p)) = fields.take("forward_auth")
            && let Some(mut section) = self.switch(value, &p)
        {
            let mut forward_auth = ForwardAuth::default();
            if let Some(session) = self.session(&mut section, "session") {
                forward_auth.session = session;
            }
            if self.enabled(&mut section) {
                gate.forward_auth = Some(forward_auth);
            }
            self.finish(section, &[]);
        }
        if let Some((value, p)) = fields.take("sablier")
            && let Some(mut section) = self.switch(value, &p)
        {
            let mut sablier = Sablier::default();
            if let Some(session) = self.session(&mut section, "session_duration") {
                sablier.session_duration = session;
            }
            if let Some((value, p)) = section.take("blocking_timeout")
                && let Some(timeout) = self.positive_duration(value, &p)
            {
                sablier.blocking_timeout = timeout;
            }
            if let Some((value, p)) = section.take("refresh_frequency")
                && let Some(every) = self.positive_duration(value, &p)
            {
                sablier.refresh_frequency = every;
            }
            if let Some((value, p)) = section.take("show_details") {
                match value {
                    Value::Bool(b) => sablier.show_details = *b,
                    other => {
                        self.error(&p, format!("expected true or false, found {}", kind(other)))
                    }
                }
            }
            if self.enabled(&mut section) {
                gate.sablier = Some(sablier);
            }
            self.finish(section, &[]);
        }
        if gate.enabled() && !trusted && gate.token.is_none() {
            self.error(
                path,
                "nobody may call the gate: list the proxies that call it in \
                 proxy.trusted_proxies, or set gate.token",
            );
        }
        if let Some(listen) = gate.listen
            && !gate.enabled()
        {
            self.error(
                &format!("{path}.listen"),
                format!("{listen}: nothing to serve there (enable forward_auth or sablier)"),
            );
        }
        self.finish(fields, &[]);
        gate
    }

    /// An endpoint's section: `true`/`false`, or a mapping (enabled unless it says
    /// `enabled: false`). `None` for `false` and for a wrong shape (reported).
    fn switch<'v>(&mut self, value: &'v Value, path: &str) -> Option<Fields<'v>> {
        static ON: std::sync::LazyLock<serde_json::Map<String, Value>> =
            std::sync::LazyLock::new(serde_json::Map::new);
        match value {
            Value::Bool(true) => Some(Fields::new(&ON, path)),
            Value::Bool(false) | Value::Null => None,
            other => self.mapping(other, path),
        }
    }

    /// `enabled` of an endpoint's mapping (default true: writing the section turns it on).
    fn enabled(&mut self, fields: &mut Fields<'_>) -> bool {
        match fields.take("enabled") {
            None => true,
            Some((Value::Bool(b), _)) => *b,
            Some((other, p)) => {
                self.error(&p, format!("expected true or false, found {}", kind(other)));
                false
            }
        }
    }

    /// A session length: a duration up to [`MAX_SESSION`].
    fn session(&mut self, fields: &mut Fields<'_>, key: &str) -> Option<Duration> {
        let (value, p) = fields.take(key)?;
        let session = self.duration(value, &p)?;
        if session > MAX_SESSION {
            self.error(&p, "at most 7d (pin an app to keep it up longer)");
            return None;
        }
        Some(session)
    }
}

/// The keys of `gate.forward_auth`.
pub const FORWARD_AUTH_KEYS: &[Key] = &[
    Key::new(
        "enabled",
        Kind::Boolean,
        "Serve /forward-auth (and its /nginx, /page and /keepalive variants).",
    )
    .default("true when the section is written"),
    Key::new(
        "session",
        Kind::Duration,
        "Each hit also keeps its app awake at least this long (long downloads and \
         WebSockets that the other proxy carries without asking again); a request's \
         `?session=` overrides it.",
    )
    .default("0s"),
];

/// The keys of `gate.sablier`.
pub const SABLIER_KEYS: &[Key] = &[
    Key::new(
        "enabled",
        Kind::Boolean,
        "Serve the Sablier-compatible API (/api/strategies/dynamic, blocking, poke).",
    )
    .default("true when the section is written"),
    Key::new(
        "session_duration",
        Kind::Duration,
        "Session of a request that gives no session_duration.",
    )
    .default("5m"),
    Key::new(
        "blocking_timeout",
        Kind::Duration,
        "How long the blocking strategy waits when the request gives no timeout.",
    )
    .default("1m"),
    Key::new(
        "refresh_frequency",
        Kind::Duration,
        "How often the dynamic strategy's page reloads when the request does not say.",
    )
    .default("5s"),
    Key::new(
        "show_details",
        Kind::Boolean,
        "Whether the dynamic strategy's page lists each app's state when the request \
         does not say.",
    )
    .default("true"),
];

/// The keys of `gate`, as `Reader::gate` takes them.
pub const GATE_KEYS: &[Key] = &[
    Key::new(
        "listen",
        Kind::Address,
        "A listener of its own for the gate's endpoints (they are always served on the \
         admin listener and under admin.host too).",
    ),
    Key::new(
        "token",
        Kind::Secret,
        "Bearer token a caller outside proxy.trusted_proxies must send; without one, only \
         trusted peers may call.",
    ),
    Key::new(
        "forward_auth",
        Kind::Either(&[Kind::Boolean, Kind::Section(&[FORWARD_AUTH_KEYS])]),
        "The forward-auth endpoint for nginx (auth_request), Caddy (forward_auth) and \
         Traefik (forwardAuth).",
    ),
    Key::new(
        "sablier",
        Kind::Either(&[Kind::Boolean, Kind::Section(&[SABLIER_KEYS])]),
        "The Sablier-compatible API, for Sablier's reverse-proxy plugins.",
    ),
];
