//! The traces' settings, from the standard `OTEL_*` environment variables (the OpenTelemetry
//! SDK's names and defaults, so a deployment's usual variables work unchanged). Every error
//! is collected, each naming its variable. It reads the environment it is given, never the
//! process's.
//!
//! Traces are off unless asked for: an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none` keeps them off whatever else is set.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::secret::Secret;
use crate::settings::ConfigError;

/// The longest delay or timeout taken, in milliseconds (a day).
const MAX_MS: u64 = 86_400_000;

/// The most spans a queue or a batch may hold (the queue is memory held for a collector
/// that is down).
const MAX_SPANS: usize = 1_000_000;

/// The gRPC method traces are exported to.
pub const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How export bodies are compressed (`OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Sent as they are (`none`, the default).
    None,
    /// gzip: `Content-Encoding: gzip` over HTTP, a compressed message with
    /// `grpc-encoding: gzip` over gRPC.
    Gzip,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`): HTTP/2, by prior knowledge on `http://`.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, the default).
    HttpProtobuf,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Which traces are recorded when nothing upstream decided (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    /// Every trace.
    On,
    /// None.
    Off,
    /// This share of the traces, by their id (so every instance agrees on a trace).
    Ratio(f64),
}

/// The sampler: a root decision, and whether a caller's decision (its `traceparent`'s
/// `sampled` flag) is followed instead when there is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// The decision for a trace that starts here.
    pub root: Root,
    /// Follow the parent's decision when there is a parent (`parentbased_*`).
    pub parent_based: bool,
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parent_based {
            f.write_str("parentbased_")?;
        }
        match self.root {
            Root::On => f.write_str("always_on"),
            Root::Off => f.write_str("always_off"),
            Root::Ratio(ratio) => write!(f, "traceidratio {ratio}"),
        }
    }
}

/// How finished spans are batched (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Longest wait before a partial batch is sent (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).
    pub delay: Duration,
    /// Finished spans waiting to be sent; beyond, new ones are dropped and counted, so a
    /// dead collector costs bounded memory (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub queue: usize,
    /// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub size: usize,
    /// Longest time one export may take, retries included (`OTEL_BSP_EXPORT_TIMEOUT`, 30 s).
    pub timeout: Duration,
}

/// Where and how traces are sent.
#[derive(Clone)]
pub struct Settings {
    /// The URL every export is sent to (for HTTP: the traces path; for gRPC: the method).
    pub endpoint: Uri,
    /// gRPC or HTTP/protobuf.
    pub protocol: Protocol,
    /// Whether export bodies are compressed.
    pub compression: Compression,
    /// Fields sent with every export (`OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`): often an API
    /// key, so their values are secrets.
    pub headers: Vec<(HeaderName, Secret)>,
    /// Longest time one export request may take (`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, 10 s).
    pub timeout: Duration,
    /// Extra CA certificates (PEM) trusted for an `https` endpoint
    /// (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`).
    pub certificate: Option<PathBuf>,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// What every span is about: `service.name` (`OTEL_SERVICE_NAME`, default `paastis`),
    /// `service.version`, and `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
    /// Batching and its bounds.
    pub batch: Batch,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.shown_endpoint())
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("sampler", &self.sampler)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The endpoint as people may see it (any credentials in it hidden).
    pub fn shown_endpoint(&self) -> String {
        crate::secret::redact::redact_url(&self.endpoint.to_string())
    }
}

/// The traces' settings from `env`: `Ok(None)` when traces are off.
pub fn from_env(env: &HashMap<String, String>) -> Result<Option<Settings>, Vec<ConfigError>> {
    let get = |name: &str| {
        env.get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    // The traces' own variable, else the general one.
    let either = |name: &str| {
        let specific = format!("OTEL_EXPORTER_OTLP_TRACES_{name}");
        match get(&specific) {
            Some(value) => Some((specific, value)),
            None => {
                let general = format!("OTEL_EXPORTER_OTLP_{name}");
                get(&general).map(|value| (general, value))
            }
        }
    };
    let mut errors = Vec::new();
    let mut error = |variable: &str, message: String| {
        errors.push(ConfigError {
            path: variable.to_owned(),
            message,
        })
    };
    if let Some(disabled) = get("OTEL_SDK_DISABLED") {
        match disabled.to_ascii_lowercase().as_str() {
            "true" => return Ok(None),
            "false" => {}
            _ => error("OTEL_SDK_DISABLED", "expected true or false".to_owned()),
        }
    }
    let endpoint_set = either("ENDPOINT").is_some();
    match get("OTEL_TRACES_EXPORTER") {
        Some("none") => return Ok(None),
        Some("otlp") => {}
        None if endpoint_set => {}
        None => return Ok(None),
        Some(other) => error(
            "OTEL_TRACES_EXPORTER",
            format!("`{other}` is not supported: use otlp or none"),
        ),
    }

    let protocol = match either("PROTOCOL") {
        None => Protocol::HttpProtobuf,
        Some((_, "http/protobuf")) => Protocol::HttpProtobuf,
        Some((_, "grpc")) => Protocol::Grpc,
        Some((variable, other)) => {
            error(
                &variable,
                format!("`{other}` is not supported: use grpc or http/protobuf"),
            );
            Protocol::HttpProtobuf
        }
    };
    let endpoint = endpoint(
        protocol,
        get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    .map_err(|(variable, message)| error(variable, message))
    .ok();

    let headers = match either("HEADERS") {
        None => Vec::new(),
        Some((variable, text)) => headers(text).unwrap_or_else(|message| {
            error(&variable, message);
            Vec::new()
        }),
    };
    // At most a day: longer is a mistake (and would overflow the clock's arithmetic).
    let mut duration = |variable: String, value: Option<&str>, default: u64| match value {
        None => Duration::from_millis(default),
        Some(text) => match text.parse::<u64>() {
            Ok(ms) if (1..=MAX_MS).contains(&ms) => Duration::from_millis(ms),
            _ => {
                error(
                    &variable,
                    format!("expected a whole number of milliseconds from 1 to {MAX_MS}"),
                );
                Duration::from_millis(default)
            }
        },
    };
    let timeout = match either("TIMEOUT") {
        Some((variable, value)) => duration(variable, Some(value), 10_000),
        None => Duration::from_millis(10_000),
    };
    let delay = duration(
        "OTEL_BSP_SCHEDULE_DELAY".to_owned(),
        get("OTEL_BSP_SCHEDULE_DELAY"),
        5_000,
    );
    let batch_timeout = duration(
        "OTEL_BSP_EXPORT_TIMEOUT".to_owned(),
        get("OTEL_BSP_EXPORT_TIMEOUT"),
        30_000,
    );
    let mut count = |variable: &str, default: usize| match get(variable) {
        None => default,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_SPANS).contains(&n) => n,
            _ => {
                error(
                    variable,
                    format!("expected a whole number from 1 to {MAX_SPANS}"),
                );
                default
            }
        },
    };
    let queue = count("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
    let size = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512);
    if size > queue {
        error(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            format!("must not exceed OTEL_BSP_MAX_QUEUE_SIZE ({queue})"),
        );
    }

    let sampler = match sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG")) {
        Ok(sampler) => sampler,
        Err((variable, message)) => {
            error(variable, message);
            Sampler {
                root: Root::On,
                parent_based: true,
            }
        }
    };
    let certificate = either("CERTIFICATE").map(|(_, path)| PathBuf::from(path));
    let compression = match either("COMPRESSION") {
        None | Some((_, "none")) => Compression::None,
        Some((_, "gzip")) => Compression::Gzip,
        Some((variable, other)) => {
            error(
                &variable,
                format!("`{other}` is not supported: use gzip or none"),
            );
            Compression::None
        }
    };

    let mut resource = match get("OTEL_RESOURCE_ATTRIBUTES") {
        None => Vec::new(),
        Some(text) => pairs(text).unwrap_or_else(|message| {
            error("OTEL_RESOURCE_ATTRIBUTES", message);
            Vec::new()
        }),
    };
    let service = get("OTEL_SERVICE_NAME")
        .map(str::to_owned)
        .or_else(|| {
            resource
                .iter()
                .find(|(key, _)| key == "service.name")
                .map(|(_, value)| value.clone())
        })
        .unwrap_or_else(|| "paastis".to_owned());
    resource.retain(|(key, _)| key != "service.name" && key != "service.version");
    resource.insert(0, ("service.name".to_owned(), service));
    resource.insert(
        1,
        (
            "service.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    );

    match endpoint {
        Some(endpoint) if errors.is_empty() => Ok(Some(Settings {
            endpoint,
            protocol,
            compression,
            headers,
            timeout,
            certificate,
            sampler,
            resource,
            batch: Batch {
                delay,
                queue,
                size,
                timeout: batch_timeout,
            },
        })),
        _ => Err(errors),
    }
}

/// The URL exports go to: for HTTP, the traces' own endpoint as it is, else the general one
/// with `/v1/traces` after its path; for gRPC, the endpoint's scheme and authority with the
/// export method's path. Defaults: `http://localhost:4318` (HTTP), `http://localhost:4317`
/// (gRPC).
fn endpoint(
    protocol: Protocol,
    traces: Option<&str>,
    general: Option<&str>,
) -> Result<Uri, (&'static str, String)> {
    let (variable, text, own) = match (traces, general) {
        (Some(text), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", text, true),
        (None, Some(text)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", text, false),
        (None, None) => match protocol {
            Protocol::Grpc => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://localhost:4317",
                false,
            ),
            Protocol::HttpProtobuf => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://localhost:4318",
                false,
            ),
        },
    };
    let uri: Uri = text.parse().map_err(|_| {
        (
            variable,
            "not a URL (expected http://host:port or https://host:port)".to_owned(),
        )
    })?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err((
            variable,
            "expected a URL with its scheme and host (http://host:port or https://host:port)"
                .to_owned(),
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err((
            variable,
            format!("`{scheme}` URLs are not supported: use http or https"),
        ));
    }
    if uri.query().is_some() {
        return Err((variable, "must not have a query".to_owned()));
    }
    let path = match protocol {
        Protocol::Grpc => GRPC_PATH.to_owned(),
        Protocol::HttpProtobuf if own => uri.path().to_owned(),
        Protocol::HttpProtobuf => format!("{}/v1/traces", uri.path().trim_end_matches('/')),
    };
    Uri::builder()
        .scheme(scheme)
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|error| (variable, format!("not a usable URL: {error}")))
}

/// `key=value,key=value` (values percent-encoded), as the `OTEL_*` lists are written.
fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            return Err(format!("`{}` is not key=value", shown_key(member)));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err("an entry has no key".to_owned());
        }
        let value = percent_decoded(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// The export headers: field names and values that HTTP accepts.
fn headers(text: &str) -> Result<Vec<(HeaderName, Secret)>, String> {
    pairs(text)?
        .into_iter()
        .map(|(key, value)| {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("`{key}` is not a valid field name"))?;
            HeaderValue::from_str(&value)
                .map_err(|_| format!("the value of `{key}` is not a valid field value"))?;
            Ok((name, Secret::new(value)))
        })
        .collect()
}

/// The part of a malformed entry that may be shown: before any `=` or `:` (a header's value
/// is often a key).
fn shown_key(member: &str) -> &str {
    member.split([':', '=']).next().unwrap_or("").trim()
}

/// `%XX` sequences decoded, or `None` when they are malformed or not UTF-8.
pub(super) fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let pair = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The sampler named by `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`) with its
/// ratio from `OTEL_TRACES_SAMPLER_ARG` (default 1.0).
fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, (&'static str, String)> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(text) => match text.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err((
                "OTEL_TRACES_SAMPLER_ARG",
                "expected a ratio from 0 to 1".to_owned(),
            )),
        },
    };
    let (root, parent_based) = match name.unwrap_or("parentbased_always_on") {
        "always_on" => (Root::On, false),
        "always_off" => (Root::Off, false),
        "traceidratio" => (Root::Ratio(ratio()?), false),
        "parentbased_always_on" => (Root::On, true),
        "parentbased_always_off" => (Root::Off, true),
        "parentbased_traceidratio" => (Root::Ratio(ratio()?), true),
        other => {
            return Err((
                "OTEL_TRACES_SAMPLER",
                format!(
                    "`{other}` is not supported: use always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ),
            ));
        }
    };
    Ok(Sampler { root, parent_based })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        match from_env(&env(pairs)) {
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
            Ok(settings) => panic!("expected errors, got {settings:?}"),
        }
    }

    #[test]
    fn off_unless_asked_for() {
        assert!(from_env(&env(&[])).unwrap().is_none());
        assert!(
            from_env(&env(&[("OTEL_TRACES_SAMPLER", "nonsense")]))
                .unwrap()
                .is_none()
        );
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(from_env(&env(&on)).unwrap().is_some());
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(from_env(&env(&[on[0], off])).unwrap().is_none());
        }
        let settings = from_env(&env(&[("OTEL_TRACES_EXPORTER", "otlp")]))
            .unwrap()
            .unwrap();
        assert_eq!(settings.endpoint, "http://localhost:4318/v1/traces");
    }

    #[test]
    fn endpoints_follow_the_specification() {
        let settings = |pairs: &[(&str, &str)]| from_env(&env(pairs)).unwrap().unwrap();
        let http = settings(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:4318/base/",
        )]);
        assert_eq!(http.endpoint, "https://collector:4318/base/v1/traces");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        let own = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:9/custom",
            ),
        ]);
        assert_eq!(own.endpoint, "http://collector:9/custom");
        let grpc = settings(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4317/anything",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]);
        assert_eq!(
            grpc.endpoint,
            "http://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        assert_eq!(grpc.protocol, Protocol::Grpc);
    }

    #[test]
    fn every_error_is_reported_with_its_variable() {
        let found = errors(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ]);
        for variable in [
            "OTEL_EXPORTER_OTLP_ENDPOINT:",
            "OTEL_EXPORTER_OTLP_PROTOCOL:",
            "OTEL_TRACES_SAMPLER:",
            "OTEL_EXPORTER_OTLP_TIMEOUT:",
            "OTEL_BSP_MAX_QUEUE_SIZE:",
            "OTEL_EXPORTER_OTLP_HEADERS:",
            "OTEL_EXPORTER_OTLP_COMPRESSION:",
        ] {
            assert!(
                found.iter().any(|e| e.starts_with(variable)),
                "{variable} in {found:?}"
            );
        }
        // Sizes and times beyond what is sensible (or representable) are refused.
        let huge = errors(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000000000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "18446744073709551615"),
            ("OTEL_BSP_SCHEDULE_DELAY", "18446744073709551615"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ]);
        assert_eq!(huge.len(), 4, "{huge:?}");
        let ratio = errors(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ]);
        assert!(
            ratio[0].starts_with("OTEL_TRACES_SAMPLER_ARG:"),
            "{ratio:?}"
        );
    }

    #[test]
    fn header_values_are_secrets_and_never_shown() {
        let key = "very-secret-key";
        let settings = from_env(&env(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=very%2Dsecret%2Dkey, team = a b",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(settings.headers.len(), 2);
        assert_eq!(settings.headers[0].1.expose(), key);
        assert_eq!(settings.headers[1].1.expose(), "a b");
        assert!(!format!("{settings:?}").contains(key));
        let bad = errors(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key:very-secret-key"),
        ]);
        assert!(!bad.join(" ").contains(key), "{bad:?}");
    }

    #[test]
    fn samplers_and_resources() {
        let settings = from_env(&env(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=edge,deployment.environment=prod",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            settings.sampler,
            Sampler {
                root: Root::Ratio(0.25),
                parent_based: true
            }
        );
        assert_eq!(settings.resource[0], ("service.name".into(), "edge".into()));
        assert_eq!(settings.resource[1].0, "service.version");
        assert!(
            settings
                .resource
                .contains(&("deployment.environment".into(), "prod".into()))
        );
    }
}
