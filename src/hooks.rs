//! Hooks: the user's shell commands run around an app's transitions (`before_start`,
//! `after_start`, `before_stop`, `after_stop`), globally and per rule.
//!
//! A hook runs with `sh -c` in a process group of its own, for at most its timeout (then the
//! whole group is killed). Its environment: a few of the engine's ordinary variables
//! ([`crate::child_env`]), the hooks' `env:`, then `PAASTIS_APP`, `PAASTIS_PROVIDER`,
//! `PAASTIS_SPACE`, `PAASTIS_EVENT` (the hook's name) and `PAASTIS_CAUSE`. Its output is logged, line by line, truncated. This module only runs commands
//! and reports how they ended; the lifecycle decides what an outcome means (a `before_stop`
//! that fails vetoes the stop; other failures are recorded and do not block).
//!
//! The `hooks` section (global, or a rule's) is read here too, with the shared
//! [`crate::settings::Reader`]; a space created through the API may not have hooks.

use std::collections::BTreeMap;
use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::model::AppKey;
use crate::settings::{Fields, Reader};

/// The default `hooks.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Output kept (and logged) per hook run, at most.
pub const OUTPUT_LIMIT: usize = 4096;

/// Which moment of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before the provider is asked to start the app.
    BeforeStart,
    /// Once the app is ready, before requests are released.
    AfterStart,
    /// Before the provider is asked to stop the app; a failure vetoes the stop.
    BeforeStop,
    /// Once the app is stopped.
    AfterStop,
}

impl Hook {
    /// Its name in the config and in `PAASTIS_EVENT`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeStart => "before_start",
            Hook::AfterStart => "after_start",
            Hook::BeforeStop => "before_stop",
            Hook::AfterStop => "after_stop",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The commands of the four hooks and their timeout (`hooks:`, or a rule's `hooks:` over
/// the global ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `before_start`.
    pub before_start: Option<String>,
    /// `after_start`.
    pub after_start: Option<String>,
    /// `before_stop`.
    pub before_stop: Option<String>,
    /// `after_stop`.
    pub after_stop: Option<String>,
    /// `timeout`; `None`: [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// `env`: variables given to the commands (they inherit only a few of the engine's).
    pub env: BTreeMap<String, String>,
}

impl Hooks {
    /// These hooks with `later`'s keys on top (key by key; `env` variable by variable).
    pub fn then(&self, later: &Hooks) -> Hooks {
        Hooks {
            before_start: later
                .before_start
                .clone()
                .or_else(|| self.before_start.clone()),
            after_start: later
                .after_start
                .clone()
                .or_else(|| self.after_start.clone()),
            before_stop: later
                .before_stop
                .clone()
                .or_else(|| self.before_stop.clone()),
            after_stop: later.after_stop.clone().or_else(|| self.after_stop.clone()),
            timeout: later.timeout.or(self.timeout),
            env: self
                .env
                .iter()
                .chain(&later.env)
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }

    /// The command of one hook, if set.
    pub fn command(&self, hook: Hook) -> Option<&str> {
        match hook {
            Hook::BeforeStart => self.before_start.as_deref(),
            Hook::AfterStart => self.after_start.as_deref(),
            Hook::BeforeStop => self.before_stop.as_deref(),
            Hook::AfterStop => self.after_stop.as_deref(),
        }
        .filter(|command| !command.trim().is_empty())
    }
}

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Succeeded,
    /// Another exit status (or a signal: `None`).
    Failed(Option<i32>),
    /// Killed after its timeout.
    TimedOut(Duration),
    /// Could not be started at all.
    NotRun(String),
}

/// One hook run: how it ended and the end of what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// How it ended.
    pub outcome: Outcome,
    /// Its stdout and stderr, interleaved by line, at most [`OUTPUT_LIMIT`] bytes.
    pub output: String,
}

impl Run {
    /// Whether it exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }

    /// What went wrong, with the end of its output, for events.
    pub fn reason(&self) -> String {
        let what = match &self.outcome {
            Outcome::Succeeded => "succeeded".to_owned(),
            Outcome::Failed(Some(code)) => format!("exited with status {code}"),
            Outcome::Failed(None) => "killed by a signal".to_owned(),
            Outcome::TimedOut(after) => format!(
                "killed after {} (timeout)",
                crate::model::format_duration(*after)
            ),
            Outcome::NotRun(error) => format!("could not run: {error}"),
        };
        let tail = self.output.trim_end();
        let tail: String = if tail.len() > 300 {
            let start = tail.len() - 300;
            let start = (start..tail.len())
                .find(|i| tail.is_char_boundary(*i))
                .unwrap_or(tail.len());
            format!("…{}", &tail[start..])
        } else {
            tail.to_owned()
        };
        if tail.is_empty() {
            what
        } else {
            format!("{what}: {tail}")
        }
    }
}

/// Runs `hook` of `hooks` for `app`, if it is set; `None` when there is none.
pub async fn run(hooks: &Hooks, hook: Hook, app: &AppKey, cause: &str) -> Option<Run> {
    let command = hooks.command(hook)?;
    let limit = hooks.timeout.unwrap_or(DEFAULT_TIMEOUT);
    Some(run_command(command, &hooks.env, hook, app, cause, limit).await)
}

async fn run_command(
    command: &str,
    env: &BTreeMap<String, String>,
    hook: Hook,
    app: &AppKey,
    cause: &str,
    limit: Duration,
) -> Run {
    let mut child = match crate::child_env::shell(command)
        .envs(env)
        .env("PAASTIS_APP", &*app.name)
        .env("PAASTIS_PROVIDER", &*app.provider)
        .env("PAASTIS_SPACE", &*app.space)
        .env("PAASTIS_EVENT", hook.name())
        .env("PAASTIS_CAUSE", cause)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            tracing::warn!(%app, %hook, %error, "hook could not be started");
            return Run {
                outcome: Outcome::NotRun(error.to_string()),
                output: String::new(),
            };
        }
    };
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(read_lines(stdout, lines_tx.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(read_lines(stderr, lines_tx.clone())));
    }
    drop(lines_tx);
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let mut output = String::new();
    let collect = async {
        while let Some(line) = lines_rx.recv().await {
            if output.len() < OUTPUT_LIMIT {
                tracing::info!(%app, %hook, "{line}");
                let room = OUTPUT_LIMIT - output.len();
                let mut end = line.len().min(room);
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                output.push_str(&line[..end]);
                output.push('\n');
            }
        }
    };
    let waited = tokio::time::timeout(limit, async {
        let (status, ()) = tokio::join!(child.wait(), collect);
        status
    })
    .await;
    let outcome = match waited {
        Ok(Ok(status)) if status.success() => Outcome::Succeeded,
        Ok(Ok(status)) => Outcome::Failed(status.code()),
        Ok(Err(error)) => Outcome::NotRun(error.to_string()),
        Err(_) => {
            // The whole group: the shell and whatever it started.
            if let Some(group) = group {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
            Outcome::TimedOut(limit)
        }
    };
    for reader in readers {
        reader.abort();
    }
    let run = Run { outcome, output };
    if run.succeeded() {
        tracing::debug!(%app, %hook, "hook succeeded");
    } else {
        tracing::warn!(%app, %hook, reason = %run.reason(), "hook failed");
    }
    run
}

/// Sends each line a hook prints (lossily decoded; very long lines cut).
async fn read_lines(
    stream: impl AsyncRead + Unpin,
    lines: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                buffer.truncate(OUTPUT_LIMIT);
                let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                if lines.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

impl Reader<'_> {
    /// `hooks` (global or a rule's): shell commands around transitions, their timeout and
    /// their environment.
    pub(crate) fn hooks(&mut self, value: &Value, path: &str) -> crate::hooks::Hooks {
        let mut hooks = crate::hooks::Hooks::default();
        if self.api.is_some() {
            self.error(
                path,
                "hooks run shell commands on the engine's host: not allowed in spaces created through the API",
            );
            return hooks;
        }
        let Some(mut fields) = self.mapping(value, path) else {
            return hooks;
        };
        let mut command = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.non_empty_string(v, &p),
        };
        hooks.before_start = command(&mut fields, "before_start");
        hooks.after_start = command(&mut fields, "after_start");
        hooks.before_stop = command(&mut fields, "before_stop");
        hooks.after_stop = command(&mut fields, "after_stop");
        hooks.timeout = fields
            .take("timeout")
            .and_then(|(v, p)| self.positive_duration(v, &p));
        hooks.env = fields
            .take("env")
            .map(|(v, p)| self.env_map(v, &p))
            .unwrap_or_default();
        self.finish(fields, &[]);
        hooks
    }
}

/// The keys of `hooks` (global or a rule's), as `Reader::hooks` takes them.
pub const HOOK_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "before_start",
            Kind::Text("command"),
            "Run (sh -c) before an app starts; a failure is an event and the wake goes on.",
        ),
        Key::new(
            "after_start",
            Kind::Text("command"),
            "Run after an app started, before held requests are released.",
        ),
        Key::new(
            "before_stop",
            Kind::Text("command"),
            "Run before an app stops; a non-zero exit (or the timeout) vetoes the stop.",
        ),
        Key::new(
            "after_stop",
            Kind::Text("command"),
            "Run after an app stopped.",
        ),
        Key::new(
            "timeout",
            Kind::Duration,
            "Then the hook's whole process group is killed.",
        )
        .default("30s"),
        Key::new(
            "env",
            Kind::Map("variable", &Kind::Scalar),
            "Variables for the hooks; a rule's `env` adds to these, variable by variable.",
        ),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(command: &str, timeout: Duration) -> Hooks {
        Hooks {
            before_stop: Some(command.to_owned()),
            timeout: Some(timeout),
            ..Hooks::default()
        }
    }

    #[tokio::test]
    async fn a_hook_sees_its_environment_and_its_output_is_kept() {
        let app = AppKey::new("default", "local", "web");
        let run = run(
            &hooks(
                "echo \"$PAASTIS_APP $PAASTIS_PROVIDER $PAASTIS_SPACE $PAASTIS_EVENT $PAASTIS_CAUSE\"; echo oops >&2",
                Duration::from_secs(5),
            ),
            Hook::BeforeStop,
            &app,
            "idle for 60s",
        )
        .await
        .expect("set");
        assert!(run.succeeded(), "{run:?}");
        assert!(
            run.output
                .contains("web local default before_stop idle for 60s"),
            "{run:?}"
        );
        assert!(run.output.contains("oops"), "{run:?}");
    }

    #[tokio::test]
    async fn failures_and_timeouts_say_what_happened() {
        let app = AppKey::new("default", "local", "web");
        let failed = run(
            &hooks("echo busy; exit 3", Duration::from_secs(5)),
            Hook::BeforeStop,
            &app,
            "",
        )
        .await
        .expect("set");
        assert_eq!(failed.outcome, Outcome::Failed(Some(3)));
        assert_eq!(failed.reason(), "exited with status 3: busy");
        let started = tokio::time::Instant::now();
        let slow = run(
            &hooks("sleep 30", Duration::from_millis(300)),
            Hook::BeforeStop,
            &app,
            "",
        )
        .await
        .expect("set");
        assert!(matches!(slow.outcome, Outcome::TimedOut(_)), "{slow:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let huge = run(
            &hooks("yes 0123456789 | head -c 100000", Duration::from_secs(5)),
            Hook::BeforeStop,
            &app,
            "",
        )
        .await
        .expect("set");
        assert!(huge.succeeded());
        assert!(
            huge.output.len() <= OUTPUT_LIMIT + 1,
            "{}",
            huge.output.len()
        );
        assert!(
            run(&Hooks::default(), Hook::AfterStop, &app, "")
                .await
                .is_none()
        );
    }

    #[test]
    fn rule_hooks_override_global_ones_key_by_key() {
        let global = Hooks {
            before_stop: Some("global-stop".into()),
            after_start: Some("global-start".into()),
            timeout: Some(Duration::from_secs(10)),
            ..Hooks::default()
        };
        let global = Hooks {
            env: BTreeMap::from([
                ("CHANNEL".to_owned(), "ops".to_owned()),
                ("LEVEL".to_owned(), "info".to_owned()),
            ]),
            ..global
        };
        let rule = Hooks {
            before_stop: Some("rule-stop".into()),
            env: BTreeMap::from([("LEVEL".to_owned(), "debug".to_owned())]),
            ..Hooks::default()
        };
        let merged = global.then(&rule);
        assert_eq!(merged.command(Hook::BeforeStop), Some("rule-stop"));
        assert_eq!(merged.command(Hook::AfterStart), Some("global-start"));
        assert_eq!(merged.timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            merged.env,
            BTreeMap::from([
                ("CHANNEL".to_owned(), "ops".to_owned()),
                ("LEVEL".to_owned(), "debug".to_owned()),
            ])
        );
    }
}
