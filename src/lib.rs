//! Paastis puts idle PaaS apps to sleep and wakes them on the first request.
//!
//! # Layout
//!
//! * [`address`]: which addresses a tenant's upstreams may resolve to (hosted mode).
//! * [`admin`]: the admin API, dashboard and `/metrics` on their own listener.
//! * [`catalog`]: the engine's durable memory: what the store remembers goes to the
//!   lifecycle at start; what happens is written back in the background.
//! * [`child_env`]: what the commands the engine runs (`process` apps, hooks) get of its
//!   environment: a short allow-list, never a secret.
//! * [`cli`]: the `apps`, `events`, `providers`, `savings` and `spaces` subcommands, clients
//!   of the admin API.
//! * [`config`]: the `paastis.yml` file model, its sources and its validation into typed
//!   values (every error collected, with its path), and the original engine's environment
//!   variables (`config/compat`).
//! * [`engine`]: the composition root: builds every component from the config (registry,
//!   store, each space's lifecycle, spaces, scheduler, proxy, admin API) and runs them.
//! * [`providers`]: one trait for every platform account, one module per platform
//!   ([`providers::process`]: local commands, the embedded default).
//! * [`hooks`]: the user's shell commands around starts and stops (run and reported here,
//!   decided on by the lifecycle).
//! * [`lifecycle`]: the registry of managed apps and their state machine (Asleep, Waking,
//!   Awake, Stopping, Failed); the only place that starts and stops apps.
//! * [`metrics`]: counters and histograms for `/metrics` (Prometheus text format).
//! * [`model`]: the shared vocabulary (app keys and states, policies, formations and
//!   upstreams, durations, patterns, instants); it imports nothing else of the crate.
//! * [`plan`]: a space's limits (provider accounts, running apps per account) and what a
//!   wake beyond them does.
//! * [`rules`]: which apps are managed (`discovery.include` / `exclude`) and what each gets
//!   from `rules:` (policy, aliases, linked apps, formation).
//! * [`proxy`]: the request path as named phases (route, admit, touch, wake, forward).
//! * [`savings`]: what sleeping apps did not cost (money, carbon), from the event history.
//! * [`registry`]: what several instances share (leader lease, per-app leases, state
//!   changes, activity): nothing for one instance, Redis for several.
//! * [`scheduler`]: discovery, the idle check, schedules, and exits reported by providers.
//! * [`schedules`]: `schedules:` entries and where each stands at a given wall time (sleep
//!   windows, keep-awake windows, wake times); it tells, the lifecycle acts.
//! * [`events`]: typed records of every transition.
//! * `fuzzing` (feature `fuzzing`): entry points for the fuzz targets in `fuzz/`.
//! * [`secret`]: the redacting string type every credential is held in, sealing and
//!   constant-time comparison.
//! * [`settings`]: the shared reader of settings (every error collected, with its path).
//! * [`spaces`]: the tenants besides the default space, running: from the config file, or
//!   (hosted mode) from the admin API and the database, secrets sealed, tokens hashed.
//! * [`store`]: the durable catalog and event history (SQLite file or PostgreSQL), behind
//!   one trait; it stores and answers, never decides.
//! * [`table`]: the plain-text table of managed apps.
//! * [`html`]: text made safe for HTML, for the proxy's error pages and the dashboard.
//! * [`wire`]: the admin API's JSON views of apps, events and providers, which the CLI reads
//!   back (so neither front door imports the other).
//!
//! The crate root declares the modules and re-exports what the binary and the tests use
//! ([`run`], [`Engine`], [`Listeners`], [`RunError`], [`Config`]); it holds no logic.
//!
//! [`run`] takes an already-validated [`Config`] and already-bound listeners, so tests bind
//! port 0 and the binary stays thin.

pub mod address;
pub mod admin;
pub mod catalog;
pub mod child_env;
pub mod cli;
pub mod config;
pub mod engine;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hooks;
pub mod html;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod providers;
pub mod proxy;
pub mod registry;
pub mod rules;
pub mod savings;
pub mod scheduler;
pub mod schedules;
pub mod secret;
pub mod settings;
pub mod spaces;
pub mod store;
pub mod table;
pub mod wire;

pub use config::Config;
pub use engine::{Engine, Listeners, RunError, run};
pub use model::DEFAULT_SPACE;
