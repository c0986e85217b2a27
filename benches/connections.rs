//! Connection memory benchmark: what the engine's resident memory grows by per idle
//! keep-alive client connection, and per open WebSocket tunnel.
//!
//! The real `paastis` binary serves two awake apps of a fake Scalingo account: `shop`, whose
//! server answers every request, and `ws`, whose URL is a WebSocket server in this process
//! that accepts the upgrade and then stays quiet. Each round starts a fresh engine per
//! measure (freed memory an allocator keeps would hide the next measure's), reads its VmRSS
//! (/proc/PID/status) once both apps answer, then opens the connections, 100 at a time: each
//! HTTP one sends one request, reads the answer and stays open; each tunnel completes its
//! upgrade and stays open. VmRSS again once all are open; the delta over the count is the
//! figure (it includes the upstream connections the proxy pools for them, 100 at most).
//! Beside them, as many connections that send nothing: what a connection costs before the
//! HTTP server reads its first request. A sample of the connections then sends a second request (or a message) to check
//! they were all still open when measured.
//!
//! `scripts/bench-connections.sh` runs it (`cargo bench --bench connections -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3), BENCH_CONNECTIONS (10000),
//! BENCH_TUNNELS (1000). Without `--bench` (as `cargo test --all-targets` runs it) it does
//! one round of 500 connections and 100 tunnels.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::bench::{env_number, median_and_spread, rss_kib};
use support::fakes::scalingo::FakeScalingo;
use support::{Served, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "tk-us-bench-0001";

/// Connections opened at once (each opened, asked once, then kept).
const OPENING: usize = 100;

/// The soft limit on open files of this process (its children inherit it).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

/// Waits for the engine's memory to settle (allocator and kernel bookkeeping after a burst).
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_kib(pid)
}

/// The engine: the fake account's apps, client limits raised for one client IP holding all
/// the connections, and kept-alive connections allowed to stay silent for the whole run.
async fn engine(dir: &TempDir, fake: &FakeScalingo, connections: usize) -> Served {
    let limit = connections + 1000;
    let config = format!(
        "defaults: {{max_idle: never}}
proxy: {{max_connections: {limit}, max_connections_per_ip: {limit}, header_read_timeout: 10m}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}'}}
",
        api = fake.url
    );
    let path = dir.path("paastis.yml");
    std::fs::write(&path, config).expect("write config");
    let served = support::serve(&path, &[]).await;
    // Discovery: both apps routed.
    for host in ["shop.localhost", "ws.localhost"] {
        let mut routed = false;
        for _ in 0..200 {
            let mut stream = TcpStream::connect(served.addr).await.expect("connect");
            if ask(&mut stream, host).await.is_some_and(|s| s != 404) {
                routed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(routed, "{host} is routed");
    }
    served
}

/// One request on `stream`, its answer read whole; the answer's status, or `None` when the
/// connection failed or closed.
async fn ask(stream: &mut TcpStream, host: &str) -> Option<u16> {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buffer = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())?;
        if buffer.len() >= end + 4 + length {
            return Some(status);
        }
    }
}

/// Runs `open` `count` times, `OPENING` at a time; what each opened, in any order.
async fn in_batches<T, F, Fut>(count: usize, open: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut opened = Vec::with_capacity(count);
    let mut left = count;
    while left > 0 {
        let batch = left.min(OPENING);
        left -= batch;
        let mut opening = JoinSet::new();
        for _ in 0..batch {
            opening.spawn(open());
        }
        while let Some(one) = opening.join_next().await {
            opened.push(one.expect("opening task"));
        }
    }
    opened
}

/// Opens `count` connections to `addr`, `OPENING` at a time, each answered once; panics
/// unless every one is answered 200.
async fn open_http(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    in_batches(count, move || async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let status = ask(&mut stream, "shop.localhost").await;
        assert_eq!(status, Some(200), "a connection's first request");
        stream
    })
    .await
}

/// Opens `count` connections to `addr` that send nothing (yet).
async fn open_silent(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        open.push(TcpStream::connect(addr).await.expect("connect"));
    }
    open
}

type Tunnel = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens `count` WebSocket tunnels through `addr` to the `ws` app, `OPENING` at a time.
async fn open_tunnels(addr: SocketAddr, count: usize) -> Vec<Tunnel> {
    in_batches(count, move || async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (tunnel, answer) = tokio_tungstenite::client_async("ws://ws.localhost/", stream)
            .await
            .expect("upgrade through the proxy");
        assert_eq!(answer.status(), 101);
        tunnel
    })
    .await
}

/// The `ws` app's server: accepts the upgrade, then only answers a text message with the
/// same text (the check that a tunnel is still open), until the client closes.
async fn quiet_websocket_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let addr = listener.local_addr().expect("ws addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// One measure: (RSS before, RSS with all open), in KiB.
struct Measure {
    before: u64,
    after: u64,
}

impl Measure {
    fn per(&self, count: usize) -> f64 {
        self.after.saturating_sub(self.before) as f64 / count as f64
    }
}

/// Idle keep-alive connections (each answered once), or, `silent`, connections accepted
/// that have sent nothing yet (what a connection costs before its HTTP server).
async fn measure_http(fake: &FakeScalingo, count: usize, silent: bool) -> Measure {
    let dir = TempDir::new("bench-connections");
    let mut served = engine(&dir, fake, count).await;
    let pid = served.child.id().expect("engine pid");
    let before = settled_rss(pid).await;
    let mut open = if silent {
        open_silent(served.addr, count).await
    } else {
        open_http(served.addr, count).await
    };
    let after = settled_rss(pid).await;
    // Every tenth connection asks (again): they were all still open when measured.
    for stream in open.iter_mut().step_by(10) {
        assert_eq!(
            ask(stream, "shop.localhost").await,
            Some(200),
            "a request on a connection held open"
        );
    }
    drop(open);
    let _ = served.child.kill().await;
    Measure { before, after }
}

async fn measure_tunnels(fake: &FakeScalingo, count: usize) -> Measure {
    let dir = TempDir::new("bench-tunnels");
    let mut served = engine(&dir, fake, count).await;
    let pid = served.child.id().expect("engine pid");
    let before = settled_rss(pid).await;
    let mut open = open_tunnels(served.addr, count).await;
    let after = settled_rss(pid).await;
    for tunnel in open.iter_mut().step_by(10) {
        tunnel
            .send(Message::text("still open"))
            .await
            .expect("send through a tunnel");
        let echoed = tunnel.next().await;
        assert!(
            matches!(echoed, Some(Ok(Message::Text(ref text))) if text.as_str() == "still open"),
            "a tunnel's message comes back: {echoed:?}"
        );
    }
    drop(open);
    let _ = served.child.kill().await;
    Measure { before, after }
}

fn main() {
    let full = support::bench::full();
    let runtime = support::bench::runtime();
    runtime.block_on(async move {
        let rounds = if full {
            env_number("BENCH_ROUNDS", 3)
        } else {
            1
        };
        let mut connections = if full {
            env_number("BENCH_CONNECTIONS", 10_000)
        } else {
            500
        };
        let mut tunnels = if full {
            env_number("BENCH_TUNNELS", 1000)
        } else {
            100
        };
        // This process holds each client socket, and each tunnel's upstream side too; the
        // engine (which inherits the limit) one socket per client and per tunnel upstream.
        let files = open_files_limit();
        let room = files.saturating_sub(200);
        if connections > room || 2 * tunnels > room {
            connections = connections.min(room);
            tunnels = tunnels.min(room / 2);
            eprintln!(
                "open files limited to {files} (raise with `ulimit -n`): {connections} connections, {tunnels} tunnels"
            );
        }

        let fake = FakeScalingo::start(TOKEN).await;
        fake.add_app("shop", &[("web", 1)], true).await;
        fake.add_app("ws", &[("web", 1)], true).await;
        fake.set_public_url("ws", &quiet_websocket_server().await);

        println!(
            "{connections} idle keep-alive connections, {tunnels} WebSocket tunnels, {rounds} round(s), {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("VmRSS in KiB: before, with all open, and the difference per connection");
        println!(
            "round  {:>26}  {:>26}  {:>26}",
            "keep-alive", "silent", "WebSocket tunnels"
        );
        let mut per_connection = Vec::new();
        let mut per_silent = Vec::new();
        let mut per_tunnel = Vec::new();
        let row = |m: &Measure, count: usize| {
            format!("{:>8} {:>8} {:>8.2}", m.before, m.after, m.per(count))
        };
        for round in 1..=rounds {
            let http = measure_http(&fake, connections, false).await;
            let silent = measure_http(&fake, connections, true).await;
            let ws = measure_tunnels(&fake, tunnels).await;
            per_connection.push(http.per(connections));
            per_silent.push(silent.per(connections));
            per_tunnel.push(ws.per(tunnels));
            println!(
                "{round:>5}  {:>26}  {:>26}  {:>26}",
                row(&http, connections),
                row(&silent, connections),
                row(&ws, tunnels)
            );
        }
        let (median, low, high) = median_and_spread(&mut per_connection);
        println!("per idle keep-alive connection: median {median:.2} KiB (range {low:.2}-{high:.2})");
        let (median, low, high) = median_and_spread(&mut per_silent);
        println!("per silent connection (no request yet): median {median:.2} KiB (range {low:.2}-{high:.2})");
        let (median, low, high) = median_and_spread(&mut per_tunnel);
        println!("per open WebSocket tunnel: median {median:.2} KiB (range {low:.2}-{high:.2})");
    });
}
