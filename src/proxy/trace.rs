//! Phase **trace** (traces on): a proxied request's server span. The client's `traceparent`
//! is its parent (a malformed one starts a new trace); the span's own replaces it on the way
//! upstream; the wake the request causes is its child; the span ends with the answer's head.
//! With traces off nothing here runs: the request path takes one branch more.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

use super::body::RequestBody;
use super::forward::ClientSide;
use super::{ProxyBody, ProxyError, Worker};
use crate::lifecycle::App;

/// What a request's span tells besides its request and answer (traces on).
#[derive(Debug, Default)]
pub(super) struct Notes {
    /// Whether the span is recorded (else nothing is noted).
    pub(super) traced: bool,
    /// Why the request was not forwarded: the error's code and text.
    pub(super) failure: Option<(&'static str, String)>,
    /// How long it waited for its app to wake.
    pub(super) waited: Option<Duration>,
    /// The app it went to.
    pub(super) app: Option<Arc<App>>,
}

impl Notes {
    /// Notes why the request was not forwarded.
    pub(super) fn failed(&mut self, error: &ProxyError) {
        if self.traced {
            self.failure = Some((error.code(), error.to_string()));
        }
    }
}

impl Worker {
    /// [`Worker::handle`] within the request's server span: the client's `traceparent`
    /// is its parent; the span's own goes upstream; a wake it causes is its child. The span
    /// ends with the answer's head.
    pub(super) async fn traced(
        &self,
        mut request: Request<RequestBody>,
        client: &ClientSide,
    ) -> Response<ProxyBody> {
        use crate::traces::{Kind, SpanContext, context::TRACEPARENT};
        let remote = SpanContext::from_headers(request.headers());
        let method = request.method();
        let name = span_name(method);
        let mut span = self.proxy.tracer.span(name, Kind::Server, remote, true);
        if span.is_recording() {
            span.set(
                "http.request.method",
                if name == "HTTP" { "_OTHER" } else { name },
            );
            span.set("url.path", request.uri().path().to_owned());
            span.set("url.scheme", client.proto);
            span.set(
                "network.protocol.version",
                match request.version() {
                    http::Version::HTTP_2 => "2",
                    http::Version::HTTP_10 => "1.0",
                    _ => "1.1",
                },
            );
            span.set("client.address", client.peer.ip());
            if let Some(host) = request
                .headers()
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| request.uri().host())
            {
                span.set("server.address", host.to_owned());
            }
        }
        let mut notes = Notes {
            traced: span.is_recording(),
            ..Notes::default()
        };
        if let Some(context) = span.context() {
            request
                .headers_mut()
                .insert(TRACEPARENT, context.to_header());
        }
        let mut response = self.handle(request, client, Some(&mut notes)).await;
        if span.is_recording() {
            let status = response.status();
            span.set("http.response.status_code", i64::from(status.as_u16()));
            if let Some(app) = &notes.app {
                span.set("paastis.space", Arc::clone(&app.key.space));
                span.set("paastis.provider", Arc::clone(&app.key.provider));
                span.set("paastis.app", Arc::clone(&app.key.name));
            }
            if let Some(waited) = notes.waited {
                span.set("paastis.wake.waited", true);
                span.set(
                    "paastis.wake.waited_ms",
                    i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
                );
            }
            if let Some((code, message)) = notes.failure {
                span.set("error.type", code);
                if status.is_server_error() {
                    span.fail(message);
                }
            } else if status.is_server_error() {
                span.set("error.type", status.as_str().to_owned());
                span.fail(format!("the upstream answered {status}"));
            }
        }
        // An upstream's answer: the span goes on until its body is through.
        if span.is_recording()
            && let http_body_util::Either::Left(body) = response.body_mut()
        {
            body.end_span_with_body(span);
        }
        response
    }
}

/// A server span's name: the request's method (`HTTP` for one outside the standard set, so
/// names stay few).
fn span_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::CONNECT => "CONNECT",
        _ => "HTTP",
    }
}
