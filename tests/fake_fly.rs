//! Sanity checks of the fake Fly.io Machines API: auth, the organisation's app list, the
//! Machines' states and transitions (start, stop, suspend), the `wait` endpoint (200 or 408),
//! 404s, 412 while a Machine changes state, and 429 with `Retry-After`.

mod support;

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use support::fakes::fly::FakeFly;

const TOKEN: &str = "fo1_fake-fly-token";

async fn get(client: &Client, url: String) -> (StatusCode, Value) {
    let response = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(client: &Client, url: String) -> (StatusCode, Value) {
    let response = client.post(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls until `app`'s Machines are in `states` (generous deadline).
async fn wait_states(fake: &FakeFly, app: &str, states: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.states(app) != states {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{app}: {:?} instead of {states:?}",
            fake.states(app)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requires_the_bearer_token() {
    let fake = FakeFly::start(TOKEN).await;
    fake.add_app("acme", "shop", &[("app", true)]).await;
    let client = Client::new();
    let url = format!("{}/v1/apps?org_slug=acme", fake.url);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = get(&client, url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_apps"], 1);
    assert_eq!(body["apps"][0]["name"], "shop");
}

#[tokio::test]
async fn lists_an_organisations_apps_and_their_machines() {
    let fake = FakeFly::start(TOKEN).await;
    fake.add_app("acme", "shop", &[("app", true), ("worker", false)])
        .await;
    fake.add_app("acme", "blog", &[("app", false)]).await;
    fake.add_app("other", "secret", &[("app", false)]).await;
    let client = Client::new();
    let (_, body) = get(&client, format!("{}/v1/apps?org_slug=acme", fake.url)).await;
    let names: Vec<&str> = body["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop", "blog"]);
    let (status, _) = get(&client, format!("{}/v1/apps?org_slug=nope", fake.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, machines) = get(&client, format!("{}/v1/apps/shop/machines", fake.url)).await;
    assert_eq!(status, StatusCode::OK);
    let machines = machines.as_array().unwrap();
    assert_eq!(machines.len(), 2);
    assert_eq!(machines[0]["state"], "started");
    assert_eq!(
        machines[0]["config"]["metadata"]["fly_process_group"],
        "app"
    );
    assert_eq!(machines[0]["config"]["guest"]["memory_mb"], 256);
    assert_eq!(machines[0]["checks"][0]["status"], "passing");
    assert_eq!(machines[1]["state"], "stopped");
    assert_eq!(
        machines[1]["config"]["metadata"]["fly_process_group"],
        "worker"
    );

    let (status, _) = get(&client, format!("{}/v1/apps/nope/machines", fake.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &client,
        format!("{}/v1/apps/shop/machines/nope/start", fake.url),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn machines_start_stop_and_suspend_through_transitional_states() {
    let fake = FakeFly::start(TOKEN).await;
    let server = fake.add_app("acme", "shop", &[("app", false)]).await;
    let id = fake.machines("shop")[0].0.clone();
    let client = Client::new();
    let machine = format!("{}/v1/apps/shop/machines/{id}", fake.url);

    let (status, body) = post(&client, format!("{machine}/start")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["previous_state"], "stopped");
    assert_eq!(fake.states("shop"), ["starting"]);
    assert!(!server.is_up());
    // A stop while it starts is refused: it is changing state.
    let (status, body) = post(&client, format!("{machine}/stop")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    wait_states(&fake, "shop", &["started"]).await;
    assert!(server.is_up());

    let (status, _) = post(&client, format!("{machine}/stop")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.states("shop"), ["stopping"]);
    let (status, _) = post(&client, format!("{machine}/start")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    wait_states(&fake, "shop", &["stopped"]).await;
    assert!(!server.is_up());

    post(&client, format!("{machine}/start")).await;
    wait_states(&fake, "shop", &["started"]).await;
    let (status, _) = post(&client, format!("{machine}/suspend")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.states("shop"), ["suspending"]);
    wait_states(&fake, "shop", &["suspended"]).await;
    let (_, body) = post(&client, format!("{machine}/start")).await;
    assert_eq!(body["previous_state"], "suspended");
    wait_states(&fake, "shop", &["started"]).await;
}

#[tokio::test]
async fn the_wait_endpoint_answers_when_the_state_is_reached_or_times_out() {
    let fake = FakeFly::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(500));
    fake.add_app("acme", "shop", &[("app", false)]).await;
    let client = Client::new();
    let (_, machines) = get(&client, format!("{}/v1/apps/shop/machines", fake.url)).await;
    let id = machines[0]["id"].as_str().unwrap().to_owned();
    let instance = machines[0]["instance_id"].as_str().unwrap().to_owned();
    let machine = format!("{}/v1/apps/shop/machines/{id}", fake.url);

    // Stopped already: a wait for `stopped` needs the instance id.
    let (status, _) = get(&client, format!("{machine}/wait?state=stopped&timeout=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(
        &client,
        format!("{machine}/wait?state=stopped&timeout=1&instance_id={instance}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Never started: a wait for `started` times out with 408.
    let (status, body) = get(&client, format!("{machine}/wait?state=started&timeout=1")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");

    post(&client, format!("{machine}/start")).await;
    let (status, _) = get(&client, format!("{machine}/wait?state=started&timeout=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.states("shop"), ["started"]);
    let (status, _) = get(&client, format!("{machine}/wait?state=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn injected_429s_carry_retry_after_and_calls_are_recorded() {
    let fake = FakeFly::start(TOKEN).await;
    fake.add_app("acme", "shop", &[("app", true)]).await;
    fake.fail_checks("shop", "connection refused");
    fake.calls.throttle_next(1);
    let client = Client::new();
    let url = format!("{}/v1/apps/shop/machines", fake.url);
    let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, machines) = get(&client, url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(machines[0]["checks"][0]["status"], "critical");
    assert_eq!(machines[0]["checks"][0]["output"], "connection refused");
    assert_eq!(fake.calls.count("GET /v1/apps/shop/machines"), 2);
}
