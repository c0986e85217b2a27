//! The waiting page in a real browser: headless Chromium, driven through ChromeDriver's
//! WebDriver API, opens a sleeping app, gets the waiting page, and ends up on the app's own
//! page without being told to navigate again (the page reloads itself until the app answers).
//! A screenshot of the waiting page is saved as `target/artifacts/waiting-page.png`, for CI to
//! keep. Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`); the test
//! fails, never skips, when they are missing.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use paastis::events::EventKind;
use paastis::model::State;
use serde_json::{Value, json};
use support::{TempDir, TestEngine, upstream_command};
use tokio::time::Instant;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the app takes to listen once started: long enough for the waiting page to be
/// seen, and reloaded at least once, before the app answers.
const STARTUP_DELAY_MS: u64 = 5000;

/// Fails, saying how to get them, unless Chromium and ChromeDriver are installed.
fn require_browser() {
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
struct Browser {
    http: reqwest::Client,
    driver: Child,
    addr: SocketAddr,
    session: Option<String>,
    /// The test's directory: Chromium's profile and temporary files.
    dir: PathBuf,
}

impl Browser {
    /// ChromeDriver and a session, with everything Chromium writes kept in `dir`.
    async fn start(dir: &TempDir) -> Browser {
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
        browser.open_session().await;
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

    async fn open_session(&mut self) {
        let profile = format!("--user-data-dir={}", self.dir.join("user-data").display());
        // Only loopback is reachable: no background traffic to Google's services.
        let args = [
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
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
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
    async fn call(
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
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let session = self.session.as_deref().expect("an open session");
        self.call(method, &format!("/session/{session}{path}"), body)
            .await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.command(reqwest::Method::GET, path, None).await
    }

    async fn text(&self, path: &str) -> Result<String, String> {
        let value = self.get(path).await?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("GET {path}: not a string: {value}"))
    }

    /// Loads `url`; returns once the page has loaded.
    async fn navigate(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|error| panic!("navigating to {url}: {error}"));
    }

    /// The HTTP status of the current document, as the browser received it.
    async fn response_status(&self) -> Result<Value, String> {
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
    async fn find(&self, selector: &str) -> Result<String, String> {
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
    async fn type_into(&self, selector: &str, text: &str) {
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
    async fn click(&self, selector: &str) {
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
    async fn resize(&self, width: u32, height: u32) {
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
    async fn source_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
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
    async fn screenshot(&self) -> Vec<u8> {
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
            if !survivors.iter().any(|&pid| support::process_running(pid)) {
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
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

fn is_waiting_page(source: &str) -> bool {
    source.contains("Waking up hello")
}

fn is_app_page(source: &str) -> bool {
    source.contains("hello from hello")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_gets_the_waiting_page_which_turns_into_the_app_by_itself() {
    require_browser();
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{strategy: auto, wake_timeout: 60s}}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello, STARTUP_DELAY_MS: "{STARTUP_DELAY_MS}"}}
"#,
        command = upstream_command(),
    ))
    .await;
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(5))
        .await;
    // Declared before the browser, so it is removed after Chromium has quit.
    let browser_dir = TempDir::new("chromium");
    let browser = Browser::start(&browser_dir).await;

    // Chromium resolves *.localhost to the loopback address by itself.
    let url = format!("http://hello.localhost:{}/", engine.addr.port());
    let opened = Instant::now();
    browser.navigate(&url).await;
    let loaded = opened.elapsed();

    // The waiting page: the app's name, what is happening, proper HTML.
    let source = browser.text("/source").await.expect("page source");
    assert!(is_waiting_page(&source), "not the waiting page: {source}");
    assert!(
        source.contains("This app sleeps when nobody uses it"),
        "{source}"
    );
    assert!(source.contains("reloads by itself"), "{source}");
    assert!(source.contains(r#"<html lang="en""#), "{source}");
    assert!(source.contains("<title>"), "{source}");
    let title = browser.text("/title").await.expect("page title");
    assert_eq!(title, "Waking up hello…");
    assert_eq!(browser.response_status().await, Ok(json!(503)));
    // The app is not up yet: what the browser shows next is the proxy's doing.
    assert_eq!(engine.state("hello"), State::Waking);

    let png = browser.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let saved = artifacts_dir().join("waiting-page.png");
    std::fs::write(&saved, &png).expect("save the screenshot");
    println!(
        "waiting page after {loaded:?}; screenshot ({} bytes) saved as {}",
        png.len(),
        saved.display()
    );
    // Still the waiting page, and the app still not up: the screenshot shows the page.
    assert_eq!(
        browser.text("/title").await.expect("page title"),
        "Waking up hello…"
    );
    assert_eq!(engine.state("hello"), State::Waking);

    // No more navigation from here: the page reloads itself until the app answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last;
    loop {
        match browser.text("/source").await {
            Ok(source) if is_app_page(&source) => break,
            Ok(source) => {
                assert!(
                    is_waiting_page(&source),
                    "neither the waiting page nor the app: {source}"
                );
                last = source;
            }
            // A command can fail while the page is being replaced; the next one decides.
            Err(error) => last = error,
        }
        assert!(
            Instant::now() < deadline,
            "the page did not turn into the app within 60 s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let turned = opened.elapsed();
    println!("the page turned into the app {turned:?} after opening it");
    assert!(
        turned >= Duration::from_millis(STARTUP_DELAY_MS),
        "the app answered before it could have started ({turned:?})"
    );
    assert_eq!(browser.text("/url").await.as_deref(), Ok(url.as_str()));
    assert_eq!(browser.response_status().await, Ok(json!(200)));
    assert_eq!(engine.state("hello"), State::Awake);
    assert_eq!(
        engine.count("hello", |kind| matches!(
            kind,
            EventKind::WakeRequested { .. }
        )),
        1,
        "the app was woken more than once: {:?}",
        engine.events()
    );
    assert_eq!(
        engine.count("hello", |kind| matches!(kind, EventKind::Started { .. })),
        1,
        "{:?}",
        engine.events()
    );

    drop(browser);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_shows_the_apps_and_stops_one() {
    require_browser();
    const TOKEN: &str = "dash-token-Secret-0042";
    let engine = TestEngine::start(&format!(
        "admin: {{token: {TOKEN}}}\n{}",
        support::local_apps(&[("web", ""), ("docs", "")])
    ))
    .await;
    // web is awake (a request woke it), docs asleep.
    let proxy = support::TestClient::new(engine.addr);
    assert_eq!(proxy.get("web.localhost", "/").await.status, 200);
    assert_eq!(engine.state("web"), State::Awake);
    let browser_dir = TempDir::new("dash");
    let browser = Browser::start(&browser_dir).await;
    let base = format!("http://127.0.0.1:{}", engine.admin_addr.port());

    // Not signed in: the login form.
    browser.navigate(&format!("{base}/")).await;
    assert_eq!(
        browser.text("/url").await.as_deref(),
        Ok(format!("{base}/login").as_str())
    );
    browser.type_into("#token", "not-the-token").await;
    browser.click("button[type=submit]").await;
    browser
        .source_when("the wrong token refused", |s| {
            s.contains("That token is not a valid token")
        })
        .await;
    browser.type_into("#token", TOKEN).await;
    browser.click("button[type=submit]").await;

    // Signed in: every app with its state.
    let source = browser
        .source_when("the dashboard", |s| s.contains(r#"id="app-web--local""#))
        .await;
    assert!(source.contains(r#"id="app-docs--local""#), "{source}");
    assert!(!source.contains(TOKEN), "the token is not in the page");
    let web_state = |source: &str| -> Option<String> {
        let row = source.split(r#"id="app-web--local""#).nth(1)?;
        let state = row.split(r#"data-state=""#).nth(1)?;
        Some(state.split('"').next()?.to_owned())
    };
    assert_eq!(web_state(&source).as_deref(), Some("awake"), "{source}");
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    std::fs::write(artifacts_dir().join("dashboard.png"), &png).expect("save the screenshot");

    // The session cookie: HttpOnly, SameSite=Strict.
    let cookies = browser.get("/cookie").await.expect("cookies");
    let cookie = cookies
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "paastis_token"))
        .unwrap_or_else(|| panic!("no session cookie in {cookies}"))
        .clone();
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");

    // Stop the awake app from the page; it becomes Asleep there.
    browser
        .click(r#"button[name=stop][data-app="web--local"]"#)
        .await;
    // The form was sent once the engine has begun the stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.state("web") == State::Awake {
        assert!(Instant::now() < deadline, "the Stop button did nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let source = browser.text("/source").await.unwrap_or_default();
        if web_state(&source).as_deref() == Some("asleep") {
            assert!(source.contains(">Asleep<"), "{source}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web never shown asleep: {source}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.navigate(&format!("{base}/")).await;
    }
    assert_eq!(engine.state("web"), State::Asleep);
    assert_eq!(
        engine.count("web", |kind| matches!(kind, EventKind::Stopped { .. })),
        1
    );
    std::fs::write(
        artifacts_dir().join("dashboard-stopped.png"),
        browser.screenshot().await,
    )
    .expect("save the screenshot");

    // On a phone-sized screen: still usable (one card per app), screenshot kept.
    browser.resize(390, 844).await;
    browser.navigate(&format!("{base}/")).await;
    let source = browser.text("/source").await.expect("page source");
    assert!(source.contains(r#"id="app-docs--local""#), "{source}");
    std::fs::write(
        artifacts_dir().join("dashboard-phone.png"),
        browser.screenshot().await,
    )
    .expect("save the screenshot");

    drop(browser);
    engine.stop().await;
}

/// Without an admin token, the dashboard is open on loopback: a page of another site the
/// operator visits sends the dashboard's Start form itself, and gets a refusal, nothing
/// started; the dashboard's own page starts the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_page_cannot_use_the_open_dashboard_but_its_own_page_can() {
    require_browser();
    let engine = TestEngine::start(&support::local_apps(&[("docs", "")])).await;
    let admin = format!("http://127.0.0.1:{}", engine.admin_addr.port());
    // Served on localhost: another site than 127.0.0.1, as any web page would be.
    let attack = format!(
        "<!doctype html><title>cats</title>\
         <form method=\"post\" action=\"{admin}/dashboard/apps/local/docs/start\">\
         <input name=\"start\"></form><script>document.forms[0].submit()</script>"
    );
    let other = support::fakes::serve(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let attack = attack.clone();
            async move { axum::response::Html(attack) }
        }),
    ))
    .await
    .replace("127.0.0.1", "localhost");
    let browser_dir = TempDir::new("dash-open");
    let browser = Browser::start(&browser_dir).await;

    browser.navigate(&format!("{other}/")).await;
    let source = browser
        .source_when("the form sent and refused", |s| s.contains("cross_site"))
        .await;
    assert!(source.contains("refused"), "{source}");
    assert_eq!(
        browser.text("/url").await.as_deref(),
        Ok(format!("{admin}/dashboard/apps/local/docs/start").as_str())
    );
    assert_eq!(engine.state("docs"), State::Asleep);
    assert_eq!(
        engine.count("docs", |kind| matches!(
            kind,
            EventKind::WakeRequested { .. }
        )),
        0
    );

    // The dashboard itself: its Start button starts docs.
    browser.navigate(&format!("{admin}/")).await;
    browser
        .click(r#"button[name=start][data-app="docs--local"]"#)
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.state("docs") == State::Asleep {
        assert!(Instant::now() < deadline, "the Start button did nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine
        .wait_state("docs", State::Awake, Duration::from_secs(20))
        .await;
    drop(browser);
    engine.stop().await;
}
