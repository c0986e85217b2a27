//! Name patterns from the config: globs (`review-*`) or regexes with the `re:` prefix
//! (`re:^pr-\d+$`). Parsing only, with an error message fit for the config; it decides
//! nothing about apps or requests.

use std::fmt;

/// One compiled pattern.
#[derive(Clone)]
pub struct Pattern {
    /// The text as written, for messages.
    source: String,
    /// How it matches.
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
    /// Plain text (no glob character): a case-insensitive substring, kept lowercase.
    Contains(String),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

/// What is wrong with a regex, without the pattern: the regex error's own text quotes it,
/// in a form (without `re:`, possibly cut or spread over lines) that the config's hiding of
/// values from the environment would not recognise; the caller quotes the text as written.
pub fn regex_problem(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or("a syntax error")
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => format!("it compiles to more than {limit} bytes"),
        _ => "it cannot be compiled".to_owned(),
    }
}

/// How a pattern without `re:` and without glob characters matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// The whole text, exactly (names, paths).
    Whole,
    /// Anywhere in the text, ignoring case (user agents: `UptimeRobot`).
    Anywhere,
}

impl Pattern {
    /// Compiles `text`; the error says what is wrong with it.
    pub fn parse(text: &str, plain: Plain) -> Result<Pattern, String> {
        let matcher = if let Some(expression) = text.strip_prefix("re:") {
            Matcher::Regex(regex::Regex::new(expression).map_err(|error| {
                format!("`{text}` is not a valid regex: {}", regex_problem(&error))
            })?)
        } else if plain == Plain::Anywhere && !text.contains(['*', '?', '[', '{']) {
            Matcher::Contains(text.to_lowercase())
        } else {
            Matcher::Glob(
                globset::GlobBuilder::new(text)
                    .literal_separator(false)
                    .build()
                    .map_err(|error| format!("`{text}` is not a valid glob: {error}"))?
                    .compile_matcher(),
            )
        };
        if text.is_empty() {
            return Err("an empty pattern matches nothing".to_owned());
        }
        Ok(Pattern {
            source: text.to_owned(),
            matcher,
        })
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Glob(glob) => glob.is_match(text),
            Matcher::Regex(regex) => regex.is_match(text),
            Matcher::Contains(needle) => text.to_lowercase().contains(needle.as_str()),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_regex_is_quoted_once_as_written_with_what_is_wrong() {
        let error = Pattern::parse("re:^pr-{9x}", Plain::Whole).expect_err("invalid");
        assert_eq!(error.matches("pr-{9x}").count(), 1, "{error}");
        assert!(
            error.starts_with("`re:^pr-{9x}` is not a valid regex: "),
            "{error}"
        );
        assert!(error.ends_with(": unclosed counted repetition"), "{error}");
        let error = crate::rules::Rule::new("a\\nb(").expect_err("invalid");
        assert_eq!(error.matches("a\\nb(").count(), 1, "{error}");
        assert!(error.contains("unclosed group"), "{error}");
    }

    #[test]
    fn globs_regexes_and_plain_text() {
        let glob = Pattern::parse("/status/*", Plain::Whole).expect("glob");
        assert!(glob.matches("/status/db"));
        assert!(glob.matches("/status/a/b"));
        assert!(!glob.matches("/statusx"));
        let exact = Pattern::parse("/healthz", Plain::Whole).expect("plain");
        assert!(exact.matches("/healthz"));
        assert!(!exact.matches("/healthz/deep"));
        let regex = Pattern::parse(r"re:^/api/v\d+/ping$", Plain::Whole).expect("regex");
        assert!(regex.matches("/api/v2/ping"));
        assert!(!regex.matches("/api/v2/ping/x"));
        let agent = Pattern::parse("UptimeRobot", Plain::Anywhere).expect("plain");
        assert!(agent.matches("Mozilla/5.0+(compatible; uptimerobot/2.0; http://x)"));
        assert!(!agent.matches("curl/8.0"));
        for bad in ["re:(", "a[", ""] {
            assert!(Pattern::parse(bad, Plain::Whole).is_err(), "{bad}");
        }
    }
}
