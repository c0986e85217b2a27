//! Real reverse proxies in front of the engine: nginx (`auth_request` + `error_page 401`) and
//! Caddy (`forward_auth`), each run as a child process on a free 127.0.0.1 port, with its own
//! temporary directory for its configuration, pid, logs and caches, stopped on drop. Their
//! configurations are the ones the book shows (docs/src/behind-a-proxy.md).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::TempDir;

/// Where Debian installs nginx (package `nginx`).
pub const NGINX: &str = "/usr/sbin/nginx";

/// Where Debian installs Caddy (package `caddy`).
pub const CADDY: &str = "/usr/bin/caddy";

/// Which proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    /// Its binary.
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => NGINX,
            Kind::Caddy => CADDY,
        }
    }

    /// Whether its binary is installed; says why not when it is missing.
    pub fn available(self) -> bool {
        let found = Path::new(self.binary()).exists();
        if !found {
            eprintln!(
                "skipped: {} is not installed (Debian package {})",
                self.binary(),
                self.package()
            );
        }
        found
    }

    fn package(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }
}

/// What the proxy is told about the engine.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The engine's listener serving the gate (its admin listener in these tests).
    pub gate: SocketAddr,
    /// Appended to the forward-auth path, e.g. `?session=4s`; empty for none.
    pub query: String,
    /// Sent as `Authorization: Bearer <token>` to the gate.
    pub token: Option<String>,
    /// Forward to this address instead of the upstream the gate names
    /// (`X-Paastis-Upstream`).
    pub upstream: Option<SocketAddr>,
}

impl Setup {
    /// The gate at `gate`, no query, no token, the upstream the gate names.
    pub fn new(gate: SocketAddr) -> Setup {
        Setup {
            gate,
            query: String::new(),
            token: None,
            upstream: None,
        }
    }

    pub fn query(mut self, query: &str) -> Setup {
        self.query = query.to_owned();
        self
    }

    pub fn token(mut self, token: &str) -> Setup {
        self.token = Some(token.to_owned());
        self
    }

    pub fn upstream(mut self, upstream: SocketAddr) -> Setup {
        self.upstream = Some(upstream);
        self
    }
}

/// A running proxy.
pub struct Proxy {
    pub kind: Kind,
    /// Where clients reach it.
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Proxy {
    /// Starts `kind` in front of the engine as `setup` says; panics when it does not start.
    pub async fn start(kind: Kind, setup: &Setup) -> Proxy {
        // A free port may be taken between finding it and the proxy binding it: try again.
        let mut last = String::new();
        for _ in 0..5 {
            match Proxy::try_start(kind, setup).await {
                Ok(proxy) => return proxy,
                Err(error) if error.contains("in use") => last = error,
                Err(error) => panic!("{kind:?} did not start: {error}"),
            }
        }
        panic!("{kind:?} did not start: {last}");
    }

    async fn try_start(kind: Kind, setup: &Setup) -> Result<Proxy, String> {
        let dir = TempDir::new(match kind {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        });
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.path("proxy.log");
        let mut command = match kind {
            Kind::Nginx => {
                let config = nginx_config(&dir, port, setup);
                let file = dir.path("nginx.conf");
                std::fs::write(&file, config).map_err(|e| e.to_string())?;
                // Run as root, nginx's workers run as `nobody`: they must be able to write
                // their temporary files.
                let tmp = dir.path("tmp");
                std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
                set_mode(&tmp, 0o777);
                let mut command = Command::new(NGINX);
                command
                    .arg("-p")
                    .arg(&dir.0)
                    .arg("-c")
                    .arg(&file)
                    .arg("-e")
                    .arg(dir.path("error.log"))
                    .args(["-g", "daemon off;"]);
                command
            }
            Kind::Caddy => {
                let config = caddy_config(&dir, port, setup);
                let file = dir.path("Caddyfile");
                std::fs::write(&file, config).map_err(|e| e.to_string())?;
                let mut command = Command::new(CADDY);
                command
                    .arg("run")
                    .arg("--config")
                    .arg(&file)
                    .args(["--adapter", "caddyfile"])
                    .env("HOME", &dir.0)
                    .env("XDG_CONFIG_HOME", dir.path("config"))
                    .env("XDG_DATA_HOME", dir.path("data"));
                // The Caddyfile reads the token from the environment.
                if let Some(token) = &setup.token {
                    command.env("PAASTIS_GATE_TOKEN", token);
                }
                command
            }
        };
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: nginx's workers are stopped with their master.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", kind.binary()))?;
        let mut proxy = Proxy {
            kind,
            addr,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(format!("exited ({status}): {}", proxy.logs()));
            }
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
            {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                return Err(format!("not listening on {addr}: {}", proxy.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its output and logs so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["proxy.log", "error.log"] {
            if let Ok(content) = std::fs::read_to_string(self.dir.path(name)) {
                text.push_str(&content);
            }
        }
        text
    }

    /// Its URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    #[expect(
        clippy::disallowed_methods,
        reason = "Drop cannot await; it also runs while a failed test unwinds"
    )]
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // nginx: TERM is its fast shutdown (master and workers); Caddy stops on TERM too.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        // Gone within 10 s, else killed.
        for _ in 0..500 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of its own process group.
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// The gate's settings for nginx: a read timeout above the wake timeout (a program is held
/// while the app starts), no body, the original URL and method, the client, the token.
fn nginx_gate_headers(setup: &Setup) -> String {
    let mut text = String::from(
        "            proxy_read_timeout 180s;\n\
         \x20           proxy_pass_request_body off;\n\
         \x20           proxy_set_header Content-Length \"\";\n\
         \x20           proxy_set_header X-Original-URL $scheme://$host$request_uri;\n\
         \x20           proxy_set_header X-Forwarded-Method $request_method;\n\
         \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
    );
    if let Some(token) = &setup.token {
        text.push_str(&format!(
            "            proxy_set_header Authorization \"Bearer {token}\";\n"
        ));
    }
    text
}

/// nginx: every request asks the gate first (`auth_request`); a 2xx goes on to the app, any
/// other answer (the gate's `/nginx` form turns them all into 401) is replaced by the gate's
/// own answer from `/forward-auth/page` (the waiting page, a 404, a 403...).
pub fn nginx_config(dir: &TempDir, port: u16, setup: &Setup) -> String {
    let root = dir.0.display();
    let gate = setup.gate;
    let query = &setup.query;
    let headers = nginx_gate_headers(setup);
    let upstream = match setup.upstream {
        Some(addr) => format!("http://{addr}"),
        None => "$paastis_upstream".to_owned(),
    };
    format!(
        r#"worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;

    server {{
        listen 127.0.0.1:{port};
        server_name _;

        location / {{
            auth_request /_paastis;
            auth_request_set $paastis_upstream $upstream_http_x_paastis_upstream;
            error_page 401 = @paastis;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_pass {upstream};
        }}

        location = /_paastis {{
            internal;
            proxy_pass http://{gate}/forward-auth/nginx{query};
{headers}        }}

        location @paastis {{
            rewrite ^ /forward-auth/page? break;
            proxy_pass http://{gate};
{headers}        }}
    }}
}}
"#
    )
}

/// Caddy: `forward_auth` asks the gate; a 2xx goes on to `reverse_proxy` (the upstream the
/// gate names, without its scheme, or a fixed one), anything else is the client's answer.
/// The token, if any, comes from Caddy's environment (`PAASTIS_GATE_TOKEN`).
pub fn caddy_config(dir: &TempDir, port: u16, setup: &Setup) -> String {
    let root = dir.0.display();
    let gate = setup.gate;
    let query = &setup.query;
    let token = match &setup.token {
        Some(_) => "\t\theader_up Authorization \"Bearer {$PAASTIS_GATE_TOKEN}\"\n".to_owned(),
        None => String::new(),
    };
    let upstream = match setup.upstream {
        Some(addr) => format!("\treverse_proxy {addr}\n"),
        None => "\tmap {http.request.header.X-Paastis-Upstream} {paastis_upstream} {\n\
                 \t\t~^https?://(.+)$ \"${1}\"\n\
                 \t}\n\
                 \treverse_proxy {paastis_upstream}\n"
            .to_owned(),
    };
    format!(
        "{{\n\
         \tadmin off\n\
         \tauto_https off\n\
         \tstorage file_system {root}/data\n\
         }}\n\
         \n\
         http://:{port} {{\n\
         \tbind 127.0.0.1\n\
         \tforward_auth {gate} {{\n\
         \t\turi /forward-auth{query}\n\
         \t\tcopy_headers X-Paastis-Upstream\n\
         {token}\
         \t}}\n\
         {upstream}\
         }}\n"
    )
}
