//! The pages a visitor gets instead of an app (the waiting page, the error pages) and the
//! dashboard's login page: minijinja templates (a built-in one, or the operator's
//! `page.template`), themes, logo, accent color and custom CSS, in the visitor's language
//! (English and French built in, others from messages files).
//!
//! * [`settings`]: the `page:` block ([`PageSettings`]) and how it is read.
//! * [`messages`]: the messages files and the choice of a language.
//! * [`look`]: a [`Look`] (merged settings, compiled) renders the pages.
//! * `template`: the template engine (escaping, compiling an operator's template).
//!
//! It renders bodies only: which status goes with which error, and the HTTP headers, stay
//! with the proxy and the admin API. It imports only the vocabulary, the HTML escaping and
//! the settings reader, so every component above may use it. A custom template that fails
//! at render time never fails a request: the built-in page is shown instead.

pub mod look;
pub mod messages;
pub mod settings;
mod template;

use std::time::{Duration, SystemTime};

pub use look::Look;
pub use settings::{PAGE, PAGE_KEYS, PageSettings, Theme};

/// The look of every page a visitor gets instead of an app in the default theme (and of
/// the gate's Sablier pages): a light card in the middle of the window.
pub const CARD_STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;margin:0;min-height:100vh;display:grid;place-items:center;background:#f6f7f9;color:#1d2330}
main{max-width:34rem;padding:2rem;margin:1rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.08)}";

/// What a page knows of the request it answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visitor<'a> {
    /// The request's `Accept-Language`, which picks the page's language.
    pub accept_language: Option<&'a str>,
    /// The request's id (`X-Request-Id`, as a proxy in front set it), shown on error pages
    /// so a visitor can quote it.
    pub request_id: Option<&'a str>,
}

impl<'a> Visitor<'a> {
    /// The visitor of a request with these headers. A request id is kept only when it is
    /// short printable ASCII (it is shown on the page).
    pub fn of(headers: &'a http::HeaderMap) -> Visitor<'a> {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        Visitor {
            accept_language: text("accept-language"),
            request_id: text("x-request-id").filter(|id| {
                !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
            }),
        }
    }
}

/// The waiting page's facts.
#[derive(Debug, Clone, Copy)]
pub struct Waiting<'a> {
    /// The app's name.
    pub app: &'a str,
    /// How long its wake has been going on.
    pub waiting_for: Duration,
    /// When its wake began (wall time), when known.
    pub started_at: Option<SystemTime>,
    /// How long its starts usually take; `None` before its first start.
    pub eta: Option<Duration>,
    /// Whether the previous attempt to start it failed.
    pub previous_failure: bool,
}

impl Waiting<'_> {
    /// The expected remaining time, for `Retry-After` (1..=30 s; 5 s without an estimate).
    pub fn retry_after(&self) -> u64 {
        self.eta
            .map(|eta| eta.saturating_sub(self.waiting_for))
            .map_or(5, |r| r.as_secs().clamp(1, 30))
    }

    /// How often the page reloads itself (at most every 3 s).
    pub fn refresh(&self) -> u64 {
        self.retry_after().min(3)
    }
}

/// An error page's facts.
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfo<'a> {
    /// The HTTP status.
    pub status: u16,
    /// Its English reason phrase (used when the language has none).
    pub reason: &'a str,
    /// The stable machine-readable code (`unknown_app`): picks the `error.<code>` message.
    pub code: &'a str,
    /// The English sentence, shown when no message has the code.
    pub message: &'a str,
    /// Seconds after which trying again may help.
    pub retry_after: Option<u64>,
    /// The app, when one was routed.
    pub app: Option<&'a str>,
    /// When a sleeping schedule ends (in its time zone), for `asleep_by_schedule`.
    pub back_at: Option<&'a str>,
    /// The other values of the message (`host`, `choices`, `schedule`, `seconds`,
    /// `detail`).
    pub values: &'a [(&'a str, &'a str)],
}

#[cfg(test)]
mod tests;
