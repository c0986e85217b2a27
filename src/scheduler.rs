//! The scheduler: background loops that keep the registry in line with the providers and
//! stop idle apps. Discovery every `discovery.every`, the idle check every second, and a
//! listener per provider for apps that stop on their own. It only calls the lifecycle; it
//! never talks to a provider directly.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::lifecycle::Lifecycle;

/// Apps whose listing did not tell their state, checked one by one after each discovery
/// (two provider calls each: bounded so a large account stays under its rate limit).
pub const VERIFY_PER_TICK: usize = 10;

/// Period of the idle check: an app sleeps at most this long after its `max_idle`.
pub const IDLE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The running background loops; dropping it (or [`Scheduler::stop`]) ends them.
#[derive(Debug)]
pub struct Scheduler {
    /// The loops.
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts the loops. The first discovery tick comes one period from now (the engine
    /// discovers once before serving).
    pub fn start(lifecycle: &Arc<Lifecycle>, discovery_every: Duration) -> Scheduler {
        let mut tasks = JoinSet::new();

        let discovery = Arc::clone(lifecycle);
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(discovery_every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                discovery.discover().await;
                discovery.verify_unknown(VERIFY_PER_TICK).await;
            }
        });

        let idle = Arc::clone(lifecycle);
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(IDLE_CHECK_EVERY);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                idle.check_idle();
            }
        });

        for provider in lifecycle.providers() {
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
