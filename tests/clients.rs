//! The proxy with real clients no one here wrote (curl, over HTTP/1.1 and HTTP/2 prior
//! knowledge), and streaming that never buffers (server-sent events arrive one by one).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use support::{TempDir, TestEngine, curl};

async fn engine() -> TestEngine {
    TestEngine::start(&support::local_apps(&[("hello", "")])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http1_and_h2c_downloads_and_uploads() {
    let engine = engine().await;
    let url = format!("http://{}", engine.addr);
    let dir = TempDir::new("curl");
    let upload = dir.path("upload.bin");
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|n| (n.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&upload, &data).expect("write upload");
    let expected = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let upload_arg = format!("@{}", upload.display());

    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let (body, _) = curl(&[
            version,
            "-H",
            "Host: hello.localhost",
            "-w",
            "\n%{http_version} %{http_code}",
            &format!("{url}/"),
        ])
        .await;
        let expected_version = if version == "--http1.1" { "1.1" } else { "2" };
        assert_eq!(
            body,
            format!("hello from hello\n{expected_version} 200"),
            "{version}"
        );

        let (echo, _) = curl(&[
            version,
            "-H",
            "Host: hello.localhost",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &upload_arg,
            &format!("{url}/echo"),
        ])
        .await;
        let echo: serde_json::Value = serde_json::from_str(&echo).expect("echo json");
        assert_eq!(echo["length"], data.len(), "{version}");
        assert_eq!(echo["sha256"], expected.as_str(), "{version}");
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_one_by_one() {
    let engine = engine().await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // Wake first, so event timing is not mixed with the wake.
    let wake = http::Request::get(format!("http://{}/", engine.addr))
        .header("host", "hello.localhost")
        .body(Empty::new())
        .expect("request");
    let _ = client
        .request(wake)
        .await
        .expect("wake")
        .into_body()
        .collect()
        .await;

    let request = http::Request::get(format!("http://{}/sse?n=4&gap_ms=400", engine.addr))
        .header("host", "hello.localhost")
        .body(Empty::new())
        .expect("request");
    let started = tokio::time::Instant::now();
    let mut body = client.request(request).await.expect("response").into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("frame");
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
            arrivals.push(started.elapsed());
        }
    }
    assert_eq!(
        text,
        "data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n"
    );
    // Each event arrived on its own, about 400 ms after the one before: nothing waited for
    // the next event or the end of the stream.
    assert_eq!(arrivals.len(), 4, "{arrivals:?}");
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(250),
            "{arrivals:?}"
        );
    }
    assert!(arrivals[0] < Duration::from_millis(300), "{arrivals:?}");
    engine.stop().await;
}

/// The engine's peak resident memory so far (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_download_streams_in_bounded_memory() {
    let dir = TempDir::new("big");
    let file = dir.path("paastis.yml");
    std::fs::write(&file, support::local_apps(&[("hello", "")])).expect("write config");
    let mut served = support::serve(&file, &[]).await;
    let pid = served.child.id().expect("pid");
    // A first small download: the app is awake and the engine's pools are warm, so what
    // grows after is the big transfer's doing (not the binary's size, nor start-up).
    let download = |mib: u64| {
        let url = format!("http://{}/bytes?mib={mib}", served.addr);
        async move {
            let (out, _) = curl(&[
                "-H",
                "Host: hello.localhost",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &url,
            ])
            .await;
            assert_eq!(out, (mib * 1024 * 1024).to_string());
        }
    };
    download(1).await;
    let before_kib = peak_rss_kib(pid);
    download(1024).await;
    let peak_kib = peak_rss_kib(pid);
    served.stop().await;
    // Buffers are bounded: 1 GiB goes through with at most a few MiB more.
    assert!(
        peak_kib - before_kib < 24 * 1024,
        "peak RSS went from {before_kib} KiB to {peak_kib} KiB while streaming 1 GiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_are_refused_and_others_unaffected() {
    let engine = engine().await;
    let addr = engine.addr;
    for raw in [
        // Conflicting framing.
        "POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
        // Two different lengths.
        "POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 4\r\nContent-Length: 10\r\n\r\nabcd",
        // An encoding that is not chunked last.
        "POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ] {
        let answer = support::raw_exchange(addr, raw.as_bytes()).await;
        // Refused (400), or read as chunked (Transfer-Encoding wins, RFC 9112 6.3) and the
        // connection closed after it: never a second request taken from the body.
        let refused = answer.starts_with("HTTP/1.1 400");
        let closed = answer.starts_with("HTTP/1.1 200")
            && answer.to_ascii_lowercase().contains("connection: close")
            && answer.contains(r#""length": 0"#);
        assert!(refused || closed, "{raw:?} -> {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{raw:?} -> {answer}"
        );
    }
    // An Upgrade header that Connection does not name is not an upgrade: plain request.
    let answer = support::raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello from hello"), "{answer}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_silent_mid_body_for_longer_than_idle_timeout_is_cut_off() {
    let engine = TestEngine::start(&format!(
        "proxy: {{idle_timeout: 1s}}\n{}",
        support::local_apps(&[("hello", "")])
    ))
    .await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        http::Request::get(format!("http://{}{path}", engine.addr))
            .header("host", "hello.localhost")
            .body(Empty::new())
            .expect("request")
    };

    // Events 300 ms apart: never silent for 1 s, so the whole stream arrives.
    let body = client
        .request(get("/sse?n=5&gap_ms=300"))
        .await
        .expect("response")
        .into_body()
        .collect()
        .await
        .expect("whole stream")
        .to_bytes();
    assert_eq!(String::from_utf8_lossy(&body).matches("data: ").count(), 5);

    // 3 s of silence after the first event: the response is cut off after about 1 s,
    // with an error (not a clean end that would pass for a complete body).
    let started = tokio::time::Instant::now();
    let mut body = client
        .request(get("/sse?n=2&gap_ms=3000"))
        .await
        .expect("response")
        .into_body();
    let first = body
        .frame()
        .await
        .expect("first frame")
        .expect("first event");
    assert_eq!(
        first.data_ref().map(|d| d.as_ref()),
        Some(b"data: event 0\n\n".as_slice())
    );
    let cut = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("cut off before the upstream's next event");
    assert!(
        matches!(cut, Some(Err(_))),
        "expected an error, got {cut:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2800), "{elapsed:?}");

    // The app still answers, and was not stopped for it.
    let answer = client.request(get("/")).await.expect("next request");
    assert_eq!(answer.status(), 200);
    engine.stop().await;
}
