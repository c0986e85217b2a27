//! Sanity checks of the fake Scalingo: it must behave like the platform (auth, shapes,
//! scale quirks, boot time, rate limit), since the provider tests rely on it.

mod support;

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::fakes::scalingo::FakeScalingo;

const TOKEN: &str = "tk-us-fake-scalingo-token";

/// Exchanges `TOKEN` for a JWT.
async fn exchange_token(client: &Client, fake: &FakeScalingo) -> String {
    let response = client
        .post(format!("{}/v1/tokens/exchange", fake.url))
        .basic_auth("", Some(TOKEN))
        .json(&json!({}))
        .send()
        .await
        .expect("exchange");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    body["token"].as_str().expect("token").to_owned()
}

/// `GET path` with a bearer token: status and JSON body.
async fn get(client: &Client, fake: &FakeScalingo, jwt: &str, path: &str) -> (StatusCode, Value) {
    let response = client
        .get(format!("{}{path}", fake.url))
        .bearer_auth(jwt)
        .send()
        .await
        .expect("GET");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /v1/apps/{app}/scale`: status, `Location` and JSON body.
async fn scale(
    client: &Client,
    fake: &FakeScalingo,
    jwt: &str,
    app: &str,
    containers: Value,
) -> (StatusCode, Option<String>, Value) {
    let response = client
        .post(format!("{}/v1/apps/{app}/scale", fake.url))
        .bearer_auth(jwt)
        .json(&json!({ "containers": containers }))
        .send()
        .await
        .expect("scale");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        location,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Decodes base64url without padding.
fn base64url_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let value = alphabet.iter().position(|&a| a == c).expect("base64url") as u32;
        acc = (acc << 6 | value) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    out
}

#[tokio::test]
async fn exchange_accepts_only_the_api_token() {
    let fake = FakeScalingo::start(TOKEN).await;
    let client = Client::new();

    let token = exchange_token(&client, &fake).await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let claims: Value = serde_json::from_slice(&base64url_decode(parts[1])).expect("claims");
    let (exp, iat) = (
        claims["exp"].as_u64().unwrap(),
        claims["iat"].as_u64().unwrap(),
    );
    assert!((3599..=3600).contains(&(exp - iat)), "{claims}");
    assert_eq!(fake.exchanges(), 1);

    for password in [Some("tk-us-wrong"), None] {
        let response = client
            .post(format!("{}/v1/tokens/exchange", fake.url))
            .basic_auth("", password)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    let response = client
        .post(format!("{}/v1/tokens/exchange", fake.url))
        .basic_auth("someone", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fake.exchanges(), 1);
    assert_eq!(fake.calls.count("POST /v1/tokens/exchange"), 4);
}

#[tokio::test]
async fn api_needs_a_valid_unexpired_jwt() {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("web-app", &[("web", 1)], true).await;
    let client = Client::new();

    let response = client
        .get(format!("{}/v1/apps", fake.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for bad in ["not-a-jwt", "a.b.c", TOKEN] {
        let (status, body) = get(&client, &fake, bad, "/v1/apps").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(body["error"].is_string(), "{body}");
    }

    fake.set_jwt_ttl(Duration::from_millis(200));
    let short = exchange_token(&client, &fake).await;
    assert_eq!(
        get(&client, &fake, &short, "/v1/apps").await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, body) = get(&client, &fake, &short, "/v1/apps").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "token expired" }));
}

#[tokio::test]
async fn apps_containers_and_ps_have_the_platform_shapes() {
    let fake = FakeScalingo::start(TOKEN).await;
    let server = fake
        .add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    fake.add_app("idle", &[("web", 3)], false).await;
    let client = Client::new();
    let jwt = exchange_token(&client, &fake).await;

    let (status, body) = get(&client, &fake, &jwt, "/v1/apps").await;
    assert_eq!(status, StatusCode::OK);
    let apps = body["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 2);
    let shop = &apps[0];
    let id = shop["id"].as_str().unwrap();
    assert!(
        id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["region"], "osc-fr1");
    assert_eq!(shop["status"], "running");
    assert_eq!(shop["url"], server.url.as_str());
    assert_eq!(shop["base_url"], server.url.as_str());
    for field in ["created_at", "updated_at", "last_deployed_at"] {
        let time = shop[field].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }
    assert_eq!(shop["force_https"], false);
    assert_eq!(shop["sticky_session"], false);
    assert!(shop["owner"]["username"].is_string() && shop["project"]["name"].is_string());
    assert_eq!(apps[1]["status"], "stopped");

    let (status, by_id) = get(&client, &fake, &jwt, &format!("/v1/apps/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&by_id["app"], shop);
    let (status, body) = get(&client, &fake, &jwt, "/v1/apps/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "resource": "app", "error": "not found" }));

    let (_, body) = get(&client, &fake, &jwt, "/v1/apps/shop/containers").await;
    assert_eq!(
        body,
        json!({ "containers": [
            { "name": "web", "amount": 2, "size": "M" },
            { "name": "worker", "amount": 1, "size": "M" },
        ] })
    );
    let (_, body) = get(&client, &fake, &jwt, "/v1/apps/shop/ps").await;
    let ps = body["containers"].as_array().unwrap();
    let labels: Vec<&str> = ps.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["web-1", "web-2", "worker-1"]);
    assert_eq!(ps[1]["type"], "web");
    assert_eq!(ps[1]["type_index"], 2);
    assert_eq!(ps[1]["state"], "running");
    assert_eq!(
        ps[1]["container_size"],
        json!({ "name": "M", "memory": 536870912 })
    );
    let (_, body) = get(&client, &fake, &jwt, "/v1/apps/idle/ps").await;
    assert_eq!(body, json!({ "containers": [] }));
    assert_eq!(fake.formation("idle"), [("web".to_owned(), 0)]);

    assert_eq!(
        get(&client, &fake, &jwt, "/v2/else").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(fake.calls.count("GET /v1/apps"), 6);
    assert_eq!(fake.calls.count("GET /v2/else"), 1);
}

#[tokio::test]
async fn scale_down_is_immediate_and_scale_up_boots() {
    let fake = FakeScalingo::start(TOKEN).await;
    let server = fake
        .add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    fake.set_boot_time(Duration::from_millis(300));
    let client = Client::new();
    let jwt = exchange_token(&client, &fake).await;
    assert_eq!(
        reqwest::get(&server.url).await.unwrap().status(),
        StatusCode::OK
    );

    // Invalid requests.
    let (status, _, body) = scale(
        &client,
        &fake,
        &jwt,
        "shop",
        json!([{"name": "cron", "amount": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["errors"]["containers"][0].is_string(), "{body}");
    let (status, _, _) = scale(
        &client,
        &fake,
        &jwt,
        "shop",
        json!([{"name": "web", "amount": 11}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = client
        .post(format!("{}/v1/apps/shop/scale", fake.url))
        .bearer_auth(&jwt)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Scale to zero: done at once.
    let zero = json!([{"name": "web", "amount": 0}, {"name": "worker", "amount": 0}]);
    let (status, location, body) = scale(&client, &fake, &jwt, "shop", zero.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = location.expect("Location");
    assert!(location.starts_with(&format!("{}/v1/apps/shop/operations/", fake.url)));
    let formation = body["containers"].as_array().unwrap();
    assert_eq!(formation.len(), 2);
    assert!(
        formation
            .iter()
            .all(|p| p["amount"] == 0 && p["size"] == "M" && p["id"].is_string())
    );
    let path = location.trim_start_matches(&fake.url);
    let (_, op) = get(&client, &fake, &jwt, path).await;
    assert_eq!(op["operation"]["status"], "done");
    assert_eq!(op["operation"]["type"], "scale");
    assert_eq!(
        get(&client, &fake, &jwt, "/v1/apps/shop").await.1["app"]["status"],
        "stopped"
    );
    assert_eq!(
        reqwest::get(&server.url).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, _, body) = scale(&client, &fake, &jwt, "shop", zero).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "no change in containers formation" })
    );

    // Scale up: booting for the boot time, then running.
    let up = json!([{"name": "web", "amount": 2}, {"name": "worker", "amount": 1}]);
    let (status, location, _) = scale(&client, &fake, &jwt, "shop", up).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let path = location.expect("Location").replace(&fake.url, "");
    let (_, op) = get(&client, &fake, &jwt, &path).await;
    assert_eq!(op["operation"]["status"], "running");
    assert_eq!(
        get(&client, &fake, &jwt, "/v1/apps/shop").await.1["app"]["status"],
        "scaling"
    );
    let (_, ps) = get(&client, &fake, &jwt, "/v1/apps/shop/ps").await;
    assert!(
        ps["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "booting")
    );
    assert_eq!(
        reqwest::get(&server.url).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, _, body) = scale(
        &client,
        &fake,
        &jwt,
        "shop",
        json!([{"name": "web", "amount": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({ "errors": { "app": ["is restarting"] } }));

    // The app's server comes up on time even without API reads.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        reqwest::get(&server.url).await.unwrap().status(),
        StatusCode::OK
    );
    let (_, op) = get(&client, &fake, &jwt, &path).await;
    assert_eq!(op["operation"]["status"], "done");
    assert_eq!(
        get(&client, &fake, &jwt, "/v1/apps/shop").await.1["app"]["status"],
        "running"
    );
    assert_eq!(
        fake.formation("shop"),
        [("web".to_owned(), 2), ("worker".to_owned(), 1)]
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.set_rate_limit(5);
    let client = Client::new();
    let jwt = exchange_token(&client, &fake).await;
    for _ in 0..5 {
        assert_eq!(
            get(&client, &fake, &jwt, "/v1/apps").await.0,
            StatusCode::OK
        );
    }
    let response = client
        .get(format!("{}/v1/apps", fake.url))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.text().await.unwrap(), "Retry later");
    // The token exchange is not rate limited.
    exchange_token(&client, &fake).await;
    assert_eq!(fake.exchanges(), 2);
    assert_eq!(fake.calls.count("GET /v1/apps"), 6);
}

#[tokio::test]
async fn a_container_type_removed_by_a_deployment_is_refused_422() {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 2), ("worker", 1)], false)
        .await;
    fake.remove_process_type("shop", "worker");
    fake.add_process_type("shop", "clock");
    let client = Client::new();
    let jwt = exchange_token(&client, &fake).await;

    let (_, containers) = get(&client, &fake, &jwt, "/v1/apps/shop/containers").await;
    let types: Vec<(&str, u64)> = containers["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["amount"].as_u64().unwrap()))
        .collect();
    assert_eq!(types, [("clock", 0), ("web", 0)]);

    // Refused as a whole, nothing scaled.
    let up = json!([{"name": "web", "amount": 2}, {"name": "worker", "amount": 1}]);
    let (status, _, body) = scale(&client, &fake, &jwt, "shop", up).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({ "errors": { "containers": ["worker is not a process type of this app"] } })
    );
    assert_eq!(
        fake.formation("shop"),
        [("clock".to_owned(), 0), ("web".to_owned(), 0)]
    );
}
