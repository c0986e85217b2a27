//! The container image, black-box: `scripts/image.sh` builds it around the binary under test
//! (prebuilt mode; this is the debug binary, which only makes the image bigger), podman runs
//! it with its configuration from environment variables alone, and the test checks what a
//! container user relies on: a request through the container reaches an app of a (fake)
//! platform, the dashboard and API answer at `admin.host` on the proxy port only with the
//! token, the health check passes, the SQLite file lands in the `/data` volume, the engine
//! runs as a non-root user under tini, and `podman stop` ends it within the drain timeout with
//! exit code 0 and no process left.
//!
//! Skipped (with a message saying why) only where podman cannot run containers: podman is
//! missing, or a trivial `podman run` of the base image fails. The base images are cached
//! by scripts/image.sh (PAASTIS_IMAGE_CACHE, /var/tmp/paastis-image by default), so only the
//! first run on a machine builds them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use support::TestClient;
use support::fakes::scalingo::FakeScalingo;

/// The fake platform's API token (given to the container as a provider setting).
const SCALINGO_TOKEN: &str = "tk-us-image-test-scalingo-0001";
/// The admin token.
const ADMIN_TOKEN: &str = "image-test-admin-token-0123456789";
/// The Host the dashboard and API answer on, on the proxy port.
const ADMIN_HOST: &str = "paastis.localhost";
/// How long the engine may drain at shutdown; `podman stop` waits a little longer.
const DRAIN: Duration = Duration::from_secs(5);
/// What `podman stop -t` waits beyond the drain before SIGKILL.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The containers.conf podman needs on these machines (runc, no default ulimits), unless the
/// environment already names one.
fn containers_conf() -> Option<PathBuf> {
    if std::env::var_os("CONTAINERS_CONF").is_some() {
        return None;
    }
    let cache = std::env::var_os("PAASTIS_IMAGE_CACHE")
        .map_or_else(|| PathBuf::from("/var/tmp/paastis-image"), PathBuf::from);
    std::fs::create_dir_all(&cache).expect("cache directory");
    let path = cache.join("containers.conf");
    std::fs::write(
        &path,
        "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n",
    )
    .expect("containers.conf");
    Some(path)
}

/// `podman --runtime runc ARGS`, with the containers.conf above.
fn podman(conf: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new("podman");
    command.arg("--runtime").arg("runc").args(args);
    if let Some(conf) = conf {
        command.env("CONTAINERS_CONF", conf);
    }
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("podman {args:?}: {error}"))
}

/// Stdout of `podman ARGS`; panics with its stderr when it fails.
fn podman_ok(conf: Option<&Path>, args: &[&str]) -> String {
    let output = podman(conf, args);
    assert!(
        output.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes the container and the image tag the test made, whatever happens.
struct Cleanup {
    conf: Option<PathBuf>,
    container: String,
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let conf = self.conf.as_deref();
        let _ = podman(conf, &["rm", "--force", "--volumes", &self.container]);
        let _ = podman(conf, &["rmi", "--force", &self.tag]);
    }
}

/// A port free on 127.0.0.1 a moment ago (the container binds it on the host's network).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_proxies_serves_the_dashboard_and_stops_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: podman is not installed (apt-get install -y podman uidmap runc)");
        return;
    }
    let conf = containers_conf();
    let conf = conf.as_deref();

    // The base image (cached), then the probe: can podman run a container here at all?
    let script = root.join("scripts/image.sh");
    let base = Command::new(&script)
        .arg("--base-only")
        .status()
        .expect("scripts/image.sh runs");
    assert!(base.success(), "scripts/image.sh --base-only failed");
    let probe = podman(
        conf,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "docker.io/library/debian:bookworm-slim",
            "true",
        ],
    );
    if !probe.status.success() {
        eprintln!(
            "skipped: podman cannot run containers here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }

    let id = std::process::id();
    let cleanup = Cleanup {
        conf: conf.map(Path::to_path_buf),
        container: format!("paastis-image-test-{id}"),
        tag: format!("localhost/paastis-image-test:{id}"),
    };
    let built = Command::new(&script)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_paastis"),
            "--tag",
            &cleanup.tag,
        ])
        .output()
        .expect("scripts/image.sh runs");
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "scripts/image.sh failed:\n{log}");
    assert!(log.contains("bytes ("), "the size is printed:\n{log}");

    // What the image declares.
    let declared = podman_ok(
        conf,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}|{{json .Config.Healthcheck}}",
            &cleanup.tag,
        ],
    );
    assert!(declared.starts_with("paastis:paastis|/data|"), "{declared}");
    assert!(declared.contains("\"/data\""), "{declared}");
    assert!(declared.contains("3000/tcp"), "{declared}");
    assert!(declared.contains("/health"), "{declared}");

    // A platform with one app, asleep; its web process is a real HTTP server on the host.
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let shop = fake.add_app("shop", &[("web", 1)], false).await;
    let port = free_port();
    let port_text = port.to_string();
    let drain = format!("{}s", DRAIN.as_secs());
    let env: Vec<(&str, &str)> = vec![
        ("PORT", &port_text),
        ("PAASTIS_ADMIN__HOST", ADMIN_HOST),
        ("PAASTIS_ADMIN__TOKEN", ADMIN_TOKEN),
        // The only way in is the proxy port, as on a PaaS; the health check follows it.
        ("PAASTIS_ADMIN__LISTEN", "off"),
        ("HEALTHCHECK_PORT", &port_text),
        ("HEALTHCHECK_HOST", ADMIN_HOST),
        ("PAASTIS_PROXY__DRAIN_TIMEOUT", &drain),
        ("PAASTIS_PROVIDERS__0__ID", "scalingo-fr1"),
        ("PAASTIS_PROVIDERS__0__TYPE", "scalingo"),
        ("PAASTIS_PROVIDERS__0__TOKEN", SCALINGO_TOKEN),
        ("PAASTIS_PROVIDERS__0__API_URL", &fake.url),
        ("PAASTIS_PROVIDERS__0__AUTH_URL", &fake.url),
    ];
    let mut run: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &cleanup.container,
        "--network",
        "host",
        // podman's health timers need systemd; the check is run by hand below.
        "--health-interval",
        "disable",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, value) in &env {
        run.push("--env".into());
        run.push(format!("{name}={value}"));
    }
    run.push(cleanup.tag.clone());
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    podman_ok(conf, &run);
    let logs = || {
        let output = podman(conf, &["logs", &cleanup.container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };

    // Up when the proxy port answers (the admin host's /health, no token needed).
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let client = TestClient::new(addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.try_get(ADMIN_HOST, "/health").await {
            Ok(answer) if answer.status == 200 => break,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => panic!("the container never answered: {outcome:?}\n{}", logs()),
        }
    }

    // The image's HEALTHCHECK, as the engine's health timers would run it.
    let health = podman(conf, &["healthcheck", "run", &cleanup.container]);
    assert!(
        health.status.success(),
        "healthcheck: {}{}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );

    // A request for the app wakes it on the platform and is proxied to it.
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), logs());
    assert_eq!(answer.text(), "hello from shop");
    assert!(shop.is_up());
    assert_eq!(fake.formation("shop"), vec![("web".to_owned(), 1)]);

    // The API at admin.host: refused without the token, answered with it; never an app.
    let refused = client.get(ADMIN_HOST, "/api/v1/apps").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let apps = client
        .send(
            "GET",
            ADMIN_HOST,
            "/api/v1/apps",
            &[("authorization", &bearer)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(apps.status, 200, "{}", apps.text());
    assert!(apps.text().contains("\"shop\""), "{}", apps.text());
    let dashboard = client
        .send(
            "GET",
            ADMIN_HOST,
            "/",
            &[("authorization", &bearer)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.text());
    assert!(dashboard.text().contains("shop"), "{}", dashboard.text());

    // The database is the SQLite file in the volume; nothing runs as root; tini is PID 1.
    podman_ok(
        conf,
        &["exec", &cleanup.container, "test", "-s", "/data/paastis.db"],
    );
    let processes = podman_ok(conf, &["top", &cleanup.container, "user", "hpid", "args"]);
    let rows: Vec<&str> = processes.lines().skip(1).collect();
    assert!(
        rows.iter().all(|row| row.starts_with("paastis ")),
        "{processes}"
    );
    assert!(
        rows.iter().any(|row| row.contains("/usr/bin/tini")),
        "{processes}"
    );
    assert!(
        rows.iter()
            .any(|row| row.contains("/usr/local/bin/paastis")),
        "{processes}"
    );
    let pids: Vec<i32> = rows
        .iter()
        .filter_map(|row| row.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), rows.len(), "{processes}");

    // SIGTERM: drained and stopped within the drain timeout, exit 0, no process left.
    let timeout = (DRAIN + STOP_MARGIN).as_secs().to_string();
    let started = Instant::now();
    podman_ok(conf, &["stop", "--time", &timeout, &cleanup.container]);
    let took = started.elapsed();
    let state = podman_ok(
        conf,
        &[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            &cleanup.container,
        ],
    );
    let logs = logs();
    // Within the stop timeout, or podman would have sent SIGKILL: exit code 137, not 0 (no
    // bound on the wall time here: a loaded machine may take longer to get there).
    assert_eq!(state, "exited 0", "podman stop took {took:?}\n{logs}");
    assert!(logs.contains("\"signal\":\"SIGTERM\""), "{logs}");
    for pid in pids {
        assert!(
            !support::process_running(pid),
            "process {pid} outlived the container"
        );
    }
    assert!(
        !logs.contains(SCALINGO_TOKEN) && !logs.contains(ADMIN_TOKEN),
        "a token reached the logs"
    );
    drop(cleanup);
}
