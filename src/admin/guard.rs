//! Keeps the web pages an operator visits from using the admin listener through the
//! operator's browser.
//!
//! Without `admin.token` (the listener is then on loopback only) nothing proves who calls, so
//! [`guard`] refuses every request whose Host is not a loopback name (DNS rebinding: a
//! foreign name made to resolve to 127.0.0.1) and every write sent by another origin's page
//! (`Origin`, `Sec-Fetch-Site`). With a token, the API needs a bearer header no page can make
//! a browser send, and the dashboard, signed in by cookie, needs a form token bound to that
//! cookie ([`form_token`]) on every POST; a page of another site (or of a sibling subdomain)
//! is refused there too when the browser says so (`Sec-Fetch-Site`).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AdminState, ApiError};

/// What the dashboard's form token is the MAC of, under the session's own token.
const FORM_TOKEN_CONTEXT: &[u8] = b"paastis dashboard form token v1";

/// The header browsers send with where a request comes from (`same-origin`, `same-site`,
/// `cross-site`, `none`).
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Checks every request of the admin listener before it is routed (see the module's doc).
pub async fn guard(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if state.token.is_none() {
        let host = host(headers, request.uri(), &state.hosts)?;
        if write {
            same_origin(headers, host.as_deref())?;
        }
    } else if write && is_dashboard(request.uri().path()) {
        not_from_another_site(headers)?;
    }
    Ok(next.run(request).await)
}

/// The dashboard's routes: signed in by cookie, so the ones a browser sends on its own.
fn is_dashboard(path: &str) -> bool {
    path == "/login" || path == "/logout" || path.starts_with("/dashboard/")
}

/// The request's Host (or, in HTTP/2, its authority), when it names a loopback host or one
/// of `admin.host`'s names (`configured`); `None` when it names none (not a browser: every
/// browser sends one). 403 otherwise.
fn host(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    configured: &[String],
) -> Result<Option<String>, ApiError> {
    let mut given = headers.get_all(header::HOST).iter();
    let host = match (given.next(), given.next()) {
        (Some(_), Some(_)) => return Err(forbidden_host("several Host headers")),
        (Some(value), None) => Some(
            value
                .to_str()
                .map_err(|_| forbidden_host("a Host that is not text"))?
                .to_owned(),
        ),
        (None, _) => uri
            .authority()
            .map(|authority| authority.as_str().to_owned()),
    };
    match host {
        Some(host) if !is_loopback_host(&host) && !is_configured(&host, configured) => {
            Err(forbidden_host(&format!("Host `{host}`")))
        }
        host => Ok(host),
    }
}

/// Whether `host` (with or without a port, any case, a trailing dot allowed) is one of
/// `admin.host`'s names: the operator named them for this router.
fn is_configured(host: &str, configured: &[String]) -> bool {
    if configured.is_empty() {
        return false;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port_ok(Some(port)) => name,
        Some(_) => return false,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    configured
        .iter()
        .any(|wanted| wanted.eq_ignore_ascii_case(name))
}

/// `localhost`, a name under `.localhost`, or a loopback address (`127.0.0.0/8`, `[::1]`),
/// with or without a port. Names under `.localhost` are answered with loopback by browsers
/// and resolvers themselves (RFC 6761), never by a DNS server someone else controls; any
/// other name could be, after the page was loaded from it (DNS rebinding).
pub fn is_loopback_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            other => match other.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        return port_ok(port)
            && inner
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|ip| ip.is_loopback());
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if !port_ok(port) {
        return false;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = name.to_ascii_lowercase();
    let Some(under) = name.strip_suffix("localhost") else {
        return false;
    };
    under.is_empty()
        || under.strip_suffix('.').is_some_and(|labels| {
            !labels.is_empty()
                && labels.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
}

/// A port as in a Host header: digits, a `u16`.
fn port_ok(port: Option<&str>) -> bool {
    port.is_none_or(|port| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
    })
}

/// A write must come from the listener's own pages: no `Origin` but this listener's
/// (`http://` or `https://` and the request's own Host), and no `Sec-Fetch-Site` saying
/// another site (or a sibling of this one). A request with neither header is not from a
/// browser's page (the CLI, curl, scripts) and goes through.
fn same_origin(headers: &HeaderMap, host: Option<&str>) -> Result<(), ApiError> {
    not_from_another_site(headers)?;
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Ok(()),
        (Some(_), Some(_)) => return Err(cross_site("several Origin headers")),
        (Some(origin), None) => origin
            .to_str()
            .map_err(|_| cross_site("an Origin that is not text"))?,
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(cross_site(&format!("Origin `{origin}`"))),
    }
}

/// Refuses a request the browser says comes from another site's page, or another origin of
/// the same site (`Sec-Fetch-Site: cross-site` or `same-site`).
fn not_from_another_site(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(SEC_FETCH_SITE) {
        let value = value.to_str().unwrap_or("");
        if value.eq_ignore_ascii_case("cross-site") || value.eq_ignore_ascii_case("same-site") {
            return Err(cross_site(&format!("Sec-Fetch-Site `{value}`")));
        }
    }
    Ok(())
}

/// The dashboard's form token for a session cookie: an HMAC-SHA256 of a fixed text under
/// the cookie's token. A page of another origin cannot read it (nor the HttpOnly cookie),
/// so it cannot send it; it takes no state, so it holds across restarts and instances, and
/// it changes with the token.
pub fn form_token(cookie: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, cookie.trim().as_bytes());
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, FORM_TOKEN_CONTEXT))
}

/// Checks a dashboard form's token: needed when the session cookie signs the request in
/// (a bearer token, which browsers never send on their own, needs none; neither does the
/// open dashboard, without a token, guarded by [`guard`]).
pub fn check_form_token(
    state: &AdminState,
    headers: &HeaderMap,
    given: Option<&str>,
) -> Result<(), ApiError> {
    if state.bearer(headers).is_some() {
        return Ok(());
    }
    let Some(cookie) = super::cookie_value(headers, super::COOKIE) else {
        return Ok(());
    };
    let expected = form_token(cookie);
    match given {
        Some(given) if crate::secret::constant_time_eq(given.as_bytes(), expected.as_bytes()) => {
            Ok(())
        }
        _ => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "bad_form_token",
            message: "the form's token is missing or wrong (a form not sent from the \
                      dashboard's own page): reload the dashboard and try again"
                .to_owned(),
            errors: Vec::new(),
        }),
    }
}

/// 403: the Host is not a loopback name, and the listener has no token.
fn forbidden_host(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden_host",
        message: format!(
            "{what} refused: without admin.token the admin listener answers only requests \
             for localhost, a name under .localhost, a loopback address or a name of \
             admin.host (set admin.token to reach it by another name)"
        ),
        errors: Vec::new(),
    }
}

/// 403: a write sent by another origin's page, and the listener has no token.
fn cross_site(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "cross_site",
        message: format!(
            "{what} refused: the admin listener takes changes only from its own pages \
             (or from clients that are not browsers)"
        ),
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_the_others() {
        for host in [
            "localhost",
            "LocalHost:3001",
            "admin.localhost",
            "a-b.c.localhost:80",
            "127.0.0.1",
            "127.0.0.1:3001",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:3001",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.test",
            "evil.test:3001",
            "localhost.",
            "localhost.evil.test",
            "evillocalhost",
            ".localhost",
            "a..localhost",
            "a_b.localhost",
            "127.0.0.1.nip.io",
            "0.0.0.0:3001",
            "10.0.0.1",
            "[::ffff:127.0.0.1]",
            "[::1]x",
            "[::1",
            "localhost:",
            "localhost:99999",
            "localhost:3001:1",
            "::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn configured_hosts_are_accepted_with_or_without_a_port() {
        let configured = vec!["paastis.example.com".to_owned()];
        for host in [
            "paastis.example.com",
            "Paastis.Example.com:8080",
            "paastis.example.com.",
        ] {
            assert!(is_configured(host, &configured), "{host}");
        }
        for host in [
            "example.com",
            "evil.paastis.example.com",
            "paastis.example.com:x",
            "paastis.example.com:1:2",
        ] {
            assert!(!is_configured(host, &configured), "{host}");
        }
        assert!(!is_configured("paastis.example.com", &[]));
    }

    #[test]
    fn the_form_token_is_bound_to_the_cookie() {
        let token = form_token("admin-token");
        assert_eq!(token, form_token("admin-token"));
        assert_eq!(token, form_token(" admin-token "));
        assert_ne!(token, form_token("admin-tokeN"));
        assert!(!token.contains("admin-token"));
        assert_eq!(token.len(), 43, "{token}");
    }
}
