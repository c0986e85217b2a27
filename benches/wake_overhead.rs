//! Wake overhead benchmark: what the engine adds to a wake beyond the app's own start, for
//! the `process` provider and an ordinary server, `python3 -m http.server`.
//!
//! Each round measures, side by side:
//! - direct: this process spawns the server itself, then attempts connections (1 ms apart)
//!   until one is accepted: the time the app takes to listen (and the first byte of the
//!   answer to a request sent on that connection, the server's own first-request time);
//! - through the real `paastis` binary, the app asleep: one request sent by a program
//!   (`Accept: */*`, so it is held until the app answers rather than given the waiting
//!   page), from sending it to the first byte of the answer; then, the app stopped again,
//!   100 such requests at once, each on its own connection (the median and the last).
//!
//! Overheads: one request's time, and the last of 100, minus the round's direct listen
//! time. As two starts of the same server differ by tens of milliseconds on a busy machine,
//! the run also probes the app's port (1 ms apart) during each wake through the engine:
//! "after listened" is the first byte minus the moment the port first accepted, in that
//! same wake (what the engine adds once the app listens: readiness polling, forwarding, and
//! the server's own first answer). Between wakes the app is stopped through the admin API
//! (`POST /api/v1/apps/local/files/stop`) and the run waits until it is asleep. With
//! BENCH_BASELINE_BIN (another build of `paastis`, e.g. an earlier commit's) both engines
//! are measured, in alternating order, in the same rounds.
//!
//! `scripts/bench-wake.sh` runs it (`cargo bench --bench wake_overhead -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (20), BENCH_CONCURRENT (100),
//! BENCH_BASELINE_BIN. Without `--bench` (as `cargo test --all-targets` runs it) it does
//! two rounds of 1 and 10 requests.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use support::bench::env_number;
use support::{TempDir, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::task::JoinSet;
use tokio::time::Instant;

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
async fn first_byte(stream: TcpStream, host: &str) -> Instant {
    try_first_byte(stream, host)
        .await
        .unwrap_or_else(|error| panic!("no answer: {error}"))
}

/// [`first_byte`], or the error when the connection was reset or closed without an answer.
async fn try_first_byte(mut stream: TcpStream, host: &str) -> std::io::Result<Instant> {
    let request =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut first = [0u8; 1];
    if stream.read(&mut first).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let at = Instant::now();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    let head = String::from_utf8_lossy(&rest);
    assert!(
        head.starts_with("TTP/1.1 200") || head.starts_with("TTP/1.0 200"),
        "answered 200: {}{head}",
        first[0] as char
    );
    Ok(at)
}

/// Requests the server's own client would send at once to serve a burst without
/// overflowing its listen backlog (Python's is 5).
const DIRECT_AT_ONCE: usize = 4;

/// (a): spawns the server on a free port, connects until accepted (1 ms apart), then sends
/// one request on that connection, then `burst` more, [`DIRECT_AT_ONCE`] at a time, each
/// on its own connection. Returns the time to listen, the time to the first byte of the
/// first answer and the time to the first byte of the burst's last answer, all from the
/// spawn.
async fn direct(directory: &str, burst: usize) -> (Duration, Duration, Duration) {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
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
    let host = format!("127.0.0.1:{port}");
    let answered = first_byte(stream, &host).await - started;
    let mut last = answered;
    let mut sent = 0;
    while sent < burst {
        let mut batch = JoinSet::new();
        for _ in 0..DIRECT_AT_ONCE.min(burst - sent) {
            let host = host.clone();
            batch.spawn(async move {
                let stream = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect to the server");
                first_byte(stream, &host).await
            });
            sent += 1;
        }
        while let Some(at) = batch.join_next().await {
            last = last.max(at.expect("request task") - started);
        }
    }
    let _ = child.kill().await;
    (listening, answered, last)
}

/// A `paastis serve` of the binary `bin` on fixed loopback ports, its one app asleep.
struct Engine {
    /// Its label in the output.
    label: String,
    /// The running engine (killed on drop).
    child: tokio::process::Child,
    /// The proxy's address.
    proxy: SocketAddr,
    /// The app's own address (its fixed port).
    app: SocketAddr,
    /// The admin API's client, and its `Host`.
    admin: TestClient,
    admin_host: String,
}

impl Engine {
    async fn start(label: &str, bin: &str, dir: &TempDir, directory: &str) -> Engine {
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let app = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin_at = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "listen: {proxy}
admin: {{listen: '{admin_at}'}}
defaults: {{max_idle: never, wake_timeout: 60s}}
providers:
  - id: local
    type: process
    apps:
      - {{name: files, port: {port}, command: 'exec python3 -m http.server {{port}} --bind 127.0.0.1 --directory {directory}'}}
",
            port = app.port()
        );
        let path = dir.path(&format!("paastis-{label}.yml"));
        std::fs::write(&path, config).expect("write config");
        let mut command = Command::new(bin);
        for (name, _) in std::env::vars() {
            if name.starts_with("PAASTIS_") || name == "RUST_LOG" || name == "LOG_LEVEL" {
                command.env_remove(name);
            }
        }
        let child = command
            .args(["serve", "--config", &path.to_string_lossy()])
            .env("PAASTIS_DATABASE__URL", "sqlite::memory:")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn paastis");
        let admin = TestClient::new(admin_at);
        let admin_host = admin_at.to_string();
        for _ in 0..500 {
            if TcpStream::connect(admin_at).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let engine = Engine {
            label: label.to_owned(),
            child,
            proxy,
            app,
            admin,
            admin_host,
        };
        engine.put_to_sleep().await;
        engine
    }

    /// The app's state through the admin API.
    async fn state(&self) -> String {
        let answer = self
            .admin
            .get(&self.admin_host, "/api/v1/apps/local/files")
            .await;
        answer.json()["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Stops the app through the admin API (when awake) and waits until it is asleep.
    async fn put_to_sleep(&self) {
        if self.state().await == "awake" {
            let answer = self
                .admin
                .send(
                    "POST",
                    &self.admin_host,
                    "/api/v1/apps/local/files/stop",
                    &[],
                    Bytes::new(),
                )
                .await;
            assert_eq!(answer.status, 202, "stop: {}", answer.text());
        }
        for _ in 0..500 {
            if self.state().await == "asleep" {
                // The port freed and the stop recorded before the next wake.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the app did not go to sleep");
    }

    /// (b): `count` requests at once, each on its own connection, for the sleeping app.
    /// Returns each one's time from sending to the first byte of its answer, sorted; the app
    /// is asleep again after.
    ///
    /// Also returns when the app's port first accepted a connection, from the first send:
    /// this process probes it every millisecond meanwhile, so the time the engine adds
    /// after the app listens is seen in the same wake.
    async fn wake(&self, count: usize) -> (Vec<Duration>, Duration) {
        let mut connected = Vec::with_capacity(count);
        for _ in 0..count {
            connected.push(
                TcpStream::connect(self.proxy)
                    .await
                    .expect("connect to the engine"),
            );
        }
        let start = Instant::now();
        let app = self.app;
        let listened = tokio::spawn(async move {
            loop {
                if TcpStream::connect(app).await.is_ok() {
                    return start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(60), "the app listens");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
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
        let listened = listened.await.expect("probe task");
        self.put_to_sleep().await;
        (times, listened)
    }
}

/// Median, lowest and highest of `values`, in ms.
fn summary(values: &[f64]) -> String {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    format!(
        "median {:>7.1}  range {:>7.1} .. {:>7.1}",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

/// One engine's figures, one value per round, in ms.
#[derive(Default)]
struct Series {
    /// One request: from sending to the first byte.
    one: Vec<f64>,
    /// `one` minus the moment the app's port first accepted, in the same wake.
    one_after: Vec<f64>,
    /// `one` minus the round's direct listen time.
    one_over: Vec<f64>,
    /// Concurrent requests: the median first byte.
    median: Vec<f64>,
    /// Concurrent requests: the last first byte.
    last: Vec<f64>,
    /// `last` minus the moment the app's port first accepted, in the same wake.
    last_after: Vec<f64>,
    /// `last` minus the round's direct listen time.
    last_over: Vec<f64>,
    /// `last` minus the round's direct time to serve as many requests, a few at a time.
    last_over_served: Vec<f64>,
}

fn main() {
    let full = support::bench::full();
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
        let concurrent: usize = if full {
            env_number("BENCH_CONCURRENT", 100)
        } else {
            10
        };
        let dir = TempDir::new("bench-wake");
        let directory = site(&dir);
        let mut engines = vec![
            Engine::start("engine", env!("CARGO_BIN_EXE_paastis"), &dir, &directory).await,
        ];
        // Another build side by side (an earlier commit's), rounds alternating.
        if let Ok(bin) = std::env::var("BENCH_BASELINE_BIN") {
            engines.push(Engine::start("baseline", &bin, &dir, &directory).await);
        }

        println!(
            "python3 -m http.server, {rounds} round(s), {concurrent} concurrent, {} CPUs; ms",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "round  engine    direct: listen  1st byte  {concurrent} served | 1 req: listened  1st byte  after  overhead | {concurrent} req: median    last  after(last)  overhead(last)  over served"
        );
        let (mut listens, mut direct_answers, mut direct_served) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut series: Vec<Series> = engines.iter().map(|_| Series::default()).collect();
        for round in 1..=rounds {
            // The first request and `concurrent - 1` more: as many as through the engine.
            let (listen, answered, served) = direct(&directory, concurrent.saturating_sub(1)).await;
            let (listen, answered, served) = (ms(listen), ms(answered), ms(served));
            listens.push(listen);
            direct_answers.push(answered);
            direct_served.push(served);
            let mut order: Vec<usize> = (0..engines.len()).collect();
            if round % 2 == 0 {
                order.reverse();
            }
            for index in order {
                let engine = &engines[index];
                let (one, one_listened) = engine.wake(1).await;
                let (one, one_listened) = (ms(one[0]), ms(one_listened));
                let (many, many_listened) = engine.wake(concurrent).await;
                let median = ms(many[many.len() / 2]);
                let last = ms(many[many.len() - 1]);
                let many_listened = ms(many_listened);
                println!(
                    "{round:>5}  {:<8}  {listen:>14.1}  {answered:>8.1}  {served:>10.1} | {one_listened:>15.1}  {one:>8.1}  {:>5.1}  {:>8.1} | {median:>15.1}  {last:>6.1}  {:>11.1}  {:>14.1}  {:>11.1}",
                    engine.label,
                    one - one_listened,
                    one - listen,
                    last - many_listened,
                    last - listen,
                    last - served
                );
                let figures = &mut series[index];
                figures.one.push(one);
                figures.one_after.push(one - one_listened);
                figures.one_over.push(one - listen);
                figures.median.push(median);
                figures.last.push(last);
                figures.last_after.push(last - many_listened);
                figures.last_over.push(last - listen);
                figures.last_over_served.push(last - served);
            }
        }
        println!("direct: listen                                  {}", summary(&listens));
        println!("direct: first byte                              {}", summary(&direct_answers));
        println!(
            "{:<48}{}",
            format!("direct: {concurrent} requests served, last"),
            summary(&direct_served)
        );
        for (engine, figures) in engines.iter().zip(&series) {
            let label = &engine.label;
            for (what, values) in [
                ("1 request, first byte".to_owned(), &figures.one),
                ("1 request, after the app listened".to_owned(), &figures.one_after),
                ("1 request, overhead".to_owned(), &figures.one_over),
                (format!("{concurrent} requests, median"), &figures.median),
                (format!("{concurrent} requests, last"), &figures.last),
                (format!("{concurrent} requests, last after listened"), &figures.last_after),
                (format!("{concurrent} requests, last overhead"), &figures.last_over),
                (
                    format!("{concurrent} requests, last over direct"),
                    &figures.last_over_served,
                ),
            ] {
                println!("{:<48}{}", format!("{label}: {what}"), summary(values));
            }
        }
        for mut engine in engines {
            let _ = engine.child.kill().await;
        }
    });
}
