//! A [`Look`]: merged `page:` settings made ready to render (style sheet, messages of every
//! language, the compiled custom template), and the rendering of each page. Every value
//! reaches the page through the template with HTML escaping on; the style sheet is the one
//! value marked safe (built here from checked parts and the operator's CSS file).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Environment, Value};

use super::settings::{PageSettings, Theme};
use super::template::{compile, environment};
use super::{ErrorInfo, Visitor, Waiting, messages};

/// The name of the built-in template.
const BUILTIN_NAME: &str = "page.html";

/// The built-in template, compiled once.
static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = environment();
    // Tested to compile (`the_built_in_template_compiles`).
    let _ = env.add_template(BUILTIN_NAME, include_str!("templates/page.html"));
    env
});

/// The built-in look, shared.
static BUILTIN_LOOK: LazyLock<Arc<Look>> = LazyLock::new(|| Look::new(&PageSettings::default()));

/// What the themes share (not the minimal one).
const CARD_PARTS: &str = "h1{font-size:1.25rem;margin:0 0 .75rem}
p{line-height:1.5;margin:.5rem 0}
.note{color:#8a4b00}
.id{color:#5b6475;font-size:.85rem}
small{display:block;margin-top:1.5rem;color:#5b6475}
.login label{display:block;margin-top:.5rem}
.login input{width:100%;box-sizing:border-box;font:inherit;padding:.5rem;margin:.4rem 0 1rem;border:1px solid #c9ced6;border-radius:.4rem}
button.primary{font:inherit;padding:.4rem .9rem;border-radius:.4rem;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
.error{color:#c2341f}
.bar{height:.75rem;border-radius:.375rem;background:#e3e6ea;overflow:hidden;margin:1rem 0 .5rem}";

/// The dark theme's colors, over the card.
const DARK_PARTS: &str = ":root{color-scheme:dark}
body{background:#15181d;color:#e8eaed}
main{background:#1e2228;box-shadow:none;border:1px solid #2e333b}
small,.id{color:#9aa3af}
.note{color:#f0b45b}
.error{color:#ff8a75}
.bar{background:#2e333b}
.login input{background:#15181d;color:#e8eaed;border-color:#2e333b}";

/// The minimal theme: the browser's look, a readable measure.
const MINIMAL: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
.bar{height:.5rem;background:#ddd;margin:1rem 0}
.logo{max-height:3rem}";

/// The progress bar's fill and motion (every theme): it fills towards `--to` over the
/// expected remaining time, and does not move for those who asked for less motion.
const BAR: &str = ".logo{display:block;max-height:3rem;max-width:12rem;margin:0 0 1rem}
.bar span{display:block;height:100%;background:var(--accent);animation:fill linear forwards}
@keyframes fill{to{width:var(--to)}}
@media (prefers-reduced-motion:reduce){.bar span{animation:none}}";

/// The accent color when none is configured.
const DEFAULT_ACCENT: &str = "#2f6fed";

/// The operator's template, compiled.
struct Custom {
    /// Its path (its name in `env`, and in the log).
    path: String,
    /// The environment holding it.
    env: Environment<'static>,
}

/// How the pages of a space, or of an app, look: built from merged [`PageSettings`], shared
/// (`Arc`) by every request.
pub struct Look {
    /// The theme (for templates that care).
    theme: Theme,
    /// The name shown instead of the app's.
    title: Option<String>,
    /// The logo's address.
    logo: Option<String>,
    /// The accent color, as configured.
    accent_color: Option<String>,
    /// The whole style sheet: the theme's, the accent color, the operator's CSS.
    style: String,
    /// The language when the request names none of `languages`.
    language: String,
    /// Every language's messages, complete (missing keys are English's).
    languages: BTreeMap<String, BTreeMap<String, String>>,
    /// The operator's template, if any.
    custom: Option<Custom>,
    /// Set once a render of the custom template failed and was logged: it is logged once.
    pub(super) warned: AtomicBool,
}

impl std::fmt::Debug for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Look")
            .field("theme", &self.theme)
            .field("template", &self.custom.as_ref().map(|c| &c.path))
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

impl Look {
    /// The look these settings describe. A template that does not compile (it did at
    /// load) is left out, and logged.
    pub fn new(settings: &PageSettings) -> Arc<Look> {
        let theme = settings.theme.unwrap_or_default();
        let accent = settings.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT);
        let mut style = format!(":root{{--accent:{accent}}}\n");
        match theme {
            Theme::Default => {
                style.push_str(super::CARD_STYLE);
                style.push('\n');
                style.push_str(CARD_PARTS);
            }
            Theme::Dark => {
                style.push_str(super::CARD_STYLE);
                style.push('\n');
                style.push_str(CARD_PARTS);
                style.push('\n');
                style.push_str(DARK_PARTS);
            }
            Theme::Minimal => style.push_str(MINIMAL),
        }
        style.push('\n');
        style.push_str(BAR);
        if let Some(css) = &settings.css {
            style.push('\n');
            // Kept inside the <style> element, whatever the file holds.
            style.push_str(&css.text.replace("</", "<\\/"));
        }
        let mut languages = BTreeMap::new();
        for tag in messages::BUILTIN {
            if let Some(builtin) = messages::builtin(tag) {
                languages.insert((*tag).to_owned(), builtin.clone());
            }
        }
        for (tag, added) in &settings.languages {
            let base = languages
                .get(tag)
                .cloned()
                .unwrap_or_else(|| messages::english().clone());
            let mut complete = base;
            complete.extend(added.messages.clone());
            languages.insert(tag.clone(), complete);
        }
        let language = settings
            .language
            .clone()
            .filter(|tag| languages.contains_key(tag))
            .unwrap_or_else(|| "en".to_owned());
        let custom =
            settings
                .template
                .as_ref()
                .and_then(|file| match compile(&file.path, &file.text) {
                    Ok(env) => Some(Custom {
                        path: file.path.clone(),
                        env,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, "page template left out; the built-in page is used");
                        None
                    }
                });
        Arc::new(Look {
            theme,
            title: settings.title.clone(),
            logo: settings.logo.clone(),
            accent_color: settings.accent_color.clone(),
            style,
            language,
            languages,
            custom,
            warned: AtomicBool::new(false),
        })
    }

    /// The built-in look (no `page:` settings).
    pub fn builtin() -> Arc<Look> {
        Arc::clone(&BUILTIN_LOOK)
    }

    /// The language a visitor gets, and its messages.
    fn language(&self, visitor: &Visitor<'_>) -> (&str, &BTreeMap<String, String>) {
        let chosen = visitor
            .accept_language
            .and_then(|accept| {
                messages::choose(accept, |tag| {
                    self.languages.get_key_value(tag).map(|(k, _)| k.as_str())
                })
            })
            .unwrap_or(&self.language);
        match self.languages.get_key_value(chosen) {
            Some((tag, messages)) => (tag, messages),
            None => ("en", messages::english()),
        }
    }

    /// The variables every page has.
    fn common(&self, page: &str, lang: &str, visitor: &Visitor<'_>) -> BTreeMap<String, Value> {
        let mut context = BTreeMap::new();
        context.insert("page".to_owned(), Value::from(page));
        context.insert("lang".to_owned(), Value::from(lang));
        context.insert("theme".to_owned(), Value::from(self.theme.name()));
        context.insert("logo".to_owned(), optional(self.logo.as_deref()));
        context.insert(
            "accent_color".to_owned(),
            optional(self.accent_color.as_deref()),
        );
        context.insert(
            "style".to_owned(),
            Value::from_safe_string(self.style.clone()),
        );
        context.insert("request_id".to_owned(), optional(visitor.request_id));
        context
    }

    /// The waiting page (its body; the caller sends it with 503, `Retry-After:`
    /// [`Waiting::retry_after`] and `Cache-Control: no-store`).
    pub fn waiting(&self, visitor: &Visitor<'_>, waiting: &Waiting<'_>) -> String {
        let (lang, text) = self.language(visitor);
        let say = |key: &str, values: &[(&str, &str)]| {
            messages::fill(text.get(key).map_or("", String::as_str), values)
        };
        let display_name = self.title.as_deref().unwrap_or(waiting.app);
        let seconds = waiting.waiting_for.as_secs();
        let started = match seconds {
            0 => say("waiting.started_now", &[]),
            _ => say("waiting.started_ago", &[("seconds", &seconds.to_string())]),
        };
        let remaining = waiting
            .eta
            .map(|eta| eta.saturating_sub(waiting.waiting_for));
        let progress_text = match waiting.eta {
            Some(eta) => say(
                "waiting.eta",
                &[
                    ("started", &started),
                    ("eta", &eta.as_secs().max(1).to_string()),
                ],
            ),
            None => say("waiting.no_eta", &[("started", &started)]),
        };
        let progress = waiting.eta.map(|eta| {
            (waiting.waiting_for.as_secs_f64() / eta.as_secs_f64().max(0.1) * 100.0).min(95.0)
                as u64
        });
        let title = say("waiting.title", &[("name", display_name)]);
        let mut context = self.common("waiting", lang, visitor);
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        texts.insert("heading".to_owned(), title.clone());
        texts.insert("intro".to_owned(), say("waiting.intro", &[]));
        texts.insert("progress".to_owned(), progress_text);
        texts.insert("progress_label".to_owned(), say("waiting.progress", &[]));
        texts.insert(
            "previous_failure".to_owned(),
            say("waiting.previous_failure", &[]),
        );
        texts.insert("footer".to_owned(), say("footer", &[]));
        context.insert("text".to_owned(), Value::from(texts));
        context.insert("title".to_owned(), Value::from(title));
        context.insert("app".to_owned(), Value::from(waiting.app));
        context.insert("display_name".to_owned(), Value::from(display_name));
        context.insert(
            "started_at".to_owned(),
            optional(waiting.started_at.map(rfc3339).as_deref()),
        );
        context.insert("waiting_for".to_owned(), Value::from(seconds));
        context.insert(
            "eta".to_owned(),
            optional_number(waiting.eta.map(|eta| eta.as_secs().max(1))),
        );
        context.insert(
            "remaining".to_owned(),
            optional_number(remaining.map(|r| r.as_secs().max(1))),
        );
        context.insert("progress".to_owned(), optional_number(progress));
        context.insert("progress_to".to_owned(), Value::from(95));
        context.insert(
            "previous_failure".to_owned(),
            Value::from(waiting.previous_failure),
        );
        context.insert("refresh".to_owned(), Value::from(waiting.refresh()));
        context.insert("retry_after".to_owned(), Value::from(waiting.retry_after()));
        self.render(context)
    }

    /// An error page (its body; the caller sends the status and headers).
    pub fn error(&self, visitor: &Visitor<'_>, error: &ErrorInfo<'_>) -> String {
        let (lang, text) = self.language(visitor);
        let mut values: Vec<(&str, &str)> = error.values.to_vec();
        if let Some(app) = error.app {
            values.push(("app", app));
        }
        if let Some(back_at) = error.back_at {
            values.push(("back_at", back_at));
        }
        let key = match (error.code, error.back_at) {
            ("asleep_by_schedule", None) => "error.asleep_by_schedule_until_started".to_owned(),
            (code, _) => format!("error.{code}"),
        };
        let message = text
            .get(&key)
            .map_or_else(|| error.message.to_owned(), |m| messages::fill(m, &values));
        let reason = text
            .get(&format!("status.{}", error.status))
            .map_or(error.reason, String::as_str);
        let footer = messages::fill(text.get("footer").map_or("", String::as_str), &[]);
        let id_text = visitor.request_id.map(|id| {
            messages::fill(
                text.get("error.request_id").map_or("", String::as_str),
                &[("id", id)],
            )
        });
        let mut context = self.common("error", lang, visitor);
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        texts.insert("footer".to_owned(), footer);
        texts.insert("request_id".to_owned(), id_text.unwrap_or_default());
        context.insert("text".to_owned(), Value::from(texts));
        context.insert(
            "title".to_owned(),
            Value::from(format!("{} {reason}", error.status)),
        );
        context.insert("status".to_owned(), Value::from(error.status));
        context.insert("reason".to_owned(), Value::from(reason));
        context.insert("code".to_owned(), Value::from(error.code));
        context.insert("message".to_owned(), Value::from(message));
        context.insert("retry_after".to_owned(), optional_number(error.retry_after));
        context.insert("app".to_owned(), optional(error.app));
        context.insert(
            "display_name".to_owned(),
            optional(self.title.as_deref().or(error.app)),
        );
        context.insert("back_at".to_owned(), optional(error.back_at));
        self.render(context)
    }

    /// The dashboard's login page; `invalid`: the token just sent was refused.
    pub fn login(&self, visitor: &Visitor<'_>, invalid: bool) -> String {
        let (lang, text) = self.language(visitor);
        let say = |key: &str| messages::fill(text.get(key).map_or("", String::as_str), &[]);
        let heading = self.title.clone().unwrap_or_else(|| say("login.heading"));
        let mut context = self.common("login", lang, visitor);
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        texts.insert("heading".to_owned(), heading.clone());
        texts.insert("token".to_owned(), say("login.token"));
        texts.insert("submit".to_owned(), say("login.submit"));
        texts.insert("footer".to_owned(), say("footer"));
        context.insert("text".to_owned(), Value::from(texts));
        context.insert("title".to_owned(), Value::from(say("login.title")));
        context.insert("display_name".to_owned(), Value::from(heading));
        context.insert(
            "error".to_owned(),
            optional(invalid.then(|| say("login.invalid")).as_deref()),
        );
        self.render(context)
    }

    /// Renders with the custom template, else (or when it fails) the built-in one.
    fn render(&self, context: BTreeMap<String, Value>) -> String {
        let context = Value::from(context);
        if let Some(custom) = &self.custom {
            let rendered = custom
                .env
                .get_template(&custom.path)
                .and_then(|template| template.render(&context));
            match rendered {
                Ok(page) => return page,
                Err(error) => {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            template = %custom.path,
                            line = error.line().unwrap_or(0),
                            error = %error,
                            "the page template failed; the built-in page is shown instead \
                             (logged once)"
                        );
                    }
                }
            }
        }
        builtin_render(&context)
    }
}

/// The built-in template's page; never empty (a bare page if the template ever failed).
fn builtin_render(context: &Value) -> String {
    BUILTIN
        .get_template(BUILTIN_NAME)
        .and_then(|template| template.render(context))
        .unwrap_or_else(|error| {
            tracing::error!(%error, "the built-in page template failed");
            "<!doctype html><title>paastis</title><p>paastis</p>".to_owned()
        })
}

/// Text, or `none`.
fn optional(text: Option<&str>) -> Value {
    text.map_or(Value::from(()), Value::from)
}

/// A number, or `none`.
fn optional_number(number: Option<u64>) -> Value {
    number.map_or(Value::from(()), Value::from)
}

/// A wall time as RFC 3339 (UTC, seconds).
fn rfc3339(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
