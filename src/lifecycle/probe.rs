//! Health probing: a starting app with a `health_path` is ready once that path answers
//! below 500 at its upstream, probed at an address its space may reach. It only answers
//! whether the app is ready; the wake decides what follows (see `wake`). It never changes
//! an app's state.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, sleep, timeout_at};

use super::{App, Lifecycle};
use crate::providers::PollIntervals;

/// The client `health_path` probes are sent with.
pub(super) type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

/// A probe client: short connect timeout, no idle connections kept.
pub(super) fn client() -> ProbeClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

impl Lifecycle {
    /// Probes `path` at the app's upstream until it answers below 500, polling at
    /// `intervals`; an error (the reason its wake failed) when `deadline` passes first.
    /// `last` is what the wait saw so far, for the timeout's reason.
    pub(super) async fn probe_health(
        &self,
        app: &App,
        path: &str,
        deadline: Instant,
        intervals: PollIntervals,
        mut last: String,
    ) -> Result<(), String> {
        let wake_timeout = app.conf().policy.wake_timeout;
        let timed_out =
            |what: &str| format!("not ready after {}s ({what})", wake_timeout.as_secs());
        let upstream = app
            .upstream()
            .ok_or_else(|| "the provider gives no address for this app".to_owned())?;
        // A tenant's app is probed at an address its scope allows, the one checked (by
        // address, with its host name in `Host`, so a name cannot change its answer between
        // the check and the probe).
        let uri = match self.settings.load().upstreams {
            crate::address::UpstreamScope::Any => format!("{upstream}{path}"),
            scope => {
                let (host, port) = upstream.address();
                let resolved = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|error| format!("health_path {path}: {host}: {error}"))?;
                let Some(address) = scope.allowed(resolved).into_iter().next() else {
                    return Err(format!(
                        "{host} resolves only to internal addresses, which this space may not reach"
                    ));
                };
                format!("{}://{address}{path}", upstream.scheme)
            }
        };
        let mut wait = intervals.first;
        loop {
            let request = http::Request::get(&uri)
                .header(http::header::HOST, upstream.host_header().clone())
                .header(http::header::USER_AGENT, "paastis-health-check")
                .body(Empty::new())
                .map_err(|error| format!("health_path {path}: {error}"))?;
            match timeout_at(deadline, self.probe.request(request)).await {
                Ok(Ok(response)) if response.status().as_u16() < 500 => return Ok(()),
                Ok(Ok(response)) => {
                    last = format!("{path} answered {}", response.status().as_u16())
                }
                Ok(Err(error)) => last = format!("{path}: {error}"),
                Err(_) => return Err(timed_out(&last)),
            }
            if timeout_at(deadline, sleep(wait)).await.is_err() {
                return Err(timed_out(&last));
            }
            wait = (wait * 3 / 2).min(intervals.max);
        }
    }
}
