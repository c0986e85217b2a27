//! Podman's Docker-compatible API, for the `docker` provider's tests: `podman system service`
//! on a unix socket in a temporary directory, with its own storage (`--root`, `--runroot`)
//! and `containers.conf` (runc, cgroupfs, no default ulimits), so tests share nothing with
//! each other or with the machine's containers. The image is made here: a busybox-static
//! rootfs (`sh`, `httpd`, `/www/index.html`) imported as `localhost/paastis-busybox`.
//!
//! [`Podman::start`] returns `None` (after printing why) only where podman cannot run a
//! container at all; everything else that fails panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Tells apart the services of one test process.
static SERVICES: AtomicUsize = AtomicUsize::new(0);

/// The image every test container runs.
pub const IMAGE: &str = "localhost/paastis-busybox:test";

/// The busybox the image is made of (`busybox-static`, installed by scripts/test.sh).
const BUSYBOX: &str = "/bin/busybox";

/// One podman API service and its storage.
pub struct Podman {
    /// Root of everything below (removed last); short, as podman refuses a run root longer
    /// than 50 characters.
    dir: ShortDir,
    /// `containers.conf`.
    conf: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The running `podman system service`, when it runs.
    service: Option<Child>,
    /// Services on TCP started by [`Podman::serve_tcp`], stopped on drop.
    tcp_services: Vec<Child>,
}

impl Podman {
    /// A service on a fresh socket with the image imported, or `None` when podman cannot
    /// run containers here (the reason is printed).
    pub async fn start(tag: &str) -> Option<Podman> {
        if Command::new("podman")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("skipped: podman is not installed (apt-get install -y podman runc)");
            return None;
        }
        if !Path::new(BUSYBOX).exists() {
            eprintln!("skipped: {BUSYBOX} is missing (apt-get install -y busybox-static)");
            return None;
        }
        let dir = ShortDir::new(tag);
        let conf = dir.path("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .expect("containers.conf");
        let mut podman = Podman {
            socket: dir.path("podman.sock"),
            dir,
            conf,
            service: None,
            tcp_services: Vec::new(),
        };
        podman.import_image();
        let probe = podman.cli(&[
            "run",
            "--rm",
            "--network",
            "host",
            IMAGE,
            "/bin/sh",
            "-c",
            "true",
        ]);
        if !probe.status.success() {
            eprintln!(
                "skipped: podman cannot run containers here: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return None;
        }
        podman.start_service().await;
        Some(podman)
    }

    /// `unix://<socket>`, for the provider's `host:`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `podman ARGS` on this storage.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.dir.path("root"))
            .arg("--runroot")
            .arg(self.dir.path("runroot"))
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("podman {args:?}: {error}"))
    }

    /// Stdout of `podman ARGS`; panics with its stderr when it fails.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Imports the busybox rootfs as [`IMAGE`].
    fn import_image(&self) {
        let rootfs = self.dir.path("rootfs");
        for sub in ["bin", "www", "tmp"] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("rootfs");
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
        for link in ["sh", "httpd"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(link)).expect("link");
        }
        std::fs::write(rootfs.join("www/index.html"), "hello from busybox\n").expect("index");
        let tar = self.dir.path("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar runs");
        assert!(status.success(), "tar failed");
        self.cli_ok(&["import", &tar.to_string_lossy(), IMAGE]);
    }

    /// Starts the API service and waits until it answers.
    pub async fn start_service(&mut self) {
        assert!(self.service.is_none(), "the service already runs");
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::File::create(self.dir.path("service.log")).expect("log");
        let child = Command::new("podman")
            .arg("--root")
            .arg(self.dir.path("root"))
            .arg("--runroot")
            .arg(self.dir.path("runroot"))
            .args(["system", "service", "--time=0"])
            .arg(self.host())
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("podman system service starts");
        self.service = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&self.socket) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.") && answer.contains(" 200 ") {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "podman's API service did not answer: {}",
                std::fs::read_to_string(self.dir.path("service.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts one more API service, on `tcp://127.0.0.1:<free port>` (plain HTTP), and
    /// returns that address once it answers.
    pub async fn serve_tcp(&mut self) -> String {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("podman")
            .arg("--root")
            .arg(self.dir.path("root"))
            .arg("--runroot")
            .arg(self.dir.path("runroot"))
            .args(["system", "service", "--time=0", &url])
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service starts");
        self.tcp_services.push(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream
                    .write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
                    .await;
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
                        .await;
                if String::from_utf8_lossy(&answer).contains(" 200 ") {
                    return url;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "podman's API service on {url} did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the services [`Podman::serve_tcp`] started.
    pub fn stop_tcp(&mut self) {
        for mut child in self.tcp_services.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the API service (the containers keep running) and removes its socket.
    pub async fn stop_service(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Creates (does not start) a container running busybox httpd on 127.0.0.1:`port` with
    /// host networking and these labels, stopped within a second; returns its id.
    pub fn create(&self, name: &str, port: u16, labels: &[(&str, &str)]) -> String {
        let listen = format!("127.0.0.1:{port}");
        self.create_running(
            name,
            labels,
            &[],
            &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
        )
    }

    /// A path in this service's own temporary directory, removed with it: for files a test
    /// shares with its containers through a bind mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }

    /// Creates (does not start) a container of [`IMAGE`] running `command`, with host
    /// networking, these labels and `options` for `podman create`, stopped within a second;
    /// returns its id.
    pub fn create_running(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        options: &[&str],
        command: &[&str],
    ) -> String {
        let mut args: Vec<String> = [
            "create",
            "--name",
            name,
            "--network",
            "host",
            "--stop-timeout",
            "1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for (key, value) in labels {
            args.push("--label".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.extend(options.iter().map(|s| (*s).to_owned()));
        args.push(IMAGE.to_owned());
        args.extend(command.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli_ok(&args)
    }

    /// `podman start NAME`.
    pub fn start_container(&self, name: &str) {
        self.cli_ok(&["start", name]);
    }

    /// `podman rm --force NAME`.
    pub fn remove(&self, name: &str) {
        self.cli_ok(&["rm", "--force", "--time", "0", name]);
    }

    /// The container's state (`running`, `exited`, `created`...).
    pub fn state(&self, name: &str) -> String {
        self.cli_ok(&["inspect", "--format", "{{.State.Status}}", name])
    }

    /// The container's id.
    pub fn id(&self, name: &str) -> String {
        self.cli_ok(&["inspect", "--format", "{{.Id}}", name])
    }

    /// Waits until the container is in `state`, or panics after `within`.
    pub async fn wait_state(&self, name: &str, state: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let now = self.state(name);
            if now == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is {now} after {within:?}, expected {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "--all", "--force", "--time", "0"]);
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_tcp();
        let _ = std::fs::remove_file(&self.socket);
        let _ = self.cli(&["rmi", "--all", "--force"]);
        // The storage's own mount, if podman left it.
        let _ = Command::new("umount")
            .arg(self.dir.path("root/overlay"))
            .stderr(Stdio::null())
            .status();
    }
}

/// A fresh directory with a short path (`/tmp/pdm-<pid>-<n>-<tag>`), removed on drop.
struct ShortDir(PathBuf);

impl ShortDir {
    fn new(tag: &str) -> ShortDir {
        let tag: String = tag.chars().take(8).collect();
        let n = SERVICES.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/pdm-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        ShortDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ShortDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on 127.0.0.1 a moment ago (the container binds it on the host's network).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}
