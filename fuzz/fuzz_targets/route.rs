//! Host and route parsing (`paastis::proxy::route`): a `Host` header, an optional request
//! target and some domains, one per line:
//!
//! ```text
//! Shop.Example.COM:8080
//! http://shop.example.com/path
//! example.com
//! ```
//!
//! Checks: a host that passes is normalized (lowercase, no port, no trailing dot, only
//! label characters, or a bracketed IPv6 address) and normalizing it again changes nothing;
//! a request's host is its header's (or target's); a route key is what stands left of the
//! longest matching domain (or the first label), never anything else. The same lines as
//! another proxy describes a request to the gate (`X-Forwarded-Host`/`-Uri`,
//! `X-Original-URL`) give a request whose target is a path and whose host routes alike; a
//! Sablier `session_duration` (Go syntax) parses without panicking.

#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use paastis::gate::forward_auth::original;
use paastis::gate::strategies::go_duration;
use paastis::proxy::route::{Under, first_label, normalize_host, request_host, route_key, under};

/// Whether `host` is what `normalize_host` promises: a bracketed IPv6 address, or dot-
/// separated labels of lowercase letters, digits, `-` and `_` (at most 253 bytes).
fn is_normalized(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// The longest domain `host` is under, by a scan of every domain (the reference).
fn scan<'h>(host: &'h str, domains: &[String]) -> Under<'h, ()> {
    let mut best: Option<usize> = None;
    for domain in domains {
        if host == domain {
            return Under::Domain(());
        }
        if host.len() > domain.len()
            && host.ends_with(domain.as_str())
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && best.is_none_or(|len| len < domain.len())
        {
            best = Some(domain.len());
        }
    }
    match best {
        Some(len) => Under::Key((), &host[..host.len() - len - 1]),
        None => Under::None,
    }
}

fn check_routing(host: &str, domains: &[String]) {
    let indexed = under(host, |suffix| {
        domains.iter().any(|d| d == suffix).then_some(())
    });
    assert_eq!(indexed, scan(host, domains), "{host:?} under {domains:?}");
    let key = route_key(host, domains);
    match indexed {
        Under::Domain(()) => assert_eq!(key, None),
        Under::Key((), found) => {
            assert_eq!(key, Some(found));
            let rest = &host[found.len()..];
            let domain = rest.strip_prefix('.').expect("a key is followed by a dot");
            assert!(domains.iter().any(|d| d == domain), "{host:?}: {domain:?}");
        }
        Under::None => assert_eq!(key, first_label(host)),
    }
    if let Some(key) = key {
        assert!(!key.is_empty(), "{host:?}: an empty route key");
        assert!(
            host == key
                || host
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.')),
            "{host:?}: the key {key:?} is not a whole-label prefix of the host"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let target = lines.next().unwrap_or_default();
    let domains: Vec<String> = lines
        .filter_map(|line| normalize_host(line).ok().map(|d| d.into_owned()))
        .collect();

    let normalized = normalize_host(header);
    if let Ok(host) = &normalized {
        assert!(is_normalized(host), "{header:?} -> {host:?}");
        assert_eq!(
            normalize_host(host).as_deref(),
            Ok(host.as_ref()),
            "{header:?}"
        );
        check_routing(host, &domains);
    }

    // As another proxy describes the request to the gate.
    let _ = go_duration(header);
    let mut forwarded = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(header) {
        forwarded.insert("x-forwarded-host", value);
    }
    if let Ok(value) = http::HeaderValue::from_str(target) {
        forwarded.insert("x-forwarded-uri", value.clone());
        forwarded.insert("x-original-url", value);
    }
    if let Ok(original) = original(&forwarded) {
        assert!(original.target.starts_with('/'), "{target:?}");
        if let Ok(host) = request_host(&original.request) {
            assert!(is_normalized(&host), "{header:?} {target:?} -> {host:?}");
            check_routing(&host, &domains);
        }
    }

    // The same through a request, with and without a target that names a host.
    let mut request = http::Request::builder();
    if !target.is_empty() {
        request = request.uri(target);
    }
    if !header.is_empty() {
        request = request.header(http::header::HOST, header);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    if let Ok(host) = request_host(&request) {
        assert!(is_normalized(&host), "{header:?} {target:?} -> {host:?}");
        if request.uri().authority().is_none() {
            assert_eq!(normalized.as_deref(), Ok(host.as_ref()), "{header:?}");
        }
        check_routing(&host, &domains);
    }
});
