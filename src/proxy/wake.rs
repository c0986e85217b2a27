//! Phases **awake?** and **wake**: an awake app's upstream is returned at once (no provider
//! call, no lock held); a sleeping app is woken through the lifecycle (one wake per app,
//! whoever asks) and the request is held until it is ready or its `wake_timeout` runs out.
//! Nothing of the request body is read while it waits.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use http::header::USER_AGENT;
use tokio::time::Instant;

use crate::events::WakeCause;
use crate::lifecycle::{App, Lifecycle, State, WakeError};
use crate::providers::Upstream;

/// The app's upstream once it is awake.
pub async fn upstream<B>(
    lifecycle: &Arc<Lifecycle>,
    app: &Arc<App>,
    request: &Request<B>,
    peer: SocketAddr,
) -> Result<Arc<Upstream>, WakeError> {
    if app.state() == State::Awake
        && let Some(upstream) = app.upstream()
    {
        return Ok(upstream);
    }
    let deadline = Instant::now() + app.policy.wake_timeout;
    lifecycle
        .ensure_awake(app, || cause(request, peer), deadline)
        .await
}

/// What the wake event records about the request that caused it (never its query string).
fn cause<B>(request: &Request<B>, peer: SocketAddr) -> WakeCause {
    WakeCause::Request {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        user_agent: request
            .headers()
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        client_ip: peer.ip(),
    }
}
