//! Error answers of the proxy: a small HTML page for browsers, JSON for everything else.
//! This module only renders; which status goes with which error is decided in
//! [`super::ProxyError::status`].

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::html::escape;

/// The look of every page a visitor gets instead of an app (error pages, waiting pages):
/// a light card in the middle of the window.
pub const CARD_STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;margin:0;min-height:100vh;display:grid;place-items:center;background:#f6f7f9;color:#1d2330}
main{max-width:34rem;padding:2rem;margin:1rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.08)}";

/// Whether the client asked for HTML (a browser navigation).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// One error answer.
pub struct ErrorPage<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`unknown_app`, `wake_timeout`, ...).
    pub code: &'static str,
    /// One human sentence.
    pub message: &'a str,
    /// Seconds for `Retry-After`, when trying again later can help.
    pub retry_after: Option<u64>,
}

impl ErrorPage<'_> {
    /// Renders the page as HTML or JSON.
    pub fn render(&self, html: bool) -> Response<Full<Bytes>> {
        let (content_type, body) = if html {
            ("text/html; charset=utf-8", self.html())
        } else {
            ("application/json", self.json())
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    fn json(&self) -> String {
        serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        })
        .to_string()
    }

    fn html(&self) -> String {
        let status = self.status.as_u16();
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let message = escape(self.message);
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {reason}</title>
<style>
{CARD_STYLE}
h1{{font-size:1.25rem;margin:0 0 .75rem}}
p{{line-height:1.5;margin:0}}
small{{display:block;margin-top:1.5rem;color:#5b6475}}
</style>
</head>
<body>
<main>
<h1>{status} {reason}</h1>
<p>{message}</p>
<small>paastis</small>
</main>
</body>
</html>
"#
        )
    }
}

/// The page a browser gets while its app wakes: 503, refreshing itself every few seconds
/// until the app answers instead. `Retry-After` is the expected remaining time.
pub fn waiting(
    app: &str,
    waiting_for: Duration,
    eta: Option<Duration>,
    last_failure: bool,
) -> Response<Full<Bytes>> {
    let remaining = eta.map(|eta| eta.saturating_sub(waiting_for));
    let retry_after = remaining.map_or(5, |r| r.as_secs().clamp(1, 30));
    let refresh = retry_after.min(3);
    let app = escape(app);
    let started = match waiting_for.as_secs() {
        0 => "Started just now".to_owned(),
        seconds => format!("Started {seconds}s ago"),
    };
    let progress = match eta {
        Some(eta) => {
            let percent =
                (waiting_for.as_secs_f64() / eta.as_secs_f64().max(0.1) * 100.0).min(95.0);
            format!(
                r#"<progress max="100" value="{percent:.0}" aria-label="Estimated progress">{percent:.0}%</progress>
<p>{started}; it usually takes about {}s.</p>"#,
                eta.as_secs().max(1)
            )
        }
        None => {
            format!("<p>{started}. This is its first start here, so there is no estimate yet.</p>")
        }
    };
    let failure = if last_failure {
        "<p class=\"note\">The previous attempt to start it failed; trying again.</p>"
    } else {
        ""
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>Waking up {app}…</title>
<style>
{CARD_STYLE}
h1{{font-size:1.25rem;margin:0 0 .75rem}}
p{{line-height:1.5;margin:.5rem 0}}
progress{{width:100%;height:.75rem}}
.note{{color:#8a4b00}}
small{{display:block;margin-top:1.5rem;color:#5b6475}}
</style>
</head>
<body>
<main role="status" aria-live="polite">
<h1>Waking up {app}…</h1>
<p>This app sleeps when nobody uses it, to save money and energy. It is starting now; this page
reloads by itself and shows the app as soon as it is up.</p>
{progress}
{failure}
<small>paastis</small>
</main>
</body>
</html>
"#
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_json_is_valid() {
        let page = ErrorPage {
            status: StatusCode::NOT_FOUND,
            code: "unknown_app",
            message: "no app for <script>\"x\"",
            retry_after: Some(5),
        };
        let html = page.render(true);
        assert_eq!(html.headers()[RETRY_AFTER], "5");
        let json = page.json();
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(parsed["error"]["code"], "unknown_app");
        assert!(
            page.html()
                .contains("no app for &lt;script&gt;&quot;x&quot;")
        );
        assert!(!page.html().contains("<script>"));
    }

    #[test]
    fn the_waiting_page_says_what_is_happening() {
        let page = waiting(
            "shop<1>",
            Duration::from_secs(4),
            Some(Duration::from_secs(10)),
            true,
        );
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.headers()[RETRY_AFTER], "6");
        let first = waiting("shop", Duration::from_secs(2), None, false);
        assert_eq!(first.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn browsers_get_html() {
        let mut headers = HeaderMap::new();
        assert!(!wants_html(&headers));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml"),
        );
        assert!(wants_html(&headers));
    }
}
