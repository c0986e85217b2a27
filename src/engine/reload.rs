//! Configuration reloads: the file read again (on SIGHUP, when it changes, or through the
//! admin API), validated whole, compared with the running configuration, and applied to
//! every space's lifecycle without dropping anything. A configuration that is invalid, or
//! that changes what only a restart applies (listeners, the database, the registry, the
//! admin API's and the gate's settings, ...), changes nothing: the errors are logged with
//! their paths, recorded as an event and answered to the API.
//!
//! What applies live, per space: `defaults`, `rules`, `discovery`, `providers` (an account
//! whose settings did not change keeps its client; a changed one takes over the old one's
//! local processes), `hooks`, `webhooks`, `schedules`, `activity`, `plan`, `on_limit`,
//! `page`, `reload`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::admin::FieldError;
use crate::admin::config::{ConfigStatus, Refusal};
use crate::config::{Config, ConfigErrors, SpaceConfig};
use crate::events::EventKind;
use crate::lifecycle::Lifecycle;
use crate::model::{AppKey, DEFAULT_SPACE};
use crate::providers::{Provider, ProviderConfig};
use crate::scheduler::Scheduler;
use crate::spaces::Spaces;
use crate::wire::{ConfigView, ReloadAttemptView, ReloadView};

/// Reads the configuration again: from its source (`None`), or from this YAML text (what
/// a reload of another file would do), with the engine's environment either way.
pub type LoadFn = Arc<dyn Fn(Option<&str>) -> Result<Config, ConfigErrors> + Send + Sync>;

/// Where the running configuration came from, so it can be read again.
#[derive(Clone)]
pub struct ConfigSource {
    /// Reads it again.
    pub load: LoadFn,
    /// The file it is read from, watched for changes (`reload.watch`); `None`: it comes
    /// from the environment.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSource")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// How often the watched file is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How long a changed file must stay the same before it is read (editors write in steps).
const SETTLE: Duration = Duration::from_millis(300);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /api/v1/config/reload`.
    Api,
    /// SIGHUP.
    Signal,
    /// The watched file changed.
    File,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Signal => "signal",
            Trigger::File => "file",
        }
    }
}

/// The running configuration and what a reload changes.
pub(super) struct Reloader {
    /// Where the configuration is read from again.
    source: Option<ConfigSource>,
    /// The running configuration; held while a reload runs, so reloads do not interleave.
    running: tokio::sync::Mutex<Config>,
    /// The default space's lifecycle.
    lifecycle: Arc<Lifecycle>,
    /// The other spaces (the file's are reconfigured with it).
    spaces: Arc<Spaces>,
    /// The default space's background loops, started again with new discovery settings.
    scheduler: tokio::sync::Mutex<Option<Scheduler>>,
    /// What the admin API shows of the configuration.
    status: Arc<ConfigStatus>,
}

impl Reloader {
    pub(super) fn new(
        source: Option<ConfigSource>,
        config: Config,
        lifecycle: Arc<Lifecycle>,
        spaces: Arc<Spaces>,
        scheduler: Scheduler,
        status: Arc<ConfigStatus>,
    ) -> Reloader {
        Reloader {
            source,
            running: tokio::sync::Mutex::new(config),
            lifecycle,
            spaces,
            scheduler: tokio::sync::Mutex::new(Some(scheduler)),
            status,
        }
    }

    /// Stops the default space's background loops (engine shutdown).
    pub(super) async fn stop_scheduler(&self) {
        if let Some(scheduler) = self.scheduler.lock().await.take() {
            scheduler.stop().await;
        }
    }

    /// Reads the configuration again (or `text` instead) and, when `apply`, applies it.
    pub(super) async fn reload(
        &self,
        text: Option<&str>,
        apply: bool,
        trigger: Trigger,
    ) -> Result<ReloadView, Refusal> {
        let Some(source) = &self.source else {
            return Err(Refusal::NotReloadable(
                crate::admin::config::NOT_RELOADABLE.to_owned(),
            ));
        };
        let mut running = self.running.lock().await;
        let outcome = self.attempt(source, text, apply, &mut running).await;
        if apply {
            self.record(trigger, &outcome, &running);
        }
        outcome
    }

    async fn attempt(
        &self,
        source: &ConfigSource,
        text: Option<&str>,
        apply: bool,
        running: &mut Config,
    ) -> Result<ReloadView, Refusal> {
        // Reading and checking the files is blocking work: off the runtime's workers.
        let load = Arc::clone(&source.load);
        let text = text.map(str::to_owned);
        let loaded = tokio::task::spawn_blocking(move || load(text.as_deref()))
            .await
            .map_err(|error| {
                Refusal::Unavailable(format!("the configuration could not be read: {error}"))
            })?;
        let next = loaded.map_err(|ConfigErrors(errors)| {
            Refusal::Invalid(
                errors
                    .into_iter()
                    .map(|error| FieldError {
                        path: error.path,
                        message: error.message,
                    })
                    .collect(),
            )
        })?;
        let restart = restart_needed(running, &next);
        if !restart.is_empty() {
            return Err(Refusal::RestartRequired(restart));
        }
        let previous_revision = running.revision.clone();
        let mut changes = section_changes(&running.default_space(), &next.default_space(), "");
        if format!("{:?}", running.reload) != format!("{:?}", next.reload) {
            changes.push("reload".to_owned());
        }
        // What each space's accounts become: the default space's, then the file's spaces.
        type Plan = (
            Option<SpaceConfig>,
            Vec<ProviderConfig>,
            Arc<Vec<Arc<dyn Provider>>>,
            String,
        );
        let mut plans: Vec<Plan> = vec![(
            None,
            running.providers.clone(),
            self.lifecycle.providers(),
            "providers".to_owned(),
        )];
        let lifecycles = self.spaces.lifecycles();
        for (index, space) in next.spaces.iter().enumerate() {
            let Some(old) = running.spaces.iter().find(|old| old.id == space.id) else {
                continue;
            };
            let Some((_, lifecycle)) = lifecycles.iter().find(|(id, _)| *id == space.id) else {
                continue;
            };
            changes.extend(section_changes(
                old,
                space,
                &format!("spaces[{}].", space.id),
            ));
            plans.push((
                Some(space.clone()),
                old.providers.clone(),
                lifecycle.providers(),
                format!("spaces[{index}].providers"),
            ));
        }
        let next_of = |space: &Option<SpaceConfig>| match space {
            None => next.providers.clone(),
            Some(space) => space.providers.clone(),
        };
        // Every account is built first, afresh and taking nothing over (a dry run and a
        // refused file leave the running accounts as they are): one that cannot be built
        // refuses the whole configuration.
        let mut errors = Vec::new();
        for (space, old, clients, path) in &plans {
            if let Err(mut more) = accounts(old, clients, &next_of(space), path, false) {
                errors.append(&mut more);
            }
        }
        if !errors.is_empty() {
            return Err(Refusal::Invalid(errors));
        }
        let unchanged = changes.is_empty() && previous_revision == next.revision;
        if !apply || unchanged {
            return Ok(ReloadView {
                previous_revision,
                revision: next.revision.clone(),
                applied: false,
                changes,
            });
        }
        // Applied: changed accounts now take over what their running clients hold.
        let mut built = Vec::with_capacity(plans.len());
        for (space, old, clients, path) in &plans {
            match accounts(old, clients, &next_of(space), path, true) {
                Ok(providers) => built.push((space.clone(), providers)),
                Err(mut more) => errors.append(&mut more),
            }
        }
        if !errors.is_empty() {
            return Err(Refusal::Invalid(errors));
        }
        let removed = next.reload.removed_apps;
        let mut forgotten = Vec::new();
        for (space, providers) in built {
            match space {
                None => {
                    let mut scheduler = self.scheduler.lock().await;
                    if let Some(scheduler) = scheduler.take() {
                        scheduler.stop().await;
                    }
                    let settings = next
                        .default_space()
                        .lifecycle_settings(crate::address::UpstreamScope::Any);
                    let done = self
                        .lifecycle
                        .reconfigure(providers, settings, removed)
                        .await;
                    forgotten.extend(done.forgotten);
                    *scheduler = Some(Scheduler::start(&self.lifecycle, &next.discovery));
                }
                Some(space) => {
                    let settings = space.lifecycle_settings(crate::address::UpstreamScope::Any);
                    if let Some(done) = self
                        .spaces
                        .reconfigure(space, providers, settings, removed)
                        .await
                    {
                        forgotten.extend(done.forgotten);
                    }
                }
            }
        }
        for (app, running) in forgotten {
            changes.push(format!(
                "{app}: no longer managed{}",
                if running { ", left running" } else { "" }
            ));
        }
        if changes.is_empty() {
            changes.push("nothing but the revision".to_owned());
        }
        *running = next;
        self.lifecycle.events().emit(
            &AppKey::new(DEFAULT_SPACE, "", ""),
            EventKind::ConfigReloaded {
                revision: running.revision.clone(),
                changes: changes.clone(),
            },
        );
        Ok(ReloadView {
            previous_revision,
            revision: running.revision.clone(),
            applied: true,
            changes,
        })
    }

    /// The attempt in the status the admin API shows, the metrics and the events.
    fn record(&self, trigger: Trigger, outcome: &Result<ReloadView, Refusal>, running: &Config) {
        let (result, errors) = match outcome {
            Ok(view) if view.applied => ("applied", Vec::new()),
            Ok(_) => ("unchanged", Vec::new()),
            Err(Refusal::Invalid(errors)) => ("invalid", lines(errors)),
            Err(Refusal::RestartRequired(errors)) => ("restart_required", lines(errors)),
            Err(Refusal::NotReloadable(message) | Refusal::Unavailable(message)) => {
                ("unavailable", vec![message.clone()])
            }
        };
        self.status.count(result);
        if !errors.is_empty() {
            self.lifecycle.events().emit(
                &AppKey::new(DEFAULT_SPACE, "", ""),
                EventKind::ConfigRejected {
                    errors: errors.clone(),
                },
            );
        } else if result == "unchanged" {
            tracing::info!(
                trigger = trigger.name(),
                "configuration reloaded: nothing changed"
            );
        }
        let previous = self.status.view.load_full();
        let loaded_at = if result == "applied" {
            crate::model::rfc3339(SystemTime::now())
        } else {
            previous.loaded_at.clone()
        };
        self.status.view.store(Arc::new(ConfigView {
            revision: running.revision.clone(),
            loaded_at,
            file: previous.file.clone(),
            watched: previous.watched,
            last_reload: Some(ReloadAttemptView {
                at: crate::model::rfc3339(SystemTime::now()),
                result: result.to_owned(),
                trigger: trigger.name().to_owned(),
                errors,
            }),
        }));
    }

    /// Whether the watched file should be watched now (`reload.watch` of the running
    /// configuration).
    async fn watching(&self) -> bool {
        self.running.lock().await.reload.watch
    }

    /// Watches the configuration file until the engine stops: a change (content, or the
    /// file replaced by a rename or a symbolic link's new target) that stays put for
    /// [`SETTLE`] is reloaded.
    pub(super) async fn watch(self: Arc<Self>) {
        let Some(file) = self.source.as_ref().and_then(|source| source.file.clone()) else {
            return;
        };
        let mut seen = fingerprint(&file).await;
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = fingerprint(&file).await;
            if now == seen {
                continue;
            }
            // Let the writer finish: the file must stay the same for a moment.
            tokio::time::sleep(SETTLE).await;
            let settled = fingerprint(&file).await;
            if settled != now {
                continue;
            }
            seen = settled;
            if seen.is_none() || !self.watching().await {
                // Gone for now (being replaced), or not watched: the next change counts.
                continue;
            }
            match self.reload(None, true, Trigger::File).await {
                Ok(view) => tracing::info!(
                    revision = %view.revision,
                    changes = %view.changes.join("; "),
                    "configuration file changed: reloaded"
                ),
                Err(refusal) => log_refusal("configuration file changed", &refusal),
            }
        }
    }

    /// Reloads on every SIGHUP (with the TLS certificate, when there is one).
    pub(super) async fn on_hangup(self: Arc<Self>, tls: Option<Arc<crate::proxy::tls::ServerTls>>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP: nothing will be reloaded on it");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: TLS certificate not reloaded; the previous one stays in use"
                    ),
                }
            }
            if self.source.is_none() {
                continue;
            }
            match self.reload(None, true, Trigger::Signal).await {
                Ok(view) if view.applied => tracing::info!(
                    revision = %view.revision,
                    changes = %view.changes.join("; "),
                    "SIGHUP: configuration reloaded"
                ),
                Ok(_) => {}
                Err(refusal) => log_refusal("SIGHUP", &refusal),
            }
        }
    }
}

/// Logs why a reload was refused, every error with its path.
fn log_refusal(what: &str, refusal: &Refusal) {
    match refusal {
        Refusal::Invalid(errors) => tracing::error!(
            errors = %lines(errors).join("; "),
            "{what}: the configuration is invalid; the running one stays"
        ),
        Refusal::RestartRequired(errors) => tracing::error!(
            errors = %lines(errors).join("; "),
            "{what}: the configuration changes settings only a restart applies; nothing changed"
        ),
        Refusal::NotReloadable(message) | Refusal::Unavailable(message) => {
            tracing::warn!("{what}: {message}")
        }
    }
}

fn lines(errors: &[FieldError]) -> Vec<String> {
    errors
        .iter()
        .map(|error| {
            if error.path.is_empty() {
                error.message.clone()
            } else {
                format!("{}: {}", error.path, error.message)
            }
        })
        .collect()
}

/// What tells a file's change: its size, modification time and inode (a rename or a
/// symbolic link's new target is a new inode), or `None` while it is missing.
async fn fingerprint(file: &std::path::Path) -> Option<(u64, Option<SystemTime>, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = tokio::fs::metadata(file).await.ok()?;
    Some((metadata.len(), metadata.modified().ok(), metadata.ino()))
}

/// A value's settings as text, secrets included (never shown: only compared).
fn settings_text(debug: &impl std::fmt::Debug, secrets: &[&crate::secret::Secret]) -> String {
    let mut text = format!("{debug:?}");
    for secret in secrets {
        text.push('\0');
        text.push_str(secret.expose());
    }
    text
}

/// The accounts of one space for the `next` settings: the running client of an account
/// whose settings did not change, a new client for a changed account (with `take_over`, one
/// that takes over what the old one holds: its local processes), a new one for a new
/// account. Errors name the entry.
fn accounts(
    previous: &[ProviderConfig],
    running: &[Arc<dyn Provider>],
    next: &[ProviderConfig],
    path: &str,
    take_over: bool,
) -> Result<Vec<Arc<dyn Provider>>, Vec<FieldError>> {
    let mut built = Vec::with_capacity(next.len());
    let mut errors = Vec::new();
    for (index, config) in next.iter().enumerate() {
        let old_config = previous
            .iter()
            .find(|old| old.id() == config.id() && old.kind() == config.kind());
        let client = running.iter().find(|client| client.id() == config.id());
        let result = match (old_config, client) {
            (Some(old), Some(client))
                if settings_text(old, &old.secrets())
                    == settings_text(config, &config.secrets()) =>
            {
                Ok(Arc::clone(client))
            }
            (Some(_), Some(client)) if take_over => config.build_after(client),
            _ => config.build(),
        };
        match result {
            Ok(client) => built.push(client),
            Err(error) => errors.push(FieldError {
                path: format!("{path}[{index}]"),
                message: error.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(errors)
    }
}

/// What differs between two settings of one space, by section (`prefix` names the space).
fn section_changes(old: &SpaceConfig, new: &SpaceConfig, prefix: &str) -> Vec<String> {
    let mut changes = Vec::new();
    let mut compare = |name: &str, a: String, b: String| {
        if a != b {
            changes.push(format!("{prefix}{name}"));
        }
    };
    compare(
        "defaults",
        format!("{:?}", old.defaults),
        format!("{:?}", new.defaults),
    );
    compare(
        "rules",
        format!("{:?}", old.rules),
        format!("{:?}", new.rules),
    );
    compare(
        "discovery",
        format!("{:?}", old.discovery),
        format!("{:?}", new.discovery),
    );
    compare(
        "hooks",
        format!("{:?}", old.hooks),
        format!("{:?}", new.hooks),
    );
    compare(
        "schedules",
        format!("{:?}", old.schedules),
        format!("{:?}", new.schedules),
    );
    compare(
        "activity",
        format!("{:?}", old.activity),
        format!("{:?}", new.activity),
    );
    compare("plan", format!("{:?}", old.plan), format!("{:?}", new.plan));
    compare(
        "on_limit",
        format!("{:?}", old.on_limit),
        format!("{:?}", new.on_limit),
    );
    compare("page", format!("{:?}", old.page), format!("{:?}", new.page));
    // Compared by value: their Debug output hides the URL and the secret.
    if old.webhooks != new.webhooks {
        changes.push(format!("{prefix}webhooks"));
    }
    let rule_webhooks = |space: &SpaceConfig| {
        space
            .rules
            .0
            .iter()
            .map(|rule| rule.webhooks.clone())
            .collect::<Vec<_>>()
    };
    let rules = format!("{prefix}rules");
    if rule_webhooks(old) != rule_webhooks(new) && !changes.contains(&rules) {
        changes.push(rules);
    }
    for config in &new.providers {
        match old.providers.iter().find(|old| old.id() == config.id()) {
            None => changes.push(format!("{prefix}providers: {} (added)", config.id())),
            Some(old)
                if settings_text(old, &old.secrets())
                    != settings_text(config, &config.secrets()) =>
            {
                changes.push(format!("{prefix}providers: {} (changed)", config.id()))
            }
            Some(_) => {}
        }
    }
    for config in &old.providers {
        if !new.providers.iter().any(|new| new.id() == config.id()) {
            changes.push(format!("{prefix}providers: {} (removed)", config.id()));
        }
    }
    changes
}

/// Settings that only a restart applies and that `next` changes, each with its path.
fn restart_needed(running: &Config, next: &Config) -> Vec<FieldError> {
    let mut needed = Vec::new();
    let mut check = |path: &str, same: bool, what: &str| {
        if !same {
            needed.push(FieldError {
                path: path.to_owned(),
                message: format!("{what}: restart the engine to change it"),
            });
        }
    };
    let debug = |value: &dyn std::fmt::Debug| format!("{value:?}");
    check(
        "listen",
        running.listen == next.listen,
        "the proxy's listener",
    );
    check(
        "tls",
        debug(&running.tls) == debug(&next.tls),
        "the TLS listener (its certificate is read again on SIGHUP)",
    );
    check(
        "domains",
        running.domains == next.domains,
        "the base domains routes are made of",
    );
    check(
        "proxy",
        running.workers == next.workers
            && running.shutdown_timeout == next.shutdown_timeout
            && running.upstream_ca_file == next.upstream_ca_file
            && debug(&running.limits) == debug(&next.limits)
            && debug(&running.upstream_timeouts) == debug(&next.upstream_timeouts)
            && running.preserve_host == next.preserve_host
            && debug(&running.trusted_proxies) == debug(&next.trusted_proxies),
        "the proxy's workers, limits, timeouts and trusted proxies",
    );
    check(
        "database",
        running.database_url.expose() == next.database_url.expose(),
        "the database",
    );
    check(
        "events",
        running.events_retention == next.events_retention,
        "the event history's retention",
    );
    let registry_secrets = |config: &Config| match &config.registry {
        crate::registry::RegistryConfig::Redis(redis) => redis.url.expose().to_owned(),
        _ => String::new(),
    };
    check(
        "registry",
        debug(&running.registry) == debug(&next.registry)
            && registry_secrets(running) == registry_secrets(next),
        "the registry",
    );
    let admin_secrets = |config: &Config| {
        [&config.admin.token, &config.admin.system_api]
            .map(|secret| secret.as_ref().map(|s| s.expose().to_owned()))
    };
    check(
        "admin",
        debug(&running.admin) == debug(&next.admin)
            && admin_secrets(running) == admin_secrets(next),
        "the admin API's listener, hosts and tokens",
    );
    check(
        "gate",
        debug(&running.gate) == debug(&next.gate)
            && running.gate.token.as_ref().map(|t| t.expose())
                == next.gate.token.as_ref().map(|t| t.expose()),
        "the gate",
    );
    check(
        "savings",
        debug(&running.savings) == debug(&next.savings),
        "the savings' prices and carbon figures",
    );
    check(
        "hosted",
        debug(&running.hosted) == debug(&next.hosted),
        "hosted mode",
    );
    let ids = |config: &Config| {
        config
            .spaces
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    };
    if ids(running) != ids(next) {
        needed.push(FieldError {
            path: "spaces".to_owned(),
            message: "spaces added, removed or reordered: restart the engine to change them \
                      (a space's settings apply live)"
                .to_owned(),
        });
    } else {
        for (index, (old, new)) in running.spaces.iter().zip(&next.spaces).enumerate() {
            let tokens = |space: &SpaceConfig| {
                space
                    .tokens
                    .iter()
                    .map(|t| t.expose().to_owned())
                    .collect::<Vec<_>>()
            };
            if old.domains != new.domains {
                needed.push(FieldError {
                    path: format!("spaces[{index}].domains"),
                    message: "a space's domains: restart the engine to change them".to_owned(),
                });
            }
            if tokens(old) != tokens(new) {
                needed.push(FieldError {
                    path: format!("spaces[{index}].tokens"),
                    message: "a space's tokens: restart the engine to change them".to_owned(),
                });
            }
        }
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        crate::config::load_str(text, &Default::default(), &Default::default())
            .map(|loaded| loaded.config)
            .unwrap_or_else(|errors| panic!("{errors}"))
    }

    const BASE: &str = "providers:\n  - {id: local, type: process, apps: [{name: a, command: 'true', port: 4101}]}\n";

    #[test]
    fn live_sections_are_listed_and_restart_only_ones_refused() {
        let old = load(BASE);
        let new = load(&format!(
            "{BASE}defaults: {{max_idle: 5m}}\nrules: [{{pattern: 'a', max_idle: 1m}}]\n"
        ));
        assert!(restart_needed(&old, &new).is_empty());
        let changes = section_changes(&old.default_space(), &new.default_space(), "");
        assert_eq!(changes, ["defaults", "rules"]);

        let moved = load(&format!(
            "{BASE}listen: 127.0.0.1:9999\nadmin: {{listen: 127.0.0.1:9998}}\n"
        ));
        let paths: Vec<String> = restart_needed(&old, &moved)
            .into_iter()
            .map(|error| error.path)
            .collect();
        assert_eq!(paths, ["listen", "admin"]);
    }

    #[test]
    fn a_changed_secret_is_a_change_and_never_shown() {
        let old = load("admin: {token: first-token-value}\n");
        let new = load("admin: {token: second-token-value}\n");
        let needed = restart_needed(&old, &new);
        assert_eq!(needed.len(), 1);
        let text = format!("{needed:?}");
        assert!(!text.contains("first-token-value") && !text.contains("second-token-value"));
    }

    #[test]
    fn an_account_added_changed_or_removed_is_named() {
        let old = load(BASE);
        let new = load(
            "providers:\n  - {id: local, type: process, apps: [{name: a, command: 'sleep 1', port: 4101}]}\n  - {id: more, type: process, apps: []}\n",
        );
        assert_eq!(
            section_changes(&old.default_space(), &new.default_space(), ""),
            ["providers: local (changed)", "providers: more (added)"]
        );
        assert_eq!(
            section_changes(&new.default_space(), &old.default_space(), ""),
            ["providers: local (changed)", "providers: more (removed)"]
        );
    }
}
