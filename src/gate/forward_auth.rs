//! `/forward-auth`: the endpoint another proxy calls before forwarding a request (nginx's
//! `auth_request`, Caddy's `forward_auth`, Traefik's `forwardAuth`).
//!
//! The request it is asked about is read from the headers those proxies add
//! (`X-Forwarded-Host`/`-Uri`/`-Method`, or nginx's `X-Original-URL`/`-Method`), then
//! routed, admitted and woken by the proxy's own phases. The answers:
//!
//! * the app is awake: `200`, with `X-Paastis-App`, `-Provider`, `-Space` and `-Upstream`
//!   (the app's address, for a proxy that forwards there);
//! * a browser while it wakes: `503` and the waiting page;
//! * a program while it wakes: held until the app is awake (its `wake_timeout`), then `200`;
//! * otherwise the proxy's own error answer (`404` unknown host, `409`, `429`, `503`...).
//!
//! Variants: `/forward-auth/nginx` turns every answer but a `2xx` into `401` (nginx's
//! `auth_request` accepts nothing else) with the real status in `X-Paastis-Status`;
//! `/forward-auth/page` answers an awake app with a `307` back to the request (the target of
//! nginx's `error_page`); `/forward-auth/keepalive` renews an awake app's activity and
//! session and never wakes anything.
//!
//! It reads headers only (never a body) and forwards nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{ACCEPT, CACHE_CONTROL, HOST, LOCATION, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::caller::{Gate, client_ip, query};
use super::settings::MAX_SESSION;
use crate::lifecycle::App;
use crate::proxy::admit::{Admission, RoutedApp};
use crate::proxy::{ProxyError, pages};

/// What the caller wants done with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The answer as it is.
    Check,
    /// Anything but a `2xx` as `401` (nginx's `auth_request`).
    Nginx,
    /// An awake app as a `307` back to the request (nginx's `error_page` target).
    Page,
}

/// `/forward-auth`: may the request go through, once its app is awake.
pub async fn check(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    answer(&gate, &request, Mode::Check).await
}

/// `/forward-auth/nginx`: the same, every answer but a `2xx` as `401`.
pub async fn nginx(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    answer(&gate, &request, Mode::Nginx).await
}

/// `/forward-auth/page`: the same, an awake app as a `307` back to the request.
pub async fn page(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    answer(&gate, &request, Mode::Page).await
}

/// `/forward-auth/keepalive`: counts activity for an awake app and renews its session;
/// never wakes. `204` with `X-Paastis-State`, or the route's error.
pub async fn keepalive(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    let html = pages::wants_html(&request.headers);
    let found = original(&request.headers)
        .and_then(|original| gate.proxy.route(&original.request).map_err(|(_, e)| e));
    let (space, app) = match found {
        Ok(found) => found,
        Err(error) => return error.page(html).map(Body::new),
    };
    let lifecycle = gate.proxy.space(space.as_ref());
    if app.state() == crate::model::State::Awake {
        drop(lifecycle.begin_request(&app));
        match session(&gate, &request) {
            Ok(session) => lifecycle.hold_session(&app, session).await,
            Err(error) => return error.page(html).map(Body::new),
        }
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let state = HeaderValue::from_str(&app.state().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    response.headers_mut().insert("x-paastis-state", state);
    app_headers(response.headers_mut(), space.as_ref(), &app);
    response
}

/// One check: routed, admitted, woken (or not), answered in the caller's mode.
async fn answer(gate: &Gate, request: &Parts, mode: Mode) -> Response {
    let started = Instant::now();
    let html = pages::wants_html(&request.headers);
    let mut routed: Option<RoutedApp> = None;
    let response = match check_one(gate, request, mode, html, &mut routed).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(code = error.code(), %error, "forward-auth refused");
            error.page(html).map(Body::new)
        }
    };
    // The hit is a request of its app, in its space's metrics.
    let lifecycle = gate
        .proxy
        .space(routed.as_ref().and_then(|(space, _)| space.as_ref()));
    lifecycle.metrics().request(
        routed.as_ref().map(|(_, app)| app.as_ref()),
        response.status().as_u16(),
        started.elapsed(),
    );
    match mode {
        Mode::Nginx if !response.status().is_success() => unauthorized(response.status()),
        _ => response,
    }
}

async fn check_one(
    gate: &Gate,
    request: &Parts,
    mode: Mode,
    html: bool,
    routed: &mut Option<RoutedApp>,
) -> Result<Response, ProxyError> {
    let original = original(&request.headers)?;
    let session = session(gate, request)?;
    let client_ip = client_ip(gate, request);
    let ((space, app), admitted) = gate
        .proxy
        .admit(&original.request, client_ip, html, routed)
        .await?;
    let lifecycle = gate.proxy.space(space.as_ref());
    lifecycle.hold_session(app, session).await;
    let upstream = match admitted.admission {
        Admission::Waiting(page) => return Ok(page.map(Body::new)),
        Admission::Ready(upstream) => upstream,
    };
    let mut response = Response::new(Body::empty());
    if mode == Mode::Page {
        // The app woke since the first answer: back to the request, which now goes through.
        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        if let Ok(location) = HeaderValue::from_str(&original.target) {
            response.headers_mut().insert(LOCATION, location);
        }
    }
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    app_headers(headers, space.as_ref(), app);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{}://{}",
        upstream.scheme.as_str(),
        upstream.authority
    )) {
        headers.insert("x-paastis-upstream", value);
    }
    drop(admitted.in_flight);
    Ok(response)
}

/// `X-Paastis-App`, `-Provider` and `-Space` of the app a request went to.
fn app_headers(headers: &mut HeaderMap, space: Option<&Arc<crate::proxy::SpaceRoute>>, app: &App) {
    let space = space.map_or(crate::model::DEFAULT_SPACE, |space| space.id.as_str());
    for (name, value) in [
        ("x-paastis-app", app.key.name.as_ref()),
        ("x-paastis-provider", app.provider_id()),
        ("x-paastis-space", space),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// nginx's answer for anything but a `2xx`: `401`, the real status in `X-Paastis-Status`.
fn unauthorized(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert("x-paastis-status", HeaderValue::from(status.as_u16()));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request another proxy asks about.
#[derive(Debug)]
pub struct Original {
    /// Method, target (origin-form), `Host`, and the client's `User-Agent` and `Accept`:
    /// what the route and admit phases read.
    pub request: http::Request<()>,
    /// Its path and query, as the client asked.
    pub target: String,
}

/// The first value of a header, its first comma-separated item (a proxy chain appends).
fn first<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ProxyError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| text.split(',').next().map(str::trim))
            .map_err(|_| ProxyError::Forwarded(format!("{name} is not text"))),
    }
}

/// The original request, from `X-Forwarded-Host`, `-Uri` and `-Method` (Traefik, Caddy) or
/// `X-Original-URL` and `-Method` (nginx, by the configuration the book gives).
pub fn original(headers: &HeaderMap) -> Result<Original, ProxyError> {
    let url = first(headers, "x-original-url")?
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<http::Uri>().map_err(|_| {
                ProxyError::Forwarded("X-Original-URL is not an absolute URL".to_owned())
            })
        })
        .transpose()?;
    let host = match first(headers, "x-forwarded-host")?.filter(|host| !host.is_empty()) {
        Some(host) => host.to_owned(),
        None => match url.as_ref().and_then(http::Uri::authority) {
            Some(authority) => authority.as_str().to_owned(),
            None => {
                return Err(ProxyError::Forwarded(
                    "neither X-Forwarded-Host nor X-Original-URL names a host".to_owned(),
                ));
            }
        },
    };
    let target = match first(headers, "x-forwarded-uri")?.filter(|uri| !uri.is_empty()) {
        Some(uri) => uri.to_owned(),
        None => url
            .as_ref()
            .and_then(http::Uri::path_and_query)
            .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned()),
    };
    if !target.starts_with('/') {
        return Err(ProxyError::Forwarded(
            "X-Forwarded-Uri is not a path".to_owned(),
        ));
    }
    let method = match first(headers, "x-forwarded-method")?
        .or(first(headers, "x-original-method")?)
        .filter(|method| !method.is_empty())
    {
        Some(method) => http::Method::from_bytes(method.as_bytes())
            .map_err(|_| ProxyError::Forwarded(format!("`{method}` is not an HTTP method")))?,
        None => http::Method::GET,
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(target.as_str())
        .header(HOST, host.as_str());
    for name in [USER_AGENT, ACCEPT] {
        if let Some(value) = headers.get(&name) {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(())
        .map_err(|_| ProxyError::Forwarded("X-Forwarded-Uri is not a request target".to_owned()))?;
    Ok(Original { request, target })
}

/// The session a hit opens: the request's `?session=` (a duration), else `gate.forward_auth.session`.
fn session(gate: &Gate, request: &Parts) -> Result<Duration, ProxyError> {
    let default = gate
        .settings
        .forward_auth
        .map_or(Duration::ZERO, |settings| settings.session);
    let Some(text) = query(&request.uri)
        .map_err(ProxyError::Forwarded)?
        .into_iter()
        .find_map(|(key, value)| (key == "session").then_some(value))
    else {
        return Ok(default);
    };
    let session = crate::model::parse_duration(&text)
        .map_err(|message| ProxyError::Forwarded(format!("session: {message}")))?;
    if session > MAX_SESSION {
        return Err(ProxyError::Forwarded("session: at most 7d".to_owned()));
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn traefik_and_caddy_headers_describe_the_request() {
        let original = original(&headers(&[
            ("x-forwarded-host", "Shop.example.com, proxy.internal"),
            ("x-forwarded-uri", "/cart?id=1"),
            ("x-forwarded-method", "POST"),
            ("user-agent", "curl/8"),
        ]))
        .expect("readable");
        assert_eq!(original.request.method(), http::Method::POST);
        assert_eq!(original.request.headers()[HOST], "Shop.example.com");
        assert_eq!(original.request.uri().path(), "/cart");
        assert_eq!(original.target, "/cart?id=1");
        assert_eq!(original.request.headers()[USER_AGENT], "curl/8");
    }

    #[test]
    fn nginx_original_url_describes_the_request() {
        let original = original(&headers(&[
            ("x-original-url", "https://shop.example.com:8443/a/b?c=d"),
            ("x-original-method", "HEAD"),
        ]))
        .expect("readable");
        assert_eq!(original.request.method(), http::Method::HEAD);
        assert_eq!(original.request.headers()[HOST], "shop.example.com:8443");
        assert_eq!(original.target, "/a/b?c=d");
        let plain = original_or_error(&[("x-forwarded-host", "shop")]);
        assert_eq!(plain.expect("readable").target, "/");
    }

    fn original_or_error(pairs: &[(&'static str, &'static str)]) -> Result<Original, ProxyError> {
        original(&headers(pairs))
    }

    #[test]
    fn unreadable_forwarded_headers_are_refused_with_a_reason() {
        for (pairs, needle) in [
            (vec![], "names a host"),
            (vec![("x-original-url", "not a url at all")], "absolute URL"),
            (
                vec![("x-forwarded-host", "shop"), ("x-forwarded-uri", "cart")],
                "not a path",
            ),
            (
                vec![("x-forwarded-host", "shop"), ("x-forwarded-method", "GE T")],
                "HTTP method",
            ),
        ] {
            let error = original_or_error(&pairs).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
