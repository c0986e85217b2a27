//! Soak test, ignored by `cargo test` (it takes minutes): run it with `scripts/soak.sh
//! [SECONDS]`. Two `paastis serve` processes share a real Redis registry and one PostgreSQL
//! database, in front of 10 `process` apps (`upstream.py`, one Python process per app and
//! instance) and 10 apps of a fake Scalingo account (real HTTP servers). Seeded random traffic
//! goes to both instances for `SOAK_SECONDS`, app by app in spells of activity and quiet
//! longer than `max_idle` (2 s), so apps wake and are stopped all along. Meanwhile: a burst of
//! provider 429s then 500s, Redis killed and started again (empty) on its port, and one
//! instance SIGKILLed and started again. Then both instances are stopped with SIGTERM.
//!
//! It prints a report and fails on: a failed request (anything but the app's answer, apart
//! from the documented 503s of [`documented`] and the requests cut by the SIGKILL), an app
//! still awake well after the traffic ended, a Python process left by a graceful stop, an
//! unclean exit, or RSS growth beyond [`rss_growth_allowed`]. Knobs (environment):
//! `SOAK_SECONDS` (180; 60..=3600), `SOAK_SEED` (1), `SOAK_WORKERS` (6; 1..=32),
//! `SOAK_LOG_DIR` (the instances' logs are written there; default a folder in the temp dir).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use nix::sys::signal::Signal;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::{Served, TempDir};
use tokio::time::{Instant, sleep, timeout};

const TOKEN: &str = "tk-us-soak-secret-0099";
const PROCESS_APPS: usize = 10;
const PLATFORM_APPS: usize = 10;
/// Every app's `max_idle`.
const MAX_IDLE: Duration = Duration::from_secs(2);
/// Every app's `wake_timeout`, in seconds.
const WAKE_TIMEOUT_S: u64 = 20;
/// Longest a request may take before it counts as failed (beyond `wake_timeout` plus a
/// takeover of a dead instance's lease).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// A client's idle keep-alive connections are dropped after this (the engine closes idle
/// ones after `proxy.header_read_timeout`, 10 s: a client must not race that).
const CLIENT_POOL_IDLE: Duration = Duration::from_secs(4);
/// After the burst's last injected fault, how long a 503 of a failed wake still counts as
/// caused by it.
const BURST_AFTERMATH: Duration = Duration::from_secs(10);
/// How long Redis stays down, and the killed instance too.
const OUTAGE: Duration = Duration::from_secs(5);
/// After the traffic ends, how long every app has to be asleep.
const QUIET_BOUND: Duration = Duration::from_secs(30);
/// Time from an instance's start to its first RSS figure (warm-up).
const MIN_WARMUP: Duration = Duration::from_secs(20);
/// RSS sampling period.
const RSS_EVERY: Duration = Duration::from_secs(5);

/// A pooled HTTP/1.1 client to one instance.
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(CLIENT_POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .build(HttpConnector::new())
}

fn knob(name: &str, default: u64, min: u64, max: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            let parsed: u64 = value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={value} is not a whole number"));
            assert!(
                (min..=max).contains(&parsed),
                "{name}={parsed} is out of {min}..={max}"
            );
            parsed
        }
        _ => default,
    }
}

/// One app the traffic goes to.
#[derive(Debug, Clone)]
struct App {
    /// Its name, and so its host (`<name>.localhost`) and the body it answers.
    name: String,
    /// On the fake platform (else a `process` app).
    platform: bool,
}

/// Where requests may go now: one entry per instance, `None` while it is down.
#[derive(Clone)]
struct Target {
    /// Which instance (0 or 1).
    index: usize,
    /// Which run of it (1, then 2 after the restart).
    life: u32,
    /// Its proxy listener.
    addr: SocketAddr,
    /// A pool of connections to it (a new one per run: a dead run's connections go with it).
    client: HttpClient,
}

/// What one request came to, when it was not the app's answer.
#[derive(Debug, Clone)]
struct Miss {
    /// Since the start of the traffic.
    at: Duration,
    /// The app asked for.
    app: String,
    /// Whether that app is on the fake platform (only those can get a documented 503).
    platform: bool,
    /// Instance index and life.
    instance: (usize, u32),
    /// What came back.
    what: MissKind,
}

#[derive(Debug, Clone)]
enum MissKind {
    /// An answer other than the app's.
    Status {
        /// Its status.
        status: StatusCode,
        /// The engine's `error.code`, when the body is its JSON error.
        code: Option<String>,
        /// Its `Retry-After` (a documented 503 has one).
        retry_after: Option<String>,
        /// The start of its body, for the report.
        excerpt: String,
    },
    /// A 200 with another body than the app's.
    WrongBody(String),
    /// No answer (connection refused, reset, cut body).
    Exchange(String),
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
}

impl Miss {
    /// One line: when, which app, which instance, what came back.
    fn describe(&self) -> String {
        let what = match &self.what {
            MissKind::Status {
                retry_after,
                excerpt,
                ..
            } => format!(
                "{} (Retry-After: {}) {excerpt}",
                self.label(),
                retry_after.as_deref().unwrap_or("none")
            ),
            MissKind::WrongBody(body) => format!("200 with body {body:?}"),
            MissKind::Exchange(error) => format!("no answer: {error}"),
            MissKind::Timeout => format!("no answer within {}", secs(REQUEST_TIMEOUT)),
        };
        let (index, life) = self.instance;
        format!(
            "at {} {} on {}{life}: {what}",
            secs(self.at),
            self.app,
            ["A", "B"][index]
        )
    }

    fn label(&self) -> String {
        match &self.what {
            MissKind::Status { status, code, .. } => format!(
                "{} {}",
                status.as_u16(),
                code.as_deref().unwrap_or("(not the engine's)")
            ),
            MissKind::WrongBody(_) => "200 wrong body".to_owned(),
            MissKind::Exchange(_) => "no answer".to_owned(),
            MissKind::Timeout => "timeout".to_owned(),
        }
    }
}

/// One of the slowest answers.
struct Slow {
    /// How long it took, in microseconds.
    micros: u32,
    /// When it ended, since the start of the traffic.
    at: Duration,
    /// The app asked for.
    app: String,
    /// Instance index and life.
    instance: (usize, u32),
}

/// State shared by the traffic tasks and the conductor.
struct Shared {
    /// The start of the traffic: every time in the report counts from it.
    started: Instant,
    /// Every app, process apps first.
    apps: Vec<App>,
    /// Where requests may go now (an instance is taken out before it is killed).
    targets: Mutex<[Option<Target>; 2]>,
    /// Per app: whether it is in a spell of activity.
    active: Mutex<Vec<bool>>,
    /// Set at the end of the run: the traffic tasks return.
    stop: AtomicBool,
    /// Lives killed on purpose: (index, life, when the kill was decided).
    killed: Mutex<Vec<(usize, u32, Duration)>>,
    /// Latencies of the requests answered by the app, in microseconds.
    latencies: Mutex<Vec<u32>>,
    /// The slowest of them, slowest first.
    slowest: Mutex<Vec<Slow>>,
    /// Every request not answered by the app, sorted out at the end.
    misses: Mutex<Vec<Miss>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Flips apps between spells of activity (1-6 s) and quiet (3-12 s: longer than `max_idle`
/// plus the idle check, so quiet apps are stopped).
async fn conduct_activity(shared: Arc<Shared>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let now = Instant::now();
    let mut next: Vec<Instant> = shared
        .apps
        .iter()
        .map(|_| now + Duration::from_millis(rng.u64(0..5000)))
        .collect();
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        {
            let mut active = lock(&shared.active);
            for (i, at) in next.iter_mut().enumerate() {
                if *at <= now {
                    active[i] = !active[i];
                    let spell = if active[i] {
                        rng.u64(1000..6000)
                    } else {
                        rng.u64(3000..12000)
                    };
                    *at = now + Duration::from_millis(spell);
                }
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sends requests to active apps through the instances that are up, until told to stop.
async fn send_traffic(shared: Arc<Shared>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !shared.stop.load(Ordering::SeqCst) {
        let target = {
            let targets = lock(&shared.targets);
            let up: Vec<&Target> = targets.iter().flatten().collect();
            if up.is_empty() {
                None
            } else {
                Some(up[rng.usize(0..up.len())].clone())
            }
        };
        let app = {
            let active = lock(&shared.active);
            let candidates: Vec<usize> = (0..shared.apps.len()).filter(|&i| active[i]).collect();
            if candidates.is_empty() {
                None
            } else {
                Some(shared.apps[candidates[rng.usize(0..candidates.len())]].clone())
            }
        };
        let (Some(target), Some(app)) = (target, app) else {
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Some slow requests on process apps, so stops and kills meet requests in flight.
        let (path, expected) = if !app.platform && rng.u8(0..10) == 0 {
            let ms = rng.u32(50..300);
            (format!("/slow?ms={ms}"), format!("slow {ms}"))
        } else {
            ("/".to_owned(), format!("hello from {}", app.name))
        };
        let began = Instant::now();
        let result = timeout(
            REQUEST_TIMEOUT,
            exchange(&target, &format!("{}.localhost", app.name), &path),
        )
        .await;
        let took = began.elapsed();
        let what = match result {
            Ok(Ok((status, _, body))) if status == StatusCode::OK && body == expected => None,
            Ok(Ok((status, _, body))) if status == StatusCode::OK => Some(MissKind::WrongBody(
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            )),
            Ok(Ok((status, headers, body))) => {
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|json| json["error"]["code"].as_str().map(str::to_owned));
                Some(MissKind::Status {
                    status,
                    code,
                    retry_after: headers
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    excerpt: String::from_utf8_lossy(&body).chars().take(200).collect(),
                })
            }
            Ok(Err(error)) => Some(MissKind::Exchange(error)),
            Err(_) => Some(MissKind::Timeout),
        };
        match what {
            None => {
                let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                lock(&shared.latencies).push(micros);
                let mut slowest = lock(&shared.slowest);
                slowest.push(Slow {
                    micros,
                    at: shared.elapsed(),
                    app: app.name.clone(),
                    instance: (target.index, target.life),
                });
                slowest.sort_unstable_by_key(|slow| std::cmp::Reverse(slow.micros));
                slowest.truncate(5);
            }
            Some(what) => lock(&shared.misses).push(Miss {
                at: shared.elapsed(),
                app: app.name.clone(),
                platform: app.platform,
                instance: (target.index, target.life),
                what,
            }),
        }
        sleep(Duration::from_millis(rng.u64(5..30))).await;
    }
}

async fn exchange(
    target: &Target,
    host: &str,
    path: &str,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let request = Request::builder()
        .uri(format!("http://{}{path}", target.addr))
        .header("host", host)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = target
        .client
        .request(request)
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// One run of an instance.
struct Life {
    /// Which instance (0: A, 1: B).
    index: usize,
    /// Which run of it (1, then 2 after the restart).
    life: u32,
    /// The process, its address and its logs.
    served: Served,
    /// Its pid, for RSS and signals.
    pid: i32,
    /// Where its `process` apps write their pids when they start (`STARTS_FILE`).
    starts: PathBuf,
    /// When it started, since the start of the traffic (the first runs: at its start).
    started_at: Option<Duration>,
    /// RSS samples: (since the start of the traffic, KiB).
    rss: Vec<(Duration, u64)>,
    /// Exit status after SIGTERM (`None`: killed, or not stopped yet).
    exit: Option<std::process::ExitStatus>,
}

impl Life {
    fn name(&self) -> String {
        format!("{}{}", ["A", "B"][self.index], self.life)
    }

    fn target(&self) -> Target {
        Target {
            index: self.index,
            life: self.life,
            addr: self.served.addr,
            client: http_client(),
        }
    }

    fn sample_rss(&mut self, at: Duration) {
        if let Some(kib) = rss_kib(self.pid) {
            self.rss.push((at, kib));
        }
    }

    /// RSS after warm-up (the first sample at least [`MIN_WARMUP`] after its start).
    fn rss_start(&self) -> Option<u64> {
        let warm = self.started_at.unwrap_or_default() + MIN_WARMUP;
        self.rss.iter().find(|(at, _)| *at >= warm).map(|(_, k)| *k)
    }

    fn rss_end(&self) -> Option<u64> {
        self.rss.last().map(|(_, k)| *k)
    }

    fn rss_max(&self) -> Option<u64> {
        self.rss.iter().map(|(_, k)| *k).max()
    }

    /// Pids of the Python processes its apps started.
    fn pythons(&self) -> Vec<i32> {
        std::fs::read_to_string(&self.starts)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Those still running (and still `upstream.py`: a pid may have been reused).
    fn pythons_alive(&self) -> Vec<i32> {
        self.pythons()
            .into_iter()
            .filter(|&pid| support::process_running(pid) && is_upstream(pid))
            .collect()
    }

    /// Its log lines at WARN or ERROR level.
    fn warnings(&self) -> (usize, usize) {
        let logs = self.served.logs();
        let mut counts = (0, 0);
        for line in logs.lines() {
            let level = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|json| json["level"].as_str().map(str::to_owned));
            match level.as_deref() {
                Some("WARN") => counts.0 += 1,
                Some("ERROR") => counts.1 += 1,
                _ => {}
            }
        }
        counts
    }
}

fn is_upstream(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("upstream.py"))
        .unwrap_or(false)
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix("VmRSS:")
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    })
}

async fn start_life(
    config: &Path,
    dir: &TempDir,
    database: &str,
    index: usize,
    life: u32,
    started_at: Option<Duration>,
) -> Life {
    let starts = dir.path(&format!("starts-{index}-{life}.txt"));
    let served = support::serve(
        config,
        &[
            ("PAASTIS_DATABASE__URL", database),
            ("SOAK_STARTS_FILE", &starts.to_string_lossy()),
            ("LOG_LEVEL", "info,paastis::registry=debug"),
        ],
    )
    .await;
    let pid = served
        .child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .expect("the instance's pid");
    Life {
        index,
        life,
        served,
        pid,
        starts,
        started_at,
        rss: Vec::new(),
        exit: None,
    }
}

fn config(fake: &FakeScalingo, redis: &RedisServer, apps: &[App]) -> String {
    let mut yaml = format!(
        "defaults: {{max_idle: {idle}s, wake_timeout: {WAKE_TIMEOUT_S}s}}
discovery: {{every: 5s}}
registry: {{type: redis, url: '{redis}', prefix: soak, lease: 3s}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}', rate_limit: 5000}}
  - id: local
    type: process
    apps:
",
        idle = MAX_IDLE.as_secs(),
        redis = redis.url(),
        api = fake.url,
    );
    for app in apps.iter().filter(|a| !a.platform) {
        yaml.push_str(&format!(
            "      - {{name: {name}, command: \"{command}\", stop_timeout: 5s, env: {{APP_NAME: {name}, STARTS_FILE: '${{SOAK_STARTS_FILE}}'}}}}\n",
            name = app.name,
            command = support::upstream_command(),
        ));
    }
    yaml
}

/// Whether a miss is a documented 503: a platform app's wake that failed (or timed out)
/// while the provider answered the burst's injected 429s and 500s, or within
/// [`BURST_AFTERMATH`] of the last of them, answered 503 with `Retry-After`
/// (docs/src/introduction.md, "How requests are routed").
fn documented(miss: &Miss, burst: Option<(Duration, Duration)>) -> bool {
    let Some((from, to)) = burst else {
        return false;
    };
    matches!(
        &miss.what,
        MissKind::Status { status, code: Some(code), retry_after: Some(_), .. }
            if *status == StatusCode::SERVICE_UNAVAILABLE
                && (code == "wake_failed" || code == "wake_timeout")
    ) && miss.platform
        && miss.at >= from
        && miss.at <= to + BURST_AFTERMATH
}

/// RSS growth from warm-up to the end that still counts as flat: a quarter of the start,
/// and at least 8 MiB (allocator arenas settle; a leak per request or per wake over
/// thousands of them grows past this).
fn rss_growth_allowed(start_kib: u64) -> u64 {
    (start_kib / 4).max(8 * 1024)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn percentile(sorted: &[u32], p: f64) -> String {
    if sorted.is_empty() {
        return "-".to_owned();
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    format!("{:.1} ms", f64::from(sorted[rank]) / 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: minutes long, run by scripts/soak.sh"]
async fn soak() {
    let seconds = knob("SOAK_SECONDS", 180, 60, 3600);
    let seed = knob("SOAK_SEED", 1, 0, u64::MAX);
    let workers = knob("SOAK_WORKERS", 6, 1, 32);
    let total = Duration::from_secs(seconds);
    let log_dir = std::env::var("SOAK_LOG_DIR")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(
            || std::env::temp_dir().join(format!("paastis-soak-{}", std::process::id())),
            PathBuf::from,
        );

    let dir = TempDir::new("soak");
    let mut redis = RedisServer::start().await;
    let database = support::postgres::database().await;
    let fake = FakeScalingo::start(TOKEN).await;
    // The burst is injected on purpose; the account's own limit stays out of the way.
    fake.set_rate_limit(1_000_000);
    fake.set_boot_time(Duration::from_millis(500));
    let mut apps = Vec::new();
    for i in 0..PROCESS_APPS {
        apps.push(App {
            name: format!("proc-{i:02}"),
            platform: false,
        });
    }
    for i in 0..PLATFORM_APPS {
        let name = format!("plat-{i:02}");
        fake.add_app(&name, &[("web", 1)], false).await;
        apps.push(App {
            name,
            platform: true,
        });
    }
    let config_path = dir.path("paastis.yml");
    std::fs::write(&config_path, config(&fake, &redis, &apps)).expect("write config");

    let mut lives = vec![
        start_life(&config_path, &dir, &database.url, 0, 1, None).await,
        start_life(&config_path, &dir, &database.url, 1, 1, None).await,
    ];
    let shared = Arc::new(Shared {
        started: Instant::now(),
        apps: apps.clone(),
        targets: Mutex::new([Some(lives[0].target()), Some(lives[1].target())]),
        active: Mutex::new(vec![false; apps.len()]),
        stop: AtomicBool::new(false),
        killed: Mutex::new(Vec::new()),
        latencies: Mutex::new(Vec::new()),
        slowest: Mutex::new(Vec::new()),
        misses: Mutex::new(Vec::new()),
    });
    for life in &mut lives {
        life.started_at = Some(Duration::ZERO);
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(conduct_activity(Arc::clone(&shared), seed));
    for worker in 0..workers {
        tasks.spawn(send_traffic(
            Arc::clone(&shared),
            seed.wrapping_add(1 + worker),
        ));
    }

    // The schedule of faults, as fractions of the run.
    let burst_at = total.mul_f64(0.25);
    let redis_at = total.mul_f64(0.45);
    let kill_at = total.mul_f64(0.65);
    let mut burst: Option<(Duration, Option<Duration>)> = None;
    let mut redis_outage: Option<(Duration, Duration)> = None;
    let mut kill: Option<(Duration, Duration)> = None;
    let mut orphans_at_kill: Vec<i32> = Vec::new();
    let mut next_rss = Duration::ZERO;
    loop {
        let t = shared.elapsed();
        if t >= total {
            break;
        }
        if t >= next_rss {
            for life in lives
                .iter_mut()
                .filter(|l| l.exit.is_none() && !is_killed(&shared, l))
            {
                life.sample_rss(t);
            }
            next_rss = t + RSS_EVERY;
        }
        if burst.is_none() && t >= burst_at {
            // 429s with Retry-After first (retried by the engine), then 500s (a scale is
            // not idempotent: not retried on a 5xx, so a wake fails).
            fake.calls.throttle_next(20);
            sleep(Duration::from_secs(3)).await;
            fake.calls.fail_next(8, 500);
            burst = Some((t, None));
        }
        if let Some((from, None)) = burst
            && fake.calls.faults_pending() == 0
        {
            burst = Some((from, Some(shared.elapsed())));
        }
        if redis_outage.is_none() && t >= redis_at {
            redis.kill().await;
            sleep(OUTAGE).await;
            redis.resume().await;
            redis_outage = Some((t, shared.elapsed()));
        }
        if kill.is_none() && t >= kill_at {
            let victim = 1;
            lock(&shared.targets)[victim] = None;
            lock(&shared.killed).push((victim, lives[victim].life, shared.elapsed()));
            lives[victim]
                .served
                .child
                .kill()
                .await
                .expect("SIGKILL the instance");
            orphans_at_kill = lives[victim].pythons_alive();
            sleep(OUTAGE).await;
            let restarted_at = shared.elapsed();
            let life = lives[victim].life + 1;
            let again = start_life(
                &config_path,
                &dir,
                &database.url,
                victim,
                life,
                Some(restarted_at),
            )
            .await;
            lock(&shared.targets)[victim] = Some(again.target());
            lives.push(again);
            kill = Some((t, restarted_at));
        }
        sleep(Duration::from_millis(250)).await;
    }

    // The end of the traffic.
    shared.stop.store(true, Ordering::SeqCst);
    while let Some(joined) = tasks.join_next().await {
        joined.expect("traffic task");
    }
    let traffic_ended = shared.elapsed();
    for life in lives.iter_mut().filter(|l| !is_killed(&shared, l)) {
        life.sample_rss(traffic_ended);
    }

    // Quiet: every app is stopped after max_idle (platform apps scaled to 0, the live
    // instances' Python processes gone).
    let quiet_began = Instant::now();
    let awake_left = loop {
        let mut awake: Vec<String> = apps
            .iter()
            .filter(|a| a.platform)
            .filter(|a| fake.formation(&a.name).iter().any(|(_, n)| *n > 0))
            .map(|a| a.name.clone())
            .collect();
        for life in lives.iter().filter(|l| !is_killed(&shared, l)) {
            for pid in life.pythons_alive() {
                awake.push(format!("{} python {pid}", life.name()));
            }
        }
        if awake.is_empty() || quiet_began.elapsed() > QUIET_BOUND {
            break awake;
        }
        sleep(Duration::from_millis(250)).await;
    };
    let quiet_took = quiet_began.elapsed();

    // Graceful stops (SIGTERM), then what is left.
    let mut stop_times = Vec::new();
    for life in lives.iter_mut().filter(|l| !is_killed(&shared, l)) {
        // Something to stop: wake a process app on each before SIGTERM.
        let target = life.target();
        let _ = timeout(REQUEST_TIMEOUT, exchange(&target, "proc-00.localhost", "/")).await;
        let began = Instant::now();
        support::signal(life.pid, Signal::SIGTERM);
        let status = timeout(Duration::from_secs(40), life.served.child.wait())
            .await
            .expect("the instance exits within 40 s of SIGTERM")
            .expect("wait for the instance");
        life.exit = Some(status);
        stop_times.push((life.name(), began.elapsed()));
    }
    let mut leaked = Vec::new();
    let mut orphans_left = Vec::new();
    for life in &lives {
        let alive = life.pythons_alive();
        if is_killed(&shared, life) {
            orphans_left.extend(alive);
        } else {
            leaked.extend(alive);
        }
    }
    // The test leaves nothing behind, whatever it found.
    for &pid in leaked.iter().chain(&orphans_left) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }

    // The instances' logs, for a look afterwards.
    let _ = std::fs::create_dir_all(&log_dir);
    for life in &lives {
        let _ = std::fs::write(
            log_dir.join(format!("instance-{}.log", life.name())),
            life.served.logs(),
        );
    }

    // The report.
    let burst_window = burst.map(|(from, to)| (from, to.unwrap_or(traffic_ended)));
    let killed = lock(&shared.killed).clone();
    let misses = lock(&shared.misses).clone();
    let mut latencies = lock(&shared.latencies).clone();
    latencies.sort_unstable();
    let cut = |miss: &Miss| {
        matches!(miss.what, MissKind::Exchange(_))
            && killed
                .iter()
                .any(|&(i, l, at)| miss.instance == (i, l) && miss.at >= at)
    };
    let mut documented_503 = 0;
    let mut cut_by_kill = 0;
    let mut failures = Vec::new();
    for miss in &misses {
        if documented(miss, burst_window) {
            documented_503 += 1;
        } else if cut(miss) {
            cut_by_kill += 1;
        } else {
            failures.push(miss.clone());
        }
    }
    let sent = latencies.len() + misses.len();
    let mut by_label: BTreeMap<String, usize> = BTreeMap::new();
    for miss in &misses {
        *by_label.entry(miss.label()).or_default() += 1;
    }
    let calls = fake.calls.all();
    let scale_calls = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/scale"))
        .count();
    let injected_429 = calls.iter().filter(|c| c.status == 429).count();
    let injected_500 = calls.iter().filter(|c| c.status == 500).count();
    let python_starts: usize = lives.iter().map(|l| l.pythons().len()).sum();

    let mut report = String::new();
    let mut line = |s: String| {
        report.push_str(&s);
        report.push('\n');
    };
    line(format!(
        "soak: {seconds} s of traffic, seed {seed}, {workers} clients, 2 instances, \
         {PROCESS_APPS} process + {PLATFORM_APPS} platform apps, max_idle {}s",
        MAX_IDLE.as_secs()
    ));
    if let Some((from, to)) = burst_window {
        line(format!(
            "  provider burst     at {} (429 x{injected_429}, 500 x{injected_500}), last fault answered at {}",
            secs(from),
            secs(to)
        ));
    }
    if let Some((from, to)) = redis_outage {
        line(format!(
            "  Redis restart      killed at {}, back (empty) at {}",
            secs(from),
            secs(to)
        ));
    }
    if let Some((from, to)) = kill {
        line(format!(
            "  instance B SIGKILL at {}, restarted at {}",
            secs(from),
            secs(to)
        ));
    }
    line(String::new());
    line(format!(
        "| requests | {sent} ({:.0}/s) |",
        sent as f64 / seconds as f64
    ));
    line(format!(
        "| answered by the app (200) | {} |",
        latencies.len()
    ));
    line(format!(
        "| latency p50 / p99 / max | {} / {} / {} |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    ));
    let slowest: Vec<String> = lock(&shared.slowest)
        .iter()
        .map(|slow| {
            let (index, life) = slow.instance;
            format!(
                "{} on {}{life} at {} ({:.1} s)",
                slow.app,
                ["A", "B"][index],
                secs(slow.at),
                f64::from(slow.micros) / 1e6
            )
        })
        .collect();
    line(format!(
        "| slowest answers (when they ended) | {} |",
        slowest.join(", ")
    ));
    line(format!(
        "| documented 503 (wake failed during the provider burst) | {documented_503} |"
    ));
    line(format!(
        "| cut by the SIGKILL (in flight on the killed instance) | {cut_by_kill} |"
    ));
    line(format!("| **failed** | **{}** |", failures.len()));
    for (label, n) in &by_label {
        line(format!("|   not 200: {label} | {n} |"));
    }
    line(format!(
        "| wakes: Python processes started / platform scale calls | {python_starts} / {scale_calls} |"
    ));
    line(format!(
        "| apps still awake {} after the traffic | {} {:?} |",
        secs(QUIET_BOUND),
        awake_left.len(),
        awake_left
    ));
    line(format!(
        "| all asleep after the traffic within | {} |",
        secs(quiet_took)
    ));
    line(format!(
        "| **processes leaked** by graceful stops | **{}** {leaked:?} |",
        leaked.len()
    ));
    line(format!(
        "| Python processes of the SIGKILLed instance: at the kill / still running at the end | {} / {} |",
        orphans_at_kill.len(),
        orphans_left.len()
    ));
    for (name, took) in &stop_times {
        line(format!("| {name} stop after SIGTERM | {} |", secs(*took)));
    }
    line(String::new());
    line("| instance | RSS after warm-up MiB | end MiB | max MiB | samples | WARN / ERROR log lines |".to_owned());
    line("|---|---|---|---|---|---|".to_owned());
    for life in &lives {
        let (warn, error) = life.warnings();
        line(format!(
            "| {}{} | {} | {} | {} | {} | {warn} / {error} |",
            life.name(),
            if is_killed(&shared, life) {
                " (SIGKILLed)"
            } else {
                ""
            },
            mib(life.rss_start()),
            mib(life.rss_end()),
            mib(life.rss_max()),
            life.rss.len()
        ));
    }
    for life in &lives {
        let series: Vec<String> = life
            .rss
            .iter()
            .map(|(at, k)| format!("{:.0}:{:.1}", at.as_secs_f64(), *k as f64 / 1024.0))
            .collect();
        line(format!(
            "  RSS {} (s:MiB) {}",
            life.name(),
            series.join(" ")
        ));
    }
    line(format!("  logs: {}", log_dir.display()));
    for miss in failures.iter().take(20) {
        line(format!("  failed: {}", miss.describe()));
    }
    println!("\n{report}");

    // The verdict.
    assert!(failures.is_empty(), "{} requests failed", failures.len());
    assert!(
        awake_left.is_empty(),
        "apps still awake {} after the traffic: {awake_left:?}",
        secs(QUIET_BOUND)
    );
    assert!(
        leaked.is_empty(),
        "Python processes left by graceful stops: {leaked:?}"
    );
    for life in lives.iter().filter(|l| !is_killed(&shared, l)) {
        let status = life.exit.expect("stopped");
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM",
            life.name()
        );
    }
    for life in lives.iter().filter(|l| !is_killed(&shared, l)) {
        // An instance that ran long enough to have a warm figure and an end figure.
        if let (Some(start), Some(end)) = (life.rss_start(), life.rss_end()) {
            assert!(
                end <= start + rss_growth_allowed(start),
                "{} RSS grew from {} to {} MiB",
                life.name(),
                mib(Some(start)),
                mib(Some(end))
            );
        }
    }
    assert!(burst.is_some() && redis_outage.is_some() && kill.is_some());
    drop(redis);
}

fn is_killed(shared: &Shared, life: &Life) -> bool {
    lock(&shared.killed)
        .iter()
        .any(|&(i, l, _)| (i, l) == (life.index, life.life))
}
