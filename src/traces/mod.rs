//! Traces: a span per proxied request, wake, stop and admin call (provider calls as child
//! spans), sent in batches over OTLP (HTTP/protobuf or gRPC) to the collector the standard
//! `OTEL_*` variables name ([`settings`]); W3C `traceparent` read from clients and written
//! to upstreams ([`context`]).
//!
//! Off by default, and then free: a [`Tracer`] is an `Option`, every call on an off tracer
//! is one branch, nothing is allocated. On, a finished span goes to a bounded queue; when
//! the collector is slow or gone, new spans are dropped and counted, never waited for: the
//! request path never blocks on traces. This module records and sends; it decides nothing
//! and never sees a header value besides `traceparent`.

pub mod context;
mod export;
mod otlp;
mod router;
pub mod settings;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use context::SpanContext;
pub use export::{ExportError, Exporter};
pub use router::traced;
pub use settings::Settings;
use settings::{Root, Sampler};

/// What a span is, in the OTLP sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside the engine (a wake, a stop).
    Internal,
    /// A request the engine answers (a proxied request, an admin call).
    Server,
    /// A call the engine makes (a provider's API, a health probe).
    Client,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(Cow<'static, str>),
    /// A whole number.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Shared text (an app's or a provider's name), not copied.
    Shared(Arc<str>),
    /// An address, written out when the span is sent.
    Ip(std::net::IpAddr),
}

impl From<Arc<str>> for Value {
    fn from(text: Arc<str>) -> Value {
        Value::Shared(text)
    }
}

impl From<std::net::IpAddr> for Value {
    fn from(ip: std::net::IpAddr) -> Value {
        Value::Ip(ip)
    }
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Value {
        Value::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(Cow::Owned(text))
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Value {
        Value::Int(number)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Bool(flag)
    }
}

/// A finished (or recording) span, as it is sent.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Its trace and id.
    context: SpanContext,
    /// Its parent's id, in the same trace.
    parent: Option<[u8; 8]>,
    /// Whether the parent is another process's (a client's `traceparent`).
    remote_parent: bool,
    /// What it is (`GET`, `wake`, `provider start`).
    name: Cow<'static, str>,
    /// Server, client or internal.
    kind: Kind,
    /// When it began, in nanoseconds since the Unix epoch.
    start: u64,
    /// When it ended, likewise.
    end: u64,
    /// What it was about (semantic convention names where there is one).
    attributes: Vec<(&'static str, Value)>,
    /// Why it failed, when it did (the span's status is then an error).
    error: Option<String>,
}

/// The engine's tracer: off (the default), or the sampler and the queue to the exporter.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Tracer {
    /// `None`: traces are off.
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("on", &self.is_on())
            .finish_non_exhaustive()
    }
}

/// What every span of an on tracer shares.
struct Shared {
    /// Which traces are recorded.
    sampler: Sampler,
    /// Finished spans waiting for the exporter. A plain list under a lock: a span's end
    /// costs a push, and the exporter is woken only when a batch is full (else its timer
    /// takes what is there), never once per span.
    queue: std::sync::Mutex<Vec<SpanRecord>>,
    /// Most spans the queue holds (`OTEL_BSP_MAX_QUEUE_SIZE`).
    capacity: usize,
    /// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`): a queue this long wakes the
    /// exporter.
    batch: usize,
    /// Wakes the exporter when a batch is ready.
    ready: tokio::sync::Notify,
    /// Spans dropped because the queue was full.
    dropped: AtomicU64,
    /// Spans given up after their export failed (retries included).
    lost: AtomicU64,
}

impl Shared {
    /// Queues a finished span, or counts it dropped when the queue is full.
    fn finish(&self, record: SpanRecord) {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.len() >= self.capacity {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(record);
        let full = queue.len() == self.batch;
        drop(queue);
        if full {
            self.ready.notify_one();
        }
    }

    /// Up to `most` queued spans, oldest first.
    fn take(&self, most: usize) -> Vec<SpanRecord> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.len() <= most {
            std::mem::take(&mut *queue)
        } else {
            queue.drain(..most).collect()
        }
    }
}

impl Tracer {
    /// A tracer that records nothing.
    pub const fn off() -> Tracer {
        Tracer { shared: None }
    }

    /// A tracer sending to the collector `settings` name, and its exporter (to run on the
    /// engine's runtime, and to flush at shutdown). Err: the TLS settings cannot be used.
    pub fn start(settings: Settings) -> Result<(Tracer, Exporter), ExportError> {
        let shared = Arc::new(Shared {
            sampler: settings.sampler,
            queue: std::sync::Mutex::new(Vec::new()),
            capacity: settings.batch.queue,
            batch: settings.batch.size,
            ready: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let tracer = Tracer {
            shared: Some(Arc::clone(&shared)),
        };
        let exporter = Exporter::start(settings, shared)?;
        Ok((tracer, exporter))
    }

    /// Whether traces are on (off: nothing below does anything).
    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Spans dropped so far because the collector did not keep up.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |shared| shared.dropped.load(Ordering::Relaxed))
    }

    /// The traces' counters in the Prometheus text format (nothing when traces are off).
    pub fn metrics(&self) -> String {
        let Some(shared) = &self.shared else {
            return String::new();
        };
        let dropped = self.dropped();
        format!(
            "# HELP paastis_trace_spans_dropped_total Finished spans dropped: the queue \
             (OTEL_BSP_MAX_QUEUE_SIZE) was full.\n\
             # TYPE paastis_trace_spans_dropped_total counter\n\
             paastis_trace_spans_dropped_total {}\n\
             # HELP paastis_trace_spans_lost_total Spans whose export failed after its retries.\n\
             # TYPE paastis_trace_spans_lost_total counter\n\
             paastis_trace_spans_lost_total {}\n",
            dropped,
            shared.lost.load(Ordering::Relaxed)
        )
    }

    /// A new span: a child of `parent` when there is one (`remote`: the parent is another
    /// process's, so the sampler may follow its decision), else the root of a new trace.
    /// With traces off, a span that does nothing.
    pub fn span(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<SpanContext>,
        remote: bool,
    ) -> Span {
        let Some(shared) = &self.shared else {
            return Span::none();
        };
        let trace_id = parent.map_or_else(new_trace_id, |parent| parent.trace_id);
        let sampled = match parent {
            // A span of this process: its parent's decision.
            Some(parent) if !remote => parent.sampled,
            Some(parent) if shared.sampler.parent_based => parent.sampled,
            _ => match shared.sampler.root {
                Root::On => true,
                Root::Off => false,
                Root::Ratio(ratio) => ratio_keeps(&trace_id, ratio),
            },
        };
        let context = SpanContext {
            trace_id,
            span_id: new_span_id(),
            sampled,
        };
        let record = sampled.then(|| SpanRecord {
            context,
            parent: parent.map(|parent| parent.span_id),
            remote_parent: remote && parent.is_some(),
            name: name.into(),
            kind,
            start: unix_nanos(),
            end: 0,
            attributes: Vec::with_capacity(16),
            error: None,
        });
        Span {
            context: Some(context),
            record,
            shared: sampled.then(|| Arc::clone(shared)),
        }
    }
}

/// One operation being timed. Ended when dropped (or by [`Span::end`]): an early return
/// still records it. Does nothing when traces are off or the trace is not sampled.
pub struct Span {
    /// Its identity, to propagate and to parent children (`None`: traces are off).
    context: Option<SpanContext>,
    /// What is recorded (`None`: not sampled).
    record: Option<SpanRecord>,
    /// Where it goes when it ends (`None`: not sampled).
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl Span {
    /// A span that does nothing.
    pub fn none() -> Span {
        Span {
            context: None,
            record: None,
            shared: None,
        }
    }

    /// Its identity (`None`: traces are off), for `traceparent` and children.
    pub fn context(&self) -> Option<SpanContext> {
        self.context
    }

    /// Whether it is recorded (attributes worth computing).
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    /// Sets an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(record) = &mut self.record {
            record.attributes.push((key, value.into()));
        }
    }

    /// Marks it failed, saying why.
    pub fn fail(&mut self, reason: impl Into<String>) {
        if let Some(record) = &mut self.record {
            record.error = Some(reason.into());
        }
    }

    /// A child span (same trace, same decision), started now.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: Kind) -> Span {
        match (&self.context, &self.shared) {
            (Some(context), Some(shared)) => Tracer {
                shared: Some(Arc::clone(shared)),
            }
            .span(name, kind, Some(*context), false),
            // Not sampled: the children are not either, but keep the trace's identity.
            (Some(context), None) => Span {
                context: Some(SpanContext {
                    span_id: new_span_id(),
                    ..*context
                }),
                record: None,
                shared: None,
            },
            (None, _) => Span::none(),
        }
    }

    /// Ends it now.
    pub fn end(self) {}

    /// Drops it unrecorded (what it stood for did not happen after all).
    pub fn discard(mut self) {
        self.record = None;
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let (Some(mut record), Some(shared)) = (self.record.take(), self.shared.take()) {
            record.end = unix_nanos();
            shared.finish(record);
        }
    }
}

tokio::task_local! {
    /// The span a task works for (an admin call's, a request's while it wakes its app):
    /// what it begins (a wake, a stop) becomes its child.
    static CURRENT: SpanContext;
}

/// Runs `work` with `context` as its task's current span.
pub async fn within<F: Future>(context: SpanContext, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

/// The span a request's wake goes under, when the task has none current: the request's own
/// `traceparent` (the proxy puts its span's there when traces are on).
fn request_parent(headers: &http::HeaderMap) -> Option<SpanContext> {
    current()
        .is_none()
        .then(|| SpanContext::from_headers(headers))
        .flatten()
}

/// Runs `work` (a wake a request asks for) under the task's current span, else under the
/// request's own `traceparent`.
pub async fn within_request<F: Future>(headers: &http::HeaderMap, work: F) -> F::Output {
    match request_parent(headers) {
        Some(context) => within(context, work).await,
        None => work.await,
    }
}

/// [`within_request`] for `work` with no `.await` in it.
pub fn within_request_sync<R>(headers: &http::HeaderMap, work: impl FnOnce() -> R) -> R {
    match request_parent(headers) {
        Some(context) => CURRENT.sync_scope(context, work),
        None => work(),
    }
}

/// The task's current span, if any.
pub fn current() -> Option<SpanContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// Whether a trace-id ratio sampler keeps this trace: its last 8 bytes, as a number, below
/// the ratio's share of their range (the same answer on every instance).
fn ratio_keeps(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

fn new_trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

fn new_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(sampler: Sampler, queue: usize) -> (Tracer, Arc<Shared>) {
        let shared = Arc::new(Shared {
            sampler,
            queue: std::sync::Mutex::new(Vec::new()),
            capacity: queue,
            batch: queue,
            ready: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let tracer = Tracer {
            shared: Some(Arc::clone(&shared)),
        };
        (tracer, shared)
    }

    const ON: Sampler = Sampler {
        root: Root::On,
        parent_based: true,
    };

    #[test]
    fn an_off_tracer_records_nothing() {
        let tracer = Tracer::off();
        let mut span = tracer.span("GET", Kind::Server, None, true);
        span.set("http.response.status_code", 200_i64);
        assert_eq!(span.context(), None);
        assert_eq!(span.child("wake", Kind::Internal).context(), None);
    }

    #[test]
    fn children_share_the_trace_and_name_their_parent() {
        let (tracer, spans) = tracer(ON, 8);
        let remote =
            SpanContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let root = tracer.span("GET", Kind::Server, Some(remote), true);
        let child = root.child("wake", Kind::Internal);
        let (root_context, child_context) = (root.context().unwrap(), child.context().unwrap());
        child.end();
        root.end();
        let finished = spans.take(10);
        let (child, root) = (&finished[0], &finished[1]);
        assert_eq!(root.context.trace_id, remote.trace_id);
        assert_eq!(root.parent, Some(remote.span_id));
        assert!(root.remote_parent);
        assert_eq!(child.parent, Some(root_context.span_id));
        assert!(!child.remote_parent);
        assert_eq!(child.context, child_context);
        assert!(root.end >= root.start);
    }

    #[test]
    fn a_parent_based_sampler_follows_the_caller() {
        let (tracer, spans) = tracer(ON, 8);
        let unsampled =
            SpanContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let span = tracer.span("GET", Kind::Server, Some(unsampled), true);
        let context = span.context().unwrap();
        assert!(!context.sampled);
        assert_eq!(context.trace_id, unsampled.trace_id);
        assert_ne!(context.span_id, unsampled.span_id);
        let child = span.child("wake", Kind::Internal);
        assert!(!child.context().unwrap().sampled);
        drop((span, child));
        assert!(spans.take(10).is_empty());
        // Not parent-based: the sampler's own decision.
        let (tracer, _spans) = tracer_with(Sampler {
            root: Root::On,
            parent_based: false,
        });
        assert!(
            tracer
                .span("GET", Kind::Server, Some(unsampled), true)
                .context()
                .unwrap()
                .sampled
        );
    }

    fn tracer_with(sampler: Sampler) -> (Tracer, Arc<Shared>) {
        tracer(sampler, 8)
    }

    #[test]
    fn a_ratio_keeps_about_its_share_of_traces() {
        let kept = (0..20_000)
            .filter(|_| ratio_keeps(&new_trace_id(), 0.25))
            .count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        assert!(!ratio_keeps(&new_trace_id(), 0.0));
        assert!(ratio_keeps(&new_trace_id(), 1.0));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tracer, _spans) = tracer(ON, 1);
        for _ in 0..3 {
            tracer.span("GET", Kind::Server, None, false).end();
        }
        assert_eq!(tracer.dropped(), 2);
    }

    #[tokio::test]
    async fn the_current_span_is_the_tasks() {
        assert_eq!(current(), None);
        let (tracer, _spans) = tracer(ON, 8);
        let span = tracer.span("GET", Kind::Server, None, false);
        let context = span.context().unwrap();
        within(context, async {
            assert_eq!(current(), Some(context));
            let child = tracer.span("wake", Kind::Internal, current(), false);
            assert_eq!(child.context().unwrap().trace_id, context.trace_id);
        })
        .await;
        assert_eq!(current(), None);
        // A request's own traceparent, when no span is current.
        let mut headers = http::HeaderMap::new();
        headers.insert(context::TRACEPARENT, context.to_header());
        let found = within_request(&headers, async { current() }).await;
        assert_eq!(found, Some(context));
        let other = tracer
            .span("GET", Kind::Server, None, false)
            .context()
            .unwrap();
        let found = within(other, within_request(&headers, async { current() })).await;
        assert_eq!(found, Some(other));
    }
}
