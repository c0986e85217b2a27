//! What the mapping tells `paastis check` and the log: a [`Notice`] and how much it
//! matters ([`Level`]). It decides nothing.

use std::fmt;

/// How much a [`Notice`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The behaviour differs from the original engine's, or a setting is not honoured.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

/// Something `paastis check` and the log tell about the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// How much it matters.
    pub level: Level,
    /// What it says (never a secret value).
    pub message: String,
}

impl Notice {
    pub(super) fn warning(message: impl Into<String>) -> Notice {
        Notice {
            level: Level::Warning,
            message: message.into(),
        }
    }

    pub(super) fn info(message: impl Into<String>) -> Notice {
        Notice {
            level: Level::Info,
            message: message.into(),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Warning => write!(f, "warning: {}", self.message),
            Level::Info => write!(f, "note: {}", self.message),
        }
    }
}
