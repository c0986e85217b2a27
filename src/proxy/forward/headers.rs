//! The headers both ways: the request as it goes upstream (origin-form target, hop-by-hop
//! headers removed, `X-Forwarded-*`, `Via` and `Host` set, the client's own `Origin`
//! rewritten) and the response as the client gets it (`Location` moved to the client's host).

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body::Body;

use super::{ClientSide, Forwarder};
use crate::model::Upstream;
use crate::proxy::body::{BodyOutcome, ClientBody, Outgoing, RequestBody};

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded. `Upgrade`
/// too: upgrades are not proxied yet.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::UPGRADE,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The fields the proxy sets on a request for the upstream, kept apart from the request's
/// map: a direct connection writes them after the client's own fields (no map insertions
/// per request), hyper's client gets them put in the map ([`Added::apply`]).
#[derive(Debug)]
pub(super) struct Added<'u> {
    /// `Host`: the upstream's (borrowed: the upstream is shared by every worker, and a
    /// clone of its value would count references on a line their CPUs pass around at
    /// every request), or the client's with `proxy.preserve_host`.
    host: Cow<'u, HeaderValue>,
    /// `X-Forwarded-For`: the client's address after what a client or proxy sent.
    forwarded_for: HeaderValue,
    /// `X-Forwarded-Proto`, unless a trusted proxy's is kept.
    forwarded_proto: Option<HeaderValue>,
    /// `X-Forwarded-Host`, unless a trusted proxy's is kept.
    forwarded_host: Option<HeaderValue>,
    /// `Origin` moved to the upstream's (the client's own origin only).
    origin: Option<HeaderValue>,
    /// `Via`, after any the request already has.
    via: HeaderValue,
}

impl Added<'_> {
    /// Puts the fields in `headers`, replacing the client's.
    pub(super) fn apply(self, headers: &mut HeaderMap) {
        headers.insert(X_FORWARDED_FOR, self.forwarded_for);
        if let Some(proto) = self.forwarded_proto {
            headers.insert(X_FORWARDED_PROTO, proto);
        }
        if let Some(host) = self.forwarded_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
        if let Some(origin) = self.origin {
            headers.insert(header::ORIGIN, origin);
        }
        headers.append(header::VIA, self.via);
        headers.insert(header::HOST, self.host.into_owned());
    }

    /// Whether the client's field `name` gives way to one of these.
    pub(super) fn replaces(&self, name: &HeaderName) -> bool {
        *name == header::HOST
            || *name == X_FORWARDED_FOR
            || (*name == X_FORWARDED_PROTO && self.forwarded_proto.is_some())
            || (*name == X_FORWARDED_HOST && self.forwarded_host.is_some())
            || (*name == header::ORIGIN && self.origin.is_some())
    }

    /// The fields as `(name, value)`, `Host` first; `None` for a field not set. An array
    /// walked with plain loops: this runs for every request, and chained iterators over it
    /// cost several times as much.
    pub(super) fn fields(&self) -> [(&'static str, Option<&HeaderValue>); 6] {
        [
            ("host", Some(&*self.host)),
            ("x-forwarded-for", Some(&self.forwarded_for)),
            ("x-forwarded-proto", self.forwarded_proto.as_ref()),
            ("x-forwarded-host", self.forwarded_host.as_ref()),
            ("origin", self.origin.as_ref()),
            ("via", Some(&self.via)),
        ]
    }
}

/// A request prepared for the upstream: the request itself, then what
/// [`Forwarder::prepare_apart`] kept apart of its fields, the client's proto and host (for
/// `Location` rewrites) and its body's outcome.
pub(super) type Prepared<'u> = (
    Request<Outgoing>,
    Added<'u>,
    Option<(&'static str, HeaderValue)>,
    BodyOutcome,
);

impl Forwarder {
    /// The request as it goes upstream: origin-form target, HTTP/1.1, hop-by-hop headers
    /// removed, `X-Forwarded-*`, `Via` and the upstream's `Host` set.
    pub(super) fn prepare(
        &self,
        request: Request<RequestBody>,
        upstream: &Upstream,
        client: &ClientSide,
    ) -> (
        Request<Outgoing>,
        Option<(&'static str, HeaderValue)>,
        BodyOutcome,
    ) {
        let (mut request, added, client_origin, outcome) =
            self.prepare_apart(request, upstream, client);
        added.apply(request.headers_mut());
        (request, client_origin, outcome)
    }

    /// As [`Forwarder::prepare`], the fields the proxy sets kept apart (see [`Added`]).
    pub(super) fn prepare_apart<'u>(
        &self,
        request: Request<RequestBody>,
        upstream: &'u Upstream,
        client: &ClientSide,
    ) -> Prepared<'u> {
        let (mut parts, body) = request.into_parts();
        let (body, outcome) = match body {
            RequestBody::Hyper(body) if !body.is_end_stream() => {
                let outcome = BodyOutcome::tracked();
                let body = ClientBody::new(body, self.body_progress, outcome.clone());
                (Outgoing::Client(body), outcome)
            }
            _ => (Outgoing::Empty, BodyOutcome::default()),
        };
        // HTTP/1.1 requests to an origin server carry the origin form: path and query only.
        let authority = parts
            .uri
            .authority()
            .map(|authority| authority.as_str().to_owned());
        parts.uri = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        let via = via_value(parts.version);
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        // The fields read here, in one pass over the (few) fields rather than one lookup
        // each.
        let (mut host, mut forwarded_for, mut proto_sent, mut host_sent, mut origin) =
            (None, None, None, None, None);
        for (name, value) in headers.iter() {
            if *name == header::HOST {
                host.get_or_insert(value);
            } else if *name == header::ORIGIN {
                origin.get_or_insert(value);
            } else if *name == X_FORWARDED_FOR {
                forwarded_for.get_or_insert(value);
            } else if *name == X_FORWARDED_PROTO {
                proto_sent.get_or_insert(value);
            } else if *name == X_FORWARDED_HOST {
                host_sent.get_or_insert(value);
            }
        }
        // The host the client asked for, as it wrote it (HTTP/2 and absolute-form requests
        // carry it in the target).
        let asked_host = match authority {
            Some(authority) => HeaderValue::from_str(&authority).ok(),
            None => host.cloned(),
        };
        let forwarded_for = forwarded_for_value(forwarded_for, &client.ip);
        // A trusted proxy says how the client reached it; anyone else is told by the
        // listener it came to.
        let (proto, forwarded_proto) = match proto_sent.map(HeaderValue::as_bytes) {
            Some(b"https") if client.trusted => ("https", None),
            Some(b"http") if client.trusted => ("http", None),
            _ => (client.proto, Some(HeaderValue::from_static(client.proto))),
        };
        let (forwarded_host, kept) = match host_sent {
            Some(host) if client.trusted => (Some(host.clone()), true),
            _ => (asked_host, false),
        };
        // `Origin` is rewritten only when it is the request's own origin (a browser
        // talking to this host): any other origin passes as it is, so no CORS hole opens.
        let origin = match (&forwarded_host, origin) {
            (Some(host), Some(origin))
                if !self.preserve_host && same_origin(origin, proto, host) =>
            {
                HeaderValue::from_str(&upstream.to_string()).ok()
            }
            _ => None,
        };
        // An untrusted `X-Forwarded-Host` never passes, even with no host to put instead.
        let unfounded = forwarded_host.is_none() && host_sent.is_some();
        let host = match (&forwarded_host, self.preserve_host) {
            (Some(host), true) => Cow::Owned(host.clone()),
            _ => Cow::Borrowed(upstream.host_header()),
        };
        let added = Added {
            host,
            forwarded_for,
            forwarded_proto,
            forwarded_host: forwarded_host.clone().filter(|_| !kept),
            origin,
            via,
        };
        if unfounded {
            parts.headers.remove(X_FORWARDED_HOST);
        }
        let client_origin = forwarded_host.map(|host| (proto, host));
        (
            Request::from_parts(parts, body),
            added,
            client_origin,
            outcome,
        )
    }

    /// The response as the client gets it: hop-by-hop headers removed, `Via` added, and
    /// `Location` / `Content-Location` pointing at the upstream's own URL moved to the host
    /// the client used.
    pub(super) fn clean_response<B>(
        &self,
        response: &mut Response<B>,
        upstream: &Upstream,
        client_origin: Option<&(&'static str, HeaderValue)>,
    ) {
        let via = via_value(response.version());
        let headers = response.headers_mut();
        remove_hop_by_hop(headers);
        headers.append(header::VIA, via);
        let Some((proto, client_host)) =
            client_origin.and_then(|(proto, h)| Some((*proto, h.to_str().ok()?)))
        else {
            return;
        };
        // Most responses carry neither: the upstream's origin is formatted only for those
        // that do.
        if !headers.contains_key(header::LOCATION)
            && !headers.contains_key(header::CONTENT_LOCATION)
        {
            return;
        }
        let upstream_origin = upstream.to_string();
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let rewritten = headers
                .get(&name)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| {
                    rewrite_location(location, &upstream_origin, proto, client_host)
                });
            if let Some(value) = rewritten.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
    }
}

/// Whether `origin` is `<proto>://<host>`: the origin of the request itself.
fn same_origin(origin: &HeaderValue, proto: &str, host: &HeaderValue) -> bool {
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix(proto)
        .and_then(|rest| rest.strip_prefix("://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// `location` with the upstream's origin replaced by the client's, when it starts with it.
fn rewrite_location(
    location: &str,
    upstream_origin: &str,
    proto: &str,
    host: &str,
) -> Option<String> {
    let head = location.get(..upstream_origin.len())?;
    if !head.eq_ignore_ascii_case(upstream_origin) {
        return None;
    }
    let rest = &location[upstream_origin.len()..];
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return None;
    }
    Some(format!("{proto}://{host}{rest}"))
}

/// Whether a request asks to switch protocols: an `Upgrade` header named by `Connection`.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

pub(super) fn via_value(version: Version) -> HeaderValue {
    const VIA_2: HeaderValue = HeaderValue::from_static("2 paastis");
    const VIA_10: HeaderValue = HeaderValue::from_static("1.0 paastis");
    const VIA_11: HeaderValue = HeaderValue::from_static("1.1 paastis");
    match version {
        Version::HTTP_2 => VIA_2,
        Version::HTTP_10 => VIA_10,
        _ => VIA_11,
    }
}

/// The `Via` the proxy adds to an answer in `version`.
pub(super) fn via_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "2 paastis",
        Version::HTTP_10 => "1.0 paastis",
        _ => "1.1 paastis",
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
/// The place of `name` in [`HOP_BY_HOP`]: one match on the name's text (a comparison with
/// each of the nine names costs more, the non-standard ones being compared byte by byte).
pub(super) fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    hop_by_hop_place(name.as_str().as_bytes())
}

/// The place in [`HOP_BY_HOP`] of the lowercase field name `name`.
pub(super) fn hop_by_hop_place(name: &[u8]) -> Option<usize> {
    match name {
        b"upgrade" => Some(0),
        b"connection" => Some(1),
        b"keep-alive" => Some(2),
        b"proxy-connection" => Some(3),
        b"proxy-authenticate" => Some(4),
        b"proxy-authorization" => Some(5),
        b"te" => Some(6),
        b"trailer" => Some(7),
        b"transfer-encoding" => Some(8),
        _ => None,
    }
}

pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) header names tells which hop-by-hop names are there (most
    // messages carry none, a keep-alive response only `Connection`): only those are looked
    // up again to be removed.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name) {
            present |= 1 << index;
        }
    }
    if present == 0 {
        return;
    }
    // Names `Connection` lists besides the standard hop-by-hop ones (`keep-alive` needs no
    // lookup of its own): few, so the list allocates only when there are some.
    let mut listed: Vec<HeaderName> = Vec::new();
    for token in headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
    {
        if token.is_empty()
            || HOP_BY_HOP
                .iter()
                .any(|hop| hop.as_str().eq_ignore_ascii_case(token))
        {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            listed.push(name);
        }
    }
    for name in listed {
        headers.remove(name);
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(name);
        }
    }
}

/// `X-Forwarded-For`: the client's address `ip` after the value `sent` (when it says
/// anything).
fn forwarded_for_value(sent: Option<&HeaderValue>, ip: &HeaderValue) -> HeaderValue {
    let existing = sent
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    match existing {
        Some(existing) => {
            let joined = format!("{existing}, {}", ip.to_str().unwrap_or("unknown"));
            HeaderValue::from_str(&joined).unwrap_or_else(|_| ip.clone())
        }
        None => ip.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_with_those_named_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");

        // The index the removal uses is each name's place in the list.
        for (index, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(index), "{name}");
        }
        assert_eq!(hop_by_hop_index(&header::HOST), None);

        // `Connection` listing a standard hop-by-hop name, and one that is not there.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade, x-absent"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::CONTENT_TYPE));

        // Nothing to remove: nothing changes.
        let mut plain = HeaderMap::new();
        plain.insert("x-kept", HeaderValue::from_static("yes"));
        remove_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn locations_and_origins() {
        let up = "https://app-1.cleverapps.io";
        assert_eq!(
            rewrite_location(
                "https://app-1.cleverapps.io/login?x=1",
                up,
                "http",
                "api.localhost:3000"
            ),
            Some("http://api.localhost:3000/login?x=1".to_owned())
        );
        assert_eq!(
            rewrite_location("HTTPS://APP-1.cleverapps.io", up, "http", "a.localhost"),
            Some("http://a.localhost".to_owned())
        );
        assert_eq!(
            rewrite_location("https://app-1.cleverapps.io.evil.com/", up, "http", "a"),
            None
        );
        assert_eq!(
            rewrite_location("https://elsewhere.com/", up, "http", "a"),
            None
        );
        assert_eq!(rewrite_location("/relative", up, "http", "a"), None);
        let host = HeaderValue::from_static("api.localhost:3000");
        assert!(same_origin(
            &HeaderValue::from_static("http://api.localhost:3000"),
            "http",
            &host
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("https://api.localhost:3000"),
            "http",
            &host
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("http://evil.com"),
            "http",
            &host
        ));
    }

    fn client(peer: &str) -> ClientSide {
        ClientSide::new(peer.parse().expect("address"), "http", false)
    }

    #[test]
    fn forwarded_for_is_appended() {
        let first = forwarded_for_value(None, &client("10.0.0.1:5000").ip);
        assert_eq!(first, "10.0.0.1");
        let blank = HeaderValue::from_static(" ");
        assert_eq!(
            forwarded_for_value(Some(&blank), &client("10.0.0.1:5000").ip),
            "10.0.0.1"
        );
        let second = forwarded_for_value(Some(&first), &client("127.0.0.1:5000").ip);
        assert_eq!(second, "10.0.0.1, 127.0.0.1");
    }
}
