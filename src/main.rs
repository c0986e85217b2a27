//! The `paastis` binary: parses the command line, loads the configuration, binds the
//! listeners and hands over to [`paastis::run`]. The admin API's clients (`apps`, `events`,
//! `providers`, `savings`, `spaces`) need no configuration: they go to [`paastis::cli::run`]
//! first.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use paastis::cli::{Cli, Command, ConfigCommand};
use paastis::config::{self, Overrides};
use paastis::{Engine, Listeners};
use tokio::net::TcpListener;

/// mimalloc: the request path allocates small, short-lived buffers on every thread, where it
/// measured faster than the system allocator (docs/src/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut diff = None;
    let (check_only, rekey) = match cli.command {
        // Before the configuration and `.env`: the API's clients need only their flags.
        Some(Command::Client(command)) => return client(command),
        Some(Command::Config(ConfigCommand::Schema)) => return print_schema(),
        Some(Command::Check(args)) => {
            diff = args.diff.then_some(args.api);
            (true, false)
        }
        Some(Command::Rekey) => (true, true),
        Some(Command::Serve) | None => (false, false),
    };
    let mut env: HashMap<String, String> = std::env::vars().collect();
    // Like the original engine: a `.env` file in the working directory, under the real
    // environment.
    if let Err(errors) = config::dotenv::load(Path::new(".env"), &mut env) {
        eprint!("paastis: {errors}");
        return ExitCode::from(EXIT_CONFIG);
    }
    init_logging(&env);
    let overrides = Overrides {
        listen: cli.listen.clone(),
    };
    let explicit = cli
        .config
        .clone()
        .or_else(|| env.get("PAASTIS_CONFIG").map(PathBuf::from));
    let path = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from("paastis.yml"));
    let yaml = env
        .get(config::CONFIG_YAML_VARIABLE)
        .is_some_and(|text| !text.trim().is_empty());
    if let (Some(file), true) = (&explicit, yaml) {
        eprintln!(
            "paastis: both a configuration file ({}, from --config or PAASTIS_CONFIG) and {} \
             are given: use one of them",
            file.display(),
            config::CONFIG_YAML_VARIABLE
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    // On a PaaS (as the original engine did) paastis runs from its environment alone: with
    // no configuration file, when the environment configures it (docs/src/environment.md).
    let from_env =
        explicit.is_none() && (yaml || (!path.exists() && config::configures_engine(&env)));
    if from_env && yaml && path.exists() {
        tracing::warn!(
            "{} is set: {} is not read",
            config::CONFIG_YAML_VARIABLE,
            path.display()
        );
    }
    let loaded = if from_env {
        config::load_env(&env, &overrides)
    } else {
        config::load(&path, &env, &overrides)
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("paastis: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(api) = diff {
        // The file is valid here; the running engine says what reloading it would change.
        let text = if from_env {
            env.get(config::CONFIG_YAML_VARIABLE)
                .cloned()
                .unwrap_or_default()
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("paastis: cannot read {}: {error}", path.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        };
        let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
            return ExitCode::FAILURE;
        };
        return match runtime.block_on(paastis::cli::diff(&api, text)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("paastis: {error}");
                ExitCode::from(error.exit_code())
            }
        };
    }
    for notice in loaded.compat.notices.iter().filter(|_| !check_only) {
        match notice.level {
            config::Level::Warning => tracing::warn!("{}", notice.message),
            config::Level::Info => tracing::info!("{}", notice.message),
        }
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    if !check_only {
        for value in &loaded.environment {
            tracing::info!("from the environment: {value}");
        }
    }
    let source = {
        let env = env.clone();
        let overrides = overrides.clone();
        let file = (!from_env).then(|| path.clone());
        let load: paastis::engine::LoadFn = Arc::new(move |text: Option<&str>| {
            let loaded = match (text, &file) {
                (Some(text), _) => config::load_str(text, &env, &overrides),
                (None, Some(file)) => config::load(file, &env, &overrides),
                (None, None) => config::load_env(&env, &overrides),
            }?;
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Ok(loaded.config)
        });
        paastis::engine::ConfigSource {
            load,
            file: (!from_env).then(|| path.clone()),
        }
    };
    let result = if rekey {
        runtime.block_on(rekey_spaces(loaded.config, &env))
    } else if check_only {
        runtime.block_on(check(loaded.config, &loaded.compat, &loaded.environment))
    } else {
        runtime.block_on(serve(loaded.config, source))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paastis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime from `builder`, or `None` after saying why it cannot be made.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|error| eprintln!("paastis: cannot start the runtime: {error}"))
        .ok()
}

/// `paastis config schema`: the JSON Schema of the configuration, on stdout.
fn print_schema() -> ExitCode {
    use std::io::Write;
    let text = match serde_json::to_string_pretty(&config::reference::schema()) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("paastis: {error}");
            return ExitCode::FAILURE;
        }
    };
    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        // `paastis config schema | head`: the reader has what it wanted.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paastis: cannot write the schema: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an admin API client subcommand; its error's exit code is the process's.
fn client(command: paastis::cli::ClientCommand) -> ExitCode {
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(paastis::cli::run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paastis: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn serve(
    config: paastis::Config,
    source: paastis::engine::ConfigSource,
) -> anyhow::Result<()> {
    // Before anything says it listens: whoever waits for that may signal at once.
    let shutdown = shutdown_signal();
    let listen = config.listen;
    let proxy = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = proxy.local_addr().context("listener address")?;
    let tls = match config.tls.as_ref().map(|tls| tls.listen) {
        Some(listen) => Some(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen} (tls.listen)"))?,
        ),
        None => None,
    };
    let admin = match config.admin.listen {
        Some(admin_listen) => Some(
            TcpListener::bind(admin_listen)
                .await
                .with_context(|| format!("cannot listen on {admin_listen} (admin.listen)"))?,
        ),
        None => None,
    };
    let admin_addr = match &admin {
        Some(admin) => Some(admin.local_addr().context("admin listener address")?),
        None => None,
    };
    let gate = match config.gate.listen {
        Some(gate_listen) => Some(
            TcpListener::bind(gate_listen)
                .await
                .with_context(|| format!("cannot listen on {gate_listen} (gate.listen)"))?,
        ),
        None => None,
    };
    if let Some(gate) = &gate {
        let addr = gate.local_addr().context("gate listener address")?;
        tracing::info!(gate_addr = %addr, "gate (forward-auth, strategies) on http://{addr}");
    }
    let admin_hosts = config.admin.hosts.clone();
    let engine = Engine::start(config).await?.with_source(source);
    tracing::info!(
        "managed apps:\n{}",
        engine.apps_table_head(paastis::engine::LOGGED_APPS)
    );
    if let Some(tls) = &tls {
        let addr = tls.local_addr().context("TLS listener address")?;
        tracing::info!(%addr, "proxy listening on https://{addr}");
    }
    match admin_addr {
        Some(admin_addr) => {
            tracing::info!(admin_addr = %admin_addr, "admin API and dashboard on http://{admin_addr}");
        }
        None => tracing::info!("admin listener off (admin.listen: off)"),
    }
    for host in &admin_hosts {
        tracing::info!(host = %host, "admin API and dashboard on the proxy listener for Host {host}");
    }
    tracing::info!(%addr, "proxy listening on http://{addr}");
    engine
        .serve(
            Listeners {
                proxy,
                tls,
                admin,
                gate,
            },
            shutdown,
        )
        .await?;
    Ok(())
}

/// `paastis rekey`: the new key from PAASTIS_NEW_MASTER_KEY.
async fn rekey_spaces(
    config: paastis::Config,
    env: &HashMap<String, String>,
) -> anyhow::Result<()> {
    let text = env
        .get("PAASTIS_NEW_MASTER_KEY")
        .filter(|key| !key.trim().is_empty())
        .context("set PAASTIS_NEW_MASTER_KEY to the new key (`openssl rand -base64 32`)")?;
    let new = paastis::spaces::MasterKey::parse(text)
        .map_err(|message| anyhow::anyhow!("PAASTIS_NEW_MASTER_KEY {message}"))?;
    let count = paastis::engine::rekey(&config, &new).await?;
    println!(
        "{count} space(s) sealed under the new key; restart every instance with \
         PAASTIS_MASTER_KEY set to it (until then they serve, but refuse changes)"
    );
    Ok(())
}

async fn check(
    config: paastis::Config,
    compat: &config::Compat,
    environment: &[config::EnvValue],
) -> anyhow::Result<()> {
    let engine = Engine::start(config).await?;
    let lifecycle = engine.lifecycle();
    let errors: HashMap<String, String> = lifecycle
        .events()
        .recent()
        .into_iter()
        .filter_map(|event| match event.kind {
            paastis::events::EventKind::ProviderError { message } => {
                Some((event.app.provider.to_string(), message))
            }
            _ => None,
        })
        .collect();
    let apps = lifecycle.apps();
    println!("{:<20} {:<13} {:>5}  STATUS", "PROVIDER", "TYPE", "APPS");
    for provider in lifecycle.providers().iter() {
        let count = apps
            .iter()
            .filter(|app| app.provider_id() == provider.id())
            .count();
        let status = errors.get(provider.id()).map_or("ok", String::as_str);
        println!(
            "{:<20} {:<13} {:>5}  {status}",
            provider.id(),
            provider.kind(),
            count
        );
    }
    let registry = lifecycle.registry().health();
    println!("\nregistry: {}", registry.detail);
    // `check` never keeps the leader lease from the instances that serve.
    lifecycle.registry().release().await;
    println!();
    print!("{}", engine.apps_table());
    if !environment.is_empty() {
        println!("\nFrom the environment (secrets redacted):");
        for value in environment {
            println!("  {value}");
        }
    }
    if compat.uses_original_settings() {
        println!("\nFrom the original engine's settings (secrets redacted):");
        print!("{}", compat.render());
    }
    let names: Vec<String> = apps.iter().map(|app| app.key.name.to_string()).collect();
    let changes = compat.pattern_changes(names.iter().map(String::as_str));
    if !compat.notices.is_empty() || !changes.is_empty() {
        println!();
    }
    for notice in &compat.notices {
        println!("{notice}");
    }
    for change in changes {
        println!("warning: {change}");
    }
    if !registry.ok {
        anyhow::bail!("the registry cannot be reached: {}", registry.detail);
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} of {} providers could not be reached",
            errors.len(),
            lifecycle.providers().len()
        );
    }
    println!("configuration OK");
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that comes while the engine starts is kept, and
/// shuts it down as soon as it serves, instead of killing it outright.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = signals else {
            tracing::error!("cannot listen for signals; stop with SIGKILL");
            std::future::pending::<()>().await;
            return;
        };
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down");
    }
}

/// Logs go to stderr: human-readable on a terminal, JSON otherwise (`LOG_FORMAT=text|json`
/// forces one). Level from `LOG_LEVEL` or `RUST_LOG` (default `info`). A log line that
/// cannot be written (stderr closed: the pipe's reader is gone) is lost, and nothing else:
/// the default would report it with `eprintln!`, which panics on that same closed stderr,
/// in whatever request or task was logging.
fn init_logging(env: &HashMap<String, String>) {
    use tracing_subscriber::EnvFilter;
    let filter = env
        .get("LOG_LEVEL")
        .or_else(|| env.get("RUST_LOG"))
        .and_then(|level| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match env.get("LOG_FORMAT").map(String::as_str) {
        Some("json") => true,
        Some("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
