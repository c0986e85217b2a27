//! Routing by Host: unknown hosts get 404, malformed ones 400, and neither reaches a
//! provider; names, qualified names and domains route; headers are forwarded as a proxy
//! should.

mod support;

use paastis::events::EventKind;
use paastis::model::State;
use support::{TempDir, TestClient, TestEngine, raw_exchange, upstream_command};

fn config(marker: &std::path::Path, domains: &str) -> String {
    format!(
        r#"
domains: {domains}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "touch {marker}; {command}"
        env: {{APP_NAME: hello}}
"#,
        marker = marker.display(),
        command = upstream_command(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_hosts_never_touch_a_provider() {
    let dir = TempDir::new("routing");
    let marker = dir.path("started");
    let engine = TestEngine::start(&config(&marker, "[]")).await;
    let client = TestClient::new(engine.addr);

    let answer = client.get("nobody.localhost", "/").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["code"], "unknown_app");
    let answer = client
        .send(
            "GET",
            "nobody.localhost",
            "/",
            &[("accept", "text/html")],
            Default::default(),
        )
        .await;
    assert_eq!(answer.status, 404);
    assert!(answer.text().contains("<!doctype html>"));
    assert!(answer.text().contains("nobody.localhost"));

    for raw in [
        "GET / HTTP/1.1\r\nHost: hello localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: hello..localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: hello.localhost:port\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@hello.localhost\r\nConnection: close\r\n\r\n",
        // Brackets hold an IPv6 address, nothing else.
        "GET / HTTP/1.1\r\nHost: [<script>]:80\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: hello.localhost\r\nHost: other.localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(engine.addr, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} -> {answer}");
    }

    assert!(!marker.exists(), "a provider was asked to start an app");
    assert_eq!(engine.state("hello"), State::Asleep);
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::WakeRequested { .. })),
        0
    );

    // The app is reachable by its name (any case, with port and trailing dot) and by its
    // qualified name.
    for host in [
        "hello.localhost",
        "HELLO.LocalHost.:3000",
        "hello--local.localhost",
    ] {
        let answer = client.get(host, "/").await;
        assert_eq!(answer.status, 200, "{host}");
        assert_eq!(answer.text(), "hello from hello");
    }
    assert!(marker.exists());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_pick_the_route_key_and_headers_are_forwarded() {
    let dir = TempDir::new("domains");
    let marker = dir.path("started");
    let engine = TestEngine::start(&config(&marker, "[proxy.example.test]")).await;
    let client = TestClient::new(engine.addr);

    assert_eq!(client.get("proxy.example.test", "/").await.status, 404);
    assert_eq!(client.get("nope.proxy.example.test", "/").await.status, 404);

    let answer = client
        .send(
            "GET",
            "hello.proxy.example.test",
            "/headers",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                // Not from a trusted proxy: replaced.
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "https"),
                ("via", "1.0 corp"),
                ("connection", "x-hop"),
                ("x-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("x-custom", "kept"),
            ],
            Default::default(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = answer.json();
    let first = |name: &str| seen[name][0].as_str().unwrap_or("<absent>").to_owned();
    assert_eq!(first("x-forwarded-for"), "203.0.113.9, 127.0.0.1");
    assert_eq!(first("x-forwarded-host"), "hello.proxy.example.test");
    assert_eq!(first("x-forwarded-proto"), "http");
    assert_eq!(first("x-custom"), "kept");
    assert_eq!(seen["via"], serde_json::json!(["1.0 corp", "1.1 paastis"]));
    assert!(first("host").starts_with("127.0.0.1:"), "{seen}");
    for once in [
        "host",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    ] {
        assert_eq!(
            seen[once].as_array().map(Vec::len),
            Some(1),
            "{once}: {seen}"
        );
    }
    assert!(seen.get("x-hop").is_none(), "{seen}");
    assert!(seen.get("keep-alive").is_none(), "{seen}");
    assert!(answer.headers.get("via").is_some());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_survive_upstream_idle_closes() {
    let engine = TestEngine::start(&format!(
        r#"
proxy: {{workers: 1}}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello, IDLE_TIMEOUT_S: "0.3"}}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    // Sequential requests ride one pooled upstream connection.
    let mut connections = std::collections::HashSet::new();
    for _ in 0..10 {
        let answer = client.get("hello.localhost", "/conn").await;
        assert_eq!(answer.status, 200);
        connections.insert(answer.text());
    }
    assert_eq!(connections.len(), 1, "{connections:?}");
    // The upstream closes idle connections after 0.3 s: later requests still succeed, on a
    // new connection.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let answer = client.get("hello.localhost", "/conn").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(
            connections.insert(answer.text()),
            "a closed connection was reused"
        );
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_headers_are_cut_off_without_hurting_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new("limits");
    let marker = dir.path("started");
    let engine = TestEngine::start(&format!(
        "proxy: {{header_read_timeout: 1s, max_header_bytes: 16384}}\n{}",
        config(&marker, "[]")
    ))
    .await;
    let client = TestClient::new(engine.addr);

    // Oversized head: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(engine.addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // Slowloris: headers trickled byte by byte; the connection is cut after 1 s.
    let mut slow = tokio::net::TcpStream::connect(engine.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n")
        .await
        .expect("write");
    let trickle = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
        {
            if slow.write_all(&[*byte]).await.is_err() || started.elapsed().as_secs() > 10 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            slow.read_to_end(&mut rest),
        )
        .await;
        (
            started.elapsed(),
            String::from_utf8_lossy(&rest).into_owned(),
        )
    });
    // Others are served meanwhile.
    let answer = client.get("hello.localhost", "/").await;
    assert_eq!(answer.status, 200);
    let (lasted, _) = trickle.await.expect("trickle");
    assert!(
        lasted < std::time::Duration::from_secs(5),
        "the slow client was kept for {lasted:?}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_slower_than_its_timeout_gets_504() {
    let dir = TempDir::new("timeouts");
    let marker = dir.path("started");
    let engine = TestEngine::start(&format!(
        "proxy: {{response_header_timeout: 1s, connect_timeout: 2s}}\n{}",
        config(&marker, "[]")
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    // The kept-alive upstream connection's timer ran out while it was idle: its next
    // request still gets the whole timeout.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let answer = client.get("hello.localhost", "/slow?ms=500").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let started = tokio::time::Instant::now();
    let answer = client.get("hello.localhost", "/slow?ms=3000").await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "upstream_timeout");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    // Within the timeout, slow answers are fine.
    let answer = client.get("hello.localhost", "/slow?ms=300").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "slow 300");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_origins_and_upstream_locations_are_rewritten_foreign_ones_are_not() {
    let dir = TempDir::new("rewrites");
    let marker = dir.path("started");
    let engine = TestEngine::start(&config(&marker, "[]")).await;
    let client = TestClient::new(engine.addr);

    let seen = client
        .send(
            "GET",
            "hello.localhost",
            "/headers",
            &[("origin", "http://hello.localhost")],
            Default::default(),
        )
        .await
        .json();
    let origin = seen["origin"][0].as_str().unwrap_or_default().to_owned();
    assert!(origin.starts_with("http://127.0.0.1:"), "{seen}");
    let seen = client
        .send(
            "GET",
            "hello.localhost",
            "/headers",
            &[("origin", "http://evil.example")],
            Default::default(),
        )
        .await
        .json();
    assert_eq!(seen["origin"][0], "http://evil.example");

    let answer = client.get("hello.localhost", "/redirect").await;
    assert_eq!(answer.status, 302);
    assert_eq!(answer.headers["location"], "http://hello.localhost/target");
    engine.stop().await;

    // preserve_host: the app sees the client's Host, and builds its URLs with it.
    let engine = TestEngine::start(&format!(
        "proxy: {{preserve_host: true}}\n{}",
        config(&marker, "[]")
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let seen = client.get("hello.localhost", "/headers").await.json();
    assert_eq!(seen["host"][0], "hello.localhost");
    let answer = client.get("hello.localhost", "/redirect").await;
    assert_eq!(answer.headers["location"], "http://hello.localhost/target");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new("max-connections");
    let marker = dir.path("started");
    let engine = TestEngine::start(&format!(
        "proxy: {{max_connections: 2}}\n{}",
        config(&marker, "[]")
    ))
    .await;
    // Wake the app first.
    assert_eq!(
        TestClient::new(engine.addr)
            .get("hello.localhost", "/")
            .await
            .status,
        200
    );

    // Two idle keep-alive connections take both slots.
    let request = b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(engine.addr)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write");
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // A third client waits...
    let mut third = tokio::net::TcpStream::connect(engine.addr)
        .await
        .expect("connect");
    third.write_all(request).await.expect("write");
    let mut buffer = [0u8; 512];
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        third.read(&mut buffer),
    )
    .await;
    assert!(early.is_err(), "served beyond max_connections");
    // ...and is served as soon as a slot frees.
    drop(held.pop());
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut buffer))
        .await
        .expect("served after a slot freed")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    engine.stop().await;
}
