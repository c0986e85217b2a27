//! The simulated day (`scripts/simulate-day.py`), shortened: 20 review apps, a seeded trace
//! of visits compressed into 40 seconds, against the real binary. The script checks zero
//! failed requests, every app asleep whenever idle past its max idle, and the savings report
//! against the trace's ground truth; it exits non-zero when one fails.

use std::process::Command;

#[test]
fn a_compressed_day_of_review_apps_sleeps_on_time_and_reports_its_savings() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/simulate-day.py");
    let output = Command::new("python3")
        .args([
            script,
            "--binary",
            env!("CARGO_BIN_EXE_paastis"),
            "--apps",
            "20",
            "--day-seconds",
            "40",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let figures: serde_json::Value = serde_json::from_str(&stdout).expect("JSON figures");
    assert_eq!(figures["failed_requests"], 0, "{figures}");
    assert_eq!(figures["late_samples"], 0, "{figures}");
    assert_eq!(figures["savings_match"], true, "{figures}");
    // The trace did something: visits, sleeps, and states checked while idle.
    assert!(figures["requests"].as_u64().unwrap_or(0) > 100, "{figures}");
    assert!(figures["sleeps"].as_u64().unwrap_or(0) >= 10, "{figures}");
    assert!(
        figures["state_samples_checked"].as_u64().unwrap_or(0) > 100,
        "{figures}"
    );
}
