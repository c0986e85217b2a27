//! The proxy's own HTTP/1.1 server, byte by byte on raw connections and with curl: pipelined
//! requests answered in order, a request with a body handed to hyper's server mid-connection
//! (and the requests after it still answered), `HEAD`, `Connection: close`, answers of
//! unknown length sent chunked, a client that leaves before its answer, and the engine's
//! stop, and an answer's fields as its upstream wrote them. The upstreams are the suite's own
//! app and Python's `http.server`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{TempDir, TestEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The engine with the suite's app `hello`, awake.
async fn awake() -> TestEngine {
    let engine = TestEngine::start(&support::local_apps(&[("hello", "")])).await;
    let client = support::TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    engine
}

/// One answer read off `stream`: its head (lowercased header names) and its body, framed
/// by `Content-Length` or chunked (`head`: the answer to a `HEAD`, no body). `buf` keeps
/// what was read past it.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> (String, Vec<u8>) {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        fill(stream, buf).await;
    };
    let head_text = String::from_utf8(buf.drain(..end).collect()).expect("head is text");
    let lower = head_text.to_ascii_lowercase();
    let status: u16 = head_text[9..12].parse().expect("status");
    if head || status == 204 || status == 304 {
        return (head_text, Vec::new());
    }
    if let Some(line) = lower.lines().find(|l| l.starts_with("content-length:")) {
        let length: usize = line[15..].trim().parse().expect("length");
        while buf.len() < length {
            fill(stream, buf).await;
        }
        return (head_text, buf.drain(..length).collect());
    }
    assert!(
        lower.contains("transfer-encoding: chunked\r\n"),
        "no framing: {head_text}"
    );
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            fill(stream, buf).await;
        };
        let size_line = String::from_utf8(buf.drain(..line_end + 2).collect()).expect("size");
        let size = usize::from_str_radix(size_line.trim(), 16).expect("chunk size");
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let at = loop {
                    if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    fill(stream, buf).await;
                };
                buf.drain(..at + 2);
                if at == 0 {
                    return (head_text, body);
                }
            }
        }
        while buf.len() < size + 2 {
            fill(stream, buf).await;
        }
        body.extend(buf.drain(..size));
        assert_eq!(buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
    }
}

/// Sends `request` on `stream` and reads its answer (see [`read_answer`]).
async fn ask(stream: &mut TcpStream, buf: &mut Vec<u8>, request: &[u8]) -> (String, Vec<u8>) {
    stream.write_all(request).await.expect("write");
    read_answer(stream, buf, false).await
}

/// Reads more into `buf`; fails on close or after 10 s.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    assert!(
        n > 0,
        "closed early; read so far: {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Whether the server closes `stream` within 5 s (everything else read is discarded).
async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await,
        Ok(Ok(_))
    )
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_around_one_with_a_body() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    let body = "x".repeat(3000);
    let requests = format!(
        "GET /first HTTP/1.1\r\nHost: hello.localhost\r\n\r\n\
         HEAD /second HTTP/1.1\r\nHost: hello.localhost\r\n\r\n\
         GET /headers HTTP/1.1\r\nHost: hello.localhost\r\nX-Twice: one\r\nX-Twice: two\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: {}\r\n\r\n{body}\
         GET /after HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        body.len()
    );
    // In small pieces: heads split anywhere are read whole.
    for piece in requests.as_bytes().chunks(7) {
        stream.write_all(piece).await.expect("write");
    }
    let mut buf = Vec::new();
    let (head, first) = read_answer(&mut stream, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(first, b"hello from hello");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\ndate: "), "{head}");
    assert!(lower.contains("\r\nvia: "), "{head}");

    let (head, none) = read_answer(&mut stream, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", first.len())),
        "a HEAD answer keeps its length: {head}"
    );
    assert!(none.is_empty());

    let (_, headers) = read_answer(&mut stream, &mut buf, false).await;
    let headers: serde_json::Value = serde_json::from_slice(&headers).expect("json");
    assert_eq!(headers["x-twice"], serde_json::json!(["one", "two"]));
    assert_eq!(headers["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));

    let (head, echo) = read_answer(&mut stream, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let echo: serde_json::Value = serde_json::from_slice(&echo).expect("json");
    assert_eq!(echo["length"], body.len());

    let (head, after) = read_answer(&mut stream, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(after, b"hello from hello");
    assert!(buf.is_empty());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_honoured_and_keep_alive_is_the_default() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    let mut buf = Vec::new();
    for _ in 0..3 {
        let (head, body) = ask(
            &mut stream,
            &mut buf,
            b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        )
        .await;
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        assert_eq!(body, b"hello from hello");
    }
    let (head, _) = ask(
        &mut stream,
        &mut buf,
        b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Close\r\n\r\n",
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{head}"
    );
    assert!(closes(&mut stream).await, "closed after the answer");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answers_hop_by_hop_fields_stay_with_the_proxy_and_its_connection_is_reused() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    let mut buf = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let (head, body) = ask(
            &mut stream,
            &mut buf,
            b"GET /hop-by-hop HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        )
        .await;
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("\r\nx-public: yes\r\n"), "{head}");
        for private in ["x-private", "keep-alive", "connection"] {
            assert!(
                !head.contains(&format!("\r\n{private}:")),
                "{private}: {head}"
            );
        }
        ports.push(String::from_utf8(body).expect("port"));
    }
    // One upstream connection answered the three: `keep-alive` was read before it was
    // dropped.
    assert!(ports.windows(2).all(|pair| pair[0] == pair[1]), "{ports:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answers_fields_reach_every_client_as_the_upstream_wrote_them() {
    let engine = awake().await;
    // This server copies them as they were written, with the proxy's `Via` and `Date`.
    let mut stream = connect(engine.addr).await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        let (head, body) = ask(
            &mut stream,
            &mut buf,
            b"GET /as-written HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        )
        .await;
        assert_eq!(body, b"written");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let cookies = ["\r\nSet-Cookie: a=1\r\n", "\r\nset-cookie: b=2\r\n"];
        for line in [
            "\r\nContent-Type:  text/plain\r\n",
            "\r\nX-Empty:\r\n",
            "\r\nvia: 1.1 paastis\r\n",
        ]
        .iter()
        .chain(&cookies)
        {
            assert_eq!(head.matches(line).count(), 1, "{line:?}: {head}");
        }
        assert!(head.find(cookies[0]) < head.find(cookies[1]), "{head}");
        let lower = head.to_ascii_lowercase();
        assert_eq!(
            lower.matches("\r\ncontent-length: 7\r\n").count(),
            1,
            "{head}"
        );
        assert_eq!(lower.matches("\r\ndate: ").count(), 1, "{head}");
        assert!(!lower.contains("keep-alive"), "{head}");
    }

    // hyper's servers (HTTP/1.0 here, HTTP/2 with curl) get the same fields in their map.
    let mut stream = connect(engine.addr).await;
    let (head, body) = ask(
        &mut stream,
        &mut Vec::new(),
        b"GET /as-written HTTP/1.0\r\nHost: hello.localhost\r\n\r\n",
    )
    .await;
    assert_eq!(body, b"written");
    let (h2, _) = support::curl(&[
        "--http2-prior-knowledge",
        "--include",
        "--header",
        "Host: hello.localhost",
        &format!("http://{}/as-written", engine.addr),
    ])
    .await;
    assert!(h2.starts_with("HTTP/2 200"), "{h2}");
    assert!(h2.ends_with("\r\n\r\nwritten"), "{h2}");
    for head in [head, h2] {
        let lower = head.to_ascii_lowercase();
        for line in [
            "\r\ncontent-type: text/plain\r\n",
            "\r\nset-cookie: a=1\r\n",
            "\r\nset-cookie: b=2\r\n",
            "\r\nx-empty: \r\n",
            "\r\nvia: 1.1 paastis\r\n",
            "\r\ncontent-length: 7\r\n",
        ] {
            assert_eq!(lower.matches(line).count(), 1, "{line:?}: {head}");
        }
        assert!(!lower.contains("keep-alive:"), "{head}");
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_unknown_lengths_are_framed() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    let mut buf = Vec::new();
    // The engine's own page (an unknown app), then a streamed answer of unknown length
    // (server-sent events, chunked), on one connection.
    let (head, body) = ask(
        &mut stream,
        &mut buf,
        b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\nAccept: application/json\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    let error: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["error"]["code"], "unknown_app", "{error}");

    let (head, body) = ask(
        &mut stream,
        &mut buf,
        b"GET /sse?n=3&gap_ms=10 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(body).expect("text");
    assert_eq!(body.matches("data:").count(), 3, "{body}");

    // Still usable after both.
    let (_, body) = ask(
        &mut stream,
        &mut buf,
        b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
    )
    .await;
    assert_eq!(body, b"hello from hello");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_its_answer_ends_its_request() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    stream
        .write_all(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        .await
        .expect("write");
    let app = engine.app("hello");
    let mut counted = false;
    for _ in 0..100 {
        if app.in_flight() == 1 {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(counted, "the request is in progress");
    drop(stream);
    let mut ended = false;
    for _ in 0..100 {
        if app.in_flight() == 0 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        ended,
        "the request ended with its client, before its answer came"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closes_when_the_engine_stops() {
    let engine = awake().await;
    let mut stream = connect(engine.addr).await;
    let mut buf = Vec::new();
    // Two answers first: the wait for the stop outlives each request.
    for _ in 0..2 {
        let _ = ask(
            &mut stream,
            &mut buf,
            b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        )
        .await;
    }
    let stopping = tokio::spawn(engine.stop());
    assert!(closes(&mut stream).await, "closed once the engine stops");
    stopping.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reuses_one_connection_to_python_http_server() {
    let dir = TempDir::new("http1");
    std::fs::write(dir.path("index.html"), "<p>hello</p>\n").expect("write");
    let big: String = (0..200_000)
        .map(|n| char::from(b'a' + (n % 26) as u8))
        .collect();
    std::fs::write(dir.path("big.txt"), &big).expect("write");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let engine = TestEngine::start(&format!(
        "providers:\n  - id: local\n    type: process\n    apps:\n\
         \x20     - name: files\n\
         \x20       command: python3 -m http.server {port} --bind 127.0.0.1 --protocol HTTP/1.1 --directory {}\n\
         \x20       port: {port}\n",
        dir.path("").display()
    ))
    .await;
    let url = format!("http://{}", engine.addr);
    let (out, _) = support::curl(&[
        "--http1.1",
        "-H",
        "Host: files.localhost",
        "-w",
        "%{http_code} %{num_connects} %{size_download}\\n",
        "-o",
        "/dev/null",
        &format!("{url}/index.html"),
        "-o",
        "/dev/null",
        &format!("{url}/big.txt"),
        "-o",
        "/dev/null",
        &format!("{url}/index.html"),
    ])
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // The first wakes the app; the two after it go on the same connection.
    assert!(lines[0].starts_with("200 "), "{out}");
    assert_eq!(lines[1], format!("200 0 {}", big.len()), "{out}");
    assert_eq!(lines[2], "200 0 13", "{out}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_head_or_a_silent_kept_alive_connection_is_closed_by_its_deadline() {
    let engine = TestEngine::start(&format!(
        "proxy: {{header_read_timeout: 1s}}\n{}",
        support::local_apps(&[("hello", "")])
    ))
    .await;
    let client = support::TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    // Half a head, then nothing.
    let mut half = connect(engine.addr).await;
    half.write_all(b"GET / HTTP/1.1\r\nHost: hello.loc")
        .await
        .expect("write");
    // One answer, then nothing.
    let mut kept = connect(engine.addr).await;
    let mut buf = Vec::new();
    let _ = ask(
        &mut kept,
        &mut buf,
        b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
    )
    .await;
    // Within 1.5 s each (closes() gives them 5 s).
    assert!(
        closes(&mut half).await,
        "half a head kept the connection open"
    );
    assert!(
        closes(&mut kept).await,
        "a silent kept-alive connection stayed open"
    );
    // Meanwhile a client that keeps talking is served on one connection past the deadline.
    let mut busy = connect(engine.addr).await;
    for _ in 0..8 {
        let (_, body) = ask(
            &mut busy,
            &mut buf,
            b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        )
        .await;
        assert_eq!(body, b"hello from hello");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_buffers_passed_between_connections_never_mix_their_requests_or_answers() {
    // The proxy's threads hand their read buffers from one request to the next, on any
    // connection. Several kept-alive connections at once, each request carrying a value of
    // its own (heads from a few bytes to past the first 4 KiB buffer), and each answer
    // echoing it back: every answer must be its own request's, byte for byte.
    let engine = awake().await;
    let addr = engine.addr;
    let mut clients = Vec::new();
    for connection in 0..6usize {
        clients.push(tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let mut buf = Vec::new();
            for request in 0..25usize {
                let padding = "p".repeat((connection * 977 + request * 331) % 5000);
                let value = format!("c{connection}-r{request}-{padding}");
                let (head, body) = ask(
                    &mut stream,
                    &mut buf,
                    format!(
                        "GET /headers HTTP/1.1\r\nHost: hello.localhost\r\nX-Probe: {value}\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let echoed: serde_json::Value =
                    serde_json::from_slice(&body).expect("the upstream's JSON");
                assert_eq!(
                    echoed["x-probe"],
                    serde_json::json!([value]),
                    "connection {connection}, request {request}"
                );
            }
        }));
    }
    for client in clients {
        client.await.expect("a client");
    }
    engine.stop().await;
}
