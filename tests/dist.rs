//! What users install, black-box from the built binary: the release tarball of
//! `scripts/dist.sh` (its files, its checksum, its binary runs), and the npm packages of
//! `scripts/npm.sh` installed offline into a scratch project, where `npx paastis` runs the
//! binary (version, `apps list` against a running engine, exit codes, SIGTERM passed on) and
//! an unsupported platform gets a clear message. The npm test is skipped, saying so, only
//! when `node` or `npm` is not installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{TempDir, serve, upstream_command};
use tokio::io::{AsyncBufReadExt, BufReader};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_paastis")
}

/// Runs a command to completion; panics when it cannot be started.
fn output(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// Like [`output`], and the command must succeed.
fn succeed(command: &mut Command) -> Output {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of the `key: value` line a script printed.
fn printed(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no `{key}:` line in: {stdout}"))
}

#[test]
fn dist_tarball_holds_the_binary_the_demo_and_a_checksum_that_verifies() {
    let dir = TempDir::new("dist-tarball");
    let out = dir.path("out");
    let run = succeed(
        Command::new(root().join("scripts/dist.sh"))
            .arg("--binary")
            .arg(binary())
            .arg("--out")
            .arg(&out),
    );
    let stdout = text(&run.stdout);

    let tarball = PathBuf::from(
        printed(&stdout, "tarball")
            .split(" (")
            .next()
            .unwrap_or_default(),
    );
    let file_name = tarball
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .to_owned();
    let triple = file_name
        .strip_prefix(&format!("paastis-{VERSION}-"))
        .and_then(|rest| rest.strip_suffix(".tar.gz"))
        .unwrap_or_else(|| panic!("unexpected tarball name {file_name}"))
        .to_owned();
    assert!(
        triple.starts_with(std::env::consts::ARCH) && triple.contains("-linux-"),
        "{triple}"
    );
    assert_eq!(tarball.parent(), Some(out.as_path()));

    // The minimum glibc, as the install page documents it.
    let glibc = printed(&stdout, "glibc");
    assert!(glibc.starts_with("2."), "glibc: {glibc}");

    // Exactly the expected files, in one top folder named like the tarball.
    let top = file_name.trim_end_matches(".tar.gz");
    let listing = succeed(Command::new("tar").arg("tzf").arg(&tarball));
    let mut files: Vec<String> = text(&listing.stdout)
        .lines()
        .filter(|entry| !entry.ends_with('/'))
        .map(str::to_owned)
        .collect();
    files.sort();
    let mut expected: Vec<String> = [
        "LICENSE",
        "README.md",
        "examples/hello.py",
        "examples/paastis.yml",
        "paastis",
    ]
    .iter()
    .map(|file| format!("{top}/{file}"))
    .collect();
    expected.sort();
    assert_eq!(files, expected);

    // The checksum file verifies with `sha256sum -c`, and fails on a changed tarball.
    let sums = out.join(format!("{file_name}.sha256"));
    let sums_text = std::fs::read_to_string(&sums).expect("read the .sha256 file");
    assert!(
        sums_text.ends_with(&format!("  {file_name}\n")),
        "{sums_text}"
    );
    let check = succeed(
        Command::new("sha256sum")
            .arg("-c")
            .arg(sums.file_name().unwrap_or_default())
            .current_dir(&out),
    );
    assert_eq!(text(&check.stdout).trim(), format!("{file_name}: OK"));
    let mut bytes = std::fs::read(&tarball).expect("read tarball");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let tampered = dir.path("tampered");
    std::fs::create_dir_all(&tampered).expect("create dir");
    std::fs::write(tampered.join(&file_name), &bytes).expect("write tampered copy");
    std::fs::copy(&sums, tampered.join(sums.file_name().unwrap_or_default())).expect("copy sums");
    let bad = output(
        Command::new("sha256sum")
            .arg("-c")
            .arg(sums.file_name().unwrap_or_default())
            .current_dir(&tampered),
    );
    assert!(!bad.status.success(), "a changed tarball verified");

    // Unpacked, the binary runs and says its version; the demo is beside it.
    let unpacked = dir.path("unpacked");
    std::fs::create_dir_all(&unpacked).expect("create dir");
    succeed(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    );
    let version = succeed(Command::new(unpacked.join(top).join("paastis")).arg("--version"));
    assert_eq!(text(&version.stdout).trim(), format!("paastis {VERSION}"));
    let demo = std::fs::read_to_string(unpacked.join(top).join("examples/paastis.yml"))
        .expect("read the demo config");
    assert!(demo.contains("examples/hello.py"), "{demo}");

    // A wrong argument is refused, not ignored.
    let wrong = output(Command::new(root().join("scripts/dist.sh")).arg("--binray"));
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong.stderr));
    // --no-pgo says how to build the binary: given one too, it says so rather than pick one.
    let both = output(
        Command::new(root().join("scripts/dist.sh")).args(["--no-pgo", "--binary", "paastis"]),
    );
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    assert!(
        text(&both.stderr).contains("--no-pgo"),
        "{}",
        text(&both.stderr)
    );
}

/// Without `--binary`, the tarball's binary is the profile-guided build: with no
/// llvm-profdata, `dist.sh` stops before building anything, says what is missing and how to
/// build without a profile, and packages nothing.
#[test]
fn dist_builds_with_a_profile_by_default_and_says_what_it_lacks() {
    let dir = TempDir::new("dist-pgo");
    let out = dir.path("out");
    let missing = dir.path("no-such-llvm-profdata");
    let run = output(
        Command::new(root().join("scripts/dist.sh"))
            .arg("--out")
            .arg(&out)
            .env("LLVM_PROFDATA", &missing)
            .env("CARGO_TARGET_DIR", dir.path("target")),
    );
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("llvm-profdata"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("--no-pgo"), "{stderr}");
    // Nothing built, nothing packaged.
    assert!(!dir.path("target").exists(), "a build started: {stderr}");
    assert!(!out.exists(), "{stderr}");
}

/// Whether `tool --version` runs.
fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The npm scratch project: its folder, and the npm settings that keep it off any registry
/// and off the user's cache and configuration.
#[derive(Clone)]
struct Project {
    /// The project folder (package.json, .npmrc with a dead registry, node_modules).
    dir: PathBuf,
    /// An npm cache of its own, empty at first, so nothing cached elsewhere is used.
    cache: PathBuf,
    /// An empty user configuration, so the user's ~/.npmrc adds no registry or token.
    userconfig: PathBuf,
}

impl Project {
    /// `program` run in the project, with no `PAASTIS_*` setting inherited, an in-memory
    /// database and a free admin port (as `support::paastis` sets them).
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars() {
            if name.starts_with("PAASTIS_") || name.starts_with("npm_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .current_dir(&self.dir)
            .env("npm_config_cache", &self.cache)
            .env("npm_config_userconfig", &self.userconfig)
            .env("npm_config_update_notifier", "false")
            .env("PAASTIS_DATABASE__URL", "sqlite::memory:")
            .env("PAASTIS_ADMIN__LISTEN", "127.0.0.1:0");
        command
    }

    /// `npx --offline paastis <args>`.
    fn npx(&self, args: &[&str]) -> Output {
        output(
            self.command("npx")
                .arg("--offline")
                .arg("paastis")
                .args(args),
        )
    }

    /// `node [-r preload] node_modules/paastis/bin/paastis.js <args>`.
    fn wrapper(&self, preload: Option<&str>, args: &[&str]) -> Output {
        let mut command = self.command("node");
        if let Some(preload) = preload {
            command.arg("-r").arg(format!("./{preload}"));
        }
        output(
            command
                .arg("node_modules/paastis/bin/paastis.js")
                .args(args),
        )
    }
}

/// The npm name of this machine's CPU (`process.arch`).
fn node_cpu() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => panic!("no npm package for {other}"),
    }
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Whether process `pid` has a handler for `signal` (its `SigCgt` mask in /proc).
fn catches(pid: i32, signal: nix::sys::signal::Signal) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status
                .lines()
                .find_map(|line| line.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (signal as i32 - 1)) != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npx_paastis_runs_the_binary_installed_offline_from_the_packed_tarballs() {
    if !installed("node") || !installed("npm") || !installed("npx") {
        eprintln!(
            "SKIPPED npx_paastis_runs_the_binary_installed_offline_from_the_packed_tarballs: \
             node and npm are not installed (Debian: apt-get install nodejs npm)"
        );
        return;
    }
    let dir = TempDir::new("dist-npm");

    // The committed wrapper carries Cargo.toml's version, and pins its platform packages to it.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("npm/paastis/package.json"))
            .expect("read npm/paastis/package.json"),
    )
    .expect("npm/paastis/package.json is JSON");
    assert_eq!(manifest["version"], VERSION);
    let optional = manifest["optionalDependencies"]
        .as_object()
        .expect("optionalDependencies");
    assert!(optional.contains_key(&format!("@paastis/linux-{}", node_cpu())));
    for (name, version) in optional {
        assert_eq!(version, VERSION, "{name}");
    }

    // Pack both packages from the binary under test.
    let packs = dir.path("packs");
    let packed = succeed(
        Command::new(root().join("scripts/npm.sh"))
            .arg("--binary")
            .arg(binary())
            .arg("--out")
            .arg(&packs),
    );
    let wrapper_tgz = PathBuf::from(printed(&text(&packed.stdout), "wrapper"));
    let platform_tgz = PathBuf::from(printed(&text(&packed.stdout), "platform"));
    assert_eq!(wrapper_tgz, packs.join(format!("paastis-{VERSION}.tgz")));
    assert_eq!(
        platform_tgz,
        packs.join(format!("paastis-linux-{}-{VERSION}.tgz", node_cpu()))
    );

    // A scratch project whose only registry is a dead port, and an empty cache: the install
    // can only succeed if npm fetches nothing (the other platform's optional package is
    // skipped, not downloaded).
    let project = Project {
        dir: dir.path("project"),
        cache: dir.path("npm-cache"),
        userconfig: dir.path("npmrc-user"),
    };
    std::fs::create_dir_all(&project.dir).expect("create project");
    std::fs::write(&project.userconfig, "").expect("write user npmrc");
    std::fs::write(
        project.dir.join(".npmrc"),
        "registry=http://127.0.0.1:9/\nfund=false\naudit=false\nfetch-retries=0\n",
    )
    .expect("write .npmrc");
    std::fs::write(
        project.dir.join("package.json"),
        r#"{"name": "scratch", "version": "1.0.0", "private": true}"#,
    )
    .expect("write package.json");
    succeed(
        project
            .command("npm")
            .args(["install", "--offline", "--no-audit", "--no-fund"])
            .arg(&wrapper_tgz)
            .arg(&platform_tgz),
    );
    let installed_binary = project.dir.join(format!(
        "node_modules/@paastis/linux-{}/bin/paastis",
        node_cpu()
    ));
    assert!(installed_binary.is_file(), "{}", installed_binary.display());
    let other = if node_cpu() == "x64" { "arm64" } else { "x64" };
    assert!(
        !project
            .dir
            .join(format!("node_modules/@paastis/linux-{other}"))
            .exists()
    );

    // The version, and the binary's own exit codes.
    let version = project.npx(&["--version"]);
    assert_eq!(version.status.code(), Some(0), "{}", text(&version.stderr));
    assert_eq!(text(&version.stdout).trim(), format!("paastis {VERSION}"));
    let unknown = project.npx(&["no-such-command"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    let unreachable = project.npx(&["apps", "list", "--api-url", "http://127.0.0.1:9"]);
    assert_eq!(unreachable.status.code(), Some(3));

    // `npx paastis apps list` against a running engine.
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  - id: local\n    type: process\n    apps:\n      - {{name: hello, \
             command: \"{}\", env: {{APP_NAME: hello}}}}\n",
            upstream_command()
        ),
    )
    .expect("write config");
    let mut engine = serve(&config, &[]).await;
    let admin = engine
        .logs()
        .lines()
        .find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            json.get("admin_addr")?.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no admin address logged: {}", engine.logs()));
    let api_url = format!("http://{admin}");
    let list = {
        let project = project.clone();
        tokio::task::spawn_blocking(move || project.npx(&["apps", "list", "--api-url", &api_url]))
            .await
            .expect("npx apps list")
    };
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    let table = text(&list.stdout);
    let row: Vec<&str> = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some("hello"))
        .unwrap_or_else(|| panic!("no row for hello: {table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1..3), Some(&["local", "asleep"][..]), "{table}");
    engine.child.start_kill().expect("stop the engine");
    let _ = engine.child.wait().await;

    // SIGTERM to the wrapper reaches the binary: it drains, exits 0, and so does the wrapper.
    let mut serving = tokio::process::Command::from({
        let mut command = project.command("node");
        command
            .arg("node_modules/paastis/bin/paastis.js")
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    })
    .kill_on_drop(true)
    .spawn()
    .expect("spawn the wrapper");
    let stderr = serving.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("proxy listening") {
                return;
            }
        }
        panic!("the engine ended before listening");
    })
    .await
    .expect("the engine listens within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let wrapper_pid = serving.id().expect("wrapper pid");
    let binaries = children(wrapper_pid);
    assert_eq!(binaries.len(), 1, "children of the wrapper: {binaries:?}");
    // The engine installs its SIGTERM handler a moment after it logs its address.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !catches(binaries[0], nix::sys::signal::Signal::SIGTERM) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the engine catches SIGTERM within 20 s");
    support::signal(
        i32::try_from(wrapper_pid).expect("pid"),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = tokio::time::timeout(Duration::from_secs(20), serving.wait())
        .await
        .expect("the wrapper exits within 20 s")
        .expect("wait for the wrapper");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        !support::process_running(binaries[0]),
        "the binary outlived the wrapper"
    );

    // Platforms without a prebuilt binary get a clear message and exit 1, simulated by a
    // preloaded script (nothing of it ships).
    std::fs::write(
        project.dir.join("fake-platform.js"),
        "Object.defineProperty(process, 'platform', {value: 'darwin'});\n\
         Object.defineProperty(process, 'arch', {value: 'arm64'});\n",
    )
    .expect("write fake-platform.js");
    std::fs::write(
        project.dir.join("fake-musl.js"),
        "const real = process.report.getReport.bind(process.report);\n\
         process.report.getReport = () => { const report = real(); \
         delete report.header.glibcVersionRuntime; return report; };\n",
    )
    .expect("write fake-musl.js");
    let darwin = project.wrapper(Some("fake-platform.js"), &["--version"]);
    assert_eq!(darwin.status.code(), Some(1));
    let message = text(&darwin.stderr);
    assert!(
        message.starts_with("paastis: no prebuilt binary for darwin-arm64;")
            && message.contains("cargo install --locked paastis"),
        "{message}"
    );
    assert!(darwin.stdout.is_empty());
    let musl = project.wrapper(Some("fake-musl.js"), &["--version"]);
    assert_eq!(musl.status.code(), Some(1));
    let message = text(&musl.stderr);
    assert!(
        message.contains(&format!(
            "no prebuilt binary for linux-{} with musl libc",
            node_cpu()
        )) && message.contains("cargo install"),
        "{message}"
    );
    // The same wrapper, unhindered, runs the binary: the messages above are the platform's.
    let real = project.wrapper(None, &["--version"]);
    assert_eq!(text(&real.stdout).trim(), format!("paastis {VERSION}"));

    // Optional dependencies omitted: the missing package is named.
    std::fs::rename(
        project.dir.join("node_modules/@paastis"),
        project.dir.join("omitted"),
    )
    .expect("move the platform package away");
    let missing = project.npx(&["--version"]);
    assert_eq!(missing.status.code(), Some(1));
    let message = text(&missing.stderr);
    assert!(
        message.contains(&format!(
            "the package @paastis/linux-{} is not installed",
            node_cpu()
        )) && message.contains("cargo install"),
        "{message}"
    );
}
