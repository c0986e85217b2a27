//! Validation: walks the YAML tree once, collects every error with its path, and builds the
//! typed [`Config`] only when there is none. Unknown keys are errors. The top level is read
//! here; each section is read by the component that owns it (methods of the shared
//! [`Reader`] written in that component's module).

use std::net::SocketAddr;

use serde_json::{Map, Value};

use super::{Config, ConfigErrors};
use crate::secret::Secret;
use crate::settings::{Fields, Reader};
use crate::spaces::settings::Tenant;

/// Sections of `reference/config.md` that later versions implement: named so the error says
/// so instead of calling them typos.
const NOT_YET_SUPPORTED: &[&str] = &[];

impl Reader<'_> {
    /// Validates the whole tree.
    pub(super) fn config(mut self, root: &Value) -> Result<Config, ConfigErrors> {
        let empty = Map::new();
        let root_map = match root {
            Value::Null => &empty,
            Value::Object(map) => map,
            _ => {
                self.error("", "the configuration must be a mapping of keys to values");
                return Err(ConfigErrors(self.errors));
            }
        };
        let mut top = Fields::new(root_map, "");
        let listen = top
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3000)));
        let domains = self.section(&mut top, "domains", Self::domains);
        let Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            webhooks,
            schedules,
            plan,
            on_limit,
            page,
        } = self.tenant(&mut top, "providers");
        let crate::proxy::settings::Settings {
            shutdown_timeout,
            workers,
            upstream_ca_file,
            limits,
            upstream_timeouts,
            preserve_host,
            trusted_proxies,
        } = top
            .take("proxy")
            .map(|(v, p)| self.proxy(v, &p))
            .unwrap_or_default();
        let tls = top.take("tls").and_then(|(v, p)| self.tls(v, &p));
        let database_url = top
            .take("database")
            .and_then(|(v, p)| self.database(v, &p))
            .unwrap_or_else(|| super::DEFAULT_DATABASE_URL.to_owned());
        let events_retention = top
            .take("events")
            .and_then(|(v, p)| self.events(v, &p))
            .unwrap_or(super::DEFAULT_EVENTS_RETENTION);
        let registry = self.section(&mut top, "registry", Self::registry);
        let savings = self.section(&mut top, "savings", Self::savings);
        let spaces = top
            .take("spaces")
            .map(|(v, p)| self.spaces(v, &p, &domains))
            .unwrap_or_default();
        let admin = match top.take("admin") {
            Some((v, p)) => self.admin(v, &p),
            None => self.admin(&Value::Object(Map::new()), "admin"),
        };
        if !admin.hosts.is_empty()
            && admin.token.is_none()
            && let Some(open) = std::iter::once(listen)
                .chain(tls.as_ref().map(|tls| tls.listen))
                .find(|addr| !addr.ip().is_loopback())
        {
            self.error(
                "admin.host",
                format!(
                    "the proxy listens on {open}, not a loopback address: set admin.token (or \
                     PAASTIS_ADMIN_TOKEN), the admin API must not be open to the network \
                     without one"
                ),
            );
        }
        let gate = top
            .take("gate")
            .map(|(v, p)| self.gate(v, &p, !trusted_proxies.is_empty()))
            .unwrap_or_default();
        if gate.enabled()
            && gate.listen.is_none()
            && admin.listen.is_none()
            && admin.hosts.is_empty()
        {
            self.error(
                "gate",
                "nowhere to serve it: admin.listen is off and there is no admin.host; set \
                 gate.listen",
            );
        }
        let reload = self.section(&mut top, "reload", Self::reload);
        let hosted = top
            .take("hosted")
            .and_then(|(v, p)| self.hosted(v, &p, admin.token.as_ref()));
        self.finish(top, NOT_YET_SUPPORTED);

        if self.errors.is_empty() {
            Ok(Config {
                listen,
                domains,
                defaults,
                discovery,
                providers,
                shutdown_timeout,
                workers,
                upstream_ca_file,
                activity,
                limits,
                upstream_timeouts,
                preserve_host,
                trusted_proxies,
                tls,
                rules,
                database_url: Secret::new(database_url),
                events_retention,
                registry,
                admin,
                gate,
                reload,
                revision: String::new(),
                hooks,
                webhooks,
                schedules,
                savings,
                plan,
                on_limit,
                page,
                spaces,
                hosted,
                traces: None,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::model::Policy;
    use crate::providers::ProviderConfig;
    use crate::registry::{RegistryConfig, defaults as registry_defaults};
    use crate::settings::{Provenance, is_label};

    /// Every expected message starts one of `errors`, and nothing else is reported.
    fn assert_exactly(errors: &[String], expected: &[&str]) {
        for needle in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(needle)),
                "missing {needle:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    fn validate(yaml: &str) -> Result<Config, Vec<String>> {
        let tree: Value = crate::settings::parse_yaml(yaml).expect("test yaml parses");
        let provenance = Provenance::default();
        Reader::new(&provenance)
            .config(&tree)
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn empty_config_gets_the_defaults() {
        let config = validate("").expect("valid");
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 3000)));
        assert_eq!(config.defaults, Policy::default());
        assert_eq!(config.discovery.every, Duration::from_secs(60));
        assert!(config.providers.is_empty());
    }

    #[test]
    fn full_process_provider_is_typed() {
        let config = validate(
            r#"
listen: 127.0.0.1:4000
domains: [Proxy.Example.com.]
defaults: {max_idle: 5m, wake_timeout: 30s, strategy: hold, health_path: /up}
discovery: {every: 10s}
proxy: {drain_timeout: 5s, workers: 3}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "python3 -m http.server {port}"
        port: 8081
        env: {GREETING: hi, DEBUG: true, N: 3}
        working_dir: /tmp
        max_idle: never
        stop_timeout: 2s
      - name: other
        command: "true"
"#,
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.domains, vec!["proxy.example.com".to_owned()]);
        assert_eq!(config.defaults.max_idle, Some(Duration::from_secs(300)));
        assert_eq!(config.defaults.health_path.as_deref(), Some("/up"));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.workers, 3);
        let ProviderConfig::Process(process) = &config.providers[0] else {
            panic!("expected a process provider");
        };
        assert_eq!(process.id, "local");
        let hello = &process.apps[0];
        assert_eq!(hello.port, Some(8081));
        assert_eq!(hello.env.get("DEBUG").map(String::as_str), Some("true"));
        assert_eq!(hello.env.get("N").map(String::as_str), Some("3"));
        assert_eq!(config.defaults.with(&hello.policy).max_idle, None);
        assert_eq!(process.apps[1].port, None);
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let errors = validate(
            r#"
listen: nowhere
lisen: 1
defaults: {max_idle: 15, strategy: fast}
rules: [{max_idle: 5m}, {pattern: '(', alias: ''}]
providers:
  - id: local
    type: process
    apps:
      - name: a
        command: x
        port: 70000
      - name: a
        port: 0
      - {name: Bad_Name, command: y, colour: blue}
  - id: local
    type: scalingo
  - type: nope
  - {id: other, type: Process}
"#,
        )
        .expect_err("invalid");
        let expected = [
            "listen: `nowhere` is not an address",
            "defaults.max_idle: `15` is not a duration",
            "defaults.strategy: `fast` is not a strategy",
            "lisen: unknown key (expected one of:",
            "rules[0].pattern: is required",
            "rules[1].pattern: `(` is not a valid regex",
            "rules[1].alias: ",
            "providers[0].apps[0].port: must be 1..65535",
            "providers[0].apps[1].name: duplicate app name `a` (first at providers[0].apps[0].name)",
            "providers[0].apps[1].command: missing",
            "providers[0].apps[1].port: must be 1..65535",
            "providers[0].apps[2].name: `Bad_Name` is not a valid app name",
            "providers[0].apps[2].colour: unknown key",
            "providers[1].id: duplicate provider id `local`",
            "providers[1].token: missing (or token_file)",
            "providers[2].id: missing",
            "providers[2].type: `nope` is not a provider type",
            "providers[3].type: `Process` is not a provider type",
        ];
        assert_exactly(&errors, &expected);
    }

    #[test]
    fn the_event_stream_settings_have_defaults_and_bounds() {
        let config = validate("").expect("valid");
        assert_eq!(
            config.admin.events_stream,
            crate::admin::settings::EventsStream::default()
        );
        assert_eq!(
            config.admin.events_stream.heartbeat,
            Duration::from_secs(15)
        );
        let config =
            validate("admin: {events_stream: {heartbeat: 500ms, buffer: 10}}").expect("valid");
        assert_eq!(
            config.admin.events_stream.heartbeat,
            Duration::from_millis(500)
        );
        assert_eq!(config.admin.events_stream.buffer, 10);
        let errors = validate("admin: {events_stream: {heartbeat: 0s, buffer: 0, every: 1s}}")
            .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "admin.events_stream.heartbeat: must be longer than 0s",
                "admin.events_stream.buffer: must be a whole number 1..100000",
                "admin.events_stream.every: unknown key",
            ],
        );
        let errors = validate("admin: {events_stream: {heartbeat: soon, buffer: 100001}}")
            .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "admin.events_stream.heartbeat: `soon` is not a duration",
                "admin.events_stream.buffer: must be a whole number 1..100000",
            ],
        );
        let errors = validate("admin: {events_stream: 5}").expect_err("invalid");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("admin.events_stream: "), "{errors:?}");
    }

    #[test]
    fn registry_settings_are_checked_together() {
        let config = validate("registry: {type: redis}").expect("valid");
        let RegistryConfig::Redis(redis) = config.registry else {
            panic!("expected redis, got {:?}", config.registry);
        };
        assert_eq!(redis.url.expose(), registry_defaults::URL);
        assert_eq!(redis.prefix, "paastis");
        assert_eq!(redis.flush_every, Duration::from_secs(1));
        assert_eq!(redis.lease, Duration::from_secs(10));

        let config = validate(
            "registry: {type: redis, url: 'redis://:pw@10.0.0.9:6380/2', prefix: 'team:', flush_every: 250ms, lease: 3s}",
        )
        .expect("valid");
        let RegistryConfig::Redis(redis) = config.registry else {
            panic!("expected redis");
        };
        assert_eq!(redis.prefix, "team", "a trailing colon is not doubled");
        assert_eq!(redis.flush_every, Duration::from_millis(250));
        assert_eq!(redis.lease, Duration::from_secs(3));
        assert!(!format!("{redis:?}").contains("pw@"), "the URL is a secret");
        assert!(matches!(
            validate("registry: {type: memory}")
                .expect("valid")
                .registry,
            RegistryConfig::Memory
        ));

        let errors = validate(
            "registry: {type: redis, url: 'http://x', prefix: 'a b', flush_every: 0s, lease: 100ms, pool: 3}",
        )
        .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "registry.url: must be a redis://",
                "registry.prefix: must not hold spaces or glob characters",
                "registry.flush_every: must be longer than 0s",
                "registry.lease: must be at least 300ms",
                "registry.pool: unknown key",
            ],
        );
        let errors = validate(
            "registry: {type: mongo}
",
        )
        .expect_err("invalid");
        assert_exactly(&errors, &["registry.type: `mongo` is not a registry type"]);
        let errors = validate(
            "registry: {type: memory, url: 'redis://x'}
",
        )
        .expect_err("invalid");
        assert_exactly(&errors, &["registry.url: is only used with `type: redis`"]);
    }

    #[test]
    fn wrong_shapes_are_named() {
        let errors = validate("providers: {id: x}\ndomains: example.com\n").expect_err("invalid");
        assert!(errors.contains(&"domains: expected a list, found a string".to_owned()));
        assert!(errors.contains(&"providers: expected a list, found a mapping".to_owned()));
        let errors = validate("- a\n- b\n").expect_err("invalid");
        assert_eq!(
            errors,
            vec!["the configuration must be a mapping of keys to values".to_owned()]
        );
    }

    #[test]
    fn platform_providers_are_typed_with_secrets() {
        let dir = std::env::temp_dir().join(format!("paastis-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let token_file = dir.join("heroku-token");
        std::fs::write(&token_file, "hrku-from-file\n").expect("write");
        let config = validate(&format!(
            r#"
providers:
  - {{id: scalingo-fr1, type: scalingo, token: tk-us-abc, region: [osc-fr1, osc-secnum-fr1], api_url: "http://127.0.0.1:9/{{region}}/", rate_limit: 30}}
  - {{id: heroku, type: heroku, token_file: "{}"}}
  - {{id: clever, type: clever-cloud, consumer_key: ck, consumer_secret: cs, token: t, secret: s, organisation: orga_1}}
  - {{id: bridge, type: clever-cloud, api_token: tok, upstream_scheme: http}}
"#,
            token_file.display()
        ))
        .expect("valid");
        let _ = std::fs::remove_dir_all(&dir);
        let [
            ProviderConfig::Scalingo(scalingo),
            ProviderConfig::Heroku(heroku),
            ProviderConfig::CleverCloud(clever),
            ProviderConfig::CleverCloud(bridge),
        ] = config.providers.as_slice()
        else {
            panic!("unexpected providers: {:?}", config.providers);
        };
        assert_eq!(scalingo.regions, ["osc-fr1", "osc-secnum-fr1"]);
        assert_eq!(
            scalingo.api_url.as_deref(),
            Some("http://127.0.0.1:9/{region}")
        );
        assert_eq!(scalingo.auth_url, "https://auth.scalingo.com");
        assert_eq!(scalingo.rate_limit, 30);
        assert_eq!(scalingo.token.expose(), "tk-us-abc");
        assert_eq!(heroku.token.expose(), "hrku-from-file");
        assert_eq!(heroku.api_url, "https://api.heroku.com");
        assert_eq!(clever.api_url, "https://api.clever-cloud.com");
        assert_eq!(clever.organisation.as_deref(), Some("orga_1"));
        assert_eq!(bridge.api_url, "https://api-bridge.clever-cloud.com");
        assert_eq!(bridge.upstream_scheme, http::uri::Scheme::HTTP);
        // Debug output of the whole config shows no secret.
        let debug = format!("{config:?}");
        for secret in ["tk-us-abc", "hrku-from-file", "\"cs\"", "\"tok\""] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn platform_provider_errors_are_collected() {
        let errors = validate(
            r#"
providers:
  - {id: s, type: scalingo, region: [Bad Region], auth_url: "ftp://x"}
  - {id: h, type: heroku, token: a, token_file: /nonexistent/token}
  - {id: c, type: clever-cloud, consumer_key: k}
  - {id: d, type: clever-cloud}
  - {id: e, type: heroku, token_file: /nonexistent/paastis-token}
  - {id: f, type: scalingo, token: t, region: [osc-fr1, osc-secnum-fr1], api_url: "http://x"}
  - {id: g, type: scalingo, token: t, region: [osc-fr1, osc-secnum-fr1], api_url: "http://x/{region}"}
"#,
        )
        .expect_err("invalid");
        let expected = [
            "providers[0].token: missing (or token_file)",
            "providers[0].region[0]: `Bad Region` is not a region name",
            "providers[0].auth_url: `ftp://x` is not an http(s) URL",
            "providers[1].token: set either token or token_file, not both",
            "providers[2].consumer_secret: missing",
            "providers[2].token: missing",
            "providers[2].secret: missing",
            "providers[3]: missing credentials",
            "providers[4].token_file: cannot read /nonexistent/paastis-token",
            "providers[5].api_url: serves one region",
        ];
        assert_exactly(&errors, &expected);
    }

    #[test]
    fn discovery_runs_every_period_or_on_a_cron() {
        let config = validate("discovery: {cron: '*/30 * * * * *'}").expect("valid");
        assert!(config.discovery.cron.is_some());
        let config = validate("discovery: {cron: '0 * * * *'}").expect("valid");
        assert!(config.discovery.cron.is_some());
        let errors = validate("discovery: {every: 10s, cron: '* * * * *'}").expect_err("invalid");
        assert_exactly(
            &errors,
            &["discovery.cron: give `every` or `cron`, not both"],
        );
        // An empty list item would leave a field matching nothing: every search for the
        // next time would scan the calendar for seconds.
        for cron in ["*/51 , * * * *", "0 1,,2 * * *", "0 8 * * 1,"] {
            let expected = format!(
                "discovery.cron: `{cron}` is not a cron expression (a list with an empty item"
            );
            let errors = validate(&format!("discovery: {{cron: '{cron}'}}")).expect_err("invalid");
            assert_exactly(&errors, &[&expected]);
            let errors = validate(&format!("schedules: [{{apps: x, sleep: '{cron}'}}]"))
                .expect_err("invalid");
            assert_exactly(
                &errors,
                &[&expected.replace("discovery.cron", "schedules[0].sleep")],
            );
        }
        let errors = validate("discovery: {cron: 'every minute'}").expect_err("invalid");
        assert_exactly(
            &errors,
            &["discovery.cron: `every minute` is not a cron expression"],
        );
    }

    #[test]
    fn discovery_filter_and_rules_are_typed() {
        let config = validate(
            r#"
discovery: {include: ["*"], exclude: ['tmp-*', 're:^old-\d+$'], self_app: paastis}
rules:
  - {pattern: 'review-(\d+)', linked_apps: ['db-$1'], alias: 'r$1', max_idle: never, formation: {web: 2}}
"#,
        )
        .expect("valid");
        let filter = &config.discovery.filter;
        assert!(filter.include.is_empty());
        assert!(filter.manages("review-1", &[]));
        assert!(!filter.manages("tmp-1", &[]));
        assert!(!filter.manages("old-12", &[]));
        assert!(!filter.manages("paastis", &[]));
        let resolved = config.rules.resolve("review-12");
        assert_eq!(resolved.linked_apps, vec!["db-12"]);
        assert_eq!(resolved.alias.as_deref(), Some("r12"));
        assert_eq!(resolved.policy.max_idle, Some(None));
        assert_eq!(resolved.formation, Some([("web".to_owned(), 2)].into()));

        let errors = validate(
            "discovery: {include: ['[']}\nrules: [{pattern: x, formation: {web: -1}, linked_apps: [''], hooks: {before_stop: 3, after_stop: '', timeout: 0s, nope: x}}, 3]",
        )
        .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "discovery.include[0]: `[` is not a valid glob",
                "rules[0].formation.web: ",
                "rules[0].linked_apps[0]: ",
                "rules[0].hooks.after_stop: must not be empty",
                "rules[0].hooks.timeout: must be longer than 0s",
                "rules[0].hooks.nope: unknown key",
                "rules[1]: ",
            ],
        );
    }

    #[test]
    fn activity_patterns_are_checked() {
        let config =
            validate("activity: {ignore_user_agents: [UptimeRobot], ignore_paths: ['/status/*']}")
                .expect("valid");
        assert!(config.activity.ignores(Some("x UptimeRobot/2"), "/"));
        assert!(config.activity.ignores(None, "/status/db"));
        assert!(!config.activity.ignores(Some("curl"), "/"));
        let errors =
            validate("activity: {ignore_paths: ['re:(', ok], bogus: 1}").expect_err("invalid");
        assert!(
            errors[0].starts_with("activity.ignore_paths[0]: `re:(` is not a valid regex"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("activity.bogus: unknown key"),
            "{errors:?}"
        );
    }

    #[test]
    fn labels() {
        assert!(is_label("review-pr12-front"));
        assert!(!is_label("-x"));
        assert!(!is_label("a.b"));
        assert!(!is_label("UPPER"));
        assert!(!is_label(&"a".repeat(64)));
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let errors = validate("defaults: {wake_timeout: 0s, max_idle: 0s}").expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.ends_with("must be longer than 0s")));
    }

    #[test]
    fn schedules_are_read_and_every_mistake_is_reported() {
        let config = validate(
            "schedules:\n\
             \x20 - {apps: 'review-*', sleep: '0 20 * * 1-5', wake: '0 8 * * 1-5', timezone: Europe/Paris,\n\
             \x20    keep_awake: [{from: '08:00', to: '19:00', days: mon-fri}], wake_on_request: false}\n\
             \x20 - {apps: [demo, 're:^qa-'], keep_awake: [{from: '22:00', to: '02:00', days: [fri, sat]}]}\n",
        )
        .expect("valid");
        assert_eq!(config.schedules.len(), 2);
        let office = &config.schedules[0];
        assert_eq!(office.timezone, chrono_tz::Europe::Paris);
        assert!(!office.wake_on_request);
        assert!(office.matches("review-pr1") && !office.matches("demo"));
        assert_eq!(office.keep_awake.len(), 1);
        let other = &config.schedules[1];
        assert!(other.matches("demo") && other.matches("qa-7") && other.wake_on_request);
        assert_eq!(other.timezone, chrono_tz::UTC);

        let errors = validate(
            "schedules:\n\
             \x20 - {sleep: 'every night', timezone: Mars/Olympus}\n\
             \x20 - {apps: x, keep_awake: [{from: '8h', to: '19:00', days: someday}], wake_on_request: 1}\n\
             \x20 - {apps: y}\n\
             \x20 - {apps: z, wake: '0 8 * * *', bogus: 1}\n",
        )
        .expect_err("invalid");
        let expected = [
            "schedules[0].apps: is required",
            "schedules[0].sleep: `every night` is not a cron expression",
            "schedules[0].timezone: `Mars/Olympus` is not a time zone",
            "schedules[1].keep_awake[0].from: `8h` is not a time of day",
            "schedules[1].keep_awake[0].days: `someday` is not a day",
            "schedules[1].wake_on_request: expected true or false",
            "schedules[2]: does nothing",
            "schedules[3].bogus: unknown key",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(expected) {
            assert!(error.starts_with(start), "{error} / {start}");
        }
    }

    #[test]
    fn savings_are_read_and_checked() {
        let config = validate(
            "savings: {prices: {scalingo: {M: 0.02, L: 0.04}, my-heroku: {'*': 0.01}}, currency: usd, gco2e_per_container_hour: 0.5}",
        )
        .expect("valid");
        assert_eq!(config.savings.currency, "USD");
        assert_eq!(config.savings.prices["scalingo"]["L"], 0.04);
        assert_eq!(config.savings.prices["my-heroku"]["*"], 0.01);
        assert_eq!(config.savings.gco2e_per_container_hour, Some(0.5));
        let errors = validate(
            "savings: {prices: {scalingo: {M: -1, L: cheap}, heroku: 3}, currency: euro, gco2e_per_container_hour: lots, extra: 1}",
        )
        .expect_err("invalid");
        let expected = [
            "savings.prices.scalingo.M: must be a number >= 0",
            "savings.prices.scalingo.L: expected a number",
            "savings.prices.heroku: expected a mapping of sizes",
            "savings.currency: `euro` is not a currency code",
            "savings.gco2e_per_container_hour: expected a number",
            "savings.extra: unknown key",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for start in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(start)),
                "{start}: {errors:#?}"
            );
        }
    }

    #[test]
    fn spaces_are_read_and_every_mistake_is_reported() {
        let config = validate(
            "domains: [example.com]\n\
             spaces:\n\
             \x20 - {id: acme, domains: [Acme.Example.com.], plan: team, on_limit: evict_lru, tokens: [acme-token-0123456789],\n\
             \x20    providers: [{id: local, type: process, apps: [{name: web, command: 'true'}]}],\n\
             \x20    defaults: {max_idle: 5m}, schedules: [{apps: '*', sleep: '0 20 * * *'}]}\n",
        )
        .expect("valid");
        let acme = &config.spaces[0];
        assert_eq!(acme.id, "acme");
        assert_eq!(acme.domains, ["acme.example.com"]);
        assert_eq!(acme.plan.running_apps_per_provider, Some(15));
        assert_eq!(acme.on_limit, crate::plan::OnLimit::EvictLru);
        assert_eq!(acme.providers.len(), 1);
        assert_eq!(acme.defaults.max_idle, Some(Duration::from_secs(300)));
        assert_eq!(acme.schedules.len(), 1);
        assert_eq!(acme.tokens.len(), 1);

        let errors = validate(
            "domains: [example.com]\n\
             spaces:\n\
             \x20 - {id: default, domains: [a.test]}\n\
             \x20 - {id: Bad_Id, domains: [example.com]}\n\
             \x20 - {id: b}\n\
             \x20 - {id: c, domains: [c.test], tokens: [short-secret-x], plan: free,\n\
             \x20    providers: [{id: x, type: process, apps: [{name: a, command: 'true'}]}, {id: y, type: process, apps: [{name: b, command: 'true'}]}]}\n\
             \x20 - {id: c, domains: [c.test], colour: blue}\n",
        )
        .expect_err("invalid");
        let expected = [
            "spaces[0].id: `default` is the top-level",
            "spaces[1].id: `Bad_Id` is not a space id",
            "spaces[1].domains[0]: `example.com` is already a domain of the top-level `domains`",
            "spaces[2].domains: is required",
            "spaces[3].providers: 2 provider accounts, but the plan `free` allows 1",
            "spaces[3].tokens[0]: must be at least 16 characters",
            "spaces[4].id: duplicate space id `c`",
            "spaces[4].domains[0]: `c.test` is already a domain of `spaces[3]`",
            "spaces[4].colour: unknown key",
        ];
        for start in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(start)),
                "{start}: {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        // A token is never repeated in an error.
        assert!(errors.iter().all(|e| !e.contains("short-secret-x")));
    }
}
