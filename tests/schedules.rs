//! Schedules on the whole engine, in real time: a sleep window whose requests do not wake
//! the app answers 503 with the time it is back (HTML and JSON), a window that lets them
//! wakes it, the admin API may still start it, and a `sleep` time stops an awake app
//! whatever its idle timer says.

mod support;

use std::time::Duration;

use chrono::{Timelike, Utc};
use paastis::events::{EventKind, StopCause};
use paastis::model::State;
use support::{TestClient, TestEngine};

/// A daily cron at `hours` from now (may be negative), in Tokyo's local time (UTC+9, no
/// DST), with the local `HH:MM` it stands for.
fn tokyo_daily(hours: i64) -> (String, String) {
    let at = (Utc::now() + chrono::Duration::hours(hours)).with_timezone(&chrono_tz::Asia::Tokyo);
    (
        format!("{} {} * * *", at.minute(), at.hour()),
        format!("{:02}:{:02}", at.hour(), at.minute()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_without_wake_on_request_answers_when_the_app_is_back() {
    // Asleep since an hour ago, back in two hours.
    let (sleep, _) = tokyo_daily(-1);
    let (wake, back) = tokyo_daily(2);
    let yaml = format!(
        "schedules:\n  - {{apps: night, sleep: '{sleep}', wake: '{wake}', timezone: Asia/Tokyo, wake_on_request: false}}\n  \
         - {{apps: open, sleep: '{sleep}', wake: '{wake}', timezone: Asia/Tokyo}}\n{}",
        support::local_apps(&[("night", ""), ("open", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);

    // JSON clients: 503, a code, Retry-After until the wake time, the local time said.
    let refused = client.get("night.localhost", "/").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let body = refused.json();
    assert_eq!(body["error"]["code"], "asleep_by_schedule", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{back} (Asia/Tokyo)")) && message.contains("night"),
        "{message}"
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (2 * 3600 - 120..=2 * 3600).contains(&retry_after),
        "{retry_after}"
    );
    // Browsers: the same as a page.
    let page = client
        .send(
            "GET",
            "night.localhost",
            "/",
            &[("accept", "text/html")],
            Default::default(),
        )
        .await;
    assert_eq!(page.status, 503);
    let text = page.text();
    assert!(
        text.contains(&format!(" {back} (Asia/Tokyo)")) && text.contains("until "),
        "{text}"
    );
    assert_eq!(engine.state("night"), State::Asleep);
    assert_eq!(
        engine.count("night", |k| matches!(k, EventKind::WakeRequested { .. })),
        0
    );

    // The same window with requests allowed to wake: the app answers.
    assert_eq!(client.get("open.localhost", "/").await.status, 200);

    // The admin API is the owner's decision: it starts the app anyway, and then it is
    // served.
    let api = TestClient::new(engine.admin_addr);
    let started = api
        .send(
            "POST",
            "localhost",
            "/api/v1/apps/local/night/start?wait=true",
            &[],
            Default::default(),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.text());
    assert_eq!(client.get("night.localhost", "/").await.status, 200);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_time_stops_an_awake_app_before_its_idle_timer() {
    // A sleep time every two seconds, and an idle timer of an hour.
    let yaml = format!(
        "defaults: {{max_idle: 1h}}\nschedules:\n  - {{apps: 'web*', sleep: '*/2 * * * * *'}}\n{}",
        support::local_apps(&[("web", ""), ("other", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    assert_eq!(client.get("other.localhost", "/").await.status, 200);
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(8))
        .await;
    let by_schedule = engine.count("web", |k| {
        matches!(
            k,
            EventKind::StopRequested {
                cause: StopCause::Schedule { schedule }
            } if schedule == "web*"
        )
    });
    assert_eq!(by_schedule, 1, "{:?}", engine.events());
    // The app no schedule matches keeps its hour.
    assert_eq!(engine.state("other"), State::Awake);
    engine.stop().await;
}
