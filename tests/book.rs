//! The generated parts of the book and the configuration model they come from:
//!
//! * the key model and the readers agree, both ways: the keys the readers ask for while
//!   reading a configuration with every section are exactly the model's keys;
//! * `paastis config schema` (the real binary) prints a valid JSON Schema that accepts the
//!   repository's configurations and refuses misspelled keys and wrong types (checked with
//!   Python's `jsonschema`);
//! * the committed reference pages (configuration, CLI, admin API) are what the code
//!   generates now; `BLESS=1 cargo test --test book` rewrites them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use serde_json::{Value, json};
use utoipa::OpenApi;

/// A configuration with every section present once: one provider of each type (Clever
/// Cloud with each way to authenticate) at the top level and in a space, rules with hooks,
/// schedules with a window, custom plans, Redis, TLS, hosted mode. It need not be valid:
/// only the keys asked for matter.
const EVERY_SECTION: &str = r#"
listen: 127.0.0.1:3000
domains: [example.com]
defaults: {max_idle: 5m, wake_timeout: 30s, strategy: hold, health_path: /up}
discovery: {every: 10s, include: ["*"], exclude: [x], self_app: me}
activity: {ignore_user_agents: [bot], ignore_paths: [/health]}
providers: &providers
  - id: local
    type: process
    apps:
      - {name: hello, command: "true", port: 8081, env: {A: b}, working_dir: /tmp, stop_timeout: 2s, max_idle: never}
  - {id: sc, type: scalingo, token: t0123456789, region: osc-fr1, api_url: "http://127.0.0.1:1", auth_url: "http://127.0.0.1:1", rate_limit: 5}
  - {id: he, type: heroku, token: t0123456789, api_url: "http://127.0.0.1:1", rate_limit: 5}
  - {id: cc, type: clever-cloud, api_token: t0123456789, organisation: orga_x, api_url: "http://127.0.0.1:1", upstream_scheme: http, rate_limit: 5}
  - {id: co, type: clever-cloud, consumer_key: k, consumer_secret: s, token: t, secret: s}
  - {id: rd, type: render, token: t0123456789, api_url: "http://127.0.0.1:1", owner_id: tea-x, rate_limit: 5}
  - {id: fl, type: fly, token: t0123456789, org: acme, apps: [shop], api_url: "http://127.0.0.1:1/v1", hostname_template: "{app}.fly.dev", upstream_scheme: http, stop_mode: suspend, rate_limit: 5}
  - {id: k8, type: kubernetes, api_url: "http://127.0.0.1:1", token: t0123456789, namespaces: [review], selector: "paastis.io/enabled=true", cluster_domain: cluster.local, rate_limit: 5}
  - {id: kc, type: kubernetes, kubeconfig: /tmp/kubeconfig, context: dev}
  - {id: dk, type: docker, host: "unix:///run/docker.sock", cert_path: /tmp/certs, tls_verify: false, network: paastis, host_address: 127.0.0.1, api_version: "1.43", stop_timeout: 5s, group_by_compose_project: true, rate_limit: 100}
rules: &rules
  - pattern: 'review-(\d+)'
    linked_apps: ['back-$1']
    alias: 'r$1'
    formation: {web: 1}
    max_idle: 1m
    hooks: {before_start: "true", after_start: "true", before_stop: "true", after_stop: "true", timeout: 5s, env: {A: b}}
    page: {title: Review, theme: minimal}
    webhooks: [{id: rw, url: "https://hooks.example.com/r", events: [started], format: slack}]
page: &page
  theme: dark
  template: examples/pages/page.html
  title: Acme
  logo: /logo.svg
  accent_color: teal
  css: examples/pages/brand.css
  language: de
  languages: {de: examples/pages/de.yml}
hooks: {before_start: "true", timeout: 5s, env: {A: b}}
webhooks: &webhooks
  - {id: ops, url: "https://hooks.example.com/o", events: [started, wake_failed], format: json, secret: s3cretvalue, retry_for: 1m, timeout: 5s, queue: 10}
schedules: &schedules
  - apps: "review-*"
    sleep: "0 20 * * 1-5"
    wake: "0 8 * * 1-5"
    keep_awake: [{from: "09:00", to: "19:00", days: mon-fri}]
    timezone: Europe/Paris
    wake_on_request: false
plan: {providers: 10, running_apps_per_provider: 5}
on_limit: evict_lru
proxy:
  preserve_host: true
  connect_timeout: 1s
  response_header_timeout: 1s
  idle_timeout: 1s
  header_read_timeout: 1s
  max_header_bytes: 9000
  max_connections: 10
  max_connections_per_ip: 5
  client_idle_timeout: 1s
  request_body_timeout: 1s
  min_request_body_rate: 1
  drain_timeout: 1s
  workers: 1
  trusted_proxies: [10.0.0.0/8]
  upstream_ca_file: /tmp/ca.pem
tls: {listen: "127.0.0.1:3443", cert: /tmp/cert.pem, key: /tmp/key.pem}
database: {url: "sqlite::memory:"}
events: {retention: 1d}
registry: {type: redis, url: "redis://127.0.0.1:6379", prefix: p, flush_every: 1s, lease: 1s}
savings: {prices: {heroku: {basic: 0.01}}, currency: USD, gco2e_per_container_hour: 0.1}
spaces:
  - id: acme
    domains: [acme.example.com]
    tokens: [abcdefghijklmnopqrstuvwxyz]
    defaults: {max_idle: 5m}
    discovery: {every: 10s}
    activity: {ignore_paths: [/health]}
    providers: *providers
    rules: *rules
    hooks: {before_start: "true"}
    webhooks: *webhooks
    schedules: *schedules
    plan: {providers: 10}
    on_limit: reject
    page: *page
admin:
  listen: 127.0.0.1:3001
  host: admin.example.com
  token: abcdefghijklmnopqrstuvwxyz
  metrics_auth: true
  system_api: {enabled: true, token: abcdefghijklmnopqrstuvwxyz}
  events_stream: {heartbeat: 15s, buffer: 256}
gate:
  listen: 127.0.0.1:3002
  token: abcdefghijklmnopqrstuvwxyz
  forward_auth: {enabled: true, session: 1m}
  sablier:
    enabled: true
    session_duration: 5m
    blocking_timeout: 1m
    refresh_frequency: 5s
    show_details: true
reload: {watch: false, removed_apps: stop}
hosted: {custom_api_urls: true, private_upstreams: true, sync_every: 5s}
"#;

#[test]
fn the_key_model_is_exactly_what_the_readers_take() {
    let tree = paastis::settings::parse_yaml(EVERY_SECTION).expect("the test config parses");
    let env = HashMap::new();
    let overrides = paastis::config::Overrides::default();
    let (_, taken) = paastis::settings::record_keys(|| {
        paastis::config::load_str(EVERY_SECTION, &env, &overrides)
    });
    let read: BTreeSet<(String, String)> = taken
        .into_iter()
        .map(|(path, key)| (paastis::config::reference::normalize(&path, &tree), key))
        .collect();
    assert!(
        read.len() > 150,
        "the readers were not recorded ({} keys): {read:?}",
        read.len()
    );
    let model = paastis::config::reference::model_keys();
    let show = |set: Vec<&(String, String)>| {
        set.iter()
            .map(|(path, key)| format!("  {}", paastis::settings::child(path, key)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let unmodelled: Vec<_> = read.difference(&model).collect();
    let unread: Vec<_> = model.difference(&read).collect();
    assert!(
        unmodelled.is_empty() && unread.is_empty(),
        "the configuration model and the readers disagree.\n\
         Read but not in the model (declare them next to the reader: a `Key` in the \
         section's key list, or a platform's `Platform::KEYS`):\n{}\n\
         In the model but never read (remove them, or read them; or this test's config \
         lacks the section):\n{}",
        show(unmodelled),
        show(unread)
    );
}

// ----- the JSON Schema -----

/// `paastis config schema`, from the real binary.
fn schema_from_the_binary() -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_paastis"))
        .args(["config", "schema"])
        .env_remove("PAASTIS_CONFIG")
        .output()
        .expect("run paastis config schema");
    assert!(
        output.status.success(),
        "paastis config schema failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the schema is JSON")
}

/// Python with `jsonschema`, installed for the user when missing; `None` (and a message)
/// only when it cannot be had.
fn python_with_jsonschema() -> Option<&'static str> {
    let has = || {
        Command::new("python3")
            .args(["-c", "import jsonschema"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if has() {
        return Some("python3");
    }
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--user", "--quiet", "jsonschema"])
        .status();
    if has() {
        return Some("python3");
    }
    eprintln!(
        "SKIPPED: python3 with the jsonschema package is not available and `pip install \
         jsonschema` failed; the schema was not validated"
    );
    None
}

/// Checks `schema` (draft 2020-12) and validates each instance: name -> `None` when valid,
/// else the first error.
fn validate(
    python: &str,
    schema: &Value,
    instances: &[(String, Value)],
) -> Vec<(String, Option<String>)> {
    let dir = std::env::temp_dir().join(format!("paastis-book-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("input.json");
    let documents: Vec<Value> = instances.iter().map(|(_, v)| v.clone()).collect();
    std::fs::write(
        &input,
        json!({"schema": schema, "instances": documents}).to_string(),
    )
    .expect("write input");
    const SCRIPT: &str = r#"
import json, sys
from jsonschema import Draft7Validator, Draft202012Validator
data = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(data["schema"])
validator = Draft202012Validator(data["schema"])
# Editors' YAML language server implements draft-07: the same schema read as draft-07
# must give the same answers.
draft7 = dict(data["schema"], **{"$schema": "http://json-schema.org/draft-07/schema#"})
Draft7Validator.check_schema(draft7)
validator7 = Draft7Validator(draft7)
out = []
for instance in data["instances"]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if bool(errors) != (not validator7.is_valid(instance)):
        sys.exit("draft 2020-12 and draft-07 disagree on " + json.dumps(instance)[:300])
    out.append(None if not errors else "/".join(map(str, errors[0].absolute_path)) + ": " + errors[0].message[:300])
print(json.dumps(out))
"#;
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(&input)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "the schema is not a valid JSON Schema (or the validator failed): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Option<String>> =
        serde_json::from_slice(&output.stdout).expect("validator output");
    instances
        .iter()
        .map(|(name, _)| name.clone())
        .zip(results)
        .collect()
}

/// The keywords a schema uses (not the property names).
fn keywords(schema: &Value, out: &mut BTreeSet<String>) {
    let Value::Object(map) = schema else {
        return;
    };
    for (keyword, value) in map {
        out.insert(keyword.clone());
        match (keyword.as_str(), value) {
            ("properties", Value::Object(properties)) => {
                for property in properties.values() {
                    keywords(property, out);
                }
            }
            ("oneOf" | "anyOf" | "allOf", Value::Array(list)) => {
                for item in list {
                    keywords(item, out);
                }
            }
            ("items" | "additionalProperties", Value::Object(_)) => keywords(value, out),
            _ => {}
        }
    }
}

/// YAML text as the engine reads it (YAML 1.2 booleans), as JSON.
fn yaml(text: &str) -> Value {
    paastis::settings::parse_yaml(text).expect("YAML parses")
}

/// Written just above a ```yaml block that is another tool's file, not a configuration.
const NOT_A_CONFIGURATION: &str = "<!-- not a paastis configuration -->";

/// The ```yaml blocks of the book's pages that are whole configurations (mappings).
fn configs_in_the_docs() -> Vec<(String, Value)> {
    let mut configs = Vec::new();
    let mut pages = Vec::new();
    collect_markdown(&root().join("docs"), &mut pages);
    pages.sort();
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("read page");
        let mut rest = text.as_str();
        let mut index = 0;
        while let Some(start) = rest.find("```yaml\n") {
            let body = &rest[start + 8..];
            let end = body.find("```").unwrap_or(body.len());
            index += 1;
            let name = format!("{} block {index}", relative(&page));
            let value = paastis::settings::parse_yaml(&interpolate(&body[..end]))
                .unwrap_or_else(|error| panic!("{name} is not YAML: {error}"));
            // Another tool's YAML (alert rules, compose files) says so just above the block.
            let foreign = rest[..start].trim_end().ends_with(NOT_A_CONFIGURATION);
            if value.is_object() && !foreign && !paastis::config::is_original_rules(&value) {
                configs.push((name, value));
            }
            rest = &body[end..];
        }
    }
    configs
}

/// `${NAME}` and `${NAME:-default}` replaced as the engine does before reading the YAML:
/// by the default, else by a value long enough for a token.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str("value-from-the-environment"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_markdown(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn the_schema_accepts_the_repository_configs_and_refuses_mistakes() {
    let schema = schema_from_the_binary();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "draft 2020-12"
    );
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are refused"
    );
    // Only keywords that mean the same in draft-07 (what editors implement).
    let mut used = BTreeSet::new();
    keywords(&schema, &mut used);
    let draft7_alike: BTreeSet<&str> = [
        "$schema",
        "title",
        "description",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "enum",
        "const",
        "oneOf",
        "anyOf",
        "allOf",
        "items",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "default",
    ]
    .into_iter()
    .collect();
    let other: Vec<&String> = used
        .iter()
        .filter(|k| !draft7_alike.contains(k.as_str()))
        .collect();
    assert!(other.is_empty(), "keywords beyond draft-07's: {other:?}");
    let Some(python) = python_with_jsonschema() else {
        return;
    };

    let mut valid: Vec<(String, Value)> = vec![
        (
            "the test config with every section".into(),
            yaml(EVERY_SECTION),
        ),
        ("an empty file".into(), Value::Null),
    ];
    let examples = std::fs::read_dir(root().join("examples")).expect("examples dir");
    let compat = std::fs::read_dir(root().join("tests/support/compat")).expect("compat dir");
    for entry in examples.chain(compat).flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml")
        {
            let tree = yaml(&std::fs::read_to_string(&path).expect("read"));
            // The original engine's rules files are converted, not read as they are.
            if !paastis::config::is_original_rules(&tree) {
                valid.push((relative(&path), tree));
            }
        }
    }
    assert!(
        valid.iter().any(|(name, _)| name == "examples/paastis.yml"),
        "the example configuration was not found"
    );
    let docs = configs_in_the_docs();
    assert!(!docs.is_empty(), "no configuration found in docs/");
    valid.extend(docs);
    let results = validate(python, &schema, &valid);
    let refused: Vec<String> = results
        .iter()
        .filter_map(|(name, error)| error.as_ref().map(|e| format!("  {name}: {e}")))
        .collect();
    assert!(
        refused.is_empty(),
        "the schema refuses configurations the repository ships:\n{}",
        refused.join("\n")
    );

    // Mistakes: each is refused by the schema, and by the engine too.
    let mistakes: &[(&str, &str)] = &[
        ("misspelled top-level key", "listn: 127.0.0.1:3000\n"),
        ("misspelled nested key", "defaults: {max_idel: 5m}\n"),
        (
            "misspelled provider key",
            "providers: [{id: h, type: heroku, tokn: x}]\n",
        ),
        (
            "key of another platform",
            "providers: [{id: h, type: heroku, token: x, region: osc-fr1}]\n",
        ),
        (
            "unknown provider type",
            "providers: [{id: h, type: herokku, token: x}]\n",
        ),
        ("wrong type: text for a number", "proxy: {workers: many}\n"),
        ("wrong type: number out of range", "proxy: {workers: 0}\n"),
        (
            "wrong type: not a duration",
            "defaults: {wake_timeout: 30}\n",
        ),
        ("wrong type: not a boolean", "admin: {metrics_auth: 1}\n"),
        ("not one of the values", "defaults: {strategy: wait}\n"),
        ("not an address", "listen: localhost\n"),
        (
            "a required key missing",
            "providers: [{id: local, type: process}]\n",
        ),
        (
            "a required secret missing",
            "providers: [{id: h, type: heroku}]\n",
        ),
        ("a list where a mapping is expected", "proxy: [a]\n"),
    ];
    let instances: Vec<(String, Value)> = mistakes
        .iter()
        .map(|(name, text)| ((*name).to_owned(), yaml(text)))
        .collect();
    let results = validate(python, &schema, &instances);
    let accepted: Vec<&str> = results
        .iter()
        .filter(|(_, error)| error.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        accepted.is_empty(),
        "the schema accepts mistakes: {accepted:?}"
    );
    let env = HashMap::new();
    let overrides = paastis::config::Overrides::default();
    for (name, text) in mistakes {
        assert!(
            paastis::config::load_str(text, &env, &overrides).is_err(),
            "the engine accepts `{name}`, which the schema refuses: {text}"
        );
    }
}

// ----- the generated pages -----

/// Compares a generated page with the committed one; `BLESS=1` writes it.
fn check_page(path: &str, generated: &str) {
    let file = root().join(path);
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).expect("create the page's folder");
        }
        std::fs::write(&file, generated).expect("write the page");
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{path} is stale (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\n\
             Run `BLESS=1 cargo test --test book` and commit the result.",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn the_configuration_reference_is_up_to_date() {
    let page = paastis::config::reference::markdown();
    for key in [
        "`listen`",
        "`providers[]` with `type: process`",
        "`max_idle`",
        "`registry`",
    ] {
        assert!(page.contains(key), "{key} missing from the reference");
    }
    check_page("docs/src/reference/configuration.md", &page);
}

#[test]
fn the_cli_reference_is_up_to_date() {
    let command = paastis::cli::Cli::command();
    let mut page = String::from(
        "# CLI reference\n\n\
         <!-- Generated from the command line's definition (`src/cli/args.rs` and the \
         clients' arguments in `src/cli/`). Do not edit: run `BLESS=1 cargo test --test \
         book`. -->\n\n\
         Every command, argument, flag and environment variable of `paastis`. `paastis \
         --help` (or `paastis <command> --help`) prints the same. Options of a command \
         also apply to its subcommands; every command also takes `-h, --help`, and `paastis` \
         `-V, --version`.\n",
    );
    cli_command(&mut page, &command, "paastis", 2);
    for needle in [
        "## `paastis config schema`",
        "`--api-url <URL>`",
        "`PAASTIS_ADMIN_TOKEN`",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the CLI reference"
        );
    }
    check_page("docs/src/reference/cli.md", &page);
}

/// One command's section, then its subcommands'.
fn cli_command(page: &mut String, command: &clap::Command, path: &str, depth: usize) {
    page.push_str(&format!("\n## `{path}`\n\n"));
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        page.push_str(&format!("{}\n\n", about.to_string().trim()));
    }
    let subcommands: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .collect();
    let positionals: Vec<&clap::Arg> = command
        .get_positionals()
        .filter(|arg| !arg.is_hide_set())
        .collect();
    let options: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|arg| !arg.is_positional() && !arg.is_hide_set())
        .collect();
    let mut usage = path.to_owned();
    if !options.is_empty() {
        usage.push_str(" [OPTIONS]");
    }
    for arg in &positionals {
        let name = value_name(arg);
        if arg.is_required_set() {
            usage.push_str(&format!(" <{name}>"));
        } else {
            usage.push_str(&format!(" [{name}]"));
        }
    }
    if !subcommands.is_empty() {
        usage.push_str(if command.is_subcommand_required_set() {
            " <COMMAND>"
        } else {
            " [COMMAND]"
        });
    }
    page.push_str(&format!("Usage: `{usage}`\n"));
    if !positionals.is_empty() {
        page.push_str("\n| Argument | Description |\n|---|---|\n");
        for arg in &positionals {
            let name = value_name(arg);
            page.push_str(&format!("| `{name}` | {} |\n", arg_help(arg)));
        }
    }
    if !options.is_empty() {
        page.push_str("\n| Option | Environment | Default | Description |\n|---|---|---|---|\n");
        for arg in &options {
            let mut flag = match (arg.get_short(), arg.get_long()) {
                (Some(short), Some(long)) => format!("-{short}, --{long}"),
                (None, Some(long)) => format!("--{long}"),
                (Some(short), None) => format!("-{short}"),
                (None, None) => arg.get_id().to_string(),
            };
            if arg.get_action().takes_values() {
                let name = arg
                    .get_value_names()
                    .and_then(|names| names.first())
                    .map_or_else(
                        || arg.get_id().to_string().to_uppercase(),
                        |n| n.to_string(),
                    );
                flag.push_str(&format!(" <{name}>"));
            }
            let env = arg
                .get_env()
                .map(|env| format!("`{}`", env.to_string_lossy()))
                .unwrap_or_default();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|value| format!("`{}`", value.to_string_lossy()))
                .collect();
            page.push_str(&format!(
                "| `{flag}` | {env} | {} | {} |\n",
                defaults.join(", "),
                arg_help(arg)
            ));
        }
    }
    if !subcommands.is_empty() {
        page.push_str("\n| Command | Description |\n|---|---|\n");
        for sub in &subcommands {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            page.push_str(&format!(
                "| `{path} {}` | {} |\n",
                sub.get_name(),
                cell(&about)
            ));
        }
    }
    if let Some(after) = command.get_after_help().filter(|_| depth == 2) {
        page.push_str(&format!("\n```text\n{}\n```\n", after.to_string().trim()));
    }
    for sub in subcommands {
        cli_command(page, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

/// How an argument's value is named in usage lines: its value name, else its id in capitals.
fn value_name(arg: &clap::Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map_or_else(
            || arg.get_id().to_string().to_uppercase(),
            |n| n.to_string(),
        )
}

/// An argument's help, with its possible values, for a table cell.
fn arg_help(arg: &clap::Arg) -> String {
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| format!("`{}`", value.get_name()))
        .collect();
    if !values.is_empty() && arg.get_action().takes_values() {
        if !help.is_empty() && !help.ends_with('.') {
            help.push('.');
        }
        help.push_str(&format!(" One of: {}.", values.join(", ")));
    }
    cell(&help)
}

fn cell(text: &str) -> String {
    text.trim()
        .replace('|', "\\|")
        .replace("\n\n", "<br>")
        .replace('\n', " ")
}

#[test]
fn the_admin_api_reference_is_up_to_date() {
    // The document `/api/openapi.json` serves.
    let document =
        serde_json::to_value(paastis::admin::api::ApiDoc::openapi()).expect("OpenAPI as JSON");
    let page = admin_api_page(&document);
    for needle in [
        "## `GET /health`",
        "## `POST /api/v1/spaces`",
        "### Responses",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the admin API reference"
        );
    }
    check_page("docs/src/reference/admin-api.md", &page);
}

/// `#/components/schemas/Name` as `Name`, or the schema's type.
fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(items) = schema.get("items") {
        return format!("list of {}", schema_name(items));
    }
    if let Some(any) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        return any.iter().map(schema_name).collect::<Vec<_>>().join(" or ");
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        return all
            .iter()
            .map(schema_name)
            .collect::<Vec<_>>()
            .join(" and ");
    }
    match schema.get("type") {
        Some(Value::String(kind)) => {
            let mut name = kind.clone();
            if let Some(format) = schema.get("format").and_then(Value::as_str) {
                name = format!("{name} ({format})");
            }
            if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                name = format!("{name}: {}", values.join(", "));
            }
            name
        }
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    }
}

/// docs/src/reference/admin-api.md from the OpenAPI document.
fn admin_api_page(document: &Value) -> String {
    let mut page = String::from(
        "# Admin API reference\n\n\
         <!-- Generated from the OpenAPI document the admin API serves \
         (`/api/openapi.json`, built in `src/admin/api.rs`). Do not edit: run `BLESS=1 \
         cargo test --test book`. -->\n\n",
    );
    if let Some(description) = document["info"]["description"].as_str() {
        page.push_str(&format!("{description}\n\n"));
    }
    page.push_str(
        "The API listens on `admin.listen` (default `127.0.0.1:3001`). Every call carries \
         `Authorization: Bearer <token>` (`admin.token`, or a space's token) unless marked \
         *no auth*. The running engine serves this document at `/api/openapi.json`.\n",
    );
    let methods = ["get", "post", "put", "patch", "delete"];
    let empty = serde_json::Map::new();
    let paths = document["paths"].as_object().unwrap_or(&empty);
    for (path, item) in paths {
        for method in methods {
            let Some(operation) = item.get(method) else {
                continue;
            };
            page.push_str(&format!("\n## `{} {path}`\n\n", method.to_uppercase()));
            let summary = operation["summary"].as_str().unwrap_or("");
            let description = operation["description"].as_str().unwrap_or("");
            if !summary.is_empty() {
                page.push_str(&format!("{summary}\n\n"));
            }
            if !description.is_empty() && description != summary {
                page.push_str(&format!("{description}\n\n"));
            }
            let open = operation["security"].as_array().is_some_and(|list| {
                list.iter()
                    .all(|s| s.as_object().is_some_and(|o| o.is_empty()))
            });
            if open {
                page.push_str("*No auth.*\n\n");
            }
            let mut parameters: Vec<&Value> = Vec::new();
            for list in [&item["parameters"], &operation["parameters"]] {
                if let Some(list) = list.as_array() {
                    parameters.extend(list.iter());
                }
            }
            if !parameters.is_empty() {
                page.push_str("### Parameters\n\n| Name | In | Required | Type | Description |\n|---|---|---|---|---|\n");
                for parameter in parameters {
                    page.push_str(&format!(
                        "| `{}` | {} | {} | {} | {} |\n",
                        parameter["name"].as_str().unwrap_or(""),
                        parameter["in"].as_str().unwrap_or(""),
                        if parameter["required"].as_bool() == Some(true) {
                            "yes"
                        } else {
                            "no"
                        },
                        cell(&schema_name(&parameter["schema"])),
                        cell(parameter["description"].as_str().unwrap_or("")),
                    ));
                }
                page.push('\n');
            }
            if let Some(body) = operation.get("requestBody") {
                page.push_str("### Request body\n\n");
                if let Some(content) = body["content"].as_object() {
                    for (media, content) in content {
                        page.push_str(&format!(
                            "`{media}`: {}\n\n",
                            schema_name(&content["schema"])
                        ));
                    }
                }
            }
            page.push_str("### Responses\n\n| Status | Description | Body |\n|---|---|---|\n");
            if let Some(responses) = operation["responses"].as_object() {
                for (status, response) in responses {
                    let body = response["content"]
                        .as_object()
                        .map(|content| {
                            content
                                .iter()
                                .map(|(media, c)| {
                                    format!("`{media}`: {}", schema_name(&c["schema"]))
                                })
                                .collect::<Vec<_>>()
                                .join("<br>")
                        })
                        .unwrap_or_default();
                    page.push_str(&format!(
                        "| {status} | {} | {} |\n",
                        cell(response["description"].as_str().unwrap_or("")),
                        cell(&body)
                    ));
                }
            }
        }
    }
    page.push_str("\n## Schemas\n");
    let schemas = document["components"]["schemas"]
        .as_object()
        .unwrap_or(&empty);
    for (name, schema) in schemas {
        page.push_str(&format!("\n### {name}\n\n"));
        if let Some(description) = schema["description"].as_str() {
            page.push_str(&format!("{}\n\n", description.trim()));
        }
        let Some(properties) = schema["properties"].as_object() else {
            page.push_str(&format!("{}\n", schema_name(schema)));
            continue;
        };
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        page.push_str("| Field | Type | Required | Description |\n|---|---|---|---|\n");
        for (field, property) in properties {
            page.push_str(&format!(
                "| `{field}` | {} | {} | {} |\n",
                cell(&schema_name(property)),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                cell(property["description"].as_str().unwrap_or("")),
            ));
        }
    }
    page
}
