//! A server span per call of an axum router (the admin API, the gate): `{method} {route}`,
//! the caller's `traceparent` as its parent, what the call begins (a wake, a stop) as its
//! children. It wraps a router; it knows none of their routes.

use axum::Router;

use super::{Kind, SpanContext, Tracer};

/// `router` with a server span per call when traces are on (`{method} {route}`, the
/// caller's `traceparent` as its parent; a wake or stop the call begins is its child);
/// `router` itself when they are off.
pub fn traced(router: Router, tracer: &Tracer) -> Router {
    if !tracer.is_on() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        tracer.clone(),
        trace_call,
    ))
}

/// One call in its span.
async fn trace_call(
    axum::extract::State(tracer): axum::extract::State<Tracer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let remote = SpanContext::from_headers(request.headers());
    let mut span = tracer.span(name, Kind::Server, remote, true);
    if span.is_recording() {
        span.set("http.request.method", method);
        if let Some(route) = route {
            span.set("http.route", route);
        }
        span.set("url.path", request.uri().path().to_owned());
    }
    let response = match span.context() {
        Some(context) => super::within(context, next.run(request)).await,
        None => next.run(request).await,
    };
    let status = response.status();
    span.set("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set("error.type", status.as_str().to_owned());
        span.fail(format!("answered {status}"));
    }
    response
}
