//! Fake platform APIs for the black-box tests: real HTTP servers on 127.0.0.1:0 that keep
//! state, enforce auth like the platforms, answer with the documented shapes and quirks
//! (`../shared/reference/provider-apis.md`), and serve each app as a real upstream HTTP server
//! that answers only while the app is scaled up (503 while stopped, like the platforms'
//! routers). Every call is recorded for assertions.
#![allow(dead_code)]

pub mod clever;
pub mod fly;
pub mod heroku;
pub mod kubernetes;
pub mod render;
pub mod scalingo;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Serves `router` on 127.0.0.1:0 in the background; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
    let addr: SocketAddr = listener.local_addr().expect("fake addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// An app's own web server, as a platform's router exposes it: `200 hello from <name>` (any
/// path) while the app is up, `503` while it is stopped.
#[derive(Clone)]
pub struct AppServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Whether requests are answered.
    up: Arc<AtomicBool>,
    /// Requests answered 200.
    hits: Arc<AtomicUsize>,
    /// Where it listens (again, after refusing for a while).
    addr: SocketAddr,
    /// What it serves.
    router: Router,
    /// The accepting task: aborted, the port refuses connections.
    accepting: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Each time the app comes up, its port first refuses connections for this long (a
    /// platform that says "running" a moment before the app listens).
    listen_late: Arc<Mutex<Option<Duration>>>,
}

impl AppServer {
    pub async fn start(name: &str, up: bool) -> AppServer {
        let up = Arc::new(AtomicBool::new(up));
        let hits = Arc::new(AtomicUsize::new(0));
        let greeting = format!("hello from {name}");
        let router = {
            let up = Arc::clone(&up);
            let hits = Arc::clone(&hits);
            Router::new().fallback(move || {
                let up = Arc::clone(&up);
                let hits = Arc::clone(&hits);
                let greeting = greeting.clone();
                async move {
                    if up.load(Ordering::SeqCst) {
                        hits.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::OK, greeting).into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "application is stopped").into_response()
                    }
                }
            })
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("app addr");
        let accepting = {
            let router = router.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            })
        };
        AppServer {
            url: format!("http://{addr}"),
            up,
            hits,
            addr,
            router,
            accepting: Arc::new(Mutex::new(Some(accepting))),
            listen_late: Arc::default(),
        }
    }

    pub fn set_up(&self, up: bool) {
        let was_up = self.up.swap(up, Ordering::SeqCst);
        let late = *self.listen_late.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(late) = late
            && up
            && !was_up
        {
            self.refuse_for(late);
        }
    }

    /// From now on, each time the app comes up its port refuses connections for `late`.
    pub fn set_listen_late(&self, late: Duration) {
        *self.listen_late.lock().unwrap_or_else(|p| p.into_inner()) = Some(late);
    }

    /// Closes the port now and opens it again after `pause`.
    fn refuse_for(&self, pause: Duration) {
        let mut accepting = self.accepting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = accepting.take() {
            task.abort();
        }
        let addr = self.addr;
        let router = self.router.clone();
        *accepting = Some(tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let listener = TcpListener::bind(addr).await.expect("bind the app again");
            let _ = axum::serve(listener, router).await;
        }));
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An HTTPS front for `server`, as a platform's router terminates TLS: a certificate for
/// `localhost` signed by the test CA (`tests/support/tls/ca.pem`), HTTP/2 or HTTP/1.1 as the
/// client chooses by ALPN (like the platforms' routers). Each response says which protocol
/// the front was spoken to in `x-front-protocol`, the host asked for in `x-front-host`, and
/// the client's connection in `x-front-connection`.
/// Returns `https://localhost:PORT`.
pub async fn tls_front(server: &AppServer) -> String {
    let port = front(server, true, false).await;
    format!("https://localhost:{port}")
}

/// As [`tls_front`], HTTP/1.1 only, and plain HTTP on the same port besides (told apart by
/// the connection's first byte): one authority, `localhost:PORT`, for both schemes. Each
/// response says which the front was spoken in: `x-front-tls: yes` or `no`.
/// Returns the port.
pub async fn dual_front(server: &AppServer) -> u16 {
    front(server, false, true).await
}

/// The front of [`tls_front`]: `h2` offered by ALPN or not, `plain` HTTP taken too or not.
async fn front(server: &AppServer, h2: bool, plain: bool) -> u16 {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls");
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("localhost.pem"))
            .expect("test certificate")
            .collect::<Result<_, _>>()
            .expect("test certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("localhost.key")).expect("test key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .expect("server config");
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind front");
    let port = listener.local_addr().expect("front addr").port();
    let backend = server.url.clone();
    let client: Client<_, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            let client = client.clone();
            tokio::spawn(async move {
                // A TLS connection starts with a handshake record (22).
                let mut first = [0u8; 1];
                let tls = !plain || (stream.peek(&mut first).await.is_ok() && first[0] == 22);
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    let backend = backend.clone();
                    let client = client.clone();
                    async move {
                        let version = format!("{:?}", request.version());
                        let (mut parts, body) = request.into_parts();
                        let path = parts
                            .uri
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned();
                        if let Some(authority) = parts.uri.authority()
                            && !parts.headers.contains_key(http::header::HOST)
                        {
                            let host = http::HeaderValue::from_str(authority.as_str())
                                .expect("authority is a header value");
                            parts.headers.insert(http::header::HOST, host);
                        }
                        let host = parts.headers.get(http::header::HOST).cloned();
                        parts.uri = format!("{backend}{path}").parse().expect("backend uri");
                        parts.version = http::Version::HTTP_11;
                        let response = client
                            .request(http::Request::from_parts(parts, body))
                            .await
                            .expect("backend answers");
                        let (mut parts, body) = response.into_parts();
                        parts.headers.insert(
                            "x-front-protocol",
                            http::HeaderValue::from_str(&version).expect("version"),
                        );
                        if let Some(host) = host {
                            parts.headers.insert("x-front-host", host);
                        }
                        parts.headers.insert(
                            "x-front-connection",
                            http::HeaderValue::from_str(&peer.port().to_string()).expect("port"),
                        );
                        parts.headers.insert(
                            "x-front-tls",
                            http::HeaderValue::from_static(if tls { "yes" } else { "no" }),
                        );
                        let body = body.collect().await.expect("backend body").to_bytes();
                        Ok::<_, std::convert::Infallible>(http::Response::from_parts(
                            parts,
                            http_body_util::Full::new(body),
                        ))
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if !tls {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    return;
                }
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    port
}

/// One recorded API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Every call a fake answered, and the faults it was told to inject.
#[derive(Default)]
pub struct Calls {
    calls: Mutex<Vec<Call>>,
    /// Answer the next N API calls with `fail_status` (500 by default).
    fail_next: AtomicUsize,
    fail_status: AtomicUsize,
    /// Answer the next N API calls with 429 and `Retry-After: 1`.
    throttle_next: AtomicUsize,
}

impl Calls {
    pub fn record(&self, method: &str, path: &str, status: u16) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Call {
                at: Instant::now(),
                method: method.to_owned(),
                path: path.to_owned(),
                status,
            });
    }

    pub fn all(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls whose `METHOD path` starts with `prefix` (e.g. `"GET /v1/apps"`).
    pub fn count(&self, prefix: &str) -> usize {
        self.all()
            .iter()
            .filter(|c| format!("{} {}", c.method, c.path).starts_with(prefix))
            .count()
    }

    /// The largest number of calls in any window of `window`.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let calls = self.all();
        let mut best = 0;
        for (i, first) in calls.iter().enumerate() {
            let n = calls[i..]
                .iter()
                .take_while(|c| c.at.duration_since(first.at) < window)
                .count();
            best = best.max(n);
        }
        best
    }

    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_status
            .store(usize::from(status), Ordering::SeqCst);
        self.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn throttle_next(&self, n: usize) {
        self.throttle_next.store(n, Ordering::SeqCst);
    }

    /// Injected faults not answered yet (429s and failures together).
    pub fn faults_pending(&self) -> usize {
        self.throttle_next.load(Ordering::SeqCst) + self.fail_next.load(Ordering::SeqCst)
    }

    /// The injected fault for this call, if any (already recorded).
    pub fn injected(&self, method: &str, path: &str) -> Option<Response> {
        if take_one(&self.throttle_next) {
            self.record(method, path, 429);
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "Retry later",
                )
                    .into_response(),
            );
        }
        if take_one(&self.fail_next) {
            let status = u16::try_from(self.fail_status.load(Ordering::SeqCst)).unwrap_or(500);
            self.record(method, path, status);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some((status, r#"{"error":"injected failure"}"#).into_response());
        }
        None
    }
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
