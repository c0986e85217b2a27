//! Sanity checks of the fake Render API: bearer auth, cursor pagination of the service
//! list, suspend/resume and the deploy a resume creates, scaling, 404s, and the documented
//! rate limits (per service for suspend/resume) with their headers and 429 body.

mod support;

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use support::fakes::render::{FakeRender, OWNER};

const TOKEN: &str = "rnd_fake_api_key_0001";

async fn body(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

fn header(response: &Response, name: &str) -> String {
    response.headers()[name].to_str().expect("ascii").to_owned()
}

async fn get(fake: &FakeRender, path: &str) -> Response {
    Client::new()
        .get(format!("{}{path}", fake.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("fake answers")
}

async fn post(fake: &FakeRender, path: &str, json: Option<Value>) -> Response {
    let request = Client::new()
        .post(format!("{}{path}", fake.url))
        .bearer_auth(TOKEN);
    let request = match json {
        Some(json) => request.json(&json),
        None => request,
    };
    request.send().await.expect("fake answers")
}

#[tokio::test]
async fn requires_the_api_key() {
    let fake = FakeRender::start(TOKEN).await;
    let url = format!("{}/services", fake.url);
    let client = Client::new();
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(response).await["id"], "unauthorized");
    let response = client.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = get(&fake, "/services").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, json!([]));
}

#[tokio::test]
async fn the_service_list_is_paginated_by_cursor_and_filtered_by_owner() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_max_limit(2);
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        ids.push(fake.add_service(name, "web_service", false).await.0);
    }
    fake.add_service_of("other", "web_service", "tea-other", false)
        .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/services?limit=100&ownerId={OWNER}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = body(get(&fake, &path).await).await;
        let page = page.as_array().expect("an array").clone();
        pages += 1;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "the limit is clamped to the maximum");
        for entry in &page {
            seen.push(entry["service"]["id"].as_str().unwrap().to_owned());
            assert_eq!(entry["service"]["suspended"], "not_suspended");
            assert!(entry["service"]["serviceDetails"]["url"].is_string());
        }
        cursor = page.last().unwrap()["cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 4, "three pages, then an empty one");
    // Without the owner filter the other workspace's service is listed too.
    let all = body(get(&fake, "/services?limit=100").await).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let response = get(&fake, "/services?cursor=nonsense").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn suspend_and_resume_change_the_state_and_a_resume_deploys() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(600));
    let (id, server) = fake.add_service("shop", "web_service", false).await;
    assert!(server.is_up());

    let response = post(&fake, &format!("/services/{id}/suspend"), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(fake.is_suspended(&id));
    assert!(!server.is_up());
    let service = body(get(&fake, &format!("/services/{id}")).await).await;
    assert_eq!(service["suspended"], "suspended");

    let response = post(&fake, &format!("/services/{id}/resume"), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(!fake.is_suspended(&id));
    let deploys = body(get(&fake, &format!("/services/{id}/deploys?limit=1")).await).await;
    let latest = &deploys[0]["deploy"];
    assert_eq!(latest["trigger"], "service_resumed");
    assert!(
        ["build_in_progress", "update_in_progress"].contains(&latest["status"].as_str().unwrap()),
        "{latest}"
    );
    assert!(!server.is_up(), "not before the deploy is live");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.deploy_statuses(&id)[0] != "live" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deploy never went live"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.is_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.deploy_statuses(&id), ["live", "deactivated"]);

    // A failing resume: the deploy ends update_failed and the server stays down.
    fake.set_boot_time(Duration::from_millis(30));
    fake.fail_next_resumes(1);
    post(&fake, &format!("/services/{id}/suspend"), None).await;
    post(&fake, &format!("/services/{id}/resume"), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.deploy_statuses(&id)[0], "update_failed");
    assert!(!server.is_up());
}

#[tokio::test]
async fn scale_unknown_services_and_bad_bodies() {
    let fake = FakeRender::start(TOKEN).await;
    let (id, _) = fake.add_service("api", "web_service", false).await;
    let response = post(
        &fake,
        &format!("/services/{id}/scale"),
        Some(json!({"numInstances": 3})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(fake.instances(&id), 3);
    let response = post(
        &fake,
        &format!("/services/{id}/scale"),
        Some(json!({"numInstances": 0})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    fake.set_plan(&id, "free");
    let response = post(
        &fake,
        &format!("/services/{id}/scale"),
        Some(json!({"numInstances": 2})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    for response in [
        get(&fake, "/services/srv-nope").await,
        post(&fake, "/services/srv-nope/resume", None).await,
        get(&fake, "/services/srv-nope/deploys").await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(response).await["id"], "not_found");
    }
}

#[tokio::test]
async fn suspend_and_resume_are_limited_per_service_with_the_documented_headers() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_rate_limits(400, 2, Duration::from_secs(60));
    let (one, _) = fake.add_service("one", "web_service", false).await;
    let (two, _) = fake.add_service("two", "web_service", false).await;

    let first = post(&fake, &format!("/services/{one}/suspend"), None).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&first, "ratelimit-limit"), "2");
    assert_eq!(header(&first, "ratelimit-remaining"), "1");
    let reset: u64 = header(&first, "ratelimit-reset").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset > now && reset <= now + 61,
        "UTC epoch seconds: {reset}"
    );
    let second = post(&fake, &format!("/services/{one}/resume"), None).await;
    assert_eq!(header(&second, "ratelimit-remaining"), "0");
    let third = post(&fake, &format!("/services/{one}/suspend"), None).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&third, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(header(&third, "ratelimit-remaining"), "0");
    assert_eq!(body(third).await["id"], "rate_limited");
    // Another service has its own budget; reads have theirs.
    let other = post(&fake, &format!("/services/{two}/suspend"), None).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    let read = get(&fake, "/services").await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(header(&read, "ratelimit-limit"), "400");
    assert_eq!(fake.calls.count("POST /services"), 4);

    // A short window refills.
    fake.set_rate_limits(1, 10, Duration::from_millis(500));
    assert_eq!(get(&fake, "/services").await.status(), StatusCode::OK);
    assert_eq!(
        get(&fake, "/services").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&fake, "/services").await.status(), StatusCode::OK);
}
