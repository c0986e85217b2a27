//! A space's document as the admin API takes it (the shape of a `spaces:` entry, JSON):
//! split into what is stored in clear and what is sealed, changed by a merge patch, and
//! shown without its secrets.
//!
//! The provider entries hold credentials ([`crate::providers::SECRET_KEYS`]); they are
//! sealed as one document and never shown. Webhooks (the space's and its rules') are
//! sealed with them: their URLs may hold a credential, and their secrets are; they are
//! shown with their URL cut to its scheme and host, without their secret.

use serde_json::{Map, Value};

use crate::providers::{ENDPOINT_KEYS, SECRET_KEYS};
use crate::settings::ConfigError;

/// The document without its providers and webhooks (stored in clear), and what is sealed:
/// its providers (a list, as always), or when it has webhooks (theirs or its rules' —
/// their URLs and secrets are credentials too) or its providers are not a list,
/// `{"providers", "webhooks", "rules": {"<index>": <that rule's webhooks>}}`.
pub fn split(document: &Value) -> (Value, Value) {
    let mut settings = document.clone();
    let map = settings.as_object_mut();
    let (providers, webhooks) = match map {
        Some(map) => (map.remove("providers"), map.remove("webhooks")),
        None => (None, None),
    };
    let providers = providers.unwrap_or_else(|| Value::Array(Vec::new()));
    let mut rule_webhooks = Map::new();
    if let Some(rules) = settings.get_mut("rules").and_then(Value::as_array_mut) {
        for (index, rule) in rules.iter_mut().enumerate() {
            if let Some(webhooks) = rule.as_object_mut().and_then(|r| r.remove("webhooks")) {
                rule_webhooks.insert(index.to_string(), webhooks);
            }
        }
    }
    // A list of providers alone is sealed as it always was; anything else (webhooks, or a
    // `providers` that is not a list, which validation refuses) in the object form, so
    // that `join` never mistakes one for the other.
    if webhooks.is_none() && rule_webhooks.is_empty() && providers.is_array() {
        return (settings, providers);
    }
    let mut sealed = Map::new();
    sealed.insert("providers".to_owned(), providers);
    if let Some(webhooks) = webhooks {
        sealed.insert("webhooks".to_owned(), webhooks);
    }
    sealed.insert("rules".to_owned(), Value::Object(rule_webhooks));
    (settings, Value::Object(sealed))
}

/// The whole document again from its two parts.
pub fn join(settings: Value, sealed: Value) -> Value {
    let mut document = match settings {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let providers = match sealed {
        Value::Object(mut sealed) => {
            if let Some(webhooks) = sealed.remove("webhooks") {
                document.insert("webhooks".to_owned(), webhooks);
            }
            if let (Some(Value::Object(by_rule)), Some(rules)) = (
                sealed.remove("rules"),
                document.get_mut("rules").and_then(Value::as_array_mut),
            ) {
                for (index, webhooks) in by_rule {
                    if let Some(rule) = index
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| rules.get_mut(i))
                        .and_then(Value::as_object_mut)
                    {
                        rule.insert("webhooks".to_owned(), webhooks);
                    }
                }
            }
            sealed
                .remove("providers")
                .unwrap_or_else(|| Value::Array(Vec::new()))
        }
        providers => providers,
    };
    if providers.as_array().is_none_or(|list| !list.is_empty()) {
        document.insert("providers".to_owned(), providers);
    }
    Value::Object(document)
}

/// Applies a JSON merge patch (RFC 7396): objects are merged key by key, `null` removes a
/// key, anything else replaces the value. A provider entry of the patch whose `id` and
/// `type` are a current provider's keeps that provider's credentials when it leaves them
/// out (they are write-only: nobody can send them back) — unless it changes where they are
/// sent ([`ENDPOINT_KEYS`]): then none is kept, and an entry that gives none again is an
/// error for each credential it would have kept, at its path.
pub fn patched(current: &Value, patch: &Value) -> Result<Value, Vec<ConfigError>> {
    let mut next = current.clone();
    merge(&mut next, patch);
    let mut errors = Vec::new();
    if let (Some(old), Some(new)) = (
        current.get("providers").and_then(Value::as_array),
        next.get_mut("providers").and_then(Value::as_array_mut),
    ) {
        for (index, entry) in new.iter_mut().enumerate() {
            let Some(entry) = entry.as_object_mut() else {
                continue;
            };
            let same = old.iter().filter_map(Value::as_object).find(|old| {
                old.get("id") == entry.get("id") && old.get("type") == entry.get("type")
            });
            let Some(same) = same else {
                continue;
            };
            let moved: Vec<&str> = ENDPOINT_KEYS
                .iter()
                .copied()
                .filter(|key| same.get(*key) != entry.get(*key))
                .collect();
            if moved.is_empty() {
                for key in SECRET_KEYS {
                    if !entry.contains_key(*key)
                        && let Some(secret) = same.get(*key)
                    {
                        entry.insert((*key).to_owned(), secret.clone());
                    }
                }
            } else if !SECRET_KEYS.iter().any(|key| entry.contains_key(*key)) {
                let moved = moved
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                for key in SECRET_KEYS.iter().filter(|key| same.contains_key(**key)) {
                    errors.push(ConfigError {
                        path: format!("providers[{index}].{key}"),
                        message: format!(
                            "missing: {moved} changed, so the stored credential is not kept \
                             (it is never sent to another address than the one it was given \
                             for); give it again in this change"
                        ),
                    });
                }
            }
        }
    }
    keep_webhook_credentials(current, &mut next, &mut errors);
    if errors.is_empty() {
        Ok(next)
    } else {
        Err(errors)
    }
}

/// Every webhook entry of a document (the space's, then each rule's), with its path.
fn webhook_entries(document: &mut Value) -> Vec<(String, &mut Map<String, Value>)> {
    let Some(map) = document.as_object_mut() else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    let mut rules = None;
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("webhooks", Value::Array(list)) => {
                for (index, entry) in list.iter_mut().enumerate() {
                    if let Some(entry) = entry.as_object_mut() {
                        entries.push((format!("webhooks[{index}]"), entry));
                    }
                }
            }
            ("rules", Value::Array(list)) => rules = Some(list),
            _ => {}
        }
    }
    for (rule, value) in rules.into_iter().flatten().enumerate() {
        if let Some(Value::Array(list)) = value.get_mut("webhooks") {
            for (index, entry) in list.iter_mut().enumerate() {
                if let Some(entry) = entry.as_object_mut() {
                    entries.push((format!("rules[{rule}].webhooks[{index}]"), entry));
                }
            }
        }
    }
    entries
}

/// A webhook entry of the patched document whose `id` is a current webhook's keeps what
/// the API never shows back: its URL, when the entry leaves it out or gives it as shown
/// (its scheme and host), and then its `secret` when the entry leaves it out. A webhook
/// sent to another URL keeps no secret: an entry that gives none again is an error.
fn keep_webhook_credentials(current: &Value, next: &mut Value, errors: &mut Vec<ConfigError>) {
    let mut current = current.clone();
    let stored: Vec<(Value, Map<String, Value>)> = webhook_entries(&mut current)
        .into_iter()
        .filter_map(|(_, entry)| Some((entry.get("id")?.clone(), entry.clone())))
        .collect();
    for (path, entry) in webhook_entries(next) {
        // The stored webhook of this id (none, or two of it, which validation refuses:
        // nothing to keep).
        let mut same = stored.iter().filter(|(id, _)| Some(id) == entry.get("id"));
        let (Some((_, same)), None) = (same.next(), same.next()) else {
            continue;
        };
        let Some(url) = same.get("url").and_then(Value::as_str) else {
            continue;
        };
        let shown = crate::webhooks::origin(url);
        let unchanged = match entry.get("url") {
            None => true,
            Some(Value::String(given)) => *given == url || *given == shown,
            Some(_) => false,
        };
        if unchanged {
            entry.insert("url".to_owned(), Value::String(url.to_owned()));
            if !entry.contains_key("secret")
                && let Some(secret) = same.get("secret")
            {
                entry.insert("secret".to_owned(), secret.clone());
            }
        } else if same.contains_key("secret") && !entry.contains_key("secret") {
            errors.push(ConfigError {
                path: format!("{path}.secret"),
                message: "missing: `url` changed, so the stored secret is not kept (it is \
                          never used for another receiver than the one it was given for); \
                          give it again in this change"
                    .to_owned(),
            });
        }
    }
}

fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The document as shown: every credential of its providers left out, and named under
/// `secrets` (so one can tell what is set without seeing it).
pub fn public(document: &Value) -> Value {
    let mut shown = document.clone();
    if let Some(providers) = shown.get_mut("providers").and_then(Value::as_array_mut) {
        for entry in providers.iter_mut().filter_map(Value::as_object_mut) {
            let mut set = Vec::new();
            for key in SECRET_KEYS {
                if entry.remove(*key).is_some() {
                    set.push(Value::String((*key).to_owned()));
                }
            }
            entry.insert("secrets".to_owned(), Value::Array(set));
        }
    }
    hide_webhooks(shown.get_mut("webhooks"));
    if let Some(rules) = shown.get_mut("rules").and_then(Value::as_array_mut) {
        for rule in rules {
            hide_webhooks(rule.get_mut("webhooks"));
        }
    }
    shown
}

/// Webhook entries as shown: no `secret`, and their URL cut to its scheme and host (chat
/// services put their credential in the path).
fn hide_webhooks(webhooks: Option<&mut Value>) {
    let Some(webhooks) = webhooks.and_then(Value::as_array_mut) else {
        return;
    };
    for entry in webhooks.iter_mut().filter_map(Value::as_object_mut) {
        let mut set = Vec::new();
        if entry.remove("secret").is_some() {
            set.push(Value::String("secret".to_owned()));
        }
        if let Some(url) = entry.remove("url") {
            let origin = crate::webhooks::origin(url.as_str().unwrap_or_default());
            entry.insert("url".to_owned(), Value::String(origin));
        }
        entry.insert("secrets".to_owned(), Value::Array(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn providers_are_split_off_and_joined_back() {
        let document = json!({"id": "acme", "domains": ["acme.test"],
            "providers": [{"id": "h", "type": "heroku", "token": "s3cret"}]});
        let (settings, providers) = split(&document);
        assert!(!settings.to_string().contains("s3cret"));
        assert_eq!(providers[0]["token"], "s3cret");
        assert_eq!(join(settings, providers), document);
        let bare = json!({"id": "acme", "domains": ["acme.test"]});
        let (settings, providers) = split(&bare);
        assert_eq!(join(settings, providers), bare);
        // Providers that are not a list (refused by validation, but a patch can make one)
        // come back as they were, not read as the sealed object form.
        for odd in [json!({"id": "h"}), json!({"providers": [1]}), json!("h")] {
            let document = json!({"id": "acme", "providers": odd});
            let (settings, sealed) = split(&document);
            assert_eq!(join(settings, sealed), document, "{odd}");
        }
    }

    #[test]
    fn a_patch_merges_removes_and_keeps_write_only_secrets() {
        let current = json!({"id": "acme", "domains": ["acme.test"], "plan": "free",
            "defaults": {"max_idle": "30m", "wake_timeout": "2m"},
            "providers": [{"id": "h", "type": "heroku", "token": "s3cret"},
                          {"id": "s", "type": "scalingo", "token": "tk-us-1"}]});
        let next = patched(
            &current,
            &json!({"plan": null, "defaults": {"max_idle": "10m"},
                "providers": [{"id": "h", "type": "heroku", "rate_limit": 100},
                              {"id": "s", "type": "heroku"},
                              {"id": "n", "type": "heroku", "token": "new"}]}),
        )
        .expect("patched");
        assert_eq!(next["plan"], Value::Null);
        assert_eq!(
            next["defaults"],
            json!({"max_idle": "10m", "wake_timeout": "2m"})
        );
        // Same id and type: the stored token is kept; another type gets none.
        assert_eq!(next["providers"][0]["token"], "s3cret");
        assert_eq!(next["providers"][0]["rate_limit"], 100);
        assert_eq!(next["providers"][1].get("token"), None);
        assert_eq!(next["providers"][2]["token"], "new");
        // A token given replaces the stored one.
        let replaced = patched(
            &current,
            &json!({"providers": [{"id": "h", "type": "heroku", "token": "rotated"}]}),
        )
        .expect("patched");
        assert_eq!(replaced["providers"][0]["token"], "rotated");
        assert_eq!(replaced["providers"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn credentials_are_not_kept_for_another_address() {
        let current = json!({"id": "acme", "providers": [
            {"id": "h", "type": "heroku", "token": "s3cret", "api_url": "http://127.0.0.1:1"},
            {"id": "s", "type": "scalingo", "token": "tk-us-1", "region": "osc-fr1"},
            {"id": "c", "type": "clever-cloud", "consumer_key": "k1", "consumer_secret": "k2",
             "token": "k3", "secret": "k4"}]});
        // Each endpoint key changed (or removed) and no credential given: every credential
        // that would have been kept is named, none is in the errors.
        let errors = patched(
            &current,
            &json!({"providers": [
                {"id": "h", "type": "heroku", "api_url": "http://127.0.0.1:2"},
                {"id": "s", "type": "scalingo", "region": "osc-secnum-fr1"},
                {"id": "c", "type": "clever-cloud", "api_url": "http://127.0.0.1:3"}]}),
        )
        .expect_err("credentials needed");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "providers[0].token",
                "providers[1].token",
                "providers[2].token",
                "providers[2].consumer_key",
                "providers[2].consumer_secret",
                "providers[2].secret"
            ]
        );
        assert!(
            errors[0].message.contains("`api_url` changed"),
            "{errors:?}"
        );
        assert!(errors[1].message.contains("`region` changed"), "{errors:?}");
        for secret in ["s3cret", "tk-us-1", "k1", "k2", "k3", "k4"] {
            assert!(!format!("{errors:?}").contains(secret));
        }
        let removed = patched(
            &current,
            &json!({"providers": [{"id": "h", "type": "heroku"}]}),
        )
        .expect_err("api_url removed: the default address is another one");
        assert_eq!(removed[0].path, "providers[0].token");
        // Given again: taken, the stored ones dropped (another kind of credentials too).
        let next = patched(
            &current,
            &json!({"providers": [
                {"id": "h", "type": "heroku", "api_url": "http://127.0.0.1:2", "token": "t2"},
                {"id": "c", "type": "clever-cloud", "api_url": "http://127.0.0.1:3",
                 "api_token": "bridge"}]}),
        )
        .expect("credentials given again");
        assert_eq!(next["providers"][0]["token"], "t2");
        assert_eq!(next["providers"][1]["api_token"], "bridge");
        assert_eq!(next["providers"][1].get("consumer_key"), None);
        assert_eq!(next["providers"][1].get("token"), None);
        // The same address: kept, as before.
        let same = patched(
            &current,
            &json!({"providers": [{"id": "h", "type": "heroku", "api_url": "http://127.0.0.1:1",
                "rate_limit": 5}]}),
        )
        .expect("same address");
        assert_eq!(same["providers"][0]["token"], "s3cret");
    }

    #[test]
    fn webhooks_keep_their_url_and_secret_when_sent_back_as_shown() {
        let current = json!({"id": "acme",
            "webhooks": [{"id": "a", "url": "https://hooks.example.com/T/B/tok3n", "secret": "s3cret"}],
            "rules": [{"pattern": "x"}, {"pattern": "y", "webhooks": [{"id": "b", "url": "https://h.example.com/p4th"}]}]});
        // As the API shows them (URL cut to its origin, no secret), with a change.
        let shown = public(&current);
        let mut patch =
            json!({"webhooks": shown["webhooks"].clone(), "rules": shown["rules"].clone()});
        patch["webhooks"][0]["events"] = json!(["started"]);
        for pointer in ["/webhooks/0", "/rules/1/webhooks/0"] {
            if let Some(entry) = patch.pointer_mut(pointer).and_then(Value::as_object_mut) {
                entry.remove("secrets");
            }
        }
        let next = patched(&current, &patch).expect("patched");
        assert_eq!(
            next["webhooks"][0]["url"],
            "https://hooks.example.com/T/B/tok3n"
        );
        assert_eq!(next["webhooks"][0]["secret"], "s3cret");
        assert_eq!(next["webhooks"][0]["events"], json!(["started"]));
        assert_eq!(
            next["rules"][1]["webhooks"][0]["url"],
            "https://h.example.com/p4th"
        );
        // Left out: kept too.
        let next = patched(&current, &json!({"webhooks": [{"id": "a"}]})).expect("patched");
        assert_eq!(next["webhooks"][0]["secret"], "s3cret");
        // Another receiver: the secret must be given again (and is never in the error).
        let errors = patched(
            &current,
            &json!({"webhooks": [{"id": "a", "url": "https://elsewhere.example.com/x"}]}),
        )
        .expect_err("secret needed");
        assert_eq!(errors[0].path, "webhooks[0].secret");
        assert!(!format!("{errors:?}").contains("s3cret"));
        let next = patched(
            &current,
            &json!({"webhooks": [{"id": "a", "url": "https://elsewhere.example.com/x", "secret": "n3w"}]}),
        )
        .expect("given again");
        assert_eq!(next["webhooks"][0]["secret"], "n3w");
        // Another id is another webhook: nothing of a's.
        let next = patched(
            &current,
            &json!({"webhooks": [{"id": "c", "url": "https://hooks.example.com"}]}),
        )
        .expect("patched");
        assert_eq!(next["webhooks"][0]["url"], "https://hooks.example.com");
        assert_eq!(next["webhooks"][0].get("secret"), None);
    }

    #[test]
    fn webhooks_are_sealed_with_the_providers() {
        let document = json!({
            "id": "acme",
            "providers": [{"id": "hk", "type": "heroku", "token": "t0k"}],
            "webhooks": [{"id": "a", "url": "https://hooks.example.com/T/B/tok3n", "secret": "s3cret"}],
            "rules": [{"pattern": "x"}, {"pattern": "y", "webhooks": [{"id": "b", "url": "https://h.example.com/p4th"}]}],
        });
        let (settings, sealed) = split(&document);
        let clear = settings.to_string();
        for hidden in ["t0k", "tok3n", "s3cret", "p4th"] {
            assert!(!clear.contains(hidden), "{clear}");
        }
        assert_eq!(join(settings, sealed), document);
        // Without webhooks, what is sealed is the providers' list, as before.
        let plain = json!({"id": "acme", "providers": [{"id": "hk"}], "rules": [{"pattern": "x"}]});
        let (settings, sealed) = split(&plain);
        assert_eq!(sealed, json!([{"id": "hk"}]));
        assert_eq!(join(settings, sealed), plain);
    }

    #[test]
    fn the_public_view_has_no_webhook_secret() {
        let document = json!({
            "webhooks": [{"id": "a", "url": "https://hooks.example.com/T/B/tok3n", "secret": "s3cret"}],
            "rules": [{"pattern": "x", "webhooks": [{"id": "b", "url": "https://h.example.com/p4th?k=v"}]}],
        });
        let shown = public(&document).to_string();
        assert!(
            !shown.contains("tok3n") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!shown.contains("p4th"), "{shown}");
        assert!(shown.contains("https://hooks.example.com"), "{shown}");
    }

    #[test]
    fn the_public_view_has_no_secret() {
        let document = json!({"id": "acme", "providers": [
            {"id": "c", "type": "clever-cloud", "consumer_key": "k1", "consumer_secret": "k2",
             "token": "k3", "secret": "k4", "organisation": "orga_1"},
            {"id": "h", "type": "heroku", "api_url": "http://127.0.0.1:1"}]});
        let shown = public(&document);
        for secret in ["k1", "k2", "k3", "k4"] {
            assert!(!shown.to_string().contains(secret), "{shown}");
        }
        assert_eq!(
            shown["providers"][0]["secrets"],
            json!(["token", "consumer_key", "consumer_secret", "secret"])
        );
        assert_eq!(shown["providers"][0]["organisation"], "orga_1");
        assert_eq!(shown["providers"][1]["secrets"], json!([]));
    }
}
