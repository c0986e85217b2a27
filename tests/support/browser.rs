//! Headless Chromium driven through ChromeDriver's WebDriver API, for the tests that look
//! at pages in a real browser (`tests/browser.rs`, `tests/pages.rs`; included with
//! `#[path]`). Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`);
//! a test fails, never skips, when they are missing.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Fails, saying how to get them, unless Chromium and ChromeDriver are installed.
pub fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "missing {}: the browser test needs headless Chromium and ChromeDriver \
         (Debian packages chromium and chromium-driver); run ./scripts/test.sh, which installs them",
        missing.join(" and ")
    );
}

/// A ChromeDriver process and, once created, its session (one headless Chromium). Dropping
/// it ends the session, then ChromeDriver, then any Chromium process still there, also when
/// the test fails half-way.
pub struct Browser {
    http: reqwest::Client,
    driver: Child,
    addr: SocketAddr,
    session: Option<String>,
    /// The test's directory: Chromium's profile and temporary files.
    dir: PathBuf,
}

impl Browser {
    /// ChromeDriver and a session, with everything Chromium writes kept in `dir` (keep its
    /// tag short: Chromium's socket path under it must fit in 108 bytes).
    pub async fn start(dir: &TempDir) -> Browser {
        Browser::start_with(dir, &[], json!({})).await
    }

    /// [`Browser::start`] with extra Chromium arguments (`--lang=fr`) and preferences
    /// (`{"intl.accept_languages": "fr"}`).
    pub async fn start_with(dir: &TempDir, extra_args: &[&str], prefs: Value) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port for ChromeDriver")
            .port();
        // Chromium's own temporary files go in the test's directory too, removed at the end.
        let tmp = dir.path("tmp");
        std::fs::create_dir_all(&tmp).expect("create the browser's temp dir");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client for ChromeDriver");
        let mut browser = Browser {
            http,
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: None,
            dir: dir.0.clone(),
        };
        browser.wait_ready().await;
        browser.open_session(extra_args, prefs).await;
        browser
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.driver.try_wait().expect("ChromeDriver's status") {
                panic!("ChromeDriver exited at start: {status}");
            }
            let answer = self
                .http
                .get(format!("http://{}/status", self.addr))
                .send()
                .await;
            if let Ok(answer) = answer
                && let Ok(body) = answer.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ChromeDriver was not ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn open_session(&mut self, extra_args: &[&str], prefs: Value) {
        let profile = format!("--user-data-dir={}", self.dir.join("user-data").display());
        // Only loopback is reachable: no background traffic to Google's services.
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &profile,
            "--window-size=1280,800",
        ];
        args.extend_from_slice(extra_args);
        let mut options = json!({"binary": CHROMIUM, "args": args});
        if prefs.as_object().is_some_and(|prefs| !prefs.is_empty()) {
            options["prefs"] = prefs;
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": options,
                }
            }
        });
        let answer = self
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|error| panic!("no Chromium session: {error}"));
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {answer}"));
        self.session = Some(id.to_owned());
    }

    /// One WebDriver command; its `value`, or the error it answered.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("http://{}{path}", self.addr));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .map_err(|error| format!("{method} {path}: {error}"))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|error| format!("{method} {path}: {status}, not JSON: {error}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {body}"));
        }
        Ok(body["value"].clone())
    }

    /// A command on the session.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let session = self.session.as_deref().expect("an open session");
        self.call(method, &format!("/session/{session}{path}"), body)
            .await
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.command(reqwest::Method::GET, path, None).await
    }

    pub async fn text(&self, path: &str) -> Result<String, String> {
        let value = self.get(path).await?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("GET {path}: not a string: {value}"))
    }

    /// Loads `url`; returns once the page has loaded.
    pub async fn navigate(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|error| panic!("navigating to {url}: {error}"));
    }

    /// The HTTP status of the current document, as the browser received it.
    pub async fn response_status(&self) -> Result<Value, String> {
        let script = "const [entry] = performance.getEntriesByType('navigation'); \
                      return entry ? entry.responseStatus : null;";
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, selector: &str) -> Result<String, String> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("{selector}: no element id in {found}"))
    }

    /// Types into an element.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector).await.expect("element to type into");
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap_or_else(|error| panic!("typing into {selector}: {error}"));
    }

    /// Clicks an element.
    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await.expect("element to click");
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|error| panic!("clicking {selector}: {error}"));
    }

    /// Resizes the window (a phone's screen, say).
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .unwrap_or_else(|error| panic!("resizing: {error}"));
    }

    /// The page source once `ready` holds for it (a click's navigation may still be under
    /// way when the click returns).
    pub async fn source_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.text("/source").await.unwrap_or_default();
            if ready(&source) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within 20 s; page: {source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible page as PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self
            .text("/screenshot")
            .await
            .unwrap_or_else(|error| panic!("screenshot: {error}"));
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the screenshot is base64")
    }

    /// Ends the session without the async client, so that it also works while a failed test
    /// unwinds: ChromeDriver then quits its Chromium.
    fn delete_session(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Length: 0\r\n\r\n",
            self.addr
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // ChromeDriver answers once Chromium has quit, and may keep the connection open:
        // read the head and the body's Content-Length, not until the end of the stream.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while !complete_http_answer(&answer) {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    }

    /// ChromeDriver's descendants (Chromium and its helpers), and any process whose command
    /// line names the test's directory (Chromium's detached crash handler).
    fn browser_processes(&self) -> Vec<i32> {
        let dir = self.dir.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        // (pid, parent pid, whether its command line names the directory)
        let table: Vec<(i32, i32, bool)> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // After the command name in parentheses: state, then parent pid.
                let (_, rest) = stat.rsplit_once(')')?;
                let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let names_dir = String::from_utf8_lossy(&cmdline).contains(&dir);
                Some((pid, parent, names_dir))
            })
            .collect();
        let mut found: Vec<i32> = table
            .iter()
            .filter(|(_, _, names_dir)| *names_dir)
            .map(|(pid, _, _)| *pid)
            .collect();
        let Ok(driver) = i32::try_from(self.driver.id()) else {
            return found;
        };
        let mut parents = vec![driver];
        while let Some(parent) = parents.pop() {
            for &(pid, ppid, _) in &table {
                if ppid == parent && !found.contains(&pid) {
                    found.push(pid);
                    parents.push(pid);
                }
            }
        }
        found
    }
}

impl Drop for Browser {
    #[expect(
        clippy::disallowed_methods,
        reason = "Drop cannot await; it also runs while a failed test unwinds"
    )]
    fn drop(&mut self) {
        self.delete_session();
        // Whatever the session left (nothing, normally: ChromeDriver quits Chromium with it),
        // listed before ChromeDriver goes and its children are orphaned.
        let survivors = self.browser_processes();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        for &pid in &survivors {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Gone (within 5 s) before the test's directory is removed.
        for _ in 0..250 {
            if !survivors
                .iter()
                .any(|&pid| crate::support::process_running(pid))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `bytes` hold a whole HTTP/1.1 answer with a `Content-Length` body.
fn complete_http_answer(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

/// Where CI collects files to keep: `target/artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}
