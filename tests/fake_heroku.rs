//! Sanity checks of the fake Heroku Platform API: the platform's header and auth
//! requirements, `Range`/`Next-Range` pagination, and formations that stop and boot dynos.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use support::fakes::heroku::FakeHeroku;

const TOKEN: &str = "heroku-test-token";
const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// A request with the headers the platform requires.
fn api(client: &Client, method: reqwest::Method, url: String) -> RequestBuilder {
    client
        .request(method, url)
        .header("accept", ACCEPT)
        .bearer_auth(TOKEN)
}

async fn body(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

fn remaining(response: &Response) -> u32 {
    response.headers()["ratelimit-remaining"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn requires_version_header_and_token() {
    let fake = FakeHeroku::start(TOKEN).await;
    let client = Client::new();
    let url = format!("{}/apps", fake.url);

    let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(body(response).await["id"], "not_acceptable");

    let response = client
        .get(&url)
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(response).await["id"], "unauthorized");

    let response = client
        .get(&url)
        .header("accept", ACCEPT)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let first = api(&client, reqwest::Method::GET, url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = api(&client, reqwest::Method::GET, url)
        .send()
        .await
        .unwrap();
    assert_eq!(remaining(&second), remaining(&first) - 1);

    let response = api(
        &client,
        reqwest::Method::GET,
        format!("{}/apps/nope", fake.url),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(response).await["id"], "not_found");
    assert_eq!(fake.calls.count("GET /apps"), 6);
}

#[tokio::test]
async fn paginates_with_next_range() {
    let fake = FakeHeroku::start(TOKEN).await;
    fake.set_page_size(10);
    for i in 0..25 {
        fake.add_app(&format!("app-{i:02}"), &[("web", 1)], false)
            .await;
    }
    let client = Client::new();
    let mut range = "id ..; max=1000".to_owned();
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    loop {
        let response = api(&client, reqwest::Method::GET, format!("{}/apps", fake.url))
            .header("range", &range)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        let next = response
            .headers()
            .get("next-range")
            .map(|v| v.to_str().unwrap().to_owned());
        let page = body(response).await;
        ids.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|app| app["id"].as_str().unwrap().to_owned()),
        );
        match next {
            Some(next) => {
                assert!(
                    next.starts_with("id ]") && next.ends_with("..; max=1000"),
                    "{next}"
                );
                range = next;
            }
            None => break,
        }
    }
    use StatusCode as S;
    assert_eq!(statuses, [S::PARTIAL_CONTENT, S::PARTIAL_CONTENT, S::OK]);
    assert_eq!(ids.len(), 25);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
    assert!(ids.is_sorted(), "pages are sorted by id");
}

#[tokio::test]
async fn formation_stops_and_boots_dynos() {
    let fake = FakeHeroku::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(200));
    let server = fake
        .add_app("shop", &[("web", 1), ("worker", 2)], true)
        .await;
    let client = Client::new();
    let app_url = format!("{}/apps/shop", fake.url);
    let upstream = |client: &Client| client.get(format!("{}/", server.url)).send();
    let dyno_states = |client: &Client| {
        let request = api(client, reqwest::Method::GET, format!("{app_url}/dynos"));
        async move {
            let dynos = body(request.send().await.unwrap()).await;
            dynos
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d["name"].as_str().unwrap(),
                        d["state"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };

    let app = body(
        api(&client, reqwest::Method::GET, app_url.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(app["web_url"], format!("{}/", server.url));
    assert_eq!(
        upstream(&client).await.unwrap().text().await.unwrap(),
        "hello from shop"
    );
    assert_eq!(
        dyno_states(&client).await,
        ["web.1=up", "worker.1=up", "worker.2=up"]
    );

    // Malformed updates change nothing.
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation"),
    )
    .body(r#"{"updates":[{"type":"web","quantity":0}]}"#)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation"),
    )
    .json(&json!({"updates": [{"type": "web", "quantity": 0}, {"type": "clock", "quantity": 0}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        fake.formation("shop"),
        [("web".to_owned(), 1), ("worker".to_owned(), 2)]
    );

    // Down: dynos gone at once, router answers 503.
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation"),
    )
    .json(&json!({"updates": [{"type": "web", "quantity": 0}, {"type": "worker", "quantity": 0}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let formation = body(response).await;
    assert_eq!(formation.as_array().unwrap().len(), 2);
    assert!(
        formation
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["quantity"] == 0)
    );
    assert!(dyno_states(&client).await.is_empty());
    assert_eq!(
        upstream(&client).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Up: dynos start, then are up after the boot time.
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation"),
    )
    .json(&json!({"updates": [{"type": "web", "quantity": 1}, {"type": "worker", "quantity": 2}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        dyno_states(&client).await,
        ["web.1=starting", "worker.1=starting", "worker.2=starting"]
    );
    assert_eq!(
        upstream(&client).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The server is up without any API call in between.
    assert_eq!(upstream(&client).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        dyno_states(&client).await,
        ["web.1=up", "worker.1=up", "worker.2=up"]
    );

    // One process type.
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation/worker"),
    )
    .json(&json!({"quantity": 1}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let worker = body(response).await;
    assert_eq!(
        (worker["type"].clone(), worker["quantity"].clone()),
        (json!("worker"), json!(1))
    );
    assert_eq!(
        fake.formation("shop"),
        [("web".to_owned(), 1), ("worker".to_owned(), 1)]
    );
    assert_eq!(fake.calls.count("PATCH /apps/shop/formation"), 5);
}

#[tokio::test]
async fn a_process_type_removed_by_a_release_is_not_found() {
    let fake = FakeHeroku::start(TOKEN).await;
    fake.add_app("shop", &[("web", 0), ("worker", 0)], false)
        .await;
    fake.remove_process_type("shop", "worker");
    fake.add_process_type("shop", "clock");
    let client = Client::new();
    let app_url = format!("{}/apps/shop", fake.url);

    let formation = body(
        api(
            &client,
            reqwest::Method::GET,
            format!("{app_url}/formation"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let types: Vec<(&str, u64)> = formation
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["quantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(types, [("clock", 0), ("web", 0)]);

    // The batch update fails as a whole, nothing scaled.
    let response = api(
        &client,
        reqwest::Method::PATCH,
        format!("{app_url}/formation"),
    )
    .json(&json!({"updates": [{"type": "web", "quantity": 2}, {"type": "worker", "quantity": 1}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error = body(response).await;
    assert_eq!(error["id"], "not_found");
    assert_eq!(
        error["message"],
        "Couldn't find that process type (worker)."
    );
    assert_eq!(
        fake.formation("shop"),
        [("clock".to_owned(), 0), ("web".to_owned(), 0)]
    );
    let response = api(
        &client,
        reqwest::Method::GET,
        format!("{app_url}/formation/worker"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
