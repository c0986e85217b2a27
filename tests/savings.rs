//! Savings on the whole engine: apps put to sleep for real, the report read through the
//! admin API and `paastis savings` over a period cut from the stored events' own times, so
//! the expected hours, money and CO2e are exact; bad periods are 400s.

mod support;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use paastis::model::State;
use serde_json::Value;
use support::{TestClient, TestEngine, paastis};

const TOKEN: &str = "savings-tok-Secret-77";

fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse(at: &str) -> SystemTime {
    SystemTime::from(chrono::DateTime::parse_from_rfc3339(at).expect("time"))
}

async fn api(engine: &TestEngine, path: &str) -> (u16, Value) {
    let answer = TestClient::new(engine.admin_addr)
        .send(
            "GET",
            "localhost",
            path,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Default::default(),
        )
        .await;
    (answer.status.as_u16(), answer.json())
}

/// When the app's latest `stopped` event happened, once it is in the store.
async fn stopped_at(engine: &TestEngine, app: &str) -> SystemTime {
    for _ in 0..100 {
        let (_, page) = api(engine, &format!("/api/v1/events?app={app}&kind=stopped")).await;
        if let Some(at) = page["events"][0]["at"].as_str() {
            return parse(at);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no stopped event for {app}");
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 2e-6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_money_and_co2e_follow_the_stored_sleeps() {
    // 3.6 EUR per container-hour is 0.001 EUR a second; 36 g per hour is 0.01 g a second.
    let yaml = format!(
        "defaults: {{max_idle: 1s}}\nadmin: {{token: {TOKEN}}}\n\
         savings: {{prices: {{process: {{'*': 3.6}}}}, currency: EUR, gco2e_per_container_hour: 36}}\n{}",
        support::local_apps(&[("web", ""), ("api", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    assert_eq!(client.get("api.localhost", "/").await.status, 200);
    for app in ["web", "api"] {
        engine
            .wait_state(app, State::Asleep, Duration::from_secs(8))
            .await;
    }
    let web = stopped_at(&engine, "web").await;
    let api_stop = stopped_at(&engine, "api").await;
    // Both asleep for a while; the period ends 2.5 s after the later stop (in the past).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = web.max(api_stop) + Duration::from_millis(2500);
    let from = web.min(api_stop) - Duration::from_secs(60);
    let expect_web = to.duration_since(web).expect("after").as_secs_f64();
    let expect_api = to.duration_since(api_stop).expect("after").as_secs_f64();

    let (status, report) = api(
        &engine,
        &format!("/api/v1/savings?from={}&to={}", rfc3339(from), rfc3339(to)),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["estimate"], true);
    assert_eq!(report["group_by"], "app");
    let line = |name: &str| {
        report["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["app"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    for (name, seconds) in [("web", expect_web), ("api", expect_api)] {
        let item = line(name);
        assert!(
            close(&item["hours_asleep"], seconds / 3600.0),
            "{name}: {item}"
        );
        assert!(
            close(&item["container_hours"], seconds / 3600.0),
            "{name}: {item}"
        );
        assert!(close(&item["gco2e"], seconds * 0.01), "{name}: {item}");
        assert_eq!(item["money"][0]["currency"], "EUR");
        let money = item["money"][0]["amount"].as_f64().expect("amount");
        assert!((money - seconds * 0.001).abs() < 1e-4, "{name}: {item}");
        assert_eq!(item["unpriced_container_hours"], 0.0);
    }
    let total = &report["total"];
    assert!(
        close(&total["hours_asleep"], (expect_web + expect_api) / 3600.0),
        "{total}"
    );

    // By provider: one line with the same totals.
    let (_, by_provider) = api(
        &engine,
        &format!(
            "/api/v1/savings?from={}&to={}&group_by=provider",
            rfc3339(from),
            rfc3339(to)
        ),
    )
    .await;
    assert_eq!(by_provider["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_provider["items"][0]["provider"], "local");
    assert_eq!(by_provider["total"]["hours_asleep"], total["hours_asleep"]);

    // Without a period: the last 30 days up to now, the open sleeps counting until now.
    let (_, now_report) = api(&engine, "/api/v1/savings").await;
    let hours_now = now_report["total"]["hours_asleep"].as_f64().expect("hours");
    assert!(
        hours_now > total["hours_asleep"].as_f64().expect("hours"),
        "{now_report}"
    );

    // Bad periods and groupings.
    for bad in [
        "/api/v1/savings?group_by=day",
        "/api/v1/savings?from=yesterday",
        "/api/v1/savings?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, body) = api(&engine, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }

    // The CLI: a table for people, the API's JSON with --json.
    let url = format!("http://{}", engine.admin_addr);
    let run = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let mut all = args;
            all.extend(["--api-url".into(), url, "--token".into(), TOKEN.into()]);
            paastis()
                .args(&all)
                .stdin(Stdio::null())
                .output()
                .await
                .expect("run")
        }
    };
    let table = run(vec![
        "savings".into(),
        "--from".into(),
        rfc3339(from),
        "--to".into(),
        rfc3339(to),
    ])
    .await;
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    for expected in [
        "PROVIDER",
        "APP",
        "ASLEEP",
        "web",
        "api",
        "TOTAL",
        "EUR",
        "Estimates",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let json = run(vec![
        "savings".into(),
        "--json".into(),
        "--by".into(),
        "provider".into(),
        "--from".into(),
        "1h".into(),
    ])
    .await;
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(parsed["group_by"], "provider");
    let bad = run(vec!["savings".into(), "--from".into(), "last week".into()]).await;
    assert_eq!(bad.status.code(), Some(2));
    engine.stop().await;
}
