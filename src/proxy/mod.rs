//! The HTTP reverse proxy, as named phases (DESIGN §3):
//!
//! ```text
//! accept -> route -> admit -> touch -> (awake? forward : wake -> hold -> forward) -> account
//! ```
//!
//! * **accept** ([`conn`]): HTTP/1.1 and HTTP/2 (prior knowledge) connections on the plain
//!   listener, and on the optional TLS one ([`tls`]) either of them by ALPN; drained at
//!   shutdown. Plain HTTP/1.1 requests without a body go through the engine's own server
//!   ([`http1`]), the others through hyper's.
//! * **hand-off** ([`handoff`]): requests for `admin.host` go to the handler the
//!   composition root gave (the admin router), never to an app; its answers stream back.
//! * **route** ([`route`]): Host -> route key -> app; 400 malformed, 404 unknown (after one
//!   on-demand discovery, at most every 10 s), 409 ambiguous. This phase and the next three
//!   are [`Proxy::admit`] ([`admit`]), which the gate shares.
//! * **admit**: nothing is refused yet (plan limits and ignore rules come later).
//! * **touch**: the request counts as activity and as in progress (never stopped under it).
//! * **wake** ([`wake`]): a sleeping app is woken once, whoever asks; the request is held
//!   until it is awake or its `wake_timeout` runs out (503 + `Retry-After`).
//! * **forward** ([`forward`]): streamed both ways through pooled connections.
//! * **account**: one debug log line per request (never header values).
//! * **trace** ([`trace`], traces on): the request's span around the phases, its
//!   `traceparent` replaced by the span's own on the way upstream.
//!
//! Every failure is a [`ProxyError`]; [`ProxyError::status`] is the one place that maps them
//! to status codes. The proxy never calls a provider for an awake app.

pub mod admit;
pub mod body;
pub mod buffers;
pub mod conn;
pub mod forward;
pub mod forwarded;
pub mod handoff;
pub mod http1;
pub mod io;
pub mod pages;
pub mod route;
pub mod settings;
pub mod system;
pub mod tls;
pub mod trace;
pub mod wake;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::lifecycle::{App, Lifecycle, WakeError};
use crate::pages::{Look, Visitor};
use admit::{Admission, Admitted};
use body::{ClientBodyError, RequestBody};
use forward::{ClientSide, ForwardError, Forwarder, TrackedBody};
use pages::ErrorPage;
use route::HostError;
use trace::Notes;

/// Body of every proxy response: the upstream's, streamed; a page or an error of the
/// engine's own; or an `admin.host` answer, streamed.
///
/// The upstream's is boxed: held inline it makes every response 464 bytes, copied
/// whole at each of the eight or so hand-overs between the upstream's connection and the
/// client's; boxed, 152 (one allocation per request, for about 2.5 KB less copied).
pub type ProxyBody = Either<Box<TrackedBody>, Either<Full<Bytes>, handoff::HandOffBody>>;

/// An answer of the engine's own (a page, an error, the system API) as a proxy answer.
fn own(body: Full<Bytes>) -> ProxyBody {
    Either::Right(Either::Left(body))
}

/// An upstream's answer body as a proxy answer, tracked until it ends ([`TrackedBody`]).
fn tracked(
    body: forward::UpstreamBody,
    in_flight: Option<crate::lifecycle::InFlight>,
    lease: Option<forward::Lease>,
    idle: Duration,
) -> ProxyBody {
    Either::Left(Box::new(TrackedBody::new(body, in_flight, lease, idle)))
}

/// Puts the fields an upstream answer kept as written (see [`forward::RawFields`]) in
/// `response`'s map: for hyper's servers, which write only the map.
fn fields_in_map(response: &mut Response<ProxyBody>) {
    if let Some(fields) = take_fields(response.body_mut())
        && let Err(error) = fields.into_map(response.headers_mut())
    {
        // The parser checks names and values as the map does: not expected.
        tracing::warn!(%error, "an answer field left out");
    }
}

/// Takes from `body` the fields its upstream answer kept as written, if it did.
fn take_fields(body: &mut ProxyBody) -> Option<forward::RawFields> {
    match body {
        Either::Left(body) => body.take_fields(),
        Either::Right(_) => None,
    }
}

/// Which side of the exchange a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request itself is wrong.
    Client,
    /// The engine has nothing to route it to.
    Engine,
    /// The app could not be made ready.
    Provider,
    /// The app's own server failed.
    Upstream,
}

/// Why a request was not forwarded, or not answered by the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Missing, duplicated or malformed Host.
    #[error("{0}")]
    BadHost(#[from] HostError),
    /// No app has this route key.
    #[error("no app is served at {host}")]
    UnknownApp {
        /// The host asked for.
        host: String,
    },
    /// The plain name exists in several providers.
    #[error("{host} matches several apps; use one of: {}", .choices.join(", "))]
    Ambiguous {
        /// The host asked for.
        host: String,
        /// Hosts that resolve to exactly one app.
        choices: Vec<String>,
    },
    /// A request that never wakes an app (`activity.ignore_*`) for an app that is not awake.
    #[error("{app} is asleep, and this request does not wake it")]
    Ignored {
        /// The app's name.
        app: String,
    },
    /// The app is asleep by a schedule whose requests do not wake it
    /// (`wake_on_request: false`).
    #[error("{app} is asleep by its schedule ({schedule}) {}, and requests do not wake it", .until.as_deref().map_or_else(|| "until it is started".to_owned(), |until| format!("until {until}")))]
    Scheduled {
        /// The app's name.
        app: String,
        /// The schedule (its `apps`).
        schedule: String,
        /// When it is back, in the schedule's time zone.
        until: Option<String>,
        /// Seconds until then.
        retry_after: Option<u64>,
    },
    /// The app could not be woken in time, or its wake failed.
    #[error("{app} is not available: {error}")]
    Wake {
        /// The app's name.
        app: String,
        /// What happened.
        error: WakeError,
    },
    /// The headers another proxy sent to the gate do not describe a request.
    #[error("the forwarded request is not readable: {0}")]
    Forwarded(String),
    /// The caller may not ask this (the gate's endpoints, outside the trusted peers).
    #[error("{0}")]
    Forbidden(String),
    /// A method the proxy does not forward (`CONNECT`: the engine is not a forward proxy).
    #[error("{0} is not allowed here")]
    MethodNotAllowed(http::Method),
    /// The upstream could not be reached or failed mid-exchange (or the client's request
    /// body failed on its way there).
    #[error("{app} did not answer: {error}")]
    Upstream {
        /// The app's name.
        app: String,
        /// What happened.
        error: ForwardError,
    },
}

impl ProxyError {
    /// The status code for this error: the one place where errors become statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadHost(_) => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::Forwarded(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Upstream {
                error: ForwardError::ClientBody(ClientBodyError::Malformed),
                ..
            } => StatusCode::BAD_REQUEST,
            ProxyError::Upstream {
                error: ForwardError::ClientBody(ClientBodyError::TooSlow),
                ..
            } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UnknownApp { .. } => StatusCode::NOT_FOUND,
            ProxyError::Ambiguous { .. } => StatusCode::CONFLICT,
            ProxyError::Wake {
                error: WakeError::NoUpstream,
                ..
            } => StatusCode::BAD_GATEWAY,
            ProxyError::Wake {
                error: WakeError::Limit(_),
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Wake { .. } | ProxyError::Ignored { .. } | ProxyError::Scheduled { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream {
                error: ForwardError::Timeout(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadHost(_) => "bad_host",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Forwarded(_) => "bad_forwarded_request",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::Upstream {
                error: ForwardError::ClientBody(ClientBodyError::Malformed),
                ..
            } => "bad_request_body",
            ProxyError::Upstream {
                error: ForwardError::ClientBody(ClientBodyError::TooSlow),
                ..
            } => "request_body_timeout",
            ProxyError::UnknownApp { .. } => "unknown_app",
            ProxyError::Ambiguous { .. } => "ambiguous_app",
            ProxyError::Wake {
                error: WakeError::Timeout(_),
                ..
            } => "wake_timeout",
            ProxyError::Wake {
                error: WakeError::Failed(_),
                ..
            } => "wake_failed",
            ProxyError::Wake {
                error: WakeError::NoUpstream,
                ..
            } => "no_upstream",
            ProxyError::Wake {
                error: WakeError::Limit(_),
                ..
            } => "plan_limit",
            ProxyError::Upstream {
                error: ForwardError::Timeout(_),
                ..
            } => "upstream_timeout",
            ProxyError::Upstream { .. } => "upstream_failed",
            ProxyError::Ignored { .. } => "app_asleep",
            ProxyError::Scheduled { .. } => "asleep_by_schedule",
        }
    }

    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadHost(_)
            | ProxyError::Forbidden(_)
            | ProxyError::Forwarded(_)
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::Upstream {
                error: ForwardError::ClientBody(_),
                ..
            } => Side::Client,
            ProxyError::UnknownApp { .. }
            | ProxyError::Ambiguous { .. }
            | ProxyError::Ignored { .. }
            | ProxyError::Scheduled { .. }
            | ProxyError::Wake {
                error: WakeError::Limit(_),
                ..
            } => Side::Engine,
            ProxyError::Wake { .. } => Side::Provider,
            ProxyError::Upstream { .. } => Side::Upstream,
        }
    }

    /// Seconds after which the same request may succeed, when retrying can help.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::Wake {
                error: WakeError::Timeout(_),
                ..
            } => Some(5),
            ProxyError::Wake {
                error: WakeError::Failed(_),
                ..
            } => Some(30),
            ProxyError::Ignored { .. } => Some(60),
            ProxyError::Wake {
                error: WakeError::Limit(_),
                ..
            } => Some(60),
            ProxyError::Scheduled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What a visitor is told: the whole story where it is the visitor's own (a bad host,
    /// an unknown app), a short reason where the rest belongs to the operator (a
    /// platform's error, an upstream's address): that is in the events and the log.
    pub fn public_message(&self) -> String {
        match self {
            ProxyError::Wake {
                app,
                error: WakeError::Failed(_),
            } => format!("{app} could not be started; the operator can see why in its events"),
            ProxyError::Wake {
                app,
                error: WakeError::NoUpstream,
            } => format!("{app} is running but has no address to forward to"),
            ProxyError::Upstream { app, error } => {
                format!("{app} did not answer: {}", error.public())
            }
            _ => self.to_string(),
        }
    }

    /// The answer to a client: an HTML page for a browser (the built-in look, in
    /// English), else JSON.
    pub fn page(&self, html: bool) -> Response<Full<Bytes>> {
        self.page_in(html, &crate::pages::Look::builtin(), &Visitor::default())
    }

    /// The answer to a client: an HTML page in `look`, in the visitor's language, for a
    /// browser; else JSON (English, whatever the look).
    pub fn page_in(&self, html: bool, look: &Look, visitor: &Visitor<'_>) -> Response<Full<Bytes>> {
        let message = self.public_message();
        let seconds;
        let choices;
        let (app, back_at, values): (Option<&str>, Option<&str>, Vec<(&str, &str)>) = match self {
            ProxyError::UnknownApp { host } => (None, None, vec![("host", host)]),
            ProxyError::Ambiguous { host, choices: all } => {
                choices = all.join(", ");
                (None, None, vec![("host", host), ("choices", &choices)])
            }
            ProxyError::Ignored { app } => (Some(app), None, Vec::new()),
            ProxyError::Scheduled {
                app,
                schedule,
                until,
                ..
            } => (Some(app), until.as_deref(), vec![("schedule", schedule)]),
            ProxyError::Wake { app, error } => match error {
                WakeError::Timeout(timeout) => {
                    seconds = timeout.as_secs().to_string();
                    (Some(app), None, vec![("seconds", &seconds)])
                }
                WakeError::Limit(detail) => (Some(app), None, vec![("detail", detail)]),
                _ => (Some(app), None, Vec::new()),
            },
            ProxyError::Upstream { app, error } => {
                (Some(app), None, vec![("detail", error.public())])
            }
            _ => (None, None, Vec::new()),
        };
        let mut response = ErrorPage {
            status: self.status(),
            code: self.code(),
            message: &message,
            retry_after: self.retry_after(),
            app,
            back_at,
            values: &values,
        }
        .render_with(html, look, visitor);
        if let ProxyError::MethodNotAllowed(_) = self {
            response.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static(
                    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE",
                ),
            );
        }
        response
    }

    fn response(&self, answer: &Answer) -> Response<ProxyBody> {
        match &answer.look {
            Some(look) if answer.html => {
                fn text(value: &Option<http::HeaderValue>) -> Option<&str> {
                    value.as_ref().and_then(|value| value.to_str().ok())
                }
                let visitor = Visitor {
                    accept_language: text(&answer.accept_language),
                    request_id: text(&answer.request_id)
                        .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())),
                };
                self.page_in(true, look, &visitor).map(own)
            }
            _ => self.page(answer.html).map(own),
        }
    }
}

/// How an error is answered: as HTML or not, and a page in which look and language.
#[derive(Debug, Default)]
struct Answer {
    /// Whether the client wants HTML.
    html: bool,
    /// The look of the app's page (or its space's); `None`: the built-in one.
    look: Option<Arc<Look>>,
    /// The request's `Accept-Language` (kept for HTML answers only).
    accept_language: Option<http::HeaderValue>,
    /// The request's `X-Request-Id` (kept for HTML answers only).
    request_id: Option<http::HeaderValue>,
}

impl Answer {
    /// How to answer this request's errors (the look is found once there is an error).
    fn of<B>(request: &Request<B>, html: bool) -> Answer {
        if !html {
            return Answer::default();
        }
        let headers = request.headers();
        Answer {
            html,
            look: None,
            accept_language: headers.get(http::header::ACCEPT_LANGUAGE).cloned(),
            request_id: headers.get("x-request-id").cloned(),
        }
    }
}

/// Logs what the visitor was not told: the details of an upstream's failure (a wake's are in
/// its `start_failed` event).
fn log_failure(error: &ProxyError) {
    if let ProxyError::Upstream { app, error } = error
        && !matches!(error, ForwardError::ClientBody(_))
    {
        tracing::warn!(%app, %error, "upstream failed");
    }
}

/// A space's share of the proxy: the hosts it answers to and its apps.
#[derive(Debug, Clone)]
pub struct SpaceRoute {
    /// The space's id.
    pub id: String,
    /// Its base domains: a host under one of them (the longest match over every space)
    /// goes to this space's apps only.
    pub domains: Vec<String>,
    /// Its apps, routes and wakes.
    pub lifecycle: Arc<Lifecycle>,
    /// Which addresses its upstreams may be at (a hosted tenant's: public ones only).
    pub upstreams: forward::UpstreamScope,
}

/// Every space besides the default one, as the route phase looks them up: by domain, so
/// a request costs the same with five spaces or five thousand.
#[derive(Debug, Clone, Default)]
pub struct SpaceTable {
    /// The spaces.
    routes: Vec<Arc<SpaceRoute>>,
    /// Each domain of every space, to its index in `routes` (foldhash: fast on short keys,
    /// randomly seeded per process).
    by_domain: std::collections::HashMap<String, usize, foldhash::fast::RandomState>,
}

impl SpaceTable {
    /// The table of these spaces (their domains are distinct: the config and the spaces API
    /// see to it; should two be equal, the first space keeps it).
    pub fn new(routes: Vec<Arc<SpaceRoute>>) -> SpaceTable {
        let mut by_domain = std::collections::HashMap::default();
        for (index, space) in routes.iter().enumerate() {
            for domain in &space.domains {
                by_domain.entry(domain.clone()).or_insert(index);
            }
        }
        SpaceTable { routes, by_domain }
    }
}

/// The proxy: routes, wakes, forwards.
pub struct Proxy {
    /// Apps, routes and wakes of the default space.
    lifecycle: Arc<Lifecycle>,
    /// The other spaces, as last published (spaces come and go while serving).
    spaces: Arc<arc_swap::ArcSwap<SpaceTable>>,
    /// Base domains of the default space.
    domains: Vec<String>,
    /// TLS settings for `https` upstreams.
    tls: forward::UpstreamTls,
    /// Client-side limits (slowloris, header size).
    limits: settings::Limits,
    /// How long to wait on upstreams.
    timeouts: forward::UpstreamTimeouts,
    /// Send the client's `Host` upstream (`proxy.preserve_host`).
    preserve_host: bool,
    /// The certificate of the TLS listener, when there is one.
    server_tls: Option<Arc<tls::ServerTls>>,
    /// The original engine's system API (`admin.system_api`), when enabled.
    system: Option<system::SystemApi>,
    /// Peers whose forwarded headers are believed (`proxy.trusted_proxies`).
    trusted: forwarded::TrustedProxies,
    /// Host names answered by the admin router instead of an app (`admin.host`).
    handoff: Option<handoff::HandOff>,
    /// Where each request's span goes (off unless traces are on).
    tracer: crate::traces::Tracer,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

/// What one proxy worker thread owns: its own upstream connection pool, so a request and
/// the upstream connection it uses live on the same thread.
#[derive(Debug)]
struct Worker {
    /// Shared routing and lifecycle.
    proxy: Arc<Proxy>,
    /// This thread's upstream connection pool.
    forwarder: Forwarder,
}

impl Proxy {
    /// A proxy over this lifecycle (the default space's, with its `domains`), set up from
    /// the `proxy` settings; `tls` for upstreams, `server_tls` for the TLS listener.
    pub fn new(
        lifecycle: Arc<Lifecycle>,
        domains: Vec<String>,
        settings: &settings::Settings,
        tls: forward::UpstreamTls,
        server_tls: Option<Arc<tls::ServerTls>>,
    ) -> Proxy {
        Proxy {
            lifecycle,
            spaces: Arc::new(arc_swap::ArcSwap::from_pointee(SpaceTable::default())),
            domains,
            tls,
            limits: settings.limits,
            timeouts: settings.upstream_timeouts,
            preserve_host: settings.preserve_host,
            server_tls,
            system: None,
            trusted: settings.trusted_proxies.clone(),
            handoff: None,
            tracer: crate::traces::Tracer::off(),
        }
    }

    /// Traces every request with `tracer`: a server span each, its `traceparent` (the
    /// client's, else a new trace) replaced by the span's own on the way upstream.
    pub fn with_tracer(mut self, tracer: crate::traces::Tracer) -> Proxy {
        self.tracer = tracer;
        self
    }

    /// Routes the hosts under these spaces' domains to their apps (read at every request:
    /// what is published there applies at once).
    pub fn with_spaces(mut self, spaces: Arc<arc_swap::ArcSwap<SpaceTable>>) -> Proxy {
        self.spaces = spaces;
        self
    }

    /// The space a host belongs to (`None`: the default space) and its route key there:
    /// the part left of the longest matching domain of any space; for the default space
    /// only, the first label when no domain matches. No key: the host is a domain itself.
    fn tenant<'h>(&self, host: &'h str) -> (Option<Arc<SpaceRoute>>, Option<&'h str>) {
        let spaces = self.spaces.load();
        // The default space's domains are few: a scan; the spaces' are looked up.
        let owner_of = |suffix: &str| match spaces.by_domain.get(suffix) {
            Some(index) => spaces.routes.get(*index).cloned().map(Some),
            None => self.domains.iter().any(|d| d == suffix).then_some(None),
        };
        match route::under(host, owner_of) {
            route::Under::Domain(space) => (space, None),
            route::Under::Key(space, key) => (space, Some(key)),
            route::Under::None => (None, route::first_label(host)),
        }
    }

    /// The lifecycle of a space found by [`Proxy::route`] (its settings, `activity`
    /// among them, are the lifecycle's: a configuration reload changes them there).
    pub fn space<'s>(&'s self, space: Option<&'s Arc<SpaceRoute>>) -> &'s Arc<Lifecycle> {
        match space {
            Some(space) => &space.lifecycle,
            None => &self.lifecycle,
        }
    }

    /// The look of a request's pages: its app's, else its space's (an unknown host of a
    /// space gets that space's 404), else the default space's.
    pub fn look_of<B>(&self, request: &Request<B>) -> Arc<Look> {
        match self.route(request) {
            Ok((_, app)) => app.look(),
            Err((space, _)) => self.space(space.as_ref()).look(),
        }
    }

    /// Hands the requests for these hosts to their handler instead of routing them.
    pub fn with_handoff(mut self, handoff: Option<handoff::HandOff>) -> Proxy {
        self.handoff = handoff;
        self
    }

    /// Serves the original engine's system API to requests that ask for it.
    pub fn with_system_api(mut self, system: Option<system::SystemApi>) -> Proxy {
        self.system = system;
        self
    }

    /// Serves connections from `listener` (and `tls_listener`, with TLS, when the proxy has
    /// a certificate) on `workers` threads (each with its own single-threaded runtime and
    /// upstream pool: no request crosses threads) until `shutdown` completes, then lets
    /// in-flight requests finish for at most `drain`. Connections are accepted here and dealt
    /// to the workers in turn, so the load is spread evenly (workers racing on one listener
    /// leave most connections to one of them).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
        workers: usize,
    ) -> std::io::Result<()> {
        let mut queues = Vec::with_capacity(workers);
        let mut finished = Vec::with_capacity(workers);
        for index in 0..workers.max(1) {
            let (queue, connections) = mpsc::unbounded_channel::<conn::Accepted>();
            let proxy = Arc::clone(&self);
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("paastis-proxy-{index}"))
                .spawn(move || {
                    // This worker's requests are counted apart from the others'.
                    crate::metrics::count_in_shard(index);
                    let forwarder = Forwarder::new(
                        proxy.tls.clone(),
                        proxy.timeouts,
                        proxy.preserve_host,
                        proxy.limits.body_progress,
                    );
                    let worker = Arc::new(Worker { proxy, forwarder });
                    runtime.block_on(worker.serve(connections, drain));
                    let _ = done_tx.send(());
                })?;
            queues.push(queue);
            finished.push(done_rx);
        }
        tokio::pin!(shutdown);
        let mut next = 0;
        // At most `max_connections` open client connections: beyond, new ones wait in the
        // listen backlog until one closes.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
        let per_ip = conn::PerIp::new(self.limits.max_connections_per_ip);
        loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (accepted, secure) = tokio::select! {
                accepted = listener.accept() => (accepted, false),
                accepted = accept_tls(tls_listener.as_ref()) => (accepted, true),
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // One client's share; proxies in front of the engine speak for many.
            let ip_slot = if self.trusted.contains(peer.ip()) {
                None
            } else {
                match per_ip.take(peer.ip()) {
                    Some(ip_slot) => Some(ip_slot),
                    None => {
                        tracing::debug!(%peer, "connection refused: max_connections_per_ip");
                        continue;
                    }
                }
            };
            match stream.into_std() {
                Ok(stream) => {
                    if let Some(queue) = queues.get(next) {
                        let _ = queue.send(conn::Accepted {
                            stream,
                            peer,
                            secure,
                            slot,
                            ip_slot,
                        });
                    }
                    next = (next + 1) % queues.len();
                }
                Err(error) => tracing::warn!(%peer, %error, "cannot hand a connection to a worker"),
            }
        }
        drop(listener);
        drop(tls_listener);
        tracing::info!("proxy stopped accepting; draining in-flight requests");
        drop(queues);
        for done in finished {
            let _ = done.await;
        }
        Ok(())
    }
}

/// The next connection on the TLS listener; never, without one.
async fn accept_tls(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// One request through every phase. `notes` (from [`Worker::traced`] only) takes what
    /// the request's span tells; `None` is the untraced path, which stays as small as it was.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` copies the request into its body once more (measured)"
    )]
    fn handle(
        &self,
        request: Request<RequestBody>,
        client: &ClientSide,
        mut notes: Option<&mut Notes>,
    ) -> impl Future<Output = Response<ProxyBody>> {
        // A future of its own rather than an `async fn`: an `async fn` moves its arguments into
        // its body's locals when it starts, a copy of the request (and room for it twice) per
        // layer of the request's way.
        async move {
            // `admin.host`: not an app's request, not in the apps' metrics. Boxed: held inline,
            // its future would make every request's state larger (more to move per request).
            if let Some(handoff) = &self.proxy.handoff
                && handoff.wants(&request)
            {
                let answer = Box::pin(handoff.handle(request, client)).await;
                return answer.map(|body| Either::Right(Either::Right(body)));
            }
            // Traces on: the same, within the request's span (boxed, as every rare path).
            if notes.is_none() && self.proxy.tracer.is_on() {
                return Box::pin(self.traced(request, client)).await;
            }
            let started = Instant::now();
            // The space and app the request went to, once routed (for the metrics).
            let mut routed: Option<(Option<Arc<SpaceRoute>>, Arc<App>)> = None;
            // account: one line per request at `debug`, never header values or query strings.
            // One call of `proxy` below whichever way: a second would double this future's size
            // (its room is copied into a box per request).
            let logged = tracing::enabled!(tracing::Level::DEBUG)
                .then(|| (request.method().clone(), request.uri().path().to_owned()));
            let response = match self
                .proxy(request, client, &mut routed, notes.as_deref_mut())
                .await
            {
                Ok(response) => response,
                Err((error, answer)) => {
                    log_failure(&error);
                    if logged.is_some() {
                        tracing::debug!(side = ?error.side(), code = error.code(), %error, "request not forwarded");
                    }
                    if let Some(notes) = notes.as_deref_mut() {
                        notes.failed(&error);
                    }
                    error.response(&answer)
                }
            };
            self.account(routed.as_ref(), response.status(), started);
            if let Some((method, path)) = logged {
                tracing::debug!(
                    %method,
                    %path,
                    status = response.status().as_u16(),
                    duration_us = started.elapsed().as_micros() as u64,
                    "request"
                );
            }
            if let Some(notes) = notes {
                notes.app = routed.map(|(_, app)| app);
            }
            response
        }
    }

    /// account: the request in the metrics of its app's space (its app's counter, the
    /// duration histogram); unrouted requests in the default space's.
    fn account(
        &self,
        routed: Option<&(Option<Arc<SpaceRoute>>, Arc<App>)>,
        status: StatusCode,
        started: Instant,
    ) {
        let lifecycle = self
            .proxy
            .space(routed.and_then(|(space, _)| space.as_ref()));
        lifecycle.metrics().request(
            routed.map(|(_, app)| app.as_ref()),
            status.as_u16(),
            started.elapsed(),
        );
    }

    /// The phases; an error comes with how to answer it (HTML or not, in which look).
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` copies the request into its body once more (measured)"
    )]
    fn proxy(
        &self,
        request: Request<RequestBody>,
        client: &ClientSide,
        routed: &mut Option<(Option<Arc<SpaceRoute>>, Arc<App>)>,
        notes: Option<&mut Notes>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, (ProxyError, Answer)>> {
        // Not an `async fn`, as `handle`: the request is not copied into the body's locals.
        async move {
            // The original engine's system API, on the proxy port, when enabled.
            if let Some(system) = &self.proxy.system
                && system::is_system(&request)
            {
                // Boxed, as every rare path here: held inline, its future would make every
                // request's state larger, and hyper moves that state once per request.
                return Ok(Box::pin(system.handle(&request)).await.map(own));
            }
            // The client, behind any trusted proxies (for the wake's cause).
            let client_ip = self
                .proxy
                .trusted
                .client_ip(client.peer.ip(), request.headers());
            // Whether the client wants HTML: read once, for error pages and the waiting page.
            let html = pages::wants_html(request.headers());
            let mut answer = Answer::of(&request, html);
            if request.method() == http::Method::CONNECT {
                return Err((ProxyError::MethodNotAllowed(http::Method::CONNECT), answer));
            }
            let ((space, app), admitted) =
                match self.proxy.admit(&request, client_ip, html, routed).await {
                    Ok(admitted) => admitted,
                    Err(error) => {
                        if html {
                            // The app's look when one was routed, else its space's.
                            answer.look = Some(match routed.as_ref() {
                                Some((_, app)) => app.look(),
                                None => self.proxy.look_of(&request),
                            });
                        }
                        return Err((error, answer));
                    }
                };
            if html {
                answer.look = Some(app.look());
            }
            let (in_flight, upstream) = match admitted {
                Admitted {
                    admission: Admission::Waiting(page),
                    ..
                } => return Ok(page.map(own)),
                Admitted {
                    in_flight,
                    admission: Admission::Ready(upstream),
                    waited,
                } => {
                    if let Some(notes) = notes {
                        notes.waited = waited;
                    }
                    (in_flight, upstream)
                }
            };
            let scope = space
                .as_ref()
                .map_or_else(Default::default, |space| space.upstreams);

            // forward
            if forward::is_upgrade(request.headers()) {
                let (response, tunnel) = Box::pin(
                    self.forwarder
                        .forward_upgrade(request, &upstream, client, scope),
                )
                .await
                .map_err(|error| {
                    let app = app.key.name.to_string();
                    (ProxyError::Upstream { app, error }, answer)
                })?;
                let in_flight = match tunnel {
                    Some(tunnel) => {
                        tokio::spawn(tunnel.run(in_flight));
                        None
                    }
                    None => Some(in_flight),
                };
                let idle = self.proxy.timeouts.idle;
                return Ok(response.map(|body| {
                    tracked(forward::UpstreamBody::Hyper(body), in_flight, None, idle)
                }));
            }
            // Just after a wake (within its wake_timeout), an upstream not listening yet is
            // tried again.
            let retry_until = || {
                let phase = app.phase();
                (phase.state == crate::model::State::Awake)
                    .then(|| phase.since + app.conf().policy.wake_timeout)
            };
            let (response, lease) = self
                .forwarder
                .forward(request, &upstream, client, retry_until, scope)
                .await
                .map_err(|error| {
                    let app = app.key.name.to_string();
                    (ProxyError::Upstream { app, error }, answer)
                })?;
            let idle = self.proxy.timeouts.idle;
            Ok(response.map(|body| tracked(body, Some(in_flight), lease, idle)))
        }
    }
}
