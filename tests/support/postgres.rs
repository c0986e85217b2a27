//! A throwaway PostgreSQL for tests, and a fresh database on it per test.
//!
//! With `PAASTIS_TEST_POSTGRES_URL` set (`postgres://user:password@host:port`, a server
//! someone else runs), each test gets a new database there (left behind afterwards).
//! Otherwise the first test of the binary starts a server: `initdb` into a temporary folder,
//! `postgres` on 127.0.0.1 and a free port (fsync off, unix socket in that folder), with
//! password authentication over TCP. As root (CI), both run as the `postgres` user, which
//! Debian's package creates, because `initdb` refuses to run as root.
//!
//! The server is watched by a small shell supervisor that reads its stdin until end of file:
//! when this process exits (however it exits) the pipe closes, and the supervisor stops the
//! server and removes the folder. [`Server`] is also a guard that does the same on drop.
//!
//! No PostgreSQL binaries: the tests fail and say to run `./scripts/test.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{ConnectOptions, Connection};
use tokio::sync::OnceCell;

/// The environment variable naming an existing server.
pub const URL_VAR: &str = "PAASTIS_TEST_POSTGRES_URL";

/// A database for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Its URL, credentials included.
    pub url: String,
    /// The server's `postgres://user:password@host:port` (no database).
    pub server: String,
    /// The password in the URL, when the server checks passwords (the server this module
    /// starts does; one given by [`URL_VAR`] may not).
    pub checked_password: Option<String>,
}

/// Where test databases are created.
struct Base {
    /// `postgres://user:password@host:port`, no database.
    server: String,
    /// The password, when the server checks it.
    checked_password: Option<String>,
    /// The server this process started, if it did (kept for the process's life).
    _server: Option<Mutex<Server>>,
}

static BASE: OnceCell<Result<Base, String>> = OnceCell::const_new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database; starts the shared server first if needed. Panics with the reason
/// (and what to do) when no server can be had.
pub async fn database() -> TestDatabase {
    let base = BASE
        .get_or_init(|| async {
            match std::env::var(URL_VAR) {
                Ok(url) if !url.trim().is_empty() => Ok(Base {
                    server: server_part(url.trim()),
                    checked_password: None,
                    _server: None,
                }),
                _ => Server::start().await.map(|server| Base {
                    server: server.url(),
                    checked_password: Some(server.password.clone()),
                    _server: Some(Mutex::new(server)),
                }),
            }
        })
        .await;
    let base = match base {
        Ok(base) => base,
        Err(error) => panic!("no PostgreSQL for the tests: {error}"),
    };
    let name = format!(
        "paastis_test_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("{}/postgres", base.server);
    let mut connection = sqlx::postgres::PgConnectOptions::from_str(&admin)
        .unwrap_or_else(|error| panic!("bad server URL: {error}"))
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test PostgreSQL: {error}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
    let _ = connection.close().await;
    TestDatabase {
        url: format!("{}/{name}", base.server),
        server: base.server.clone(),
        checked_password: base.checked_password.clone(),
    }
}

/// `postgres://user:password@host:port` from a URL that may name a database.
fn server_part(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let after = scheme_end + 3;
    let authority_from = url[after..].rfind('@').map_or(after, |at| after + at);
    match url[authority_from..].find(['/', '?']) {
        Some(end) => url[..authority_from + end].to_owned(),
        None => url.to_owned(),
    }
}

/// A PostgreSQL server in a temporary folder; stopped and removed on drop.
pub struct Server {
    /// The supervisor; closing its stdin stops the server and removes `dir`.
    supervisor: Child,
    /// The supervisor's stdin (dropped to stop).
    stdin: Option<ChildStdin>,
    /// The temporary folder: data, socket, log.
    pub dir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The password of the `postgres` role.
    pub password: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Who initdb and postgres run as, when running as root (otherwise they run as we do).
struct RunAs {
    /// Its user id.
    uid: u32,
    /// Its primary group id.
    gid: u32,
}

impl Server {
    /// Starts a server (initdb takes a few seconds). Tries three times (another process may
    /// take the free port between finding it and the server binding it).
    pub async fn start() -> Result<Server, String> {
        let bin = find_binaries()?;
        let run_as = run_as()?;
        let mut last_error = String::new();
        for _ in 0..3 {
            match Server::try_start(&bin, &run_as).await {
                Ok(server) => return Ok(server),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    async fn try_start(bin: &Path, run_as: &Option<RunAs>) -> Result<Server, String> {
        // As root, /tmp: the `postgres` user must reach the folder, which a private TMPDIR
        // would not let it.
        let tmp = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tmp.join(format!(
            "paastis-pg-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let prepared = prepare(bin, run_as, &dir).await;
        let password = match prepared {
            Ok(password) => password,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(error);
            }
        };
        Server::serve(bin, &dir, run_as, password).await
    }

    /// Starts `postgres` on a free port under the supervisor, and waits until it answers.
    async fn serve(
        bin: &Path,
        dir: &Path,
        run_as: &Option<RunAs>,
        password: String,
    ) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let log = dir.join("postgres.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        // Runs the server, waits for its stdin to close (the guard dropped, or this process
        // gone), then stops the server (fast shutdown) and removes the folder.
        let script = r#"dir=$1; shift
"$@" &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir""#;
        let mut supervisor = Command::new("sh");
        supervisor
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "ssl=on",
            ])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        // Its own process group: a Ctrl-C in the terminal reaches the tests, not the
        // supervisor, which then cleans up once the tests are gone.
        std::os::unix::process::CommandExt::process_group(&mut supervisor, 0);
        as_user(&mut supervisor, run_as);
        let mut child = match supervisor.spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(dir);
                return Err(format!("cannot start postgres: {error}"));
            }
        };
        let stdin = child.stdin.take();
        let server = Server {
            supervisor: child,
            stdin,
            dir: dir.to_owned(),
            port,
            password,
        };
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("postgres")
            .password(&server.password)
            .database("postgres");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match options.connect().await {
                Ok(connection) => {
                    let _ = connection.close().await;
                    return Ok(server);
                }
                Err(error) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    // The server gave up (port taken, bad setting): it says so and stops.
                    let gave_up = log.contains("database system is shut down")
                        || log.contains("could not create any TCP/IP sockets");
                    if gave_up || tokio::time::Instant::now() > deadline {
                        // Dropping the guard removes the folder.
                        drop(server);
                        return Err(format!(
                            "postgres did not accept connections ({error}); its log:\n{log}"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}",
            self.password, self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its stdin tells the supervisor to stop the server and remove the folder.
        drop(self.stdin.take());
        let _ = self.supervisor.wait();
    }
}

/// Creates the folder and runs initdb in it; returns the `postgres` role's password.
async fn prepare(bin: &Path, run_as: &Option<RunAs>, dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let password = format!("pw-{:016x}", fastrand::u64(..));
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n"))
        .map_err(|e| format!("cannot write {}: {e}", pwfile.display()))?;
    if let Some(user) = run_as {
        for path in [dir, &pwfile] {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
    }
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .current_dir(dir)
        .stdin(Stdio::null());
    as_user(&mut initdb, run_as);
    let output = tokio::task::spawn_blocking(move || initdb.output())
        .await
        .map_err(|e| format!("initdb: {e}"))?
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // TLS on, as the platforms' databases have it (some require it): the test certificate
    // for `localhost`, signed by the suite's own CA (tests/support/tls).
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls");
    for (from, to) in [
        ("localhost.pem", "server.crt"),
        ("localhost.key", "server.key"),
    ] {
        let target = dir.join("data").join(to);
        std::fs::copy(tls.join(from), &target)
            .map_err(|e| format!("cannot copy {from} to {}: {e}", target.display()))?;
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("cannot chmod {}: {e}", target.display()))?;
        if let Some(user) = run_as {
            std::os::unix::fs::chown(&target, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("cannot chown {}: {e}", target.display()))?;
        }
    }
    Ok(password)
}

/// `pg_dump`, beside the server binaries (or on PATH).
pub fn pg_dump() -> PathBuf {
    find_binaries()
        .map(|bin| bin.join("pg_dump"))
        .unwrap_or_else(|_| PathBuf::from("pg_dump"))
}

/// The folder holding `initdb` and `postgres`: on PATH, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package).
fn find_binaries() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in on_path {
        let initdb = dir.join("initdb");
        if initdb.is_file() {
            // Follow symbolic links: postgres sits beside the real initdb.
            let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(bin) = real.parent()
                && bin.join("postgres").is_file()
            {
                return Ok(bin.to_owned());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "PostgreSQL server binaries (initdb, postgres) are not on PATH nor under \
             /usr/lib/postgresql/*/bin: run ./scripts/test.sh (it installs Debian's \
             `postgresql` package), or set {URL_VAR}=postgres://user:password@host:port"
        )
    })
}

/// As root: the `postgres` user's ids (initdb refuses to run as root).
fn run_as() -> Result<Option<RunAs>, String> {
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let uid = id(&["-u", "postgres"]).map_err(|e| {
        format!(
            "running as root, the test server must run as the `postgres` user, which does not \
             exist ({e}): run ./scripts/test.sh (it installs Debian's `postgresql` package)"
        )
    })?;
    let gid = id(&["-g", "postgres"])?;
    Ok(Some(RunAs { uid, gid }))
}

/// `id <args>` as a number.
fn id(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "id {} said: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

fn as_user(command: &mut Command, run_as: &Option<RunAs>) {
    if let Some(user) = run_as {
        std::os::unix::process::CommandExt::uid(command, user.uid);
        std::os::unix::process::CommandExt::gid(command, user.gid);
    }
}
