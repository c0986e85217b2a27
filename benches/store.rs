//! Store benchmark (SQLite file): 100,000 events, then the latency of filtered event pages
//! (first page and a page deep into the cursor chain), then pruning 50,000 events while
//! another task keeps appending single events, with the worst append latency seen meanwhile.
//!
//! `scripts/bench-store.sh` runs it (`cargo bench --bench store`); see docs/src/benchmarks.md.
//! Knobs (env): BENCH_EVENTS (100000), BENCH_RUNS (500), BENCH_PRUNE (50000),
//! BENCH_DEEP_PAGES (200). Without `--bench` (as `cargo test --all-targets` runs it) it
//! does a small quick run.

#[path = "../tests/support/bench.rs"]
mod bench;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench::env_number;
use paastis::events::{Event, EventKind, StopCause, WakeCause};
use paastis::model::AppKey;
use paastis::store::{self, EventQuery, Store};
use tokio::time::Instant;

/// Apps the events are spread over.
const APPS: usize = 50;

fn kind(n: usize) -> EventKind {
    match n % 6 {
        0 => EventKind::WakeRequested {
            cause: WakeCause::Request {
                method: "GET".into(),
                path: format!("/page/{n}"),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
                client_ip: "203.0.113.9".parse().expect("ip"),
            },
        },
        1 => EventKind::Started {
            duration: Duration::from_millis(3_000 + (n % 5_000) as u64),
            reconciled: None,
        },
        2 => EventKind::StopRequested {
            cause: StopCause::Idle {
                idle_for: Duration::from_secs(900),
            },
        },
        3 => EventKind::Stopped {
            formation: None,
            sizes: Default::default(),
        },
        4 => EventKind::Discovered { running: false },
        _ => EventKind::Exited {
            reason: "exit status: 0".into(),
        },
    }
}

/// `count` events over `span`, oldest first, ending at `end`.
fn events(count: usize, end: SystemTime, span: Duration) -> Vec<Event> {
    let apps: Vec<AppKey> = (0..APPS)
        .map(|n| {
            let space = if n % 5 == 0 { "acme" } else { "default" };
            let provider = ["local", "scalingo", "heroku"][n % 3];
            AppKey::new(space, provider, &format!("app-{n}"))
        })
        .collect();
    let step = span / count.max(1) as u32;
    let start = end - span;
    (0..count)
        .map(|n| Event {
            at: start + step * n as u32,
            app: apps[(n * 7) % APPS].clone(),
            kind: kind(n / APPS),
        })
        .collect()
}

/// Median, p99 and max of the samples, in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index].as_secs_f64() * 1_000.0
    };
    format!(
        "median {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} runs)",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

async fn time_query(store: &Arc<dyn Store>, query: &EventQuery, runs: usize) -> String {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let page = store.events(query).await.expect("events");
        samples.push(started.elapsed());
        assert!(!page.events.is_empty(), "the query selects something");
    }
    summary(&mut samples)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (count, runs, prune, deep_pages) = if full {
        (
            env_number("BENCH_EVENTS", 100_000),
            env_number("BENCH_RUNS", 500),
            env_number("BENCH_PRUNE", 50_000),
            env_number("BENCH_DEEP_PAGES", 200),
        )
    } else {
        (5_000, 10, 2_500, 5)
    };
    let dir = std::env::temp_dir().join(format!("paastis-bench-store-{}", std::process::id()));
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = store::open(&url).await.expect("open");

    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let span = Duration::from_secs(90 * 24 * 3600);
    let all = events(count, now, span);
    let started = Instant::now();
    for chunk in all.chunks(1_000) {
        store.append_events(chunk).await.expect("append");
    }
    let elapsed = started.elapsed();
    println!(
        "insert: {count} events in batches of 1000: {:.2} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );

    // app + kind + since: one app's wakes over the last 30 days.
    let filtered = EventQuery {
        app: Some("app-7".into()),
        kinds: vec!["wake_requested".into()],
        since: Some(now - Duration::from_secs(30 * 24 * 3600)),
        limit: Some(50),
        ..EventQuery::default()
    };
    println!(
        "filtered page (app + kind + since, limit 50): {}",
        time_query(&store, &filtered, runs).await
    );
    let kinds = EventQuery {
        kinds: vec!["stopped".into(), "started".into()],
        limit: Some(50),
        ..EventQuery::default()
    };
    println!(
        "two kinds, no other filter (limit 50): {}",
        time_query(&store, &kinds, runs).await
    );
    let newest = EventQuery {
        limit: Some(50),
        ..EventQuery::default()
    };
    println!(
        "unfiltered first page (limit 50): {}",
        time_query(&store, &newest, runs).await
    );

    // Deep into the cursor chain: page `deep_pages` of all events, and of one space.
    for (label, base) in [
        ("all events", newest.clone()),
        (
            "space acme + since",
            EventQuery {
                space: Some("acme".into()),
                since: Some(now - Duration::from_secs(60 * 24 * 3600)),
                limit: Some(50),
                ..EventQuery::default()
            },
        ),
    ] {
        let mut query = base.clone();
        for _ in 1..deep_pages {
            let page = store.events(&query).await.expect("events");
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        println!(
            "page {deep_pages} of {label} (limit 50, by cursor): {}",
            time_query(&store, &query, runs).await
        );
    }

    // Single appends, alone.
    let app = AppKey::new("default", "local", "writer");
    let mut alone = Vec::new();
    for n in 0..runs {
        let event = Event {
            at: now + Duration::from_millis(n as u64),
            app: app.clone(),
            kind: EventKind::Stopped {
                formation: None,
                sizes: Default::default(),
            },
        };
        let started = Instant::now();
        store.append_events(&[event]).await.expect("append");
        alone.push(started.elapsed());
    }
    println!("single append, alone: {}", summary(&mut alone));

    // Pruning the oldest `prune` events while a writer appends one event at a time.
    let cutoff = all[prune.min(all.len() - 1)].at;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let app = app.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let event = Event {
                    at: now + Duration::from_secs(1) + Duration::from_millis(n),
                    app: app.clone(),
                    kind: EventKind::Stopped {
                        formation: None,
                        sizes: Default::default(),
                    },
                };
                let started = Instant::now();
                store.append_events(&[event]).await.expect("append");
                latencies.push((started, started.elapsed()));
                n += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let deleted = store.prune_events(cutoff).await.expect("prune");
    let pruning = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let finished = started + pruning;
    // The appends that overlapped the pruning.
    let mut during: Vec<Duration> = writer
        .await
        .expect("writer")
        .into_iter()
        .filter(|(at, latency)| *at < finished && *at + *latency > started)
        .map(|(_, latency)| latency)
        .collect();
    println!(
        "prune: {deleted} events in {:.0} ms ({} rows per statement)",
        pruning.as_secs_f64() * 1_000.0,
        store::sqlite::PRUNE_BATCH
    );
    println!("single append during pruning: {}", summary(&mut during));

    store.close().await;
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
