//! The platforms' answers as the providers read them (`paastis::fuzzing::providers`, the
//! code `list_apps`, `status` and `stop` run on a response body). The first byte picks the
//! parser (`0`..`9`, `:`..`=`), an optional newline follows, then the bodies it reads, separated
//! by a line `---`:
//!
//! ```text
//! 1
//! {"app": {"name": "shop", "status": "running"}}
//! ---
//! {"containers": [{"type": "web", "state": "running"}]}
//! ```
//!
//! Checks: every upstream is an `http`/`https` URL with a host and no credentials, read
//! the same again from its text; apps keep distinct names (Clever Cloud maps each to its
//! id, Render qualifies shared names); a stop remembers only process types that ran; an operation id can only end a URL.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use paastis::fuzzing::providers::{clever_cloud, heroku, render, scalingo};
use paastis::model::Upstream;
use paastis::providers::{AppInfo, AppStatus, ProviderError, Stopped};

/// How many parsers the first byte picks from.
const PARSERS: u8 = 14;

fn check_upstream(upstream: &Upstream) {
    assert!(
        upstream.scheme == http::uri::Scheme::HTTP || upstream.scheme == http::uri::Scheme::HTTPS
    );
    assert!(!upstream.authority.as_str().contains('@'), "{upstream}");
    let (host, _) = upstream.address();
    assert!(!host.is_empty(), "{upstream}");
    assert_eq!(
        Upstream::from_url(&upstream.to_string()).as_ref(),
        Some(upstream),
        "{upstream} read again"
    );
}

fn check_apps(apps: &Result<Vec<AppInfo>, ProviderError>) {
    let Ok(apps) = apps else {
        return;
    };
    for app in apps {
        if let Some(upstream) = &app.upstream {
            check_upstream(upstream);
        }
        check_status(&app.status);
    }
}

fn check_status(status: &AppStatus) {
    if let AppStatus::Failed(reason) = status {
        assert!(!reason.is_empty());
    }
}

fn check_stopped(stopped: &Result<Stopped, ProviderError>) {
    let Ok(stopped) = stopped else {
        return;
    };
    match &stopped.formation {
        Some(formation) => {
            assert!(!formation.is_empty());
            assert!(
                formation.values().all(|amount| *amount > 0),
                "{formation:?}"
            );
            for kind in stopped.sizes.keys() {
                assert!(formation.contains_key(kind), "a size for {kind:?}");
            }
        }
        None => assert!(stopped.sizes.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parts: Vec<&str> = text.split("\n---\n").collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or_default().as_bytes();
    match first.wrapping_sub(b'0') % PARSERS {
        0 => check_apps(&scalingo::apps(part(0))),
        1 => {
            if let Ok(status) = scalingo::status(part(0), part(1)) {
                check_status(&status);
            }
        }
        2 => check_stopped(&scalingo::stopped(part(0))),
        3 => {
            if let Some(id) = scalingo::operation_id(text) {
                assert!(!id.is_empty());
                assert!(
                    id.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{id:?}"
                );
                assert!(text.trim_end_matches('/').ends_with(id));
            }
        }
        4 => {
            if let Some(expiry) = scalingo::jwt_expiry(text) {
                assert!(expiry >= std::time::UNIX_EPOCH);
            }
        }
        5 => check_apps(&heroku::apps(part(0))),
        6 => {
            if let Ok(status) = heroku::status(part(0), part(1)) {
                check_status(&status);
            }
        }
        7 => check_stopped(&heroku::stopped(part(0))),
        8 => {
            let scheme = if parts.len() > 1 {
                http::uri::Scheme::HTTP
            } else {
                http::uri::Scheme::HTTPS
            };
            let listed = clever_cloud::apps(part(0), &scheme);
            if let Ok((apps, ids)) = &listed {
                let mut names = HashSet::new();
                for app in apps {
                    assert!(names.insert(&app.name), "two apps named {:?}", app.name);
                    assert!(ids.contains_key(&app.name), "{:?} has no id", app.name);
                    for alias in &app.aliases {
                        assert_eq!(alias, &alias.to_ascii_lowercase());
                    }
                }
                assert_eq!(ids.len(), apps.len());
            }
            check_apps(&listed.map(|(apps, _)| apps));
        }
        9 => {
            if let Ok(status) = clever_cloud::status(part(0), part(1), part(2)) {
                check_status(&status);
            }
        }
        11 => {
            let listed = render::services(part(0));
            if let Ok(apps) = &listed {
                let mut names = HashSet::new();
                for app in apps {
                    assert!(names.insert(&app.name), "two apps named {:?}", app.name);
                    for alias in &app.aliases {
                        assert_eq!(alias, &alias.to_ascii_lowercase());
                    }
                }
            }
            check_apps(&listed);
        }
        12 => {
            if let Ok(status) = render::status(part(0)) {
                check_status(&status);
            }
        }
        13 => check_stopped(&render::stopped(part(0))),
        _ => {
            if let Some(upstream) = Upstream::from_url(text) {
                check_upstream(&upstream);
            }
        }
    }
});
