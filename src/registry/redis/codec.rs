//! How the Redis registry writes and reads its values: listings (JSON, short field names),
//! notices published on the channel, pins, states and times in unix milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::PolicyOverride;
use crate::model::{AppKey, Formation, State, Upstream};
use crate::providers::{AppInfo, AppStatus};
use crate::registry::{Notice, Shared};

/// One app of a shared listing.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireApp {
    /// The app's name.
    n: String,
    /// `running`, `stopped`, `starting`, `unknown` or `failed`.
    s: String,
    /// Why it failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// Its upstream URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// Its formation.
    #[serde(default)]
    f: Formation,
    /// Extra route keys.
    #[serde(default)]
    a: Vec<String>,
    /// The apps its platform groups with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    l: Vec<String>,
    /// The name of that group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<String>,
    /// The policy its platform gives it (container labels, workload annotations): every
    /// instance holds and wakes it the same way.
    #[serde(default, skip_serializing_if = "WirePolicy::is_empty")]
    p: WirePolicy,
}

/// A [`PolicyOverride`] on the wire; `None`: not overridden.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct WirePolicy {
    /// Idle time in milliseconds, or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    /// Wake timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u64>,
    /// `hold`, `page` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    /// The readiness path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<String>,
}

impl WirePolicy {
    fn is_empty(&self) -> bool {
        self.i.is_none() && self.w.is_none() && self.s.is_none() && self.h.is_none()
    }
}

impl From<&PolicyOverride> for WirePolicy {
    fn from(policy: &PolicyOverride) -> WirePolicy {
        WirePolicy {
            i: policy.max_idle.map(|idle| match idle {
                Some(idle) => idle.as_millis().to_string(),
                None => "never".to_owned(),
            }),
            w: policy
                .wake_timeout
                .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            s: policy.strategy.map(|strategy| strategy.to_string()),
            h: policy.health_path.clone(),
        }
    }
}

impl WirePolicy {
    /// The override, each field that does not read back left out.
    fn into_policy(self) -> PolicyOverride {
        PolicyOverride {
            max_idle: self.i.and_then(|idle| match idle.as_str() {
                "never" => Some(None),
                ms => ms
                    .parse::<u64>()
                    .ok()
                    .map(|ms| Some(Duration::from_millis(ms))),
            }),
            wake_timeout: self.w.map(Duration::from_millis),
            strategy: self.s.and_then(|strategy| match strategy.as_str() {
                "hold" => Some(crate::model::Strategy::Hold),
                "page" => Some(crate::model::Strategy::Page),
                "auto" => Some(crate::model::Strategy::Auto),
                _ => None,
            }),
            health_path: self.h,
        }
    }
}

impl From<&AppInfo> for WireApp {
    fn from(info: &AppInfo) -> WireApp {
        let (status, reason) = match &info.status {
            AppStatus::Running => ("running", None),
            AppStatus::Stopped => ("stopped", None),
            AppStatus::Starting => ("starting", None),
            AppStatus::Unknown => ("unknown", None),
            AppStatus::Failed(reason) => ("failed", Some(reason.clone())),
        };
        WireApp {
            n: info.name.clone(),
            s: status.to_owned(),
            r: reason,
            u: info.upstream.as_ref().map(ToString::to_string),
            f: info.formation.clone(),
            a: info.aliases.clone(),
            l: info.linked.clone(),
            g: info.group.clone(),
            p: WirePolicy::from(&info.policy),
        }
    }
}

impl WireApp {
    pub(super) fn into_info(self) -> Option<AppInfo> {
        let status = match self.s.as_str() {
            "running" => AppStatus::Running,
            "stopped" => AppStatus::Stopped,
            "starting" => AppStatus::Starting,
            "unknown" => AppStatus::Unknown,
            "failed" => AppStatus::Failed(self.r.unwrap_or_default()),
            _ => return None,
        };
        Some(AppInfo {
            name: self.n,
            status,
            upstream: self.u.as_deref().and_then(Upstream::from_url),
            formation: self.f,
            policy: self.p.into_policy(),
            aliases: self.a,
            linked: self.l,
            group: self.g,
        })
    }
}

/// A published notice, from its JSON.
pub(super) fn parse_notice(payload: &str, instance: &str) -> Option<Notice> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    if value.get("sp").is_some() {
        // Its own announcement tells this instance nothing new.
        return (value.get("b").and_then(|b| b.as_str()) != Some(instance))
            .then_some(Notice::Spaces);
    }
    if let Some(provider) = value.get("l").and_then(|l| l.as_str()) {
        let space = value.get("ls").and_then(|s| s.as_str());
        return Some(Notice::Listing {
            space: space.unwrap_or(crate::model::DEFAULT_SPACE).to_owned(),
            provider: provider.to_owned(),
        });
    }
    let parts = value.get("k")?.as_array()?;
    let part = |i: usize| parts.get(i).and_then(|p| p.as_str());
    let key = AppKey::new(part(0)?, part(1)?, part(2)?);
    let state = parse_state(value.get("s")?.as_str()?)?;
    Some(Notice::State {
        key,
        shared: Shared {
            state: Some(state),
            seq: value.get("q")?.as_u64()?,
            reason: value
                .get("r")
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            activity: None,
            pinned: None,
        },
        own: value.get("b").and_then(|b| b.as_str()) == Some(instance),
    })
}

/// A stored pin: `forever`, a time in unix milliseconds, or `0` (not pinned).
pub(super) fn parse_pin(text: &str) -> Option<Option<SystemTime>> {
    match text {
        "forever" => Some(None),
        text => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| Some(from_unix_ms(ms))),
    }
}

pub(super) fn parse_state(word: &str) -> Option<State> {
    Some(match word {
        "asleep" => State::Asleep,
        "waking" => State::Waking,
        "awake" => State::Awake,
        "stopping" => State::Stopping,
        "failed" => State::Failed,
        _ => return None,
    })
}

pub(super) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_their_json() {
        let notice = parse_notice(
            r#"{"k":["default","scalingo","shop"],"s":"awake","q":7,"r":"","b":"me"}"#,
            "me",
        );
        assert_eq!(
            notice,
            Some(Notice::State {
                key: AppKey::new("default", "scalingo", "shop"),
                shared: Shared {
                    state: Some(State::Awake),
                    seq: 7,
                    reason: None,
                    activity: None,
                    pinned: None,
                },
                own: true,
            })
        );
        assert_eq!(
            parse_notice(r#"{"l":"heroku"}"#, "me"),
            Some(Notice::Listing {
                space: "default".to_owned(),
                provider: "heroku".to_owned()
            })
        );
        // Spaces changed: told to the other instances, not to the one that said it.
        assert_eq!(
            parse_notice(r#"{"sp":1,"b":"other"}"#, "me"),
            Some(Notice::Spaces)
        );
        assert_eq!(parse_notice(r#"{"sp":1,"b":"me"}"#, "me"), None);
        for bad in [
            "",
            "{}",
            r#"{"k":["a"],"s":"awake","q":1}"#,
            r#"{"k":["a","b","c"],"s":"dancing","q":1}"#,
        ] {
            assert_eq!(parse_notice(bad, "me"), None, "{bad}");
        }
    }

    #[test]
    fn listings_survive_the_wire() {
        let info = AppInfo {
            name: "shop".to_owned(),
            status: AppStatus::Failed("crashed".to_owned()),
            upstream: Upstream::from_url("https://shop.example.com"),
            formation: [("web".to_owned(), 2)].into_iter().collect(),
            policy: PolicyOverride {
                max_idle: Some(None),
                wake_timeout: Some(Duration::from_secs(90)),
                strategy: Some(crate::model::Strategy::Hold),
                health_path: Some("/up".to_owned()),
            },
            aliases: vec!["app_1".to_owned()],
            linked: vec!["shop-db".to_owned()],
            group: Some("shop".to_owned()),
        };
        let json = serde_json::to_string(&[WireApp::from(&info)]).expect("json");
        let back: Vec<WireApp> = serde_json::from_str(&json).expect("parse");
        let back = back
            .into_iter()
            .next()
            .and_then(WireApp::into_info)
            .expect("app");
        assert_eq!(back.name, "shop");
        assert_eq!(back.status, AppStatus::Failed("crashed".to_owned()));
        assert_eq!(back.upstream, info.upstream);
        assert_eq!(back.formation, info.formation);
        assert_eq!(back.aliases, info.aliases);
        assert_eq!(back.linked, info.linked);
        assert_eq!(back.group, info.group);
        assert_eq!(back.policy, info.policy);
    }

    #[test]
    fn a_listing_without_policy_or_group_reads_as_before() {
        let back: Vec<WireApp> =
            serde_json::from_str(r#"[{"n":"a","s":"stopped","f":{}}]"#).expect("parse");
        let info = back
            .into_iter()
            .next()
            .and_then(WireApp::into_info)
            .expect("app");
        assert_eq!(info.policy, PolicyOverride::default());
        assert!(info.linked.is_empty());
        let idle = PolicyOverride {
            max_idle: Some(Some(Duration::from_secs(300))),
            ..PolicyOverride::default()
        };
        assert_eq!(WirePolicy::from(&idle).into_policy(), idle);
    }
}
