//! A throwaway `redis-server` on a free loopback port, started by the test (no persistence,
//! so a restart comes back empty, as a Redis without disk would), stopped on drop. It can be
//! killed and started again on the same port, to test what the engine does meanwhile.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running (or stopped, between `kill` and `start`) Redis server.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Extra `redis-server` arguments (e.g. `--requirepass`).
    extra: Vec<String>,
    /// Whether the port speaks TLS only (the suite's `localhost` certificate), as hosted
    /// Redis add-ons do.
    tls: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[]).await
    }

    /// [`RedisServer::start`] with extra `redis-server` arguments.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        let port = free_port().await;
        let mut server = RedisServer {
            port,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            tls: false,
            child: None,
        };
        server.resume().await;
        server
    }

    /// A server that speaks TLS only, with the suite's certificate for `localhost` (signed
    /// by tests/support/tls/ca.pem, which no system trusts: a self-signed one, in effect).
    pub async fn start_tls() -> RedisServer {
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tls");
        let port = free_port().await;
        let mut server = RedisServer {
            port,
            extra: vec![
                "--tls-cert-file".to_owned(),
                format!("{tls}/localhost.pem"),
                "--tls-key-file".to_owned(),
                format!("{tls}/localhost.key"),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ],
            tls: true,
            child: None,
        };
        server.resume().await;
        server
    }

    /// A server that is not running yet, on a free port (see [`RedisServer::resume`]).
    pub async fn not_started() -> RedisServer {
        RedisServer {
            port: free_port().await,
            extra: Vec::new(),
            tls: false,
            child: None,
        }
    }

    /// `redis://127.0.0.1:<port>` (`rediss://localhost:<port>` for a TLS server).
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}", self.port)
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// Starts (again) on the same port, empty, and waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        // A TLS server listens with TLS on the port, and on no plain one.
        let ports: &[&str] = if self.tls {
            &["--port", "0", "--tls-port", &port]
        } else {
            &["--port", &port]
        };
        let child = Command::new("redis-server")
            .args(ports)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            // Up once it answers (NOAUTH counts: it is there).
            if let Ok(mut conn) = self.connection().await {
                match redis::cmd("PING").query_async::<String>(&mut conn).await {
                    Ok(_) => return,
                    Err(error) if error.to_string().contains("NOAUTH") => return,
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Kills the server at once (SIGKILL): connections drop, data is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
        // Until the port refuses connections.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A plain connection for the test's own checks (over TLS for a TLS server, trusting
    /// the suite's CA).
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = if self.tls {
            let ca = std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/tls/ca.pem"
            ))?;
            redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            )?
        } else {
            redis::Client::open(self.url())?
        };
        client.get_multiplexed_async_connection().await
    }

    /// Every key in the server (the test's own server: it holds only what the engines
    /// wrote), found with SCAN.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.connection().await.expect("connect to the test Redis");
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys
    }

    /// The value of a string key.
    pub async fn get(&self, key: &str) -> Option<String> {
        let mut conn = self.connection().await.expect("connect to the test Redis");
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("GET")
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}
