//! Test support: the whole engine on 127.0.0.1:0 in-process, the real `paastis` binary, a
//! plain HTTP client, and the Python upstream app (`upstream.py`) run by the `process`
//! provider. Nothing here mocks the engine's own traits.
#![allow(dead_code)]

pub mod bench;
pub mod fakes;
pub mod otlp;
pub mod podman;
pub mod postgres;
pub mod redis;
pub mod wrk;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use paastis::config::{Overrides, load_str};
use paastis::events::{Event, EventKind};
use paastis::lifecycle::Lifecycle;
use paastis::model::State;
use paastis::{Engine, Listeners};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Each engine its own history, unless the test names a database.
fn in_memory(mut config: paastis::Config) -> paastis::Config {
    if config.database_url.expose() == paastis::config::DEFAULT_DATABASE_URL {
        config.database_url = paastis::secret::Secret::new("sqlite::memory:");
    }
    config
}

/// Path of the upstream test app.
pub fn upstream_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/upstream.py")
}

/// A process app running the upstream script (with `exec`, so the app's process is Python).
pub fn upstream_command() -> String {
    format!("exec python3 {}", upstream_script().display())
}

/// A `providers:` section: one `process` provider, `local`, running the upstream script for
/// each app (named by `APP_NAME`, so it answers `hello from <name>`), each with its `extra`
/// keys (YAML flow-mapping entries such as `max_idle: 30m`, or empty).
pub fn local_apps(apps: &[(&str, &str)]) -> String {
    let mut yaml = String::from("providers:\n  - id: local\n    type: process\n    apps:\n");
    for (name, extra) in apps {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        yaml.push_str(&format!(
            "      - {{name: {name}, command: \"{}\", env: {{APP_NAME: {name}}}{extra}}}\n",
            upstream_command()
        ));
    }
    yaml
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "paastis-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The engine, in-process, serving on 127.0.0.1:0.
pub struct TestEngine {
    pub addr: SocketAddr,
    /// The admin API's listener.
    pub admin_addr: SocketAddr,
    /// The TLS listener, when the config has `tls`.
    pub tls_addr: Option<SocketAddr>,
    /// The gate's own listener, when the config has `gate.listen` (bound on port 0).
    pub gate_addr: Option<SocketAddr>,
    pub lifecycle: Arc<Lifecycle>,
    /// The other spaces' ids and lifecycles (`spaces:`).
    pub spaces: Vec<(String, Arc<Lifecycle>)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestEngine {
    pub async fn start(yaml: &str) -> TestEngine {
        TestEngine::start_with_env(yaml, &HashMap::new()).await
    }

    /// [`TestEngine::start`] with these environment variables (for `${VAR}`, `PAASTIS_*`
    /// and the original engine's variables).
    pub async fn start_with_env(yaml: &str, env: &HashMap<String, String>) -> TestEngine {
        let loaded = load_str(yaml, env, &Overrides::default())
            .unwrap_or_else(|errors| panic!("test config is invalid: {errors}"));
        TestEngine::start_config(in_memory(loaded.config), None).await
    }

    /// An engine whose configuration is the file `path`, read again on reloads (the file
    /// watched unless it says `reload.watch: false`).
    pub async fn start_file(path: &Path, env: &HashMap<String, String>) -> TestEngine {
        let file = path.to_owned();
        let env = env.clone();
        let load: paastis::engine::LoadFn = Arc::new(move |text: Option<&str>| {
            let loaded = match text {
                Some(text) => load_str(text, &env, &Overrides::default()),
                None => paastis::config::load(&file, &env, &Overrides::default()),
            }?;
            Ok(in_memory(loaded.config))
        });
        let source = paastis::engine::ConfigSource {
            load: Arc::clone(&load),
            file: Some(path.to_owned()),
        };
        let config = load(None).unwrap_or_else(|errors| panic!("test config is invalid: {errors}"));
        TestEngine::start_config(config, Some(source)).await
    }

    async fn start_config(
        config: paastis::Config,
        source: Option<paastis::engine::ConfigSource>,
    ) -> TestEngine {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tls = match config.tls {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind tls")),
            None => None,
        };
        let tls_addr = tls.as_ref().map(|l| l.local_addr().expect("tls addr"));
        let gate = match config.gate.listen {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind gate")),
            None => None,
        };
        let gate_addr = gate.as_ref().map(|l| l.local_addr().expect("gate addr"));
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let admin_addr = admin.local_addr().expect("admin addr");
        let mut engine = Engine::start(config).await.expect("engine starts");
        if let Some(source) = source {
            engine = engine.with_source(source);
        }
        let lifecycle = Arc::clone(engine.lifecycle());
        let spaces = engine.spaces();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = engine
                .serve(
                    Listeners {
                        proxy: listener,
                        tls,
                        admin: Some(admin),
                        gate,
                    },
                    async move {
                        let _ = rx.await;
                    },
                )
                .await;
            if let Err(error) = served {
                panic!("engine failed: {error}");
            }
        });
        TestEngine {
            addr,
            admin_addr,
            tls_addr,
            gate_addr,
            lifecycle,
            spaces,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful stop: drains requests and stops the apps the engine started.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    pub fn state(&self, app: &str) -> State {
        self.app(app).state()
    }

    pub fn app(&self, name: &str) -> Arc<paastis::lifecycle::App> {
        self.lifecycle
            .apps()
            .into_iter()
            .find(|app| &*app.key.name == name)
            .unwrap_or_else(|| panic!("no app {name}"))
    }

    pub fn events(&self) -> Vec<Event> {
        self.lifecycle.events().recent()
    }

    /// Events of one kind for one app.
    pub fn count(&self, app: &str, matches: impl Fn(&EventKind) -> bool) -> usize {
        self.events()
            .iter()
            .filter(|event| &*event.app.name == app && matches(&event.kind))
            .count()
    }

    /// Waits until `app` is in `state`, or panics after `within`.
    pub async fn wait_state(&self, app: &str, state: State, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.state(app) == state {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{app} is {} after {within:?}, expected {state}",
                    self.state(app)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A plain HTTP/1.1 client.
#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl TestClient {
    pub fn new(addr: SocketAddr) -> TestClient {
        TestClient {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            addr,
        }
    }

    /// The process id of the upstream app behind `host` (its `/pid` route).
    pub async fn pid(&self, host: &str) -> i32 {
        let answer = self.get(host, "/pid").await;
        answer
            .text()
            .parse()
            .unwrap_or_else(|_| panic!("{host}/pid answered {} {}", answer.status, answer.text()))
    }

    pub async fn get(&self, host: &str, path: &str) -> Answer {
        self.send("GET", host, path, &[], Bytes::new()).await
    }

    /// A GET that reports a failed exchange (connection refused, reset, cut body) instead of
    /// panicking, for tests that count failures.
    pub async fn try_get(&self, host: &str, path: &str) -> Result<Answer, String> {
        let request = Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("request");
        let response = self.client.request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// Sends raw bytes on a fresh connection and returns everything read until close (or 5 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The `paastis` binary, with no `PAASTIS_*` or log settings inherited, and an in-memory
/// database (tests that need a file set `PAASTIS_DATABASE__URL` again, or remove it).
pub fn paastis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paastis"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PAASTIS_") || name == "RUST_LOG" || name == "LOG_LEVEL" {
            command.env_remove(name);
        }
    }
    command.env("PAASTIS_DATABASE__URL", "sqlite::memory:");
    // Every engine its own admin port (the default, 3001, is one for the whole machine).
    command.env("PAASTIS_ADMIN__LISTEN", "127.0.0.1:0");
    command.kill_on_drop(true);
    command
}

/// `paastis check --config CONFIG` at trace level, as an operator runs it.
pub struct Checked {
    /// Its exit code.
    pub code: Option<i32>,
    /// Its stdout, then its stderr.
    pub output: String,
}

impl Checked {
    /// The line of its providers table for `id`.
    pub fn line(&self, id: &str) -> &str {
        let output = &self.output;
        output
            .lines()
            .find(|line| line.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no {id} line in {output}"))
    }
}

pub async fn check(config: &Path) -> Checked {
    let out = paastis()
        .args(["check", "--config", &config.to_string_lossy()])
        .env("LOG_LEVEL", "trace")
        .output()
        .await
        .expect("run paastis check");
    Checked {
        code: out.status.code(),
        output: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

/// Fails when any of `secrets` shows in any of `outputs`.
pub fn assert_no_secret(outputs: &[&str], secrets: &[&str]) {
    for output in outputs {
        for secret in secrets {
            assert!(!output.contains(secret), "{secret} leaked into:\n{output}");
        }
    }
}

/// A running `paastis serve` with its stderr collected.
pub struct Served {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub logs: Arc<Mutex<String>>,
}

pub async fn serve(config: &std::path::Path, env: &[(&str, &str)]) -> Served {
    let mut child = paastis()
        .args([
            "serve",
            "--config",
            &config.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ])
        .envs(env.iter().copied())
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Stopped by `Served`'s drop with SIGTERM instead: a SIGKILL would leave its apps
        // running.
        .kill_on_drop(false)
        .spawn()
        .expect("spawn paastis");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stderr = child.stderr.take().expect("stderr");
    let collected = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = json.get("addr").and_then(|a| a.as_str())
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.to_owned());
            }
            let mut logs = collected.lock().unwrap_or_else(|p| p.into_inner());
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("paastis printed its address")
        .expect("address");
    Served {
        child,
        addr: addr.parse().expect("socket address"),
        logs,
    }
}

impl Served {
    /// Everything logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops the engine as an operator would (SIGTERM: it drains and stops its apps, so no
    /// app process outlives the test), killing it only if it is still there after 20 s.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl Drop for Served {
    /// A test that ends early (a failed assertion), or without stopping its engine, still
    /// stops it, and the engine stops its apps on its way out (after the test's process is
    /// gone, if it comes to that: its logs then go nowhere, which it takes in its stride).
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .unwrap_or_else(|error| panic!("cannot signal {pid}: {error}"));
}

/// Whether a process is running (a zombie waiting to be reaped does not count).
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3, after the command name in parentheses, is the state.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Runs curl (silent, 20 s at most) and returns its stdout and stderr; panics if it fails.
pub async fn curl(args: &[&str]) -> (String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a run of the binary left.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit code (none: killed by a signal).
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl From<std::process::Output> for Outcome {
    fn from(output: std::process::Output) -> Outcome {
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Outcome {
    /// Its stdout as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The value of the stdout line `key: value`; panics when there is none.
    pub fn line(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}:")))
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{key}:` line in: {}", self.stdout))
    }
}
