//! Per-app rules (`rules:`) and the discovery filter (`discovery.include` / `exclude` /
//! `self_app`): which apps are managed at all, and what each managed app gets on top of the
//! defaults (policy, aliases, linked apps, formation).
//!
//! A rule's `pattern` is a regex matched against the whole app name; its captures (`$1`,
//! `${1}`, `$name`) can be used in `linked_apps` and `alias`. Every matching rule applies, in
//! order, later keys overriding earlier ones. This module only answers questions about
//! names: it never looks at app state nor calls a provider. The `rules` section is read
//! here too, with the shared [`crate::settings::Reader`].

use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::model::Formation;
use crate::model::Pattern;
use crate::model::PolicyOverride;
use crate::settings::Reader;

/// Which apps discovery manages.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// An app is managed only if it matches one of these (empty: every app).
    pub include: Vec<Pattern>,
    /// ... and none of these.
    pub exclude: Vec<Pattern>,
    /// The engine's own app when it runs on a platform: never managed (it would put
    /// itself to sleep).
    pub self_app: Option<String>,
}

impl Filter {
    /// Whether the app called `name` (with these extra ids, e.g. Clever Cloud's `app_…`)
    /// is managed.
    pub fn manages(&self, name: &str, ids: &[String]) -> bool {
        if let Some(own) = &self.self_app
            && (own == name || ids.iter().any(|id| id == own))
        {
            return false;
        }
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}

/// One `rules:` entry.
#[derive(Clone)]
pub struct Rule {
    /// The pattern as written, for messages.
    pub source: String,
    /// The pattern, anchored to the whole name.
    pattern: Regex,
    /// Policy keys the rule sets.
    pub policy: PolicyOverride,
    /// Apps woken and kept awake with the matching one (templates with captures).
    pub linked_apps: Option<Vec<String>>,
    /// An extra route key (template with captures).
    pub alias: Option<String>,
    /// The formation to start when none is remembered.
    pub formation: Option<Formation>,
    /// Hooks for the matching apps, over the global ones.
    pub hooks: Option<crate::hooks::Hooks>,
    /// How the matching apps' visitor pages look, over the space's `page`.
    pub page: Option<crate::pages::PageSettings>,
    /// Webhooks that get the events of the matching apps (besides the space's).
    pub webhooks: Vec<crate::webhooks::Webhook>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("pattern", &self.source)
            .field("policy", &self.policy)
            .field("linked_apps", &self.linked_apps)
            .field("alias", &self.alias)
            .field("formation", &self.formation)
            .field("hooks", &self.hooks)
            .field("page", &self.page)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Rule {
    /// A rule matching the whole name against `pattern`; the error says what is wrong.
    pub fn new(pattern: &str) -> Result<Rule, String> {
        let invalid = |error: regex::Error| {
            format!(
                "`{pattern}` is not a valid regex: {}",
                crate::model::regex_problem(&error)
            )
        };
        // Checked alone first: wrapped, `a)|(b` would be a valid regex matching more than
        // whole names.
        Regex::new(pattern).map_err(invalid)?;
        // A pattern that ends in a `(?x)` comment would comment out the closing: a line
        // break ends the comment (and means nothing in that mode).
        let anchored = Regex::new(&format!("^(?:{pattern})$"))
            .or_else(|_| Regex::new(&format!("^(?:{pattern}\n)$")))
            .map_err(invalid)?;
        Ok(Rule {
            source: pattern.to_owned(),
            pattern: anchored,
            policy: PolicyOverride::default(),
            linked_apps: None,
            alias: None,
            formation: None,
            hooks: None,
            page: None,
            webhooks: Vec::new(),
        })
    }

    /// Whether it matches the app called `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.pattern.is_match(name)
    }
}

/// What the rules give one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Policy keys set by the matching rules (later rules win, key by key).
    pub policy: PolicyOverride,
    /// Names of the apps linked to it, captures substituted.
    pub linked_apps: Vec<String>,
    /// Extra route key, captures substituted.
    pub alias: Option<String>,
    /// Formation to start when none is remembered.
    pub formation: Option<Formation>,
    /// Hooks set by the matching rules (later rules win, key by key).
    pub hooks: crate::hooks::Hooks,
    /// `page` keys set by the matching rules (later rules win, key by key); laid over
    /// the space's `page`.
    pub page: crate::pages::PageSettings,
}

/// The `rules:` list.
#[derive(Debug, Clone, Default)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// What every rule matching `name` gives it.
    pub fn resolve(&self, name: &str) -> Resolved {
        let mut resolved = Resolved::default();
        for rule in &self.0 {
            let Some(captures) = rule.pattern.captures(name) else {
                continue;
            };
            let expand = |template: &str| {
                let mut out = String::new();
                captures.expand(template, &mut out);
                out
            };
            resolved.policy = resolved.policy.then(&rule.policy);
            if let Some(linked) = &rule.linked_apps {
                resolved.linked_apps = linked
                    .iter()
                    .map(|t| expand(t))
                    .filter(|n| !n.is_empty() && n != name)
                    .collect();
            }
            if let Some(alias) = &rule.alias {
                let alias = expand(alias);
                resolved.alias = (!alias.is_empty()).then_some(alias);
            }
            if let Some(formation) = &rule.formation {
                resolved.formation = Some(formation.clone());
            }
            if let Some(hooks) = &rule.hooks {
                resolved.hooks = resolved.hooks.then(hooks);
            }
            if let Some(page) = &rule.page {
                resolved.page = resolved.page.then(page);
            }
        }
        resolved
    }

    /// Whether any rule exists.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Reader<'_> {
    /// `rules`: a list of per-app rules, each with a regex `pattern` (whole name).
    pub(crate) fn rules(&mut self, value: &Value, path: &str) -> crate::rules::Rules {
        let Some(items) = self.list(value, path) else {
            return crate::rules::Rules::default();
        };
        let mut rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let rule = match fields.take("pattern") {
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::rules::Rule::new(&text)
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
                None => {
                    self.error(
                        &format!("{item_path}.pattern"),
                        "is required (a regex matched against the whole app name)",
                    );
                    None
                }
            };
            let policy = self.policy_fields(&mut fields);
            let linked_apps = fields.take("linked_apps").map(|(v, p)| self.names(v, &p));
            let alias = fields
                .take("alias")
                .and_then(|(v, p)| self.non_empty_string(v, &p));
            let formation = fields
                .take("formation")
                .and_then(|(v, p)| self.formation(v, &p));
            let hooks = fields.take("hooks").map(|(v, p)| self.hooks(v, &p));
            let page = fields.take("page").map(|(v, p)| self.page(v, &p));
            let webhooks = self.section(&mut fields, "webhooks", Self::webhooks);
            self.finish(fields, &[]);
            if let Some(mut rule) = rule {
                rule.policy = policy;
                rule.linked_apps = linked_apps;
                rule.alias = alias;
                rule.formation = formation;
                rule.hooks = hooks;
                rule.page = page;
                rule.webhooks = webhooks;
                rules.push(rule);
            }
        }
        crate::rules::Rules(rules)
    }
}

/// The keys of one `rules:` entry besides the policy keys, as `Reader::rules` takes them.
pub const RULE_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "pattern",
            Kind::Text("regex"),
            "A regex matched against the whole app name; its captures ($1, ${1}, $name) may \
             be used in linked_apps and alias.",
        )
        .required(),
        Key::new(
            "linked_apps",
            Kind::List(&Kind::Text("app name")),
            "Apps woken with it, and kept awake while it is used.",
        ),
        Key::new(
            "alias",
            Kind::Text("route key"),
            "An extra route key: `pr$1` makes `pr42.<domain>` reach the app.",
        ),
        Key::new(
            "formation",
            Kind::Map("process type", &Kind::Integer { min: 0, max: 1000 }),
            "Containers per process type ({web: 1}), started when no formation is remembered.",
        ),
        Key::new(
            "hooks",
            Kind::Section(&[crate::hooks::HOOK_KEYS]),
            "Hooks for its apps, over the global `hooks`, key by key.",
        ),
        Key::new(
            "webhooks",
            crate::webhooks::WEBHOOKS,
            "Webhooks that get its apps' events, besides the space's `webhooks` (their ids \
             unique in the space).",
        ),
        Key::new(
            "page",
            crate::pages::PAGE,
            "How its apps' visitor pages look, over the space's `page`, key by key.",
        ),
    ]
};

/// A `rules:` entry: its own keys and the policy keys.
pub const RULE: crate::settings::Kind =
    crate::settings::Kind::Section(&[RULE_KEYS, crate::settings::POLICY_KEYS]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Plain;
    use std::time::Duration;

    fn rule(pattern: &str, setup: impl FnOnce(&mut Rule)) -> Rule {
        let mut rule = Rule::new(pattern).expect("valid");
        setup(&mut rule);
        rule
    }

    fn glob(text: &str) -> Pattern {
        Pattern::parse(text, Plain::Whole).expect("pattern")
    }

    #[test]
    fn filter_include_exclude_and_self() {
        // include, exclude, self_app, name, ids, managed
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
            bool,
        );
        let cases: &[Case] = &[
            (&[], &[], None, "anything", &[], true),
            (&["review-*"], &[], None, "review-1", &[], true),
            (&["review-*"], &[], None, "staging", &[], false),
            (
                &["review-*"],
                &["review-keep"],
                None,
                "review-keep",
                &[],
                false,
            ),
            (&[], &["re:^tmp-\\d+$"], None, "tmp-12", &[], false),
            (&[], &["re:^tmp-\\d+$"], None, "tmp-x", &[], true),
            (&[], &[], Some("paastis"), "paastis", &[], false),
            (&[], &[], Some("app_123"), "front", &["app_123"], false),
            (&[], &[], Some("paastis"), "paastis-demo", &[], true),
        ];
        for (include, exclude, self_app, name, ids, expected) in cases {
            let filter = Filter {
                include: include.iter().map(|p| glob(p)).collect(),
                exclude: exclude.iter().map(|p| glob(p)).collect(),
                self_app: self_app.map(str::to_owned),
            };
            assert_eq!(
                filter.manages(name, &ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                *expected,
                "{include:?} {exclude:?} {self_app:?} {name}"
            );
        }
    }

    #[test]
    fn rules_apply_in_order_with_captures() {
        let rules = Rules(vec![
            rule(r"review-pr(\d+)-front", |r| {
                r.linked_apps = Some(vec!["review-pr$1-back".into(), "review-pr${1}-db".into()]);
                r.alias = Some("pr$1".into());
                r.policy.max_idle = Some(Some(Duration::from_secs(1800)));
                r.formation = Some([("web".to_owned(), 2)].into());
            }),
            rule(r"review-.*", |r| {
                r.policy.max_idle = Some(Some(Duration::from_secs(600)));
                r.policy.wake_timeout = Some(Duration::from_secs(180));
            }),
            rule(r"(?P<base>.+)-front", |r| {
                r.alias = Some("$base".into());
            }),
        ]);
        let front = rules.resolve("review-pr42-front");
        assert_eq!(
            front.linked_apps,
            vec!["review-pr42-back", "review-pr42-db"]
        );
        assert_eq!(front.alias.as_deref(), Some("review-pr42"));
        assert_eq!(front.policy.max_idle, Some(Some(Duration::from_secs(600))));
        assert_eq!(front.policy.wake_timeout, Some(Duration::from_secs(180)));
        assert_eq!(front.formation, Some([("web".to_owned(), 2)].into()));

        let back = rules.resolve("review-pr42-back");
        assert!(back.linked_apps.is_empty());
        assert_eq!(back.alias, None);
        assert_eq!(back.policy.max_idle, Some(Some(Duration::from_secs(600))));

        // Whole-name matching: a pattern matching inside the name does not apply.
        let other = rules.resolve("old-review-pr1-front-2");
        assert_eq!(other, Resolved::default());
        assert!(Rule::new("(").is_err());
    }

    #[test]
    fn a_pattern_cannot_close_its_anchoring() {
        // Wrapped as `^(?:a)|(b)$`, this would match any name starting with `a`.
        for pattern in ["a)|(b", "s)atu(x", "x)(?:"] {
            assert!(Rule::new(pattern).is_err(), "{pattern}");
        }
        let rules = Rules(vec![rule(r"review-(\d+)|shop", |r| {
            r.alias = Some("r$1".into());
        })]);
        assert_eq!(rules.resolve("review-7").alias.as_deref(), Some("r7"));
        assert_eq!(rules.resolve("shop").alias.as_deref(), Some("r"));
        // The alternation is anchored as a whole.
        assert_eq!(rules.resolve("review-7-old"), Resolved::default());
        assert_eq!(rules.resolve("old-shop"), Resolved::default());
        // Nor can a comment of the verbose mode hide the anchoring's end.
        let commented = Rules(vec![rule(r"(?x) review-(\d+)  # review apps", |r| {
            r.alias = Some("r$1".into());
        })]);
        assert_eq!(commented.resolve("review-7").alias.as_deref(), Some("r7"));
        assert_eq!(commented.resolve("review-7-old"), Resolved::default());
        assert_eq!(commented.resolve("old-review-7"), Resolved::default());
    }
}
