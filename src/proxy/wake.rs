//! Phases **awake?** and **wake**: an awake app's upstream is returned at once (no provider
//! call, no lock held); a sleeping app is woken through the lifecycle (one wake per app,
//! whoever asks) and the request is held until it is ready or its `wake_timeout` runs out.
//! Nothing of the request body is read while it waits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http::header::USER_AGENT;
use tokio::time::Instant;

use crate::events::WakeCause;
use crate::lifecycle::{App, Lifecycle, WakeError};
use crate::model::State;
use crate::model::Upstream;

/// The app's upstream once it is awake, and how long the request waited for it (`None`:
/// the app was awake).
pub async fn upstream<B>(
    lifecycle: &Arc<Lifecycle>,
    app: &Arc<App>,
    request: &Request<B>,
    client_ip: IpAddr,
) -> Result<(Arc<Upstream>, Option<Duration>), WakeError> {
    if app.state() == State::Awake
        && let Some(upstream) = app.upstream()
    {
        return Ok((upstream, None));
    }
    let arrived = Instant::now();
    let deadline = arrived + app.conf().policy.wake_timeout;
    // Boxed: waking is rare, and the request path's future stays small without it. The
    // wake's span (traces on) is the request's child.
    let upstream = Box::pin(crate::traces::within_request(
        request.headers(),
        lifecycle.ensure_awake(app, || cause(request, client_ip), deadline),
    ))
    .await?;
    Ok((upstream, Some(arrived.elapsed())))
}

/// What the wake event records about the request that caused it (never its query string).
pub(crate) fn cause<B>(request: &Request<B>, client_ip: IpAddr) -> WakeCause {
    cause_of(
        request.method(),
        request.uri(),
        request.headers(),
        client_ip,
    )
}

/// [`cause`] from a request's parts (the gate holds no whole request).
pub(crate) fn cause_of(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
) -> WakeCause {
    WakeCause::Request {
        method: method.to_string(),
        path: uri.path().to_owned(),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        client_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::fake::FakeProvider;
    use crate::providers::{AppStatus, Provider};

    #[tokio::test(start_paused = true)]
    async fn an_awake_app_is_forwarded_without_any_provider_call() {
        let fake = Arc::new(FakeProvider::new("fake", &[("web", AppStatus::Running)]));
        let provider: Arc<dyn Provider> = fake.clone();
        let lifecycle = Lifecycle::new(vec![provider], Default::default());
        lifecycle.discover().await;
        let app = lifecycle.apps().remove(0);
        let calls = fake.with(|s| s.calls);
        let peer = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..1000 {
            let request = Request::get("/").body(()).expect("request");
            let _in_flight = lifecycle.begin_request(&app);
            let (upstream, waited) = upstream(&lifecycle, &app, &request, peer)
                .await
                .expect("awake");
            assert_eq!(waited, None);
            assert_eq!(upstream.authority.as_str(), "127.0.0.1:10000");
        }
        assert_eq!(fake.with(|s| s.calls), calls);
    }
}
