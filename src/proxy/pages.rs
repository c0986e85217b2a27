//! Error answers of the proxy: a page for browsers (rendered by the space's or the app's
//! [`Look`]), JSON for everything else; and the waiting page, with its headers. This module
//! only renders; which status goes with which error is decided in
//! [`super::ProxyError::status`].

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

pub use crate::pages::CARD_STYLE;
use crate::pages::{ErrorInfo, Look, Visitor, Waiting};

/// Whether the client asked for HTML (a browser navigation).
pub fn wants_html(headers: &HeaderMap) -> bool {
    // Compared as bytes: this runs for every request, and a substring search set up for
    // text costs more than the few windows of a short `Accept`.
    headers.get(ACCEPT).is_some_and(|accept| {
        accept
            .as_bytes()
            .windows(b"text/html".len())
            .any(|window| window == b"text/html")
    })
}

/// One error answer.
pub struct ErrorPage<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`unknown_app`, `wake_timeout`, ...).
    pub code: &'static str,
    /// One human sentence (English: the JSON body's, and the page's when its language has
    /// no message for the code).
    pub message: &'a str,
    /// Seconds for `Retry-After`, when trying again later can help.
    pub retry_after: Option<u64>,
    /// The app the request was for, when one was routed.
    pub app: Option<&'a str>,
    /// When a sleeping schedule ends, for `asleep_by_schedule`.
    pub back_at: Option<&'a str>,
    /// The other values of the page's message (`host`, `choices`, `seconds`, `detail`...).
    pub values: &'a [(&'a str, &'a str)],
}

impl ErrorPage<'_> {
    /// Renders the page as HTML (the built-in look, in English) or JSON.
    pub fn render(&self, html: bool) -> Response<Full<Bytes>> {
        self.render_with(html, &Look::builtin(), &Visitor::default())
    }

    /// Renders the page as HTML in `look`, in the visitor's language, or as JSON (always
    /// English, the same whatever the look).
    pub fn render_with(
        &self,
        html: bool,
        look: &Look,
        visitor: &Visitor<'_>,
    ) -> Response<Full<Bytes>> {
        let (content_type, body) = if html {
            ("text/html; charset=utf-8", self.html(look, visitor))
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

    fn html(&self, look: &Look, visitor: &Visitor<'_>) -> String {
        look.error(
            visitor,
            &ErrorInfo {
                status: self.status.as_u16(),
                reason: self.status.canonical_reason().unwrap_or("Error"),
                code: self.code,
                message: self.message,
                retry_after: self.retry_after,
                app: self.app,
                back_at: self.back_at,
                values: self.values,
            },
        )
    }
}

/// The page a browser gets while its app wakes: 503, refreshing itself every few seconds
/// until the app answers instead. `Retry-After` is the expected remaining time.
pub fn waiting(look: &Look, visitor: &Visitor<'_>, waiting: &Waiting<'_>) -> Response<Full<Bytes>> {
    let body = look.waiting(visitor, waiting);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(RETRY_AFTER, HeaderValue::from(waiting.retry_after()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn html_is_escaped_and_json_is_valid() {
        let page = ErrorPage {
            status: StatusCode::NOT_FOUND,
            code: "unknown_app",
            message: "no app for <script>\"x\"",
            retry_after: Some(5),
            app: None,
            back_at: None,
            values: &[("host", "<script>\"x\"")],
        };
        let html = page.render(true);
        assert_eq!(html.headers()[RETRY_AFTER], "5");
        let json = page.json();
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(parsed["error"]["code"], "unknown_app");
        let html = page.html(&Look::builtin(), &Visitor::default());
        assert!(
            html.contains("no app is served at &lt;script&gt;&quot;x&quot;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn the_waiting_page_says_what_is_happening() {
        let look = Look::builtin();
        let visitor = Visitor::default();
        let facts = |eta, previous_failure| Waiting {
            app: "shop<1>",
            waiting_for: Duration::from_secs(4),
            started_at: None,
            eta,
            previous_failure,
        };
        let page = waiting(&look, &visitor, &facts(Some(Duration::from_secs(10)), true));
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.headers()[RETRY_AFTER], "6");
        assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
        let first = waiting(&look, &visitor, &facts(None, false));
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
