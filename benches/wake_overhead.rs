//! Wake overhead benchmark: what the engine adds to a wake beyond the app's own start, for
//! the `process` provider and an ordinary server, `python3 -m http.server`.
//!
//! Each round measures, side by side:
//! - direct: this process spawns the server itself, then attempts connections (1 ms apart)
//!   until one is accepted: the time the app takes to listen (and, after it, the first byte
//!   of the answer to a first request);
//! - through the real `paastis` binary, the app asleep: one request sent by a program
//!   (`Accept: */*`, so it is held until the app answers rather than given the waiting
//!   page), from sending it to the first byte of the answer; then, the app stopped again,
//!   100 such requests at once, each on its own connection (the last first byte, and the
//!   median one).
//!
//! The overhead is the engine's time minus the direct listen time of the same round.
//! Between wakes the app is stopped through the admin API (`POST
//! /api/v1/apps/local/files/stop`) and the run waits until it is asleep.
//!
//! `scripts/bench-wake.sh` runs it (`cargo bench --bench wake_overhead -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (20), BENCH_CONCURRENT (100). Without
//! `--bench` (as `cargo test --all-targets` runs it) it does two rounds of 10 requests.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use support::{Served, TempDir, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::task::JoinSet;
use tokio::time::Instant;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The directory the server serves: one small page.
fn site(dir: &TempDir) -> String {
    std::fs::write(dir.path("index.html"), "<p>awake</p>\n").expect("write page");
    dir.0.display().to_string()
}

/// Sends a GET for `/` with `host` on `stream` and waits for the first byte of the answer;
/// returns when it came, after reading the whole answer (which must be a 200).
async fn first_byte(mut stream: TcpStream, host: &str) -> Instant {
    let request =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut first = [0u8; 1];
    let read = stream.read(&mut first).await.expect("read answer");
    let at = Instant::now();
    assert_eq!(read, 1, "an answer");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("read answer");
    let head = String::from_utf8_lossy(&rest);
    assert!(
        head.starts_with("TTP/1.1 200") || head.starts_with("TTP/1.0 200"),
        "answered 200: {}{head}",
        first[0] as char
    );
    at
}

/// (a): spawns the server on a free port, connects until accepted. Returns the time to
/// listen and the time to the first byte of a first answer, both from the spawn.
async fn direct(directory: &str) -> (Duration, Duration) {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--directory", directory])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python3 -m http.server");
    let stream = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            break stream;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server listens"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let listening = started.elapsed();
    let answered = first_byte(stream, &format!("127.0.0.1:{port}")).await - started;
    let _ = child.kill().await;
    (listening, answered)
}

/// The admin API's address, from the engine's log.
async fn admin_addr(served: &Served) -> SocketAddr {
    for _ in 0..200 {
        for line in served.logs().lines() {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(addr) = json.get("admin_addr").and_then(|a| a.as_str())
            {
                return addr.parse().expect("admin address");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no admin_addr in the engine's log:\n{}", served.logs());
}

/// The app's state through the admin API.
async fn state(admin: &TestClient, host: &str) -> String {
    let answer = admin.get(host, "/api/v1/apps/local/files").await;
    answer.json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Stops the app through the admin API (when awake) and waits until it is asleep.
async fn put_to_sleep(admin: &TestClient, host: &str) {
    if state(admin, host).await == "awake" {
        let answer = admin
            .send(
                "POST",
                host,
                "/api/v1/apps/local/files/stop",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(answer.status, 202, "stop: {}", answer.text());
    }
    for _ in 0..500 {
        if state(admin, host).await == "asleep" {
            // The port freed and the stop recorded before the next wake.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the app did not go to sleep");
}

/// (b): `count` requests at once, each on its own connection, for the sleeping app.
/// Returns each one's time from sending to the first byte of its answer, sorted.
async fn through_engine(proxy: SocketAddr, count: usize) -> Vec<Duration> {
    let mut connected = Vec::with_capacity(count);
    for _ in 0..count {
        connected.push(TcpStream::connect(proxy).await.expect("connect to the engine"));
    }
    let mut waiting = JoinSet::new();
    for stream in connected {
        waiting.spawn(async move {
            let sent = Instant::now();
            first_byte(stream, "files.localhost").await - sent
        });
    }
    let mut times = Vec::with_capacity(count);
    while let Some(time) = waiting.join_next().await {
        times.push(time.expect("request task"));
    }
    times.sort();
    times
}

/// Median, lowest and highest of `values`, in ms.
fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "median {:>7.1}  range {:>7.1} .. {:>7.1}",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let have_python = std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_python {
            eprintln!("wake overhead bench: needs python3; skipped");
            return;
        }
        let rounds = if full {
            env_number("BENCH_ROUNDS", 20)
        } else {
            2
        };
        let concurrent = if full {
            env_number("BENCH_CONCURRENT", 100)
        } else {
            10
        };
        let dir = TempDir::new("bench-wake");
        let directory = site(&dir);
        let config = format!(
            "defaults: {{max_idle: never, wake_timeout: 60s}}
providers:
  - id: local
    type: process
    apps:
      - {{name: files, command: 'exec python3 -m http.server {{port}} --bind 127.0.0.1 --directory {directory}'}}
"
        );
        let path = dir.path("paastis.yml");
        std::fs::write(&path, config).expect("write config");
        let served = support::serve(&path, &[]).await;
        let admin_at = admin_addr(&served).await;
        let admin = TestClient::new(admin_at);
        let admin_host = admin_at.to_string();
        put_to_sleep(&admin, &admin_host).await;

        println!(
            "python3 -m http.server, {rounds} round(s), {concurrent} concurrent, {} CPUs; ms",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "round  listen  direct 1st byte  engine 1  overhead  {concurrent}: median  last  overhead(last)"
        );
        let (mut listens, mut directs, mut ones, mut over_one) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut medians, mut lasts, mut over_last) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (listen, answered) = direct(&directory).await;
            let one = through_engine(served.addr, 1).await[0];
            put_to_sleep(&admin, &admin_host).await;
            let many = through_engine(served.addr, concurrent).await;
            put_to_sleep(&admin, &admin_host).await;
            let median = many[many.len() / 2];
            let last = many[many.len() - 1];
            println!(
                "{round:>5}  {:>6.1}  {:>15.1}  {:>8.1}  {:>8.1}  {:>11.1}  {:>4.1}  {:>14.1}",
                ms(listen),
                ms(answered),
                ms(one),
                ms(one) - ms(listen),
                ms(median),
                ms(last),
                ms(last) - ms(listen)
            );
            listens.push(ms(listen));
            directs.push(ms(answered));
            ones.push(ms(one));
            over_one.push(ms(one) - ms(listen));
            medians.push(ms(median));
            lasts.push(ms(last));
            over_last.push(ms(last) - ms(listen));
        }
        println!("direct listen            {}", summary(listens));
        println!("direct first byte        {}", summary(directs));
        println!("engine, 1 request        {}", summary(ones));
        println!("overhead, 1 request      {}", summary(over_one));
        println!("engine, {concurrent} (median)    {}", summary(medians));
        println!("engine, {concurrent} (last)      {}", summary(lasts));
        println!("overhead, {concurrent} (last)    {}", summary(over_last));
    });
}
