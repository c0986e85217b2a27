//! The visitor pages as the operator configures them (`page:` at the top level, in a
//! space, in a rule), through the whole engine and real upstream apps: templates, themes,
//! languages by `Accept-Language`, messages files, the fallback of a broken template, and
//! JSON errors left as they were.

mod support;

#[path = "support/browser.rs"]
mod browser;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use browser::{Browser, artifacts_dir, require_browser};
use bytes::Bytes;
use paastis::config::{Overrides, load_str};
use paastis::model::State;
use serde_json::json;
use support::{TempDir, TestClient, TestEngine, upstream_command};
use tokio::time::Instant;

/// A browser's `Accept` header.
const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8");

/// A `process` app that takes a minute to listen (its waiting page stays up meanwhile).
fn slow_app(name: &str) -> String {
    format!(
        "{{name: {name}, command: \"{}\", env: {{APP_NAME: {name}, STARTUP_DELAY_MS: \"60000\"}}}}",
        upstream_command()
    )
}

/// Writes `text` as `name` in `dir`; its path.
fn file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path(name);
    std::fs::write(&path, text).expect("write a test file");
    path.display().to_string()
}

/// GET `host` as a browser with these extra headers.
async fn browse(client: &TestClient, host: &str, headers: &[(&str, &str)]) -> support::Answer {
    let mut all = vec![HTML];
    all.extend_from_slice(headers);
    client.send("GET", host, "/", &all, Bytes::new()).await
}

/// A template showing which page, language, texts and variables it got.
const TEMPLATE: &str = r#"<!doctype html>
<html lang="{{ lang }}"><head><title>{{ title }}</title><style>{{ style }}</style></head>
<body class="custom">
{% if logo %}<img id="logo" src="{{ logo }}" alt="">{% endif %}
<h1 id="heading">{{ text.heading or (status ~ " " ~ reason) }}</h1>
<p id="page">{{ page }} for {{ display_name }} ({{ app }})</p>
<p id="message">{{ message }}</p>
<p id="progress">{{ text.progress }}</p>
<p id="id">{{ request_id }}</p>
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
</body></html>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_template_goes_over_the_space_and_french_is_chosen_by_accept_language() {
    let dir = TempDir::new("pages-rule");
    let template = file(&dir, "shop.html", TEMPLATE);
    let engine = TestEngine::start(&format!(
        r##"
defaults: {{strategy: page}}
page: {{theme: dark, title: Acme, accent_color: "#0a7"}}
rules:
  - pattern: shop
    page: {{template: "{template}", logo: /logo.svg}}
providers:
  - id: local
    type: process
    apps:
      - {shop}
      - {docs}
"##,
        shop = slow_app("shop"),
        docs = slow_app("docs"),
    ))
    .await;
    let client = TestClient::new(engine.addr);

    // The rule's template, with the space's title, in French.
    let page = browse(
        &client,
        "shop.localhost",
        &[("accept-language", "fr-CH, fr;q=0.9, en;q=0.5")],
    )
    .await;
    assert_eq!(page.status, 503);
    assert!(page.headers.contains_key("retry-after"));
    assert_eq!(page.headers["cache-control"], "no-store");
    let html = page.text();
    assert!(html.contains(r#"<body class="custom">"#), "{html}");
    assert!(html.contains(r#"<html lang="fr">"#), "{html}");
    assert!(html.contains("Réveil de Acme…"), "{html}");
    assert!(html.contains("waiting for Acme (shop)"), "{html}");
    assert!(html.contains(r#"<img id="logo" src="/logo.svg""#), "{html}");
    // The space's theme and accent color are in the style the template was given.
    assert!(
        html.contains("--accent:#0a7") && html.contains("color-scheme:dark"),
        "{html}"
    );

    // The other app has the space's look: the built-in page, dark, in English by default.
    let html = browse(&client, "docs.localhost", &[]).await.text();
    assert!(!html.contains("custom"), "{html}");
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(html.contains("Waking up Acme…"), "{html}");
    assert!(html.contains("color-scheme:dark"), "{html}");
    assert!(
        html.contains(r#"role="status" aria-live="polite""#),
        "{html}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_file_adds_a_language_and_sets_the_default() {
    let dir = TempDir::new("pages-de");
    let german = file(
        &dir,
        "de.yml",
        "waiting:\n  title: \"{name} wird geweckt…\"\nstatus:\n  \"404\": Nicht gefunden\n\
         error:\n  unknown_app: \"keine App unter {host}\"\n",
    );
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{strategy: page}}
page: {{language: de, languages: {{de: "{german}"}}}}
providers:
  - id: local
    type: process
    apps:
      - {shop}
"#,
        shop = slow_app("shop"),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    // None of the pages' languages asked for: the configured default.
    let html = browse(
        &client,
        "shop.localhost",
        &[("accept-language", "es, it;q=0.5")],
    )
    .await
    .text();
    assert!(html.contains(r#"<html lang="de">"#), "{html}");
    assert!(html.contains("shop wird geweckt…"), "{html}");
    // What the file does not say is English.
    assert!(
        html.contains("This app sleeps when nobody uses it"),
        "{html}"
    );
    let missing = browse(
        &client,
        "nothing.localhost",
        &[("accept-language", "de-AT")],
    )
    .await;
    assert_eq!(missing.status, 404);
    let html = missing.text();
    assert!(html.contains("404 Nicht gefunden"), "{html}");
    assert!(html.contains("keine App unter nothing.localhost"), "{html}");
    // English still, for who asks for it.
    let html = browse(
        &client,
        "nothing.localhost",
        &[("accept-language", "en-GB")],
    )
    .await
    .text();
    assert!(html.contains("404 Not Found"), "{html}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_gets_its_spaces_look_and_themes_differ() {
    let command = upstream_command();
    let engine = TestEngine::start(&format!(
        r#"
page: {{theme: minimal}}
providers:
  - id: local
    type: process
    apps: [{{name: web, command: "{command}", env: {{APP_NAME: web}}}}]
spaces:
  - id: acme
    domains: [acme.test]
    page: {{theme: dark, language: fr}}
    providers:
      - id: local
        type: process
        apps: [{{name: web, command: "{command}", env: {{APP_NAME: acme-web}}}}]
"#
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let default = browse(&client, "nothing.localhost", &[("x-request-id", "req-42")]).await;
    assert_eq!(default.status, 404);
    let html = default.text();
    assert!(html.contains("max-width:40rem"), "minimal theme: {html}");
    assert!(!html.contains("color-scheme:dark"), "{html}");
    assert!(html.contains("Request id: req-42"), "{html}");
    assert!(
        html.contains("no app is served at nothing.localhost"),
        "{html}"
    );

    let space = browse(&client, "nope.acme.test", &[]).await;
    assert_eq!(space.status, 404);
    let html = space.text();
    assert!(html.contains("color-scheme:dark"), "dark theme: {html}");
    assert!(html.contains(r#"<html lang="fr">"#), "{html}");
    assert!(html.contains("404 Introuvable"), "{html}");
    assert!(
        html.contains("aucune application n&#39;est servie à l&#39;adresse nope.acme.test"),
        "{html}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_are_the_same_whatever_the_look() {
    let dir = TempDir::new("pages-json");
    let template = file(&dir, "page.html", TEMPLATE);
    let engine = TestEngine::start(&format!(
        "page: {{template: \"{template}\", language: fr}}\n{}",
        support::local_apps(&[("web", "")])
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let answer = client
        .send(
            "GET",
            "nothing.localhost",
            "/",
            &[("accept", "application/json"), ("accept-language", "fr")],
            Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(
        answer.text(),
        r#"{"error":{"code":"unknown_app","message":"no app is served at nothing.localhost"}}"#
    );
    // The same error for a browser: the custom template, in French.
    let html = browse(&client, "nothing.localhost", &[("accept-language", "fr")])
        .await
        .text();
    assert!(html.contains(r#"<body class="custom">"#), "{html}");
    assert!(html.contains("404 Introuvable"), "{html}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_failing_at_render_falls_back_to_the_built_in_page() {
    let dir = TempDir::new("pages-broken");
    // It compiles; the filter does not exist, which shows when it renders.
    let template = file(&dir, "broken.html", "<p>{{ app | no_such_filter }}</p>\n");
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{strategy: page}}
rules:
  - pattern: shop
    page: {{template: "{template}"}}
providers:
  - id: local
    type: process
    apps:
      - {shop}
"#,
        shop = slow_app("shop"),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    for _ in 0..2 {
        let page = browse(&client, "shop.localhost", &[]).await;
        assert_eq!(page.status, 503);
        let html = page.text();
        assert!(html.contains("Waking up shop…"), "{html}");
        assert!(!html.contains("no_such_filter"), "{html}");
    }
    engine.stop().await;
}

#[test]
fn a_template_syntax_error_is_refused_at_load_with_its_file_and_line() {
    let dir = TempDir::new("pages-syntax");
    let template = file(&dir, "bad.html", "<p>\n<b>\n{% if app %}\n{{ app }\n");
    let good = file(&dir, "good.html", "<p>{{ app }}</p>");
    let yaml = format!(
        r#"
page: {{template: "{template}"}}
rules:
  - pattern: shop
    page: {{template: "{template}", language: de}}
spaces:
  - id: acme
    domains: [acme.test]
    page: {{template: "{good}", theme: neon}}
"#
    );
    let errors = match load_str(&yaml, &HashMap::new(), &Overrides::default()) {
        Ok(_) => panic!("a broken template was accepted"),
        Err(errors) => errors.to_string(),
    };
    assert!(
        errors.contains(&format!("  - page.template: {template}: line 4:")),
        "{errors}"
    );
    assert!(
        errors.contains(&format!("  - rules[0].page.template: {template}: line 4:")),
        "{errors}"
    );
    assert!(
        errors.contains("  - rules[0].page.language: `de` is not a language"),
        "{errors}"
    );
    assert!(
        errors.contains("  - spaces[0].page.theme: `neon` is not a theme"),
        "{errors}"
    );
}

/// A template for the browser: the logo, the French texts, the reload in the head.
const BROWSER_TEMPLATE: &str = r#"<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<title>{{ title }}</title>
<style>{{ style }}</style>
</head>
<body>
<main class="custom" role="status" aria-live="polite">
<img id="logo" src="{{ logo }}" alt="Acme">
<h1>{{ text.heading or (status ~ " " ~ reason) }}</h1>
<p>{{ text.intro or message }}</p>
<p>{{ text.progress }}</p>
</main>
</body>
</html>
"#;

/// A `process` app taking `delay_ms` to listen, and a template file; the engine.
async fn engine_with_template(dir: &TempDir, template: &str, page_extra: &str) -> TestEngine {
    let template = file(dir, "page.html", template);
    TestEngine::start(&format!(
        r#"
defaults: {{strategy: auto, wake_timeout: 60s}}
rules:
  - pattern: shop
    page: {{template: "{template}"{page_extra}}}
providers:
  - id: local
    type: process
    apps:
      - name: shop
        command: "{command}"
        env: {{APP_NAME: shop, STARTUP_DELAY_MS: "4000"}}
"#,
        command = upstream_command(),
    ))
    .await
}

/// Waits, without navigating, until the browser shows the app itself.
async fn turns_into_the_app(browser: &Browser, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let source = browser.text("/source").await.unwrap_or_default();
        if source.contains("hello from shop") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not turn into the app within 60 s; last: {source}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(browser.text("/url").await.as_deref(), Ok(url));
    assert_eq!(browser.response_status().await, Ok(json!(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_a_custom_french_page_with_its_logo_which_turns_into_the_app() {
    require_browser();
    let dir = TempDir::new("pages-chromium");
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" rx="8" fill="#0a7"/></svg>"##;
    let logo = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    );
    let engine = engine_with_template(
        &dir,
        BROWSER_TEMPLATE,
        &format!(", logo: \"{logo}\", title: Acme, accent_color: \"#0a7\""),
    )
    .await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(5))
        .await;
    let browser_dir = TempDir::new("cr-fr");
    let browser = Browser::start_with(
        &browser_dir,
        &["--lang=fr", "--accept-lang=fr"],
        json!({"intl.accept_languages": "fr"}),
    )
    .await;
    let url = format!("http://shop.localhost:{}/", engine.addr.port());
    browser.navigate(&url).await;

    let source = browser.text("/source").await.expect("page source");
    assert!(
        source.contains(r#"class="custom""#),
        "not the template: {source}"
    );
    assert!(source.contains(r#"<html lang="fr""#), "{source}");
    assert!(source.contains("Réveil de Acme…"), "{source}");
    assert_eq!(
        browser.text("/title").await.as_deref(),
        Ok("Réveil de Acme…")
    );
    assert_eq!(browser.response_status().await, Ok(json!(503)));
    // The logo is an image the browser decoded.
    let width = browser
        .command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "return document.getElementById('logo').naturalWidth;",
                "args": []
            })),
        )
        .await;
    assert_eq!(width, Ok(json!(120)), "{source}");
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    std::fs::write(artifacts_dir().join("custom-page.png"), &png).expect("save the screenshot");
    assert_eq!(engine.state("shop"), State::Waking);

    turns_into_the_app(&browser, &url).await;
    drop(browser);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_gets_the_built_in_page_when_the_template_breaks_and_reaches_the_app() {
    require_browser();
    let dir = TempDir::new("pages-chromium-broken");
    let engine = engine_with_template(&dir, "<p>{{ app | no_such_filter }}</p>", "").await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(5))
        .await;
    let browser_dir = TempDir::new("cr-fb");
    let browser = Browser::start(&browser_dir).await;
    let url = format!("http://shop.localhost:{}/", engine.addr.port());
    browser.navigate(&url).await;
    let source = browser.text("/source").await.expect("page source");
    assert!(
        source.contains("Waking up shop"),
        "not the built-in page: {source}"
    );
    assert!(!source.contains("no_such_filter"), "{source}");
    assert_eq!(browser.response_status().await, Ok(json!(503)));

    turns_into_the_app(&browser, &url).await;
    drop(browser);
    engine.stop().await;
}
