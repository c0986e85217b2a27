//! Spaces benchmark: what many tenants cost each request, and how soon a space created
//! through the API serves.
//!
//! Two engines in hosted mode, side by side in one run: one with a single API-created
//! space, one with that space and `BENCH_SPACES` (500) more. wrk loads the same app (a fake
//! Heroku account's `shop`, in the space created last) on each in turn, rounds alternating,
//! and the ratio of their requests per second is printed. Then `BENCH_CREATES` (20) spaces
//! are created one after another, each timed from the POST until the first request to its
//! host is answered 200.
//!
//! `scripts/bench-spaces.sh` runs it (`cargo bench --bench spaces -- --bench`); see
//! docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION (seconds, 10),
//! BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_SPACES (500), BENCH_CREATES (20).
//! Without `--bench` it does one short round with few spaces.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::bench::env_number;
use support::fakes::heroku::FakeHeroku;
use support::wrk::requests_per_second as wrk;
use support::{TestClient, TestEngine};
use tokio::time::Instant;

const ADMIN: &str = "admin-token-bench-0001";
const HEROKU_TOKEN: &str = "heroku-bench-token-0001";

fn config() -> String {
    format!(
        "admin: {{token: {ADMIN}}}
database: {{url: 'sqlite::memory:'}}
domains: [proxy.test]
hosted: {{custom_api_urls: true}}
"
    )
}

fn env() -> HashMap<String, String> {
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    HashMap::from([(
        "PAASTIS_MASTER_KEY".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
    )])
}

async fn create(engine: &TestEngine, document: &Value) {
    let answer = TestClient::new(engine.admin_addr)
        .send(
            "POST",
            "localhost",
            "/api/v1/spaces",
            &[
                ("authorization", &format!("Bearer {ADMIN}")),
                ("content-type", "application/json"),
            ],
            bytes::Bytes::from(document.to_string()),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn with_shop(id: &str, fake: &FakeHeroku) -> Value {
    json!({"id": id, "domains": [format!("{id}.test")], "defaults": {"max_idle": "never"},
        "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]})
}

fn main() {
    let full = support::bench::full();
    let runtime = support::bench::runtime();
    runtime.block_on(async move {
        if !support::wrk::installed() {
            eprintln!("spaces bench: needs wrk; skipped");
            return;
        }
        let pick = |name, full_value, short| if full { env_number(name, full_value) } else { short };
        let rounds = pick("BENCH_ROUNDS", 3, 1);
        let seconds = pick("BENCH_DURATION", 10, 1);
        let spaces = pick("BENCH_SPACES", 500, 10);
        let creates = pick("BENCH_CREATES", 20, 2);
        let connections = env_number("BENCH_CONNECTIONS", 32);
        let threads = env_number("BENCH_THREADS", 2);

        let fake = FakeHeroku::start(HEROKU_TOKEN).await;
        fake.add_app("shop", &[("web", 1)], true).await;
        let one = TestEngine::start_with_env(&config(), &env()).await;
        let many = TestEngine::start_with_env(&config(), &env()).await;
        let filled = Instant::now();
        for index in 0..spaces {
            let id = format!("tenant-{index}");
            create(&many, &json!({"id": id, "domains": [format!("{id}.test")]})).await;
        }
        let filled = filled.elapsed();
        create(&one, &with_shop("target", &fake)).await;
        create(&many, &with_shop("target", &fake)).await;
        let host = "shop.target.test";
        for engine in [&one, &many] {
            let answer = TestClient::new(engine.addr).get(host, "/").await;
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        println!(
            "{spaces} spaces created in {filled:.2?} ({:.1} ms each); {} CPUs",
            filled.as_secs_f64() * 1000.0 / spaces.max(1) as f64,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("wrk -t{threads} -c{connections} -d{seconds}s on {host}, {rounds} round(s)");
        println!("round  1 space req/s  {} spaces req/s  many/one", spaces + 1);
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            wrk(one.addr, host, 1, connections, threads).await;
            wrk(many.addr, host, 1, connections, threads).await;
            let (a, b) = if round % 2 == 1 {
                let a = wrk(one.addr, host, seconds, connections, threads).await;
                (a, wrk(many.addr, host, seconds, connections, threads).await)
            } else {
                let b = wrk(many.addr, host, seconds, connections, threads).await;
                (wrk(one.addr, host, seconds, connections, threads).await, b)
            };
            let ratio = b / a;
            ratios.push(ratio);
            println!("{round:>5}  {a:>13.0}  {b:>16.0}  {ratio:>8.3}");
        }
        ratios.sort_by(f64::total_cmp);
        println!("median many/one: {:.3}", ratios[ratios.len() / 2]);

        // Created, then served: from the POST to the first 200 on its host.
        let mut times = Vec::new();
        let client = TestClient::new(many.addr);
        for index in 0..creates {
            let id = format!("fresh-{index}");
            let started = Instant::now();
            create(&many, &with_shop(&id, &fake)).await;
            let answer = client.get(&format!("shop.{id}.test"), "/").await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        let max = times.last().copied().unwrap_or(Duration::ZERO);
        println!(
            "create + first request served ({creates} spaces, with {} others): median {median:.1?}, max {max:.1?}",
            spaces + 1
        );
        one.stop().await;
        many.stop().await;
    });
}
