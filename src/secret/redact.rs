//! Keeping passwords in URLs out of sight: [`redact_url`] for URLs in messages and logs (it
//! errs on the side of hiding), [`redact_url_shown`] for a configuration shown to people (it
//! keeps the URL readable), and a scrubber for error texts that might quote one. Works on any
//! string, parsed or not.

/// Query parameters whose value is a secret.
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "sslpassword"];

/// The URL with its password replaced by `***`: the part after `user:` in the user info, and
/// the value of `password=`-like query parameters. Anything that is not a well-formed URL is
/// redacted as far as it can be told apart, erring on the side of hiding.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.find("://") {
        // The query starts after the authority, which ends at the last `@` (a password may
        // hold `/`, `?` or `#` when not percent-encoded).
        Some(scheme_end) => {
            let after = scheme_end + 3;
            let from = url[after..].rfind('@').map_or(after, |at| after + at);
            match url[from..].find('?') {
                Some(q) => url.split_at(from + q),
                None => (url, ""),
            }
        }
        None => match url.find('?') {
            Some(q) => url.split_at(q),
            None => (url, ""),
        },
    };
    let mut out = redact_userinfo(head);
    out.push_str(&redact_query(query));
    out
}

/// A URL as a configuration shows it to people (`paastis check`): its password, or its whole
/// user part when there is no password (a token given as the user name), replaced by
/// `marker`; the rest stays as written, so the URL stays readable. The user part is looked
/// for in the authority only (up to the first `/`, `?` or `#`). Messages that may quote a
/// URL use [`redact_url`], which hides more.
pub fn redact_url_shown(text: &str, marker: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    let user_info = &rest[..at];
    let hidden = match user_info.split_once(':') {
        Some((user, _)) => format!("{user}:{marker}"),
        None => marker.to_owned(),
    };
    format!("{}{hidden}{}", &text[..scheme_end + 3], &rest[at..])
}

/// `scheme://user:secret@host…` becomes `scheme://user:***@host…`.
fn redact_userinfo(head: &str) -> String {
    let Some(scheme_end) = head.find("://") else {
        return head.to_owned();
    };
    let after = scheme_end + 3;
    let rest = &head[after..];
    let Some(at) = rest.rfind('@') else {
        return head.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &head[..after],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => head.to_owned(),
    }
}

/// `?password=secret&x=1` becomes `?password=***&x=1`.
fn redact_query(query: &str) -> String {
    let Some(params) = query.strip_prefix('?') else {
        return query.to_owned();
    };
    let (params, fragment) = match params.find('#') {
        Some(hash) => params.split_at(hash),
        None => (params, ""),
    };
    let redacted: Vec<String> = params
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) => {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("?{}{fragment}", redacted.join("&"))
}

/// The secrets of a URL as they could appear in a message: its password, raw and
/// percent-decoded, and the values of `password=`-like query parameters. Values shorter than
/// 4 characters are left out (replacing them would garble messages more than it protects).
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        if let Some(at) = rest.rfind('@')
            && let Some((_, password)) = rest[..at].split_once(':')
        {
            secrets.push(password.to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for param in query.split(['&', '#']) {
            if let Some((name, value)) = param.split_once('=')
                && SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
            {
                secrets.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| s.chars().count() >= 4);
    secrets.sort();
    secrets.dedup();
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// The message with every secret replaced by `***`.
pub(crate) fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

/// `%XX` sequences decoded (invalid ones kept as written; invalid UTF-8 replaced).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_password_of_the_user_info() {
        assert_eq!(
            redact_url("postgres://paastis:s3cr3t@db.internal:5432/paastis"),
            "postgres://paastis:***@db.internal:5432/paastis"
        );
        assert_eq!(
            redact_url("postgresql://u:p%40ss@h/db?sslmode=disable"),
            "postgresql://u:***@h/db?sslmode=disable"
        );
    }

    #[test]
    fn hides_a_password_holding_url_delimiters() {
        for url in [
            "postgres://u:pa/ss@h:5432/db",
            "postgres://u:pa?ss@h/db",
            "postgres://u:p@ss@h/db",
            "postgres://u:pa#ss@h/db",
        ] {
            let redacted = redact_url(url);
            assert!(!redacted.contains("ss@h"), "{url} -> {redacted}");
            assert!(
                redacted.starts_with("postgres://u:***@"),
                "{url} -> {redacted}"
            );
        }
    }

    #[test]
    fn hides_password_query_parameters() {
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=hunter22&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://h/db?PASSWORD=x#frag"),
            "postgres://h/db?PASSWORD=***#frag"
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for url in [
            "sqlite://paastis.db",
            "sqlite::memory:",
            "postgres://paastis@localhost/paastis",
            "postgres://localhost",
            "not a url",
            "",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn odd_strings_are_redacted_without_panicking() {
        assert_eq!(redact_url("mysql://root:toor@h"), "mysql://root:***@h");
        assert_eq!(redact_url("://:x@"), "://:***@");
        assert_eq!(redact_url("x?password="), "x?password=***");
        assert_eq!(redact_url("é://ü:ß@ø"), "é://ü:***@ø");
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let secrets = url_secrets("postgres://u:p%40ss-word@h/db?password=other-secret");
        let message = "failed for p%40ss-word, p@ss-word and other-secret";
        assert_eq!(scrub(message, &secrets), "failed for ***, *** and ***");
        assert!(url_secrets("postgres://u:abc@h").is_empty());
        assert!(url_secrets("postgres://h/db").is_empty());
    }

    #[test]
    fn urls_lose_their_passwords() {
        for (url, expected) in [
            ("redis://:pw@h:6379", "redis://:<redacted>@h:6379"),
            (
                "postgres://u:pw@h/db?x=@",
                "postgres://u:<redacted>@h/db?x=@",
            ),
            ("https://token@h/x", "https://<redacted>@h/x"),
            ("redis://h:6379", "redis://h:6379"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url_shown(url, "<redacted>"), expected);
        }
    }
}
