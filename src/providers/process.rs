//! The `process` provider: apps are local commands from the config, the embedded default.
//!
//! Start spawns `sh -c <command>` in its own process group, with `{port}` replaced, an
//! environment of a few of the engine's ordinary variables ([`crate::child_env`]), `PORT`
//! and the app's `env:`; the app is ready when its process is alive and its port accepts a connection. Stop
//! sends SIGTERM to the group, then SIGKILL after `stop_timeout`. A process that exits on its
//! own is reported through [`Provider::exits`]. Child output goes to the log, tagged with the
//! app. Each running process group is recorded in a small file (the `records` module), so
//! that what an engine killed with SIGKILL left running is stopped by the next engine that
//! runs the app, before it lists, starts or stops it. Its `providers:` entry (the apps, their
//! commands and ports) is read and checked here too ([`Platform`]). This module must not
//! decide when apps start or stop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, broadcast, watch};
use tokio::task::JoinSet;

use super::platform::{Facts, Platform};
use super::{
    AppExited, AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started,
    Stopped, Upstream,
};
use crate::model::PolicyOverride;
use crate::settings::{Fields, Key, Kind, Reader, is_label};

mod records;
use records::{Orphan, Records};

/// Longest piece of child output logged as one line; longer lines are split.
const MAX_LOG_LINE: u64 = 8 * 1024;

/// How long a readiness probe waits for the app's port to accept a connection.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// `type: process` in the config.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Provider id (`local`).
    pub id: String,
    /// The local apps, in file order.
    pub apps: Vec<ProcessAppConfig>,
}

impl Platform for ProcessConfig {
    const KIND: &'static str = "process";
    const SECRET_KEYS: &'static [&'static str] = &[];
    const ENDPOINT_KEYS: &'static [&'static str] = &[];
    const FACTS: Facts = Facts::NONE;
    const DOC: &'static str =
        "Local commands, each run on demand with `sh -c` (the embedded default).";
    const KEYS: &'static [Key] = &[Key::new(
        "apps",
        Kind::List(&Kind::Section(&[
            PROCESS_APP_KEYS,
            crate::settings::POLICY_KEYS,
        ])),
        "The commands, one app each; any key of `defaults` may be overridden per app.",
    )
    .required()];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        kind_path: &str,
    ) -> Option<Self> {
        if reader.api.is_some() {
            reader.error(
                kind_path,
                "`process` providers run commands on the engine's host: not allowed in spaces created through the API",
            );
            fields.take_all();
            return None;
        }
        let apps = match fields.take("apps") {
            Some((v, p)) => reader.process_apps(v, &p),
            None => {
                reader.error(&format!("{path}.apps"), "missing");
                Vec::new()
            }
        };
        Some(ProcessConfig {
            id: String::new(),
            apps,
        })
    }

    fn secrets(&self) -> Vec<&crate::secret::Secret> {
        Vec::new()
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(ProcessProvider::new(self)?))
    }

    fn build_after(
        &self,
        previous: &Arc<dyn Provider>,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let previous: &dyn std::any::Any = previous.as_ref();
        match previous.downcast_ref::<ProcessProvider>() {
            Some(previous) => Ok(Arc::new(ProcessProvider::after(self, previous)?)),
            None => self.build(),
        }
    }
}

impl Reader<'_> {
    fn process_apps(&mut self, value: &Value, path: &str) -> Vec<ProcessAppConfig> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut apps = Vec::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let name = match fields.take("name") {
                Some((v, p)) => self.non_empty_string(v, &p).and_then(|name| {
                    if !is_label(&name) {
                        self.error(
                            &p,
                            format!(
                                "`{name}` is not a valid app name (lowercase letters, digits and '-', as in a host name)"
                            ),
                        );
                        return None;
                    }
                    if let Some(first) = names.get(&name) {
                        self.error(&p, format!("duplicate app name `{name}` (first at {first})"));
                        return None;
                    }
                    names.insert(name.clone(), p);
                    Some(name)
                }),
                None => {
                    self.error(&format!("{item_path}.name"), "missing");
                    None
                }
            };
            let command = match fields.take("command") {
                Some((v, p)) => self.non_empty_string(v, &p),
                None => {
                    self.error(&format!("{item_path}.command"), "missing");
                    None
                }
            };
            let port = match fields.take("port") {
                Some((Value::Null, _)) | None => Ok(None),
                Some((v, p)) => match self.port(v, &p) {
                    Some(port) => {
                        if let Some(first) = ports.get(&port) {
                            self.error(&p, format!("port {port} is already used by {first}"));
                        }
                        ports.insert(port, p);
                        Ok(Some(port))
                    }
                    None => Err(()),
                },
            };
            let env = fields
                .take("env")
                .map(|(v, p)| self.env_map(v, &p))
                .unwrap_or_default();
            let working_dir = fields
                .take("working_dir")
                .and_then(|(v, p)| self.non_empty_string(v, &p))
                .map(PathBuf::from);
            let stop_timeout = fields
                .take("stop_timeout")
                .and_then(|(v, p)| self.duration(v, &p))
                .unwrap_or(Duration::from_secs(10));
            let policy = self.policy_fields(&mut fields);
            self.finish(fields, &[]);
            if let (Some(name), Some(command), Ok(port)) = (name, command, port) {
                apps.push(ProcessAppConfig {
                    name,
                    command,
                    port,
                    env,
                    working_dir,
                    stop_timeout,
                    policy,
                });
            }
        }
        apps
    }
}

/// One local app.
#[derive(Debug, Clone)]
pub struct ProcessAppConfig {
    /// App name, also its route key.
    pub name: String,
    /// Shell command; `{port}` is replaced by the port.
    pub command: String,
    /// Port the app listens on (127.0.0.1); `None`: a free port is chosen at startup.
    pub port: Option<u16>,
    /// Extra environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// Directory the command runs in; `None`: the engine's own.
    pub working_dir: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_timeout: Duration,
    /// Per-app policy (`max_idle`, `wake_timeout`, ...).
    pub policy: PolicyOverride,
}

/// Runs the configured commands as local processes.
#[derive(Debug)]
pub struct ProcessProvider {
    /// Provider id, as configured.
    id: String,
    /// Every configured app by name.
    apps: HashMap<String, Arc<LocalApp>>,
    /// Apps an earlier configuration had and this one does not: not listed, but still
    /// stopped on request and at shutdown (their process may run).
    retired: Vec<Arc<LocalApp>>,
    /// Announces processes that exit without being asked to (shared with the account this
    /// one replaced, whose processes it took over).
    exits: broadcast::Sender<AppExited>,
    /// Where running process groups are recorded, opened at the first use (`None` when
    /// they cannot be: said once, and the apps run all the same); shared with the account
    /// this one replaced.
    records: Arc<OnceLock<Option<Records>>>,
}

/// One configured app and its current process, if any.
#[derive(Debug)]
struct LocalApp {
    /// The app's config; a configuration reload replaces it (a running process keeps the
    /// command it was started with until it stops).
    config: ArcSwap<ProcessAppConfig>,
    /// The port it listens on (configured, or chosen once); a new configured port is taken
    /// at the next start, never under a running process.
    port: AtomicU16,
    /// The running process, guarded by a short-lived lock (never held across an await).
    run: Mutex<Run>,
    /// Set once the process groups a gone engine left running for this app are stopped:
    /// before the app is first listed, started or stopped.
    swept: OnceCell<()>,
}

/// What is known about an app's processes.
#[derive(Debug, Default)]
struct Run {
    /// The process group started last, while its leader is alive.
    current: Option<Running>,
    /// Why the last process ended, when it ended on its own.
    last_exit: Option<String>,
    /// Counts starts, so a late exit of an old process is not taken for the current one.
    generation: u64,
}

/// A live process group.
#[derive(Debug)]
struct Running {
    /// Process group id (the leader's pid).
    pgid: Pid,
    /// Which start this is.
    generation: u64,
    /// Becomes true when the leader has exited and been reaped.
    exited: watch::Receiver<bool>,
    /// True once a stop was asked for: its exit is then expected, not a crash.
    stopping: bool,
}

impl ProcessProvider {
    /// Prepares the apps; ports left out of the config are chosen now, once.
    pub fn new(config: &ProcessConfig) -> Result<ProcessProvider, ProviderError> {
        let mut apps = HashMap::new();
        for app in &config.apps {
            apps.insert(app.name.clone(), Arc::new(LocalApp::new(app)?));
        }
        let (exits, _) = broadcast::channel(64);
        Ok(ProcessProvider {
            id: config.id.clone(),
            apps,
            retired: Vec::new(),
            exits,
            records: Arc::new(OnceLock::new()),
        })
    }

    /// The account for a reloaded `config`, taking over `previous`'s processes: an app
    /// of the same name is the same app (its process, port and exit history stay; its new
    /// settings apply from its next start); apps the new config drops are retired (stopped
    /// on request and at shutdown, never listed).
    fn after(
        config: &ProcessConfig,
        previous: &ProcessProvider,
    ) -> Result<ProcessProvider, ProviderError> {
        let mut apps = HashMap::new();
        for app in &config.apps {
            // An app this account had, or had retired and is given back (its process may
            // still run: it is taken back, not started twice).
            let local = match previous.app(&app.name).ok() {
                Some(local) => {
                    local.config.store(Arc::new(app.clone()));
                    if let Some(port) = app.port
                        && local.run().current.is_none()
                    {
                        local.port.store(port, Ordering::SeqCst);
                    }
                    Arc::clone(local)
                }
                None => Arc::new(LocalApp::new(app)?),
            };
            apps.insert(app.name.clone(), local);
        }
        let retired = previous
            .apps
            .iter()
            .filter(|(name, _)| !apps.contains_key(*name))
            .map(|(_, local)| Arc::clone(local))
            .chain(previous.retired.iter().cloned())
            .filter(|local| !apps.contains_key(&local.config.load().name))
            .collect();
        Ok(ProcessProvider {
            id: config.id.clone(),
            apps,
            retired,
            exits: previous.exits.clone(),
            records: Arc::clone(&previous.records),
        })
    }

    fn app(&self, name: &str) -> Result<&Arc<LocalApp>, ProviderError> {
        self.apps
            .get(name)
            .or_else(|| {
                self.retired
                    .iter()
                    .find(|local| local.config.load().name == name)
            })
            .ok_or_else(|| ProviderError::NotFound(name.to_owned()))
    }

    /// The records, opened at the first call.
    fn records(&self) -> Option<&Records> {
        self.records
            .get_or_init(|| match Records::open_default() {
                Ok(records) => Some(records),
                Err(error) => {
                    tracing::warn!(provider = %self.id, %error, "the apps' processes are not recorded: those left running by an engine that is killed will not be stopped by the next");
                    None
                }
            })
            .as_ref()
    }

    /// Stops, once, what a gone engine left running of `local` (see [`records`]).
    async fn sweep(&self, local: &LocalApp) {
        local
            .swept
            .get_or_init(|| async {
                let Some(records) = self.records() else {
                    return;
                };
                let config = local.config.load_full();
                for orphan in records.orphans(&self.id, &config.name) {
                    stop_orphan(&config.name, &orphan, config.stop_timeout).await;
                }
            })
            .await;
    }
}

impl LocalApp {
    /// An app with no process yet; a port is chosen now when the config gives none.
    fn new(config: &ProcessAppConfig) -> Result<LocalApp, ProviderError> {
        let port = match config.port {
            Some(port) => port,
            None => choose_port(&config.name)?,
        };
        Ok(LocalApp {
            config: ArcSwap::from_pointee(config.clone()),
            port: AtomicU16::new(port),
            run: Mutex::new(Run::default()),
            swept: OnceCell::new(),
        })
    }

    /// The port it is reached on now.
    fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    fn run(&self) -> MutexGuard<'_, Run> {
        // A panic while holding this lock cannot leave `Run` half-updated in a way that
        // matters more than losing the engine, so a poisoned lock is used as it is.
        self.run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn status(&self) -> AppStatus {
        let alive = {
            let run = self.run();
            match (&run.current, &run.last_exit) {
                (Some(_), _) => true,
                (None, Some(reason)) => return AppStatus::Failed(reason.clone()),
                (None, None) => return AppStatus::Stopped,
            }
        };
        if alive && port_accepts(self.port()).await {
            AppStatus::Running
        } else {
            AppStatus::Starting
        }
    }
}

#[async_trait]
impl Provider for ProcessProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "process"
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let mut apps = Vec::with_capacity(self.apps.len());
        for app in self.apps.values() {
            self.sweep(app).await;
            let config = app.config.load();
            apps.push(AppInfo {
                name: config.name.clone(),
                status: app.status().await,
                upstream: Some(Upstream::local(app.port())),
                formation: Formation::from([("web".to_owned(), 1)]),
                policy: config.policy.clone(),
                aliases: Vec::new(),
                linked: Vec::new(),
                group: None,
            });
        }
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(apps)
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let local = self.app(app)?;
        self.sweep(local).await;
        Ok(local.status().await)
    }

    async fn start(
        &self,
        app: &str,
        _formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        let local = Arc::clone(self.app(app)?);
        self.sweep(&local).await;
        let config = local.config.load_full();
        if let Some(dir) = &config.working_dir
            && !dir.is_dir()
        {
            return Err(ProviderError::Failed(format!(
                "working_dir {} is not a directory",
                dir.display()
            )));
        }
        if local.run().current.is_some() {
            return Ok(Started {
                reconciled: None,
                upstream: Some(Upstream::local(local.port())),
            });
        }
        // A port the configuration changed is taken now, with no process under the old one.
        if let Some(port) = config.port {
            local.port.store(port, Ordering::SeqCst);
        }
        let mut port = local.port();
        // Our process is not running: whoever answers on the port is another program, and
        // the app would be taken for ready while its own process fails to listen. A port the
        // engine chose (none configured) is only a loan from the system, which may have given
        // it to someone else since: a new one is chosen, and the start tells the new address.
        if port_accepts(port).await {
            if config.port.is_some() {
                return Err(ProviderError::Failed(format!(
                    "port {port} is already in use by another program"
                )));
            }
            let taken = port;
            port = choose_port(app)?;
            tracing::info!(app, taken, port, "the chosen port is taken: using another");
            local.port.store(port, Ordering::SeqCst);
        }
        let started = Started {
            reconciled: None,
            upstream: Some(Upstream::local(port)),
        };
        // Hold the lock only to check and to record the new process: spawning does not await.
        let mut run = local.run();
        if run.current.is_some() {
            return Ok(started);
        }
        let command_line = config.command.replace("{port}", &port.to_string());
        // The engine's environment stays with the engine (see `crate::child_env`).
        let mut command = crate::child_env::shell(&command_line);
        command
            .env("PORT", port.to_string())
            .envs(&config.env)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &config.working_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|error| {
            ProviderError::Failed(format!("cannot run `sh -c` for app `{app}`: {error}"))
        })?;
        let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            return Err(ProviderError::Failed(format!(
                "app `{app}` exited before it could be tracked"
            )));
        };
        let pgid = Pid::from_raw(pid);
        run.generation += 1;
        let generation = run.generation;
        let (exited_tx, exited_rx) = watch::channel(false);
        run.current = Some(Running {
            pgid,
            generation,
            exited: exited_rx,
            stopping: false,
        });
        run.last_exit = None;
        drop(run);

        let record = self
            .records()
            .and_then(|records| records.write(&self.id, app, pid));
        tracing::info!(app, pid, port, "started process");
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump_output(app.to_owned(), "stdout", stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump_output(app.to_owned(), "stderr", stderr));
        }
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let reason = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => format!("could not be waited for: {error}"),
            };
            let expected = {
                let mut run = local.run();
                match &run.current {
                    Some(current) if current.generation == generation => {
                        let expected = current.stopping;
                        run.current = None;
                        if !expected {
                            run.last_exit = Some(reason.clone());
                        }
                        expected
                    }
                    _ => true,
                }
            };
            if let Some(record) = &record {
                records::remove(record);
            }
            let _ = exited_tx.send(true);
            if expected {
                tracing::info!(app = %local.config.load().name, %reason, "process stopped");
            } else {
                // Whatever the leader left behind in its group belongs to this dead run.
                signal_group(pgid, Signal::SIGKILL);
                tracing::warn!(app = %local.config.load().name, %reason, "process ended on its own");
                let _ = exits.send(AppExited {
                    app: local.config.load().name.clone(),
                    reason,
                });
            }
        });
        Ok(started)
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let local = self.app(app)?;
        self.sweep(local).await;
        stop_local(local).await?;
        // A local app's formation is its command (one process): nothing to remember.
        Ok(Stopped::default())
    }

    /// A local port is probed with one connect, refused at once while nothing listens: a
    /// hundred a second cost nothing, and a request held for the wake waits at most `max`
    /// past the moment the app listens. (Backing off from 20 ms to 500 ms, the held request
    /// of a `python3 -m http.server` wake came some 70 ms after the server listened.)
    fn poll_intervals(&self) -> PollIntervals {
        PollIntervals {
            first: Duration::from_millis(5),
            max: Duration::from_millis(10),
        }
    }

    fn exits(&self) -> Option<broadcast::Receiver<AppExited>> {
        Some(self.exits.subscribe())
    }

    async fn shutdown(&self) {
        let mut stops = JoinSet::new();
        for app in self.apps.values().chain(&self.retired) {
            let app = Arc::clone(app);
            stops.spawn(async move {
                if let Err(error) = stop_local(&app).await {
                    tracing::warn!(app = %app.config.load().name, %error, "could not stop at shutdown");
                }
            });
        }
        while stops.join_next().await.is_some() {}
    }
}

/// SIGTERM to the group, SIGKILL after `stop_timeout`, and nothing of the group left after.
async fn stop_local(local: &LocalApp) -> Result<(), ProviderError> {
    let (pgid, mut exited) = {
        let mut run = local.run();
        run.last_exit = None;
        match run.current.as_mut() {
            None => return Ok(()),
            Some(current) => {
                current.stopping = true;
                (current.pgid, current.exited.clone())
            }
        }
    };
    let config = local.config.load_full();
    let app = &config.name;
    signal_group(pgid, Signal::SIGTERM);
    let graceful = tokio::time::timeout(config.stop_timeout, exited.wait_for(|done| *done))
        .await
        .is_ok();
    if !graceful {
        tracing::warn!(
            app = %app,
            timeout = ?config.stop_timeout,
            "process did not stop after SIGTERM, sending SIGKILL"
        );
    }
    // Leftovers of the group (children that ignored SIGTERM) go too.
    signal_group(pgid, Signal::SIGKILL);
    if !graceful
        && tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|done| *done))
            .await
            .is_err()
    {
        return Err(ProviderError::Failed(format!(
            "app `{app}` did not exit after SIGKILL"
        )));
    }
    Ok(())
}

/// Stops a process group a gone engine left running: SIGTERM, SIGKILL after `timeout`, as
/// a stop of the engine's own. Its leader is not this engine's child: it is watched through
/// its record's identity, not waited for.
async fn stop_orphan(app: &str, orphan: &Orphan, timeout: Duration) {
    let pgid = Pid::from_raw(orphan.leader.pid);
    tracing::warn!(
        app,
        pid = orphan.leader.pid,
        "stopping a process an engine that ended without stopping it left running"
    );
    let ended = |within: Duration| async move {
        let deadline = tokio::time::Instant::now() + within;
        while orphan.runs() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    };
    signal_group(pgid, Signal::SIGTERM);
    let graceful = ended(timeout).await;
    // Leftovers of the group go too, as in `stop_local`.
    signal_group(pgid, Signal::SIGKILL);
    if graceful || ended(Duration::from_secs(5)).await {
        orphan.forget();
    } else {
        tracing::warn!(
            app,
            pid = orphan.leader.pid,
            "a process left running by a gone engine did not exit after SIGKILL"
        );
    }
}

fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pgid = pgid.as_raw(), %error, "cannot signal process group"),
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "exited".to_owned(),
    }
}

async fn port_accepts(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            CONNECT_PROBE_TIMEOUT,
            TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// A free port for `app`, chosen by the system.
fn choose_port(app: &str) -> Result<u16, ProviderError> {
    free_port().map_err(|error| {
        ProviderError::Failed(format!("cannot choose a port for app `{app}`: {error}"))
    })
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Logs a child's output line by line, tagged with the app; long lines are split.
async fn pump_output(app: String, stream: &'static str, output: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LOG_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "paastis::app", app = %app, stream, "{text}");
            }
        }
    }
}

/// The keys of one `process` app besides the policy keys, as `Reader::process_apps` takes
/// them.
pub const PROCESS_APP_KEYS: &[Key] = &[
    Key::new(
        "name",
        Kind::Text("DNS label"),
        "The app's name: lowercase letters, digits, `-` (it is a host name label).",
    )
    .required(),
    Key::new(
        "command",
        Kind::Text("command"),
        "Run with `sh -c`; `{port}` is replaced by its port (PORT is set too).",
    )
    .required(),
    Key::new(
        "port",
        Kind::Port,
        "Its port (default: a free port chosen at startup).",
    ),
    Key::new(
        "env",
        Kind::Map("variable", &Kind::Scalar),
        "Its environment, over the few variables it inherits.",
    ),
    Key::new("working_dir", Kind::Text("path"), "Where it runs."),
    Key::new(
        "stop_timeout",
        Kind::Duration,
        "SIGTERM, then SIGKILL after this long.",
    )
    .default("10s"),
];
