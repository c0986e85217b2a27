//! The edge: no client can hold the proxy. Raw sockets that never send a byte, send half of
//! the HTTP/2 preface, finish a TLS handshake and go quiet, trickle a request body, or keep
//! an HTTP/2 connection open without a request are closed by their deadlines, one IP cannot
//! take every connection, and a normal client beside them is served all along. Also what a
//! client says that the engine must not believe (`X-Forwarded-Proto`), and what it must
//! refuse (a bad chunk size, `CONNECT`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use paastis::events::{EventKind, WakeCause};
use paastis::model::State;
use support::{TestClient, TestEngine, local_apps};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous bound on what must happen "at once" (a normal request beside the attack) or
/// "by its deadline" (deadlines here are 1-2 s): the point is that it happens.
const SOON: Duration = Duration::from_secs(10);

fn engine_config(proxy: &str, extra: &str) -> String {
    format!(
        "proxy: {{{proxy}}}\n{extra}\n{}",
        local_apps(&[("hello", "")])
    )
}

/// An engine on `engine_config(proxy, extra)` whose app is awake, so that "served" in a
/// test is the proxy's doing, not a wake.
async fn awake(proxy: &str, extra: &str) -> TestEngine {
    let engine = TestEngine::start(&engine_config(proxy, extra)).await;
    let answer = TestClient::new(engine.addr)
        .get("hello.localhost", "/")
        .await;
    assert_eq!(answer.status, 200);
    engine
}

/// Whether the server closes `stream` (EOF or reset) within `within`, whatever it sent.
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A connection from `local` (a loopback address other than 127.0.0.1 makes another
/// client IP) to `addr`.
async fn connect_from(local: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().expect("address"))?;
    socket.connect(addr).await
}

/// A plain request from another client IP, answered 200 within [`SOON`].
async fn normal_client_is_served(addr: SocketAddr) {
    let mut stream = tokio::time::timeout(SOON, connect_from("127.0.0.9", addr))
        .await
        .expect("connects at once")
        .expect("connects");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(SOON, stream.read_to_string(&mut answer))
        .await
        .expect("answered at once")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_open_connections_are_closed_and_others_served() {
    let engine = awake(
        "header_read_timeout: 1s, max_connections: 64, max_connections_per_ip: 40",
        "",
    )
    .await;
    let addr = engine.addr;

    // 20 connections that never send a byte, 10 that send half of the HTTP/2 preface.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut partial = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        partial.push(stream);
    }
    // Beside them, a normal client is served.
    normal_client_is_served(addr).await;
    // Then every one of them is closed by its deadline.
    for stream in silent.iter_mut().chain(partial.iter_mut()) {
        assert!(
            closed_by_server(stream, SOON).await,
            "a silent connection stayed open"
        );
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ip_cannot_take_every_connection() {
    let engine = awake("header_read_timeout: 30s, max_connections_per_ip: 8", "").await;
    let addr = engine.addr;
    // Its share, held (silent, within header_read_timeout)...
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_from("127.0.0.5", addr).await.expect("connect"));
    }
    // ...so its next connection is closed at once, untouched,
    let mut refused = connect_from("127.0.0.5", addr).await.expect("connect");
    assert!(closed_by_server(&mut refused, SOON).await);
    // while another client is served.
    normal_client_is_served(addr).await;
    // A place comes back when one closes.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.5", addr).await.expect("connect");
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    let _ = tokio::time::timeout(SOON, again.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    engine.stop().await;
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_client_after_its_tls_handshake_is_closed() {
    let engine = awake(
        "header_read_timeout: 1s",
        &format!(
            "tls: {{listen: 127.0.0.1:0, cert: '{}', key: '{}'}}",
            fixture("other.pem").display(),
            fixture("other.key").display()
        ),
    )
    .await;
    let tls_addr = engine.tls_addr.expect("a TLS listener");
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(fixture("other-ca.pem")).expect("ca") {
        roots.add(certificate.expect("certificate")).expect("add");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("hello.localhost").expect("name");
    let tcp = TcpStream::connect(tls_addr).await.expect("connect");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    // Handshake done, then nothing: closed by the deadline.
    assert!(closed_by_server(&mut tls, SOON).await);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_and_its_app_can_sleep() {
    let engine = awake(
        "request_body_timeout: 2s, min_request_body_rate: 100",
        "defaults: {max_idle: 1s}",
    )
    .await;
    let addr = engine.addr;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 1000\r\n\r\n")
        .await
        .expect("write");
    // One byte every 500 ms: never silent for 2 s, but far under 100 B/s.
    let trickle = tokio::spawn(async move {
        let mut answer = Vec::new();
        for _ in 0..60 {
            if stream.write_all(b"x").await.is_err() {
                break;
            }
            let mut buffer = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    let answer = tokio::time::timeout(Duration::from_secs(40), trickle)
        .await
        .expect("the trickle ends")
        .expect("task");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_body_timeout"), "{answer}");
    // Nothing holds the app any more: it sleeps after its max_idle.
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(10))
        .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let engine = TestEngine::start(&engine_config("client_idle_timeout: 1s", "")).await;
    let addr = engine.addr;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    let driven = tokio::spawn(connection);
    let request = http::Request::get(format!("http://hello.localhost:{}/", addr.port()))
        .body(http_body_util::Empty::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    drop(response);
    // No request for client_idle_timeout: the server ends the connection.
    let ended = tokio::time::timeout(SOON, driven).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection stayed open");
    engine.stop().await;
}

/// Sends `request` on a new connection and returns what came back until the server closed.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(SOON, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunks_are_400_and_connect_is_405() {
    let engine = awake("", "").await;
    let addr = engine.addr;
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_request_body"), "{answer}");
    assert!(!answer.to_lowercase().contains("hyper"), "{answer}");

    let answer = raw(
        addr,
        b"CONNECT hello.localhost:443 HTTP/1.1\r\nHost: hello.localhost:443\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.to_lowercase().contains("\r\nallow: "), "{answer}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_from_trusted_proxies_only() {
    let headers = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "spoofed.example"),
        ("x-forwarded-for", "198.51.100.7"),
    ];
    // Nobody trusted: the listener decides.
    let engine = TestEngine::start(&engine_config("", "")).await;
    let seen = seen_headers(&engine, &headers).await;
    assert_eq!(seen["x-forwarded-proto"][0], "http", "{seen}");
    assert_eq!(seen["x-forwarded-host"][0], "hello.localhost", "{seen}");
    let cause = wake_cause_ip(&engine);
    assert_eq!(cause.as_deref(), Some("127.0.0.1"));
    engine.stop().await;

    // Loopback trusted (a load balancer on this machine): its headers stand, and the
    // client is the address it forwarded for.
    let engine = TestEngine::start(&engine_config("trusted_proxies: [127.0.0.0/8]", "")).await;
    let seen = seen_headers(&engine, &headers).await;
    assert_eq!(seen["x-forwarded-proto"][0], "https", "{seen}");
    assert_eq!(seen["x-forwarded-host"][0], "spoofed.example", "{seen}");
    assert_eq!(
        seen["x-forwarded-for"][0], "198.51.100.7, 127.0.0.1",
        "{seen}"
    );
    assert_eq!(wake_cause_ip(&engine).as_deref(), Some("198.51.100.7"));
    engine.stop().await;
}

/// The headers the app saw for a request carrying `headers`.
async fn seen_headers(engine: &TestEngine, headers: &[(&str, &str)]) -> serde_json::Value {
    TestClient::new(engine.addr)
        .send(
            "GET",
            "hello.localhost",
            "/headers",
            headers,
            Default::default(),
        )
        .await
        .json()
}

/// The client IP recorded by the app's first wake.
fn wake_cause_ip(engine: &TestEngine) -> Option<String> {
    engine.events().iter().find_map(|event| match &event.kind {
        EventKind::WakeRequested {
            cause: WakeCause::Request { client_ip, .. },
        } => Some(client_ip.to_string()),
        _ => None,
    })
}
