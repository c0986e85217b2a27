//! Just after a wake: the places for requests on fresh connections to one upstream (a few at
//! a time, so an app server with a small listen backlog is not flooded), and the growing
//! pauses between attempts to reach an upstream that is not listening yet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use tokio::time::Instant;

use super::Forwarder;

/// Just after a wake, requests on fresh connections to one upstream at once, per worker:
/// the held requests are released together, and an app server with a small listen backlog
/// would drop most of a burst of new connections. Each keeps its place until the first
/// byte of its answer, or [`RAMP_HOLD`].
const RAMP_CONNECTIONS: usize = 4;

/// Longest a request keeps its place among [`RAMP_CONNECTIONS`] (a slow answer does not
/// hold the others back for longer).
pub(super) const RAMP_HOLD: Duration = Duration::from_millis(50);

/// Places for requests on fresh connections just after a wake, by upstream authority.
pub(super) type Ramps = HashMap<Box<str>, Arc<tokio::sync::Semaphore>, foldhash::fast::RandomState>;

impl Forwarder {
    /// A place among the requests on fresh connections to `authority` just after a wake.
    pub(super) async fn ramp(
        &self,
        authority: &Authority,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let ramp = {
            let mut ramps = self.ramps.lock().unwrap_or_else(|p| p.into_inner());
            let ramp = ramps
                .entry(authority.as_str().into())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(RAMP_CONNECTIONS)));
            Arc::clone(ramp)
        };
        ramp.acquire_owned().await.ok()
    }
}

/// The growing pauses between attempts to reach an upstream that is not listening yet.
pub(super) struct RetryPause<F> {
    /// Until when retrying may help; asked only on failure, so the common path reads
    /// nothing more.
    until: F,
    /// The next pause: 50 ms, doubling up to 1 s.
    next: Duration,
}

impl<F: Fn() -> Option<Instant>> RetryPause<F> {
    pub(super) fn new(until: F) -> Self {
        RetryPause {
            until,
            next: Duration::from_millis(50),
        }
    }

    /// Whether this is the time just after a wake.
    pub(super) fn active(&self) -> bool {
        (self.until)().is_some_and(|until| Instant::now() < until)
    }

    /// Waits before the next attempt, if it would still start within the deadline.
    pub(super) async fn wait(&mut self) -> bool {
        match (self.until)() {
            Some(until) if Instant::now() + self.next < until => {
                tokio::time::sleep(self.next).await;
                self.next = (self.next * 2).min(Duration::from_secs(1));
                true
            }
            _ => false,
        }
    }
}
