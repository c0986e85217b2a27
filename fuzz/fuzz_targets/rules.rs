//! Rule patterns and `$1` interpolation (`paastis::rules`), and the config's name patterns
//! (`paastis::patterns`): a pattern, an app name, an alias template, then linked-app
//! templates, one per line:
//!
//! ```text
//! review-pr(\d+)-front
//! review-pr42-front
//! pr$1
//! review-pr${1}-back
//! ```
//!
//! Checks: a rule pattern is accepted exactly when it is a valid regex (the anchoring never
//! changes what it means); a rule applies only to names its regex matches; expansions are
//! never empty nor the app itself, and a template without `$` stays as written; a plain
//! text pattern matched anywhere matches every text that contains it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paastis::model::{Pattern, Plain};
use paastis::rules::{Rule, Rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or_default();
    let name = lines.next().unwrap_or_default();
    let alias = lines.next();
    let linked: Vec<String> = lines.map(str::to_owned).collect();

    check_patterns(pattern, name);

    let alone = regex::Regex::new(pattern);
    let rule = Rule::new(pattern);
    assert_eq!(
        rule.is_ok(),
        alone.is_ok(),
        "{pattern:?}: the rule says {:?}, the regex alone {:?}",
        rule.as_ref().err(),
        alone.as_ref().err()
    );
    let (Ok(mut rule), Ok(alone)) = (rule, alone) else {
        return;
    };
    rule.alias = alias.map(str::to_owned);
    rule.linked_apps = Some(linked.clone());
    let resolved = Rules(vec![rule]).resolve(name);
    let applied = resolved.alias.is_some() || !resolved.linked_apps.is_empty();
    if applied {
        assert!(alone.is_match(name), "{pattern:?} applied to {name:?}");
    }
    if let Some(alias) = &resolved.alias {
        assert!(!alias.is_empty());
    }
    for app in &resolved.linked_apps {
        assert!(!app.is_empty() && app != name, "{app:?} linked to {name:?}");
    }
    if applied {
        if let Some(template) = alias.filter(|t| !t.contains('$') && !t.is_empty()) {
            assert_eq!(resolved.alias.as_deref(), Some(template));
        }
        let plain: Vec<&String> = linked
            .iter()
            .filter(|t| !t.contains('$') && !t.is_empty() && *t != name)
            .collect();
        let expanded: Vec<&String> = resolved
            .linked_apps
            .iter()
            .filter(|app| linked.contains(app))
            .collect();
        for template in plain {
            assert!(expanded.contains(&template), "{template:?} lost");
        }
    }
});

fn check_patterns(pattern: &str, text: &str) {
    for plain in [Plain::Whole, Plain::Anywhere] {
        let parsed = Pattern::parse(pattern, plain);
        if let Some(expression) = pattern.strip_prefix("re:") {
            assert_eq!(
                parsed.is_ok(),
                regex::Regex::new(expression).is_ok(),
                "{pattern:?}"
            );
        }
        let Ok(parsed) = parsed else {
            assert!(
                pattern.is_empty()
                    || pattern.starts_with("re:")
                    || pattern.contains(['*', '?', '[', '{', '\\', ']', '}', ',']),
                "plain text refused: {pattern:?}"
            );
            continue;
        };
        assert_eq!(parsed.as_str(), pattern);
        let _ = parsed.matches(text);
        let is_plain = !pattern.starts_with("re:") && !pattern.contains(['*', '?', '[', '{']);
        if plain == Plain::Anywhere && is_plain {
            let around = format!("{text}{pattern}{text}");
            assert!(parsed.matches(&around), "{pattern:?} in {around:?}");
            assert!(
                parsed.matches(&pattern.to_ascii_uppercase()),
                "{pattern:?} any case"
            );
        }
    }
}
