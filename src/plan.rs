//! Plans: how many provider accounts a space may have and how many of each account's apps
//! may run at once, and what a wake beyond that does (`on_limit`).
//!
//! This module only says what the limits are; the lifecycle applies them when a wake
//! begins, and the config checks the provider count when it loads. The `plan` and
//! `on_limit` keys are read here, with the shared [`crate::settings::Reader`].

use std::fmt;

use serde_json::Value;

use crate::settings::{Fields, Reader};

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

impl Reader<'_> {
    /// `plan`: a built-in plan's name, or `{providers: N, running_apps_per_provider: M}`.
    pub(crate) fn plan(&mut self, value: &Value, path: &str) -> Option<crate::plan::Plan> {
        if let Value::Object(_) = value {
            let mut fields = self.mapping(value, path)?;
            let mut count = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
                None => None,
                Some((v, p)) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        self.error(
                            &p,
                            "must be a whole number >= 1 (leave it out for no limit)",
                        );
                        None
                    }
                },
            };
            let providers = count(&mut fields, "providers");
            let running_apps_per_provider = count(&mut fields, "running_apps_per_provider");
            self.finish(fields, &[]);
            return Some(crate::plan::Plan {
                name: "custom".to_owned(),
                providers,
                running_apps_per_provider,
            });
        }
        let name = self.string(value, path)?;
        match crate::plan::Plan::named(name.trim()) {
            Some(plan) => Some(plan),
            None => {
                self.error(
                    path,
                    format!(
                        "`{name}` is not a plan (expected one of: {}, or {{providers: N, \
                         running_apps_per_provider: M}})",
                        crate::plan::Plan::NAMES.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// `on_limit`: `reject` or `evict_lru`.
    pub(crate) fn on_limit(&mut self, value: &Value, path: &str) -> crate::plan::OnLimit {
        match self.string(value, path).as_deref().map(str::trim) {
            Some("reject") => crate::plan::OnLimit::Reject,
            Some("evict_lru") => crate::plan::OnLimit::EvictLru,
            Some(other) => {
                self.error(path, format!("`{other}` is not one of: reject, evict_lru"));
                crate::plan::OnLimit::default()
            }
            None => crate::plan::OnLimit::default(),
        }
    }
}

/// The keys of a custom `plan`, as `Reader::plan` takes them.
pub const PLAN_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    const COUNT: Kind = Kind::Integer {
        min: 1,
        max: u64::MAX,
    };
    &[
        Key::new(
            "providers",
            COUNT,
            "Provider accounts at most (leave it out for no limit).",
        ),
        Key::new(
            "running_apps_per_provider",
            COUNT,
            "Awake apps per provider account at most (leave it out for no limit).",
        ),
    ]
};

/// `plan`: a built-in plan's name or a custom plan.
pub const PLAN: crate::settings::Kind = crate::settings::Kind::Either(&[
    crate::settings::Kind::Enum(&["free", "team", "enterprise", "unlimited"]),
    crate::settings::Kind::Section(&[PLAN_KEYS]),
]);

/// `on_limit`, as `Reader::on_limit` reads it.
pub const ON_LIMIT: crate::settings::Kind = crate::settings::Kind::Enum(&["reject", "evict_lru"]);

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
