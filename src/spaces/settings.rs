//! A space's settings: a `spaces:` entry (its domains, providers, rules, schedules,
//! discovery, defaults, hooks, plan and tokens), the keys the top level shares with every
//! space, hosted mode (`hosted`), and a space document of the admin API, typed and read
//! with the shared [`Reader`]. Reading only: nothing here builds or starts a space.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::model::{Activity, Policy};
use crate::providers::ProviderConfig;
use crate::scheduler::Discovery;
use crate::secret::Secret;
use crate::settings::{ApiRules, ConfigErrors, Fields, Provenance, Reader, child, is_label, kind};

/// One `spaces:` entry: a tenant's domains, provider accounts, rules, schedules and plan.
#[derive(Debug, Clone)]
pub struct SpaceConfig {
    /// Its id (a DNS label, unique, never `default`).
    pub id: String,
    /// Its base domains (lowercased): a host under one of them is routed to this space
    /// only (the longest matching domain of every space decides).
    pub domains: Vec<String>,
    /// Its provider accounts.
    pub providers: Vec<crate::providers::ProviderConfig>,
    /// Its per-app rules.
    pub rules: crate::rules::Rules,
    /// Its schedules.
    pub schedules: Vec<crate::schedules::Schedule>,
    /// How its providers are listed.
    pub discovery: Discovery,
    /// Its apps' default policy.
    pub defaults: Policy,
    /// Its requests that do not count as activity.
    pub activity: Activity,
    /// Its hooks.
    pub hooks: crate::hooks::Hooks,
    /// Its webhooks (its rules' are in `rules`).
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// Its limits.
    pub plan: crate::plan::Plan,
    /// What a wake beyond its limits does.
    pub on_limit: crate::plan::OnLimit,
    /// API tokens scoped to this space.
    pub tokens: Vec<crate::secret::Secret>,
    /// How its visitor pages look (`page`); its rules' `page` blocks go over it.
    pub page: crate::pages::PageSettings,
}

impl SpaceConfig {
    /// Its webhooks and its rules', each with the apps it is for.
    pub fn webhook_targets(&self) -> Vec<crate::webhooks::Target> {
        let mut targets: Vec<crate::webhooks::Target> = self
            .webhooks
            .iter()
            .map(|webhook| crate::webhooks::Target {
                webhook: webhook.clone(),
                rule: None,
                only: None,
            })
            .collect();
        for rule in &self.rules.0 {
            for webhook in &rule.webhooks {
                let matcher = rule.clone();
                targets.push(crate::webhooks::Target {
                    webhook: webhook.clone(),
                    rule: Some(rule.source.clone()),
                    only: Some(std::sync::Arc::new(move |name: &str| matcher.matches(name))),
                });
            }
        }
        targets
    }

    /// What its lifecycle takes of these settings (at start, and at each reload), its
    /// upstreams allowed in `upstreams`.
    pub fn lifecycle_settings(
        &self,
        upstreams: crate::address::UpstreamScope,
    ) -> crate::lifecycle::Settings {
        crate::lifecycle::Settings {
            defaults: self.defaults.clone(),
            rules: self.rules.clone(),
            filter: self.discovery.filter.clone(),
            hooks: self.hooks.clone(),
            schedules: self.schedules.clone(),
            plan: self.plan.clone(),
            on_limit: self.on_limit,
            activity: self.activity.clone(),
            page: self.page.clone(),
            space: self.id.clone(),
            upstreams,
            webhooks: self.webhook_targets(),
            ..crate::lifecycle::Settings::default()
        }
    }
}

/// `hosted`: spaces managed through the admin API.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// Seals provider secrets in the database (`PAASTIS_MASTER_KEY`, required).
    pub key: crate::spaces::MasterKey,
    /// Whether API-created spaces may point providers at other API addresses
    /// (`hosted.custom_api_urls`, default false: the platforms' public APIs only, so a
    /// tenant cannot make the engine call hosts of its network).
    pub custom_api_urls: bool,
    /// Whether API-created spaces' apps may be at internal addresses (loopback, private,
    /// link-local, metadata; `hosted.private_upstreams`, default false: public ones only).
    pub private_upstreams: bool,
    /// How often the stored spaces are read again, for changes made through another
    /// instance (`hosted.sync_every`, default 5 s).
    pub sync_every: Duration,
}

/// The default `hosted.sync_every`.
pub const DEFAULT_HOSTED_SYNC: Duration = Duration::from_secs(5);

/// The keys the top level and every space have alike (see [`Reader::tenant`]).
pub(crate) struct Tenant {
    /// `defaults`.
    pub(crate) defaults: Policy,
    /// `discovery`.
    pub(crate) discovery: Discovery,
    /// `providers`.
    pub(crate) providers: Vec<ProviderConfig>,
    /// `activity`.
    pub(crate) activity: Activity,
    /// `rules`.
    pub(crate) rules: crate::rules::Rules,
    /// `hooks`.
    pub(crate) hooks: crate::hooks::Hooks,
    /// `webhooks`.
    pub(crate) webhooks: Vec<crate::webhooks::Webhook>,
    /// `schedules`.
    pub(crate) schedules: Vec<crate::schedules::Schedule>,
    /// `plan`.
    pub(crate) plan: crate::plan::Plan,
    /// `on_limit`.
    pub(crate) on_limit: crate::plan::OnLimit,
    /// `page`.
    pub(crate) page: crate::pages::PageSettings,
}

impl Reader<'_> {
    /// `spaces`: tenants, each with its own domains (unique across spaces and the top-level
    /// `domains`), providers, rules, schedules, plan and tokens.
    pub(crate) fn spaces(
        &mut self,
        value: &Value,
        path: &str,
        top_domains: &[String],
    ) -> Vec<SpaceConfig> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut spaces: Vec<SpaceConfig> = Vec::new();
        let mut domain_owners: std::collections::HashMap<String, String> = top_domains
            .iter()
            .map(|d| (d.clone(), "the top-level `domains`".to_owned()))
            .collect();
        let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            if let Some(space) = self.space(item, &item_path, &mut ids, &mut domain_owners) {
                spaces.push(space);
            }
        }
        spaces
    }

    /// One space entry; `ids` and `domain_owners` hold what earlier entries (or the
    /// running engine) took, and get this entry's.
    fn space(
        &mut self,
        item: &Value,
        item_path: &str,
        ids: &mut HashMap<String, String>,
        domain_owners: &mut HashMap<String, String>,
    ) -> Option<SpaceConfig> {
        let mut fields = self.mapping(item, item_path)?;
        let errors_before = self.errors.len();
        let owner = if item_path.is_empty() {
            "this space".to_owned()
        } else {
            format!("`{item_path}`")
        };
        let id = match fields.take("id") {
            Some((v, p)) => self.string(v, &p).and_then(|id| {
                let id = id.trim().to_owned();
                if id == crate::model::DEFAULT_SPACE {
                    self.error(&p, "`default` is the top-level configuration's space");
                    None
                } else if !is_label(&id) {
                    self.error(
                        &p,
                        format!("`{id}` is not a space id (lowercase letters, digits, `-`)"),
                    );
                    None
                } else if let Some(first) = ids.get(&id) {
                    self.error(&p, format!("duplicate space id `{id}` (first at {first})"));
                    None
                } else {
                    ids.insert(id.clone(), p.clone());
                    Some(id)
                }
            }),
            None => {
                self.error(
                    &child(item_path, "id"),
                    "is required (a DNS label, e.g. acme)",
                );
                None
            }
        };
        let domains = match fields.take("domains") {
            Some((v, p)) => {
                let domains = self.domains(v, &p);
                if domains.is_empty() && self.errors.len() == errors_before {
                    self.error(&p, "must list at least one domain (the space's hosts)");
                }
                for (n, domain) in domains.iter().enumerate() {
                    let at = format!("{p}[{n}]");
                    // A tenant's domain above or under another space's would take some
                    // of that space's hosts (the longest domain decides).
                    if self.api.is_some()
                        && let Some((other, first)) = domain_owners.iter().find(|(other, first)| {
                            **first != owner
                                && (domain.ends_with(&format!(".{other}"))
                                    || other.ends_with(&format!(".{domain}")))
                        })
                    {
                        let message = format!(
                            "`{domain}` would share hosts with `{other}`, a domain of {first}"
                        );
                        self.error(&at, message);
                        continue;
                    }
                    match domain_owners.get(domain) {
                        Some(first) => {
                            self.error(&at, format!("`{domain}` is already a domain of {first}"))
                        }
                        None => {
                            domain_owners.insert(domain.clone(), owner.clone());
                        }
                    }
                }
                domains
            }
            None => {
                self.error(
                    &child(item_path, "domains"),
                    "is required (the space's base domains, e.g. [acme.example.com])",
                );
                Vec::new()
            }
        };
        let Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            webhooks,
            schedules,
            plan,
            on_limit,
            page,
        } = self.tenant(&mut fields, &child(item_path, "providers"));
        let tokens = match fields.take("tokens") {
            None => Vec::new(),
            Some((_, p)) if self.api.is_some() => {
                self.error(
                    &p,
                    "tokens are issued by the engine (POST /api/v1/spaces/{id}/tokens), not given",
                );
                Vec::new()
            }
            Some((v, p)) => self.tokens(v, &p),
        };
        self.finish(fields, &[]);
        if let (Some(id), true) = (id, self.errors.len() == errors_before) {
            return Some(SpaceConfig {
                id,
                domains,
                providers,
                rules,
                schedules,
                discovery,
                defaults,
                activity,
                hooks,
                webhooks,
                plan,
                on_limit,
                tokens,
                page,
            });
        }
        None
    }

    /// What the top level (the default space) and each space have alike: their
    /// providers, rules, schedules, discovery, defaults, activity, hooks and plan. A plan's
    /// provider count is checked here (its error at `providers_path`).
    pub(crate) fn tenant(&mut self, fields: &mut Fields<'_>, providers_path: &str) -> Tenant {
        let defaults = match fields.take("defaults") {
            Some((v, p)) => {
                let overrides = self.policy_section(v, &p, &[]);
                Policy::default().with(&overrides)
            }
            None => Policy::default(),
        };
        let discovery = self.section(fields, "discovery", Self::discovery);
        let providers = self.section(fields, "providers", Self::providers);
        let activity = self.section(fields, "activity", Self::activity);
        let rules = self.section(fields, "rules", Self::rules);
        let hooks = self.section(fields, "hooks", Self::hooks);
        let webhooks = self.section(fields, "webhooks", Self::webhooks);
        self.webhook_ids(&webhooks, &rules);
        let schedules = self.section(fields, "schedules", Self::schedules);
        let plan = fields
            .take("plan")
            .and_then(|(v, p)| self.plan(v, &p))
            .unwrap_or_default();
        if let Some(allowed) = plan.providers
            && providers.len() > allowed
        {
            self.error(
                providers_path,
                format!(
                    "{} provider accounts, but the plan {plan} allows {allowed}",
                    providers.len()
                ),
            );
        }
        let on_limit = match fields.take("on_limit") {
            None => crate::plan::OnLimit::default(),
            Some((v, p)) => self.on_limit(v, &p),
        };
        let page = match fields.take("page") {
            None => crate::pages::PageSettings::default(),
            Some((v, p)) => self.page(v, &p),
        };
        // A language is the block's, or (for a rule) its own or the space's.
        self.page_language(&page, None);
        for rule in &rules.0 {
            if let Some(rule_page) = &rule.page {
                self.page_language(rule_page, Some(&page));
            }
        }
        Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            webhooks,
            schedules,
            plan,
            on_limit,
            page,
        }
    }

    /// Every webhook id of a space (its own and its rules') is unique: the admin API
    /// names them by it.
    fn webhook_ids(&mut self, webhooks: &[crate::webhooks::Webhook], rules: &crate::rules::Rules) {
        let mut seen: HashMap<&str, String> = webhooks
            .iter()
            .map(|w| (w.id.as_str(), "webhooks".to_owned()))
            .collect();
        for (index, rule) in rules.0.iter().enumerate() {
            for (at, webhook) in rule.webhooks.iter().enumerate() {
                let path = format!("rules[{index}].webhooks[{at}].id");
                if let Some(first) = seen.get(webhook.id.as_str()) {
                    self.error(
                        &path,
                        format!("`{}` is already the id of a webhook in {first}", webhook.id),
                    );
                } else {
                    seen.insert(&webhook.id, format!("rules[{index}]"));
                }
            }
        }
    }

    /// A space's API tokens: secrets of 16 characters or more.
    fn tokens(&mut self, value: &Value, path: &str) -> Vec<Secret> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut tokens = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item.as_str().map(str::trim) {
                Some(token) if token.len() >= 16 => tokens.push(Secret::new(token)),
                // The value itself is never repeated: it is a secret.
                Some(_) => self.error(&item_path, "must be at least 16 characters"),
                None => self.error(
                    &item_path,
                    format!("expected a string, found {}", kind(item)),
                ),
            }
        }
        tokens
    }

    /// `hosted`: `true`, or a mapping of its settings (`false`: off). Needs
    /// `PAASTIS_MASTER_KEY` and an admin token (`admin_token`, as read from `admin`).
    pub(crate) fn hosted(
        &mut self,
        value: &Value,
        path: &str,
        admin_token: Option<&Secret>,
    ) -> Option<Hosted> {
        let mut custom_api_urls = false;
        let mut private_upstreams = false;
        let mut sync_every = DEFAULT_HOSTED_SYNC;
        match value {
            Value::Bool(false) => return None,
            Value::Bool(true) => {}
            Value::Object(_) => {
                let mut fields = self.mapping(value, path)?;
                custom_api_urls = match fields.take("custom_api_urls") {
                    None => false,
                    Some((Value::Bool(b), _)) => *b,
                    Some((other, p)) => {
                        self.error(&p, format!("expected true or false, found {}", kind(other)));
                        false
                    }
                };
                private_upstreams = match fields.take("private_upstreams") {
                    None => false,
                    Some((Value::Bool(b), _)) => *b,
                    Some((other, p)) => {
                        self.error(&p, format!("expected true or false, found {}", kind(other)));
                        false
                    }
                };
                if let Some(every) = fields
                    .take("sync_every")
                    .and_then(|(v, p)| self.positive_duration(v, &p))
                {
                    sync_every = every;
                }
                self.finish(fields, &[]);
            }
            other => {
                self.error(
                    path,
                    format!("expected true, false or a mapping, found {}", kind(other)),
                );
                return None;
            }
        }
        if admin_token.is_none() {
            self.error(
                path,
                "hosted mode needs admin.token (or PAASTIS_ADMIN_TOKEN): only the admin creates spaces",
            );
        }
        let key = match &self.provenance.master_key {
            None => {
                self.error(
                    path,
                    "hosted mode needs PAASTIS_MASTER_KEY, the key that seals provider secrets \
                     (32 random bytes in base64: `openssl rand -base64 32`); keep it safe, \
                     the stored secrets cannot be read without it",
                );
                None
            }
            Some(text) => match crate::spaces::MasterKey::parse(text.expose()) {
                Ok(key) => Some(key),
                Err(message) => {
                    self.error(path, format!("PAASTIS_MASTER_KEY {message}"));
                    None
                }
            },
        };
        Some(Hosted {
            key: key?,
            custom_api_urls,
            private_upstreams,
            sync_every,
        })
    }
}

/// Reads a space document of the admin API: a `spaces:` entry, without what a tenant may
/// not ask of the engine's host (see [`ApiRules`]). `domains_taken` maps each domain of
/// the other spaces to a description of its owner. No `${VAR}` is expanded, no file is
/// read, and commands (hooks, `process` providers) are refused. Every error is collected,
/// with its path in the document.
pub fn api_space(
    document: &Value,
    rules: ApiRules,
    domains_taken: &HashMap<String, String>,
) -> Result<SpaceConfig, ConfigErrors> {
    let provenance = Provenance::default();
    let mut validator = Reader::new(&provenance);
    validator.api = Some(rules);
    let mut ids = HashMap::new();
    let mut owners = domains_taken.clone();
    if !document.is_object() {
        validator.error(
            "",
            format!("expected a mapping (a space), found {}", kind(document)),
        );
        return Err(ConfigErrors(validator.errors));
    }
    match validator.space(document, "", &mut ids, &mut owners) {
        Some(space) if validator.errors.is_empty() => Ok(space),
        _ => Err(ConfigErrors(validator.errors)),
    }
}

/// The keys the top level (the default space) and each space have alike, as
/// `Reader::tenant` takes them.
pub const TENANT_KEYS: &[crate::settings::Key] = {
    use crate::settings::{ACTIVITY_KEYS, Key, Kind, POLICY_KEYS};
    &[
        Key::new(
            "defaults",
            Kind::Section(&[POLICY_KEYS]),
            "The policy of every app, unless a rule or the app overrides it.",
        ),
        Key::new(
            "discovery",
            Kind::Section(&[crate::scheduler::DISCOVERY_KEYS]),
            "How and which apps are found on the providers.",
        ),
        Key::new(
            "providers",
            Kind::List(&crate::providers::PROVIDER),
            "The provider accounts whose apps are managed.",
        ),
        Key::new(
            "activity",
            Kind::Section(&[ACTIVITY_KEYS]),
            "Requests that never wake an app and never count as activity.",
        ),
        Key::new(
            "rules",
            Kind::List(&crate::rules::RULE),
            "Per-app settings by name; every matching rule applies, in order, later keys \
             overriding earlier ones.",
        ),
        Key::new(
            "hooks",
            Kind::Section(&[crate::hooks::HOOK_KEYS]),
            "Shell commands (sh -c) around starts and stops.",
        ),
        Key::new(
            "webhooks",
            crate::webhooks::WEBHOOKS,
            "HTTP receivers of the events (signed, retried, recorded), as JSON or Slack and \
             Discord messages; rules may add theirs.",
        ),
        Key::new(
            "schedules",
            Kind::List(&Kind::Section(&[crate::schedules::SCHEDULE_KEYS])),
            "Sleep, wake and keep-awake times, each in its own time zone.",
        ),
        Key::new(
            "plan",
            crate::plan::PLAN,
            "The limits: free (1 provider, 5 running apps per provider), team (3, 15), \
             enterprise (5, 100), unlimited, or a custom mapping.",
        )
        .default("unlimited"),
        Key::new(
            "on_limit",
            crate::plan::ON_LIMIT,
            "A wake beyond the plan's running apps: `reject` (429) or `evict_lru` (the least \
             recently active awake app of that provider is stopped first).",
        )
        .default("reject"),
        Key::new(
            "page",
            crate::pages::PAGE,
            "How the visitor pages (waiting, errors, the dashboard's login) look and speak: \
             theme, template, title, logo, accent color, CSS, languages.",
        ),
    ]
};

/// The keys of a `spaces:` entry besides [`TENANT_KEYS`], as `Reader::space` takes them.
pub const SPACE_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "id",
            Kind::Text("DNS label"),
            "The space's id: lowercase letters, digits, `-`; unique, not `default`.",
        )
        .required(),
        Key::new(
            "domains",
            Kind::List(&Kind::Text("domain")),
            "Its base domains, unique across spaces and the top-level `domains`: a host \
             under one of them reaches this space's apps only.",
        )
        .required(),
        Key::new(
            "tokens",
            Kind::List(&Kind::Secret),
            "API tokens scoped to the space (16 characters at least).",
        ),
    ]
};

/// A `spaces:` entry.
pub const SPACE: crate::settings::Kind = crate::settings::Kind::Section(&[SPACE_KEYS, TENANT_KEYS]);

/// The keys of `hosted` (when a mapping), as `Reader::hosted` takes them.
pub const HOSTED_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "custom_api_urls",
            Kind::Boolean,
            "Let API-created spaces set providers' api_url / auth_url (off: the platforms' \
             public APIs only).",
        )
        .default("false"),
        Key::new(
            "private_upstreams",
            Kind::Boolean,
            "Let API-created spaces' apps be at internal addresses (off: loopback, private, \
             link-local and metadata ranges are refused).",
        )
        .default("false"),
        Key::new(
            "sync_every",
            Kind::Duration,
            "How often the stored spaces are read again (changes made through another \
             instance).",
        )
        .default("5s"),
    ]
};

/// `hosted`: `true`, `false` or its settings.
pub const HOSTED: crate::settings::Kind = crate::settings::Kind::Either(&[
    crate::settings::Kind::Boolean,
    crate::settings::Kind::Section(&[HOSTED_KEYS]),
]);
