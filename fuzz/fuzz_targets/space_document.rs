//! Space documents of the admin API: one or two JSON values (a document, then a merge
//! patch), read by `paastis::config::api_space` (what `POST /api/v1/spaces` checks) and
//! changed by the merge patch of `PATCH /api/v1/spaces/<id>`.
//!
//! Checks: a refused document has errors, each naming a path (once it is an object) and
//! never showing a credential; split then join gives the document back; the public view has
//! no credential; a patch is idempotent, an empty one changes nothing, and a credential
//! kept through a patch comes from the patch or from a provider of the same id and type (a
//! webhook's secret: from the patch or from the stored webhook of the same id).

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use paastis::config::{ApiRules, api_space};
use paastis::fuzzing::spaces::{join, patched, public, split};
use paastis::providers::SECRET_KEYS;
use serde_json::{Map, Value};

/// The provider entries of a document.
fn providers(document: &Value) -> Vec<&Map<String, Value>> {
    document
        .get("providers")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// Marks every credential: `[ghost]` for each, kept between the same blanks (the
/// validator trims), so a message that shows one can be told.
fn marked(document: &Value) -> Value {
    let mut marked = document.clone();
    let entries = marked
        .get_mut("providers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut);
    for entry in entries {
        for key in SECRET_KEYS {
            if let Some(Value::String(text)) = entry.get_mut(*key)
                && !text.trim().is_empty()
            {
                let start = text.len() - text.trim_start().len();
                let end = text.trim_end().len();
                *text = format!("{}{MARK}{}", &text[..start], &text[end..]);
            }
        }
    }
    marked
}

/// What stands for a credential in [`marked`].
const MARK: &str = "[ghost-credential]";

fn check_document(document: &Value, rules: ApiRules) {
    let taken: HashMap<String, String> =
        [("taken.test".to_owned(), "space `other`".to_owned())].into();
    let shown = public(document);
    for entry in providers(&shown) {
        for key in SECRET_KEYS {
            assert!(!entry.contains_key(*key), "the public view shows `{key}`");
        }
    }
    if let Err(errors) = api_space(document, rules, &taken) {
        assert!(!errors.0.is_empty(), "refused without an error");
        for error in &errors.0 {
            if document.is_object() {
                assert!(!error.path.is_empty(), "an error names no path: {error:?}");
            }
        }
    }
    // (A document that holds the mark already cannot tell.)
    if !document.to_string().contains(MARK)
        && let Err(errors) = api_space(&marked(document), rules, &taken)
    {
        for error in &errors.0 {
            assert!(
                !error.to_string().contains(MARK),
                "an error shows a credential: {error}"
            );
        }
    }
    if let Value::Object(map) = document {
        let (settings, sealed) = split(document);
        assert!(settings.get("providers").is_none());
        let again = join(settings, sealed);
        let mut expected = map.clone();
        if expected
            .get("providers")
            .is_some_and(|p| p.as_array().is_some_and(Vec::is_empty))
        {
            expected.remove("providers");
        }
        assert_eq!(again, Value::Object(expected), "split then join");
        if distinct_providers(document) {
            let unchanged = patched(document, &Value::Object(Map::new()));
            assert_eq!(unchanged.as_ref().ok(), Some(document), "an empty patch");
        }
    }
}

/// Whether a document's provider entries have distinct ids and types (the validator refuses
/// the others, so a stored space never has such twins).
fn distinct_providers(patch: &Value) -> bool {
    let keys: Vec<(Option<&Value>, Option<&Value>)> = providers(patch)
        .iter()
        .map(|entry| (entry.get("id"), entry.get("type")))
        .collect();
    keys.iter()
        .enumerate()
        .all(|(index, key)| !keys[..index].contains(key))
}

fn check_patch(current: &Value, patch: &Value) {
    let next = match patched(current, patch) {
        Ok(next) => next,
        // Refused: a provider's address (or a webhook's URL) changed without its
        // credentials; each error names the credential it lacks.
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal says why");
            for error in &errors {
                assert!(
                    error.contains("providers[") || error.contains("webhooks["),
                    "{error}"
                );
            }
            return;
        }
    };
    if distinct_providers(patch) && distinct_providers(current) {
        let twice = patched(&next, patch);
        assert_eq!(twice.as_ref().ok(), Some(&next), "a patch applied twice");
    }
    // Every credential comes from the patch, or from the same provider as it was.
    let before = providers(current);
    let asked: Vec<&Map<String, Value>> = providers(patch);
    for (index, entry) in providers(&next).iter().enumerate() {
        for key in SECRET_KEYS {
            let Some(value) = entry.get(*key) else {
                continue;
            };
            let from_patch = asked.iter().any(|given| given.get(*key) == Some(value));
            let same = |old: &&Map<String, Value>| {
                old.get("id") == entry.get("id")
                    && old.get("type") == entry.get("type")
                    && old.get(*key) == Some(value)
            };
            let kept = before.iter().any(same);
            assert!(
                from_patch || kept,
                "providers[{index}].{key} came from another provider"
            );
        }
    }
    let before = webhooks(current);
    let asked = webhooks(patch);
    for entry in webhooks(&next) {
        let Some(secret) = entry.get("secret") else {
            continue;
        };
        let from_patch = asked
            .iter()
            .any(|given| given.get("secret") == Some(secret));
        let kept = before
            .iter()
            .any(|old| old.get("id") == entry.get("id") && old.get("secret") == Some(secret));
        assert!(
            from_patch || kept,
            "a webhook's secret came from another webhook"
        );
    }
}

/// The webhook entries of a document: its own, then its rules'.
fn webhooks(document: &Value) -> Vec<&Map<String, Value>> {
    let own = document
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let rules = document
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("webhooks").and_then(Value::as_array))
        .flatten();
    own.chain(rules).filter_map(Value::as_object).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, json)) = data.split_first() else {
        return;
    };
    let mut values = serde_json::Deserializer::from_slice(json).into_iter::<Value>();
    let Some(Ok(document)) = values.next() else {
        return;
    };
    // The first byte's two low bits: the hosted rules the document is read under.
    let rules = ApiRules {
        custom_api_urls: flags & 1 == 1,
        private_addresses: flags & 2 == 2,
    };
    check_document(&document, rules);
    if let Some(Ok(patch)) = values.next() {
        check_patch(&document, &patch);
        if let Ok(next) = patched(&document, &patch) {
            check_document(&next, rules);
        }
    }
});
