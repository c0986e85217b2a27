//! The deploy recipes agree with the code, offline: `scalingo.json` and `app.json` parse and
//! keep to their platform's manifest schema, the Procfile's `web:` line starts the binary the
//! Rust buildpack leaves in `target/release`, Clever Cloud's `CC_RUST_BIN` names it, and the
//! real binary, run as `paastis check` with exactly the environment a recipe declares (plus
//! what the platform sets: `PORT`, its own-app variable, its add-on URLs), accepts every
//! variable: it fails only on the services it cannot reach, never on a configuration error.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::TempDir;
use support::fakes::clever::{CleverCredentials, FakeClever};
use support::fakes::heroku::FakeHeroku;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;

/// Variables a recipe may set that the platform's build reads, not the engine.
const BUILD_VARIABLES: &[&str] = &[
    // Scalingo: the buildpack to use (https://doc.scalingo.com/platform/deployment/buildpacks/custom).
    "BUILDPACK_URL",
    // Clever Cloud's Rust runtime: the Cargo binary to run, the toolchain, the build cache
    // (https://www.clever.cloud/developers/doc/applications/rust/).
    "CC_RUST_BIN",
    "CC_RUSTUP_CHANNEL",
    "CC_CACHE_DEPENDENCIES",
];

/// The community Rust buildpack the recipes use: `cargo build --release`, then every
/// executable copied to `target/release/` of the app (its `bin/compile`).
const RUST_BUILDPACK: &str = "https://github.com/emk/heroku-buildpack-rust";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// The `name` of Cargo.toml's `[[bin]]`: the executable `cargo build --release` makes.
fn binary_name() -> String {
    let cargo = read("Cargo.toml");
    let bin = cargo
        .split("[[bin]]")
        .nth(1)
        .expect("Cargo.toml has a [[bin]]");
    let name = bin
        .lines()
        .find_map(|line| line.trim().strip_prefix("name = "))
        .expect("[[bin]] has a name");
    name.trim_matches('"').to_owned()
}

/// The features of one dependency line of Cargo.toml (`redis = { ..., features = [...] }`).
fn features_of(dependency: &str) -> Vec<String> {
    let cargo = read("Cargo.toml");
    let line = cargo
        .lines()
        .find(|line| line.starts_with(&format!("{dependency} = ")))
        .unwrap_or_else(|| panic!("Cargo.toml depends on {dependency}"));
    let Some(list) = line.split("features = [").nth(1) else {
        return Vec::new();
    };
    list.split(']')
        .next()
        .unwrap_or("")
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

/// Splits one shell command line into words (single and double quotes, no escapes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in `{line}`");
    if in_word {
        words.push(word);
    }
    words
}

/// The variables a page's CLI steps (its fenced code blocks) set, in order:
/// `clever env set NAME VALUE`, `scalingo --app X env-set NAME=VALUE`,
/// `heroku config:set NAME=VALUE [-a X]`.
fn page_variables(page: &str) -> Vec<(String, String)> {
    let text = read(page);
    let mut vars = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let line = line.trim();
        let command = ["clever env set ", "scalingo --app ", "heroku config:set "]
            .iter()
            .any(|start| line.starts_with(start));
        if !in_code || !command {
            continue;
        }
        let words = shell_words(line);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["clever", "env", "set", name, value, ..] => {
                vars.push(((*name).to_owned(), (*value).to_owned()));
            }
            ["scalingo", "--app", _, "env-set", assignments @ ..]
            | ["heroku", "config:set", assignments @ ..] => {
                for assignment in assignments {
                    if let Some((name, value)) = assignment.split_once('=') {
                        vars.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    vars
}

/// The value a recipe gives a variable.
#[derive(Debug, Clone, PartialEq)]
enum Given {
    /// Written in the recipe.
    Fixed(String),
    /// Made by the platform from a template of its own (Scalingo's `%APP%`), filled in here
    /// as the platform does.
    Derived(String),
    /// Generated (a secret) or to be filled in by whoever deploys.
    Blank,
}

impl Given {
    fn fixed(&self) -> Option<&str> {
        match self {
            Given::Fixed(value) => Some(value),
            _ => None,
        }
    }
}

/// What a recipe declares: each variable with its default.
struct Recipe {
    platform: &'static str,
    vars: BTreeMap<String, Given>,
}

fn scalingo_recipe() -> Recipe {
    let manifest = json("scalingo.json");
    let env = manifest["env"].as_object().expect("scalingo.json env");
    let vars = env
        .iter()
        .map(|(name, spec)| {
            let value = match (spec["generator"].as_str(), spec["value"].as_str()) {
                (Some("template"), _) => Given::Derived(
                    spec["template"]
                        .as_str()
                        .unwrap_or_default()
                        .replace("%APP%", "paastis-test"),
                ),
                (None, Some(value)) if !value.is_empty() => Given::Fixed(value.to_owned()),
                _ => Given::Blank,
            };
            (name.clone(), value)
        })
        .collect();
    Recipe {
        platform: "scalingo",
        vars,
    }
}

fn heroku_recipe() -> Recipe {
    let manifest = json("app.json");
    let env = manifest["env"].as_object().expect("app.json env");
    let vars = env
        .iter()
        .map(|(name, spec)| {
            let value = match spec["value"].as_str() {
                Some(value) if !value.is_empty() => Given::Fixed(value.to_owned()),
                _ => Given::Blank,
            };
            (name.clone(), value)
        })
        .collect();
    Recipe {
        platform: "heroku",
        vars,
    }
}

fn clever_recipe() -> Recipe {
    let vars = page_variables("docs/src/clever-cloud.md")
        .into_iter()
        .map(|(name, value)| {
            let placeholder = value.contains("$(") || value.contains('<');
            let value = if placeholder {
                Given::Blank
            } else {
                Given::Fixed(value)
            };
            (name, value)
        })
        .collect();
    Recipe {
        platform: "clever-cloud",
        vars,
    }
}

/// The secrets the filled-in environments hold: none may appear in any output.
const ADMIN_TOKEN: &str = "adm-3f9c2e7d5a1b4c8e9f0a";
const PROVIDER_TOKEN: &str = "prv-7e1d0c4b9a8f2e3d6c5b";
const ADDON_PASSWORD: &str = "pw-5b2e8c1f7a4d9e0c3b6a";

impl Recipe {
    /// The recipe's variables with every blank filled in as someone deploying would.
    fn filled(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Given::Fixed(value) | Given::Derived(value) => value.clone(),
                    Given::Blank if name == "PAASTIS_ADMIN_TOKEN" => ADMIN_TOKEN.to_owned(),
                    Given::Blank if name.ends_with("TOKEN") => PROVIDER_TOKEN.to_owned(),
                    Given::Blank if name == "PAASTIS_ADMIN__HOST" => {
                        "paastis.example.test".to_owned()
                    }
                    Given::Blank if name == "PAASTIS_DISCOVERY__SELF_APP" => {
                        "paastis-test".to_owned()
                    }
                    Given::Blank => panic!("{}: no value to fill {name} with", self.platform),
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// What the platform itself sets in a web container: its port and its own-app variables.
    /// (`check` binds no listener: the port only has to be one.)
    fn platform_variables(&self) -> Vec<(&'static str, String)> {
        let port = closed_port().to_string();
        match self.platform {
            // https://doc.scalingo.com/platform/app/environment
            "scalingo" => vec![
                ("PORT", port),
                ("APP", "paastis-test".to_owned()),
                ("CONTAINER", "web-1".to_owned()),
            ],
            // https://devcenter.heroku.com/articles/dynos#local-environment-variables
            "heroku" => vec![("PORT", port), ("DYNO", "web.1".to_owned())],
            // https://www.clever.cloud/developers/doc/reference/reference-environment-variables/
            "clever-cloud" => vec![
                ("PORT", "8080".to_owned()),
                (
                    "APP_ID",
                    "app_649a93d1-6677-44bc-aca7-6f46107d6e02".to_owned(),
                ),
                (
                    "INSTANCE_ID",
                    "518c8d8f-e304-4310-81e0-9c4237d55645".to_owned(),
                ),
                ("INSTANCE_NUMBER", "0".to_owned()),
            ],
            other => panic!("no platform {other}"),
        }
    }

    /// The add-on URLs the platform injects for the recipe's add-ons, pointing at `port`.
    fn addon_variables(&self, port: u16) -> Vec<(&'static str, String)> {
        let pg = format!("postgresql://paastis:{ADDON_PASSWORD}@127.0.0.1:{port}/paastis");
        let redis = format!("redis://:{ADDON_PASSWORD}@127.0.0.1:{port}");
        match self.platform {
            // https://doc.scalingo.com/databases/postgresql/shared-resources/getting-started/connecting
            // https://doc.scalingo.com/databases/redis/start
            "scalingo" => vec![
                ("SCALINGO_POSTGRESQL_URL", format!("{pg}?sslmode=prefer")),
                ("DATABASE_URL", format!("{pg}?sslmode=prefer")),
                ("SCALINGO_REDIS_URL", redis.clone()),
                ("REDIS_URL", redis),
            ],
            // What app.json provisions: Heroku Postgres sets DATABASE_URL (TLS offered, no
            // `sslmode`), the Key-Value Store a `rediss://` REDIS_URL.
            // https://devcenter.heroku.com/articles/connecting-heroku-postgres
            // https://devcenter.heroku.com/articles/heroku-redis
            "heroku" => {
                let provisioned = heroku_addons();
                let mut vars = Vec::new();
                if provisioned.iter().any(|a| a == "heroku-postgresql") {
                    vars.push(("DATABASE_URL", pg.replace("postgresql://", "postgres://")));
                }
                if provisioned.iter().any(|a| a == "heroku-redis") {
                    vars.push(("REDIS_URL", redis.replace("redis://", "rediss://")));
                }
                vars
            }
            // https://www.clever.cloud/developers/doc/reference/reference-environment-variables/
            "clever-cloud" => vec![("POSTGRESQL_ADDON_URI", pg), ("REDIS_URL", redis)],
            other => panic!("no platform {other}"),
        }
    }

    /// Points the recipe's provider at `url` (a fake platform, or nothing).
    fn provider_at(&self, url: &str) -> Vec<(&'static str, String)> {
        let mut vars = vec![("PAASTIS_PROVIDERS__0__API_URL", url.to_owned())];
        if self.platform == "scalingo" {
            vars.push(("PAASTIS_PROVIDERS__0__AUTH_URL", url.to_owned()));
        }
        vars
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

struct Outcome {
    code: Option<i32>,
    output: String,
}

/// `paastis check` in an empty directory with nothing but `vars` (and `PATH`, `HOME`), as
/// the platform starts the binary: no configuration file.
async fn check(dir: &Path, vars: &[(String, String)]) -> Outcome {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paastis"));
    command
        .arg("check")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("paastis check ends within 60 s")
        .expect("run paastis check");
    Outcome {
        code: output.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn with(
    base: &[(String, String)],
    extra: impl IntoIterator<Item = (&'static str, String)>,
) -> Vec<(String, String)> {
    let mut vars = base.to_vec();
    vars.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
    vars
}

/// No configuration error, no variable the engine ignored, no secret in the output.
fn assert_accepted(what: &str, outcome: &Outcome) {
    assert_ne!(
        outcome.code,
        Some(2),
        "{what}: the engine refused the recipe's configuration:\n{}",
        outcome.output
    );
    for refusal in ["sets no configuration key", "unknown key", "is not used"] {
        assert!(
            !outcome.output.contains(refusal),
            "{what}: `{refusal}` in the output:\n{}",
            outcome.output
        );
    }
    for secret in [ADMIN_TOKEN, PROVIDER_TOKEN, ADDON_PASSWORD] {
        assert!(
            !outcome.output.contains(secret),
            "{what}: a secret reached the output:\n{}",
            outcome.output
        );
    }
}

#[test]
fn the_manifests_keep_to_their_platforms_schemas() {
    // https://developers.scalingo.com/scalingo-json-schema/
    let scalingo = json("scalingo.json");
    assert!(scalingo["name"].is_string());
    // The manifest's `repository` wins over the button's `source`: a fork would deploy it.
    assert!(
        scalingo.get("repository").is_none(),
        "scalingo.json names no repository"
    );
    for (name, spec) in scalingo["env"].as_object().expect("env") {
        let keys: Vec<&str> = spec
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for key in &keys {
            assert!(
                ["description", "value", "generator", "template", "required"].contains(key),
                "scalingo.json {name}: `{key}` is not a field of an env entry"
            );
        }
        match spec["generator"].as_str() {
            Some("secret") | Some("url") => {}
            Some("template") => assert!(spec["template"].is_string(), "{name}: template"),
            Some(other) => panic!("scalingo.json {name}: no generator `{other}`"),
            None => assert!(spec["value"].is_string(), "{name}: value or generator"),
        }
    }
    for addon in scalingo["addons"].as_array().expect("addons") {
        let plan = addon["plan"].as_str().expect("an add-on has a plan");
        assert!(plan.contains(':'), "plan `{plan}` is addon-name:plan-id");
    }
    for (kind, spec) in scalingo["formation"].as_object().expect("formation") {
        assert!(spec["amount"].is_u64(), "{kind}: amount");
        assert!(
            ["S", "M", "L", "XL", "2XL"].contains(&spec["size"].as_str().unwrap_or("")),
            "{kind}: size"
        );
    }

    // https://devcenter.heroku.com/articles/app-json-schema
    let heroku = json("app.json");
    for (name, spec) in heroku["env"].as_object().expect("env") {
        for key in spec.as_object().expect("object").keys() {
            assert!(
                ["description", "value", "required", "generator"].contains(&key.as_str()),
                "app.json {name}: `{key}` is not a field of an env entry"
            );
        }
        if let Some(generator) = spec.get("generator") {
            assert_eq!(generator, "secret", "app.json {name}: the only generator");
        }
    }
    for (kind, spec) in heroku["formation"].as_object().expect("formation") {
        assert!(spec["quantity"].is_u64(), "{kind}: quantity");
        // An eco dyno sleeps after 30 minutes without traffic: the proxy must not.
        assert_ne!(spec["size"], "eco", "{kind}: a dyno that never sleeps");
    }

    // Every variable is the engine's (PAASTIS_*) or the build's.
    for recipe in [scalingo_recipe(), heroku_recipe(), clever_recipe()] {
        assert!(!recipe.vars.is_empty(), "{}: no variable", recipe.platform);
        for name in recipe.vars.keys() {
            assert!(
                name.starts_with("PAASTIS_") || BUILD_VARIABLES.contains(&name.as_str()),
                "{}: {name} is neither the engine's nor the build's",
                recipe.platform
            );
        }
        // The dashboard is reachable through the one routed port, behind a token.
        for required in [
            "PAASTIS_ADMIN_TOKEN",
            "PAASTIS_ADMIN__HOST",
            "PAASTIS_ADMIN__LISTEN",
            "PAASTIS_PROVIDERS__0__TYPE",
        ] {
            assert!(
                recipe.vars.contains_key(required),
                "{}: {required} is not set",
                recipe.platform
            );
        }
        assert_eq!(
            recipe.vars["PAASTIS_ADMIN__LISTEN"].fixed(),
            Some("off"),
            "{}",
            recipe.platform
        );
        assert_eq!(
            recipe.vars["PAASTIS_PROVIDERS__0__TYPE"].fixed(),
            Some(recipe.platform),
            "{}: it manages its own platform's apps",
            recipe.platform
        );
    }
}

#[test]
fn the_pages_cli_steps_set_what_the_manifests_declare() {
    for (page, recipe) in [
        ("docs/src/scalingo.md", scalingo_recipe()),
        ("docs/src/heroku.md", heroku_recipe()),
    ] {
        let steps = page_variables(page);
        assert!(!steps.is_empty(), "{page}: no CLI step sets a variable");
        for (name, _) in &steps {
            assert!(
                recipe.vars.contains_key(name),
                "{page} sets {name}, which the {} manifest does not declare",
                recipe.platform
            );
        }
        for (name, value) in &recipe.vars {
            let set = steps.iter().find(|(n, _)| n == name);
            assert!(set.is_some(), "{page} never sets {name}");
            if let (Some(value), Some((_, step))) = (value.fixed(), set) {
                assert_eq!(step, value, "{page}: {name}");
            }
        }
    }
}

#[test]
fn the_buildpack_and_the_procfile_run_the_cargo_binary() {
    let binary = binary_name();
    // Both manifests build with the same buildpack, which leaves target/release/<binary>.
    let scalingo = json("scalingo.json");
    assert_eq!(scalingo["env"]["BUILDPACK_URL"]["value"], RUST_BUILDPACK);
    let heroku = json("app.json");
    assert_eq!(heroku["buildpacks"][0]["url"], RUST_BUILDPACK);

    let procfile = read("Procfile");
    let web = procfile
        .lines()
        .find_map(|line| line.strip_prefix("web:"))
        .expect("the Procfile has a web: line");
    let words = shell_words(web);
    assert_eq!(
        words.first().map(String::as_str),
        Some(format!("./target/release/{binary}").as_str()),
        "the web process starts the binary the buildpack built"
    );
    assert!(
        words[1..].is_empty() || words[1..] == ["serve"],
        "the web process serves: {web}"
    );

    // Clever Cloud's Rust runtime runs CC_RUST_BIN after `cargo build --release --locked`.
    let clever = clever_recipe();
    assert_eq!(
        clever.vars.get("CC_RUST_BIN").and_then(Given::fixed),
        Some(binary.as_str()),
        "CC_RUST_BIN names the Cargo binary"
    );
    assert!(
        repo().join("Cargo.lock").is_file(),
        "Clever Cloud builds with --locked: Cargo.lock is committed"
    );

    // The container stack builds the root Dockerfile.
    let heroku_yml = read("heroku.yml");
    let dockerfile = heroku_yml
        .lines()
        .find_map(|line| line.trim().strip_prefix("web:"))
        .expect("heroku.yml builds a web image")
        .trim();
    assert!(
        repo().join(dockerfile).is_file(),
        "heroku.yml builds {dockerfile}, which is not in the repository"
    );
}

/// The add-ons app.json provisions, by name (`heroku-postgresql`, `heroku-redis`).
fn heroku_addons() -> Vec<String> {
    json("app.json")["addons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|addon| {
                    addon
                        .as_str()
                        .or_else(|| addon["plan"].as_str())
                        .map(|plan| plan.split(':').next().unwrap_or(plan).to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Heroku Postgres takes only TLS connections and the Heroku Key-Value Store only TLS, with
/// a self-signed certificate: app.json provisions them exactly when the database and Redis
/// clients are built with TLS, and with the Key-Value Store it turns the registry's
/// certificate check off (the engine refuses that key without a `rediss://` URL, so it
/// comes only with the add-on). Fails as soon as one side changes without the other.
#[test]
fn heroku_recipe_provisions_only_what_the_build_can_use() {
    let addons = heroku_addons();
    let sqlx_tls = features_of("sqlx").iter().any(|f| f.starts_with("tls-"));
    let redis_tls = features_of("redis").iter().any(|f| f.contains("tls"));
    let redis_insecure = features_of("redis")
        .iter()
        .any(|f| f == "tls-rustls-insecure");
    let postgres = addons.iter().any(|a| a == "heroku-postgresql");
    let redis = addons.iter().any(|a| a == "heroku-redis");
    assert_eq!(
        postgres, sqlx_tls,
        "heroku-postgresql in app.json ({addons:?}) iff sqlx has a TLS feature ({sqlx_tls})"
    );
    assert_eq!(
        redis, redis_tls,
        "heroku-redis in app.json ({addons:?}) iff redis has a TLS feature ({redis_tls})"
    );
    // A self-signed certificate needs the client's "insecure" TLS and the key that asks for it.
    let recipe = heroku_recipe();
    let verify = recipe.vars.get("PAASTIS_REGISTRY__TLS_VERIFY");
    if redis {
        assert!(
            redis_insecure,
            "heroku-redis needs redis's tls-rustls-insecure feature"
        );
        assert_eq!(
            verify.and_then(Given::fixed),
            Some("false"),
            "heroku-redis in app.json: PAASTIS_REGISTRY__TLS_VERIFY=false beside it"
        );
    } else {
        assert!(
            verify.is_none(),
            "PAASTIS_REGISTRY__TLS_VERIFY without heroku-redis: the engine refuses it"
        );
    }
    // Heroku's plan names (Provisioning Heroku Postgres; Heroku Key-Value Store).
    let plans: Vec<String> = json("app.json")["addons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|addon| addon["plan"].as_str().map(str::to_owned))
        .collect();
    for plan in &plans {
        assert!(
            ["heroku-postgresql:essential-0", "heroku-redis:mini"].contains(&plan.as_str()),
            "app.json: `{plan}` is not a plan this recipe was checked against"
        );
    }
}

/// Every recipe's environment, add-ons and provider pointed at closed ports: the engine
/// takes every variable and stops only on what it cannot reach.
#[tokio::test]
async fn each_recipe_environment_fails_only_on_unreachable_services() {
    for recipe in [scalingo_recipe(), heroku_recipe(), clever_recipe()] {
        let platform = recipe.platform;
        let dir = TempDir::new(&format!("deploy-{platform}"));
        let base = with(&recipe.filled(), recipe.platform_variables());
        let nowhere = format!("http://127.0.0.1:{}", closed_port());
        let base = with(&base, recipe.provider_at(&nowhere));

        let addons = recipe.addon_variables(closed_port());
        let has_database = addons
            .iter()
            .any(|(name, _)| name.contains("POSTGRESQL") || *name == "DATABASE_URL");
        let vars = with(&base, addons.clone());
        let outcome = check(&dir.0, &vars).await;
        assert_accepted(platform, &outcome);
        assert_eq!(outcome.code, Some(1), "{platform}:\n{}", outcome.output);
        if has_database {
            // The add-on's URL is taken (scheme and query included): only the server is missing.
            assert!(
                outcome
                    .output
                    .contains("cannot reach PostgreSQL at 127.0.0.1:"),
                "{platform}: the database add-on is used:\n{}",
                outcome.output
            );
        } else {
            assert!(
                outcome.output.contains("providers could not be reached"),
                "{platform}: only the provider is missing:\n{}",
                outcome.output
            );
        }

        // Redis alone (no database add-on): the registry is the add-on's.
        let redis: Vec<(&'static str, String)> = addons
            .into_iter()
            .filter(|(name, _)| name.contains("REDIS"))
            .collect();
        if !redis.is_empty() {
            let outcome = check(&dir.0, &with(&base, redis)).await;
            assert_accepted(platform, &outcome);
            assert_eq!(outcome.code, Some(1), "{platform}:\n{}", outcome.output);
            assert!(
                outcome.output.to_lowercase().contains("redis"),
                "{platform}: the Redis add-on is the registry:\n{}",
                outcome.output
            );
        }
    }
}

/// Every recipe's environment against a fake of its platform: the configuration is complete
/// (`configuration OK`) and the platform's apps are listed. No add-on, except where the
/// recipe's own variables go with one: Heroku's `PAASTIS_REGISTRY__TLS_VERIFY=false` with the
/// Key-Value Store's `rediss://` URL, here a TLS-only Redis whose certificate no system
/// trusts (a self-signed one, as Heroku's), which the registry must then reach.
#[tokio::test]
async fn each_recipe_environment_checks_ok_against_its_platform() {
    for recipe in [scalingo_recipe(), heroku_recipe(), clever_recipe()] {
        let platform = recipe.platform;
        let tls_redis = if recipe.vars.contains_key("PAASTIS_REGISTRY__TLS_VERIFY") {
            Some(RedisServer::start_tls().await)
        } else {
            None
        };
        let dir = TempDir::new(&format!("deploy-ok-{platform}"));
        let (url, _app) = match platform {
            "scalingo" => {
                let fake = FakeScalingo::start(PROVIDER_TOKEN).await;
                let app = fake.add_app("review-pr1", &[("web", 1)], false).await;
                (fake.url.clone(), (Box::new(fake) as Box<dyn Send>, app))
            }
            "heroku" => {
                let fake = FakeHeroku::start(PROVIDER_TOKEN).await;
                let app = fake.add_app("review-pr1", &[("web", 1)], false).await;
                (fake.url.clone(), (Box::new(fake) as Box<dyn Send>, app))
            }
            _ => {
                let fake = FakeClever::start(CleverCredentials {
                    consumer_key: "unused-key".to_owned(),
                    consumer_secret: "unused-secret".to_owned(),
                    token: "unused-token".to_owned(),
                    secret: "unused-token-secret".to_owned(),
                    api_token: PROVIDER_TOKEN.to_owned(),
                })
                .await;
                let (_, app) = fake.add_app("review-pr1", None, 1, false).await;
                (fake.url.clone(), (Box::new(fake) as Box<dyn Send>, app))
            }
        };
        let vars = with(&recipe.filled(), recipe.platform_variables());
        let mut vars = with(&vars, recipe.provider_at(&url));
        if let Some(redis) = &tls_redis {
            vars.push(("REDIS_URL".to_owned(), redis.url()));
        }
        let outcome = check(&dir.0, &vars).await;
        assert_accepted(platform, &outcome);
        assert_eq!(outcome.code, Some(0), "{platform}:\n{}", outcome.output);
        if tls_redis.is_some() {
            assert!(
                outcome.output.contains("registry: redis: connected"),
                "{platform}: the registry reached the self-signed TLS Redis:\n{}",
                outcome.output
            );
        }
        assert!(
            outcome.output.contains("configuration OK"),
            "{platform}:\n{}",
            outcome.output
        );
        assert!(
            outcome.output.contains("review-pr1"),
            "{platform}: the platform's app is listed:\n{}",
            outcome.output
        );
    }
}
