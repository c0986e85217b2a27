//! Plans: how many provider accounts a space may have and how many of each account's apps
//! may run at once, and what a wake beyond that does (`on_limit`).
//!
//! This module only says what the limits are; the lifecycle applies them when a wake
//! begins, and the config checks the provider count when it loads.

use std::fmt;

/// A plan's limits (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Its name (`free`, `team`, `enterprise`, `unlimited`, `custom`), for messages.
    pub name: String,
    /// Provider accounts at most.
    pub providers: Option<usize>,
    /// Apps running (awake or waking) at once per provider account, at most.
    pub running_apps_per_provider: Option<usize>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan::named("unlimited").unwrap_or(Plan {
            name: "unlimited".to_owned(),
            providers: None,
            running_apps_per_provider: None,
        })
    }
}

impl Plan {
    /// The built-in plans.
    pub const NAMES: [&'static str; 4] = ["free", "team", "enterprise", "unlimited"];

    /// A built-in plan by name.
    pub fn named(name: &str) -> Option<Plan> {
        let (providers, running) = match name {
            "free" => (Some(1), Some(5)),
            "team" => (Some(3), Some(15)),
            "enterprise" => (Some(5), Some(100)),
            "unlimited" => (None, None),
            _ => return None,
        };
        Some(Plan {
            name: name.to_owned(),
            providers,
            running_apps_per_provider: running,
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.name)
    }
}

/// What a wake beyond `running_apps_per_provider` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLimit {
    /// It is refused: 429, with a page that says which limit.
    #[default]
    Reject,
    /// The least recently active awake app of that provider is stopped first (cause `plan
    /// limit`), then the new one wakes.
    EvictLru,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_plans() {
        let free = Plan::named("free").expect("free");
        assert_eq!(
            (free.providers, free.running_apps_per_provider),
            (Some(1), Some(5))
        );
        let team = Plan::named("team").expect("team");
        assert_eq!(
            (team.providers, team.running_apps_per_provider),
            (Some(3), Some(15))
        );
        let enterprise = Plan::named("enterprise").expect("enterprise");
        assert_eq!(
            (enterprise.providers, enterprise.running_apps_per_provider),
            (Some(5), Some(100))
        );
        assert_eq!(Plan::default().running_apps_per_provider, None);
        assert_eq!(Plan::named("gold"), None);
    }
}
