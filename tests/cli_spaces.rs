//! `paastis spaces`, black-box: the real binary against the whole engine in hosted mode,
//! with a fake Heroku account. A space created from a YAML file serves at once; list, show,
//! tokens issued and revoked (seen working, then refused, by `paastis apps`), deletion;
//! an invalid file prints every problem with its path. No output ever holds the admin token
//! or a provider's credential.

mod support;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::fakes::heroku::FakeHeroku;
use support::{Outcome, TempDir, TestClient, TestEngine, paastis};
use tokio::io::AsyncWriteExt;

const ADMIN: &str = "admin-token-cli-spaces-0123";
const HEROKU_TOKEN: &str = "heroku-secret-cli-9d2c4e7a10";

/// A master key (32 bytes, base64, not all the same).
fn master_key() -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(3))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Hosted mode (or not), an in-memory database.
async fn engine(hosted: bool) -> TestEngine {
    let hosted = if hosted {
        "hosted: {custom_api_urls: true, private_upstreams: true}\n"
    } else {
        ""
    };
    let yaml = format!("admin: {{token: {ADMIN}}}\ndatabase: {{url: 'sqlite::memory:'}}\n{hosted}");
    let env = HashMap::from([("PAASTIS_MASTER_KEY".to_owned(), master_key())]);
    TestEngine::start_with_env(&yaml, &env).await
}

/// Every run of a test, to check at the end that none printed a secret.
#[derive(Default)]
struct Runs(Vec<(Vec<String>, Outcome)>);

impl Runs {
    /// Runs `paastis <args> --api-url <engine> --token <token>` with `stdin` (20 s at most).
    async fn run(
        &mut self,
        engine: &TestEngine,
        token: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> &Outcome {
        let url = format!("http://{}", engine.admin_addr);
        let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        all.extend([
            "--api-url".to_owned(),
            url,
            "--token".to_owned(),
            token.to_owned(),
        ]);
        let mut child = paastis()
            .args(&all)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paastis");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("paastis {args:?} did not finish within 20 s"))
            .expect("run paastis");
        let outcome = Outcome::from(output);
        self.0.push((all, outcome));
        &self.0.last().expect("just pushed").1
    }

    /// [`Runs::run`] with the admin token, no stdin.
    async fn admin(&mut self, engine: &TestEngine, args: &[&str]) -> &Outcome {
        self.run(engine, ADMIN, args, None).await
    }

    /// [`Runs::admin`], and the run must exit with `code`.
    async fn expect(&mut self, engine: &TestEngine, args: &[&str], code: i32) -> &Outcome {
        let outcome = self.admin(engine, args).await;
        assert_eq!(
            outcome.code,
            Some(code),
            "paastis {args:?}\nstdout: {}\nstderr: {}",
            outcome.stdout,
            outcome.stderr
        );
        outcome
    }

    /// No run printed the admin token or the provider's credential.
    fn assert_no_secret(&self) {
        assert!(!self.0.is_empty());
        for (args, outcome) in &self.0 {
            for secret in [ADMIN, HEROKU_TOKEN] {
                assert!(
                    !outcome.stdout.contains(secret) && !outcome.stderr.contains(secret),
                    "a secret in the output of {:?}",
                    &args[..args.len() - 4]
                );
            }
        }
    }
}

/// The `acme` space document, as a user writes it.
fn acme_yaml(fake: &FakeHeroku) -> String {
    format!(
        "# the acme tenant\nid: acme\ndomains: [acme.test]\nplan: free\ndefaults:\n  max_idle: 30m\n\
         providers:\n  - id: hk\n    type: heroku\n    token: {HEROKU_TOKEN}\n    api_url: {}\n",
        fake.url
    )
}

/// The ids of a `{"spaces": [...]}` document.
fn ids(list: &Value) -> Vec<String> {
    list["spaces"]
        .as_array()
        .expect("spaces array")
        .iter()
        .filter_map(|space| space["id"].as_str().map(str::to_owned))
        .collect()
}

/// The app names of an `{"apps": [...]}` document.
fn app_names(list: &Value) -> Vec<String> {
    list["apps"]
        .as_array()
        .expect("apps array")
        .iter()
        .filter_map(|app| app["name"].as_str().map(str::to_owned))
        .collect()
}

/// The whitespace-separated cells of the table line starting with `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no `{first}` row in:\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_are_created_listed_shown_given_tokens_and_deleted() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let engine = engine(true).await;
    let proxy = TestClient::new(engine.addr);
    let dir = TempDir::new("cli-spaces");
    let file = dir.path("acme.yml");
    std::fs::write(&file, acme_yaml(&fake)).expect("write the space file");
    let file = file.to_string_lossy().into_owned();
    let mut runs = Runs::default();
    assert_eq!(proxy.get("shop.acme.test", "/").await.status, 404);

    // Created from YAML: its id and first token on stdout, said to be shown once.
    let created = runs
        .expect(&engine, &["spaces", "create", "--file", &file], 0)
        .await;
    assert!(
        created.stdout.starts_with("space acme created\n"),
        "{}",
        created.stdout
    );
    assert!(created.stdout.contains("shown once"), "{}", created.stdout);
    let first_id = created.line("token id");
    let first = created.line("token");
    assert!(first_id.starts_with("tok_"), "{first_id}");
    assert!(first.starts_with("pst_"), "{first}");
    let answer = proxy.get("shop.acme.test", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");

    // A second one from stdin, as JSON, printed as the API's JSON.
    let initech = json!({"id": "initech", "domains": ["initech.test"],
        "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]});
    let outcome = runs
        .run(
            &engine,
            ADMIN,
            &["spaces", "create", "--file", "-", "--json"],
            Some(&initech.to_string()),
        )
        .await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let answer = outcome.json();
    assert_eq!(answer["space"]["id"], "initech");
    assert!(
        answer["token"]["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("pst_"))
    );
    assert_eq!(proxy.get("shop.initech.test", "/").await.status, 200);

    // Listed: a table, and the API's JSON.
    let list = runs.expect(&engine, &["spaces", "list"], 0).await;
    let header: Vec<&str> = list
        .stdout
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "ID",
            "ORIGIN",
            "DOMAINS",
            "PLAN",
            "PROVIDERS",
            "APPS",
            "TOKENS"
        ]
    );
    assert_eq!(
        row(&list.stdout, "acme"),
        ["acme", "api", "acme.test", "free", "hk", "1", "1"]
    );
    assert_eq!(row(&list.stdout, "initech")[1], "api");
    assert_eq!(row(&list.stdout, "default")[1], "config");
    let list = runs
        .expect(&engine, &["spaces", "list", "--json"], 0)
        .await
        .json();
    assert_eq!(list["hosted"], true);
    let listed = ids(&list);
    for id in ["default", "acme", "initech"] {
        assert!(listed.iter().any(|listed| listed == id), "{id}: {list}");
    }

    // Shown: which secret is set, never its value; the token ids; the document.
    let show = runs.expect(&engine, &["spaces", "show", "acme"], 0).await;
    assert_eq!(row(&show.stdout, "hk"), ["hk", "heroku", "token"]);
    assert!(show.stdout.contains(&first_id), "{}", show.stdout);
    assert!(!show.stdout.contains(&first), "{}", show.stdout);
    assert!(
        show.stdout.contains("\"max_idle\": \"30m\""),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("plan:") && l.ends_with("free"))
    );
    let shown = runs
        .expect(&engine, &["spaces", "show", "acme", "--json"], 0)
        .await
        .json();
    assert_eq!(
        shown["document"]["providers"][0]["secrets"],
        json!(["token"])
    );

    // Its token sees its own space; changing spaces is the admin's.
    let apps = runs
        .run(&engine, &first, &["apps", "list", "--json"], None)
        .await;
    assert_eq!(apps.code, Some(0), "{}", apps.stderr);
    assert_eq!(app_names(&apps.json()), ["shop"]);
    let refused = runs
        .run(&engine, &first, &["spaces", "token", "acme"], None)
        .await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("admin_only"), "{}", refused.stderr);

    // A second token works; the first, revoked, is refused (exit 4).
    let issued = runs.expect(&engine, &["spaces", "token", "acme"], 0).await;
    assert!(issued.stdout.contains("shown once"), "{}", issued.stdout);
    let second = issued.line("token");
    let second_id = issued.line("token id");
    assert!(second.starts_with("pst_") && second != first, "{second}");
    let apps = runs
        .run(&engine, &second, &["apps", "list", "--json"], None)
        .await;
    assert_eq!(apps.code, Some(0), "{}", apps.stderr);
    assert_eq!(app_names(&apps.json()), ["shop"]);
    let revoked = runs
        .expect(
            &engine,
            &["spaces", "token", "acme", "--revoke", &first_id],
            0,
        )
        .await;
    assert_eq!(
        revoked.stdout,
        format!("token {first_id} of space acme revoked\n")
    );
    let apps = runs.run(&engine, &first, &["apps", "list"], None).await;
    assert_eq!(apps.code, Some(4), "{}", apps.stderr);
    let apps = runs.run(&engine, &second, &["apps", "list"], None).await;
    assert_eq!(apps.code, Some(0), "{}", apps.stderr);
    let unknown = runs
        .expect(
            &engine,
            &["spaces", "token", "acme", "--revoke", &first_id],
            5,
        )
        .await;
    assert!(unknown.stderr.contains(&first_id), "{}", unknown.stderr);
    let show = runs.expect(&engine, &["spaces", "show", "acme"], 0).await;
    assert!(show.stdout.contains(&second_id) && !show.stdout.contains(&first_id));
    let third = runs
        .expect(&engine, &["spaces", "token", "acme", "--json"], 0)
        .await
        .json();
    assert!(
        third["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("tok_"))
    );

    // Deleted: no longer routed, its token refused, unknown; the other one untouched.
    let deleted = runs.expect(&engine, &["spaces", "delete", "acme"], 0).await;
    assert_eq!(deleted.stdout, "space acme deleted\n");
    assert_eq!(proxy.get("shop.acme.test", "/").await.status, 404);
    assert_eq!(proxy.get("shop.initech.test", "/").await.status, 200);
    let apps = runs.run(&engine, &second, &["apps", "list"], None).await;
    assert_eq!(apps.code, Some(4), "{}", apps.stderr);
    runs.expect(&engine, &["spaces", "show", "acme"], 5).await;
    runs.expect(&engine, &["spaces", "delete", "acme"], 5).await;
    // The config file's space is changed there, not here.
    let refused = runs
        .expect(&engine, &["spaces", "delete", "default"], 1)
        .await;
    assert!(refused.stderr.contains("from_config"), "{}", refused.stderr);
    // A wrong admin token: exit 4, and the token given is not repeated.
    let wrong = runs
        .run(&engine, "wrong-admin-token-77", &["spaces", "list"], None)
        .await;
    assert_eq!(wrong.code, Some(4), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("wrong-admin-token-77"));

    runs.assert_no_secret();
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_space_file_prints_every_error_with_its_path() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    let engine = engine(true).await;
    let dir = TempDir::new("cli-spaces-invalid");
    let mut runs = Runs::default();

    // Refused by the API (422): every problem, with its path, one per line; exit 1.
    let invalid = dir.path("evil.yml");
    std::fs::write(
        &invalid,
        format!(
            "id: evil\ndomains: [bad domain]\ntokens: [0123456789abcdef0123]\n\
             hooks: {{before_start: 'touch /tmp/paastis-evil'}}\n\
             providers:\n  - {{id: p, type: process, apps: [{{name: x, command: 'true'}}]}}\n\
             \x20 - {{id: h, type: heroku, token: {HEROKU_TOKEN}, api_url: '{}'}}\n\
             \x20 - {{id: f, type: heroku, token_file: /etc/passwd}}\n",
            fake.url
        ),
    )
    .expect("write");
    let invalid = invalid.to_string_lossy().into_owned();
    let outcome = runs
        .expect(&engine, &["spaces", "create", "--file", &invalid], 1)
        .await;
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.contains("invalid_space"),
        "{}",
        outcome.stderr
    );
    let mut paths: Vec<&str> = outcome
        .stderr
        .lines()
        .skip(1)
        .filter_map(|line| line.trim().split_once(": ").map(|(path, _)| path))
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "domains[0]",
            "hooks",
            "providers[0].type",
            "providers[2].token_file",
            "tokens"
        ],
        "{}",
        outcome.stderr
    );
    let outcome = runs
        .expect(
            &engine,
            &["spaces", "create", "--file", &invalid, "--json"],
            1,
        )
        .await;
    assert!(
        outcome.stderr.contains("providers[0].type"),
        "{}",
        outcome.stderr
    );

    // Not YAML, not a mapping, not there: usage errors (exit 2), nothing sent.
    let broken = dir.path("broken.yml");
    std::fs::write(
        &broken,
        format!("id: acme\nproviders:\n  - {{id: hk, type: heroku, token: {HEROKU_TOKEN}\n"),
    )
    .expect("write");
    let broken = broken.to_string_lossy().into_owned();
    let outcome = runs
        .expect(&engine, &["spaces", "create", "--file", &broken], 2)
        .await;
    assert!(
        outcome.stderr.contains("invalid YAML"),
        "{}",
        outcome.stderr
    );
    let list = dir.path("list.yml");
    std::fs::write(&list, "- id: acme\n").expect("write");
    let outcome = runs
        .expect(
            &engine,
            &["spaces", "create", "--file", &list.to_string_lossy()],
            2,
        )
        .await;
    assert!(outcome.stderr.contains("mapping"), "{}", outcome.stderr);
    let missing = dir.path("missing.yml");
    let outcome = runs
        .expect(
            &engine,
            &["spaces", "create", "--file", &missing.to_string_lossy()],
            2,
        )
        .await;
    assert!(outcome.stderr.contains("cannot read"), "{}", outcome.stderr);
    let listed = runs
        .expect(&engine, &["spaces", "list", "--json"], 0)
        .await
        .json();
    assert_eq!(ids(&listed), ["default"]);

    runs.assert_no_secret();
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hosted_mode_spaces_are_listed_but_not_created() {
    let engine = engine(false).await;
    let mut runs = Runs::default();
    let list = runs.expect(&engine, &["spaces", "list"], 0).await;
    assert!(
        list.stdout.contains("hosted mode is off"),
        "{}",
        list.stdout
    );
    assert_eq!(row(&list.stdout, "default")[1], "config");
    let outcome = runs
        .run(
            &engine,
            ADMIN,
            &["spaces", "create", "--file", "-"],
            Some("id: acme\ndomains: [acme.test]\n"),
        )
        .await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("not_hosted"), "{}", outcome.stderr);
    let show = runs
        .expect(&engine, &["spaces", "show", "default"], 0)
        .await;
    assert!(!show.stdout.contains("Document"), "{}", show.stdout);
    runs.expect(&engine, &["spaces", "show", "nope"], 5).await;
    runs.assert_no_secret();
    engine.stop().await;
}
