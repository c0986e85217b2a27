//! The waiting page in a real browser: headless Chromium, driven through ChromeDriver's
//! WebDriver API, opens a sleeping app, gets the waiting page, and ends up on the app's own
//! page without being told to navigate again (the page reloads itself until the app answers).
//! A screenshot of the waiting page is saved as `target/artifacts/waiting-page.png`, for CI to
//! keep. Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`); the test
//! fails, never skips, when they are missing.

mod support;

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use browser::{Browser, artifacts_dir, require_browser};
use paastis::events::EventKind;
use paastis::model::State;
use serde_json::json;
use support::{TempDir, TestEngine, upstream_command};
use tokio::time::Instant;

/// How long the app takes to listen once started: long enough for the waiting page to be
/// seen, and reloaded at least once, before the app answers.
const STARTUP_DELAY_MS: u64 = 5000;

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

/// The dashboard follows the event stream: an app woken elsewhere (the API) shows as awake,
/// and its events at the top of the recent events, without the page being loaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_happens_without_being_reloaded() {
    require_browser();
    let engine = TestEngine::start(&support::local_apps(&[("web", ""), ("docs", "")])).await;
    let browser_dir = TempDir::new("dash-live");
    let browser = Browser::start(&browser_dir).await;
    let base = format!("http://127.0.0.1:{}", engine.admin_addr.port());
    browser.navigate(&format!("{base}/")).await;
    browser
        .source_when("the dashboard", |s| s.contains(r#"id="app-docs--local""#))
        .await;
    // A mark in the page: a reload would lose it.
    browser
        .command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "document.body.setAttribute('data-mark', 'loaded once'); return 1;",
                "args": []
            })),
        )
        .await
        .expect("mark the page");
    let started = reqwest::Client::new()
        .post(format!("{base}/api/v1/apps/local/docs/start?wait=true"))
        .send()
        .await
        .expect("start docs");
    assert_eq!(started.status(), 200);
    let source = browser
        .source_when("docs shown awake", |s| {
            s.split(r#"id="app-docs--local""#)
                .nth(1)
                .is_some_and(|row| {
                    row.split("</tr>")
                        .next()
                        .unwrap_or("")
                        .contains(r#"data-state="awake""#)
                })
        })
        .await;
    assert!(
        source.contains("loaded once"),
        "the page was reloaded: {source}"
    );
    let events = source.split(r#"<ul class="events""#).nth(1).unwrap_or("");
    let newest = events.split("</li>").next().unwrap_or("");
    assert!(
        newest.contains("docs") && newest.contains("started"),
        "{events}"
    );
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
