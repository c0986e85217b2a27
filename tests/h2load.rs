//! The proxy under HTTP/2 load from a client no one here wrote: h2load (nghttp2), over h2c
//! prior knowledge, many concurrent streams per connection, the first of them arriving while
//! the app is asleep. h2load must be installed (Debian: nghttp2-client; scripts/test.sh
//! installs it): without it these tests fail, they never pass silently.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use paastis::events::EventKind;
use paastis::model::State;
use sha2::{Digest, Sha256};
use support::{TempDir, TestEngine, upstream_command};
use tokio::task::JoinSet;

/// The `hello` app, asleep, booting slowly enough (`STARTUP_DELAY_MS`) that h2load's first
/// streams are all held during the wake; each start appends a line to `starts`.
async fn engine(starts: &std::path::Path) -> TestEngine {
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{wake_timeout: 30s}}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello, STARTS_FILE: "{starts}", STARTUP_DELAY_MS: "500"}}
"#,
        command = upstream_command(),
        starts = starts.display(),
    ))
    .await;
    assert_eq!(engine.state("hello"), State::Asleep);
    engine
}

/// What h2load printed, and the figures of its summary.
struct Run {
    output: String,
    protocol: String,
    /// `requests:` line: total, started, done, succeeded, failed, errored, timeout.
    requests: HashMap<String, u64>,
    /// `status codes:` line: 2xx, 3xx, 4xx, 5xx.
    statuses: HashMap<String, u64>,
    /// Response body bytes (`traffic:` line, `data`).
    data_bytes: u64,
}

impl Run {
    fn request(&self, field: &str) -> u64 {
        *self
            .requests
            .get(field)
            .unwrap_or_else(|| panic!("no `{field}` in h2load's requests line:\n{}", self.output))
    }

    fn status(&self, class: &str) -> u64 {
        *self
            .statuses
            .get(class)
            .unwrap_or_else(|| panic!("no `{class}` in h2load's status codes:\n{}", self.output))
    }

    /// Every request done and 2xx, nothing failed, errored or timed out.
    fn assert_all_succeeded(&self, n: u64) {
        for field in ["total", "started", "done", "succeeded"] {
            assert_eq!(self.request(field), n, "{field}:\n{}", self.output);
        }
        for field in ["failed", "errored"] {
            assert_eq!(self.request(field), 0, "{field}:\n{}", self.output);
        }
        // Older h2load versions do not print it.
        assert_eq!(
            self.requests.get("timeout").copied().unwrap_or(0),
            0,
            "{}",
            self.output
        );
        assert_eq!(self.status("2xx"), n, "{}", self.output);
        for class in ["3xx", "4xx", "5xx"] {
            assert_eq!(self.status(class), 0, "{class}:\n{}", self.output);
        }
    }
}

/// `"2000 total, 2000 started, 0 failed"` -> {total: 2000, started: 2000, failed: 0}.
fn counts(line: &str) -> HashMap<String, u64> {
    line.split(',')
        .filter_map(|part| {
            let (count, name) = part.trim().split_once(' ')?;
            Some((name.trim().to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// Runs h2load against the proxy, for `hello.localhost`, over h2c prior knowledge.
async fn h2load(engine: &TestEngine, path: &str, args: &[&str]) -> Run {
    let url = format!("http://{}{path}", engine.addr);
    let mut command = tokio::process::Command::new("h2load");
    command
        .args(args)
        .args(["-H", ":authority: hello.localhost", &url])
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(60), command.output()).await {
        Err(_) => panic!("h2load {args:?} {url} did not finish within 60 s"),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "h2load is not installed: these tests need it (Debian: apt-get install \
             nghttp2-client; scripts/test.sh installs it)"
        ),
        Ok(Err(error)) => panic!("cannot run h2load: {error}"),
        Ok(Ok(output)) => output,
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "h2load failed:\n{text}");
    let line = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in h2load's output:\n{text}"))
            .trim()
            .to_owned()
    };
    let protocol = line("Application protocol:");
    let requests = counts(&line("requests:"));
    let statuses = counts(&line("status codes:"));
    // "traffic: 86.48KB (88556) total, 19.86KB (20336) headers (...), 31.25KB (32000) data"
    let traffic = line("traffic:");
    let data_bytes = traffic
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(") data"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected traffic line: {traffic}"));
    Run {
        output: text,
        protocol,
        requests,
        statuses,
        data_bytes,
    }
}

fn assert_started_once(engine: &TestEngine, starts: &std::path::Path) {
    let started = std::fs::read_to_string(starts).expect("starts file");
    assert_eq!(started.lines().count(), 1, "started: {started}");
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::WakeRequested { .. })),
        1
    );
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::Started { .. })),
        1
    );
    assert_eq!(engine.state("hello"), State::Awake);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The upstream's `/echo` answer for `body`, byte for byte (Python's `json.dumps`).
fn echo_of(body: &[u8]) -> String {
    format!(
        r#"{{"length": {}, "sha256": "{}"}}"#,
        body.len(),
        hex(&Sha256::digest(body))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_h2_streams_wake_the_app_once_and_all_succeed() {
    let dir = TempDir::new("h2load-get");
    let starts = dir.path("starts");
    let engine = engine(&starts).await;

    // 4 connections with up to 50 streams each: the first 200 requests are all held while
    // the app boots, then the rest flow.
    let run = h2load(&engine, "/", &["-n", "2000", "-c", "4", "-m", "50"]).await;
    assert_eq!(run.protocol, "h2c", "{}", run.output);
    run.assert_all_succeeded(2000);
    // Every answer is the app's own ("hello from hello"), not some other 2xx.
    assert_eq!(
        run.data_bytes,
        2000 * "hello from hello".len() as u64,
        "{}",
        run.output
    );
    assert_started_once(&engine, &starts);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_on_many_h2_streams_reach_the_app() {
    let dir = TempDir::new("h2load-post");
    let starts = dir.path("starts");
    let engine = engine(&starts).await;
    let upload = pseudo_random(0, 64 * 1024);
    let file = dir.path("upload.bin");
    std::fs::write(&file, &upload).expect("write upload");
    let file = file.to_string_lossy().into_owned();

    // While h2load posts the same 64 KiB body on many streams, another h2 connection posts
    // distinct bodies on concurrent streams: each must come back with its own digest, so no
    // body is cut short or mixed with another stream's.
    // (One connection, hyper's own h2 client: `:authority` is the app's host.)
    let stream = tokio::net::TcpStream::connect(engine.addr)
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut distinct = JoinSet::new();
    for n in 1..=40u64 {
        let mut sender = sender.clone();
        distinct.spawn(async move {
            let body = pseudo_random(n, 32 * 1024 + n as usize * 997);
            let expected = echo_of(&body);
            let request = http::Request::post("http://hello.localhost/echo")
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                n,
                status,
                String::from_utf8_lossy(&answer).into_owned(),
                expected,
            )
        });
    }
    let run = h2load(
        &engine,
        "/echo",
        &["-n", "400", "-c", "4", "-m", "50", "-d", &file],
    )
    .await;
    assert_eq!(run.protocol, "h2c", "{}", run.output);
    run.assert_all_succeeded(400);
    // h2load does not show bodies, only their size: every answer is as long as the echo of
    // a 64 KiB body ({"length": 65536, "sha256": ...}). The digests are checked above.
    assert_eq!(
        run.data_bytes,
        400 * echo_of(&upload).len() as u64,
        "{}",
        run.output
    );
    while let Some(joined) = distinct.join_next().await {
        let (n, status, answer, expected) = joined.expect("request task");
        assert_eq!(status, 200, "body {n}: {answer}");
        assert_eq!(answer, expected, "body {n}");
    }
    assert_started_once(&engine, &starts);
    engine.stop().await;
}
