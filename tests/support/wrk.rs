//! wrk, for the benchmarks: requests per second on one host through an engine.

use std::net::SocketAddr;

/// Whether wrk is installed.
pub fn installed() -> bool {
    std::process::Command::new("sh")
        .args(["-c", "command -v wrk"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs wrk against `addr` with `Host: host` and returns its requests per second; reports
/// non-2xx answers and socket errors on stderr.
pub async fn requests_per_second(
    addr: SocketAddr,
    host: &str,
    seconds: u64,
    connections: u64,
    threads: u64,
) -> f64 {
    let output = tokio::process::Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "-H",
            &format!("Host: {host}"),
            &format!("http://{addr}/"),
        ])
        .output()
        .await
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .collect();
    if !errors.is_empty() {
        eprintln!("wrk reported: {errors:?}");
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}
