//! The pages' template engine: HTML escaping on for every template, text escaped as the rest
//! of the engine escapes it, and the compilation of an operator's template with its file and
//! line in the error. It renders nothing and reads no file.

use minijinja::{AutoEscape, Environment};

/// An environment for the pages' templates: HTML escaping on, whatever the file is called.
/// Text is escaped as everywhere else in the engine ([`crate::html::escape`]: `&<>"'`, so
/// a time zone's `/` stays readable in the page's source); other values as minijinja does.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_formatter(|out, state, value| {
        if !value.is_safe()
            && *state.auto_escape() == AutoEscape::Html
            && let Some(text) = value.as_str()
        {
            return Ok(out.write_str(&crate::html::escape(text))?);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// Compiles the custom template at `path`; the error names the file and the line.
pub fn compile(path: &str, text: &str) -> Result<Environment<'static>, String> {
    let mut env = environment();
    env.add_template_owned(path.to_owned(), text.to_owned())
        .map_err(|error| {
            let line = error
                .line()
                .map(|line| format!(" line {line}:"))
                .unwrap_or_default();
            let detail = error.detail().unwrap_or("syntax error");
            format!("{path}:{line} {detail} ({})", error.kind())
        })?;
    Ok(env)
}
