//! One managed workload (a Deployment or a StatefulSet) as the provider keeps it: what is
//! read from its object (replicas, readiness, the failed rollout's reason, annotations), its
//! state, its policy from annotations, and the app names a set of workloads takes. Pure: no
//! API call here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::ApiResource;

use super::{ANNOTATION_HEALTH_PATH, ANNOTATION_MAX_IDLE, ANNOTATION_NAME, ANNOTATION_REPLICAS};
use crate::model::PolicyOverride;
use crate::providers::AppStatus;
use crate::settings::is_label;

/// The two kinds of workload managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl WorkloadKind {
    /// Both, in listing order.
    pub(super) const ALL: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

    /// The resource, for the dynamic API.
    pub(super) fn resource(self) -> ApiResource {
        match self {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        }
    }

    /// Its plural, for messages.
    pub(super) fn plural(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }
}

/// What the engine keeps of one workload, from its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Workload {
    /// Deployment or StatefulSet.
    pub(super) kind: WorkloadKind,
    /// Its namespace.
    pub(super) namespace: String,
    /// Its name.
    pub(super) name: String,
    /// Its annotations (the `paastis.io/*` ones are read).
    pub(super) annotations: BTreeMap<String, String>,
    /// `spec.replicas` (absent: 1, the API's default).
    pub(super) replicas: i32,
    /// `status.readyReplicas` (absent: 0).
    pub(super) ready: i32,
    /// `metadata.generation`.
    pub(super) generation: Option<i64>,
    /// `status.observedGeneration`.
    pub(super) observed: Option<i64>,
    /// Why it failed (a Deployment's `Progressing` condition `False`).
    pub(super) failed: Option<String>,
}

impl Workload {
    /// From a Deployment.
    fn from_deployment(deployment: Deployment) -> Workload {
        let spec = deployment.spec.unwrap_or_default();
        let status = deployment.status.unwrap_or_default();
        let failed = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.status == "False")
            .map(|c| {
                let reason = c.reason.unwrap_or_else(|| "not progressing".to_owned());
                match c.message {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason,
                }
            });
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: deployment.metadata.namespace.unwrap_or_default(),
            name: deployment.metadata.name.unwrap_or_default(),
            annotations: deployment.metadata.annotations.unwrap_or_default(),
            replicas: spec.replicas.unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            generation: deployment.metadata.generation,
            observed: status.observed_generation,
            failed,
        }
    }

    /// From a StatefulSet.
    fn from_stateful_set(set: StatefulSet) -> Workload {
        let spec = set.spec.unwrap_or_default();
        let status = set.status.unwrap_or_default();
        Workload {
            kind: WorkloadKind::StatefulSet,
            namespace: set.metadata.namespace.unwrap_or_default(),
            name: set.metadata.name.unwrap_or_default(),
            annotations: set.metadata.annotations.unwrap_or_default(),
            replicas: spec.replicas.unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            generation: set.metadata.generation,
            observed: status.observed_generation,
            failed: None,
        }
    }

    /// From an object of `kind` as JSON; `None` (with a warning) when it does not parse.
    pub(super) fn parse(
        provider: &str,
        kind: WorkloadKind,
        value: serde_json::Value,
    ) -> Option<Workload> {
        let parsed = match kind {
            WorkloadKind::Deployment => {
                serde_json::from_value::<Deployment>(value).map(Workload::from_deployment)
            }
            WorkloadKind::StatefulSet => {
                serde_json::from_value::<StatefulSet>(value).map(Workload::from_stateful_set)
            }
        };
        match parsed {
            Ok(workload) if !workload.name.is_empty() => Some(workload),
            Ok(_) => {
                tracing::warn!(
                    provider,
                    kind = kind.plural(),
                    "skipping an object without a name"
                );
                None
            }
            Err(error) => {
                tracing::warn!(provider, kind = kind.plural(), %error, "skipping an object that does not parse");
                None
            }
        }
    }

    /// An annotation, trimmed, when set and not empty.
    pub(super) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Its state now (see the module doc).
    pub(super) fn status(&self) -> AppStatus {
        if self.replicas <= 0 {
            return AppStatus::Stopped;
        }
        if let Some(reason) = &self.failed {
            return AppStatus::Failed(reason.clone());
        }
        let observed = match (self.generation, self.observed) {
            (Some(generation), Some(observed)) => observed >= generation,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if observed && self.ready >= self.replicas {
            AppStatus::Running
        } else {
            AppStatus::Starting
        }
    }

    /// The replicas a start without a remembered formation asks for.
    pub(super) fn default_replicas(&self) -> u32 {
        self.annotation(ANNOTATION_REPLICAS)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    }

    /// Its policy overrides, from its annotations (bad values skipped with a warning).
    pub(super) fn policy(&self, provider: &str) -> PolicyOverride {
        let mut policy = PolicyOverride::default();
        if let Some(text) = self.annotation(ANNOTATION_MAX_IDLE) {
            if text == "never" {
                policy.max_idle = Some(None);
            } else {
                match crate::model::parse_duration(text) {
                    Ok(duration) => policy.max_idle = Some(Some(duration)),
                    Err(error) => tracing::warn!(
                        provider, workload = %self.name, namespace = %self.namespace, %error,
                        "ignoring annotation {ANNOTATION_MAX_IDLE}"
                    ),
                }
            }
        }
        if let Some(path) = self.annotation(ANNOTATION_HEALTH_PATH) {
            if path.starts_with('/') {
                policy.health_path = Some(path.to_owned());
            } else {
                tracing::warn!(
                    provider, workload = %self.name, namespace = %self.namespace,
                    "ignoring annotation {ANNOTATION_HEALTH_PATH}: it must start with /"
                );
            }
        }
        policy
    }
}

/// The app name each workload gets: `paastis.io/name`, else its name; a name held by
/// workloads of several namespaces becomes `<name>-<namespace>` for each of them; what still
/// collides (or is not a valid name) is skipped with a warning.
pub(super) fn app_names<'w>(
    provider: &str,
    workloads: &[&'w Workload],
) -> Vec<(String, &'w Workload)> {
    let base = |w: &Workload| {
        w.annotation(ANNOTATION_NAME)
            .map(str::to_owned)
            .unwrap_or_else(|| w.name.clone())
    };
    let mut by_base: BTreeMap<String, Vec<&'w Workload>> = BTreeMap::new();
    for workload in workloads {
        by_base.entry(base(workload)).or_default().push(workload);
    }
    let mut named: BTreeMap<String, Vec<&'w Workload>> = BTreeMap::new();
    for (name, holders) in by_base {
        if holders.len() == 1 {
            named.entry(name).or_default().extend(holders);
        } else {
            for workload in holders {
                named
                    .entry(format!("{name}-{}", workload.namespace))
                    .or_default()
                    .push(workload);
            }
        }
    }
    let mut apps = Vec::new();
    for (name, holders) in named {
        match holders.as_slice() {
            [workload] if is_label(&name) && !name.contains('_') => apps.push((name, *workload)),
            [workload] => tracing::warn!(
                provider, workload = %workload.name, namespace = %workload.namespace,
                "skipping a workload whose app name `{name}` is not a DNS label"
            ),
            _ => tracing::warn!(
                provider,
                "skipping {} workloads that all take the app name `{name}` (give them \
                 distinct {ANNOTATION_NAME} annotations)",
                holders.len()
            ),
        }
    }
    apps
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    fn workload(replicas: i32, ready: i32) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "apps".to_owned(),
            name: "shop".to_owned(),
            annotations: BTreeMap::new(),
            replicas,
            ready,
            generation: Some(2),
            observed: Some(2),
            failed: None,
        }
    }

    #[test]
    fn readiness_follows_ready_replicas_and_the_observed_generation() {
        assert_eq!(workload(0, 0).status(), AppStatus::Stopped);
        assert_eq!(workload(2, 1).status(), AppStatus::Starting);
        assert_eq!(workload(2, 2).status(), AppStatus::Running);
        let mut stale = workload(2, 2);
        stale.observed = Some(1);
        assert_eq!(stale.status(), AppStatus::Starting);
        let mut failed = workload(2, 0);
        failed.failed = Some("ProgressDeadlineExceeded".to_owned());
        assert_eq!(
            failed.status(),
            AppStatus::Failed("ProgressDeadlineExceeded".to_owned())
        );
    }

    #[test]
    fn a_deployment_parses_with_its_defaults_and_conditions() {
        let value = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "apps", "generation": 3,
                         "annotations": {"paastis.io/replicas": "3"}},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 3,
                       "conditions": [{"type": "Progressing", "status": "False",
                                       "reason": "ProgressDeadlineExceeded",
                                       "message": "ReplicaSet \"shop-1\" has timed out progressing."}]}
        });
        let workload = Workload::parse("k", WorkloadKind::Deployment, value).expect("parses");
        assert_eq!(workload.replicas, 1);
        assert_eq!(workload.ready, 0);
        assert_eq!(workload.default_replicas(), 3);
        assert!(
            matches!(workload.status(), AppStatus::Failed(reason) if reason.starts_with("ProgressDeadlineExceeded"))
        );
        assert!(Workload::parse("k", WorkloadKind::Deployment, json!({"spec": 3})).is_none());
    }

    #[test]
    fn shared_names_are_qualified_by_namespace() {
        let mut a = workload(1, 1);
        a.namespace = "review".to_owned();
        let b = workload(1, 1);
        let mut c = workload(1, 1);
        c.name = "blog".to_owned();
        let mut d = workload(1, 1);
        d.name = "docs-db".to_owned();
        d.annotations
            .insert(ANNOTATION_NAME.to_owned(), "docs".to_owned());
        let names: Vec<String> = app_names("k", &[&a, &b, &c, &d])
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["blog", "docs", "shop-apps", "shop-review"]);
        // Same name, same namespace (a Deployment and a StatefulSet): both skipped.
        let mut e = workload(1, 1);
        e.kind = WorkloadKind::StatefulSet;
        let names: Vec<String> = app_names("k", &[&b, &e])
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn annotations_give_the_policy() {
        let mut w = workload(1, 1);
        w.annotations
            .insert(ANNOTATION_MAX_IDLE.to_owned(), "30m".to_owned());
        w.annotations
            .insert(ANNOTATION_HEALTH_PATH.to_owned(), "/up".to_owned());
        let policy = w.policy("k");
        assert_eq!(policy.max_idle, Some(Some(Duration::from_secs(1800))));
        assert_eq!(policy.health_path.as_deref(), Some("/up"));
        w.annotations
            .insert(ANNOTATION_MAX_IDLE.to_owned(), "never".to_owned());
        assert_eq!(w.policy("k").max_idle, Some(None));
    }
}
