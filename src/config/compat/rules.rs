//! The original engine's rules file (`rules:` with `pattern`, `app_name`,
//! `app_max_idle_time` in minutes, `linked_apps`): each rule becomes a rule of the new
//! configuration, its regex anchored to whole names as paastis matches them, with a notice
//! where that changes which apps it takes.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{ConfigError, Entry, Mapped, Notice};
use crate::config::format_duration;

/// The original rules file -> `rules`.
pub(super) fn original_rules(rules: &Value, mapped: &mut Mapped) {
    let mut entry = Entry::new(&["rules"], "the original rules file");
    let Some(items) = rules.as_array() else {
        return;
    };
    let mut converted = Vec::new();
    for (index, rule) in items.iter().enumerate() {
        let at = format!("rules[{index}]");
        let from = |key: &str| format!("original {at}.{key}");
        entry.origins.push((at.clone(), format!("original {at}")));
        let Some(fields) = rule.as_object() else {
            // Left for validation to report (`expected a mapping`).
            converted.push(rule.clone());
            continue;
        };
        let mut out = Map::new();
        match fields.get("pattern") {
            Some(Value::String(pattern)) if !pattern.is_empty() => {
                out.insert("pattern".to_owned(), Value::String(pattern.clone()));
                entry
                    .origins
                    .push((format!("{at}.pattern"), from("pattern")));
                mapped.patterns.push((index, pattern.clone()));
                if let Some(message) = anchoring_notice(index, pattern) {
                    entry.notes.push(Notice::warning(message));
                }
            }
            Some(Value::Number(number)) => {
                // YAML read `pattern: 123` as a number; the original engine's RegExp read
                // it as text.
                let pattern = number.to_string();
                out.insert("pattern".to_owned(), Value::String(pattern.clone()));
                entry
                    .origins
                    .push((format!("{at}.pattern"), from("pattern")));
                mapped.patterns.push((index, pattern.clone()));
                if let Some(message) = anchoring_notice(index, &pattern) {
                    entry.notes.push(Notice::warning(message));
                }
            }
            _ => entry.errors.push(ConfigError {
                path: format!("{at}.pattern (from {})", from("pattern")),
                message:
                    "is required (a regex; the original engine matched it anywhere in the app name)"
                        .to_owned(),
            }),
        }
        if let Some(minutes) = fields.get("app_max_idle_time") {
            let path = format!("{at}.max_idle");
            entry
                .origins
                .push((path.clone(), from("app_max_idle_time")));
            match idle_minutes(minutes) {
                Ok((value, note)) => {
                    out.insert("max_idle".to_owned(), Value::String(value));
                    if let Some(note) = note {
                        entry.notes.push(Notice::info(format!(
                            "original {at}.app_max_idle_time: {note}"
                        )));
                    }
                }
                Err(message) => entry.errors.push(ConfigError {
                    path: format!("{path} (from {})", from("app_max_idle_time")),
                    message,
                }),
            }
        }
        if let Some(linked) = fields.get("linked_apps") {
            let path = format!("{at}.linked_apps");
            entry.origins.push((path.clone(), from("linked_apps")));
            match linked {
                Value::Array(names) => {
                    let mut out_names = Vec::new();
                    for (position, name) in names.iter().enumerate() {
                        entry.origins.push((
                            format!("{path}[{position}]"),
                            format!("original {at}.linked_apps[{position}]"),
                        ));
                        match name {
                            Value::String(name) => {
                                out_names.push(Value::String(braced_captures(name)));
                            }
                            other => out_names.push(other.clone()),
                        }
                    }
                    out.insert("linked_apps".to_owned(), Value::Array(out_names));
                }
                Value::Null => {}
                other => {
                    out.insert("linked_apps".to_owned(), other.clone());
                }
            }
        }
        if fields.contains_key("app_name") {
            entry.notes.push(Notice::warning(format!(
                "original {at}.app_name is ignored: the original engine only used it to rename \
                 the app's entry in its registry, which paastis does not have"
            )));
        }
        for key in ["group_name", "provider_name", "provider_zone", "name"] {
            if fields.contains_key(key) {
                entry.notes.push(Notice::info(format!(
                    "original {at}.{key} is ignored (the original engine never read it either)"
                )));
            }
        }
        converted.push(Value::Object(out));
    }
    entry.value = Value::Array(converted);
    mapped.entries.push(entry);
}

/// `app_max_idle_time` (minutes, a number or numeric text) as a duration, with a note
/// when its meaning had to be adapted.
fn idle_minutes(value: &Value) -> Result<(String, Option<String>), String> {
    let minutes = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(minutes) = minutes.filter(|m| m.is_finite() && *m >= 0.0) else {
        return Err(format!(
            "`{}` is not a number of minutes (the original engine's unit)",
            match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }
        ));
    };
    if minutes == 0.0 {
        return Ok((
            "1m".to_owned(),
            Some(
                "0 stopped the app at every check (each minute) in the original engine; it becomes max_idle: 1m"
                    .to_owned(),
            ),
        ));
    }
    if minutes.fract() == 0.0 && minutes <= 1e9 {
        return Ok((format!("{minutes}m"), None));
    }
    // Clamped to 1..1e12, so the conversion is exact.
    let seconds = (minutes * 60.0).round().clamp(1.0, 1e12) as u64;
    Ok((format_duration(Duration::from_secs(seconds)), None))
}

/// The original engine replaced `$1` literally, so `pr$1front` worked; in paastis `$1front`
/// would name a capture group `1front`: write such captures as `${1}`.
fn braced_captures(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let bytes = template.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' {
            let digits = bytes[index + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let next = bytes.get(index + 1 + digits);
            if digits > 0 && next.is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
                out.push_str("${");
                out.push_str(&template[index + 1..index + 1 + digits]);
                out.push('}');
                index += 1 + digits;
                continue;
            }
        }
        let char_len = template[index..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&template[index..index + char_len]);
        index += char_len;
    }
    out
}

/// How a regex is anchored: whether it already matches only whole names (or anything
/// containing a match, with `.*` at both ends), which the original engine's unanchored
/// search and paastis's whole-name match agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchoring {
    start: bool,
    end: bool,
    /// A `|` outside any group: anchors at the ends then bind one branch only.
    alternation: bool,
}

fn anchoring(pattern: &str) -> Anchoring {
    let chars: Vec<char> = pattern.chars().collect();
    let escaped_at = |position: usize| {
        chars[..position]
            .iter()
            .rev()
            .take_while(|c| **c == '\\')
            .count()
            % 2
            == 1
    };
    let mut depth = 0usize;
    let mut class = false;
    let mut alternation = false;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c == '\\' {
            index += 2;
            continue;
        }
        if class {
            if c == ']' {
                class = false;
            }
        } else {
            match c {
                '[' => {
                    class = true;
                    // `[]...]` and `[^]...]`: a leading `]` is a literal.
                    if chars.get(index + 1) == Some(&'^') {
                        index += 1;
                    }
                    if chars.get(index + 1) == Some(&']') {
                        index += 1;
                    }
                }
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                '|' if depth == 0 => alternation = true,
                _ => {}
            }
        }
        index += 1;
    }
    let start = pattern.starts_with('^') || pattern.starts_with("\\A") || pattern.starts_with(".*");
    let len = chars.len();
    let end = (len >= 1 && chars[len - 1] == '$' && !escaped_at(len - 1))
        || pattern.ends_with("\\z") && !escaped_at(len - 2)
        || (len >= 2 && chars[len - 1] == '*' && chars[len - 2] == '.' && !escaped_at(len - 2));
    Anchoring {
        start,
        end,
        alternation,
    }
}

/// The warning for a rule whose pattern now matches fewer apps, with the pattern that
/// keeps the original meaning; `None` when anchoring changes nothing.
fn anchoring_notice(index: usize, pattern: &str) -> Option<String> {
    let anchoring = anchoring(pattern);
    if anchoring.start && anchoring.end && !anchoring.alternation {
        return None;
    }
    let (prefix, suffix) = if anchoring.alternation {
        (".*", ".*")
    } else {
        (
            if anchoring.start { "" } else { ".*" },
            if anchoring.end { "" } else { ".*" },
        )
    };
    let kept = if anchoring.alternation {
        format!("{prefix}(?:{pattern}){suffix}")
    } else {
        format!("{prefix}{pattern}{suffix}")
    };
    let literal = pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let example = if !literal {
        String::new()
    } else if !anchoring.end {
        format!(" (e.g. it no longer matches `{pattern}-x`)")
    } else {
        format!(" (e.g. it no longer matches `x-{pattern}`)")
    };
    Some(format!(
        "original rules[{index}].pattern `{pattern}` matched anywhere in an app name in the \
         original engine; paastis matches whole names, so names that only contain a match \
         are no longer affected{example}; write `{kept}` to keep the original meaning"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{original, run};
    use super::*;
    use serde_json::json;

    #[test]
    fn original_rules_become_rules() {
        let rules = original(include_str!(
            "../../../tests/support/compat/original-paastis.yml"
        ));
        let outcome = run("", &[], Some(&rules));
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(
            outcome.tree,
            json!({"rules": [
                {"pattern": "shop-pr(\\d+)-front", "linked_apps": ["shop-pr$1-back"], "max_idle": "30m"},
                {"pattern": "^docs-v(\\d+)$", "linked_apps": ["docs-v${1}search"], "max_idle": "1m"},
                {"pattern": "billing"},
                {"pattern": ".*-demo.*", "max_idle": "2m30s"},
            ]})
        );
        let messages = outcome.messages();
        let expected = [
            "warning: original rules[0].pattern `shop-pr(\\d+)-front` matched anywhere in an app name in the original engine; paastis matches whole names, so names that only contain a match are no longer affected; write `.*shop-pr(\\d+)-front.*` to keep the original meaning",
            "note: original rules[1].app_max_idle_time: 0 stopped the app at every check (each minute) in the original engine; it becomes max_idle: 1m",
            "warning: original rules[2].pattern `billing` matched anywhere in an app name in the original engine; paastis matches whole names, so names that only contain a match are no longer affected (e.g. it no longer matches `billing-x`); write `.*billing.*` to keep the original meaning",
            "warning: original rules[2].app_name is ignored: the original engine only used it to rename the app's entry in its registry, which paastis does not have",
            "note: original rules[3].group_name is ignored (the original engine never read it either)",
        ];
        assert_eq!(messages, expected);
        let origin = |path: &str| outcome.provenance.origins.get(path).cloned();
        assert_eq!(
            origin("rules[0].max_idle").as_deref(),
            Some("original rules[0].app_max_idle_time")
        );
        assert_eq!(
            origin("rules[1].linked_apps[0]").as_deref(),
            Some("original rules[1].linked_apps[0]")
        );
    }

    #[test]
    fn bad_original_rules_are_errors() {
        let rules = original(
            "rules:\n  - linked_apps: [a]\n  - pattern: a\n    app_max_idle_time: soon\n  - pattern: b\n    app_max_idle_time: -1\n",
        );
        let outcome = run("", &[], Some(&rules));
        assert_eq!(
            outcome.errors,
            vec![
                "rules[0].pattern (from original rules[0].pattern): is required (a regex; the original engine matched it anywhere in the app name)",
                "rules[1].max_idle (from original rules[1].app_max_idle_time): `soon` is not a number of minutes (the original engine's unit)",
                "rules[2].max_idle (from original rules[2].app_max_idle_time): `-1` is not a number of minutes (the original engine's unit)",
            ]
        );
    }

    #[test]
    fn anchored_patterns_keep_their_meaning() {
        // (pattern, whether anchoring changes what it matches, the pattern keeping the
        // original meaning)
        let cases = [
            ("^review-.*$", false, ""),
            (".*fastify.*", false, ""),
            (r"\Apr-\d+\z", false, ""),
            ("^pr-.*", false, ""),
            ("review-.*", true, ".*review-.*"),
            (r"^pr-\d+", true, r"^pr-\d+.*"),
            ("front$", true, ".*front$"),
            (r"front\$", true, r".*front\$.*"),
            (r"a\.*", true, r".*a\.*.*"),
            ("a|b", true, ".*(?:a|b).*"),
            ("^(a|b)$", false, ""),
            ("^[|]$", false, ""),
        ];
        let names = [
            "review-1",
            "x-review-1",
            "pr-12",
            "pr-12-x",
            "x-pr-12",
            "front",
            "a-front",
            "front$",
            "a-front$-x",
            "a",
            "a.",
            "xa..y",
            "b",
            "ab",
            "|",
            "x|",
        ];
        for (pattern, changes, kept) in cases {
            let notice = anchoring_notice(0, pattern);
            assert_eq!(notice.is_some(), changes, "{pattern}: {notice:?}");
            let Some(notice) = notice else {
                continue;
            };
            assert!(
                notice.contains(&format!("write `{kept}`")),
                "{pattern}: {notice}"
            );
            // The suggested pattern, matched whole, selects what the original matched
            // anywhere.
            let anywhere = regex::Regex::new(pattern).expect("regex");
            let whole = regex::Regex::new(&format!("^(?:{kept})$")).expect("regex");
            for name in names {
                assert_eq!(
                    anywhere.is_match(name),
                    whole.is_match(name),
                    "{pattern} / {kept} on {name}"
                );
            }
        }
    }

    #[test]
    fn captures_before_letters_are_braced() {
        for (template, expected) in [
            ("review-pr$1-back", "review-pr$1-back"),
            ("pr$1front", "pr${1}front"),
            ("$12x-$2", "${12}x-$2"),
            ("$name", "$name"),
            ("plain", "plain"),
            ("é$1é", "é$1é"),
        ] {
            assert_eq!(braced_captures(template), expected);
        }
    }
}
