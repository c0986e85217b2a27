//! Sanity checks of the fake Clever Cloud API used by the provider tests.

mod support;

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use support::fakes::clever::{CleverCredentials, FakeClever};

const ORGA: &str = "orga_3547a882-d464-4c34-8168-add4b3e0c135";

fn credentials() -> CleverCredentials {
    CleverCredentials {
        consumer_key: "ck-test".into(),
        consumer_secret: "cs&secret".into(),
        token: "tok-test".into(),
        secret: "ts-secret".into(),
        api_token: "api-token-test".into(),
    }
}

/// An OAuth 1.0a PLAINTEXT header for `credentials()` with the given (header-encoded) signature.
fn oauth(signature: &str) -> String {
    format!(
        r#"OAuth oauth_consumer_key="ck-test", oauth_token="tok-test", oauth_signature_method="PLAINTEXT", oauth_signature="{signature}", oauth_timestamp="1700000000", oauth_nonce="abc123", oauth_version="1.0""#
    )
}

/// `encode(encode("cs&secret") & encode("ts-secret"))`.
const GOOD_SIGNATURE: &str = "cs%2526secret%26ts-secret";

struct Api {
    fake: FakeClever,
    http: Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            fake: FakeClever::start(credentials()).await,
            http: Client::new(),
        }
    }

    /// Calls `path` with the bearer token; returns the status and JSON body.
    async fn call(&self, method: Method, path: &str) -> (StatusCode, Value) {
        self.call_with(method, path, Some("Bearer api-token-test"))
            .await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.fake.url));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("fake answers");
        let status = response.status();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }
}

async fn app_status(url: &str) -> StatusCode {
    reqwest::get(url)
        .await
        .expect("app server answers")
        .status()
}

#[tokio::test]
async fn auth_is_enforced() {
    let api = Api::start().await;
    api.fake.add_app("mine", None, 1, true).await;
    let path = "/v2/self/applications";

    let refused = [
        None,
        Some("Bearer wrong".to_owned()),
        Some(oauth("cs%2526secret%26wrong")),
        Some(oauth("cs%26secret%26ts-secret")),
        Some(oauth(GOOD_SIGNATURE).replace("PLAINTEXT", "HMAC-SHA512")),
        Some(oauth(GOOD_SIGNATURE).replace(r#", oauth_nonce="abc123""#, "")),
        Some(oauth(GOOD_SIGNATURE).replace(r#", oauth_timestamp="1700000000""#, "")),
        Some(oauth(GOOD_SIGNATURE).replace("ck-test", "other")),
        Some("OAuth garbage".to_owned()),
    ];
    for authorization in refused {
        let (status, body) = api
            .call_with(Method::GET, path, authorization.as_deref())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(body["id"], 4001);
        assert_eq!(body["type"], "error");
    }

    let (status, body) = api
        .call_with(Method::GET, path, Some(&oauth(GOOD_SIGNATURE)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(1));

    let (status, _) = api.call(Method::GET, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.fake.calls.count("GET /v2/self/applications"), 11);
}

#[tokio::test]
async fn listings_have_the_documented_shapes() {
    let api = Api::start().await;
    let (mine, mine_server) = api.fake.add_app("mine", None, 1, true).await;
    let (theirs, _) = api.fake.add_app("theirs", Some(ORGA), 2, false).await;

    let own = api.get("/v2/self/applications").await;
    let own = own.as_array().expect("bare array");
    assert_eq!(own.len(), 1);
    let app = &own[0];
    assert_eq!(app["id"], mine.as_str());
    assert!(mine.starts_with("app_") && mine.len() == 40, "{mine}");
    assert_eq!(app["name"], "mine");
    assert_eq!(app["state"], "SHOULD_BE_UP");
    assert_eq!(app["forceHttps"], "DISABLED");
    assert_eq!(app["instance"]["minInstances"], 1);
    let creation = app["creationDate"].as_u64().expect("number");
    assert!(creation > 1_600_000_000_000, "milliseconds: {creation}");
    let fqdn = app["vhosts"][0]["fqdn"].as_str().expect("fqdn");
    assert_eq!(format!("http://{fqdn}"), mine_server.url);
    assert_eq!(app_status(&mine_server.url).await, StatusCode::OK);

    let orga = api
        .get(&format!("/v2/organisations/{ORGA}/applications"))
        .await;
    let orga = orga.as_array().expect("bare array");
    assert_eq!(orga.len(), 1);
    assert_eq!(orga[0]["id"], theirs.as_str());
    assert_eq!(orga[0]["state"], "SHOULD_BE_DOWN");
    assert_eq!(orga[0]["instance"]["minInstances"], 2);

    let summary = api.get("/v2/summary").await;
    assert!(summary["user"]["id"].as_str().unwrap().starts_with("user_"));
    assert_eq!(summary["user"]["applications"][0]["id"], mine.as_str());
    assert_eq!(summary["organisations"][0]["id"], ORGA);
    assert_eq!(
        summary["organisations"][0]["applications"][0]["id"],
        theirs.as_str()
    );

    let instances = api
        .get(&format!("/v2/self/applications/{mine}/instances"))
        .await;
    assert_eq!(instances[0]["state"], "UP");
    assert_eq!(instances[0]["appId"], mine.as_str());
    assert_eq!(api.fake.instances(&mine), 1);

    for path in [
        "/v2/self/applications/app_unknown".to_owned(),
        format!("/v2/self/applications/{theirs}"),
        "/v2/organisations/orga_unknown/applications".to_owned(),
        "/v2/nothing".to_owned(),
        "/elsewhere".to_owned(),
    ] {
        let (status, body) = api.call(Method::GET, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["id"], 4004, "{path}");
    }
}

#[tokio::test]
async fn start_boots_then_stop_stops() {
    let api = Api::start().await;
    api.fake.set_boot_time(Duration::from_millis(400));
    let (id, server) = api.fake.add_app("sleepy", Some(ORGA), 1, false).await;
    let app = format!("/v2/organisations/{ORGA}/applications/{id}");
    assert_eq!(
        app_status(&server.url).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        api.get(&format!("{app}/deployments?limit=1")).await,
        Value::Array(vec![])
    );

    let (status, body) = api.call(Method::POST, &format!("{app}/instances")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["type"], "success");
    assert!(body["deploymentId"].is_string());

    assert_eq!(api.get(&app).await["state"], "WANTS_TO_BE_UP");
    let last = api.get(&format!("{app}/deployments?limit=1")).await;
    assert_eq!(last[0]["state"], "WIP");
    assert_eq!(last[0]["action"], "DEPLOY");
    assert_eq!(
        api.get(&format!("{app}/instances")).await,
        Value::Array(vec![])
    );
    assert_eq!(
        app_status(&server.url).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    // The app server comes up on time even before the API is read again.
    assert_eq!(app_status(&server.url).await, StatusCode::OK);
    assert_eq!(api.get(&app).await["state"], "SHOULD_BE_UP");
    let last = api.get(&format!("{app}/deployments?limit=1")).await;
    assert_eq!(last.as_array().map(Vec::len), Some(1));
    assert_eq!(last[0]["state"], "OK");
    let instances = api.get(&format!("{app}/instances")).await;
    assert_eq!(instances[0]["deployNumber"], last[0]["id"]);
    assert_eq!(api.fake.instances(&id), 1);

    let (status, body) = api.call(Method::DELETE, &format!("{app}/instances")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["type"], "success");
    assert_eq!(api.get(&app).await["state"], "SHOULD_BE_DOWN");
    assert_eq!(api.fake.instances(&id), 0);
    assert_eq!(
        app_status(&server.url).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let last = api.get(&format!("{app}/deployments?limit=1")).await;
    assert_eq!(last[0]["action"], "UNDEPLOY");
    assert_eq!(
        api.get(&format!("{app}/deployments"))
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let (status, _) = api
        .call(Method::GET, &format!("{app}/deployments?limit=x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(api.fake.calls.count(&format!("POST {app}/instances")), 1);
    assert_eq!(api.fake.calls.count(&format!("DELETE {app}/instances")), 1);
}

#[tokio::test]
async fn failed_start_leaves_the_app_wanting_to_be_up() {
    let api = Api::start().await;
    api.fake.set_boot_time(Duration::from_millis(50));
    let (id, server) = api.fake.add_app("broken", None, 1, false).await;
    let app = format!("/v2/self/applications/{id}");
    api.fake.fail_next_start();

    let (status, _) = api.call(Method::POST, &format!("{app}/instances")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(api.get(&app).await["state"], "WANTS_TO_BE_UP");
    let last = api.get(&format!("{app}/deployments?limit=1")).await;
    assert_eq!(last[0]["state"], "FAIL");
    assert_eq!(api.fake.instances(&id), 0);
    assert_eq!(
        app_status(&server.url).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Only the next start fails.
    let (status, _) = api.call(Method::POST, &format!("{app}/instances")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(api.get(&app).await["state"], "SHOULD_BE_UP");
    assert_eq!(api.fake.instances(&id), 1);
}

#[tokio::test]
async fn injected_faults_come_first() {
    let api = Api::start().await;
    api.fake.calls.throttle_next(1);
    // Even without credentials: the fault is answered before auth.
    let response = reqwest::get(format!("{}/v2/summary", api.fake.url))
        .await
        .expect("fake answers");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    api.get("/v2/summary").await;
    assert_eq!(api.fake.calls.count("GET /v2/summary"), 2);
}
