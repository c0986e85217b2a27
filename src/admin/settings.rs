//! The admin API's settings: the `admin` section (listener, token, metrics access, the
//! original engine's system API), typed, and how it is read with the shared [`Reader`].
//! Reading only: nothing here listens.

use std::net::SocketAddr;

use serde_json::Value;

use crate::settings::{Reader, kind};

/// `admin`: the admin API, dashboard and metrics listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Where it listens (`admin.listen`, default `127.0.0.1:3001`).
    pub listen: SocketAddr,
    /// Bearer token every API call must carry (`admin.token`, or `PAASTIS_ADMIN_TOKEN`);
    /// none: open, which only a loopback `listen` allows.
    pub token: Option<crate::secret::Secret>,
    /// Whether `/metrics` needs the token too (`admin.metrics_auth`).
    pub metrics_auth: bool,
    /// The original engine's header-routed system API on the proxy port, with its token
    /// (`admin.system_api`); `None`: off.
    pub system_api: Option<crate::secret::Secret>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            token: None,
            metrics_auth: false,
            system_api: None,
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
        if let Some(listen) = fields
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
        {
            admin.listen = listen;
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
        if admin.token.is_none() && !admin.listen.ip().is_loopback() {
            self.error(
                &listen_path,
                format!(
                    "{} is not a loopback address: set admin.token (or PAASTIS_ADMIN_TOKEN), \
                     the admin API must not be open to the network without one",
                    admin.listen
                ),
            );
        }
        self.finish(fields, &[]);
        admin
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

/// The keys of `admin`, as `Reader::admin` takes them.
pub const ADMIN_KEYS: &[Key] = &[
    Key::new(
        "listen",
        Kind::Address,
        "Where the admin API, dashboard and /metrics listen.",
    )
    .default("127.0.0.1:3001"),
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
];
