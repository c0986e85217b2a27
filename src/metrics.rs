//! Prometheus metrics: counters and histograms the engine updates as it works, rendered in
//! the text exposition format for `/metrics`.
//!
//! One set per engine (several engines in one process, as in tests, do not mix), atomics
//! only on the request path. Label values are bounded: `app` is a managed app (requests no
//! app answers to count under `app=""`, whatever their host), `status` a status class
//! (`2xx`...), `provider` a configured provider id, the rest fixed words.
//!
//! It reads managed apps through [`MeteredApp`] (their key, state and request counts) and
//! imports nothing of the lifecycle, which holds the metrics and updates them.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::model::{AppKey, State};

/// Upper bounds of `paastis_request_duration_seconds`.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Upper bounds of `paastis_wake_duration_seconds`.
const WAKE_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// Status classes, as label values.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Most shards a counter of the request path is split into (see [`count_in_shard`]).
const MAX_SHARDS: usize = 8;

/// Room for one shard's counters on cache lines of their own (two lines: processors fetch
/// lines in pairs). Proxy workers counting into one line make each other's counts wait for
/// the line to move between their CPUs, at every request.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

thread_local! {
    /// The shard this thread counts into: 0 unless it said otherwise ([`count_in_shard`]).
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread count the request path's metrics into shard `index` (modulo
/// the number of shards). Each proxy worker takes its own, so the workers never write to
/// the same counter: nothing they count moves between their CPUs. Any thread may count
/// into any shard (the counters are atomic): this only spreads the writes.
pub fn count_in_shard(index: usize) {
    SHARD.with(|shard| shard.set(index));
}

/// How many shards a counter of the request path has: one per CPU, at most [`MAX_SHARDS`].
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_SHARDS)))
}

/// The calling thread's shard among `len`.
fn shard_of(len: usize) -> usize {
    SHARD.with(Cell::get) % len.max(1)
}

/// Requests answered, by status class (one per app, one for requests no app answers to),
/// counted per shard. The shards are made at the first request: an app nobody asks for
/// holds none (24 bytes in all).
#[derive(Debug, Default)]
pub struct RequestCounts(OnceLock<Box<[Padded<[AtomicU64; 5]>]>>);

impl RequestCounts {
    /// Counts one answer with this status code.
    pub fn add(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let shards = self
            .0
            .get_or_init(|| (0..shard_count()).map(|_| Padded::default()).collect());
        shards[shard_of(shards.len())].0[class].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, class: usize) -> u64 {
        self.0.get().map_or(0, |shards| {
            shards
                .iter()
                .map(|shard| shard.0[class].load(Ordering::Relaxed))
                .sum()
        })
    }
}

/// What the metrics read of a managed app (the lifecycle's apps are these).
pub trait MeteredApp {
    /// Which app: its `app` label.
    fn key(&self) -> &AppKey;
    /// Its state, for `paastis_apps`.
    fn state(&self) -> State;
    /// Requests answered for it, by status class.
    fn requests(&self) -> &RequestCounts;
    /// Seconds until it is put to sleep for being idle (awake apps with a `max_idle`
    /// only), at engine-clock `now_ms`.
    fn sleeps_in_seconds(&self, now_ms: u64) -> Option<u64>;
}

/// Most buckets a histogram has (its counts are kept inline, so that each shard's stay on
/// its own cache lines).
const MAX_BUCKETS: usize = 16;
const _: () = assert!(REQUEST_BUCKETS.len() <= MAX_BUCKETS && WAKE_BUCKETS.len() <= MAX_BUCKETS);

/// One shard of a histogram's counts.
#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations at or under each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; MAX_BUCKETS],
    /// Sum of observations, in microseconds.
    sum_us: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

/// A histogram with fixed buckets, its counts in shards (see [`count_in_shard`]).
#[derive(Debug)]
struct Histogram {
    /// Upper bounds, ascending (at most [`MAX_BUCKETS`]; more are not counted).
    bounds: &'static [f64],
    /// The counts, one set per shard; summed when rendered.
    shards: Box<[Padded<HistogramCells>]>,
}

impl Histogram {
    /// A histogram in one shard (one written under a lock, or rarely).
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram::sharded(bounds, 1)
    }

    /// A histogram with `shards` shards (one written by every request).
    fn sharded(bounds: &'static [f64], shards: usize) -> Histogram {
        debug_assert!(bounds.len() <= MAX_BUCKETS, "too many buckets");
        Histogram {
            bounds: &bounds[..bounds.len().min(MAX_BUCKETS)],
            shards: (0..shards.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    fn observe(&self, duration: Duration) {
        let cells = &self.shards[shard_of(self.shards.len())].0;
        let seconds = duration.as_secs_f64();
        if let Some(index) = self.bounds.iter().position(|bound| seconds <= *bound) {
            cells.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        cells.sum_us.fetch_add(micros, Ordering::Relaxed);
        cells.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum over the shards of what `read` reads in each.
    fn total(&self, read: impl Fn(&HistogramCells) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| read(&shard.0).load(Ordering::Relaxed))
            .sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.render_series(out, name, "");
    }

    /// The histogram's lines, with `labels` (`key="value"`, escaped; empty: none).
    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let mut cumulative = 0;
        for (index, bound) in self.bounds.iter().enumerate() {
            cumulative += self.total(|cells| &cells.buckets[index]);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.total(|cells| &cells.count);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.total(|cells| &cells.sum_us) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// How a wake ended, as the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WakeResult {
    /// The app became ready.
    Started,
    /// The start failed or timed out.
    Failed,
    /// Another instance woke it.
    Elsewhere,
}

impl WakeResult {
    fn label(self) -> &'static str {
        match self {
            WakeResult::Started => "started",
            WakeResult::Failed => "failed",
            WakeResult::Elsewhere => "elsewhere",
        }
    }
}

/// The engine's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Requests no app answered to (bad or unknown host), by status class.
    unrouted: RequestCounts,
    /// Time from the request's arrival to its response head, every request.
    request_duration: Histogram,
    /// Wakes by result.
    wakes: Mutex<BTreeMap<WakeResult, u64>>,
    /// Time from the wake request to ready, successful wakes, by provider id.
    wake_duration: Mutex<BTreeMap<String, Histogram>>,
    /// Completed stops by reason (`idle`, `api`, ...).
    stops: Mutex<BTreeMap<&'static str, u64>>,
    /// Provider calls by (provider, operation, result).
    provider_calls: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// Each provider's last error (for `/ready` and `/api/v1/providers`).
    provider_errors: Mutex<BTreeMap<String, ProviderFailure>>,
    /// Live event stream clients connected now.
    event_streams: AtomicU64,
    /// Live event stream clients dropped for falling behind.
    event_streams_dropped: AtomicU64,
    /// Webhook delivery attempts by outcome (`delivered`, `retried`, `failed`).
    webhook_deliveries: Mutex<BTreeMap<&'static str, u64>>,
    /// Webhook deliveries dropped (a full queue, or events missed).
    webhook_dropped: AtomicU64,
}

/// A provider's last failed call.
#[derive(Debug, Clone)]
pub struct ProviderFailure {
    /// What it said.
    pub message: String,
    /// When.
    pub at: std::time::SystemTime,
    /// True while no call to it has succeeded since.
    pub current: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            unrouted: RequestCounts::default(),
            request_duration: Histogram::sharded(REQUEST_BUCKETS, shard_count()),
            wakes: Mutex::new(BTreeMap::new()),
            wake_duration: Mutex::new(BTreeMap::new()),
            stops: Mutex::new(BTreeMap::new()),
            provider_calls: Mutex::new(BTreeMap::new()),
            provider_errors: Mutex::new(BTreeMap::new()),
            event_streams: AtomicU64::new(0),
            event_streams_dropped: AtomicU64::new(0),
            webhook_deliveries: Mutex::new(BTreeMap::new()),
            webhook_dropped: AtomicU64::new(0),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Counts one answered request: for `app`, or none when no app answers to its host.
    pub fn request(&self, app: Option<&impl MeteredApp>, status: u16, took: Duration) {
        match app {
            Some(app) => app.requests().add(status),
            None => self.unrouted.add(status),
        }
        self.request_duration.observe(took);
    }

    /// Counts a wake of one of `provider`'s apps that ended (with its duration when it
    /// started the app).
    pub fn wake(&self, provider: &str, result: WakeResult, took: Option<Duration>) {
        *lock(&self.wakes).entry(result).or_default() += 1;
        if let Some(took) = took {
            lock(&self.wake_duration)
                .entry(provider.to_owned())
                .or_insert_with(|| Histogram::new(WAKE_BUCKETS))
                .observe(took);
        }
    }

    /// A live event stream client connected (`true`) or went away.
    pub fn event_stream(&self, connected: bool) {
        if connected {
            self.event_streams.fetch_add(1, Ordering::Relaxed);
        } else {
            self.event_streams.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts a live event stream client dropped for falling behind.
    pub fn event_stream_dropped(&self) {
        self.event_streams_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a webhook delivery attempt's outcome: `delivered`, `retried` (failed, to be
    /// tried again) or `failed` (given up).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        *lock(&self.webhook_deliveries).entry(outcome).or_default() += 1;
    }

    /// Counts webhook deliveries dropped before they were sent.
    pub fn webhook_dropped(&self, count: u64) {
        self.webhook_dropped.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a completed stop.
    pub fn stop(&self, reason: &'static str) {
        *lock(&self.stops).entry(reason).or_default() += 1;
    }

    /// Counts a provider call; a success clears the provider's current error.
    pub fn provider_call(&self, provider: &str, op: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *lock(&self.provider_calls)
            .entry((provider.to_owned(), op, result))
            .or_default() += 1;
        if ok && let Some(failure) = lock(&self.provider_errors).get_mut(provider) {
            failure.current = false;
        }
    }

    /// Remembers a provider's failed call (its message never holds a credential).
    pub fn provider_error(&self, provider: &str, message: String) {
        lock(&self.provider_errors).insert(
            provider.to_owned(),
            ProviderFailure {
                message,
                at: std::time::SystemTime::now(),
                current: true,
            },
        );
    }

    /// Each provider's last error.
    pub fn provider_errors(&self) -> BTreeMap<String, ProviderFailure> {
        lock(&self.provider_errors).clone()
    }

    /// Provider calls by (provider, operation, result).
    pub fn provider_call_counts(&self) -> BTreeMap<(String, &'static str, &'static str), u64> {
        lock(&self.provider_calls).clone()
    }

    /// Every metric, in the Prometheus text format (0.0.4), for these apps at engine-clock
    /// `now_ms`.
    pub fn render<A: MeteredApp>(&self, apps: &[std::sync::Arc<A>], now_ms: u64) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP paastis_requests_total Requests answered, by app and status class.\n");
        out.push_str("# TYPE paastis_requests_total counter\n");
        for app in apps {
            let name = label(&app.key().to_string());
            for (class, word) in CLASSES.iter().enumerate() {
                let n = app.requests().get(class);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "paastis_requests_total{{app=\"{name}\",status=\"{word}\"}} {n}"
                    );
                }
            }
        }
        for (class, word) in CLASSES.iter().enumerate() {
            let n = self.unrouted.get(class);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "paastis_requests_total{{app=\"\",status=\"{word}\"}} {n}"
                );
            }
        }
        self.request_duration.render(
            &mut out,
            "paastis_request_duration_seconds",
            "Time from a request's arrival to its response's head.",
        );

        out.push_str("# HELP paastis_wakes_total Wakes, by result.\n");
        out.push_str("# TYPE paastis_wakes_total counter\n");
        let wakes = lock(&self.wakes).clone();
        for result in [
            WakeResult::Started,
            WakeResult::Failed,
            WakeResult::Elsewhere,
        ] {
            let n = wakes.get(&result).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "paastis_wakes_total{{result=\"{}\"}} {n}",
                result.label()
            );
        }
        let name = "paastis_wake_duration_seconds";
        out.push_str(
            "# HELP paastis_wake_duration_seconds Time from a wake request to the app being ready, by provider.\n",
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (provider, histogram) in lock(&self.wake_duration).iter() {
            let labels = format!("provider=\"{}\"", label(provider));
            histogram.render_series(&mut out, name, &labels);
        }

        out.push_str(
            "# HELP paastis_app_sleeps_in_seconds Seconds until an awake app is put to sleep for being idle (apps with a max_idle, not pinned awake).\n",
        );
        out.push_str("# TYPE paastis_app_sleeps_in_seconds gauge\n");
        for app in apps {
            if let Some(seconds) = app.sleeps_in_seconds(now_ms) {
                let name = label(&app.key().to_string());
                let _ = writeln!(
                    out,
                    "paastis_app_sleeps_in_seconds{{app=\"{name}\"}} {seconds}"
                );
            }
        }

        out.push_str("# HELP paastis_apps Managed apps, by state.\n");
        out.push_str("# TYPE paastis_apps gauge\n");
        for state in [
            State::Asleep,
            State::Waking,
            State::Awake,
            State::Stopping,
            State::Failed,
        ] {
            let n = apps.iter().filter(|app| app.state() == state).count();
            let _ = writeln!(out, "paastis_apps{{state=\"{state}\"}} {n}");
        }

        out.push_str("# HELP paastis_provider_calls_total Provider API calls, by provider, operation and result.\n");
        out.push_str("# TYPE paastis_provider_calls_total counter\n");
        for ((provider, op, result), n) in lock(&self.provider_calls).iter() {
            let _ = writeln!(
                out,
                "paastis_provider_calls_total{{provider=\"{}\",op=\"{op}\",result=\"{result}\"}} {n}",
                label(provider)
            );
        }

        out.push_str("# HELP paastis_stops_total Completed stops, by reason.\n");
        out.push_str("# TYPE paastis_stops_total counter\n");
        let stops = lock(&self.stops).clone();
        for reason in ["idle", "api", "schedule", "plan_limit", "wake_failed"] {
            let n = stops.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "paastis_stops_total{{reason=\"{reason}\"}} {n}");
        }

        scalar(
            &mut out,
            "paastis_event_streams",
            "gauge",
            "Live event stream clients connected.",
            &self.event_streams,
        );
        scalar(
            &mut out,
            "paastis_event_streams_dropped_total",
            "counter",
            "Live event stream clients dropped for falling behind.",
            &self.event_streams_dropped,
        );
        out.push_str(
            "# HELP paastis_webhook_deliveries_total Webhook delivery attempts, by outcome (retried: failed, to be tried again; failed: given up).\n",
        );
        out.push_str("# TYPE paastis_webhook_deliveries_total counter\n");
        let deliveries = lock(&self.webhook_deliveries).clone();
        for outcome in ["delivered", "retried", "failed"] {
            let n = deliveries.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "paastis_webhook_deliveries_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        scalar(
            &mut out,
            "paastis_webhook_dropped_total",
            "counter",
            "Webhook deliveries dropped before they were sent (a full queue).",
            &self.webhook_dropped,
        );
        out
    }
}

/// A metric of one sample without labels: its `HELP` and `TYPE` lines, then its value.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(5));
        let mut out = String::new();
        histogram.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_count 3\n"), "{out}");
        assert!(out.contains("h_sum 5.55\n"), "{out}");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counts_of_threads_in_their_own_shards_add_up() {
        let counts = RequestCounts::default();
        assert_eq!(counts.get(1), 0, "no shards before the first request");
        let histogram = Histogram::sharded(&[0.1, 1.0], 3);
        std::thread::scope(|scope| {
            for index in 0..5 {
                let (counts, histogram) = (&counts, &histogram);
                scope.spawn(move || {
                    count_in_shard(index);
                    for _ in 0..100 {
                        counts.add(200);
                        histogram.observe(Duration::from_millis(50));
                    }
                    counts.add(503);
                    histogram.observe(Duration::from_secs(5));
                });
            }
        });
        assert_eq!(
            (0..5).map(|c| counts.get(c)).collect::<Vec<_>>(),
            vec![0, 500, 0, 0, 5]
        );
        let mut out = String::new();
        histogram.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"0.1\"} 500\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"1\"} 500\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 505\n"), "{out}");
        assert!(out.contains("h_count 505\n"), "{out}");
        assert!(out.contains("h_sum 50\n"), "{out}");
        // Five threads in three shards: some shared one, and every shard was written.
        for shard in &histogram.shards {
            assert!(shard.0.count.load(Ordering::Relaxed) > 0);
        }
    }

    #[test]
    fn statuses_fall_in_their_class() {
        let counts = RequestCounts::default();
        for status in [100, 200, 204, 302, 404, 503, 999, 0] {
            counts.add(status);
        }
        assert_eq!(
            (0..5).map(|c| counts.get(c)).collect::<Vec<_>>(),
            vec![2, 2, 1, 1, 2]
        );
    }
}
