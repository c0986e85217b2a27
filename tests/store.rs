//! The store against SQLite (a temporary file) and PostgreSQL (a throwaway server started by
//! `support::postgres`): one suite of async functions taking an `Arc<dyn Store>`, each run
//! on both databases (`<suite>::sqlite`, `<suite>::postgres`). Then what only one database
//! has: reopening a file, a corrupted file, unusable paths, unreachable servers, passwords.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paastis::events::{Event, EventKind, StopCause, WakeCause};
use paastis::model::AppKey;
use paastis::store::{
    self, CatalogEntry, EventQuery, MAX_EVENTS_LIMIT, SeenApp, Store, StoreError, StoredEvent,
    StoredSpace, StoredToken,
};
use support::TempDir;

/// 2023-11-14T22:13:20Z, a round number of milliseconds.
const BASE: u64 = 1_700_000_000_000;

/// `BASE + ms`.
fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(BASE + ms)
}

fn key(space: &str, provider: &str, name: &str) -> AppKey {
    AppKey::new(space, provider, name)
}

fn seen(upstream: Option<&str>, running: bool) -> SeenApp {
    SeenApp {
        upstream: upstream.map(str::to_owned),
        running,
    }
}

/// A store on a new SQLite file; the folder goes when the returned guard drops.
async fn sqlite() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new("store");
    let url = format!(
        "sqlite://{}",
        dir.path("nested/folder/paastis.db").display()
    );
    let store = store::open(&url)
        .await
        .unwrap_or_else(|error| panic!("{url}: {error}"));
    (store, dir)
}

/// A store on a new database of the throwaway PostgreSQL.
async fn postgres() -> Arc<dyn Store> {
    let database = support::postgres::database().await;
    store::open(&database.url)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL test database: {error}"))
}

/// Runs a suite on SQLite and on PostgreSQL: `<suite>::sqlite` and `<suite>::postgres`.
macro_rules! on_both {
    ($($suite:ident),* $(,)?) => {$(
        mod $suite {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir) = super::sqlite().await;
                super::$suite(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$suite(super::postgres().await).await;
            }
        }
    )*};
}

on_both!(
    catalog_seen_deleted_and_back,
    formation_remembered_and_forgotten,
    start_history_keeps_the_newest,
    time_asleep_accumulates,
    many_apps_seen_and_states_in_one_go,
    activity_never_moves_back,
    every_event_kind_round_trips,
    event_filters,
    pagination_gives_every_event_once,
    events_after_an_id_in_id_order,
    a_follower_misses_no_concurrent_append,
    malformed_cursor_and_limits,
    pruning_deletes_only_older_events,
    stored_spaces_round_trip_with_their_tokens,
    the_first_key_check_is_kept,
    a_new_key_replaces_every_sealed_value_or_nothing,
    health_answers,
);

fn entry<'a>(catalog: &'a [CatalogEntry], key: &AppKey) -> &'a CatalogEntry {
    catalog
        .iter()
        .find(|entry| &entry.key == key)
        .unwrap_or_else(|| panic!("{key} not in the catalog: {catalog:#?}"))
}

async fn catalog_seen_deleted_and_back(store: Arc<dyn Store>) {
    let web = key("default", "local", "web");
    let api = key("acme", "scalingo", "api");
    assert!(store.catalog(None).await.expect("catalog").is_empty());

    store
        .app_seen(&web, &seen(Some("http://127.0.0.1:8001"), false), t(1_000))
        .await
        .expect("seen");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(
        catalog,
        vec![CatalogEntry {
            key: web.clone(),
            upstream: Some("http://127.0.0.1:8001".into()),
            running: false,
            first_seen: t(1_000),
            last_seen: t(1_000),
            deleted_at: None,
            formation: None,
            start_durations: vec![],
            asleep_since: None,
            asleep_total: Duration::ZERO,
            last_activity: None,
        }]
    );

    // Seen again: last seen, upstream and running follow; first seen stays.
    store
        .app_seen(&web, &seen(None, true), t(2_000))
        .await
        .expect("seen");
    let catalog = store.catalog(None).await.expect("catalog");
    let e = entry(&catalog, &web);
    assert_eq!(
        (e.first_seen, e.last_seen, &e.upstream, e.running),
        (t(1_000), t(2_000), &None, true)
    );

    // Deleted: the first deletion time is kept.
    store.app_deleted(&web, t(3_000)).await.expect("deleted");
    store.app_deleted(&web, t(4_000)).await.expect("deleted");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(entry(&catalog, &web).deleted_at, Some(t(3_000)));

    // And back.
    store
        .app_seen(&web, &seen(Some("http://127.0.0.1:8002"), true), t(5_000))
        .await
        .expect("seen");
    let catalog = store.catalog(None).await.expect("catalog");
    let e = entry(&catalog, &web);
    assert_eq!(e.deleted_at, None);
    assert_eq!((e.first_seen, e.last_seen), (t(1_000), t(5_000)));
    assert_eq!(e.upstream.as_deref(), Some("http://127.0.0.1:8002"));

    // Spaces: one space, or all in (space, provider, name) order.
    store
        .app_seen(&api, &seen(None, false), t(6_000))
        .await
        .expect("seen");
    let acme = store.catalog(Some("acme")).await.expect("catalog");
    assert_eq!(
        acme.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        vec![api.clone()]
    );
    let all = store.catalog(None).await.expect("catalog");
    assert_eq!(
        all.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        vec![api.clone(), web.clone()]
    );
    assert!(
        store
            .catalog(Some("nobody"))
            .await
            .expect("catalog")
            .is_empty()
    );

    // Writes about an app never seen say so.
    let ghost = key("default", "local", "ghost");
    assert!(matches!(
        store.app_deleted(&ghost, t(1)).await,
        Err(StoreError::UnknownApp(name)) if name == "local/ghost"
    ));
}

async fn formation_remembered_and_forgotten(store: Arc<dyn Store>) {
    let web = key("default", "heroku", "web");
    store
        .app_seen(&web, &seen(None, true), t(0))
        .await
        .expect("seen");
    let formation = BTreeMap::from([("web".to_owned(), 2), ("worker".to_owned(), 1)]);
    store
        .set_formation(&web, Some(&formation))
        .await
        .expect("set");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(entry(&catalog, &web).formation, Some(formation.clone()));

    let other = BTreeMap::from([("web".to_owned(), 0)]);
    store.set_formation(&web, Some(&other)).await.expect("set");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(entry(&catalog, &web).formation, Some(other));

    store.set_formation(&web, None).await.expect("forget");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(entry(&catalog, &web).formation, None);

    assert!(matches!(
        store
            .set_formation(&key("default", "heroku", "ghost"), Some(&formation))
            .await,
        Err(StoreError::UnknownApp(_))
    ));
}

async fn start_history_keeps_the_newest(store: Arc<dyn Store>) {
    let web = key("default", "local", "web");
    let api = key("default", "local", "api");
    for app in [&web, &api] {
        store
            .app_seen(app, &seen(None, false), t(0))
            .await
            .expect("seen");
    }
    for n in 1..=25u64 {
        store
            .record_start(&web, Duration::from_millis(n * 1_000 + n), t(n * 60_000))
            .await
            .expect("start");
    }
    store
        .record_start(&api, Duration::from_millis(4_321), t(10))
        .await
        .expect("start");
    let catalog = store.catalog(None).await.expect("catalog");
    let expected: Vec<Duration> = (6..=25u64)
        .map(|n| Duration::from_millis(n * 1_000 + n))
        .collect();
    assert_eq!(entry(&catalog, &web).start_durations, expected);
    assert_eq!(
        entry(&catalog, &api).start_durations,
        vec![Duration::from_millis(4_321)]
    );
    assert!(matches!(
        store
            .record_start(&key("x", "y", "z"), Duration::from_secs(1), t(0))
            .await,
        Err(StoreError::UnknownApp(name)) if name == "x:y/z"
    ));
}

async fn many_apps_seen_and_states_in_one_go(store: Arc<dyn Store>) {
    let web = key("default", "scalingo", "web");
    let api = key("default", "scalingo", "api");
    let gone = key("default", "scalingo", "never-seen");
    store
        .app_seen(&web, &seen(Some("http://127.0.0.1:8001"), false), t(1_000))
        .await
        .expect("seen");
    store.app_deleted(&web, t(1_500)).await.expect("deleted");
    // Seen together: a known app updated (and back), a new one created.
    store
        .apps_seen(&[
            (
                web.clone(),
                seen(Some("http://127.0.0.1:8002"), true),
                t(2_000),
            ),
            (api.clone(), seen(None, false), t(2_000)),
        ])
        .await
        .expect("seen");
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(catalog.len(), 2);
    let e = entry(&catalog, &web);
    assert_eq!(
        (e.first_seen, e.last_seen, e.deleted_at, e.running),
        (t(1_000), t(2_000), None, true)
    );
    assert_eq!(e.upstream.as_deref(), Some("http://127.0.0.1:8002"));
    let e = entry(&catalog, &api);
    assert_eq!((e.first_seen, e.running), (t(2_000), false));

    // States in order, an app without a row skipped.
    let written = store
        .record_states(&[
            (web.clone(), true, t(3_000)),
            (gone.clone(), true, t(3_000)),
            (api.clone(), true, t(3_000)),
            (web.clone(), false, t(5_000)),
        ])
        .await
        .expect("states");
    assert_eq!(written, 3);
    let catalog = store.catalog(None).await.expect("catalog");
    let e = entry(&catalog, &web);
    assert_eq!(
        (e.asleep_since, e.asleep_total),
        (None, Duration::from_millis(2_000))
    );
    assert_eq!(entry(&catalog, &api).asleep_since, Some(t(3_000)));
    assert!(catalog.iter().all(|e| e.key != gone));
    assert_eq!(store.apps_seen(&[]).await.ok(), Some(()));
    assert_eq!(store.record_states(&[]).await.ok(), Some(0));
}

async fn time_asleep_accumulates(store: Arc<dyn Store>) {
    let web = key("default", "local", "web");
    store
        .app_seen(&web, &seen(None, true), t(0))
        .await
        .expect("seen");
    let asleep = |catalog: Vec<CatalogEntry>| {
        let e = entry(&catalog, &web);
        (e.asleep_since, e.asleep_total)
    };

    store
        .record_state(&web, true, t(1_000))
        .await
        .expect("sleep");
    // Told twice: the first time stands.
    store
        .record_state(&web, true, t(1_500))
        .await
        .expect("sleep");
    assert_eq!(
        asleep(store.catalog(None).await.expect("catalog")),
        (Some(t(1_000)), Duration::ZERO)
    );
    store
        .record_state(&web, false, t(4_000))
        .await
        .expect("wake");
    assert_eq!(
        asleep(store.catalog(None).await.expect("catalog")),
        (None, Duration::from_millis(3_000))
    );
    // Waking an awake app adds nothing.
    store
        .record_state(&web, false, t(5_000))
        .await
        .expect("wake");
    store
        .record_state(&web, true, t(10_000))
        .await
        .expect("sleep");
    store
        .record_state(&web, false, t(10_500))
        .await
        .expect("wake");
    assert_eq!(
        asleep(store.catalog(None).await.expect("catalog")),
        (None, Duration::from_millis(3_500))
    );
    // Asleep now: the current sleep is not in the total yet.
    store
        .record_state(&web, true, t(20_000))
        .await
        .expect("sleep");
    assert_eq!(
        asleep(store.catalog(None).await.expect("catalog")),
        (Some(t(20_000)), Duration::from_millis(3_500))
    );
    // A wake dated before the sleep (clocks of two instances) adds nothing.
    store
        .record_state(&web, false, t(19_000))
        .await
        .expect("wake");
    assert_eq!(
        asleep(store.catalog(None).await.expect("catalog")),
        (None, Duration::from_millis(3_500))
    );
    assert!(matches!(
        store
            .record_state(&key("default", "local", "ghost"), true, t(0))
            .await,
        Err(StoreError::UnknownApp(_))
    ));
}

async fn activity_never_moves_back(store: Arc<dyn Store>) {
    let a = key("default", "local", "a");
    let b = key("default", "local", "b");
    for app in [&a, &b] {
        store
            .app_seen(app, &seen(None, true), t(0))
            .await
            .expect("seen");
    }
    let activity = |catalog: &[CatalogEntry], app: &AppKey| entry(catalog, app).last_activity;

    assert_eq!(store.record_activity(&[]).await.expect("none"), 0);
    let written = store
        .record_activity(&[(a.clone(), t(10_000)), (b.clone(), t(5_000))])
        .await
        .expect("flush");
    assert_eq!(written, 2);
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(activity(&catalog, &a), Some(t(10_000)));
    assert_eq!(activity(&catalog, &b), Some(t(5_000)));

    // Older: ignored. Unknown apps: skipped. The same app twice: the newest wins.
    let written = store
        .record_activity(&[
            (a.clone(), t(3_000)),
            (key("default", "local", "ghost"), t(1)),
            (b.clone(), t(7_000)),
            (b.clone(), t(6_000)),
        ])
        .await
        .expect("flush");
    assert_eq!(written, 3);
    let catalog = store.catalog(None).await.expect("catalog");
    assert_eq!(activity(&catalog, &a), Some(t(10_000)));
    assert_eq!(activity(&catalog, &b), Some(t(7_000)));
    assert!(catalog.iter().all(|e| &*e.key.name != "ghost"));
}

/// One of each kind and of each cause. A new kind or cause makes the `match` below fail to
/// compile: add it to the list.
fn every_kind() -> Vec<EventKind> {
    let kinds = vec![
        EventKind::Discovered { running: true },
        EventKind::Discovered { running: false },
        EventKind::Registered,
        EventKind::WakeRequested {
            cause: WakeCause::Request {
                method: "GET".into(),
                path: "/dashboard/é?".into(),
                user_agent: Some("Mozilla/5.0 \"quoted\" \\ {json}".into()),
                client_ip: "203.0.113.7".parse::<IpAddr>().expect("ip"),
            },
        },
        EventKind::WakeRequested {
            cause: WakeCause::Request {
                method: "POST".into(),
                path: "/".into(),
                user_agent: None,
                client_ip: "2001:db8::1".parse::<IpAddr>().expect("ip"),
            },
        },
        EventKind::WakeRequested {
            cause: WakeCause::Schedule {
                schedule: "review-*".into(),
            },
        },
        EventKind::WakeRequested {
            cause: WakeCause::Api {
                by: Some("ops".into()),
            },
        },
        EventKind::WakeRequested {
            cause: WakeCause::Api { by: None },
        },
        EventKind::StopRequested {
            cause: StopCause::Schedule {
                schedule: "review-*".into(),
            },
        },
        EventKind::StopRequested {
            cause: StopCause::Api { by: None },
        },
        EventKind::StopRequested {
            cause: StopCause::PlanLimit {
                for_app: "shop".into(),
            },
        },
        EventKind::StopVetoed {
            reason: "exit status 1: jobs running".into(),
        },
        EventKind::WakeRequested {
            cause: WakeCause::Linked { app: "api".into() },
        },
        EventKind::Started {
            duration: Duration::from_millis(12_345),
            reconciled: None,
        },
        EventKind::Started {
            duration: Duration::from_millis(2_500),
            reconciled: Some(paastis::model::Reconciled {
                dropped: vec!["worker".into()],
                formation: [("web".to_owned(), 2)].into(),
                left: [("clock".to_owned(), 0)].into(),
                upstream: Some("https://shop.example.com".into()),
            }),
        },
        EventKind::StartFailed {
            reason: "timed out after 120s".into(),
        },
        EventKind::WakeRefused {
            reason: "the plan `free` allows 5 running apps on `local`, and 5 are running".into(),
        },
        EventKind::StopRequested {
            cause: StopCause::Idle {
                idle_for: Duration::from_secs(900),
            },
        },
        EventKind::StopRequested {
            cause: StopCause::WakeFailed,
        },
        EventKind::Stopped {
            formation: None,
            sizes: Default::default(),
        },
        EventKind::StopFailed {
            reason: "HTTP 503".into(),
        },
        EventKind::Exited {
            reason: "exit status: 1\0 and a NUL, a tab\t, \u{1F600}".into(),
        },
        EventKind::Deleted,
        EventKind::ProviderError {
            message: "401 Unauthorized".into(),
        },
        EventKind::HookFailed {
            hook: "after_start".into(),
            reason: "exited with status 4: boom".into(),
        },
        EventKind::StopRequested {
            cause: StopCause::Unmanaged,
        },
        EventKind::Unmanaged { running: true },
        EventKind::ConfigReloaded {
            revision: "0123456789ab".into(),
            changes: vec!["rules".into(), "providers: local (added)".into()],
        },
        EventKind::ConfigRejected {
            errors: vec!["rules[0].pattern: is required".into()],
        },
    ];
    for kind in &kinds {
        // Exhaustive on purpose: add the new variant to the list above.
        match kind {
            EventKind::Discovered { .. }
            | EventKind::Registered
            | EventKind::WakeRequested {
                cause:
                    WakeCause::Request { .. }
                    | WakeCause::Linked { .. }
                    | WakeCause::Schedule { .. }
                    | WakeCause::Api { .. },
            }
            | EventKind::Started { .. }
            | EventKind::StartFailed { .. }
            | EventKind::WakeRefused { .. }
            | EventKind::StopRequested {
                cause:
                    StopCause::Idle { .. }
                    | StopCause::WakeFailed
                    | StopCause::Schedule { .. }
                    | StopCause::Api { .. }
                    | StopCause::PlanLimit { .. }
                    | StopCause::Unmanaged,
            }
            | EventKind::Stopped { .. }
            | EventKind::StopVetoed { .. }
            | EventKind::StopFailed { .. }
            | EventKind::Exited { .. }
            | EventKind::Deleted
            | EventKind::ProviderError { .. }
            | EventKind::HookFailed { .. }
            | EventKind::Unmanaged { .. }
            | EventKind::ConfigReloaded { .. }
            | EventKind::ConfigRejected { .. } => {}
        }
    }
    kinds
}

/// Newest first, as the store answers.
fn newest_first(events: &[Event]) -> Vec<Event> {
    // Stable sort on a reversed list: equal times keep insertion order reversed (id DESC).
    let mut sorted: Vec<Event> = events.iter().rev().cloned().collect();
    sorted.sort_by_key(|event| std::cmp::Reverse(event.at));
    sorted
}

fn plain(events: &[StoredEvent]) -> Vec<Event> {
    events.iter().map(|e| e.event.clone()).collect()
}

async fn every_event_kind_round_trips(store: Arc<dyn Store>) {
    let app = key("acme", "scalingo-fr1", "web-app");
    let events: Vec<Event> = every_kind()
        .into_iter()
        .enumerate()
        .map(|(n, kind)| Event {
            at: t(n as u64 * 1_000),
            app: app.clone(),
            kind,
        })
        .collect();
    store.append_events(&events).await.expect("append");
    store.append_events(&[]).await.expect("nothing to append");
    let page = store
        .events(&EventQuery {
            limit: Some(500),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert_eq!(plain(&page.events), newest_first(&events));
    assert_eq!(page.next_cursor, None);
    let ids: HashSet<i64> = page.events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len());

    // Provider-wide events have an empty app name.
    let provider_wide = Event {
        at: t(100_000),
        app: key("default", "heroku", ""),
        kind: EventKind::ProviderError {
            message: "rate limited".into(),
        },
    };
    store
        .append_events(std::slice::from_ref(&provider_wide))
        .await
        .expect("append");
    let page = store
        .events(&EventQuery {
            limit: Some(1),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert_eq!(plain(&page.events), vec![provider_wide]);
}

/// Events over 2 spaces, 3 providers, 3 apps, several kinds, 1 second apart.
fn mixed_events() -> Vec<Event> {
    let apps = [
        key("default", "local", "web"),
        key("default", "local", "api"),
        key("default", "scalingo", "web"),
        key("acme", "scalingo", "web"),
        key("acme", "heroku", "shop"),
    ];
    let kinds = every_kind();
    (0..200u64)
        .map(|n| Event {
            at: t(n * 1_000),
            app: apps[(n % 5) as usize].clone(),
            kind: kinds[(n % 7) as usize].clone(),
        })
        .collect()
}

fn kind_name(kind: &EventKind) -> String {
    serde_json::to_value(kind).expect("json")["kind"]
        .as_str()
        .expect("kind")
        .to_owned()
}

/// Which of the appended events a filter keeps.
type Keep = Box<dyn Fn(&Event) -> bool>;

async fn event_filters(store: Arc<dyn Store>) {
    let events = mixed_events();
    store.append_events(&events).await.expect("append");
    let all = EventQuery {
        limit: Some(500),
        ..EventQuery::default()
    };
    let cases: Vec<(&str, EventQuery, Keep)> = vec![
        ("everything", all.clone(), Box::new(|_| true)),
        (
            "space",
            EventQuery {
                space: Some("acme".into()),
                ..all.clone()
            },
            Box::new(|e| &*e.app.space == "acme"),
        ),
        (
            "provider",
            EventQuery {
                provider: Some("scalingo".into()),
                ..all.clone()
            },
            Box::new(|e| &*e.app.provider == "scalingo"),
        ),
        (
            "app",
            EventQuery {
                app: Some("web".into()),
                ..all.clone()
            },
            Box::new(|e| &*e.app.name == "web"),
        ),
        (
            "one kind",
            EventQuery {
                kinds: vec!["wake_requested".into()],
                ..all.clone()
            },
            Box::new(|e| matches!(e.kind, EventKind::WakeRequested { .. })),
        ),
        (
            "several kinds",
            EventQuery {
                kinds: vec!["started".into(), "discovered".into(), "no_such_kind".into()],
                ..all.clone()
            },
            Box::new(|e| {
                matches!(
                    e.kind,
                    EventKind::Started { .. } | EventKind::Discovered { .. }
                )
            }),
        ),
        (
            "since (inclusive)",
            EventQuery {
                since: Some(t(150_000)),
                ..all.clone()
            },
            Box::new(|e| e.at >= t(150_000)),
        ),
        (
            "until (exclusive)",
            EventQuery {
                until: Some(t(20_000)),
                ..all.clone()
            },
            Box::new(|e| e.at < t(20_000)),
        ),
        (
            "combined",
            EventQuery {
                space: Some("default".into()),
                provider: Some("local".into()),
                app: Some("web".into()),
                kinds: vec!["wake_requested".into(), "stopped".into()],
                since: Some(t(30_000)),
                until: Some(t(180_000)),
                ..all.clone()
            },
            Box::new(|e| {
                &*e.app.space == "default"
                    && &*e.app.provider == "local"
                    && &*e.app.name == "web"
                    && matches!(
                        e.kind,
                        EventKind::WakeRequested { .. } | EventKind::Stopped { .. }
                    )
                    && e.at >= t(30_000)
                    && e.at < t(180_000)
            }),
        ),
        (
            "nothing",
            EventQuery {
                space: Some("acme".into()),
                provider: Some("local".into()),
                ..all.clone()
            },
            Box::new(|_| false),
        ),
    ];
    for (name, query, keep) in cases {
        let expected: Vec<Event> = newest_first(&events)
            .into_iter()
            .filter(|e| keep(e))
            .collect();
        let page = store.events(&query).await.expect("events");
        assert_eq!(plain(&page.events), expected, "filter: {name}");
        assert_eq!(page.next_cursor, None, "filter: {name}");
        if name == "combined" {
            assert!(!expected.is_empty(), "the combined case selects something");
        }
    }
    // The kind names are the serialised tags.
    assert_eq!(
        kind_name(&EventKind::Stopped {
            formation: None,
            sizes: Default::default()
        }),
        "stopped"
    );
}

async fn pagination_gives_every_event_once(store: Arc<dyn Store>) {
    // Three events per millisecond: the id breaks ties.
    let app = key("default", "local", "web");
    let events: Vec<Event> = (0..1_234u64)
        .map(|n| Event {
            at: t(n / 3),
            app: app.clone(),
            kind: EventKind::Exited {
                reason: n.to_string(),
            },
        })
        .collect();
    store.append_events(&events).await.expect("append");

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .events(&EventQuery {
                limit: Some(100),
                cursor: cursor.clone(),
                ..EventQuery::default()
            })
            .await
            .expect("page");
        pages += 1;
        assert!(page.events.len() <= 100);
        seen.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    assert_eq!(pages, 13);
    assert_eq!(seen.len(), 1_234);
    let ids: HashSet<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 1_234, "every event exactly once");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].event.at, w[0].id) > (w[1].event.at, w[1].id)),
        "newest first"
    );
    assert_eq!(plain(&seen), newest_first(&events));

    // Filtered, and exactly a multiple of the page size: times 400..=411 hold 34 events
    // (n = 1200..=1233); two pages of 17, the second without a next cursor.
    let query = EventQuery {
        limit: Some(17),
        since: Some(t(400)),
        until: Some(t(1_000)),
        ..EventQuery::default()
    };
    let first = store.events(&query).await.expect("page");
    assert_eq!(first.events.len(), 17);
    assert!(first.next_cursor.is_some());
    let second = store
        .events(&EventQuery {
            cursor: first.next_cursor.clone(),
            ..query.clone()
        })
        .await
        .expect("page");
    assert_eq!(second.events.len(), 17);
    assert_eq!(second.next_cursor, None);
    let both: Vec<Event> = plain(&first.events)
        .into_iter()
        .chain(plain(&second.events))
        .collect();
    assert_eq!(both, newest_first(&events[1_200..]));
}

async fn events_after_an_id_in_id_order(store: Arc<dyn Store>) {
    assert_eq!(store.last_event_id().await.expect("no event yet"), 0);
    // Times out of order with ids: `after` follows ids, not times.
    let events = mixed_events();
    let mut shuffled = events.clone();
    shuffled.reverse();
    store.append_events(&shuffled).await.expect("append");
    let everything = store
        .events(&EventQuery {
            after: Some(0),
            limit: Some(500),
            ..EventQuery::default()
        })
        .await
        .expect("all");
    assert_eq!(everything.events.len(), 200);
    assert_eq!(plain(&everything.events), shuffled, "in id order");
    assert_eq!(everything.next_cursor, None);
    assert_eq!(
        store.last_event_id().await.expect("newest id"),
        everything.events.last().expect("events").id
    );

    // Followed page by page, filtered: every matching event once, in id order.
    let query = EventQuery {
        space: Some("acme".into()),
        kinds: vec![kind_name(&every_kind()[0]), kind_name(&every_kind()[3])],
        limit: Some(7),
        ..EventQuery::default()
    };
    let wanted: Vec<&StoredEvent> = everything
        .events
        .iter()
        .filter(|e| {
            &*e.event.app.space == "acme" && query.kinds.contains(&kind_name(&e.event.kind))
        })
        .collect();
    assert!(wanted.len() > 7, "more than one page");
    let mut last = 0;
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = store
            .events(&EventQuery {
                after: Some(last),
                ..query.clone()
            })
            .await
            .expect("page");
        assert_eq!(page.next_cursor, None, "followers ask again with `after`");
        let Some(newest) = page.events.last() else {
            break;
        };
        last = newest.id;
        seen.extend(page.events);
    }
    assert_eq!(
        seen.iter().map(|e| e.id).collect::<Vec<_>>(),
        wanted.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // Later appends follow the last id.
    let later = mixed_events()[..3].to_vec();
    store.append_events(&later).await.expect("append more");
    let newest = everything.events.last().expect("events").id;
    let next = store
        .events(&EventQuery {
            after: Some(newest),
            ..EventQuery::default()
        })
        .await
        .expect("after the newest");
    assert_eq!(plain(&next.events), later);
    assert!(next.events.iter().all(|e| e.id > newest));

    // A cursor and `after` together make no sense.
    let cursor = store
        .events(&EventQuery {
            limit: Some(1),
            ..EventQuery::default()
        })
        .await
        .expect("page")
        .next_cursor;
    assert!(matches!(
        store
            .events(&EventQuery {
                after: Some(1),
                cursor,
                ..EventQuery::default()
            })
            .await,
        Err(StoreError::BadQuery(_))
    ));
}

async fn a_follower_misses_no_concurrent_append(store: Arc<dyn Store>) {
    // Four writers (as several instances would be) append one event at a time while a
    // follower reads after the last id it saw: ids must become visible in order.
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for n in 0..50u64 {
                    let event = Event {
                        at: t(n),
                        app: key("default", "local", &format!("w{writer}")),
                        kind: EventKind::Exited {
                            reason: n.to_string(),
                        },
                    };
                    store.append_events(&[event]).await.expect("append");
                }
            })
        })
        .collect();
    let mut last = 0;
    let mut seen = Vec::new();
    let mut done = false;
    loop {
        let page = store
            .events(&EventQuery {
                after: Some(last),
                limit: Some(500),
                ..EventQuery::default()
            })
            .await
            .expect("follow");
        for event in page.events {
            assert!(event.id > last, "ids in order");
            last = event.id;
            seen.push(event.id);
        }
        if done {
            break;
        }
        // One more read once every writer is done.
        done = writers.iter().all(|writer| writer.is_finished());
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    assert_eq!(seen.len(), 200, "every event once");
}

async fn malformed_cursor_and_limits(store: Arc<dyn Store>) {
    let app = key("default", "local", "web");
    let events: Vec<Event> = (0..600u64)
        .map(|n| Event {
            at: t(n),
            app: app.clone(),
            kind: EventKind::Stopped {
                formation: None,
                sizes: Default::default(),
            },
        })
        .collect();
    store.append_events(&events).await.expect("append");
    for cursor in ["garbage!", "", "bm90IGEgY3Vyc29y", "MTIzNDU2"] {
        let answer = store
            .events(&EventQuery {
                cursor: Some(cursor.into()),
                ..EventQuery::default()
            })
            .await;
        assert!(
            matches!(answer, Err(StoreError::BadCursor)),
            "{cursor:?}: {answer:?}"
        );
    }
    let too_many = store
        .events(&EventQuery {
            kinds: (0..1_000).map(|n| format!("kind_{n}")).collect(),
            ..EventQuery::default()
        })
        .await;
    assert!(
        matches!(too_many, Err(StoreError::BadQuery(_))),
        "{too_many:?}"
    );
    let page = |limit| {
        let store = Arc::clone(&store);
        async move {
            store
                .events(&EventQuery {
                    limit,
                    ..EventQuery::default()
                })
                .await
                .expect("events")
                .events
                .len()
        }
    };
    assert_eq!(page(None).await, 50);
    assert_eq!(page(Some(0)).await, 1);
    assert_eq!(page(Some(10_000)).await, MAX_EVENTS_LIMIT as usize);
}

async fn pruning_deletes_only_older_events(store: Arc<dyn Store>) {
    let app = key("default", "local", "web");
    // More than one pruning batch of old events, and some at and after the limit.
    let old = 12_345u64;
    let events: Vec<Event> = (0..old + 100)
        .map(|n| Event {
            at: t(n),
            app: app.clone(),
            kind: EventKind::Stopped {
                formation: None,
                sizes: Default::default(),
            },
        })
        .collect();
    store.append_events(&events).await.expect("append");
    assert_eq!(store.prune_events(t(old)).await.expect("prune"), old);
    let mut left = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .events(&EventQuery {
                limit: Some(500),
                cursor,
                ..EventQuery::default()
            })
            .await
            .expect("events");
        left.extend(page.events);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(left.len(), 100);
    assert!(left.iter().all(|e| e.event.at >= t(old)));
    assert_eq!(store.prune_events(t(old)).await.expect("prune"), 0);
    assert_eq!(
        store.prune_events(t(old + 1_000)).await.expect("prune"),
        100
    );
}

async fn health_answers(store: Arc<dyn Store>) {
    store.health().await.expect("healthy");
    store.close().await;
    assert!(
        store.health().await.is_err(),
        "closed stores are not healthy"
    );
}

fn space(id: &str, revision: i64, tokens: &[&str]) -> StoredSpace {
    StoredSpace {
        id: id.to_owned(),
        settings: format!(r#"{{"id":"{id}","domains":["{id}.test"]}}"#),
        providers: format!("v1:sealed-{id}-{revision}"),
        revision,
        created_at: t(0),
        updated_at: t(revision as u64 * 1000),
        tokens: tokens
            .iter()
            .enumerate()
            .map(|(index, token)| StoredToken {
                id: format!("tok_{token}"),
                hash: format!("{token:0>64}"),
                created_at: t(index as u64),
            })
            .collect(),
    }
}

async fn stored_spaces_round_trip_with_their_tokens(store: Arc<dyn Store>) {
    assert_eq!(store.stored_spaces().await.expect("none"), []);
    // No key check yet: nothing is written.
    assert!(matches!(
        store
            .put_space(&space("globex", 1, &["a"]), "v1:check")
            .await,
        Err(StoreError::KeyChanged)
    ));
    assert_eq!(
        store.key_check("v1:check").await.expect("check"),
        "v1:check"
    );
    store
        .put_space(&space("globex", 1, &["a"]), "v1:check")
        .await
        .expect("put");
    store
        .put_space(&space("acme", 1, &["b", "c"]), "v1:check")
        .await
        .expect("put");
    // A catalog row of acme, removed with it; globex's stays.
    store
        .app_seen(&key("acme", "hk", "shop"), &seen(None, true), t(5))
        .await
        .expect("seen");
    store
        .app_seen(&key("globex", "hk", "shop"), &seen(None, true), t(5))
        .await
        .expect("seen");
    assert_eq!(
        store.stored_spaces().await.expect("list"),
        [space("acme", 1, &["b", "c"]), space("globex", 1, &["a"])]
    );
    // Replaced: settings, revision and exactly the tokens given.
    store
        .put_space(&space("acme", 2, &["c", "d"]), "v1:check")
        .await
        .expect("put");
    let spaces = store.stored_spaces().await.expect("list");
    assert_eq!(spaces[0], space("acme", 2, &["c", "d"]));
    // A token hash is one space's only.
    assert!(
        store
            .put_space(&space("globex", 2, &["d"]), "v1:check")
            .await
            .is_err()
    );
    assert_eq!(
        store.stored_spaces().await.expect("list")[1],
        space("globex", 1, &["a"])
    );

    assert!(store.delete_space("acme").await.expect("delete"));
    assert!(!store.delete_space("acme").await.expect("again"));
    assert_eq!(
        store.stored_spaces().await.expect("list"),
        [space("globex", 1, &["a"])]
    );
    let catalog = store.catalog(None).await.expect("catalog");
    let spaces: Vec<&str> = catalog.iter().map(|entry| &*entry.key.space).collect();
    assert_eq!(spaces, ["globex"]);
}

async fn a_new_key_replaces_every_sealed_value_or_nothing(store: Arc<dyn Store>) {
    store.key_check("v1:old").await.expect("check");
    store
        .put_space(&space("acme", 4, &["a"]), "v1:old")
        .await
        .expect("put");
    store
        .put_space(&space("globex", 1, &[]), "v1:old")
        .await
        .expect("put");
    // A revision that is not the stored one: nothing is written.
    let stale = [
        ("acme".to_owned(), 4, "v1:new-acme".to_owned()),
        ("globex".to_owned(), 9, "v1:new-globex".to_owned()),
    ];
    assert!(store.rekey("v1:new", &stale).await.is_err());
    assert_eq!(store.key_check("v1:x").await.expect("check"), "v1:old");
    assert_eq!(
        store.stored_spaces().await.expect("list")[0].providers,
        "v1:sealed-acme-4"
    );
    let fresh = [
        ("acme".to_owned(), 4, "v1:new-acme".to_owned()),
        ("globex".to_owned(), 1, "v1:new-globex".to_owned()),
    ];
    store.rekey("v1:new", &fresh).await.expect("rekey");
    assert_eq!(store.key_check("v1:x").await.expect("check"), "v1:new");
    let spaces = store.stored_spaces().await.expect("list");
    assert_eq!(
        (spaces[0].providers.as_str(), spaces[0].revision),
        ("v1:new-acme", 4)
    );
    assert_eq!(spaces[0].tokens, space("acme", 4, &["a"]).tokens);
    assert_eq!(spaces[1].providers, "v1:new-globex");
    // An instance still on the old key writes nothing.
    assert!(matches!(
        store.put_space(&space("acme", 5, &[]), "v1:old").await,
        Err(StoreError::KeyChanged)
    ));
}

async fn the_first_key_check_is_kept(store: Arc<dyn Store>) {
    assert_eq!(
        store.key_check("v1:first").await.expect("first"),
        "v1:first"
    );
    assert_eq!(
        store.key_check("v1:second").await.expect("kept"),
        "v1:first"
    );
}

// SQLite only.

#[tokio::test]
async fn in_memory_database_is_one_database() {
    let store = store::open("sqlite::memory:").await.expect("memory");
    assert_eq!(store.backend(), "sqlite");
    // Concurrent writes and reads all see the same database.
    let mut tasks = Vec::new();
    for n in 0..8u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let app = key("default", "local", &format!("app-{n}"));
            store
                .app_seen(&app, &seen(None, true), t(n))
                .await
                .expect("seen");
            store.catalog(None).await.expect("catalog").len()
        }));
    }
    for task in tasks {
        assert!(task.await.expect("task") >= 1);
    }
    assert_eq!(store.catalog(None).await.expect("catalog").len(), 8);
    catalog_seen_deleted_and_back(store::open("sqlite::memory:").await.expect("memory")).await;
}

#[tokio::test]
async fn reopening_a_file_keeps_everything() {
    let dir = TempDir::new("store-reopen");
    let url = format!("sqlite://{}", dir.path("paastis.db").display());
    let web = key("default", "local", "web");
    let events = mixed_events();
    let before = {
        let store = store::open(&url).await.expect("open");
        store
            .app_seen(&web, &seen(Some("http://127.0.0.1:9"), false), t(0))
            .await
            .expect("seen");
        store
            .set_formation(&web, Some(&BTreeMap::from([("web".to_owned(), 3)])))
            .await
            .expect("formation");
        store
            .record_start(&web, Duration::from_millis(1_500), t(1))
            .await
            .expect("start");
        store.record_state(&web, true, t(2)).await.expect("sleep");
        store
            .record_activity(&[(web.clone(), t(3))])
            .await
            .expect("activity");
        store.append_events(&events).await.expect("append");
        let catalog = store.catalog(None).await.expect("catalog");
        store.close().await;
        catalog
    };
    let store = store::open(&url).await.expect("open again");
    assert_eq!(store.catalog(None).await.expect("catalog"), before);
    assert_eq!(before[0].asleep_since, Some(t(2)));
    let page = store
        .events(&EventQuery {
            limit: Some(500),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert_eq!(plain(&page.events), newest_first(&events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_writes_keep_the_write_ahead_log_small() {
    // Writes without a pause, so background checkpoints never catch up whole: the log is
    // still kept under its limit (64 MiB) by a checkpoint in the write queue.
    let dir = TempDir::new("store-wal");
    let path = dir.path("paastis.db");
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    let old: Vec<Event> = (0..10_000u64)
        .map(|n| Event {
            at: t(n),
            app: key("default", "local", "old"),
            kind: EventKind::Stopped {
                formation: None,
                sizes: Default::default(),
            },
        })
        .collect();
    store.append_events(&old).await.expect("append");
    assert_eq!(store.prune_events(t(10_000)).await.expect("prune"), 10_000);
    let app = key("default", "local", "web");
    for n in 0..6_000u64 {
        let event = Event {
            at: t(20_000 + n),
            app: app.clone(),
            kind: EventKind::Stopped {
                formation: None,
                sizes: Default::default(),
            },
        };
        store.append_events(&[event]).await.expect("append");
    }
    let wal = std::fs::metadata(dir.path("paastis.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    // About 25 kB per append: without checkpoints the log would hold all 6,000 (~150 MB).
    assert!(wal < 96 << 20, "the write-ahead log grew to {wal} bytes");
    let page = store
        .events(&EventQuery {
            limit: Some(1),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert_eq!(page.events[0].event.at, t(25_999));
    store.close().await;
}

#[tokio::test]
async fn relative_paths_are_relative_to_the_working_directory() {
    // The test's working directory is the package root: open there, in target/.
    let name = format!("target/store-test-{}/relative.db", std::process::id());
    let store = store::open(&format!("sqlite://{name}"))
        .await
        .expect("open");
    store.health().await.expect("healthy");
    store.close().await;
    assert!(std::path::Path::new(&name).is_file());
    let _ = std::fs::remove_dir_all(std::path::Path::new(&name).parent().expect("parent folder"));
}

#[tokio::test]
async fn a_corrupted_file_is_reported_as_such() {
    let dir = TempDir::new("store-corrupt");
    let path = dir.path("paastis.db");
    let garbage: Vec<u8> = (0..16_384).map(|_| fastrand::u8(..)).collect();
    std::fs::write(&path, garbage).expect("write");
    let error = store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect_err("garbage is not a database");
    let message = error.to_string();
    assert!(matches!(error, StoreError::NotSqlite { .. }), "{error:?}");
    assert!(
        message.contains(&path.display().to_string())
            && message.contains("not a usable SQLite database"),
        "{message}"
    );
}

#[tokio::test]
async fn unusable_paths_are_reported_clearly() {
    let dir = TempDir::new("store-paths");
    // A regular file where a folder should be: even root cannot create a folder there.
    let file = dir.path("file.txt");
    std::fs::write(&file, "not a folder").expect("write");
    let path = file.join("sub/db.sqlite");
    let error = store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect_err("cannot create a folder under a file");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot create/open the database at {}: ",
            path.display()
        )) && message.contains("not a folder"),
        "{message}"
    );

    // A folder where the file should be.
    let error = store::open(&format!("sqlite://{}", dir.0.display()))
        .await
        .expect_err("a folder is not a database");
    assert!(error.to_string().contains("it is a folder"), "{error}");

    // No name at all.
    let error = store::open("sqlite://").await.expect_err("no path");
    assert!(error.to_string().contains("no file name"), "{error}");

    // Permissions only stop non-root users.
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok()
        != Some(0)
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        let path = locked.join("db.sqlite");
        let error = store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect_err("read-only folder");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot create/open the database at {}: permission denied",
                path.display()
            )
        );
    }
}

#[tokio::test]
async fn unsupported_urls_name_the_accepted_schemes_without_the_password() {
    for url in [
        "mysql://root:hunter22-secret@db/paastis",
        "sqlite:paastis.db",
        "paastis.db",
        "redis://:hunter22-secret@localhost",
    ] {
        let error = store::open(url).await.expect_err("unsupported");
        let message = error.to_string();
        assert!(
            message.contains("sqlite://") && message.contains("postgres://"),
            "{message}"
        );
        assert!(!message.contains("hunter22-secret"), "{message}");
        assert!(!format!("{error:?}").contains("hunter22-secret"));
    }
}

// PostgreSQL only.

#[tokio::test]
async fn postgres_unreachable_says_where_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    // Nothing listens there any more.
    let url = format!("postgres://paastis:hunter22-secret@127.0.0.1:{port}/paastis");
    let started = tokio::time::Instant::now();
    let error = store::open(&url).await.expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once"
    );
    let message = error.to_string();
    assert!(
        matches!(error, StoreError::Unreachable { .. })
            && message.starts_with(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(!message.contains("hunter22-secret"), "{message}");
    assert!(!format!("{error:?}").contains("hunter22-secret"));
}

#[tokio::test]
async fn postgres_refusals_never_show_the_password() {
    let database = support::postgres::database().await;
    let address = database
        .server
        .rsplit_once('@')
        .map(|(_, address)| address.to_owned())
        .expect("server address");

    // A database that does not exist.
    let error = store::open(&format!("{}/no_such_database", database.server))
        .await
        .expect_err("no such database");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("PostgreSQL at {address} refused the connection: "))
            && message.contains("does not exist"),
        "{message}"
    );

    // The store and its errors never show the real password.
    let store = store::open(&database.url).await.expect("open");
    assert_eq!(store.backend(), "postgres");
    if let Some(password) = &database.checked_password {
        let debug = format!("{store:?}");
        assert!(!debug.contains(password.as_str()), "{debug}");
        assert!(debug.contains(":***@"), "{debug}");
        assert!(!message.contains(password.as_str()), "{message}");

        // A wrong password.
        let wrong = database.url.replace(password.as_str(), "wrong-hunter22");
        let error = store::open(&wrong).await.expect_err("wrong password");
        let message = format!("{error} {error:?}");
        assert!(
            message.contains("password authentication failed"),
            "{message}"
        );
        assert!(!message.contains("wrong-hunter22"), "{message}");
    }
    store.close().await;
    let error = store.health().await.expect_err("closed");
    assert!(!format!("{error} {error:?}").contains(database.url.as_str()));
}
