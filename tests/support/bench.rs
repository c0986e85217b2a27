//! What the benchmarks share: their knobs from the environment, the engine's memory as the
//! kernel counts it, and medians with their spread.
#![allow(dead_code)]

/// The environment variable `name` as a number, or `default` (unset or not a number).
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of process `pid` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Median, lowest and highest of `values` (sorted in place; at least one value).
pub fn median_and_spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// Whether the benchmark runs whole (`--bench`) rather than one short round (as
/// `cargo test --all-targets` runs it).
pub fn full() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The benchmark's own runtime: one worker, so it leaves the other CPUs to what it measures.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}
