//! The Kubernetes manifests of `deploy/kubernetes/` are what the API server takes, offline:
//! every YAML document parses (serde-saphyr) into the official k8s-openapi type of its kind,
//! and serialises back to exactly what was written (k8s-openapi skips unknown fields, so a
//! misspelt key would otherwise pass unnoticed); the Role grants no more than the provider
//! needs; the ConfigMap's `paastis.yml` passes the engine's own validation.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every YAML document of the folder: (file, document).
fn documents() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder())
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .expect("file name");
        let text = std::fs::read_to_string(&path).expect("read manifest");
        for document in text.split("\n---") {
            if document.lines().any(|line| {
                let line = line.trim();
                !line.is_empty() && !line.starts_with('#') && line != "---"
            }) {
                documents.push((name.clone(), document.to_owned()));
            }
        }
    }
    documents
}

/// `document` parsed as `T`, and what `T` writes back (as JSON), against the YAML as
/// written (as JSON).
fn round_trip<T: DeserializeOwned + Serialize>(
    document: &str,
) -> Result<(T, Value, Value), String> {
    let written = paastis::config::read_yaml("manifest", document)?;
    let typed: T = serde_saphyr::from_str(document).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    Ok((typed, written, back))
}

/// Parses `document` as `T`; panics when it does not parse or does not read back the same.
fn strict<T: DeserializeOwned + Serialize>(file: &str, document: &str) -> T {
    let (typed, written, back) =
        round_trip::<T>(document).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        back, written,
        "{file}: what k8s-openapi reads differs from what is written (an unknown or misspelt key?)"
    );
    typed
}

/// The manifests, by kind.
#[derive(Default)]
struct Manifests {
    kinds: Vec<String>,
    deployments: Vec<Deployment>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    ingresses: Vec<Ingress>,
    accounts: Vec<ServiceAccount>,
    kustomization: Vec<String>,
}

fn manifests() -> Manifests {
    let mut all = Manifests::default();
    for (file, document) in documents() {
        let head = paastis::config::read_yaml(&file, &document).expect("YAML");
        let kind = head["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Namespace" => {
                strict::<Namespace>(&file, &document);
            }
            "ServiceAccount" => all.accounts.push(strict(&file, &document)),
            "Role" => all.roles.push(strict(&file, &document)),
            "RoleBinding" => all.bindings.push(strict(&file, &document)),
            "ConfigMap" => all.config_maps.push(strict(&file, &document)),
            "Deployment" => all.deployments.push(strict(&file, &document)),
            "Service" => all.services.push(strict(&file, &document)),
            "Ingress" => all.ingresses.push(strict(&file, &document)),
            // Not an API object: kubectl's list of the files (checked below).
            "Kustomization" => {
                all.kustomization = head["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect();
            }
            other => panic!("{file}: kind `{other}` is not checked by this test"),
        }
        all.kinds.push(kind);
    }
    all
}

#[test]
fn a_misspelt_key_is_caught_by_the_round_trip() {
    let good = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n    - port: 80\n      targetPort: http\n";
    strict::<Service>("good", good);
    let typo = good.replace("targetPort", "targetport");
    let (_, written, back) = round_trip::<Service>(&typo).expect("k8s-openapi skips it");
    assert_ne!(written, back, "the typo must show in the comparison");
}

#[test]
fn every_manifest_parses_strictly_into_its_official_type() {
    let all = manifests();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
    ] {
        assert!(all.kinds.iter().any(|k| k == kind), "no {kind} manifest");
    }
    // `kubectl apply -k` applies every file of the folder.
    let mut files: Vec<String> = documents()
        .into_iter()
        .map(|(file, _)| file)
        .filter(|file| file != "kustomization.yaml")
        .collect();
    files.dedup();
    let mut listed = all.kustomization.clone();
    listed.sort();
    files.sort();
    assert_eq!(listed, files);
}

#[test]
fn the_role_grants_only_what_the_provider_uses() {
    let all = manifests();
    let [role] = all.roles.as_slice() else {
        panic!("one Role");
    };
    let mut granted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in role.rules.clone().unwrap_or_default() {
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                let mut verbs = rule.verbs.clone();
                verbs.sort();
                granted.insert(format!("{group}/{resource}"), verbs);
            }
        }
    }
    let expected: BTreeMap<String, Vec<String>> = [
        ("apps/deployments", &["get", "list", "watch"][..]),
        ("apps/statefulsets", &["get", "list", "watch"]),
        ("apps/deployments/scale", &["get", "patch"]),
        ("apps/statefulsets/scale", &["get", "patch"]),
        ("/services", &["get"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
    .collect();
    assert_eq!(granted, expected);

    // Bound, in the apps' namespace, to the account the Deployment runs as.
    let [binding] = all.bindings.as_slice() else {
        panic!("one RoleBinding");
    };
    assert_eq!(binding.metadata.namespace, role.metadata.namespace);
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let [account] = all.accounts.as_slice() else {
        panic!("one ServiceAccount");
    };
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(Some(&subject.name), account.metadata.name.as_ref());
    assert_eq!(subject.namespace, account.metadata.namespace);
    let deployment = &all.deployments[0];
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(pod.service_account_name, account.metadata.name);
}

#[test]
fn the_engine_runs_hardened_with_probes_and_resources() {
    let all = manifests();
    let [deployment] = all.deployments.as_slice() else {
        panic!("one Deployment");
    };
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid != 0));
    let container = &pod.containers[0];
    let security = container
        .security_context
        .as_ref()
        .expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/health")
    );
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/ready")
    );
    let resources = container.resources.as_ref().expect("resources");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    // The read-only root leaves the data and temporary folders writable.
    let mounts: Vec<&str> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    for path in ["/data", "/tmp", "/etc/paastis"] {
        assert!(mounts.contains(&path), "{path} is not mounted: {mounts:?}");
    }

    // The Service selects the pods; the wildcard Ingress goes to the Service.
    let labels = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    let service = &all.services[0];
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .expect("selector");
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let ingress = &all.ingresses[0];
    let rule = &ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some("*.review.example.com"));
    let backend = rule.http.as_ref().expect("http").paths[0]
        .backend
        .service
        .clone()
        .expect("service backend");
    assert_eq!(Some(&backend.name), service.metadata.name.as_ref());
}

#[test]
fn the_config_map_holds_a_valid_configuration_with_the_kubernetes_provider() {
    let all = manifests();
    let [config_map] = all.config_maps.as_slice() else {
        panic!("one ConfigMap");
    };
    let yaml = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("paastis.yml"))
        .expect("paastis.yml");
    // The admin token comes from the Secret, as the Deployment's environment says.
    let env = HashMap::from([(
        "PAASTIS_ADMIN_TOKEN".to_owned(),
        "a-token-from-the-secret-0001".to_owned(),
    )]);
    let loaded = paastis::config::load_str(yaml, &env, &paastis::config::Overrides::default())
        .unwrap_or_else(|errors| panic!("paastis.yml is invalid: {errors}"));
    let kinds: Vec<&str> = loaded
        .config
        .providers
        .iter()
        .map(|provider| provider.kind())
        .collect();
    assert_eq!(kinds, ["kubernetes"]);
    // It watches the namespace the Role is in.
    let paastis::providers::ProviderConfig::Kubernetes(provider) = &loaded.config.providers[0]
    else {
        panic!("a kubernetes provider");
    };
    assert!(provider.api_url.is_none() && provider.kubeconfig.is_none());
    assert_eq!(
        Some(&provider.namespaces[0]),
        all.roles[0].metadata.namespace.as_ref()
    );
}
