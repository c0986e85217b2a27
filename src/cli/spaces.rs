//! `paastis spaces`: the tenants through `/api/v1/spaces`. Listing and showing work on any
//! engine; creating, deleting and tokens need hosted mode and the admin token. A token is
//! printed only by the command that issues it, once; provider credentials never are (the
//! API does not send them back, and errors are masked of those read from the file).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::client::Api;
use super::{ApiArgs, CliError, emit, emit_json, render, view};
use crate::wire::{CreatedSpace, IssuedTokenView, SpaceList, SpaceView};

/// `paastis spaces ...`.
#[derive(Debug, Args)]
pub struct SpacesArgs {
    /// Where the API is and how to print.
    #[command(flatten)]
    pub api: ApiArgs,

    /// What to do with the spaces.
    #[command(subcommand)]
    pub command: SpacesCommand,
}

/// What `paastis spaces` does.
#[derive(Debug, Subcommand)]
pub enum SpacesCommand {
    /// The spaces: id, origin, domains, plan, providers, apps, tokens.
    List,
    /// One space: its settings, providers (which secrets are set, never their values),
    /// tokens (ids and dates) and its document.
    Show {
        /// The space's id.
        #[arg(value_name = "SPACE")]
        id: String,
    },
    /// Creates a space from a document (hosted mode): prints its id and its first token,
    /// shown this once.
    Create {
        /// The space document, YAML or JSON (a `spaces:` entry: id, domains, providers,
        /// rules, ...); `-` reads stdin.
        #[arg(long, short, value_name = "PATH")]
        file: PathBuf,
    },
    /// Deletes a space created through the API: its hosts stop being routed, its tokens
    /// stop working; its apps stay as they are on their platform.
    Delete {
        /// The space's id.
        #[arg(value_name = "SPACE")]
        id: String,
    },
    /// Issues a new token for a space (shown this once), or revokes one with --revoke.
    Token {
        /// The space's id.
        #[arg(value_name = "SPACE")]
        id: String,
        /// Revoke this token (its id, `tok_…`, from `paastis spaces show`) instead.
        #[arg(long, value_name = "TOKEN_ID")]
        revoke: Option<String>,
    },
}

/// Runs one `paastis spaces` subcommand.
pub async fn run(api: &Api, command: &SpacesCommand, json: bool) -> Result<(), CliError> {
    match command {
        SpacesCommand::List => {
            let answer = api.get(&["spaces"], &[]).await?;
            if json {
                return emit_json(&answer);
            }
            let list: SpaceList = view(answer)?;
            emit(&render::spaces_table(&list.spaces, list.hosted))
        }
        SpacesCommand::Show { id } => {
            let answer = api.get(&["spaces", id], &[]).await?;
            if json {
                return emit_json(&answer);
            }
            let space: SpaceView = view(answer)?;
            emit(&render::space_details(&space))
        }
        SpacesCommand::Create { file } => create(api, file, json).await,
        SpacesCommand::Delete { id } => {
            api.send(Method::DELETE, &["spaces", id], &[], None, None)
                .await?;
            emit(&format!("space {id} deleted\n"))
        }
        SpacesCommand::Token {
            id,
            revoke: Some(token),
        } => {
            api.send(
                Method::DELETE,
                &["spaces", id, "tokens", token],
                &[],
                None,
                None,
            )
            .await?;
            emit(&format!("token {token} of space {id} revoked\n"))
        }
        SpacesCommand::Token { id, revoke: None } => {
            let (_, answer) = api
                .send(Method::POST, &["spaces", id, "tokens"], &[], None, None)
                .await?;
            if json {
                return emit_json(&answer);
            }
            let token: IssuedTokenView = view(answer)?;
            emit(&render::issued_token(id, &token))
        }
    }
}

/// `paastis spaces create --file PATH`.
async fn create(api: &Api, file: &std::path::Path, json: bool) -> Result<(), CliError> {
    let document = read_document(file)?;
    // A last guard: an error message that would repeat a credential of the file is masked.
    let secrets = provider_secrets(&document);
    let mask = |error: CliError| {
        secrets
            .iter()
            .fold(error, |error, secret| error.redact(secret))
    };
    let (_, answer) = api
        .send(Method::POST, &["spaces"], &[], Some(document), None)
        .await
        .map_err(mask)?;
    if json {
        return emit_json(&answer);
    }
    let created: CreatedSpace = view(answer).map_err(mask)?;
    emit(&format!(
        "space {} created\n{}",
        created.space.id,
        render::issued_token(&created.space.id, &created.token)
    ))
}

/// The space document of `path` (`-`: stdin), YAML or JSON, as JSON. Read at once, before
/// any call: nothing else runs meanwhile.
fn read_document(path: &std::path::Path) -> Result<Value, CliError> {
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let text = if stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|error| CliError::Usage(format!("--file -: cannot read stdin: {error}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|error| CliError::Usage(format!("--file: cannot read {name}: {error}")))?
    };
    parse_document(&name, &text)
}

/// A space document's text (YAML 1.2, of which JSON is a part) as JSON; it must be a
/// mapping.
fn parse_document(name: &str, text: &str) -> Result<Value, CliError> {
    let value = crate::settings::read_yaml(name, text).map_err(CliError::Usage)?;
    if !value.is_object() {
        return Err(CliError::Usage(format!(
            "{name}: a space document is a mapping (id, domains, providers, ...)"
        )));
    }
    Ok(value)
}

/// The credentials of the document's providers (`token`, `secret`, ...), to mask.
fn provider_secrets(document: &Value) -> Vec<String> {
    let Some(providers) = document.get("providers").and_then(Value::as_array) else {
        return Vec::new();
    };
    providers
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|entry| {
            crate::providers::SECRET_KEYS
                .iter()
                .filter_map(|key| entry.get(*key))
        })
        .filter_map(|value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .filter(|text| !text.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_yaml_or_json_mappings() {
        let yaml = "id: acme\ndomains: [acme.test]\nproviders:\n  - {id: hk, type: heroku, token: s3cret, on: yes}\n";
        let document = parse_document("a.yml", yaml).expect("yaml");
        assert_eq!(document["domains"], json!(["acme.test"]));
        assert_eq!(document["providers"][0]["on"], "yes");
        let json_text = r#"{"id": "acme", "domains": ["acme.test"]}"#;
        assert_eq!(
            parse_document("a.json", json_text).expect("json")["id"],
            "acme"
        );
        for bad in ["- a\n- b\n", "42", "", "id: [unclosed\n"] {
            let error = parse_document("f", bad).expect_err(bad);
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn yaml_errors_do_not_quote_the_file() {
        let yaml = "id: acme\nproviders:\n  - {id: hk, type: heroku, token: s3cret-value\n";
        let error = parse_document("a.yml", yaml).expect_err("unclosed");
        let text = error.to_string();
        assert!(!text.contains("s3cret-value"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn provider_secrets_are_found_for_masking() {
        let document = json!({"id": "acme", "token": "not-a-provider",
            "providers": [{"id": "hk", "type": "heroku", "token": "t1"},
                          {"id": "ovh", "type": "ovh", "consumer_key": "k", "consumer_secret": ""}]});
        assert_eq!(provider_secrets(&document), ["t1", "k"]);
    }
}
