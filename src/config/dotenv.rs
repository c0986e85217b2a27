//! `.env` files, read the way the original engine read them (it used the `dotenv` package):
//! `KEY=value` lines, an optional `export ` prefix, `#` comments, blank lines, values in
//! single, double or back quotes (double quotes turn `\n` and `\r` into line breaks, quoted
//! values may span lines), and unquoted values trimmed and ending at `#`. Variables already
//! set in the real environment win over the file.
//!
//! Unlike `dotenv`, which skips lines it cannot read, a malformed line is an error naming
//! the file and the line number; the error never repeats the line's value.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, ConfigErrors};

/// What is wrong with one line of a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong (never the value).
    pub message: String,
}

/// Parses the text of a `.env` file into `(name, value)` pairs in file order. A name given
/// twice keeps its last value when the pairs are collected into a map.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut pairs = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let line = lines[index].trim_end_matches('\r');
        index += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let error = |message: &str| ParseError {
            line: number,
            message: message.to_owned(),
        };
        let body = trimmed
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(trimmed, str::trim_start);
        let Some((name, rest)) = split_assignment(body) else {
            return Err(error("expected NAME=value (or a # comment)"));
        };
        if !is_name(name) {
            return Err(error(
                "the name before `=` must be letters, digits, `_`, `.` or `-`",
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'' | '`')) => {
                // The value runs to the matching quote, possibly on a later line.
                let mut text = rest[1..].to_owned();
                let close = loop {
                    if let Some(end) = closing_quote(&text, quote) {
                        break end;
                    }
                    let Some(next) = lines.get(index) else {
                        return Err(error(&format!(
                            "the value opened with {quote} is never closed"
                        )));
                    };
                    index += 1;
                    text.push('\n');
                    text.push_str(next.trim_end_matches('\r'));
                };
                let after = text[close + 1..].trim();
                if !after.is_empty() && !after.starts_with('#') {
                    return Err(error(&format!(
                        "unexpected text after the closing {quote} (put a # before a comment)"
                    )));
                }
                let inner = &text[..close];
                if quote == '"' {
                    unescape_double(inner)
                } else {
                    inner.to_owned()
                }
            }
            _ => {
                let end = rest.find('#').unwrap_or(rest.len());
                rest[..end].trim().to_owned()
            }
        };
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

/// Reads the `.env` file at `path`, when there is one, and adds its variables to `env`
/// where `env` does not have them. Returns whether a file was read.
pub fn load(path: &Path, env: &mut HashMap<String, String>) -> Result<bool, ConfigErrors> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| one_error(path.display().to_string(), "is not UTF-8 text".to_owned()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(one_error(
                path.display().to_string(),
                format!("cannot be read: {error}"),
            ));
        }
    };
    let pairs = parse(&text).map_err(|error| {
        one_error(
            format!("{} line {}", path.display(), error.line),
            error.message,
        )
    })?;
    let mut from_file: HashMap<String, String> = HashMap::new();
    for (name, value) in pairs {
        from_file.insert(name, value);
    }
    for (name, value) in from_file {
        env.entry(name).or_insert(value);
    }
    Ok(true)
}

fn one_error(path: String, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { path, message }])
}

/// `NAME=rest` or `NAME: rest` (both forms are read by `dotenv`).
fn split_assignment(body: &str) -> Option<(&str, &str)> {
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(body.len());
    let name = &body[..end];
    let rest = body[end..].trim_start_matches([' ', '\t']);
    if let Some(value) = rest.strip_prefix('=') {
        return Some((name, value));
    }
    if let Some(value) = rest.strip_prefix(':')
        && (value.is_empty() || value.starts_with([' ', '\t']))
    {
        return Some((name, value));
    }
    // Something else follows the name: report the name as invalid if there is an `=`.
    body.split_once('=')
        .map(|(name, value)| (name.trim(), value))
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Byte offset of the quote closing a value, skipping quotes escaped with a backslash.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (offset, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return Some(offset);
        }
    }
    None
}

/// Double-quoted values: `\n` and `\r` become line breaks, `\"` a quote; other backslashes
/// stay as written.
fn unescape_double(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('n') => {
                    out.push('\n');
                    chars.next();
                }
                Some('r') => {
                    out.push('\r');
                    chars.next();
                }
                Some('"') => {
                    out.push('"');
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|error| panic!("{text:?}: {error:?}"))
    }

    #[test]
    fn reads_the_forms_dotenv_reads() {
        // (what, text, expected name, expected value)
        let cases: &[(&str, &str, &str, &str)] = &[
            ("plain", "PORT=3000", "PORT", "3000"),
            ("export", "export HOST=127.0.0.1", "HOST", "127.0.0.1"),
            ("spaces", "  KEY =  spaced value  ", "KEY", "spaced value"),
            ("empty", "EMPTY=", "EMPTY", ""),
            ("equals in value", "URL=a=b=c", "URL", "a=b=c"),
            ("comment after", "A=b # note", "A", "b"),
            ("hash ends a plain value", "A=b#c", "A", "b"),
            (
                "double quotes",
                r#"A="x # not a comment""#,
                "A",
                "x # not a comment",
            ),
            ("single quotes", "A='x \"y\" z'", "A", "x \"y\" z"),
            ("single keeps escapes", r"A='a\nb'", "A", r"a\nb"),
            ("double expands", r#"A="a\nb""#, "A", "a\nb"),
            ("escaped quote", r#"A="say \"hi\"""#, "A", r#"say "hi""#),
            ("backticks", "A=`x 'y' \"z\"`", "A", "x 'y' \"z\""),
            ("quoted then comment", "A='v' # c", "A", "v"),
            ("colon form", "A: b", "A", "b"),
            ("dots and dashes", "my.var-1=x", "my.var-1", "x"),
            ("crlf", "A=b\r", "A", "b"),
            ("cron", "CRON=*/5 * * * *", "CRON", "*/5 * * * *"),
            ("export as a name", "export=1", "export", "1"),
        ];
        for (what, text, name, value) in cases {
            let parsed = pairs(text);
            assert_eq!(
                parsed,
                vec![((*name).to_owned(), (*value).to_owned())],
                "{what}"
            );
        }
    }

    #[test]
    fn comments_blank_lines_and_multiline_values() {
        let text = "# a comment\n\n   # indented comment\nA=1\nKEY=\"line one\nline two\"\nB='x\n\ny'\nC=3\n";
        assert_eq!(
            pairs(text),
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("KEY".to_owned(), "line one\nline two".to_owned()),
                ("B".to_owned(), "x\n\ny".to_owned()),
                ("C".to_owned(), "3".to_owned()),
            ]
        );
    }

    #[test]
    fn malformed_lines_name_the_line_and_never_the_value() {
        // (what, text, line, message start)
        let cases: &[(&str, &str, usize, &str)] = &[
            (
                "no equals",
                "A=1\nsecret-token-value\n",
                2,
                "expected NAME=value",
            ),
            (
                "bad name",
                "A B=secret-token-value",
                1,
                "the name before `=`",
            ),
            (
                "unclosed",
                "A=1\nB=\"secret-token-value\nC=2\n",
                2,
                "the value opened with \" is never closed",
            ),
            (
                "text after quote",
                "A='secret-token-value' trailing",
                1,
                "unexpected text after the closing '",
            ),
            (
                "empty name",
                "=secret-token-value",
                1,
                "the name before `=`",
            ),
        ];
        for (what, text, line, start) in cases {
            let error = parse(text).expect_err(what);
            assert_eq!(error.line, *line, "{what}");
            assert!(
                error.message.starts_with(start),
                "{what}: {}",
                error.message
            );
            assert!(
                !error.message.contains("secret"),
                "{what}: {}",
                error.message
            );
        }
    }

    #[test]
    fn the_real_environment_wins_and_a_missing_file_is_no_error() {
        let dir = std::env::temp_dir().join(format!("paastis-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join(".env");
        std::fs::write(&file, "PORT=4000\nHOST=127.0.0.1\nHOST=127.0.0.2\n").expect("write");
        let mut env: HashMap<String, String> = [("PORT".to_owned(), "5000".to_owned())].into();
        assert!(load(&file, &mut env).expect("loads"));
        assert_eq!(env["PORT"], "5000");
        assert_eq!(env["HOST"], "127.0.0.2");

        std::fs::write(&file, "OK=1\nnot a line\n").expect("write");
        let errors = load(&file, &mut env).expect_err("malformed");
        assert_eq!(
            errors.0[0].to_string(),
            format!(
                "{} line 2: expected NAME=value (or a # comment)",
                file.display()
            )
        );
        assert!(!env.contains_key("OK"), "nothing is taken from a bad file");

        std::fs::remove_file(&file).expect("remove");
        assert!(!load(&file, &mut env).expect("no file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
