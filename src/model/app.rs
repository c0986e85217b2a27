//! What names an app and where it is in its lifecycle: the words every layer shares.

use std::fmt;
use std::sync::Arc;

/// The implicit space of single-user setups.
pub const DEFAULT_SPACE: &str = "default";

/// Identifies an app: which space, which provider account, which name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppKey {
    /// The tenant (`default` for single-user setups).
    pub space: Arc<str>,
    /// The provider id within the space.
    pub provider: Arc<str>,
    /// The app's name on its provider.
    pub name: Arc<str>,
}

impl AppKey {
    /// Builds a key.
    pub fn new(space: &str, provider: &str, name: &str) -> AppKey {
        AppKey {
            space: space.into(),
            provider: provider.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if &*self.space == DEFAULT_SPACE {
            write!(f, "{}/{}", self.provider, self.name)
        } else {
            write!(f, "{}:{}/{}", self.space, self.provider, self.name)
        }
    }
}

/// Where an app is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Stopped; the next request wakes it.
    Asleep = 0,
    /// Being started; requests wait.
    Waking = 1,
    /// Running; requests are forwarded.
    Awake = 2,
    /// Being stopped; requests wait, then wake it again.
    Stopping = 3,
    /// The last wake failed; the next request tries again.
    Failed = 4,
}

impl State {
    /// The state stored as this byte (an unknown byte is `Asleep`).
    pub fn from_u8(value: u8) -> State {
        match value {
            1 => State::Waking,
            2 => State::Awake,
            3 => State::Stopping,
            4 => State::Failed,
            _ => State::Asleep,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Asleep => "asleep",
            State::Waking => "waking",
            State::Awake => "awake",
            State::Stopping => "stopping",
            State::Failed => "failed",
        })
    }
}
