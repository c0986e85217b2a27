//! Scale benchmark: what the engine costs at rest as the number of managed apps grows. For
//! each size, a fake Scalingo account lists that many stopped apps; the real `paastis`
//! binary manages them (discovery every `BENCH_DISCOVERY_EVERY`, the catalog in a SQLite
//! file, as by default) and nobody sends a request. Measured on the engine's process:
//!
//! * startup: from spawn to the proxy's address in the log (the first discovery done and
//!   the apps registered: the engine discovers once before serving);
//! * CPU at rest: user + system time over `BENCH_DURATION` seconds, after a warm-up of two
//!   discoveries (`/proc/PID/stat`), in milliseconds per second;
//! * memory: resident set size at the end (`VmRSS`), and per managed app against the
//!   account with no app.
//!
//! `scripts/bench-scale.sh` runs it (`cargo bench --bench scale -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_SCALE_APPS (`0,100,1000,10000,100000`),
//! BENCH_ROUNDS (3), BENCH_DURATION (seconds, 30), BENCH_DISCOVERY_EVERY (`5s`), PAASTIS_BIN
//! (another build to measure instead of this one), BENCH_PROFILE (a directory: `perf
//! record` of the engine over each window goes there). Without
//! `--bench` (as `cargo test --all-targets` runs it) it does one short round of 0 and 100
//! apps.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use support::bench::{env_number, median_and_spread, rss_kib};
use tokio::time::Instant;

use support::fakes::scalingo::FakeScalingo;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "tk-us-bench-scale-0001";

/// One engine's figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Spawn to serving.
    startup: Duration,
    /// CPU time per second of wall time, at rest.
    cpu_ms_per_s: f64,
    /// Resident set at the end, KiB.
    rss_kib: u64,
}

/// User + system time of the process (every thread, finished ones included), in clock
/// ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // After the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |index: usize| fields[index].parse::<u64>().expect("stat number");
    number(11) + number(12)
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

async fn measure(apps: usize, seconds: u64, every: &str, tick: f64) -> Sample {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_sleeping_apps("review-", apps).await;
    let dir = support::TempDir::new("bench-scale");
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            "discovery: {{every: {every}}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}'}}
",
            api = fake.url
        ),
    )
    .expect("write config");
    let database = format!("sqlite://{}", dir.path("paastis.db").display());
    let started = Instant::now();
    let mut command = support::paastis();
    if let Ok(binary) = std::env::var("PAASTIS_BIN") {
        // Another build to measure (same environment as `support::paastis` gives).
        let mut other = tokio::process::Command::new(binary);
        other
            .env("PAASTIS_ADMIN__LISTEN", "127.0.0.1:0")
            .kill_on_drop(true);
        command = other;
    }
    let mut child = command
        .args(["serve", "--config", &config.to_string_lossy()])
        .args(["--listen", "127.0.0.1:0"])
        .env("PAASTIS_DATABASE__URL", &database)
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paastis");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let startup = tokio::time::timeout(Duration::from_secs(600), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"addr\"") {
                return started.elapsed();
            }
        }
        panic!("paastis ended before serving");
    })
    .await
    .expect("paastis serves within 10 minutes");
    // Keep reading its log, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // Two discoveries, and the catalog's first writes, before measuring.
    let every_seconds = every
        .trim_end_matches('s')
        .parse::<u64>()
        .unwrap_or(5)
        .max(1);
    tokio::time::sleep(Duration::from_secs((2 * every_seconds).max(5))).await;
    let (cpu0, at0) = (cpu_ticks(pid), Instant::now());
    let profile = std::env::var("BENCH_PROFILE").ok().map(|dir| {
        // The engine's stacks over the window, for `perf report`.
        std::process::Command::new("perf")
            .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
            .arg(format!("{dir}/scale-{apps}.perf.data"))
            .args(["--", "sleep", &seconds.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run perf record")
    });
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    if let Some(mut profile) = profile {
        let _ = profile.wait();
    }
    let (cpu1, at1) = (cpu_ticks(pid), Instant::now());
    let rss = rss_kib(pid);
    let _ = child.kill().await;
    let cpu_ms_per_s = (cpu1 - cpu0) as f64 / tick * 1000.0 / (at1 - at0).as_secs_f64();
    Sample {
        startup,
        cpu_ms_per_s,
        rss_kib: rss,
    }
}

fn main() {
    let full = support::bench::full();
    let runtime = support::bench::runtime();
    runtime.block_on(async move {
        let sizes: Vec<usize> = std::env::var("BENCH_SCALE_APPS")
            .unwrap_or_else(|_| {
                if full {
                    "0,100,1000,10000,100000".into()
                } else {
                    "0,100".into()
                }
            })
            .split(',')
            .filter_map(|size| size.trim().parse().ok())
            .collect();
        let rounds = if full {
            env_number("BENCH_ROUNDS", 3)
        } else {
            1
        };
        let seconds = if full {
            env_number("BENCH_DURATION", 30)
        } else {
            2
        };
        let every = std::env::var("BENCH_DISCOVERY_EVERY").unwrap_or_else(|_| "5s".into());
        let tick = ticks_per_second();
        println!(
            "{} CPUs; discovery every {every}; {seconds} s at rest per sample; {rounds} round(s)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("round     apps  startup ms  CPU ms/s  RSS MiB");
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sizes.len()];
        for round in 1..=rounds {
            for (index, &apps) in sizes.iter().enumerate() {
                let sample = measure(apps, seconds, &every, tick).await;
                println!(
                    "{round:>5} {apps:>8} {:>11.0} {:>9.2} {:>8.1}",
                    sample.startup.as_secs_f64() * 1000.0,
                    sample.cpu_ms_per_s,
                    sample.rss_kib as f64 / 1024.0,
                );
                samples[index].push(sample);
            }
        }
        println!("\nmedians (min-max) over {rounds} round(s)");
        println!("    apps  startup ms          CPU ms/s             RSS MiB            KiB per app");
        let baseline = sizes
            .iter()
            .position(|&apps| apps == 0)
            .map(|index| {
                let mut rss: Vec<f64> = samples[index].iter().map(|s| s.rss_kib as f64).collect();
                median_and_spread(&mut rss).0
            });
        for (index, &apps) in sizes.iter().enumerate() {
            let mut startup: Vec<f64> = samples[index]
                .iter()
                .map(|s| s.startup.as_secs_f64() * 1000.0)
                .collect();
            let mut cpu: Vec<f64> = samples[index].iter().map(|s| s.cpu_ms_per_s).collect();
            let mut rss: Vec<f64> = samples[index]
                .iter()
                .map(|s| s.rss_kib as f64 / 1024.0)
                .collect();
            let (s, s0, s1) = median_and_spread(&mut startup);
            let (c, c0, c1) = median_and_spread(&mut cpu);
            let (r, r0, r1) = median_and_spread(&mut rss);
            let per_app = match baseline {
                Some(base) if apps > 0 => format!("{:.2}", (r * 1024.0 - base) / apps as f64),
                _ => "-".into(),
            };
            println!(
                "{apps:>8} {s:>7.0} ({s0:.0}-{s1:.0}) {c:>8.2} ({c0:.2}-{c1:.2}) {r:>8.1} ({r0:.1}-{r1:.1}) {per_app:>10}"
            );
        }
    });
}
