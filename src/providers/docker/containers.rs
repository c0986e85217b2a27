//! What the Engine's answers say: which containers are managed (their labels), their state
//! and health, where they are reached, and the apps they make. Pure reading of `GET
//! /containers/json` and `GET /containers/{id}/json` answers; no call is made here.

use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct VersionAnswer {
    /// The newest API version the server speaks.
    #[serde(rename = "ApiVersion")]
    pub(super) api_version: String,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Deserialize)]
pub(super) struct Summary {
    /// The container's id.
    #[serde(rename = "Id")]
    pub(super) id: String,
    /// Its labels.
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub(super) labels: BTreeMap<String, String>,
}

impl Summary {
    /// Whether Paastis manages it.
    pub(super) fn enabled(&self) -> bool {
        enabled(&self.labels)
    }
}

/// Whether labels ask for management (`paastis.enable` or `sablier.enable` set to true).
pub(super) fn enabled(labels: &BTreeMap<String, String>) -> bool {
    [LABEL_ENABLE, SABLIER_ENABLE].iter().any(|key| {
        labels
            .get(*key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    })
}

/// `null` read as the type's default (the Engine writes `null` for empty maps and lists).
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `GET /containers/{id}/json`, what is read of it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Inspect {
    /// The container's id.
    #[serde(rename = "Id")]
    pub(super) id: String,
    /// `/name`.
    #[serde(rename = "Name", default)]
    pub(super) name: String,
    /// Its state.
    #[serde(rename = "State")]
    pub(super) state: ContainerState,
    /// Its config (labels, exposed ports, stop timeout).
    #[serde(rename = "Config", default, deserialize_with = "null_as_default")]
    pub(super) config: ContainerConfig,
    /// Its host config (network mode).
    #[serde(rename = "HostConfig", default, deserialize_with = "null_as_default")]
    pub(super) host_config: HostConfig,
    /// Its addresses and published ports.
    #[serde(
        rename = "NetworkSettings",
        default,
        deserialize_with = "null_as_default"
    )]
    pub(super) network_settings: NetworkSettings,
}

/// `State` of an inspect answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    #[serde(rename = "Status", default)]
    pub(super) status: String,
    /// The last exit code.
    #[serde(rename = "ExitCode", default)]
    pub(super) exit_code: i64,
    /// Whether the kernel killed it for memory.
    #[serde(rename = "OOMKilled", default)]
    pub(super) oom_killed: bool,
    /// The Engine's error, when starting failed.
    #[serde(rename = "Error", default)]
    pub(super) error: String,
    /// Its healthcheck's state, when it has one.
    #[serde(rename = "Health", default)]
    pub(super) health: Option<Health>,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Health {
    /// `starting`, `healthy`, `unhealthy` (empty or `none`: no healthcheck).
    #[serde(rename = "Status", default)]
    pub(super) status: String,
}

impl ContainerState {
    /// Whether the container has a healthcheck of its own. Docker leaves `Health` out
    /// without one (or says `none`); Podman answers `Health: {Status: ""}`.
    pub(super) fn has_healthcheck(&self) -> bool {
        self.health
            .as_ref()
            .is_some_and(|health| !matches!(health.status.as_str(), "" | "none"))
    }
}

/// `Config` of an inspect answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ContainerConfig {
    /// The labels.
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub(super) labels: BTreeMap<String, String>,
    /// `80/tcp` -> `{}`.
    #[serde(rename = "ExposedPorts", default, deserialize_with = "null_as_default")]
    pub(super) exposed_ports: BTreeMap<String, Value>,
    /// Seconds a stop waits before killing it.
    #[serde(rename = "StopTimeout", default)]
    pub(super) stop_timeout: Option<u64>,
}

/// `HostConfig` of an inspect answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct HostConfig {
    /// `host`, `bridge`, a network's name...
    #[serde(rename = "NetworkMode", default)]
    pub(super) network_mode: String,
}

/// `NetworkSettings` of an inspect answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct NetworkSettings {
    /// `80/tcp` -> its host bindings (`null` when not published).
    #[serde(rename = "Ports", default, deserialize_with = "null_as_default")]
    pub(super) ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// Network name -> the container's place on it.
    #[serde(rename = "Networks", default, deserialize_with = "null_as_default")]
    pub(super) networks: BTreeMap<String, NetworkEndpoint>,
}

/// One host binding of a port.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct PortBinding {
    /// The host port, as text.
    #[serde(rename = "HostPort", default)]
    pub(super) host_port: String,
}

/// The container on one network.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct NetworkEndpoint {
    /// Its IPv4 address (empty while stopped).
    #[serde(rename = "IPAddress", default)]
    pub(super) ip_address: String,
    /// Its IPv6 address, when it has one.
    #[serde(rename = "GlobalIPv6Address", default)]
    pub(super) ipv6_address: String,
}

/// A managed container, its labels read.
#[derive(Debug, Clone)]
pub(super) struct Managed {
    /// The app's name.
    pub(super) name: String,
    /// Its group, when it has one.
    pub(super) group: Option<String>,
    /// Its policy labels.
    pub(super) policy: PolicyOverride,
    /// The container port requests go to, when known.
    pub(super) port: Option<u16>,
    /// Its labels that were ignored, to warn about.
    pub(super) invalid: Vec<Invalid>,
    /// Its details.
    pub(super) inspect: Inspect,
}

/// A label ignored for its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Invalid {
    /// The label.
    pub(super) label: &'static str,
    /// Its value.
    pub(super) value: String,
    /// What was expected, for the warning.
    pub(super) expected: &'static str,
}

impl Managed {
    /// Reads a managed container's labels; invalid ones are skipped with a warning.
    pub(super) fn new(inspect: Inspect) -> Managed {
        let container = inspect.name.trim_start_matches('/').to_owned();
        let labels = &inspect.config.labels;
        let label = |key: &str| labels.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut invalid = Vec::new();
        let mut warn = |label: &'static str, value: &str, expected: &'static str| {
            invalid.push(Invalid {
                label,
                value: value.to_owned(),
                expected,
            });
        };
        let name = label(LABEL_NAME)
            .map(str::to_owned)
            .unwrap_or_else(|| container.clone());
        let group = label(LABEL_GROUP)
            .or_else(|| label(SABLIER_GROUP))
            .map(str::to_owned);
        let mut policy = PolicyOverride::default();
        if let Some(value) = label(LABEL_MAX_IDLE) {
            match value {
                "never" => policy.max_idle = Some(None),
                _ => match parse_duration(value) {
                    Ok(d) if !d.is_zero() => policy.max_idle = Some(Some(d)),
                    _ => warn(LABEL_MAX_IDLE, value, "a duration such as 15m, or never"),
                },
            }
        }
        if let Some(value) = label(LABEL_WAKE_TIMEOUT) {
            match parse_duration(value) {
                Ok(d) if !d.is_zero() => policy.wake_timeout = Some(d),
                _ => warn(LABEL_WAKE_TIMEOUT, value, "a duration such as 2m"),
            }
        }
        if let Some(value) = label(LABEL_STRATEGY) {
            match value {
                "hold" => policy.strategy = Some(Strategy::Hold),
                "page" => policy.strategy = Some(Strategy::Page),
                "auto" => policy.strategy = Some(Strategy::Auto),
                _ => warn(LABEL_STRATEGY, value, "auto, hold or page"),
            }
        }
        if let Some(value) = label(LABEL_HEALTH_PATH) {
            if value.starts_with('/') && value.parse::<http::uri::PathAndQuery>().is_ok() {
                policy.health_path = Some(value.to_owned());
            } else {
                warn(LABEL_HEALTH_PATH, value, "a path such as /health");
            }
        }
        let port = match label(LABEL_PORT) {
            Some(value) => match value.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    warn(LABEL_PORT, value, "a port 1..65535");
                    single_port(&inspect)
                }
            },
            None => single_port(&inspect),
        };
        Managed {
            name,
            group,
            policy,
            port,
            invalid,
            inspect,
        }
    }

    /// Its group, the Compose project counting when `compose` is on.
    pub(super) fn group(&self, compose: bool) -> Option<String> {
        self.group.clone().or_else(|| {
            compose
                .then(|| self.inspect.config.labels.get(COMPOSE_PROJECT))
                .flatten()
                .filter(|p| !p.trim().is_empty())
                .map(|p| format!("compose:{p}"))
        })
    }
}

/// The containers by their app name; a second container claiming a name is skipped.
pub(super) fn unique(provider: &str, managed: Vec<Managed>) -> Vec<Managed> {
    let mut seen = HashSet::new();
    managed
        .into_iter()
        .filter(|m| {
            let first = seen.insert(m.name.clone());
            if !first {
                tracing::warn!(provider, app = %m.name, container = %m.inspect.name.trim_start_matches('/'),
                    "skipping a container: another one already has this app name");
            }
            first
        })
        .collect()
}

/// The one TCP port the container exposes or publishes, when there is exactly one.
pub(super) fn single_port(inspect: &Inspect) -> Option<u16> {
    let ports: HashSet<u16> = inspect
        .config
        .exposed_ports
        .keys()
        .chain(inspect.network_settings.ports.keys())
        .filter_map(|key| {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            (proto == "tcp").then(|| port.parse::<u16>().ok()).flatten()
        })
        .collect();
    match ports.len() {
        1 => ports.into_iter().next(),
        _ => None,
    }
}

/// Where requests go: the container's address on `network` + its port, else its published
/// host port on `host_address`, else (host networking) 127.0.0.1 + its port.
pub(super) fn upstream(
    inspect: &Inspect,
    port: Option<u16>,
    network: Option<&str>,
    host_address: &str,
) -> Option<Upstream> {
    let port = port?;
    let url = |host: &str, port: &str| Upstream::from_url(&format!("http://{host}:{port}"));
    if let Some(endpoint) = network.and_then(|n| inspect.network_settings.networks.get(n)) {
        let ip = [&endpoint.ip_address, &endpoint.ipv6_address]
            .into_iter()
            .find_map(|ip| ip.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            return url(&bracketed(&ip.to_string()), &port.to_string());
        }
    }
    let published = inspect
        .network_settings
        .ports
        .get(&format!("{port}/tcp"))
        .and_then(Option::as_ref)
        .and_then(|bindings| bindings.iter().find(|b| b.host_port.parse::<u16>().is_ok()));
    if let Some(binding) = published {
        return url(&bracketed(host_address), &binding.host_port);
    }
    (inspect.host_config.network_mode == "host").then(|| Upstream::local(port))
}

/// A container's state as the engine sees it (`stopped_here`: this engine stopped it, so
/// its exit code is not a failure).
pub(super) fn status(state: &ContainerState, stopped_here: bool) -> AppStatus {
    match state.status.as_str() {
        "running" => match state.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => AppStatus::Starting,
            Some("unhealthy") => AppStatus::Failed("its healthcheck says unhealthy".to_owned()),
            _ => AppStatus::Running,
        },
        "restarting" => AppStatus::Starting,
        // Frozen: as good as stopped; a start unpauses it.
        "created" | "paused" | "removing" => AppStatus::Stopped,
        "exited" if stopped_here => AppStatus::Stopped,
        "exited" if state.oom_killed => AppStatus::Failed("killed: out of memory".to_owned()),
        // 0, and what a stop leaves (SIGTERM's 143, SIGKILL's 137 after the grace period).
        "exited" if matches!(state.exit_code, 0 | 137 | 143) => AppStatus::Stopped,
        "exited" => AppStatus::Failed(with_error(
            format!("exited with code {}", state.exit_code),
            &state.error,
        )),
        "dead" => AppStatus::Failed(with_error("dead".to_owned(), &state.error)),
        _ => AppStatus::Unknown,
    }
}

/// `text: error`, when the Engine gave an error.
pub(super) fn with_error(text: String, error: &str) -> String {
    match error.trim() {
        "" => text,
        error => format!("{text}: {error}"),
    }
}

/// The apps of these managed containers, each group's members linked to the others.
pub(super) fn apps(
    managed: &[Managed],
    network: Option<&str>,
    host_address: &str,
    compose: bool,
    stopped_here: impl Fn(&str) -> bool,
) -> Vec<AppInfo> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in managed {
        if let Some(group) = m.group(compose) {
            groups.entry(group).or_default().push(m.name.clone());
        }
    }
    managed
        .iter()
        .map(|m| {
            let linked = m
                .group(compose)
                .and_then(|g| groups.get(&g))
                .map(|members| {
                    members
                        .iter()
                        .filter(|name| **name != m.name)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            AppInfo {
                name: m.name.clone(),
                status: status(&m.inspect.state, stopped_here(&m.inspect.id)),
                upstream: upstream(&m.inspect, m.port, network, host_address),
                formation: one_container(),
                policy: m.policy.clone(),
                aliases: Vec::new(),
                linked,
                group: m.group(compose),
            }
        })
        .collect()
}

/// `{"container": 1}`.
pub(super) fn one_container() -> Formation {
    Formation::from([(CONTAINER.to_owned(), 1)])
}
