//! Registry benchmark: requests per second on an awake app with the memory registry and with
//! the Redis registry, side by side in one run (rounds alternate, so both see the same
//! machine). The app is a fake Scalingo account's app (shared between instances under
//! Redis, so the Redis run exercises the write-behind path); wrk loads each engine in turn.
//!
//! `scripts/bench-registry.sh` runs it (`cargo bench --bench registry -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION (seconds, 10),
//! BENCH_CONNECTIONS (32), BENCH_THREADS (2). Without `--bench` (as `cargo test
//! --all-targets` runs it) it does one short round.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::TestEngine;
use support::bench::env_number;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::wrk::requests_per_second as wrk;

const TOKEN: &str = "tk-us-bench-0001";

fn config(fake: &FakeScalingo, registry: &str) -> String {
    format!(
        "defaults: {{max_idle: never}}
registry: {registry}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}'}}
",
        api = fake.url
    )
}

fn main() {
    let full = support::bench::full();
    let runtime = support::bench::runtime();
    runtime.block_on(async move {
        let have = |tool: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !have("wrk") || !have("redis-server") {
            eprintln!("registry bench: needs wrk and redis-server; skipped");
            return;
        }
        let rounds = if full {
            env_number("BENCH_ROUNDS", 3)
        } else {
            1
        };
        let seconds = if full {
            env_number("BENCH_DURATION", 10)
        } else {
            1
        };
        let connections = env_number("BENCH_CONNECTIONS", 32);
        let threads = env_number("BENCH_THREADS", 2);

        let redis = RedisServer::start().await;
        let fake = FakeScalingo::start(TOKEN).await;
        fake.add_app("shop", &[("web", 1)], true).await;
        let memory = TestEngine::start(&config(&fake, "{type: memory}")).await;
        let shared = TestEngine::start(&config(
            &fake,
            &format!("{{type: redis, url: '{}', prefix: bench}}", redis.url()),
        ))
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            shared.lifecycle.registry().health().ok,
            "Redis registry connected"
        );
        assert!(shared.app("shop").coordinated(), "the app is shared");

        println!(
            "wrk -t{threads} -c{connections} -d{seconds}s, {rounds} round(s), {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("round  memory req/s  redis req/s  redis/memory");
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            // Warm both, then measure in alternating order.
            wrk(memory.addr, "shop.localhost", 1, connections, threads).await;
            wrk(shared.addr, "shop.localhost", 1, connections, threads).await;
            let (m, r) = if round % 2 == 1 {
                let m = wrk(memory.addr, "shop.localhost", seconds, connections, threads).await;
                (
                    m,
                    wrk(shared.addr, "shop.localhost", seconds, connections, threads).await,
                )
            } else {
                let r = wrk(shared.addr, "shop.localhost", seconds, connections, threads).await;
                (
                    wrk(memory.addr, "shop.localhost", seconds, connections, threads).await,
                    r,
                )
            };
            let ratio = r / m;
            ratios.push(ratio);
            println!("{round:>5}  {m:>12.0}  {r:>11.0}  {ratio:>12.3}");
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        println!("median redis/memory: {median:.3}");
        memory.stop().await;
        shared.stop().await;
    });
}
