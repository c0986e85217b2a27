use super::*;
use crate::events::{StopCause, WakeCause};
use crate::model::State;
use crate::providers::AppStatus;
use crate::providers::fake::FakeProvider;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::time::advance;

fn policy(max_idle: Option<Duration>) -> Policy {
    Policy {
        max_idle,
        ..Policy::default()
    }
}

async fn setup(
    apps: &[(&str, AppStatus)],
    max_idle: Option<Duration>,
) -> (Arc<Lifecycle>, Arc<FakeProvider>) {
    let fake = Arc::new(FakeProvider::new("fake", apps));
    let provider: Arc<dyn Provider> = fake.clone();
    let lifecycle = Lifecycle::new(
        vec![provider],
        Settings {
            defaults: policy(max_idle),
            ..Settings::default()
        },
    );
    lifecycle.discover().await;
    (lifecycle, fake)
}

fn app(lifecycle: &Lifecycle, name: &str) -> Arc<App> {
    lifecycle
        .apps()
        .into_iter()
        .find(|app| &*app.key.name == name)
        .expect("app")
}

fn kinds(lifecycle: &Lifecycle) -> Vec<EventKind> {
    lifecycle
        .events()
        .recent()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Lets spawned stop/wake tasks run to completion under paused time.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn request_cause() -> WakeCause {
    WakeCause::Request {
        method: "GET".to_owned(),
        path: "/".to_owned(),
        user_agent: None,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

#[tokio::test(start_paused = true)]
async fn idle_stop_happens_after_max_idle_and_not_before() {
    let (lifecycle, fake) = setup(
        &[("web", AppStatus::Running)],
        Some(Duration::from_secs(15 * 60)),
    )
    .await;
    let web = app(&lifecycle, "web");
    assert_eq!(web.state(), State::Awake);
    fake.with(|s| s.allow_stop = true);

    advance(Duration::from_secs(15 * 60 - 1)).await;
    assert_eq!(lifecycle.check_idle(), 0);
    assert_eq!(web.state(), State::Awake);

    advance(Duration::from_secs(2)).await;
    assert_eq!(lifecycle.check_idle(), 1);
    settle().await;
    assert_eq!(web.state(), State::Asleep);
    assert_eq!(fake.with(|s| s.stops), 1);
    assert!(matches!(
        kinds(&lifecycle).as_slice(),
        [
            EventKind::Discovered { running: true },
            EventKind::StopRequested {
                cause: StopCause::Idle { .. }
            },
            EventKind::Stopped { .. }
        ]
    ));
    // Asleep apps are not stopped again.
    advance(Duration::from_secs(3600)).await;
    assert_eq!(lifecycle.check_idle(), 0);
}

#[tokio::test(start_paused = true)]
async fn activity_and_requests_in_progress_keep_an_app_awake() {
    let (lifecycle, fake) = setup(
        &[("web", AppStatus::Running)],
        Some(Duration::from_secs(60)),
    )
    .await;
    let web = app(&lifecycle, "web");
    advance(Duration::from_secs(50)).await;
    drop(lifecycle.begin_request(&web));
    advance(Duration::from_secs(50)).await;
    assert_eq!(lifecycle.check_idle(), 0, "touched 50 s ago");

    let in_flight = lifecycle.begin_request(&web);
    advance(Duration::from_secs(600)).await;
    assert_eq!(lifecycle.check_idle(), 0, "a request is in progress");
    drop(in_flight);
    advance(Duration::from_secs(59)).await;
    assert_eq!(lifecycle.check_idle(), 0);
    fake.with(|s| s.allow_stop = true);
    advance(Duration::from_secs(2)).await;
    assert_eq!(lifecycle.check_idle(), 1);
}

#[tokio::test(start_paused = true)]
async fn never_is_never_stopped() {
    let (lifecycle, _fake) = setup(&[("web", AppStatus::Running)], None).await;
    advance(Duration::from_secs(365 * 86_400)).await;
    assert_eq!(lifecycle.check_idle(), 0);
    assert_eq!(app(&lifecycle, "web").state(), State::Awake);
}

#[tokio::test(start_paused = true)]
async fn concurrent_wakes_start_once() {
    let (lifecycle, fake) = setup(&[("web", AppStatus::Stopped)], None).await;
    fake.with(|s| {
        s.allow_start = true;
        s.boot_polls = 5;
    });
    let web = app(&lifecycle, "web");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let lifecycle = Arc::clone(&lifecycle);
        let web = Arc::clone(&web);
        waiters.spawn(async move { lifecycle.ensure_awake(&web, request_cause, deadline).await });
    }
    while let Some(result) = waiters.join_next().await {
        let upstream = result.expect("task").expect("awake");
        assert_eq!(upstream.authority.as_str(), "127.0.0.1:10000");
    }
    assert_eq!(fake.with(|s| s.starts), 1);
    assert_eq!(web.state(), State::Awake);
    assert_eq!(web.start_durations().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wake_past_its_timeout_fails_and_stops_what_it_started() {
    let (lifecycle, fake) = setup(&[("web", AppStatus::Stopped)], None).await;
    fake.with(|s| {
        s.allow_start = true;
        s.allow_stop = true;
        s.boot_polls = usize::MAX;
    });
    let web = app(&lifecycle, "web");
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = lifecycle.ensure_awake(&web, request_cause, deadline).await;
    assert!(matches!(result, Err(WakeError::Timeout(_))), "{result:?}");
    settle().await;
    let phase = web.phase();
    assert_eq!(phase.state, State::Failed);
    assert!(
        phase
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("not ready after 120s"),
        "{phase:?}"
    );
    assert_eq!(fake.with(|s| s.stops), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_keeps_the_app_awake_and_retries_later() {
    let (lifecycle, fake) = setup(
        &[("web", AppStatus::Running)],
        Some(Duration::from_secs(60)),
    )
    .await;
    fake.with(|s| {
        s.allow_stop = true;
        s.fail_stop = true;
    });
    let web = app(&lifecycle, "web");
    advance(Duration::from_secs(61)).await;
    assert_eq!(lifecycle.check_idle(), 1);
    settle().await;
    assert_eq!(web.state(), State::Awake);
    assert!(
        kinds(&lifecycle)
            .iter()
            .any(|k| matches!(k, EventKind::StopFailed { .. }))
    );
    advance(Duration::from_secs(10)).await;
    assert_eq!(lifecycle.check_idle(), 0, "retry waits");
    fake.with(|s| s.fail_stop = false);
    advance(Duration::from_secs(25)).await;
    assert_eq!(lifecycle.check_idle(), 1);
    settle().await;
    assert_eq!(web.state(), State::Asleep);
}

#[tokio::test(start_paused = true)]
async fn discovery_follows_the_provider() {
    let (lifecycle, fake) = setup(
        &[("a", AppStatus::Stopped), ("b", AppStatus::Running)],
        None,
    )
    .await;
    assert_eq!(app(&lifecycle, "a").state(), State::Asleep);
    assert!(lifecycle.routes().get("a").is_some());
    assert!(lifecycle.routes().get("a--fake").is_some());

    // Started outside the engine: registered as awake. Stopped outside: asleep.
    fake.with(|s| {
        s.apps.insert("a".to_owned(), (AppStatus::Running, 0));
        s.apps.insert("b".to_owned(), (AppStatus::Stopped, 0));
    });
    lifecycle.discover().await;
    assert_eq!(app(&lifecycle, "a").state(), State::Awake);
    assert_eq!(app(&lifecycle, "b").state(), State::Asleep);

    // A failing provider keeps its apps.
    fake.with(|s| s.fail_list = true);
    lifecycle.discover().await;
    assert_eq!(lifecycle.apps().len(), 2);
    assert!(
        kinds(&lifecycle)
            .iter()
            .any(|k| matches!(k, EventKind::ProviderError { .. }))
    );

    // A vanished app is dropped, with its routes.
    fake.with(|s| {
        s.fail_list = false;
        s.apps.remove("b");
    });
    lifecycle.discover().await;
    assert_eq!(lifecycle.apps().len(), 1);
    assert!(lifecycle.routes().get("b").is_none());
    assert!(kinds(&lifecycle).contains(&EventKind::Deleted));
}

#[tokio::test(start_paused = true)]
async fn a_listing_taken_before_a_stop_does_not_wake_the_app_again() {
    let (lifecycle, fake) = setup(
        &[("web", AppStatus::Running)],
        Some(Duration::from_secs(60)),
    )
    .await;
    let web = app(&lifecycle, "web");
    fake.with(|s| {
        s.allow_stop = true;
        s.list_delay = Duration::from_secs(5);
    });
    advance(Duration::from_secs(61)).await;
    // The listing is asked for while the app runs, and arrives after it was stopped.
    let discovery = tokio::spawn({
        let lifecycle = Arc::clone(&lifecycle);
        async move { lifecycle.discover().await }
    });
    settle().await;
    assert_eq!(lifecycle.check_idle(), 1);
    settle().await;
    assert_eq!(web.state(), State::Asleep);
    advance(Duration::from_secs(5)).await;
    discovery.await.expect("discovery");
    assert_eq!(web.state(), State::Asleep, "a stale listing woke the app");
    assert!(!kinds(&lifecycle).contains(&EventKind::Registered));
    // A fresh listing still corrects the registry.
    fake.with(|s| {
        s.list_delay = Duration::ZERO;
        s.apps.insert("web".to_owned(), (AppStatus::Running, 0));
    });
    lifecycle.discover().await;
    assert_eq!(web.state(), State::Awake);
}

#[tokio::test(start_paused = true)]
async fn same_name_in_two_providers_is_ambiguous() {
    let first: Arc<dyn Provider> =
        Arc::new(FakeProvider::new("one", &[("shop", AppStatus::Stopped)]));
    let second: Arc<dyn Provider> =
        Arc::new(FakeProvider::new("two", &[("shop", AppStatus::Stopped)]));
    let lifecycle = Lifecycle::new(vec![first, second], Settings::default());
    lifecycle.discover().await;
    let routes = lifecycle.routes();
    match routes.get("shop") {
        Some(crate::lifecycle::route::Route::Ambiguous(keys)) => {
            let mut keys = keys.clone();
            keys.sort();
            assert_eq!(keys, vec!["shop--one", "shop--two"]);
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    assert!(matches!(
        routes.get("shop--two"),
        Some(crate::lifecycle::route::Route::App(app)) if &*app.key.provider == "two"
    ));
}

#[tokio::test(start_paused = true)]
async fn the_idle_check_walks_only_awake_apps_and_follows_every_transition() {
    let (lifecycle, fake) = setup(
        &[
            ("a", AppStatus::Running),
            ("b", AppStatus::Stopped),
            ("c", AppStatus::Stopped),
        ],
        Some(Duration::from_secs(60)),
    )
    .await;
    let awake = |lifecycle: &Lifecycle| -> Vec<String> {
        let mut names: Vec<String> = lifecycle
            .awake_apps()
            .iter()
            .map(|app| app.key.name.to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(awake(&lifecycle), ["a"], "registered awake");

    // Woken by a request: in the index once awake, and stopped by the idle check in time.
    fake.with(|s| {
        s.allow_start = true;
        s.allow_stop = true;
    });
    let b = app(&lifecycle, "b");
    lifecycle.request_wake(&b, request_cause).expect("wake");
    for _ in 0..50 {
        settle().await;
        advance(Duration::from_millis(200)).await;
        if b.state() == State::Awake {
            break;
        }
    }
    assert_eq!(b.state(), State::Awake);
    assert_eq!(awake(&lifecycle), ["a", "b"]);

    // Started outside the engine: discovery registers it awake.
    fake.with(|s| s.apps.insert("c".to_owned(), (AppStatus::Running, 0)));
    lifecycle.discover().await;
    assert_eq!(awake(&lifecycle), ["a", "b", "c"]);

    advance(Duration::from_secs(61)).await;
    assert_eq!(lifecycle.check_idle(), 3, "every awake app idle stops");
    settle().await;
    assert!(awake(&lifecycle).is_empty());
    assert_eq!(lifecycle.check_idle(), 0);

    // Stopped outside the engine, then deleted: nothing left behind.
    fake.with(|s| s.apps.insert("a".to_owned(), (AppStatus::Running, 0)));
    lifecycle.discover().await;
    assert_eq!(awake(&lifecycle), ["a"]);
    fake.with(|s| s.apps.remove("a"));
    lifecycle.discover().await;
    assert!(
        awake(&lifecycle).is_empty(),
        "a deleted app leaves the index"
    );
}

#[tokio::test(start_paused = true)]
async fn discovery_writes_to_the_catalog_only_what_changed_and_once_an_hour() {
    let (lifecycle, fake) = setup(
        &[("a", AppStatus::Running), ("b", AppStatus::Stopped)],
        None,
    )
    .await;
    let (records, mut queue) = tokio::sync::mpsc::unbounded_channel();
    lifecycle.record_to(records);
    let mut seen = move || {
        let mut names = Vec::new();
        while let Ok(record) = queue.try_recv() {
            if let Record::Seen { key, seen, .. } = record {
                names.push(format!("{}:{}", key.name, seen.running));
            }
        }
        names.sort();
        names
    };
    // The first listing after registration says the same: nothing written.
    lifecycle.discover().await;
    assert!(seen().is_empty());

    // A new app, and one whose state changed outside the engine: those two only.
    fake.with(|s| {
        s.apps.insert("b".to_owned(), (AppStatus::Running, 0));
        s.apps.insert("c".to_owned(), (AppStatus::Stopped, 0));
    });
    lifecycle.discover().await;
    assert_eq!(seen(), ["b:true", "c:false"]);
    lifecycle.discover().await;
    assert!(seen().is_empty());

    // An hour on, each is written again (its "last seen"), once.
    advance(Duration::from_secs(3600)).await;
    lifecycle.discover().await;
    assert_eq!(seen(), ["a:true", "b:true", "c:false"]);
    lifecycle.discover().await;
    assert!(seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_transition_is_told_before_anyone_waiting_on_the_state_is_woken() {
    let (lifecycle, _) = setup(&[("web", AppStatus::Stopped)], None).await;
    let web = app(&lifecycle, "web");
    let waiting = web.phase.subscribe();
    // What a waiter would see while the event is being recorded: not the change yet.
    let seen_while_told = std::cell::Cell::new(None);
    assert!(
        web.transition_told(&[State::Asleep], State::Waking, None, || {
            seen_while_told.set(waiting.has_changed().ok());
        })
    );
    assert_eq!(
        seen_while_told.get(),
        Some(false),
        "told before the waiters"
    );
    assert_eq!(waiting.has_changed().ok(), Some(true), "then woken");
    // No change, nothing told.
    assert!(
        !web.transition_told(&[State::Asleep], State::Awake, None, || {
            panic!("told of a transition that did not happen")
        })
    );
}
