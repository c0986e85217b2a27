//! The live admin API against its own OpenAPI document: schemathesis (from PyPI; installed by
//! `scripts/test.sh`) generates requests for every operation from `/api/openapi.json` and
//! checks that no answer is a 5xx and that every answer (status, content type, headers,
//! body) is what the document says. Fails, never skips, when schemathesis is missing.

mod support;

use support::{TempDir, TestEngine};

const TOKEN: &str = "schema-token-0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_live_api_matches_its_openapi_document() {
    let found = std::process::Command::new("schemathesis")
        .arg("--version")
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "schemathesis is missing: run ./scripts/test.sh, which installs it (pip install schemathesis)"
    );
    // From a file, so the configuration endpoints reload and compare for real.
    let dir = TempDir::new("schemathesis");
    let file = dir.path("paastis.yml");
    std::fs::write(
        &file,
        format!(
            "admin: {{token: {TOKEN}}}\nreload: {{watch: false}}\n\
             defaults: {{max_idle: 10m, wake_timeout: 20s}}\n{}",
            support::local_apps(&[("web", ""), ("api", "")])
        ),
    )
    .expect("write the configuration");
    // The live event stream never ends: schemathesis reads it until it is silent for a
    // moment (its heartbeat is far off), instead of for its whole request timeout.
    std::fs::write(
        dir.path("schemathesis.toml"),
        "[[operations]]\ninclude-path = \"/api/v1/events/stream\"\nrequest-timeout = 0.5\n",
    )
    .expect("write the schemathesis configuration");
    let engine = TestEngine::start_file(&file, &Default::default()).await;
    let schema = format!("http://{}/api/openapi.json", engine.admin_addr);
    // Every operation the served document lists must be run.
    let document: serde_json::Value = reqwest::get(&schema)
        .await
        .expect("the OpenAPI document answers")
        .json()
        .await
        .expect("the OpenAPI document is JSON");
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .filter_map(|path| path.as_object())
        .map(|path| {
            path.keys()
                .filter(|method| {
                    ["get", "put", "post", "delete", "patch"].contains(&method.as_str())
                })
                .count()
        })
        .sum();
    let output = tokio::process::Command::new("schemathesis")
        .current_dir(&dir.0)
        .args(["run", &schema, "--header"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "40",
            "--seed",
            "20261201",
            // One worker: CPython 3.11 can fail parsing a large module in two threads at
            // once ("AST constructor recursion depth mismatch"), inside the tool itself.
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .env("HOME", &dir.0)
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{operations} selected / {operations} total")),
        "not every one of the {operations} operations was tested:\n{stdout}"
    );
    assert!(!stdout.contains(TOKEN), "the token was printed");
    println!("{stdout}");
    engine.stop().await;
}
