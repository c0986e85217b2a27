//! The Sablier-compatible API (`/api/strategies/{dynamic,blocking,poke}`) as Sablier's
//! reverse-proxy plugins call it: the engine on 127.0.0.1:0, real `process` apps, plain HTTP
//! on the admin listener. The contract is Sablier's published OpenAPI document
//! (`docs/static/swagger.yaml`) and its handlers (`internal/api/start_*.go`,
//! `problemdetail.go`): the plugins read the `X-Sablier-Session-Status` header, and show
//! the answer to the client when it says `not-ready`.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use serde_json::{Value, json};
use support::TestEngine;

/// Generous deadline for an app to reach a state.
const WITHIN: Duration = Duration::from_secs(30);

/// Peers on this machine may call the gate.
const TRUSTED: &str = "proxy: {trusted_proxies: [127.0.0.1/32]}\n";

/// A `process` provider, `local`, with these apps: name, extra environment (flow-mapping
/// entries, e.g. `STARTUP_DELAY_MS: 5000`) and extra keys (e.g. `max_idle: 1s`). Each runs
/// the upstream test app, or `command` when one is given.
fn apps(apps: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from("providers:\n  - id: local\n    type: process\n    apps:\n");
    for (name, env, extra) in apps {
        let env = if env.is_empty() {
            format!("{{APP_NAME: {name}}}")
        } else {
            format!("{{APP_NAME: {name}, {env}}}")
        };
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        yaml.push_str(&format!(
            "      - {{name: {name}, command: \"{}\", env: {env}{extra}}}\n",
            support::upstream_command()
        ));
    }
    yaml
}

/// An engine whose gate serves the Sablier-compatible API to local peers.
async fn engine(gate: &str, apps_yaml: &str) -> TestEngine {
    TestEngine::start(&format!("{TRUSTED}gate: {gate}\n{apps_yaml}")).await
}

/// An answer, read whole.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// `X-Sablier-Session-Status`, what the plugins read.
    fn session_status(&self) -> &str {
        self.header("x-sablier-session-status")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}

/// `GET http://addr/api/strategies/<strategy>?<query>` with these headers.
async fn call_at(
    addr: SocketAddr,
    strategy: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, reqwest::Error> {
    let mut request = client(timeout)
        .get(format!("http://{addr}/api/strategies/{strategy}"))
        .query(query);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A call on the engine's admin listener, as a plugin configured with `sablierUrl` makes it.
async fn call(engine: &TestEngine, strategy: &str, query: &[(&str, &str)]) -> Reply {
    call_at(
        engine.admin_addr,
        strategy,
        query,
        &[],
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|error| panic!("{strategy} {query:?}: {error}"))
}

/// Checks an RFC 7807 document as Sablier writes them (`problemdetail.go`): its media
/// type, `type` (Sablier's error id), `title`, `status` and `detail`. Returns it.
fn problem(reply: &Reply, status: u16, id: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        "application/problem+json",
        "{}",
        reply.body
    );
    let document = reply.json();
    assert_eq!(
        document["type"],
        format!("https://sablierapp.dev/#/errors?id={id}"),
        "{document}"
    );
    assert!(
        document["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{document}"
    );
    assert_eq!(document["status"], status, "{document}");
    assert!(
        document["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{document}"
    );
    document
}

/// How many wakes were asked for `app`.
fn wakes(engine: &TestEngine, app: &str) -> usize {
    engine.count(app, |kind| matches!(kind, EventKind::WakeRequested { .. }))
}

/// Asserts that nothing started `app`.
fn untouched(engine: &TestEngine, app: &str) {
    assert_eq!(engine.state(app), State::Asleep, "{app} was started");
    assert_eq!(wakes(engine, app), 0, "a wake of {app} was asked for");
}

/// The instances of a session document, by name.
fn instances(document: &Value) -> &serde_json::Map<String, Value> {
    document["session"]["instances"]
        .as_object()
        .unwrap_or_else(|| panic!("no instances map in {document}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_shows_a_waiting_page_until_the_app_is_ready() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;
    assert_eq!(engine.state("web"), State::Asleep);

    let page = call(
        &engine,
        "dynamic",
        &[
            ("names", "web"),
            ("display_name", "<script>alert(1)</script> Shop & co"),
            ("refresh_frequency", "7s"),
        ],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.session_status(), "not-ready");
    assert!(
        page.header("content-type").starts_with("text/html"),
        "{:?}",
        page.headers
    );
    assert_eq!(page.header("cache-control"), "no-cache");
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; Shop &amp; co"),
        "the display name, escaped: {}",
        page.body
    );
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(
        page.body
            .contains(r#"<meta http-equiv="refresh" content="7">"#),
        "refresh_frequency: {}",
        page.body
    );
    assert_eq!(wakes(&engine, "web"), 1);

    engine.wait_state("web", State::Awake, WITHIN).await;
    let page = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("display_name", "Shop")],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.session_status(), "ready");
    assert!(page.body.contains("Shop is ready"), "{}", page.body);
    assert_eq!(wakes(&engine, "web"), 1, "an awake app is not woken again");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_show_details_lists_each_app_and_defaults_from_the_config() {
    let engine = engine(
        "{sablier: {show_details: false, refresh_frequency: 3s}}",
        &apps(&[("web", "", ""), ("api", "", "")]),
    )
    .await;
    let item = |name: &str, status: &str| format!("<li><span>{name}</span> <b>{status}</b>");

    // The configured default: no list, and its refresh frequency.
    let hidden = call(&engine, "dynamic", &[("names", "web"), ("names", "api")]).await;
    assert_eq!(hidden.status, 200, "{}", hidden.body);
    assert_eq!(hidden.session_status(), "not-ready");
    assert!(!hidden.body.contains("<li>"), "{}", hidden.body);
    assert!(
        hidden
            .body
            .contains(r#"<meta http-equiv="refresh" content="3">"#),
        "{}",
        hidden.body
    );
    // Without display_name, the page names the apps.
    assert!(hidden.body.contains("web, api"), "{}", hidden.body);

    let shown = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("names", "api"), ("show_details", "true")],
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    for name in ["web", "api"] {
        assert!(
            shown.body.contains(&item(name, "starting"))
                || shown.body.contains(&item(name, "ready")),
            "{name} listed: {}",
            shown.body
        );
    }

    engine.wait_state("web", State::Awake, WITHIN).await;
    engine.wait_state("api", State::Awake, WITHIN).await;
    // Go's spellings of a boolean.
    let shown = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("names", "api"), ("show_details", "1")],
    )
    .await;
    assert_eq!(shown.session_status(), "ready");
    assert!(shown.body.contains(&item("web", "ready")), "{}", shown.body);
    assert!(shown.body.contains(&item("api", "ready")), "{}", shown.body);
    let hidden = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("show_details", "F")],
    )
    .await;
    assert!(!hidden.body.contains("<li>"), "{}", hidden.body);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_refuses_an_unknown_theme_before_starting_anything() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;

    let refused = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("theme", "no-such-theme")],
    )
    .await;
    let document = problem(&refused, 404, "theme-not-found");
    assert_eq!(document["title"], "Theme not found");
    assert_eq!(document["requestTheme"], "no-such-theme");
    assert_eq!(document["error"], "theme no-such-theme not found");
    let available: Vec<&str> = document["availableTheme"]
        .as_array()
        .expect("availableTheme")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for theme in ["hacker-terminal", "ghost", "matrix", "shuffle", "paastis"] {
        assert!(available.contains(&theme), "{theme} in {available:?}");
    }
    untouched(&engine, "web");

    // Sablier's built-in theme names and the engine's own are all accepted: two looks.
    for theme in ["hacker-terminal", "matrix"] {
        let page = call(&engine, "dynamic", &[("names", "web"), ("theme", theme)]).await;
        assert_eq!(page.status, 200, "{theme}: {}", page.body);
        assert!(page.body.contains("background:#000"), "{theme} is dark");
    }
    for theme in ["ghost", "shuffle", "paastis"] {
        let page = call(&engine, "dynamic", &[("names", "web"), ("theme", theme)]).await;
        assert_eq!(page.status, 200, "{theme}: {}", page.body);
        assert!(page.body.contains("background:#fff"), "{theme} is light");
    }
    // No theme: the default look.
    let page = call(&engine, "dynamic", &[("names", "web")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("background:#fff"), "{}", page.body);
    assert_eq!(wakes(&engine, "web"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_holds_until_ready_and_answers_the_session() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;
    assert_eq!(engine.state("web"), State::Asleep);

    // Durations as Go's Duration.String() writes them (what the Caddy plugin sends).
    let ready = call(
        &engine,
        "blocking",
        &[
            ("names", "web"),
            ("timeout", "1m0s"),
            ("session_duration", "1h30m0s"),
        ],
    )
    .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    assert!(
        ready.header("content-type").starts_with("application/json"),
        "{:?}",
        ready.headers
    );
    assert_eq!(engine.state("web"), State::Awake, "answered once awake");
    let now = engine.lifecycle.clock().now_ms();
    assert!(
        engine
            .app("web")
            .pinned_until_ms()
            .is_some_and(|until| until >= now + 90 * 60 * 1000),
        "a session of 1h30m"
    );
    assert_eq!(
        ready.json(),
        json!({"session": {
            "instances": {"web": {
                "instance": {"name": "web", "currentReplicas": 1, "desiredReplicas": 1, "status": "ready"},
                "error": null,
            }},
            "status": "ready",
        }})
    );
    // Once awake, at once.
    let again = call(&engine, "blocking", &[("names", "web")]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.session_status(), "ready");
    assert_eq!(wakes(&engine, "web"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_answers_a_timeout_problem_when_the_app_is_slower() {
    let engine = engine(
        "{sablier: true}",
        &apps(&[("slow", "STARTUP_DELAY_MS: 8000", "")]),
    )
    .await;

    let late = call(&engine, "blocking", &[("names", "slow"), ("timeout", "1s")]).await;
    let document = problem(&late, 504, "timeout");
    assert_eq!(document["title"], "Gateway Timeout");
    assert_eq!(
        document["detail"], "session was not ready after 1s: slow: starting",
        "{document}"
    );
    assert_eq!(
        document["instances"],
        json!([{"name": "slow", "status": "starting"}])
    );
    assert_ne!(late.session_status(), "ready");
    // The wake goes on.
    engine.wait_state("slow", State::Awake, WITHIN).await;
    let ready = call(&engine, "blocking", &[("names", "slow"), ("timeout", "1s")]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    assert_eq!(wakes(&engine, "slow"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_timeout_defaults_to_the_configured_one() {
    let engine = engine(
        "{sablier: {blocking_timeout: 1s}}",
        &apps(&[("slow", "STARTUP_DELAY_MS: 8000", "")]),
    )
    .await;
    let late = call(&engine, "blocking", &[("names", "slow")]).await;
    let document = problem(&late, 504, "timeout");
    assert!(
        document["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("session was not ready after 1s")),
        "{document}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reports_an_app_that_fails_to_start() {
    let engine = TestEngine::start(&format!(
        "{TRUSTED}gate: {{sablier: true}}\nproviders:\n  - id: local\n    type: process\n    apps:\n      - {{name: broken, command: \"echo no database >&2; exit 3\"}}\n"
    ))
    .await;
    let failed = call(
        &engine,
        "blocking",
        &[("names", "broken"), ("timeout", "1m")],
    )
    .await;
    let document = problem(&failed, 500, "internal-error");
    let detail = document["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("broken: ") && detail.contains("exited with status 3"),
        "{document}"
    );
    assert_ne!(failed.session_status(), "ready");
    assert_eq!(engine.state("broken"), State::Failed);

    // The next call tries again.
    let page = call(&engine, "dynamic", &[("names", "broken")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.session_status(), "not-ready");
    assert_eq!(wakes(&engine, "broken"), 2);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poke_answers_at_once_and_the_app_wakes_later() {
    let engine = engine(
        "{sablier: true}",
        &apps(&[("web", "STARTUP_DELAY_MS: 1000", "")]),
    )
    .await;
    let poked = call(&engine, "poke", &[("names", "web")]).await;
    assert_eq!(poked.status, 200, "{}", poked.body);
    assert_eq!(poked.session_status(), "not-ready");
    assert!(
        poked.header("content-type").starts_with("application/json"),
        "{:?}",
        poked.headers
    );
    let document = poked.json();
    assert_eq!(document["session"]["status"], "not-ready", "{document}");
    let web = &instances(&document)["web"];
    assert_eq!(web["instance"]["name"], "web", "{document}");
    assert_eq!(web["instance"]["status"], "starting", "{document}");
    assert_eq!(web["instance"]["currentReplicas"], 0, "{document}");
    assert_eq!(web["error"], Value::Null, "{document}");

    engine.wait_state("web", State::Awake, WITHIN).await;
    let poked = call(&engine, "poke", &[("names", "web")]).await;
    assert_eq!(poked.session_status(), "ready");
    let document = poked.json();
    assert_eq!(document["session"]["status"], "ready");
    assert_eq!(
        instances(&document)["web"]["instance"]["status"],
        "ready",
        "{document}"
    );
    assert_eq!(wakes(&engine, "web"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_repeat_for_several_apps() {
    let engine = engine(
        "{sablier: true}\nrules:\n  - {pattern: api, alias: backend}",
        &apps(&[("web", "", ""), ("api", "", ""), ("other", "", "")]),
    )
    .await;
    let ready = call(
        &engine,
        "blocking",
        &[("names", "web"), ("names", "Backend"), ("names", "WEB")],
    )
    .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    let document = ready.json();
    let listed = instances(&document);
    // Route keys, not case-sensitive, each once: the names, the aliases, `app--provider`.
    assert_eq!(listed.len(), 2, "{document}");
    for name in ["web", "backend"] {
        assert_eq!(listed[name]["instance"]["status"], "ready", "{document}");
    }
    assert_eq!(engine.state("web"), State::Awake);
    assert_eq!(engine.state("api"), State::Awake);
    let qualified = call(&engine, "poke", &[("names", "api--local")]).await;
    assert_eq!(qualified.session_status(), "ready", "{}", qualified.body);
    untouched(&engine, "other");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_names_never_gate_the_session() {
    let engine = engine(
        "{sablier: true}",
        &apps(&[
            ("web", "", ""),
            ("helper", "STARTUP_DELAY_MS: 3600000", "wake_timeout: 2h"),
        ]),
    )
    .await;

    // An unknown optional name: listed with its error, not a 404.
    let ready = call(
        &engine,
        "blocking",
        &[("names", "web"), ("names", "optional:nobody")],
    )
    .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    let document = ready.json();
    let nobody = &instances(&document)["nobody"];
    assert_eq!(nobody["optional"], true, "{document}");
    assert_eq!(nobody["instance"]["status"], "error", "{document}");
    assert!(
        nobody["error"]
            .as_str()
            .is_some_and(|e| e.contains("nobody")),
        "{document}"
    );
    assert_eq!(document["session"]["status"], "ready");

    // A slow optional app is started with the session, but the answer does not wait for it
    // (an hour's timeout: only a call that ignores it answers within the client's deadline).
    let ready = call_at(
        engine.admin_addr,
        "blocking",
        &[
            ("names", "web"),
            ("names", "optional:helper"),
            ("timeout", "1h"),
        ],
        &[],
        Duration::from_secs(60),
    )
    .await
    .expect("answered without waiting for the optional app");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    let document = ready.json();
    let helper = &instances(&document)["helper"];
    assert_eq!(helper["optional"], true, "{document}");
    assert_eq!(helper["instance"]["status"], "starting", "{document}");
    assert_eq!(engine.state("helper"), State::Waking);

    // The dynamic page is ready too, and still lists the optional app.
    let page = call(
        &engine,
        "dynamic",
        &[("names", "web"), ("names", "optional:helper")],
    )
    .await;
    assert_eq!(page.session_status(), "ready");
    assert!(page.body.contains("<span>helper</span>"), "{}", page.body);

    // Only optional apps: ready at once.
    let poked = call(&engine, "poke", &[("names", "optional:helper")]).await;
    assert_eq!(poked.session_status(), "ready", "{}", poked.body);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_is_not_managed() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;
    for strategy in ["dynamic", "blocking", "poke"] {
        let refused = call(&engine, strategy, &[("names", "web"), ("names", "nobody")]).await;
        let document = problem(&refused, 404, "instance-not-managed");
        assert_eq!(document["title"], "Instance not managed");
        assert_eq!(document["instance"], "nobody", "{document}");
        assert!(document["error"].is_string(), "{document}");
    }
    untouched(&engine, "web");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_validation_errors_and_start_nothing() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("dynamic", &[]),
        ("blocking", &[]),
        ("poke", &[("session_duration", "5m")]),
        ("dynamic", &[("names", "web"), ("group", "web")]),
        ("blocking", &[("names", "web"), ("group", "web")]),
        ("poke", &[("names", "web"), ("group", "web")]),
        ("poke", &[("names", "web"), ("session_duration", "soon")]),
        ("blocking", &[("names", "web"), ("session_duration", "-5m")]),
        ("dynamic", &[("names", "web"), ("session_duration", "5")]),
        ("blocking", &[("names", "web"), ("timeout", "forever")]),
        ("blocking", &[("names", "web"), ("timeout", "1d")]),
        ("dynamic", &[("names", "web"), ("show_details", "maybe")]),
        (
            "dynamic",
            &[("names", "web"), ("refresh_frequency", "often")],
        ),
    ];
    for (strategy, query) in cases {
        let refused = call(&engine, strategy, query).await;
        let document = problem(&refused, 400, "validation-error");
        assert_eq!(
            document["title"], "Validation Failed",
            "{strategy} {query:?}"
        );
    }
    let neither = call(&engine, "poke", &[]).await;
    assert_eq!(
        neither.json()["detail"],
        "'names' or 'group' query parameter must be set"
    );
    let both = call(&engine, "poke", &[("names", "web"), ("group", "web")]).await;
    assert_eq!(
        both.json()["detail"],
        "'names' and 'group' query parameters are both set, only one must be set"
    );
    untouched(&engine, "web");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_an_app_with_its_linked_apps() {
    let engine = engine(
        "{sablier: true}\nrules:\n  - {pattern: front, linked_apps: [back]}",
        &apps(&[("front", "", ""), ("back", "", ""), ("other", "", "")]),
    )
    .await;

    let missing = call(&engine, "blocking", &[("group", "nothing-here")]).await;
    let document = problem(&missing, 404, "group-not-found");
    assert_eq!(document["title"], "Group not found");
    assert_eq!(document["requestGroup"], "nothing-here");
    assert_eq!(document["error"], "group nothing-here not found");
    assert!(document["availableGroups"].is_array(), "{document}");
    for strategy in ["dynamic", "poke"] {
        let missing = call(&engine, strategy, &[("group", "nothing-here")]).await;
        problem(&missing, 404, "group-not-found");
    }
    untouched(&engine, "front");

    let ready = call(&engine, "blocking", &[("group", "front")]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    let document = ready.json();
    let listed = instances(&document);
    let mut names: Vec<&String> = listed.keys().collect();
    names.sort();
    assert_eq!(names, ["back", "front"], "{document}");
    assert_eq!(engine.state("front"), State::Awake);
    assert_eq!(engine.state("back"), State::Awake);
    untouched(&engine, "other");

    let page = call(&engine, "dynamic", &[("group", "front")]).await;
    assert_eq!(page.session_status(), "ready");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_the_app_awake_past_its_max_idle() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "max_idle: 1s")])).await;
    // Woken without a session: only max_idle keeps it.
    let ready = call(
        &engine,
        "blocking",
        &[("names", "web"), ("session_duration", "0s")],
    )
    .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(engine.app("web").pinned_until_ms(), None, "no session");

    let clock = engine.lifecycle.clock();
    let before = clock.now_ms();
    let poked = call(
        &engine,
        "poke",
        &[("names", "web"), ("session_duration", "4s")],
    )
    .await;
    let after = clock.now_ms();
    assert_eq!(poked.session_status(), "ready", "{}", poked.body);
    // The session is a pin to 1.5 times its length from the call.
    let until = engine
        .app("web")
        .pinned_until_ms()
        .expect("the session pins the app");
    assert!(
        until + 20 >= before + 6000 && until <= after + 6000 + 20,
        "pinned until {until}, call between {before} and {after}"
    );
    // Well past max_idle (1s), the session holds it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(engine.state("web"), State::Awake);
    // Then max_idle applies again.
    engine.wait_state("web", State::Asleep, WITHIN).await;
    assert!(
        engine.count("web", |kind| matches!(
            kind,
            EventKind::StopRequested {
                cause: paastis::events::StopCause::Idle { .. }
            }
        )) >= 1,
        "stopped for idleness"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_counts_as_activity() {
    let engine = engine("{sablier: true}", &apps(&[("web", "", "")])).await;
    let ready = call(&engine, "blocking", &[("names", "web")]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let clock = engine.lifecycle.clock();
    for strategy in ["poke", "blocking", "dynamic"] {
        let before = engine.app("web").last_activity_ms();
        // Until the engine's clock has moved on.
        while clock.now_ms() <= before + 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let answer = call(
            &engine,
            strategy,
            &[("names", "web"), ("session_duration", "0s")],
        )
        .await;
        assert_eq!(answer.session_status(), "ready", "{strategy}");
        assert!(
            engine.app("web").last_activity_ms() > before,
            "{strategy} counts as activity"
        );
    }
    engine.stop().await;
}

const GATE_TOKEN: &str = "gate-Token-5f1c2e9a7b";

/// Trusts only another network: a local caller needs the token.
fn untrusted_config() -> String {
    format!(
        "proxy: {{trusted_proxies: [10.0.0.0/8]}}\ngate: {{token: '${{GATE_TOKEN}}', sablier: true}}\n{}",
        apps(&[("web", "", "")])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_outside_the_trusted_proxies_needs_the_token() {
    let env = HashMap::from([("GATE_TOKEN".to_owned(), GATE_TOKEN.to_owned())]);
    let engine = TestEngine::start_with_env(&untrusted_config(), &env).await;
    let query = [("names", "web")];
    let wrong = format!("Bearer {GATE_TOKEN}x");
    let basic = format!("Basic {GATE_TOKEN}");
    for headers in [
        &[][..],
        &[("authorization", wrong.as_str())][..],
        &[("authorization", basic.as_str())][..],
        // A forwarded address does not make the caller trusted.
        &[("x-forwarded-for", "10.1.2.3")][..],
    ] {
        for strategy in ["dynamic", "blocking", "poke"] {
            let refused = call_at(
                engine.admin_addr,
                strategy,
                &query,
                headers,
                Duration::from_secs(30),
            )
            .await
            .expect("answered");
            let document = problem(&refused, 403, "forbidden");
            assert!(!refused.body.contains(GATE_TOKEN), "{}", refused.body);
            assert_eq!(document["title"], "Forbidden");
        }
    }
    untouched(&engine, "web");

    let bearer = format!("Bearer {GATE_TOKEN}");
    let ready = call_at(
        engine.admin_addr,
        "blocking",
        &query,
        &[("authorization", &bearer)],
        Duration::from_secs(120),
    )
    .await
    .expect("answered");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.session_status(), "ready");
    assert!(!ready.body.contains(GATE_TOKEN));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_token_never_reaches_the_logs() {
    let dir = support::TempDir::new("sablier-token");
    let path = dir.path("paastis.yml");
    std::fs::write(&path, untrusted_config()).expect("write config");
    let mut served =
        support::serve(&path, &[("LOG_LEVEL", "trace"), ("GATE_TOKEN", GATE_TOKEN)]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let admin_addr: SocketAddr = loop {
        let logs = served.logs();
        if let Some(addr) = logs
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|line| line["admin_addr"].as_str().map(str::to_owned))
        {
            break addr.parse().expect("address");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no admin address in {logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bearer = format!("Bearer {GATE_TOKEN}");
    let wrong = format!("Bearer {GATE_TOKEN}-not");
    let mut answers = Vec::new();
    for (strategy, auth) in [
        ("poke", wrong.as_str()),
        ("blocking", bearer.as_str()),
        ("dynamic", bearer.as_str()),
        ("poke", bearer.as_str()),
    ] {
        let reply = call_at(
            admin_addr,
            strategy,
            &[("names", "web")],
            &[("authorization", auth)],
            Duration::from_secs(120),
        )
        .await
        .expect("answered");
        answers.push(format!("{:?}\n{}", reply.headers, reply.body));
        let expected = if auth == wrong { 403 } else { 200 };
        assert_eq!(reply.status, expected, "{strategy}: {}", reply.body);
    }
    served.stop().await;
    let logs = served.logs();
    let mut outputs: Vec<&str> = answers.iter().map(String::as_str).collect();
    outputs.push(&logs);
    support::assert_no_secret(&outputs, &[GATE_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_not_served_when_sablier_is_off() {
    for gate in [
        "",
        "gate: {sablier: false, forward_auth: true}\n",
        "gate: {sablier: {enabled: false}, forward_auth: true}\n",
    ] {
        let engine =
            TestEngine::start(&format!("{TRUSTED}{gate}{}", apps(&[("web", "", "")]))).await;
        for strategy in ["dynamic", "blocking", "poke"] {
            let reply = call(&engine, strategy, &[("names", "web")]).await;
            assert_eq!(reply.status, 404, "{gate:?} {strategy}: {}", reply.body);
            assert_eq!(reply.session_status(), "", "{gate:?}");
        }
        untouched(&engine, "web");
        engine.stop().await;
    }
}
