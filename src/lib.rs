//! Paastis puts idle PaaS apps to sleep and wakes them on the first request.
//!
//! # Layout
//!
//! From the bottom layer up; a module imports only modules of lower layers
//! (`scripts/check-layers.py` checks it; docs/src/contributing.md explains the layers).
//!
//! **Vocabulary** (imports nothing else of the crate):
//! * [`model`]: the shared vocabulary (app keys and states, policies, formations and
//!   upstreams, durations, patterns, instants).
//! * [`secret`]: the redacting string type every credential is held in, redaction of URLs,
//!   sealing, constant-time comparison.
//! * [`address`]: which addresses a tenant's upstreams may resolve to (hosted mode).
//! * [`html`]: text made safe for HTML, for the proxy's error pages and the dashboard.
//! * [`wire`]: the admin API's JSON views of apps, events, providers and webhooks, which the
//!   CLI reads back (so neither front door imports the other).
//!
//! **Shared readers and records**:
//! * [`settings`]: the shared reader of settings (every error collected, with its path).
//! * [`events`]: typed records of every transition.
//! * [`metrics`]: counters and histograms for `/metrics` (Prometheus text format).
//! * [`traces`]: spans of requests, wakes, stops and admin calls, sent over OTLP when the
//!   `OTEL_*` variables ask for it (off, and free, by default).
//! * [`child_env`]: what the commands the engine runs (`process` apps, hooks) get of its
//!   environment: a short allow-list, never a secret.
//!
//! **Components** (each owns its settings type and reads its own section):
//! * [`plan`]: a space's limits (provider accounts, running apps per account) and what a
//!   wake beyond them does.
//! * [`hooks`]: the user's shell commands around starts and stops (run and reported here,
//!   decided on by the lifecycle).
//! * [`schedules`]: `schedules:` entries and where each stands at a given wall time (sleep
//!   windows, keep-awake windows, wake times); it tells, the lifecycle acts.
//! * [`providers`]: one trait for every platform account, one file per platform registered
//!   in one line ([`providers::process`]: local commands, the embedded default).
//! * [`store`]: the durable catalog and event history (SQLite file or PostgreSQL), behind
//!   one trait; it stores and answers, never decides.
//! * [`registry`]: what several instances share (leader lease, per-app leases, state
//!   changes, activity): nothing for one instance, Redis for several.
//! * [`pages`]: the visitor pages (waiting, errors) and the dashboard's login as templates:
//!   the `page:` settings, themes, translations; it renders bodies, never decides a status.
//! * [`webhooks`]: the `webhooks:` settings, and the events sent to them in the background
//!   (signed, retried for a bounded time, recorded, in bounded memory).
//! * [`rules`]: which apps are managed (`discovery.include` / `exclude`) and what each gets
//!   from `rules:` (policy, aliases, linked apps, formation).
//! * [`savings`]: what sleeping apps did not cost (money, carbon), from the event history.
//!
//! **Engine state**:
//! * [`lifecycle`]: the managed apps, their state machine (Asleep, Waking, Awake, Stopping,
//!   Failed) and route table; the only place that starts and stops apps.
//! * [`catalog`]: the engine's durable memory: what the store remembers goes to the
//!   lifecycle at start; what happens is written back in the background.
//! * [`scheduler`]: discovery, the idle check, schedules, and exits reported by providers.
//! * [`table`]: the plain-text table of managed apps.
//!
//! **Front doors and tenants** (proxy, admin and cli never import each other):
//! * [`proxy`]: the request path as named phases (route, admit, touch, wake, forward).
//! * [`gate`]: the engine as the decision maker behind another proxy: forward-auth for
//!   nginx, Caddy and Traefik, and the Sablier-compatible API (it routes and admits through
//!   the proxy's phases, and forwards nothing).
//! * [`cli`]: the `apps`, `events`, `providers`, `savings` and `spaces` subcommands, clients
//!   of the admin API.
//! * [`spaces`]: the tenants besides the default space, running: from the config file, or
//!   (hosted mode) from the admin API and the database, secrets sealed, tokens hashed.
//! * [`admin`]: the admin API, dashboard and `/metrics`, on their own listener and, for the
//!   `admin.host` names, on the proxy's (handed over by the composition root).
//!
//! **Composition**:
//! * [`config`]: the `paastis.yml` file model and its sources, composed of every
//!   component's settings, and the original engine's environment variables
//!   (`config/compat`).
//! * [`engine`]: the composition root: builds every component from the config (registry,
//!   store, each space's lifecycle, spaces, scheduler, proxy, admin API) and runs them.
//! * `fuzzing` (feature `fuzzing`): entry points for the fuzz targets in `fuzz/`.
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
pub mod gate;
pub mod hooks;
pub mod html;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod pages;
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
pub mod traces;
pub mod webhooks;
pub mod wire;

pub use config::Config;
pub use engine::{Engine, Listeners, RunError, run};
pub use model::DEFAULT_SPACE;
