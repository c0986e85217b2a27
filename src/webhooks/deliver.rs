//! Delivering a space's events to its webhooks, in the background.
//!
//! One task follows the space's event log and queues a delivery for each webhook that wants
//! the event (a bounded queue per webhook: beyond it the oldest delivery is dropped, counted
//! and logged). One task per webhook sends its queue in order, trying a failed delivery
//! again with an exponential, jittered delay for at most the webhook's `retry_for`. The
//! last [`RECENT`] deliveries of each webhook are kept, with their attempts and outcome, for
//! the admin API. Nothing here is ever awaited by a wake or a stop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use super::{Webhook, sign};
use crate::address::UpstreamScope;
use crate::events::{Event, EventLog};
use crate::metrics::Metrics;

/// Deliveries kept per webhook, for the admin API.
pub const RECENT: usize = 100;

/// The first delay before a failed delivery is tried again (doubled at each failure).
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest delay between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Which apps a webhook is for (a rule's: the apps its pattern matches).
pub type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A webhook and the apps it is for.
#[derive(Clone)]
pub struct Target {
    /// The webhook.
    pub webhook: Webhook,
    /// The pattern of the rule it comes from, when it is a rule's.
    pub rule: Option<String>,
    /// Whether an app's events go to it (none: every event of the space).
    pub only: Option<Matcher>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("webhook", &self.webhook)
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its turn.
    Queued,
    /// Failed at least once; will be tried again.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after `retry_for`.
    Failed,
    /// Dropped from a full queue before it was sent.
    Dropped,
}

/// One delivery of one event to one webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its id (the `Paastis-Delivery` header).
    pub id: String,
    /// The event's kind.
    pub kind: String,
    /// The event's app (empty for space-wide events).
    pub app: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub response_status: Option<u16>,
    /// What went wrong last, if anything (never the URL).
    pub last_error: Option<String>,
    /// When the event was queued.
    pub created_at: SystemTime,
    /// When it was last tried.
    pub last_attempt_at: Option<SystemTime>,
    /// When it was delivered or given up.
    pub done_at: Option<SystemTime>,
}

/// A delivery waiting to be sent.
struct Pending {
    id: String,
    kind: String,
    body: Vec<u8>,
}

/// One webhook at run time.
pub struct Running {
    /// What it is.
    pub target: Target,
    queue: Mutex<VecDeque<Pending>>,
    ready: Notify,
    recent: Mutex<VecDeque<Delivery>>,
    closed: AtomicBool,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Running {
    /// Its recent deliveries, newest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Deliveries waiting now.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Deliveries made, given up and dropped since the start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Delivery)) {
        if let Some(delivery) = lock(&self.recent).iter_mut().rev().find(|d| d.id == id) {
            change(delivery);
        }
    }

    fn record(&self, delivery: Delivery) {
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(delivery);
    }
}

/// The webhooks of one space, delivering its events. Dropped, it stops following the
/// events (what its webhooks queued is still sent).
pub struct Webhooks {
    space: String,
    hooks: Vec<Arc<Running>>,
    /// Dropped with it: tells the follower to stop.
    _following: Option<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("space", &self.space)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the receiver answered {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
    #[error("{0} is an internal address, refused for this space")]
    Internal(std::net::IpAddr),
}

impl Webhooks {
    /// No webhook.
    pub fn none(space: &str) -> Arc<Webhooks> {
        Arc::new(Webhooks {
            space: space.to_owned(),
            hooks: Vec::new(),
            _following: None,
        })
    }

    /// Whether it delivers to exactly these targets (so a reload that did not change
    /// them keeps it, with its queues and history).
    pub fn same(&self, targets: &[Target]) -> bool {
        self.hooks.len() == targets.len()
            && self.hooks.iter().zip(targets).all(|(hook, target)| {
                hook.target.webhook == target.webhook && hook.target.rule == target.rule
            })
    }

    /// Starts delivering the events of `events` to `targets` (each attempt's addresses
    /// allowed in `scope`). The tasks end when the event log goes away. Without a tokio
    /// runtime (or a target), nothing is started.
    pub fn start(
        space: &str,
        targets: Vec<Target>,
        events: &EventLog,
        metrics: Arc<Metrics>,
        scope: UpstreamScope,
    ) -> Arc<Webhooks> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Webhooks::none(space);
        };
        if targets.is_empty() {
            return Webhooks::none(space);
        }
        let hooks: Vec<Arc<Running>> = targets
            .into_iter()
            .map(|target| {
                Arc::new(Running {
                    target,
                    queue: Mutex::new(VecDeque::new()),
                    ready: Notify::new(),
                    recent: Mutex::new(VecDeque::new()),
                    closed: AtomicBool::new(false),
                    delivered: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                })
            })
            .collect();
        let client = client(scope);
        for hook in &hooks {
            runtime.spawn(send_all(
                Arc::clone(hook),
                client.clone(),
                Arc::clone(&metrics),
                scope,
            ));
        }
        let feed = events.subscribe();
        let (following, stopped) = tokio::sync::watch::channel(());
        runtime.spawn(follow(
            feed,
            stopped,
            hooks.clone(),
            metrics,
            space.to_owned(),
        ));
        Arc::new(Webhooks {
            space: space.to_owned(),
            hooks,
            _following: Some(following),
        })
    }

    /// Its webhooks, in the order configured (the space's, then its rules').
    pub fn list(&self) -> &[Arc<Running>] {
        &self.hooks
    }

    /// The webhook with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Running>> {
        self.hooks.iter().find(|hook| hook.target.webhook.id == id)
    }
}

/// The HTTP client of deliveries: no redirects, bounded connects, and for a hosted
/// tenant, names resolved to public addresses only.
/// `Err` (why, for each delivery's error) when no such client can be made: deliveries
/// then fail rather than go out without these limits.
fn client(scope: UpstreamScope) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("paastis/", env!("CARGO_PKG_VERSION")));
    if scope == UpstreamScope::Public {
        builder = builder.dns_resolver(PublicOnly);
    }
    builder.build().map_err(|error| {
        tracing::error!(%error, "webhooks: no HTTP client could be made; deliveries fail");
        format!("no HTTP client: {error}")
    })
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = UpstreamScope::Public.allowed(resolved);
            if allowed.is_empty() {
                return Err(format!("{host} resolves to internal addresses only").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Queues each event of `feed` for the webhooks that want it.
async fn follow(
    mut feed: tokio::sync::broadcast::Receiver<Event>,
    mut stopped: tokio::sync::watch::Receiver<()>,
    hooks: Vec<Arc<Running>>,
    metrics: Arc<Metrics>,
    space: String,
) {
    loop {
        let received = tokio::select! {
            received = feed.recv() => received,
            _ = stopped.changed() => break,
        };
        let event = match received {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    space = %space,
                    missed,
                    "webhooks: events came faster than they could be queued; some were not sent"
                );
                metrics.webhook_dropped(missed);
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let (kind, cause) = sign::kind_of(&event);
        for hook in &hooks {
            let target = &hook.target;
            if !target.webhook.wants(&kind, cause.as_deref()) {
                continue;
            }
            if let Some(only) = &target.only
                && (event.app.name.is_empty() || !only(&event.app.name))
            {
                continue;
            }
            let id = format!("{:016x}", fastrand::u64(..));
            let body = sign::body(target.webhook.format, &id, &target.webhook.id, &event);
            hook.record(Delivery {
                id: id.clone(),
                kind: kind.clone(),
                app: event.app.name.to_string(),
                status: DeliveryStatus::Queued,
                attempts: 0,
                response_status: None,
                last_error: None,
                created_at: SystemTime::now(),
                last_attempt_at: None,
                done_at: None,
            });
            let dropped = {
                let mut queue = lock(&hook.queue);
                let dropped = if queue.len() >= target.webhook.queue {
                    queue.pop_front()
                } else {
                    None
                };
                queue.push_back(Pending {
                    id,
                    kind: kind.clone(),
                    body,
                });
                dropped
            };
            if let Some(dropped) = dropped {
                hook.dropped.fetch_add(1, Ordering::Relaxed);
                metrics.webhook_dropped(1);
                hook.update(&dropped.id, |d| {
                    d.status = DeliveryStatus::Dropped;
                    d.done_at = Some(SystemTime::now());
                });
                tracing::warn!(
                    space = %space,
                    webhook = %target.webhook.id,
                    delivery = %dropped.id,
                    "webhook queue full: the oldest delivery was dropped"
                );
            }
            hook.ready.notify_one();
        }
    }
    for hook in &hooks {
        hook.closed.store(true, Ordering::Relaxed);
        hook.ready.notify_one();
    }
}

/// Sends a webhook's queue, in order, until the event log goes away.
async fn send_all(
    hook: Arc<Running>,
    client: Result<reqwest::Client, String>,
    metrics: Arc<Metrics>,
    scope: UpstreamScope,
) {
    loop {
        let next = lock(&hook.queue).pop_front();
        match next {
            Some(pending) => send(&hook, &client, &metrics, scope, pending).await,
            None if hook.closed.load(Ordering::Relaxed) => return,
            None => hook.ready.notified().await,
        }
    }
}

/// One delivery, tried until it succeeds or `retry_for` is over.
async fn send(
    hook: &Running,
    client: &Result<reqwest::Client, String>,
    metrics: &Metrics,
    scope: UpstreamScope,
    pending: Pending,
) {
    let webhook = &hook.target.webhook;
    let deadline = tokio::time::Instant::now() + webhook.retry_for;
    let mut delay = FIRST_RETRY;
    let mut attempts = 0;
    loop {
        attempts += 1;
        hook.update(&pending.id, |d| {
            d.attempts = attempts;
            d.last_attempt_at = Some(SystemTime::now());
        });
        let result = attempt(client, webhook, scope, &pending).await;
        match result {
            Ok(status) => {
                hook.delivered.fetch_add(1, Ordering::Relaxed);
                metrics.webhook_delivery("delivered");
                hook.update(&pending.id, |d| {
                    d.status = DeliveryStatus::Delivered;
                    d.response_status = Some(status);
                    d.done_at = Some(SystemTime::now());
                });
                return;
            }
            Err(error) => {
                let message = error.to_string();
                let wait = jitter(delay);
                let give_up = tokio::time::Instant::now() + wait > deadline;
                hook.update(&pending.id, |d| {
                    if let AttemptError::Status(status) = error {
                        d.response_status = Some(status);
                    }
                    d.last_error = Some(message.clone());
                    d.status = if give_up {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Retrying
                    };
                    if give_up {
                        d.done_at = Some(SystemTime::now());
                    }
                });
                if give_up {
                    hook.failed.fetch_add(1, Ordering::Relaxed);
                    metrics.webhook_delivery("failed");
                    tracing::warn!(
                        webhook = %webhook.id,
                        delivery = %pending.id,
                        attempts,
                        error = %message,
                        "webhook delivery given up"
                    );
                    return;
                }
                metrics.webhook_delivery("retried");
                tracing::debug!(
                    webhook = %webhook.id,
                    delivery = %pending.id,
                    attempts,
                    error = %message,
                    "webhook delivery failed; trying again"
                );
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

/// `delay`, give or take a quarter.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.75 + fastrand::f64() * 0.5)
}

/// One POST of a delivery; its status when 2xx.
async fn attempt(
    client: &Result<reqwest::Client, String>,
    webhook: &Webhook,
    scope: UpstreamScope,
    pending: &Pending,
) -> Result<u16, AttemptError> {
    let client = client
        .as_ref()
        .map_err(|why| AttemptError::Other(why.clone()))?;
    let url = webhook.url.expose();
    if scope == UpstreamScope::Public
        && let Some(ip) = literal_ip(url)
        && crate::address::is_internal(ip)
    {
        return Err(AttemptError::Internal(ip));
    }
    let mut request = client
        .post(url)
        .timeout(webhook.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(sign::DELIVERY_HEADER, &pending.id)
        .header(sign::EVENT_HEADER, &pending.kind);
    if let Some(secret) = &webhook.secret {
        request = request.header(
            sign::SIGNATURE_HEADER,
            sign::signature(secret.expose(), sign::unix_now(), &pending.body),
        );
    }
    let response = request
        .body(pending.body.clone())
        .send()
        .await
        .map_err(|error| {
            let error = error.without_url();
            if error.is_timeout() {
                AttemptError::Timeout
            } else if error.is_connect() {
                AttemptError::Connect(source_text(&error))
            } else {
                AttemptError::Other(source_text(&error))
            }
        })?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(AttemptError::Status(status))
    }
}

/// An error and its sources, one after the other (none of them holds the URL: reqwest's
/// is removed first).
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    crate::model::error_chain(error)
}

/// The IP address a URL names literally, if it does.
fn literal_ip(url: &str) -> Option<std::net::IpAddr> {
    let uri = url.parse::<http::Uri>().ok()?;
    let host = uri.host()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_are_told_apart() {
        assert_eq!(
            literal_ip("http://127.0.0.1:8/x"),
            Some("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(
            literal_ip("http://[::1]/"),
            Some("::1".parse().expect("ip"))
        );
        assert_eq!(literal_ip("https://example.com/"), None);
    }

    #[test]
    fn jitter_stays_near_the_delay() {
        for _ in 0..100 {
            let wait = jitter(Duration::from_secs(4));
            assert!(wait >= Duration::from_secs(3) && wait <= Duration::from_secs(5));
        }
    }
}
