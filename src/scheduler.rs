//! The scheduler: background loops that keep the registry in line with the providers and
//! stop idle apps. Discovery every `discovery.every`, the schedules and the idle check
//! every second, and a
//! listener per provider for apps that stop on their own. With a shared registry: the
//! activity write-behind and state sync every `registry.flush_every`, announcements from
//! other instances, and a discovery at once when this instance becomes the leader (only
//! the leader lists shared providers and stops their apps). It only calls the lifecycle;
//! it never talks to a provider directly. Its settings, [`Discovery`] (the `discovery`
//! section: when to list, which apps are managed), are read here too.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::lifecycle::{IDLE_CHECK_EVERY, Lifecycle};
use crate::model::Plain;
use crate::settings::Reader;

/// Apps whose listing did not tell their state, checked one by one after each discovery
/// (two provider calls each: bounded so a large account stays under its rate limit).
pub const VERIFY_PER_TICK: usize = 10;

/// The running background loops; dropping it (or [`Scheduler::stop`]) ends them.
#[derive(Debug)]
pub struct Scheduler {
    /// The loops.
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts the loops. The first discovery tick comes one period from now, or at the
    /// cron's next time (the engine discovers once before serving).
    pub fn start(lifecycle: &Arc<Lifecycle>, discovery: &Discovery) -> Scheduler {
        let mut tasks = JoinSet::new();

        let lifecycle_for_discovery = Arc::clone(lifecycle);
        let every = discovery.every;
        let cron = discovery.cron.clone();
        tasks.spawn(async move {
            let discovery = lifecycle_for_discovery;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                match &cron {
                    Some(cron) => tokio::time::sleep(until_next(cron)).await,
                    None => {
                        ticks.tick().await;
                    }
                }
                discovery.discover().await;
                if discovery.registry().is_leader() {
                    discovery.verify_unknown(VERIFY_PER_TICK).await;
                }
            }
        });

        let registry = Arc::clone(lifecycle.registry());
        if registry.is_shared() {
            let syncing = Arc::clone(lifecycle);
            let every = registry.flush_every();
            tasks.spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    syncing.sync_registry().await;
                }
            });

            if let Some(mut notices) = registry.notices() {
                let listening = Arc::clone(lifecycle);
                tasks.spawn(async move {
                    loop {
                        match notices.recv().await {
                            Ok(notice) => listening.apply_notice(notice).await,
                            // Missed some: the next sync compares everything.
                            Err(RecvError::Lagged(_)) => {
                                listening.apply_notice(crate::registry::Notice::Reset).await
                            }
                            Err(RecvError::Closed) => break,
                        }
                    }
                });
            }

            let mut leadership = registry.leadership();
            let leading = Arc::clone(lifecycle);
            tasks.spawn(async move {
                while leadership.changed().await.is_ok() {
                    if *leadership.borrow_and_update() {
                        // A new leader starts from the providers' word, not from what the
                        // previous one left (it may have died mid-way, or Redis lost it).
                        leading.discover().await;
                        leading.sync_registry().await;
                    }
                }
            });
        }

        let idle = Arc::clone(lifecycle);
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(IDLE_CHECK_EVERY);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                idle.apply_schedules();
                idle.check_idle();
            }
        });

        for provider in lifecycle.providers().iter() {
            let Some(mut exits) = provider.exits() else {
                continue;
            };
            let provider_id = provider.id().to_owned();
            let lifecycle = Arc::clone(lifecycle);
            tasks.spawn(async move {
                loop {
                    match exits.recv().await {
                        Ok(exit) => lifecycle.app_exited(&provider_id, exit),
                        // Missed some: the provider's listing tells the truth.
                        Err(RecvError::Lagged(_)) => lifecycle.discover().await,
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        }
        Scheduler { tasks }
    }

    /// Ends every loop.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// How long until the cron's next time (UTC); an hour when it has none (a date in the past).
fn until_next(cron: &croner::Cron) -> Duration {
    let now = chrono::Utc::now();
    cron.find_next_occurrence(&now, false)
        .ok()
        .and_then(|next| (next - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
        // At least a little: a cron every second must not spin on rounding.
        .max(Duration::from_millis(200))
}

/// Discovery settings.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Period of the discovery tick.
    pub every: Duration,
    /// Or the times of the discovery tick (`discovery.cron`, UTC), instead of `every`.
    pub cron: Option<croner::Cron>,
    /// Which apps are managed (`include`, `exclude`, `self_app`).
    pub filter: crate::rules::Filter,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            every: Duration::from_secs(60),
            cron: None,
            filter: crate::rules::Filter::default(),
        }
    }
}

impl Reader<'_> {
    pub(crate) fn discovery(&mut self, value: &Value, path: &str) -> Discovery {
        let mut discovery = Discovery::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return discovery;
        };
        let every = fields.take("every");
        let every_given = every.is_some();
        if let Some(every) = every.and_then(|(v, p)| self.positive_duration(v, &p)) {
            discovery.every = every;
        }
        if let Some((v, p)) = fields.take("cron") {
            if every_given {
                self.error(&p, "give `every` or `cron`, not both");
            } else if let Some(cron) = self.cron(v, &p) {
                discovery.cron = Some(cron);
            }
        }
        if let Some((v, p)) = fields.take("include") {
            discovery.filter.include = self.patterns(v, &p, Plain::Whole);
            // `*` alone is every app: the same as no include list (and cheaper).
            if discovery
                .filter
                .include
                .iter()
                .any(|pattern| pattern.as_str() == "*")
            {
                discovery.filter.include.clear();
            }
        }
        if let Some((v, p)) = fields.take("exclude") {
            discovery.filter.exclude = self.patterns(v, &p, Plain::Whole);
        }
        discovery.filter.self_app = match fields.take("self_app") {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.non_empty_string(v, &p),
        };
        self.finish(fields, &[]);
        discovery
    }
}

/// The keys of `discovery`, as `Reader::discovery` takes them.
pub const DISCOVERY_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "every",
            Kind::Duration,
            "How often each provider's apps are listed.",
        )
        .default("60s"),
        Key::new(
            "cron",
            Kind::Text("cron"),
            "Instead of `every`: when they are listed (5 fields, or 6 with seconds first, UTC).",
        ),
        Key::new(
            "include",
            Kind::List(&Kind::Text("pattern")),
            "Only apps matching one of these are managed (globs, `re:` regexes); default: all.",
        ),
        Key::new(
            "exclude",
            Kind::List(&Kind::Text("pattern")),
            "Apps matching one of these are never managed.",
        ),
        Key::new(
            "self_app",
            Kind::Text("app name"),
            "This engine's own app, never managed (found by itself on the platforms that say).",
        ),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_waits_until_its_next_time() {
        let every_second = croner::parser::CronParser::new()
            .parse("* * * * * *")
            .expect("cron");
        assert!(until_next(&every_second) <= Duration::from_secs(1));
        let yearly = croner::parser::CronParser::new()
            .parse("0 0 1 1 *")
            .expect("cron");
        assert!(until_next(&yearly) > Duration::from_secs(60));
    }
}
