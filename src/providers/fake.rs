//! An in-memory provider for the engine's unit tests (paused time). It keeps app states,
//! counts calls, and panics on calls a test did not allow, so a test cannot pass by accident.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{AppInfo, AppStatus, Provider, ProviderError};
use crate::model::PolicyOverride;
use crate::model::{Formation, Upstream};

/// A provider whose apps live in memory.
#[derive(Debug)]
pub struct FakeProvider {
    /// Provider id.
    id: String,
    /// Everything mutable.
    state: Mutex<FakeState>,
}

/// Apps, call counts and switches.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Apps by name: status and how many status polls a start stays `Starting`.
    pub apps: BTreeMap<String, (AppStatus, usize)>,
    /// Calls of any method (listing, status, start, stop).
    pub calls: usize,
    /// Calls to `start`.
    pub starts: usize,
    /// Calls to `stop`.
    pub stops: usize,
    /// Whether `start` may be called at all.
    pub allow_start: bool,
    /// Whether `stop` may be called at all.
    pub allow_stop: bool,
    /// `list_apps` fails while set.
    pub fail_list: bool,
    /// `stop` fails while set.
    pub fail_stop: bool,
    /// Status polls a start stays `Starting`.
    pub boot_polls: usize,
    /// How long a listing takes to arrive (it says what was true when it was asked for).
    pub list_delay: std::time::Duration,
}

impl FakeProvider {
    /// A provider with these apps and statuses; starts and stops are refused until allowed.
    pub fn new(id: &str, apps: &[(&str, AppStatus)]) -> FakeProvider {
        let state = FakeState {
            apps: apps
                .iter()
                .map(|(name, status)| ((*name).to_owned(), (status.clone(), 0)))
                .collect(),
            ..FakeState::default()
        };
        FakeProvider {
            id: id.to_owned(),
            state: Mutex::new(state),
        }
    }

    /// Reads or changes the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// Like [`FakeProvider::with`], counting one provider call.
    fn call<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        self.with(|state| {
            state.calls += 1;
            f(state)
        })
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let (listing, delay) = self.call(|state| {
            if state.fail_list {
                return (
                    Err(ProviderError::Failed("listing refused".to_owned())),
                    state.list_delay,
                );
            }
            (
                Ok(state
                    .apps
                    .iter()
                    .enumerate()
                    .map(|(index, (name, (status, _)))| AppInfo {
                        name: name.clone(),
                        status: status.clone(),
                        upstream: Some(Upstream::local(10_000 + index as u16)),
                        formation: Formation::from([("web".to_owned(), 1)]),
                        policy: PolicyOverride::default(),
                        aliases: Vec::new(),
                        linked: Vec::new(),
                        group: None,
                    })
                    .collect()),
                state.list_delay,
            )
        });
        tokio::time::sleep(delay).await;
        listing
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        self.call(|state| {
            let (status, polls) = state
                .apps
                .get_mut(app)
                .ok_or_else(|| ProviderError::NotFound(app.to_owned()))?;
            if *status == AppStatus::Starting {
                if *polls == 0 {
                    *status = AppStatus::Running;
                } else {
                    *polls -= 1;
                }
            }
            Ok(status.clone())
        })
    }

    async fn start(
        &self,
        app: &str,
        _formation: Option<&Formation>,
    ) -> Result<super::Started, ProviderError> {
        self.call(|state| {
            assert!(state.allow_start, "unexpected start of {app}");
            state.starts += 1;
            let boot = state.boot_polls;
            let entry = state
                .apps
                .get_mut(app)
                .ok_or_else(|| ProviderError::NotFound(app.to_owned()))?;
            *entry = (AppStatus::Starting, boot);
            Ok(super::Started::default())
        })
    }

    async fn stop(&self, app: &str) -> Result<super::Stopped, ProviderError> {
        self.call(|state| {
            assert!(state.allow_stop, "unexpected stop of {app}");
            state.stops += 1;
            if state.fail_stop {
                return Err(ProviderError::Failed("stop refused".to_owned()));
            }
            let entry = state
                .apps
                .get_mut(app)
                .ok_or_else(|| ProviderError::NotFound(app.to_owned()))?;
            *entry = (AppStatus::Stopped, 0);
            Ok(super::Stopped {
                formation: Some(Formation::from([("web".to_owned(), 2)])),
                sizes: [("web".to_owned(), "M".to_owned())].into(),
            })
        })
    }
}
