//! The `page:` block (at the top level, in each `spaces[]` entry and in each `rules[]`
//! entry), typed, and how it is read with the shared [`Reader`]: files are read and the
//! template compiled here, at load, so a mistake is a configuration error with its path
//! (and the template's line). Reading only: nothing here renders a page.

use std::collections::BTreeMap;

use serde_json::Value;

use super::messages;
use crate::settings::{Key, Kind, Reader, kind};

/// The built-in looks of the pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Theme {
    /// A light card in the middle of the window (the pages' look before themes existed).
    #[default]
    Default,
    /// The same card, light text on a dark background.
    Dark,
    /// Almost no styling: the browser's own look.
    Minimal,
}

impl Theme {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Theme::Default => "default",
            Theme::Dark => "dark",
            Theme::Minimal => "minimal",
        }
    }
}

/// A file read at load: its path (for messages and logs) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The path as configured (relative paths are relative to the engine's working
    /// directory, like every other file the configuration names).
    pub path: String,
    /// Its text.
    pub text: String,
}

/// A messages file of `page.languages`: its path and its messages (dotted keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// The path as configured.
    pub path: String,
    /// Message key (`waiting.title`) -> text; keys are the built-in messages' keys.
    pub messages: BTreeMap<String, String>,
}

/// One `page:` block: every key optional, so that a rule's block can be laid over its
/// space's ([`PageSettings::then`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSettings {
    /// `theme`: which built-in look.
    pub theme: Option<Theme>,
    /// `template`: a minijinja file rendering every page instead of the built-in one
    /// (already checked to compile).
    pub template: Option<File>,
    /// `title`: the name shown instead of the app's name (and on the login page).
    pub title: Option<String>,
    /// `logo`: an image URL (http(s), `data:image/...` or a path-absolute `/...`).
    pub logo: Option<String>,
    /// `accent_color`: a CSS color (`#rgb`, `#rrggbb` or a color name); it goes into CSS,
    /// so nothing else is accepted.
    pub accent_color: Option<String>,
    /// `css`: a CSS file appended to the theme's style.
    pub css: Option<File>,
    /// `language`: the language when `Accept-Language` names none the page has.
    pub language: Option<String>,
    /// `languages`: added languages (or overrides of the built-in ones), by tag.
    pub languages: BTreeMap<String, Language>,
    /// Where this block was read (`rules[2].page`), for errors found once blocks are
    /// combined (a rule's `language` must be one its space has).
    pub origin: String,
}

impl PageSettings {
    /// This block with `over`'s keys laid over it, key by key (`languages` tag by tag):
    /// later wins.
    pub fn then(&self, over: &PageSettings) -> PageSettings {
        let mut languages = self.languages.clone();
        languages.extend(
            over.languages
                .iter()
                .map(|(tag, language)| (tag.clone(), language.clone())),
        );
        PageSettings {
            theme: over.theme.or(self.theme),
            template: over.template.clone().or_else(|| self.template.clone()),
            title: over.title.clone().or_else(|| self.title.clone()),
            logo: over.logo.clone().or_else(|| self.logo.clone()),
            accent_color: over
                .accent_color
                .clone()
                .or_else(|| self.accent_color.clone()),
            css: over.css.clone().or_else(|| self.css.clone()),
            language: over.language.clone().or_else(|| self.language.clone()),
            languages,
            origin: if over.origin.is_empty() {
                self.origin.clone()
            } else {
                over.origin.clone()
            },
        }
    }

    /// Whether `tag` is a language these settings have (built in, or added).
    pub fn has_language(&self, tag: &str) -> bool {
        messages::BUILTIN.contains(&tag) || self.languages.contains_key(tag)
    }
}

/// A language tag as written in `languages` and `language`: letters, digits and `-`,
/// lowercased.
fn language_tag(text: &str) -> Option<String> {
    let tag = text.trim().to_ascii_lowercase();
    let valid = !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    valid.then_some(tag)
}

/// Whether `text` is a CSS color this engine lets into a style sheet.
pub fn is_color(text: &str) -> bool {
    match text.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => (3..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase()),
    }
}

/// Whether `text` is a logo address: an http(s) URL, a `data:image/` URI, or a
/// path-absolute URL (`/static/logo.svg`, served by the app's host).
pub fn is_logo(text: &str) -> bool {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = text.strip_prefix("data:image/") {
        return rest.contains(',');
    }
    if text.starts_with('/') {
        return !text.starts_with("//") && text.parse::<http::uri::PathAndQuery>().is_ok();
    }
    text.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    })
}

impl Reader<'_> {
    /// `page`: how the visitor pages look, in which languages. Files (`template`, `css`,
    /// `languages`) are read now; the template is compiled now (an error names the file and
    /// its line). A space document of the admin API may name no file.
    pub fn page(&mut self, value: &Value, path: &str) -> PageSettings {
        let mut page = PageSettings {
            origin: path.to_owned(),
            ..PageSettings::default()
        };
        let Some(mut fields) = self.mapping(value, path) else {
            return page;
        };
        if let Some((value, p)) = fields.take("theme") {
            page.theme = self.string(value, &p).and_then(|text| match text.as_str() {
                "default" => Some(Theme::Default),
                "dark" => Some(Theme::Dark),
                "minimal" => Some(Theme::Minimal),
                _ => {
                    self.error(
                        &p,
                        format!("`{text}` is not a theme (expected default, dark or minimal)"),
                    );
                    None
                }
            });
        }
        if let Some((value, p)) = fields.take("template") {
            page.template =
                self.page_file(value, &p).and_then(|file| {
                    match super::template::compile(&file.path, &file.text) {
                        Ok(_) => Some(file),
                        Err(message) => {
                            self.error(&p, message);
                            None
                        }
                    }
                });
        }
        if let Some((value, p)) = fields.take("title") {
            page.title = self.non_empty_string(value, &p);
        }
        if let Some((value, p)) = fields.take("logo") {
            page.logo = self.string(value, &p).and_then(|text| {
                if is_logo(&text) {
                    Some(text)
                } else {
                    self.error(
                        &p,
                        format!(
                            "`{text}` is not a logo address (expected an http(s) URL, a \
                             data:image/ URI or a path such as /logo.svg)"
                        ),
                    );
                    None
                }
            });
        }
        if let Some((value, p)) = fields.take("accent_color") {
            page.accent_color = self.string(value, &p).and_then(|text| {
                let text = text.trim().to_ascii_lowercase();
                if is_color(&text) {
                    Some(text)
                } else {
                    self.error(
                        &p,
                        format!(
                            "`{text}` is not a color (expected #rgb, #rrggbb or a color name \
                             such as teal)"
                        ),
                    );
                    None
                }
            });
        }
        if let Some((value, p)) = fields.take("css") {
            page.css = self.page_file(value, &p);
        }
        if let Some((value, p)) = fields.take("languages") {
            page.languages = self.languages(value, &p);
        }
        if let Some((value, p)) = fields.take("language") {
            page.language = self.string(value, &p).and_then(|text| {
                let tag = language_tag(&text);
                if tag.is_none() {
                    self.error(
                        &p,
                        format!("`{text}` is not a language tag (e.g. en, fr, de)"),
                    );
                }
                tag
            });
        }
        self.finish(fields, &[]);
        page
    }

    /// Checks that `page.language` is a language the pages have: built in, added by the
    /// block itself, or (for a rule's block) by the block it is laid over (`under`).
    pub fn page_language(&mut self, page: &PageSettings, under: Option<&PageSettings>) {
        let Some(tag) = &page.language else {
            return;
        };
        let merged = under.map_or_else(|| page.clone(), |under| under.then(page));
        if merged.has_language(tag) {
            return;
        }
        let mut known: Vec<&str> = messages::BUILTIN.to_vec();
        known.extend(merged.languages.keys().map(String::as_str));
        self.error(
            &crate::settings::child(&page.origin, "language"),
            format!(
                "`{tag}` is not a language of these pages (expected one of: {}; add others \
                 under languages)",
                known.join(", ")
            ),
        );
    }

    /// A file named by a `page` key, read whole.
    fn page_file(&mut self, value: &Value, path: &str) -> Option<File> {
        let name = self.non_empty_string(value, path)?;
        if self.api.is_some() {
            self.error(
                path,
                "files are not read for spaces created through the API",
            );
            return None;
        }
        match read_bounded(&name) {
            Ok(text) => Some(File { path: name, text }),
            Err(message) => {
                self.error(path, format!("cannot read {name}: {message}"));
                None
            }
        }
    }

    /// `page.languages`: language tag -> messages file.
    fn languages(&mut self, value: &Value, path: &str) -> BTreeMap<String, Language> {
        let mut languages = BTreeMap::new();
        let Value::Object(map) = value else {
            self.error(
                path,
                format!(
                    "expected a mapping of language tags to messages files (e.g. {{de: \
                     pages/de.yml}}), found {}",
                    kind(value)
                ),
            );
            return languages;
        };
        for (tag, file) in map {
            let at = crate::settings::child(path, tag);
            let Some(tag) = language_tag(tag) else {
                self.error(
                    &at,
                    format!("`{tag}` is not a language tag (e.g. de, pt-br)"),
                );
                continue;
            };
            let Some(file) = self.page_file(file, &at) else {
                continue;
            };
            match messages::parse(&file.text) {
                Ok(messages) => {
                    languages.insert(
                        tag,
                        Language {
                            path: file.path,
                            messages,
                        },
                    );
                }
                Err(problems) => {
                    for problem in problems {
                        self.error(&at, format!("{}: {problem}", file.path));
                    }
                }
            }
        }
        languages
    }
}

/// The largest file a `page` key may name (a template, a style sheet, a messages file).
const MAX_PAGE_FILE: u64 = 1024 * 1024;

/// A regular file's text, at most [`MAX_PAGE_FILE`] bytes: a device or a pipe named by
/// mistake is refused, never read forever.
fn read_bounded(name: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(name).map_err(|error| error.to_string())?;
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    file.take(MAX_PAGE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_PAGE_FILE {
        return Err(format!("larger than {} KiB", MAX_PAGE_FILE / 1024));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// The keys of a `page:` block, as `Reader::page` takes them.
pub const PAGE_KEYS: &[Key] = &[
    Key::new(
        "theme",
        Kind::Enum(&["default", "dark", "minimal"]),
        "The built-in look of the waiting, error and login pages.",
    )
    .default("default"),
    Key::new(
        "template",
        Kind::Text("path"),
        "A minijinja template rendering every visitor page instead of the built-in one \
         (compiled at load; see Customising pages).",
    ),
    Key::new(
        "title",
        Kind::Text("text"),
        "The name the pages show instead of the app's name.",
    ),
    Key::new(
        "logo",
        Kind::Text("URL"),
        "An image shown on the pages: an http(s) URL, a data:image/ URI or a path such as \
         /logo.svg.",
    ),
    Key::new(
        "accent_color",
        Kind::Text("CSS color"),
        "The pages' accent color: #rgb, #rrggbb or a color name.",
    ),
    Key::new(
        "css",
        Kind::Text("path"),
        "A CSS file appended to the theme's style.",
    ),
    Key::new(
        "language",
        Kind::Text("language tag"),
        "The language when the browser's Accept-Language names none the pages have.",
    )
    .default("en"),
    Key::new(
        "languages",
        Kind::Map("language tag", &Kind::Text("path")),
        "Messages files (YAML) adding a language, or changing a built-in one's messages; \
         missing messages are English.",
    ),
];

/// A `page:` block.
pub const PAGE: Kind = Kind::Section(&[PAGE_KEYS]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_and_logos_are_checked() {
        for good in ["#fff", "#12ab9F", "teal", "rebeccapurple"] {
            assert!(is_color(&good.to_ascii_lowercase()), "{good}");
        }
        for bad in ["#ffff", "red;x", "url(x)", "", "#12345g", "red}"] {
            assert!(!is_color(bad), "{bad}");
        }
        for good in [
            "https://cdn.example.com/logo.svg",
            "/static/logo.png",
            "data:image/svg+xml;base64,PHN2Zz4=",
        ] {
            assert!(is_logo(good), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "//evil.example/x.png",
            "logo.png",
            "data:text/html,<b>",
            "https://x/ y",
        ] {
            assert!(!is_logo(bad), "{bad}");
        }
    }

    #[test]
    fn later_blocks_win_key_by_key() {
        let space = PageSettings {
            theme: Some(Theme::Dark),
            title: Some("Acme".into()),
            language: Some("fr".into()),
            ..PageSettings::default()
        };
        let rule = PageSettings {
            title: Some("Shop".into()),
            ..PageSettings::default()
        };
        let merged = space.then(&rule);
        assert_eq!(merged.theme, Some(Theme::Dark));
        assert_eq!(merged.title.as_deref(), Some("Shop"));
        assert_eq!(merged.language.as_deref(), Some("fr"));
    }
}
