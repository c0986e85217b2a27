//! The config loader and validator: YAML text through `paastis::config::load_str`, the
//! function `paastis check` and the engine use, with a fixed environment (one variable
//! holds a secret, for `${FUZZ_SECRET}`).
//!
//! Checks: a refused config has at least one error; once the text is a YAML mapping, every
//! error names a path and says something; no error or warning repeats a value that came
//! from the environment.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use paastis::config::{Overrides, load_str, read_yaml};
use serde_json::Value;

/// A value only the environment holds: it must never be shown.
const SECRET: &str = "Fz-S3cret-Value";

/// Whether the tree names a file the validator would read (`token_file`, a page's
/// `template`, `css` or `languages`...): the fuzzer would then read whatever the machine
/// has.
fn names_a_file(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            key.contains("file")
                || ["template", "css", "languages"].contains(&key.as_str())
                || names_a_file(value)
        }),
        Value::Array(items) => items.iter().any(names_a_file),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tree = read_yaml("<fuzz>", text);
    if tree.as_ref().is_ok_and(names_a_file) {
        return;
    }
    let env: HashMap<String, String> = [("FUZZ_SECRET", SECRET), ("PORT", "3000"), ("EMPTY", "")]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    // Written in the file itself, it is no secret of the environment's.
    let secret = (!text.contains(SECRET)).then_some(SECRET);
    match load_str(text, &env, &Overrides::default()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                assert!(
                    secret.is_none_or(|secret| !warning.contains(secret)),
                    "a warning shows the secret: {warning}"
                );
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            let mapping = matches!(tree, Ok(Value::Object(_)));
            for error in &errors.0 {
                assert!(
                    !error.message.is_empty(),
                    "an error says nothing: {error:?}"
                );
                if mapping {
                    assert!(!error.path.is_empty(), "an error names no path: {error:?}");
                }
                assert!(
                    secret.is_none_or(|secret| !error.to_string().contains(secret)),
                    "an error shows the secret: {error}"
                );
            }
        }
    }
});
