//! Reconfiguration: a configuration reload replaces a running lifecycle's settings,
//! schedules and provider accounts without losing what its apps are doing. Apps that keep
//! their identity (same provider id, same name) keep their state, activity, pins, start
//! history and requests in flight; what the configuration gives them (policy, aliases,
//! hooks, schedules, links) is resolved again and swapped in whole. Apps the new
//! configuration no longer manages are forgotten, left running or stopped as
//! `reload.removed_apps` says; new providers and apps come from the discovery that follows.
//!
//! It decides nothing about whether a configuration is valid or what may change without a
//! restart: the composition root does, before calling [`Lifecycle::reconfigure`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::discovery::resolve;
use super::{App, Lifecycle, Settings, lock};
use crate::events::{EventKind, StopCause};
use crate::model::State;
use crate::providers::Provider;
use crate::settings::{Key, Kind, Reader, kind};

/// What a reload does with an app that is awake when the new configuration stops managing
/// it (`reload.removed_apps`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RemovedApps {
    /// Forget it and leave it running (the default: nothing is stopped by surprise).
    #[default]
    KeepRunning,
    /// Stop it (hooks and all, as an idle stop), then forget it.
    Stop,
}

/// What a reconfiguration did to the apps it already had.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconfigured {
    /// Apps forgotten (provider or filter gone), with whether each was left running.
    pub forgotten: Vec<(String, bool)>,
}

impl Lifecycle {
    /// Replaces the settings and provider accounts. `providers` are in config order; an
    /// account whose config did not change should be passed as the same `Arc` (its
    /// connections, watches and local processes stay). `space`, `wall_start` and
    /// `upstreams` of `settings` are ignored: they belong to the space, not to its file.
    ///
    /// Then lists the providers again (new accounts, new apps, a new filter) and applies
    /// the schedules, so the new configuration holds from the first request after it.
    pub async fn reconfigure(
        self: &Arc<Self>,
        providers: Vec<Arc<dyn Provider>>,
        settings: Settings,
        removed: RemovedApps,
    ) -> Reconfigured {
        let _one_at_a_time = self.reconfiguring.lock().await;
        let current = self.settings.load_full();
        let settings = Arc::new(Settings {
            space: current.space.clone(),
            wall_start: current.wall_start,
            upstreams: current.upstreams,
            ..settings
        });
        let tracker = Arc::new(crate::schedules::Tracker::new(settings.schedules.clone()));
        let by_id: HashMap<String, Arc<dyn Provider>> = providers
            .iter()
            .map(|provider| (provider.id().to_owned(), Arc::clone(provider)))
            .collect();
        // Local accounts' apps are the configuration itself: the ones it dropped are known
        // now, before discovery (which would take them for deleted).
        let mut local_names: HashMap<String, HashSet<String>> = HashMap::new();
        for provider in providers.iter().filter(|provider| provider.is_local()) {
            if let Ok(listing) = provider.list_apps().await {
                local_names.insert(
                    provider.id().to_owned(),
                    listing.into_iter().map(|info| info.name).collect(),
                );
            }
        }

        let previous = self.providers.swap(Arc::new(providers));
        lock(&self.retired).extend(
            previous
                .iter()
                .filter(|old| old.is_local() && !by_id.contains_key(old.id()))
                .cloned(),
        );
        self.settings.store(Arc::clone(&settings));
        let space_look = crate::pages::Look::new(&settings.page);
        self.look.store(Arc::clone(&space_look));
        self.schedules.store(Arc::clone(&tracker));
        self.replace_webhooks(&settings.webhooks, settings.upstreams);

        let mut report = Reconfigured::default();
        let mut gone: Vec<Arc<App>> = Vec::new();
        {
            let mut apps = lock(&self.apps);
            apps.retain(|_, app| {
                let managed = by_id.contains_key(app.provider_id())
                    && local_names
                        .get(app.provider_id())
                        .is_none_or(|names| names.contains(&*app.key.name))
                    && settings
                        .filter
                        .manages(&app.key.name, &app.listed.load().aliases);
                if !managed {
                    gone.push(Arc::clone(app));
                }
                managed
            });
            // The configuration shared by the apps nothing sets apart.
            let mut plain = None;
            for app in apps.values() {
                if let Some(provider) = by_id.get(app.provider_id()) {
                    let mut current = lock(&app.provider);
                    if !Arc::ptr_eq(&current, provider) {
                        *current = Arc::clone(provider);
                    }
                }
                app.conf.store(resolve(
                    &settings,
                    &tracker,
                    &space_look,
                    &app.key.name,
                    &app.listed.load(),
                    &mut plain,
                ));
            }
        }
        for app in &gone {
            let running = app.state() == State::Awake;
            let stopping =
                running && removed == RemovedApps::Stop && self.stop_now(app, StopCause::Unmanaged);
            if app.coordinated {
                self.registry.forget(&app.key).await;
            }
            self.events.emit(
                &app.key,
                EventKind::Unmanaged {
                    running: running && !stopping,
                },
            );
            report
                .forgotten
                .push((app.key.to_string(), running && !stopping));
        }
        self.rebuild_routes();
        self.discover_with(true).await;
        self.apply_schedules();
        report
    }
}

/// `reload`: how the running engine takes a changed configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Whether the configuration file is watched and reloaded when it changes
    /// (`reload.watch`); SIGHUP and the admin API reload it either way.
    pub watch: bool,
    /// What happens to an awake app the new configuration no longer manages.
    pub removed_apps: RemovedApps,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            watch: true,
            removed_apps: RemovedApps::KeepRunning,
        }
    }
}

/// The `reload` section's keys, for the configuration reference and schema.
pub const RELOAD_KEYS: &[Key] = &[
    Key::new(
        "watch",
        Kind::Boolean,
        "Reload when the configuration file changes (checked every second; editors' \
         atomic renames and mounted configuration maps included). SIGHUP and \
         POST /api/v1/config/reload reload it either way.",
    ),
    Key::new(
        "removed_apps",
        Kind::Enum(&["keep_running", "stop"]),
        "What a reload does with an awake app it no longer manages (its provider, rule or \
         discovery filter is gone): keep_running forgets it and leaves it up; stop stops \
         it, hooks included, then forgets it.",
    ),
];

impl Reader<'_> {
    pub(crate) fn reload(&mut self, value: &Value, path: &str) -> ReloadSettings {
        let mut reload = ReloadSettings::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return reload;
        };
        if let Some((value, p)) = fields.take("watch") {
            match value {
                Value::Bool(watch) => reload.watch = *watch,
                other => self.error(&p, format!("expected true or false, found {}", kind(other))),
            }
        }
        if let Some((value, p)) = fields.take("removed_apps") {
            match value.as_str() {
                Some("keep_running") => reload.removed_apps = RemovedApps::KeepRunning,
                Some("stop") => reload.removed_apps = RemovedApps::Stop,
                _ => self.error(&p, "expected keep_running or stop"),
            }
        }
        self.finish(fields, &[]);
        reload
    }
}
