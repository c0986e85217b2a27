//! The subcommands that talk to a running engine's admin API (`paastis apps`, `events`,
//! `providers`, `savings`, `spaces`): arguments, what each one asks the API, and what it
//! prints.
//!
//! They need no configuration file, only the API's URL and its token (`--api-url`,
//! `--token`, or `PAASTIS_API_URL`, `PAASTIS_ADMIN_TOKEN`). Tables for people, the API's own
//! JSON with `--json`. Every failure is a [`CliError`], whose [`CliError::exit_code`] is the
//! one place exit codes are decided (see [`EXIT_CODES`]).

mod args;
mod client;
mod follow;
mod render;
mod spaces;
mod sse;

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::secret::Secret;
use crate::wire::{AppList, AppView, EventList, ProviderList};
pub use args::{Cli, Command, ConfigCommand};
use client::Api;
pub use spaces::{SpacesArgs, SpacesCommand};

/// The exit codes of the API-client subcommands, for `--help`.
pub const EXIT_CODES: &str = "\
Exit codes (apps, events, providers, savings, spaces):
  0  success
  1  the API refused or failed (a failed wake, a conflict such as stopping an asleep app,
     an invalid space)
  2  usage or settings error (bad arguments, ambiguous app name, unreadable file)
  3  the admin API cannot be reached (connection refused, timeout)
  4  unauthorized: missing or wrong token
  5  not found: unknown app, space or token";

/// The admin API's default address (`admin.listen`'s default).
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3001";

/// The subcommands that talk to the admin API.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List, show, start, stop and pin the managed apps (through the admin API).
    #[command(after_help = EXIT_CODES)]
    Apps(AppsArgs),
    /// The event history, oldest first; --follow prints new events as they come.
    #[command(after_help = EXIT_CODES)]
    Events(EventsArgs),
    /// The provider accounts: apps, health, last error.
    #[command(after_help = EXIT_CODES)]
    Providers(ProvidersArgs),
    /// Hours asleep, and the money and CO2e they saved (estimates; see docs/src/savings.md).
    #[command(after_help = EXIT_CODES)]
    Savings(SavingsArgs),
    /// The spaces (tenants): list and show them; in hosted mode create, delete, and issue
    /// or revoke their tokens (admin token).
    #[command(after_help = EXIT_CODES)]
    Spaces(SpacesArgs),
    /// The webhooks and their counts; with an id, that webhook's recent deliveries.
    #[command(after_help = EXIT_CODES)]
    Webhooks(WebhooksArgs),
}

/// Where the admin API is, how to authenticate, and how to print.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the engine's admin API (its `admin.listen`).
    #[arg(
        long,
        value_name = "URL",
        env = "PAASTIS_API_URL",
        default_value = DEFAULT_API_URL,
        global = true
    )]
    pub api_url: String,

    /// The admin token (`admin.token`), sent as `Authorization: Bearer <token>`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PAASTIS_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = secret,
        global = true
    )]
    pub token: Option<Secret>,

    /// Print the API's JSON (one document; one event per line with `events --follow`)
    /// instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// The space to act on (`spaces[].id`): the token's own by default (`default` for the
    /// admin token).
    #[arg(long, value_name = "SPACE", env = "PAASTIS_SPACE", global = true)]
    pub space: Option<String>,
}

/// Wraps the token at once, so no `Debug` of the arguments ever shows it.
fn secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

/// `paastis apps ...`.
#[derive(Debug, Args)]
pub struct AppsArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,

    /// What to do with the apps.
    #[command(subcommand)]
    pub command: AppsCommand,
}

/// The app states the API filters on.
const STATES: [&str; 5] = ["asleep", "waking", "awake", "stopping", "failed"];

/// What `paastis apps` does.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// The managed apps: name, provider, state, time left before the idle check stops them,
    /// last wake.
    List {
        /// Only the apps of this provider id.
        #[arg(long, value_name = "PROVIDER")]
        provider: Option<String>,
        /// Only the apps in this state.
        #[arg(long, value_parser = STATES)]
        state: Option<String>,
        /// Only names matching this glob (`review-*`) or `re:` regex.
        #[arg(long, value_name = "GLOB")]
        name: Option<String>,
    },
    /// Everything the engine knows about one app.
    Show {
        /// PROVIDER/APP, or APP alone when only one provider has an app of that name.
        #[arg(value_name = "APP", value_parser = parse_app_ref)]
        app: AppRef,
    },
    /// Wakes an app (as a request would).
    Start {
        /// PROVIDER/APP, or APP alone when only one provider has an app of that name.
        #[arg(value_name = "APP", value_parser = parse_app_ref)]
        app: AppRef,
        /// Return once the app is awake (exit 1 if its start fails) instead of at once.
        #[arg(long)]
        wait: bool,
    },
    /// Stops an awake app now, whatever its idle time.
    Stop {
        /// PROVIDER/APP, or APP alone when only one provider has an app of that name.
        #[arg(value_name = "APP", value_parser = parse_app_ref)]
        app: AppRef,
    },
    /// Keeps an app awake: the idle check leaves it alone until then (or until unpinned).
    Pin {
        /// PROVIDER/APP, or APP alone when only one provider has an app of that name.
        #[arg(value_name = "APP", value_parser = parse_app_ref)]
        app: AppRef,
        /// Until this time (RFC 3339, 2026-12-24T18:00:00Z) or for this long (2h, 30m);
        /// without it, until unpinned.
        #[arg(long, value_name = "TIME|DURATION")]
        until: Option<String>,
    },
    /// Lets the idle check stop a pinned app again.
    Unpin {
        /// PROVIDER/APP, or APP alone when only one provider has an app of that name.
        #[arg(value_name = "APP", value_parser = parse_app_ref)]
        app: AppRef,
    },
}

/// `paastis events ...`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,

    /// Only the events of this provider id.
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,

    /// Only the events of this app (APP or PROVIDER/APP).
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,

    /// Only these kinds (comma-separated: wake_requested,started,stopped, ...).
    #[arg(long, value_name = "KIND,..", value_delimiter = ',')]
    pub kind: Vec<String>,

    /// Only events at or after this time (RFC 3339) or this long ago (1h, 30m).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,

    /// How many of the latest events to print first (1..=500; the API's default: 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,

    /// Keep printing new events as they happen (from the live event stream, reconnecting
    /// when it drops), until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
}

/// `paastis providers`.
#[derive(Debug, Args)]
pub struct ProvidersArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `paastis webhooks [ID]`.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,

    /// A webhook's id: its recent deliveries (newest first) instead of the list.
    pub id: Option<String>,
}

/// `paastis savings`.
#[derive(Debug, Args)]
pub struct SavingsArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,

    /// Start of the period: an RFC 3339 time, or this long ago (7d, 24h). Default: 30d.
    #[arg(long, value_name = "TIME|DURATION")]
    pub from: Option<String>,

    /// End of the period: an RFC 3339 time, or this long ago. Default: now.
    #[arg(long, value_name = "TIME|DURATION")]
    pub to: Option<String>,

    /// One line per app or per provider account.
    #[arg(long, value_name = "app|provider", default_value = "app", value_parser = ["app", "provider"])]
    pub by: String,
}

/// An app as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// The provider id, when given as `PROVIDER/APP`; none: looked up by name.
    pub provider: Option<String>,
    /// The app's name on its provider.
    pub name: String,
}

/// `PROVIDER/APP` or `APP`.
fn parse_app_ref(text: &str) -> Result<AppRef, String> {
    let text = text.trim();
    match text.split_once('/') {
        None if !text.is_empty() => Ok(AppRef {
            provider: None,
            name: text.to_owned(),
        }),
        Some((provider, name)) if !provider.is_empty() && !name.is_empty() => Ok(AppRef {
            provider: Some(provider.to_owned()),
            name: name.to_owned(),
        }),
        _ => Err("expected APP or PROVIDER/APP".to_owned()),
    }
}

/// Why a subcommand failed; [`CliError::exit_code`] says how the process exits.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or settings, found before or without asking the API.
    #[error("{0}")]
    Usage(String),
    /// No answer: connection refused, name not resolved, timeout, connection cut.
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable {
        /// The API's URL (without any user or password in it).
        url: String,
        /// What failed, from the lowest error up.
        reason: String,
    },
    /// The API answered 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The API answered 404 (an unknown app, space or token), or no app has the name given
    /// alone.
    #[error("{0}")]
    NotFound(String),
    /// Any other error answer (409 conflict, 422 invalid space, 503 failed wake, 400, ...).
    #[error("{message} ({status} {code}){}", problem_lines(.errors))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`conflict`, `unavailable`, ...).
        code: String,
        /// The API's message.
        message: String,
        /// The API's `error.errors`: each problem with its path (a 422 lists them all, so
        /// they are all printed, one per line).
        errors: Vec<FieldProblem>,
    },
    /// The answer is not what the API sends (not JSON, or not the expected shape).
    #[error("unexpected answer from the admin API: {0}")]
    BadAnswer(String),
    /// Stdout could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// One problem of an error answer (`error.errors[]`), at a path of what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Where (`domains[0]`, `providers[1].token_file`); empty: the whole document.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// The problems of an error answer, one indented line each (nothing when there is none).
fn problem_lines(errors: &[FieldProblem]) -> String {
    errors
        .iter()
        .map(|problem| match problem.path.as_str() {
            "" => format!("\n  {}", problem.message),
            path => format!("\n  {path}: {}", problem.message),
        })
        .collect()
}

impl CliError {
    /// The process's exit code for this error (the table in [`EXIT_CODES`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } | CliError::BadAnswer(_) | CliError::Output(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. } => 3,
            CliError::Unauthorized(_) => 4,
            CliError::NotFound(_) => 5,
        }
    }

    /// The same error with every occurrence of `secret` masked (a last guard: no message
    /// is built from the token, but a server's message or an address could repeat it).
    fn redact(self, secret: &str) -> CliError {
        if secret.is_empty() {
            return self;
        }
        let mask = |text: String| text.replace(secret, "<redacted>");
        match self {
            CliError::Usage(message) => CliError::Usage(mask(message)),
            CliError::Unreachable { url, reason } => CliError::Unreachable {
                url: mask(url),
                reason: mask(reason),
            },
            CliError::Unauthorized(message) => CliError::Unauthorized(mask(message)),
            CliError::NotFound(message) => CliError::NotFound(mask(message)),
            CliError::Api {
                status,
                code,
                message,
                errors,
            } => CliError::Api {
                status,
                code: mask(code),
                message: mask(message),
                errors: errors
                    .into_iter()
                    .map(|problem| FieldProblem {
                        path: mask(problem.path),
                        message: mask(problem.message),
                    })
                    .collect(),
            },
            CliError::BadAnswer(message) => CliError::BadAnswer(mask(message)),
            CliError::Output(error) => CliError::Output(error),
        }
    }
}

/// The token given, to redact from errors (empty: none).
fn token_of(api: &ApiArgs) -> String {
    api.token
        .as_ref()
        .map(|token| token.expose().to_owned())
        .unwrap_or_default()
}

/// Runs one API-client subcommand to its end (for `events --follow`: until Ctrl-C).
pub async fn run(command: ClientCommand) -> Result<(), CliError> {
    let api = match &command {
        ClientCommand::Apps(args) => &args.api,
        ClientCommand::Events(args) => &args.api,
        ClientCommand::Providers(args) => &args.api,
        ClientCommand::Savings(args) => &args.api,
        ClientCommand::Spaces(args) => &args.api,
        ClientCommand::Webhooks(args) => &args.api,
    };
    let token = token_of(api);
    let result = async {
        let client = Api::new(api)?;
        let json = api.json;
        match &command {
            ClientCommand::Apps(args) => apps(&client, &args.command, json).await,
            ClientCommand::Events(args) => events(&client, args, json).await,
            ClientCommand::Providers(_) => providers(&client, json).await,
            ClientCommand::Savings(args) => savings(&client, args, json).await,
            ClientCommand::Spaces(args) => spaces::run(&client, &args.command, json).await,
            ClientCommand::Webhooks(args) => webhooks(&client, args.id.as_deref(), json).await,
        }
    }
    .await;
    match result {
        // `paastis events | head`: the reader is gone, which is not a failure.
        Err(CliError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|error| error.redact(&token)),
    }
}

/// `paastis check --diff`: what a reload of this configuration `text` would change on the
/// engine at `api` (its own environment reads it; nothing is applied).
pub async fn diff(api: &ApiArgs, text: String) -> Result<(), CliError> {
    let token = token_of(api);
    let result = async {
        let client = Api::new(api)?;
        let (_, answer) = client
            .post_text(&["config", "diff"], "application/yaml", text)
            .await?;
        if api.json {
            return emit_json(&answer);
        }
        let view: crate::wire::ReloadView = serde_json::from_value(answer)
            .map_err(|error| CliError::BadAnswer(format!("not a reload view: {error}")))?;
        let mut out = format!(
            "running revision {}, this file's {}\n",
            view.previous_revision, view.revision
        );
        if view.changes.is_empty() {
            out.push_str("a reload would change nothing\n");
        } else {
            out.push_str("a reload would change:\n");
            for change in &view.changes {
                out.push_str(&format!("  {change}\n"));
            }
        }
        emit(&out)
    }
    .await;
    result.map_err(|error| error.redact(&token))
}

/// Writes to stdout now (`--follow` prints as events come).
/// Sends `method` to `.../{action}` of the named app. With `json`, prints the answer and
/// gives `None`; otherwise gives the app's provider, name and view.
async fn act(
    api: &Api,
    app: &AppRef,
    method: reqwest::Method,
    action: &str,
    body: Option<Value>,
    json: bool,
) -> Result<Option<(String, String, AppView)>, CliError> {
    let (provider, name, _) = resolve(api, app).await?;
    let (_, answer) = api
        .send(method, &["apps", &provider, &name, action], &[], body, None)
        .await?;
    if json {
        emit_json(&answer)?;
        return Ok(None);
    }
    Ok(Some((provider, name, view(answer)?)))
}

fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes one JSON document, pretty.
fn emit_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::BadAnswer(error.to_string()))?;
    emit(&format!("{text}\n"))
}

/// Reads an API answer into its view type.
fn view<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|error| CliError::BadAnswer(error.to_string()))
}

async fn apps(api: &Api, command: &AppsCommand, json: bool) -> Result<(), CliError> {
    match command {
        AppsCommand::List {
            provider,
            state,
            name,
        } => {
            let mut query = Vec::new();
            for (key, value) in [("provider", provider), ("state", state), ("name", name)] {
                if let Some(value) = value {
                    query.push((key, value.clone()));
                }
            }
            let answer = api.get(&["apps"], &query).await?;
            if json {
                return emit_json(&answer);
            }
            let list: AppList = view(answer)?;
            emit(&render::apps_table(&list.apps, SystemTime::now()))
        }
        AppsCommand::Show { app } => {
            let (provider, name, _) = resolve(api, app).await?;
            let answer = api.get(&["apps", &provider, &name], &[]).await?;
            if json {
                return emit_json(&answer);
            }
            let app: AppView = view(answer)?;
            emit(&render::app_details(&app, SystemTime::now()))
        }
        AppsCommand::Start { app, wait } => {
            let (provider, name, known) = resolve(api, app).await?;
            let label = format!("{provider}/{name}");
            if !*wait {
                let (status, answer) = api
                    .send(
                        reqwest::Method::POST,
                        &["apps", &provider, &name, "start"],
                        &[],
                        None,
                        None,
                    )
                    .await?;
                if json {
                    return emit_json(&answer);
                }
                let app: AppView = view(answer)?;
                return emit(
                    &if status == reqwest::StatusCode::OK && app.state == "awake" {
                        format!("{label} is already awake\n")
                    } else {
                        format!("{label} is {}: its start was asked for\n", app.state)
                    },
                );
            }
            // The API answers within the app's wake timeout; a margin on top of it.
            let known = match known {
                Some(app) => app,
                None => view(api.get(&["apps", &provider, &name], &[]).await?)?,
            };
            let timeout =
                Duration::from_secs(known.policy.wake_timeout_seconds) + Duration::from_secs(30);
            let started = Instant::now();
            let path = ["apps", &provider, &name, "start"];
            let query = [("wait", "true".to_owned())];
            let call = api.send(reqwest::Method::POST, &path, &query, None, Some(timeout));
            let (_, answer) = waiting(&label, call).await?;
            if json {
                return emit_json(&answer);
            }
            let app: AppView = view(answer)?;
            emit(&format!(
                "{label} is {} (after {:.1}s)\n",
                app.state,
                started.elapsed().as_secs_f64()
            ))
        }
        AppsCommand::Stop { app } => {
            let Some((provider, name, app)) =
                act(api, app, reqwest::Method::POST, "stop", None, json).await?
            else {
                return Ok(());
            };
            emit(&format!("{provider}/{name} is {}\n", app.state))
        }
        AppsCommand::Pin { app, until } => {
            let until = until
                .as_deref()
                .map(|text| pin_until(text, SystemTime::now()))
                .transpose()?;
            let body = match until {
                Some(until) => json!({ "until": until }),
                None => json!({}),
            };
            let Some((provider, name, app)) =
                act(api, app, reqwest::Method::PUT, "pin", Some(body), json).await?
            else {
                return Ok(());
            };
            let until = match app.pinned_until.as_deref() {
                None => "(not pinned)".to_owned(),
                Some("forever") => "until unpinned".to_owned(),
                Some(at) => format!("until {}", render::local_time(at)),
            };
            emit(&format!("{provider}/{name} is pinned {until}\n"))
        }
        AppsCommand::Unpin { app } => {
            let Some((provider, name, app)) =
                act(api, app, reqwest::Method::DELETE, "pin", None, json).await?
            else {
                return Ok(());
            };
            let sleeps = render::sleeps_in(&app);
            emit(&format!(
                "{provider}/{name} is unpinned (sleeps in: {sleeps})\n"
            ))
        }
    }
}

/// The provider and name of `app`; a name alone is looked up among every app (and the app
/// found is returned, to spare a call).
async fn resolve(api: &Api, app: &AppRef) -> Result<(String, String, Option<AppView>), CliError> {
    if let Some(provider) = &app.provider {
        return Ok((provider.clone(), app.name.clone(), None));
    }
    let list: AppList = view(api.get(&["apps"], &[]).await?)?;
    let mut matching: Vec<AppView> = list
        .apps
        .into_iter()
        .filter(|candidate| candidate.name == app.name)
        .collect();
    match matching.len() {
        0 => Err(CliError::NotFound(format!(
            "no managed app is named `{}` (`paastis apps list` shows them)",
            app.name
        ))),
        1 => {
            let found = matching.remove(0);
            Ok((found.provider.clone(), found.name.clone(), Some(found)))
        }
        _ => {
            let names: Vec<String> = matching
                .iter()
                .map(|candidate| format!("{}/{}", candidate.provider, candidate.name))
                .collect();
            Err(CliError::Usage(format!(
                "`{}` is the name of apps on several providers ({}): say which, as PROVIDER/APP",
                app.name,
                names.join(", ")
            )))
        }
    }
}

/// `--until` as the API wants it: RFC 3339 as given, or `now + DURATION`.
fn pin_until(text: &str, now: SystemTime) -> Result<String, CliError> {
    time_option("--until", text, now, SystemTime::checked_add, "2h, 30m")
}

/// `--since` as the API wants it: RFC 3339 as given, or `now - DURATION`.
fn since_time(text: &str, now: SystemTime) -> Result<String, CliError> {
    time_arg("--since", text, now)
}

/// A time option as the API wants it: RFC 3339 as given, or `now - DURATION`.
fn time_arg(flag: &str, text: &str, now: SystemTime) -> Result<String, CliError> {
    time_option(flag, text, now, SystemTime::checked_sub, "1h, 30m")
}

/// A time option as the API wants it: RFC 3339 as given, or `now` moved by a duration
/// (`shift`: forward or back); `examples` are durations the error message shows.
fn time_option(
    flag: &str,
    text: &str,
    now: SystemTime,
    shift: fn(&SystemTime, Duration) -> Option<SystemTime>,
    examples: &str,
) -> Result<String, CliError> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_rfc3339());
    }
    crate::model::parse_duration(text)
        .ok()
        .and_then(|duration| shift(&now, duration))
        .map(rfc3339)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{flag}: `{text}` is neither an RFC 3339 time (2026-12-24T18:00:00Z) nor a duration ({examples})"
            ))
        })
}

/// RFC 3339, UTC, milliseconds (what the API writes).
fn rfc3339(at: SystemTime) -> String {
    crate::model::rfc3339(at)
}

/// Awaits `call`, showing that it waits: a spinner with the elapsed time when stderr is a
/// terminal, one line otherwise.
async fn waiting<T>(label: &str, call: impl std::future::Future<Output = T>) -> T {
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        let _ = writeln!(stderr, "waiting for {label}...");
        return call.await;
    }
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut frames = FRAMES.iter().cycle();
    tokio::pin!(call);
    loop {
        tokio::select! {
            output = &mut call => {
                // Erase the spinner's line.
                let _ = write!(stderr, "\r\x1b[2K");
                let _ = stderr.flush();
                return output;
            }
            _ = ticks.tick() => {
                let frame = frames.next().copied().unwrap_or(' ');
                let elapsed = started.elapsed().as_secs_f64();
                let _ = write!(stderr, "\r{frame} waiting for {label}... {elapsed:.1}s");
                let _ = stderr.flush();
            }
        }
    }
}

/// The filters of `paastis events`, as query parameters (without `since` and `limit`).
fn event_filters(args: &EventsArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    let (provider, app) = match args.app.as_deref().map(str::trim) {
        Some(app) => match app.split_once('/') {
            Some((provider, name)) => (Some(provider.to_owned()), Some(name.to_owned())),
            None => (args.provider.clone(), Some(app.to_owned())),
        },
        None => (args.provider.clone(), None),
    };
    if let Some(provider) = provider.filter(|p| !p.is_empty()) {
        query.push(("provider", provider));
    }
    if let Some(app) = app.filter(|a| !a.is_empty()) {
        query.push(("app", app));
    }
    let kinds: Vec<&str> = args
        .kind
        .iter()
        .map(|kind| kind.trim())
        .filter(|kind| !kind.is_empty())
        .collect();
    if !kinds.is_empty() {
        query.push(("kind", kinds.join(",")));
    }
    query
}

async fn events(api: &Api, args: &EventsArgs, json: bool) -> Result<(), CliError> {
    let filters = event_filters(args);
    let since = args
        .since
        .as_deref()
        .map(|text| since_time(text, SystemTime::now()))
        .transpose()?;
    let mut query = filters.clone();
    if let Some(since) = &since {
        query.push(("since", since.clone()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = api.get(&["events"], &query).await?;
    if json && !args.follow {
        return emit_json(&answer);
    }
    let page: EventList = view(answer)?;
    let mut first = page.events;
    first.reverse();
    let mut printer = render::EventPrinter::new(json);
    emit(&printer.print(&first, true))?;
    if !args.follow {
        return Ok(());
    }
    // Follow the live stream from the newest event printed (or, when none was, the
    // newest one written).
    let start = match first.iter().map(|event| event.id).max() {
        Some(id) => id,
        None => follow::newest_id(api).await?,
    };
    match follow::stream(api, &filters, start, &mut printer).await? {
        follow::Followed::Interrupted => Ok(()),
        follow::Followed::Unsupported => {
            follow::by_polling(api, &filters, since, first, printer).await
        }
    }
}

async fn providers(api: &Api, json: bool) -> Result<(), CliError> {
    let answer = api.get(&["providers"], &[]).await?;
    if json {
        return emit_json(&answer);
    }
    let list: ProviderList = view(answer)?;
    emit(&render::providers_table(&list.providers))
}

async fn webhooks(api: &Api, id: Option<&str>, json: bool) -> Result<(), CliError> {
    let answer = match id {
        Some(id) => api.get(&["webhooks", id, "deliveries"], &[]).await?,
        None => api.get(&["webhooks"], &[]).await?,
    };
    if json {
        return emit_json(&answer);
    }
    match id {
        Some(_) => {
            let list: crate::wire::DeliveryList = view(answer)?;
            emit(&render::deliveries_table(&list.deliveries))
        }
        None => {
            let list: crate::wire::WebhookList = view(answer)?;
            emit(&render::webhooks_table(&list.webhooks))
        }
    }
}

async fn savings(api: &Api, args: &SavingsArgs, json: bool) -> Result<(), CliError> {
    let now = SystemTime::now();
    let mut query = vec![("group_by", args.by.clone())];
    if let Some(from) = &args.from {
        query.push(("from", time_arg("--from", from, now)?));
    }
    if let Some(to) = &args.to {
        query.push(("to", time_arg("--to", to, now)?));
    }
    let answer = api.get(&["savings"], &query).await?;
    if json {
        return emit_json(&answer);
    }
    let report: crate::savings::Report = view(answer)?;
    emit(&render::savings_table(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_refs_are_provider_slash_app_or_a_name() {
        assert_eq!(
            parse_app_ref("local/web"),
            Ok(AppRef {
                provider: Some("local".to_owned()),
                name: "web".to_owned()
            })
        );
        assert_eq!(
            parse_app_ref("web"),
            Ok(AppRef {
                provider: None,
                name: "web".to_owned()
            })
        );
        for bad in ["", "/web", "local/", "/"] {
            assert!(parse_app_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn until_and_since_take_times_and_durations() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            pin_until("2h", now).ok().as_deref(),
            Some("2023-11-15T00:13:20.000Z")
        );
        assert_eq!(
            since_time("1h", now).ok().as_deref(),
            Some("2023-11-14T21:13:20.000Z")
        );
        assert_eq!(
            pin_until("2026-12-24T18:00:00Z", now).ok().as_deref(),
            Some("2026-12-24T18:00:00+00:00")
        );
        for bad in ["tomorrow", "", "2h ago"] {
            let error = pin_until(bad, now).expect_err(bad);
            assert_eq!(error.exit_code(), 2);
            assert!(since_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let unreachable = CliError::Unreachable {
            url: "http://127.0.0.1:1/".to_owned(),
            reason: "refused".to_owned(),
        };
        let api = CliError::Api {
            status: 409,
            code: "conflict".to_owned(),
            message: "asleep".to_owned(),
            errors: Vec::new(),
        };
        let codes = [
            api.exit_code(),
            CliError::Usage(String::new()).exit_code(),
            unreachable.exit_code(),
            CliError::Unauthorized(String::new()).exit_code(),
            CliError::NotFound(String::new()).exit_code(),
        ];
        assert_eq!(codes, [1, 2, 3, 4, 5]);
        for (code, line) in [
            (1, "  1  "),
            (2, "  2  "),
            (3, "  3  "),
            (4, "  4  "),
            (5, "  5  "),
        ] {
            assert!(EXIT_CODES.contains(line), "{code} documented");
        }
    }

    #[test]
    fn errors_never_repeat_the_token() {
        let error = CliError::Api {
            status: 400,
            code: "bad_request".to_owned(),
            message: "got tok-123 twice: tok-123".to_owned(),
            errors: vec![FieldProblem {
                path: "token".to_owned(),
                message: "tok-123 is short".to_owned(),
            }],
        }
        .redact("tok-123");
        assert!(!error.to_string().contains("tok-123"), "{error}");
    }

    #[test]
    fn event_filters_split_provider_slash_app() {
        let args = EventsArgs {
            api: ApiArgs {
                api_url: DEFAULT_API_URL.to_owned(),
                token: None,
                json: false,
                space: None,
            },
            provider: Some("ignored".to_owned()),
            app: Some("local/web".to_owned()),
            kind: vec!["started".to_owned(), " stopped".to_owned(), String::new()],
            since: None,
            limit: None,
            follow: false,
        };
        assert_eq!(
            event_filters(&args),
            [
                ("provider", "local".to_owned()),
                ("app", "web".to_owned()),
                ("kind", "started,stopped".to_owned())
            ]
        );
    }
}
