//! The pages' messages: the built-in English and French files, messages files added by the
//! configuration, `{name}` placeholders, and which language a request gets from its
//! `Accept-Language`. It reads text only; it renders nothing.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

/// The languages built in.
pub const BUILTIN: &[&str] = &["en", "fr"];

/// The built-in English messages: every key a messages file may set.
static ENGLISH: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| flatten_builtin(include_str!("messages/en.yml")));

/// The built-in French messages.
static FRENCH: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| flatten_builtin(include_str!("messages/fr.yml")));

/// A built-in file as dotted keys (they are tested to parse; a broken one would be empty).
fn flatten_builtin(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    if let Ok(tree) = crate::settings::parse_yaml(text) {
        flatten(&tree, "", &mut out, &mut problems);
    }
    out
}

/// The built-in messages of `tag` (`en`, `fr`), if built in.
pub fn builtin(tag: &str) -> Option<&'static BTreeMap<String, String>> {
    match tag {
        "en" => Some(&ENGLISH),
        "fr" => Some(&FRENCH),
        _ => None,
    }
}

/// The English messages (every key).
pub fn english() -> &'static BTreeMap<String, String> {
    &ENGLISH
}

/// A messages file's text as dotted keys (`waiting.title`); every problem (not YAML, a key
/// the built-in messages do not have, a value that is not text) is returned.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, Vec<String>> {
    let tree = crate::settings::parse_yaml(text).map_err(|error| {
        let first = error.to_string();
        vec![format!(
            "invalid YAML: {}",
            first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
        )]
    })?;
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    match &tree {
        Value::Object(_) => flatten(&tree, "", &mut out, &mut problems),
        Value::Null => {}
        _ => problems.push("expected a mapping of message keys to texts".to_owned()),
    }
    for key in out.keys() {
        if !ENGLISH.contains_key(key) {
            problems.push(format!(
                "`{key}` is not a message key (the keys are those of the built-in English \
                 messages; see Customising pages)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Nested mappings as dotted keys.
fn flatten(
    value: &Value,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(value, &key, out, problems);
            }
        }
        Value::String(text) => {
            out.insert(prefix.to_owned(), text.clone());
        }
        Value::Number(number) => {
            out.insert(prefix.to_owned(), number.to_string());
        }
        Value::Null => {}
        _ => problems.push(format!("`{prefix}`: expected a text")),
    }
}

/// `text` with each `{name}` of `values` replaced (an unknown placeholder stays as is).
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let replaced = after.find('}').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value, end))
        });
        match replaced {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The language of `accept_language` (an `Accept-Language` value) the pages have, by
/// preference (q-values honoured; `fr-CA` may get `fr`); `None` when it names none of them.
pub fn choose<'t>(
    accept_language: &str,
    have: impl Fn(&str) -> Option<&'t str>,
) -> Option<&'t str> {
    let mut ranges: Vec<(f32, usize, String)> = Vec::new();
    for (index, item) in accept_language.split(',').enumerate().take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if tag.is_empty() {
            continue;
        }
        let mut quality = 1.0f32;
        for parameter in parts {
            if let Some(q) = parameter.trim().strip_prefix("q=") {
                quality = q.trim().parse::<f32>().unwrap_or(0.0);
            }
        }
        if quality > 0.0 && quality.is_finite() {
            ranges.push((quality, index, tag));
        }
    }
    // Highest quality first; the header's order among equals.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, tag) in &ranges {
        if tag == "*" {
            return None;
        }
        if let Some(found) = have(tag) {
            return Some(found);
        }
        if let Some((primary, _)) = tag.split_once('-')
            && let Some(found) = have(primary)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_language_has_every_key() {
        assert!(ENGLISH.len() > 20);
        for tag in BUILTIN {
            let messages = builtin(tag).expect("built in");
            assert_eq!(
                messages.keys().collect::<Vec<_>>(),
                ENGLISH.keys().collect::<Vec<_>>(),
                "{tag}"
            );
        }
    }

    #[test]
    fn languages_are_chosen_by_quality() {
        let have = |tag: &str| ["en", "fr", "de"].into_iter().find(|t| *t == tag);
        assert_eq!(choose("fr-CH, fr;q=0.9, en;q=0.8", have), Some("fr"));
        assert_eq!(choose("en;q=0.5, fr;q=0.9", have), Some("fr"));
        assert_eq!(choose("es, de;q=0.1", have), Some("de"));
        assert_eq!(choose("fr;q=0, en;q=0.1", have), Some("en"));
        assert_eq!(choose("es, it", have), None);
        assert_eq!(choose("*", have), None);
        assert_eq!(choose("", have), None);
        assert_eq!(choose("de;q=abc, fr;q=0.2", have), Some("fr"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let problems = parse("waiting:\n  title: Hallo\n  nope: x\n").expect_err("unknown key");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`waiting.nope`"), "{problems:?}");
        let ok = parse("waiting:\n  title: \"{name} wird geweckt…\"\n").expect("valid");
        assert_eq!(ok["waiting.title"], "{name} wird geweckt…");
        assert!(parse("[1, 2]").is_err());
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill("{a} and {b} {c}", &[("a", "x"), ("b", "{a}")]),
            "x and {a} {c}"
        );
        assert_eq!(fill("{", &[]), "{");
    }
}
