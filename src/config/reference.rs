//! The whole configuration's key tree, composed of the keys each component declares next to
//! its reader ([`crate::settings::Key`]), and what is generated from it: the JSON Schema
//! (`paastis config schema`), the configuration reference page, and the set of (mapping,
//! key) pairs the drift test compares with the keys the readers take.
//!
//! It only describes: nothing here reads a configuration or decides what is valid (the
//! readers do; the test proves both agree).

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use crate::settings::{DURATION_PATTERN, Key, Kind, Tagged};

/// The top-level keys read before the tenant's ([`crate::spaces::settings::TENANT_KEYS`]).
const TOP_KEYS: &[Key] = &[
    Key::new(
        "listen",
        Kind::Address,
        "Address of the proxy listener (env PAASTIS_LISTEN, flag --listen).",
    )
    .default("0.0.0.0:3000"),
    Key::new(
        "domains",
        Kind::List(&Kind::Text("domain")),
        "Base domains of the default space; empty: the first DNS label of the Host is the \
         route key.",
    ),
];

/// The top-level keys read after the tenant's.
const ENGINE_KEYS: &[Key] = &[
    Key::new(
        "proxy",
        Kind::Section(&[crate::proxy::settings::PROXY_KEYS]),
        "The proxy: timeouts, client limits, forwarded headers, workers.",
    ),
    Key::new(
        "tls",
        Kind::Section(&[crate::proxy::settings::TLS_KEYS]),
        "An HTTPS listener beside the plain one.",
    ),
    Key::new(
        "database",
        Kind::Section(&[crate::store::settings::DATABASE_KEYS]),
        "Where the catalog and the event history live.",
    ),
    Key::new(
        "events",
        Kind::Section(&[crate::store::settings::EVENTS_KEYS]),
        "The event history.",
    ),
    Key::new(
        "registry",
        Kind::Section(&[crate::registry::REGISTRY_KEYS]),
        "Where the hot state of managed apps is shared between instances.",
    ),
    Key::new(
        "savings",
        Kind::Section(&[crate::savings::SAVINGS_KEYS]),
        "Prices and carbon figures for the savings estimates.",
    ),
    Key::new(
        "spaces",
        Kind::List(&crate::spaces::settings::SPACE),
        "Tenants besides the default space (the top level), each with its own domains and \
         apps.",
    ),
    Key::new(
        "admin",
        Kind::Section(&[crate::admin::settings::ADMIN_KEYS]),
        "The admin API, dashboard and /metrics.",
    ),
    Key::new(
        "gate",
        Kind::Section(&[crate::gate::settings::GATE_KEYS]),
        "Forward-auth and the Sablier-compatible API: the engine behind the proxy you \
         already run (off by default).",
    ),
    Key::new(
        "reload",
        Kind::Section(&[crate::lifecycle::RELOAD_KEYS]),
        "How the running engine takes a changed configuration (file watch, SIGHUP, the \
         admin API).",
    ),
    Key::new(
        "hosted",
        crate::spaces::settings::HOSTED,
        "Hosted mode: spaces are also created through the admin API and stored in the \
         database (needs PAASTIS_MASTER_KEY and admin.token).",
    )
    .default("false"),
];

/// The whole `paastis.yml`.
pub const ROOT: Kind =
    Kind::Section(&[TOP_KEYS, crate::spaces::settings::TENANT_KEYS, ENGINE_KEYS]);

/// The keys of a section's groups, in order.
fn keys(groups: &'static [&'static [Key]]) -> impl Iterator<Item = &'static Key> {
    groups.iter().flat_map(|group| group.iter())
}

/// A tagged mapping's variant's keys: the tag, the common keys, its own.
fn variant_keys(tagged: &Tagged, own: &'static [Key]) -> Vec<Key> {
    let mut keys = vec![Key::new(tagged.tag, Kind::Text(""), "").required()];
    keys.extend(tagged.common.iter().copied());
    keys.extend(own.iter().copied());
    keys
}

// ----- the key set, for the drift test -----

/// Every (mapping path, key) pair of the model. Paths are normalized: a list item is `[]`,
/// an item of a tagged list `[<tag value>]` (`providers[scalingo]`), a free key `*`; a
/// secret stands for its key and `<key>_file`.
pub fn model_keys() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    walk_keys(&ROOT, "", &mut out);
    out
}

fn add_keys<'k>(keys: impl Iterator<Item = &'k Key>, path: &str, out: &mut KeySet) {
    for key in keys {
        out.insert((path.to_owned(), key.name.to_owned()));
        if let Kind::Secret = key.kind {
            out.insert((path.to_owned(), format!("{}_file", key.name)));
        }
        walk_keys(&key.kind, &crate::settings::child(path, key.name), out);
    }
}

/// A set of (mapping path, key) pairs.
type KeySet = BTreeSet<(String, String)>;

fn walk_keys(kind: &Kind, path: &str, out: &mut KeySet) {
    match kind {
        Kind::Section(groups) => add_keys(keys(groups), path, out),
        Kind::List(Kind::Tagged(tagged)) => {
            for variant in (tagged.variants)() {
                let keys = variant_keys(tagged, variant.keys);
                add_keys(keys.iter(), &format!("{path}[{}]", variant.name), out);
            }
        }
        Kind::List(item) => walk_keys(item, &format!("{path}[]"), out),
        Kind::OneOrList(item) => {
            walk_keys(item, path, out);
            walk_keys(item, &format!("{path}[]"), out);
        }
        Kind::Map(_, value) => walk_keys(value, &format!("{path}.*"), out),
        Kind::Either(kinds) => {
            for kind in *kinds {
                walk_keys(kind, path, out);
            }
        }
        Kind::Tagged(tagged) => {
            for variant in (tagged.variants)() {
                let keys = variant_keys(tagged, variant.keys);
                add_keys(keys.iter(), &format!("{path}<{}>", variant.name), out);
            }
        }
        _ => {}
    }
}

/// A reader's path in `root` (`spaces[0].providers[1]`) normalized as [`model_keys`]
/// writes it: `[N]` becomes `[<type>]` when the item is a mapping with a text `type`, else
/// `[]`.
pub fn normalize(path: &str, root: &Value) -> String {
    let mut out = String::new();
    let mut value = Some(root);
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            let index = after[..end].parse::<usize>().ok();
            value = value.and_then(|v| index.and_then(|i| v.get(i)));
            match value.and_then(|v| v.get("type")).and_then(Value::as_str) {
                Some(tag) => out.push_str(&format!("[{tag}]")),
                None => out.push_str("[]"),
            }
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            let key = &rest_trimmed[..end];
            value = value.and_then(|v| v.get(key));
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(key);
            rest = &rest_trimmed[end..];
        }
    }
    out
}

// ----- JSON Schema -----

/// The JSON Schema (draft 2020-12) of `paastis.yml`.
pub fn schema() -> Value {
    let mut schema = kind_schema(&ROOT);
    if let Value::Object(map) = &mut schema {
        let mut head = Map::new();
        head.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        head.insert("title".into(), json!("paastis.yml"));
        head.insert(
            "description".into(),
            json!(
                "The configuration of Paastis, which puts idle PaaS apps to sleep and wakes \
                 them on the first request. Generated by `paastis config schema`."
            ),
        );
        head.extend(std::mem::take(map));
        // An empty file is an empty configuration.
        if let Some(kind) = head.get_mut("type") {
            *kind = json!(["object", "null"]);
        }
        *map = head;
    }
    schema
}

/// A default as JSON: `true`/`false` and whole numbers as such, the rest as text.
fn default_value(kind: &Kind, text: &str) -> Value {
    match kind {
        Kind::Boolean | Kind::Either(_) if text == "true" || text == "false" => {
            json!(text == "true")
        }
        Kind::Integer { .. } | Kind::Port => text.parse::<u64>().map_or(json!(text), |n| json!(n)),
        _ => json!(text),
    }
}

/// `schema`, also accepting `null` (the readers take `null` as absent).
fn nullable(mut schema: Value) -> Value {
    let Value::Object(map) = &mut schema else {
        return schema;
    };
    if let Some(values) = map.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    match map.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = std::mem::take(kind);
            map.insert("type".into(), json!([kind, "null"]));
        }
        Some(Value::Array(kinds)) => kinds.push(json!("null")),
        _ => {
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.push(json!({"type": "null"}));
            }
        }
    }
    schema
}

fn key_schema(key: &Key) -> Value {
    let mut schema = nullable(kind_schema(&key.kind));
    if let Value::Object(map) = &mut schema {
        map.insert("description".into(), json!(key.doc));
        if let Some(default) = key.default {
            map.insert("default".into(), default_value(&key.kind, default));
        }
    }
    schema
}

/// A mapping of `keys`, no other key allowed.
fn section_schema<'k>(keys: impl Iterator<Item = &'k Key>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut either = Vec::new();
    for key in keys {
        properties.insert(key.name.to_owned(), key_schema(key));
        if let Kind::Secret = key.kind {
            let file = format!("{}_file", key.name);
            properties.insert(
                file.clone(),
                json!({
                    "type": ["string", "null"],
                    "description": format!("A file holding `{}` (trimmed).", key.name),
                }),
            );
            if key.required {
                either.push(json!({"anyOf": [{"required": [key.name]}, {"required": [file]}]}));
            }
        } else if key.required {
            required.push(json!(key.name));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("additionalProperties".into(), json!(false));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    if !either.is_empty() {
        schema.insert("allOf".into(), Value::Array(either));
    }
    Value::Object(schema)
}

/// An address the engine binds: `IPv4:port` or `[IPv6]:port`.
const ADDRESS_PATTERN: &str = r"^(([0-9]{1,3}\.){3}[0-9]{1,3}|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$";

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Text(_) => json!({"type": "string"}),
        Kind::Integer { min, max } if *max == u64::MAX => {
            json!({"type": "integer", "minimum": min})
        }
        Kind::Integer { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Amount => json!({"type": "number", "minimum": 0}),
        Kind::Boolean => json!({"type": "boolean"}),
        Kind::Duration => json!({"type": "string", "pattern": DURATION_PATTERN}),
        Kind::DurationOrNever => json!({
            "type": "string",
            "pattern": r"^\s*(never|([0-9]+(ms|s|m|h|d))+)\s*$",
        }),
        Kind::Address => json!({"type": "string", "pattern": ADDRESS_PATTERN}),
        Kind::Url => json!({"type": "string", "pattern": "^https?://"}),
        Kind::Port => json!({
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": r"^\s*[0-9]{1,5}\s*$"},
            ]
        }),
        Kind::Secret => json!({"type": "string", "minLength": 1}),
        Kind::Scalar => json!({"type": ["string", "number", "boolean"]}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::List(item) => json!({"type": "array", "items": kind_schema(item)}),
        Kind::OneOrList(item) => {
            let item = kind_schema(item);
            json!({"anyOf": [item.clone(), {"type": "array", "items": item}]})
        }
        Kind::Section(groups) => section_schema(keys(groups)),
        Kind::Map(_, value) => {
            json!({"type": "object", "additionalProperties": kind_schema(value)})
        }
        Kind::Either(kinds) => json!({"anyOf": kinds.iter().map(kind_schema).collect::<Vec<_>>()}),
        Kind::Tagged(tagged) => {
            let variants = (tagged.variants)();
            let names: Vec<&str> = variants.iter().map(|variant| variant.name).collect();
            let one_of: Vec<Value> = variants
                .iter()
                .map(|variant| {
                    let keys = variant_keys(tagged, variant.keys);
                    let mut schema = section_schema(keys.iter());
                    schema["properties"][tagged.tag] = json!({
                        "const": variant.name,
                        "description": variant.doc,
                    });
                    schema
                })
                .collect();
            json!({
                "type": "object",
                "required": [tagged.tag],
                "properties": {tagged.tag: {"type": "string", "enum": names}},
                "oneOf": one_of,
            })
        }
    }
}

// ----- the reference page -----

/// docs/src/reference/configuration.md: every key, its type, default and description, by
/// section.
pub fn markdown() -> String {
    let out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the configuration model (`src/config/reference.rs` and the keys \
         each component declares). Do not edit: run `BLESS=1 cargo test --test book`. -->\n\n\
         Every key of `paastis.yml`, by section, with its type, default and meaning. Unknown \
         keys are errors; `null` is the same as leaving a key out. How the file is found, \
         `${VAR}` interpolation and the `PAASTIS_*` overrides are explained in \
         [Configuration](../configuration.md). The same model is printed as a JSON Schema by \
         `paastis config schema` (see [Editors](../editors.md)).\n\n\
         Types: a *duration* is `250ms`, `90s`, `15m`, `2h`, `7d` or a sequence such as \
         `1h30m`; an *address* is `host:port` (`0.0.0.0:3000`, `[::1]:3000`); a *secret* \
         `key` may instead be read from the file named by `key_file`; a *pattern* is a glob \
         (`review-*`) or a regex after `re:`.\n",
    );
    let mut page = Page {
        out,
        seen: HashMap::new(),
    };
    page.section("", "Top level", keys_of(&ROOT));
    page.out
}

/// A section's keys (empty for other kinds).
fn keys_of(kind: &Kind) -> Vec<Key> {
    match kind {
        Kind::Section(groups) => keys(groups).copied().collect(),
        _ => Vec::new(),
    }
}

/// What identifies a mapping's shape on the page, so a shape met again (the tenant keys of
/// `spaces[]`) points at the first place instead of repeating it.
fn signature(kind: &Kind) -> Option<String> {
    match kind {
        Kind::Section(groups) => Some(
            keys(groups)
                .map(|key| key.name)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Kind::Tagged(tagged) => Some(format!(
            "{}:{}",
            tagged.tag,
            (tagged.variants)()
                .iter()
                .map(|variant| variant.name)
                .collect::<Vec<_>>()
                .join(",")
        )),
        _ => None,
    }
}

/// The reference page being written.
struct Page {
    /// The text so far.
    out: String,
    /// The signature of each mapping shape documented so far -> where.
    seen: HashMap<String, String>,
}

impl Page {
    /// The table of one mapping, then the mappings under it.
    fn section(&mut self, path: &str, title: &str, keys: Vec<Key>) {
        self.out.push_str(&format!("\n## {title}\n\n"));
        self.table(&keys, None);
        self.descend(path, &keys);
    }

    /// The mappings under `keys` (at `path`): each shape is claimed by its first place
    /// here before any is written, so a mapping documented below is not claimed deeper.
    fn descend(&mut self, path: &str, keys: &[Key]) {
        for key in keys {
            self.claim(&crate::settings::child(path, key.name), &key.kind);
        }
        for key in keys {
            self.sub_pages(&crate::settings::child(path, key.name), &key.kind);
        }
    }

    /// Claims the mapping shapes a value of `kind` at `path` has (not those inside them).
    fn claim(&mut self, path: &str, kind: &Kind) {
        if let Some(signature) = signature(kind) {
            self.seen
                .entry(signature)
                .or_insert_with(|| path.to_owned());
            return;
        }
        match kind {
            Kind::List(item) => self.claim(&format!("{path}[]"), item),
            Kind::OneOrList(item) => self.claim(path, item),
            Kind::Map(_, value) => self.claim(&format!("{path}.*"), value),
            Kind::Either(kinds) => {
                for kind in *kinds {
                    self.claim(path, kind);
                }
            }
            _ => {}
        }
    }

    /// The table of `keys`; `tag`: the tag key and its value, for a variant's table.
    fn table(&mut self, keys: &[Key], tag: Option<(&str, &str)>) {
        self.out
            .push_str("| Key | Type | Default | Description |\n|---|---|---|---|\n");
        for key in keys {
            if let Some((tag, value)) = tag
                && key.name == tag
            {
                self.out
                    .push_str(&format!("| `{tag}` | `{value}` | required | Its type. |\n"));
                continue;
            }
            let default = match (key.default, key.required) {
                (Some(default), _) => format!("`{default}`"),
                (None, true) => "required".to_owned(),
                (None, false) => String::new(),
            };
            let name = match key.kind {
                Kind::Secret => format!("`{0}` / `{0}_file`", key.name),
                _ => format!("`{}`", key.name),
            };
            let kind = cell(&self.type_name(&key.kind));
            self.out.push_str(&format!(
                "| {name} | {kind} | {default} | {} |\n",
                cell(key.doc)
            ));
        }
    }

    /// The mappings inside a value of `kind` found at `path`, unless documented already.
    fn sub_pages(&mut self, path: &str, kind: &Kind) {
        if let Some(signature) = signature(kind) {
            match self.seen.get(&signature) {
                Some(owner) if owner != path => return,
                Some(_) => {}
                None => {
                    self.seen.insert(signature, path.to_owned());
                }
            }
        }
        match kind {
            Kind::Section(_) => self.section(path, &format!("`{path}`"), keys_of(kind)),
            Kind::Tagged(tagged) => {
                for variant in (tagged.variants)() {
                    let keys = variant_keys(tagged, variant.keys);
                    self.out.push_str(&format!(
                        "\n## `{path}` with `{}: {}`\n\n{}\n\n",
                        tagged.tag, variant.name, variant.doc
                    ));
                    self.table(&keys, Some((tagged.tag, variant.name)));
                    self.descend(path, &keys);
                }
            }
            Kind::List(item) => self.sub_pages(&format!("{path}[]"), item),
            Kind::OneOrList(item) => self.sub_pages(path, item),
            Kind::Map(_, value) => self.sub_pages(&format!("{path}.*"), value),
            Kind::Either(kinds) => {
                for kind in *kinds {
                    self.sub_pages(path, kind);
                }
            }
            _ => {}
        }
    }

    /// How a kind is named in the reference.
    fn type_name(&self, kind: &Kind) -> String {
        match kind {
            Kind::Text("") => "text".into(),
            Kind::Text(label) => (*label).to_owned(),
            Kind::Integer { min, max } if *max == u64::MAX => format!("integer >= {min}"),
            Kind::Integer { min, max } => format!("integer {min}..{max}"),
            Kind::Amount => "number >= 0".into(),
            Kind::Boolean => "boolean".into(),
            Kind::Duration => "duration".into(),
            Kind::DurationOrNever => "duration or `never`".into(),
            Kind::Address => "address".into(),
            Kind::Url => "http(s) URL".into(),
            Kind::Port => "port".into(),
            Kind::Secret => "secret".into(),
            Kind::Scalar => "text, number or boolean".into(),
            Kind::Enum(values) => values
                .iter()
                .map(|value| format!("`{value}`"))
                .collect::<Vec<_>>()
                .join(" or "),
            Kind::List(item) => format!("list of {}", self.type_name(item)),
            Kind::OneOrList(item) => format!("{0} or list of {0}", self.type_name(item)),
            Kind::Section(_) | Kind::Tagged(_) => {
                let seen = signature(kind).and_then(|signature| self.seen.get(&signature));
                let what = match kind {
                    Kind::Tagged(tagged) => format!("mapping by `{}`", tagged.tag),
                    _ => "mapping".to_owned(),
                };
                match seen {
                    Some(path) => format!("{what}, as `{path}`"),
                    None => format!("{what} (below)"),
                }
            }
            Kind::Map(label, value) => format!("mapping of {label} to {}", self.type_name(value)),
            Kind::Either(kinds) => kinds
                .iter()
                .map(|kind| self.type_name(kind))
                .collect::<Vec<_>>()
                .join(", or "),
        }
    }
}

/// Text for a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
