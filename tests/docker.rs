//! The `docker` provider against a real engine: podman's Docker-compatible API service (see
//! `support::podman`), running busybox httpd containers with host networking. Discovery by
//! labels, wake on request, idle stop, groups, containers recreated under the same name, the
//! engine restarted, the API service going away and coming back, and 304 answers.
//!
//! Skipped (with the reason printed) only where podman cannot run a container.

mod support;

use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use paastis::providers::{AppStatus, ProviderConfig};
use support::podman::{Podman, free_port};
use support::{TestClient, TestEngine, local_apps};

/// Long enough for a container start on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// A config with the docker provider on `podman`'s socket (discovery every second) and
/// `extra` providers after it.
fn config(podman: &Podman, max_idle: &str, extra: &str) -> String {
    format!(
        "defaults: {{max_idle: {max_idle}, wake_timeout: 45s}}\n\
         discovery: {{every: 1s}}\n\
         providers:\n  - {{id: containers, type: docker, host: '{}', stop_timeout: 1s}}\n{extra}",
        podman.host()
    )
}

/// Labels of a managed container answering on `port`.
fn managed(port: &str) -> Vec<(&'static str, String)> {
    vec![
        ("paastis.enable", "true".to_owned()),
        ("paastis.port", port.to_owned()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Waits until `host` answers 200 through the engine; returns the body.
async fn get_ok(client: &TestClient, host: &str) -> String {
    let answer = client.get(host, "/").await;
    assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    answer.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_containers_are_found_woken_on_request_and_stopped_when_idle() {
    let Some(podman) = Podman::start("discover").await else {
        return;
    };
    let (shop_port, blog_port, plain_port) = (free_port(), free_port(), free_port());
    let mut shop = managed(&shop_port.to_string());
    shop.push(("paastis.max_idle", "2s".to_owned()));
    podman.create("shop", shop_port, &labels(&shop));
    // Sablier's label, and the app named by a label.
    let blog = [
        ("sablier.enable", "true".to_owned()),
        ("paastis.name", "journal".to_owned()),
        ("paastis.port", blog_port.to_string()),
    ];
    podman.create("blog", blog_port, &labels(&blog));
    podman.create("plain", plain_port, &[]);

    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    let mut names: Vec<String> = engine
        .lifecycle
        .apps()
        .iter()
        .map(|app| app.key.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["journal", "shop"],
        "unlabelled containers are ignored"
    );
    assert_eq!(engine.state("shop"), State::Asleep);
    assert_eq!(engine.state("journal"), State::Asleep);

    let client = TestClient::new(engine.addr);
    assert_eq!(
        get_ok(&client, "shop.localhost").await,
        "hello from busybox\n"
    );
    assert_eq!(podman.state("shop"), "running");
    assert_eq!(
        podman.state("blog"),
        "created",
        "only the app asked for wakes"
    );

    // Its label says 2s idle: stopped by the engine, and woken again.
    engine.wait_state("shop", State::Asleep, WAIT).await;
    podman.wait_state("shop", "exited", WAIT).await;
    assert_eq!(
        get_ok(&client, "shop.localhost").await,
        "hello from busybox\n"
    );
    assert_eq!(
        get_ok(&client, "journal.localhost").await,
        "hello from busybox\n"
    );
    assert_eq!(podman.state("blog"), "running");
    assert_eq!(podman.state("plain"), "created", "never touched");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_wakes_and_sleeps_together() {
    let Some(podman) = Podman::start("group").await else {
        return;
    };
    let (front_port, api_port) = (free_port(), free_port());
    for (name, port) in [("front", front_port), ("api", api_port)] {
        let mut pairs = managed(&port.to_string());
        pairs.push(("paastis.group", "store".to_owned()));
        pairs.push(("paastis.max_idle", "3s".to_owned()));
        podman.create(name, port, &labels(&pairs));
    }
    // The gate's Sablier-compatible API on too: the group by its label's value.
    let engine = TestEngine::start(&format!(
        "proxy: {{trusted_proxies: [127.0.0.1/32]}}\ngate: {{sablier: true}}\n{}",
        config(&podman, "1h", "")
    ))
    .await;
    let client = TestClient::new(engine.addr);

    get_ok(&client, "front.localhost").await;
    // The other member wakes with it.
    engine.wait_state("api", State::Awake, WAIT).await;
    assert_eq!(podman.state("api"), "running");
    let direct = reqwest::get(format!("http://127.0.0.1:{api_port}/"))
        .await
        .expect("api answers");
    assert_eq!(direct.status(), 200);

    // Both go to sleep once idle (the group's activity is shared).
    engine.wait_state("front", State::Asleep, WAIT).await;
    engine.wait_state("api", State::Asleep, WAIT).await;
    podman.wait_state("front", "exited", WAIT).await;
    podman.wait_state("api", "exited", WAIT).await;

    // A request to the other member wakes both again.
    get_ok(&client, "api.localhost").await;
    engine.wait_state("front", State::Awake, WAIT).await;
    assert_eq!(podman.state("front"), "running");

    // Asleep again, the group is woken by its name through Sablier's blocking strategy.
    engine.wait_state("front", State::Asleep, WAIT).await;
    engine.wait_state("api", State::Asleep, WAIT).await;
    let session = reqwest::get(format!(
        "http://{}/api/strategies/blocking?group=store&timeout=40s",
        engine.admin_addr
    ))
    .await
    .expect("the gate answers");
    assert_eq!(session.status(), 200);
    assert_eq!(session.headers()["x-sablier-session-status"], "ready");
    let body: serde_json::Value = session.json().await.expect("json");
    let instances = body["session"]["instances"].as_object().expect("instances");
    assert_eq!(instances.len(), 2, "{body}");
    assert_eq!(instances["front"]["instance"]["status"], "ready", "{body}");
    assert_eq!(instances["api"]["instance"]["status"], "ready", "{body}");
    assert_eq!(podman.state("front"), "running");
    assert_eq!(podman.state("api"), "running");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_recreated_under_its_name_is_followed() {
    let Some(podman) = Podman::start("recreate").await else {
        return;
    };
    let port = free_port();
    podman.create("web", port, &labels(&managed(&port.to_string())));
    let first = podman.id("web");
    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(engine.state("web"), State::Asleep);

    // Recreated (as `compose up` does) with a new id and a new port, before the engine lists
    // again: the start finds it by name and goes to its new address.
    podman.remove("web");
    let moved = free_port();
    podman.create("web", moved, &labels(&managed(&moved.to_string())));
    assert_ne!(podman.id("web"), first);
    assert_eq!(
        get_ok(&client, "web.localhost").await,
        "hello from busybox\n"
    );
    assert_eq!(podman.state("web"), "running");
    let answer = reqwest::get(format!("http://127.0.0.1:{moved}/"))
        .await
        .expect("the new container answers");
    assert_eq!(answer.status(), 200);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_finds_asleep_asleep_and_awake_awake() {
    let Some(podman) = Podman::start("restart").await else {
        return;
    };
    let (awake_port, asleep_port) = (free_port(), free_port());
    podman.create(
        "awake",
        awake_port,
        &labels(&managed(&awake_port.to_string())),
    );
    podman.create(
        "asleep",
        asleep_port,
        &labels(&managed(&asleep_port.to_string())),
    );
    podman.start_container("awake");

    for _ in 0..2 {
        let engine = TestEngine::start(&config(&podman, "1h", "")).await;
        assert_eq!(engine.state("awake"), State::Awake);
        assert_eq!(engine.state("asleep"), State::Asleep);
        engine.stop().await;
        // The engine's shutdown leaves containers as they are.
        assert_eq!(podman.state("awake"), "running");
        assert_eq!(podman.state("asleep"), "created");
    }
    // Stopped by the engine, then the engine restarted: still asleep (not failed).
    let engine = TestEngine::start(&config(&podman, "1s", "")).await;
    engine.wait_state("awake", State::Asleep, WAIT).await;
    podman.wait_state("awake", "exited", WAIT).await;
    engine.stop().await;
    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    assert_eq!(engine.state("awake"), State::Asleep);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_goes_away_is_reported_without_stopping_other_providers() {
    let Some(mut podman) = Podman::start("outage").await else {
        return;
    };
    let port = free_port();
    podman.create("web", port, &labels(&managed(&port.to_string())));
    let extra = local_apps(&[("local-app", "")]);
    let extra = extra
        .strip_prefix("providers:\n")
        .expect("a providers section");
    let engine = TestEngine::start(&config(&podman, "1h", extra)).await;
    let admin = TestClient::new(engine.admin_addr);
    let client = TestClient::new(engine.addr);

    podman.stop_service().await;
    // The next discovery fails: /ready names the provider and the socket.
    let deadline = tokio::time::Instant::now() + WAIT;
    let detail = loop {
        let ready = admin.get("localhost", "/ready").await;
        let check = ready.json()["checks"]
            .as_array()
            .and_then(|checks| {
                checks
                    .iter()
                    .find(|c| c["name"] == "provider:containers")
                    .cloned()
            })
            .expect("a check of the docker provider");
        if check["ok"] == false {
            assert_eq!(ready.status, 503);
            break check["detail"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outage was not reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        detail.contains(&podman.socket.display().to_string()),
        "the error names the socket: {detail}"
    );
    assert!(detail.contains("unreachable"), "{detail}");

    // The process provider is not affected.
    assert_eq!(
        get_ok(&client, "local-app.localhost").await,
        "hello from local-app"
    );
    // A docker app asked for meanwhile fails clearly.
    let answer = client.get("web.localhost", "/").await;
    assert!(answer.status.is_server_error(), "{}", answer.text());

    // Back: discovery recovers and the app wakes.
    podman.start_service().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = admin.get("localhost", "/ready").await;
        if ready.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready again: {}",
            ready.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get_ok(&client, "web.localhost").await,
        "hello from busybox\n"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_crashed_is_failed_with_its_exit_code() {
    let Some(podman) = Podman::start("crash").await else {
        return;
    };
    let pairs = managed("8080");
    podman.create_running("broken", &labels(&pairs), &[], &["/bin/sh", "-c", "exit 3"]);
    podman.start_container("broken");
    podman.wait_state("broken", "exited", WAIT).await;
    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    // Discovery takes a stopped container as asleep, whatever its exit code.
    assert_eq!(engine.state("broken"), State::Asleep);
    // A request starts it and it exits at once: the wake fails with its exit code (or, if
    // the engine saw it running for a moment, the next discovery says why it stopped).
    let client = TestClient::new(engine.addr);
    let answer = client.get("broken.localhost", "/").await;
    assert!(answer.status.is_server_error(), "{}", answer.text());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reasons: Vec<String> = engine
            .events()
            .into_iter()
            .filter(|event| &*event.app.name == "broken")
            .filter_map(|event| match event.kind {
                EventKind::StartFailed { reason } | EventKind::Exited { reason } => Some(reason),
                _ => None,
            })
            .collect();
        if reasons.iter().any(|r| r.contains("exited with code 3")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure with the exit code: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_a_healthcheck_is_ready_once_healthy() {
    let Some(podman) = Podman::start("health").await else {
        return;
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let check = format!("/bin/busybox wget -q -O /dev/null http://{listen}/");
    let mut pairs = managed(&port.to_string());
    pairs.push(("paastis.strategy", "hold".to_owned()));
    // Without systemd, podman runs no health timer: the check runs when the test says.
    podman.create_running(
        "checked",
        &labels(&pairs),
        &["--health-cmd", &check, "--health-interval", "disable"],
        &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
    );
    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    let client = TestClient::new(engine.addr);
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.get("checked.localhost", "/").await }
    });
    // Running, its health `starting`: the engine keeps waiting.
    podman.wait_state("checked", "running", WAIT).await;
    let health = || podman.cli_ok(&["inspect", "--format", "{{.State.Health.Status}}", "checked"]);
    assert_eq!(health(), "starting");
    assert_eq!(engine.state("checked"), State::Waking);
    assert!(!request.is_finished());
    // Healthy: the held request is answered.
    podman.cli_ok(&["healthcheck", "run", "checked"]);
    assert_eq!(health(), "healthy");
    let answer = request.await.expect("the request completes");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(engine.state("checked"), State::Awake);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_docker_host_over_tcp_and_says_when_it_cannot() {
    let Some(mut podman) = Podman::start("tcp").await else {
        return;
    };
    let port = free_port();
    podman.create("api", port, &labels(&managed(&port.to_string())));
    let host = podman.serve_tcp().await;
    let dir = support::TempDir::new("docker-check");
    let config = dir.path("paastis.yaml");
    // No `host:`: DOCKER_HOST says where the engine is.
    std::fs::write(&config, "providers:\n  - {id: containers, type: docker}\n").expect("config");
    let check = || async {
        support::Outcome::from(
            support::paastis()
                .args(["check", "--config", &config.to_string_lossy()])
                .env("DOCKER_HOST", &host)
                .env_remove("DOCKER_CERT_PATH")
                .env_remove("DOCKER_TLS_VERIFY")
                .output()
                .await
                .expect("paastis check runs"),
        )
    };
    let found = check().await;
    assert_eq!(found.code, Some(0), "{}{}", found.stdout, found.stderr);
    let row = found
        .stdout
        .lines()
        .find(|line| line.starts_with("containers"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(row, ["containers", "docker", "1", "ok"], "{}", found.stdout);
    assert!(found.stdout.contains("api"), "{}", found.stdout);

    podman.stop_tcp();
    let failed = check().await;
    assert_ne!(failed.code, Some(0));
    let output = format!("{}{}", failed.stdout, failed.stderr);
    let address = host.replace("tcp://", "http://");
    assert!(
        output.contains(&format!("the container engine at {address}")),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_started_and_stopping_a_stopped_container_succeed() {
    let Some(podman) = Podman::start("idempotent").await else {
        return;
    };
    let port = free_port();
    podman.create("web", port, &labels(&managed(&port.to_string())));
    let loaded = paastis::config::load_str(
        &config(&podman, "1h", ""),
        &Default::default(),
        &Default::default(),
    )
    .expect("config");
    let provider = loaded
        .config
        .providers
        .iter()
        .find_map(|p| match p {
            ProviderConfig::Docker(docker) => Some(ProviderConfig::Docker(docker.clone())),
            _ => None,
        })
        .expect("the docker provider")
        .build()
        .expect("built");
    assert_eq!(
        provider.status("web").await.expect("status"),
        AppStatus::Stopped
    );
    let started = provider.start("web", None).await.expect("start");
    assert_eq!(
        started.upstream.map(|u| u.to_string()),
        Some(format!("http://127.0.0.1:{port}"))
    );
    // Already started: the Engine answers 304, which is success.
    provider.start("web", None).await.expect("start again");
    assert_eq!(podman.state("web"), "running");
    let stopped = provider.stop("web").await.expect("stop");
    assert_eq!(
        stopped.formation.map(|f| f.into_iter().collect::<Vec<_>>()),
        Some(vec![("container".to_owned(), 1)])
    );
    assert_eq!(
        provider.status("web").await.expect("status"),
        AppStatus::Stopped
    );
    // Already stopped: nothing to remember, no error.
    let again = provider.stop("web").await.expect("stop again");
    assert_eq!(again.formation, None);
    assert!(matches!(
        provider.status("gone").await,
        Err(paastis::providers::ProviderError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_key_contents_never_reach_the_logs() {
    // No engine needed: a TLS host with a key that is not a key, then an unreachable one.
    let dir = support::TempDir::new("docker-tls");
    let marker = "PRIVATE-KEY-MATERIAL-0042";
    std::fs::write(
        dir.path("key.pem"),
        format!("-----BEGIN PRIVATE KEY-----\n{marker}\n"),
    )
    .expect("key");
    std::fs::write(dir.path("cert.pem"), format!("not a cert {marker}\n")).expect("cert");
    let config = dir.path("paastis.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  - {{id: containers, type: docker, host: 'tcp://127.0.0.1:9', \
             cert_path: '{}', tls_verify: false}}\n",
            dir.0.display()
        ),
    )
    .expect("config");
    let output = support::paastis()
        .args([
            "serve",
            "--config",
            &config.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("LOG_FORMAT", "json")
        .output()
        .await
        .expect("paastis runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("key.pem"),
        "the error names the file: {stderr}"
    );
    assert!(!stderr.contains(marker), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(marker));
}

#[test]
fn bad_entries_are_refused_with_their_path() {
    let load = |entry: &str| {
        paastis::config::load_str(
            &format!("providers:\n  - {entry}\n"),
            &Default::default(),
            &Default::default(),
        )
        .err()
        .map(|errors| errors.to_string())
        .unwrap_or_default()
    };
    let ssh = load("{id: d, type: docker, host: 'ssh://me:pw@host'}");
    assert!(ssh.contains("providers[0].host"), "{ssh}");
    assert!(!ssh.contains("pw"), "the address is not echoed: {ssh}");
    let relative = load("{id: d, type: docker, host: 'unix://docker.sock'}");
    assert!(relative.contains("must be absolute"), "{relative}");
    let version = load("{id: d, type: docker, api_version: latest}");
    assert!(
        version.contains("providers[0].api_version") && version.contains("1.43"),
        "{version}"
    );
    let flag = load("{id: d, type: docker, tls_verify: maybe}");
    assert!(flag.contains("providers[0].tls_verify"), "{flag}");
    let unknown = load("{id: d, type: docker, sock: /x}");
    assert!(unknown.contains("providers[0].sock"), "{unknown}");
    assert_eq!(
        load("{id: d, type: docker, host: 'tcp://10.0.0.5:2376'}"),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_waits_for_the_port_and_starts_the_container_once() {
    let Some(podman) = Podman::start("storm").await else {
        return;
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut pairs = managed(&port.to_string());
    pairs.push(("paastis.strategy", "hold".to_owned()));
    // No healthcheck, and a server that listens only once the test says so (a file in a
    // shared directory), however slow the machine: running is not ready until the port
    // accepts.
    let signal = podman.path("signal");
    std::fs::create_dir_all(&signal).expect("signal directory");
    let mount = format!("{}:/signal", signal.display());
    let late = format!(
        "while [ ! -e /signal/go ]; do sleep 0.1; done; exec /bin/busybox httpd -f -p {listen} -h /www"
    );
    podman.create_running(
        "late",
        &labels(&pairs),
        &["--volume", &mount],
        &["/bin/sh", "-c", &late],
    );
    let engine = TestEngine::start(&config(&podman, "1h", "")).await;
    let client = TestClient::new(engine.addr);

    let requests: Vec<_> = (0..30)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("late.localhost", "/").await })
        })
        .collect();
    podman.wait_state("late", "running", WAIT).await;
    assert_eq!(
        engine.state("late"),
        State::Waking,
        "running, its port not accepting yet"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(engine.state("late"), State::Waking, "still not accepting");
    assert!(
        requests.iter().all(|request| !request.is_finished()),
        "no request is answered before the app can answer it"
    );
    std::fs::write(signal.join("go"), b"").expect("signal the server");
    for request in requests {
        let answer = request.await.expect("the request completes");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from busybox\n");
    }
    assert_eq!(engine.state("late"), State::Awake);
    assert_eq!(
        engine.count("late", |kind| matches!(kind, EventKind::Started { .. })),
        1,
        "one start for the whole storm"
    );
    engine.stop().await;
}
