//! The proxy with real clients no one here wrote (curl, over HTTP/1.1 and HTTP/2 prior
//! knowledge), and streaming that never buffers (server-sent events arrive one by one).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use support::{TempDir, TestEngine, upstream_command};

async fn engine() -> TestEngine {
    TestEngine::start(&format!(
        r#"
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{}"
        env: {{APP_NAME: hello}}
"#,
        upstream_command()
    ))
    .await
}

async fn curl(args: &[&str]) -> (String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
