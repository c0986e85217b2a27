//! Entry points for the fuzz targets (`fuzz/`), built only with the `fuzzing` feature: the
//! parsers of outside input that are private to their modules, taking raw bytes and running
//! the same code the engine runs. Not part of the API.
//!
//! The public parsers (host and route keys, the config loader, patterns and rules,
//! schedules, [`crate::config::api_space`]) are fuzzed directly.

/// The platforms' answers, as each provider reads them.
pub mod providers {
    pub use crate::providers::clever_cloud::fuzzing as clever_cloud;
    pub use crate::providers::heroku::fuzzing as heroku;
    pub use crate::providers::render::fuzzing as render;
    pub use crate::providers::scalingo::fuzzing as scalingo;
}

/// The proxy's reading of an upstream's HTTP/1.1 answers (bodiless requests), and of its
/// clients' request heads.
pub mod proxy {
    pub use crate::proxy::forward::direct::fuzzing::{Read, read_answer};
    pub use crate::proxy::http1::fuzzing as requests;
}

/// A space's document as the admin API stores, patches and shows it.
pub mod spaces {
    use serde_json::Value;

    /// The document without its providers, and its providers (sealed when stored).
    pub fn split(document: &Value) -> (Value, Value) {
        crate::spaces::document::split(document)
    }

    /// The whole document again from its two parts.
    pub fn join(settings: Value, providers: Value) -> Value {
        crate::spaces::document::join(settings, providers)
    }

    /// The document after a merge patch (`PATCH /api/v1/spaces/<id>`), or each error with
    /// its path (a change of where credentials go that does not give them again).
    pub fn patched(current: &Value, patch: &Value) -> Result<Value, Vec<String>> {
        crate::spaces::document::patched(current, patch)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    /// The document as the API shows it (no credential).
    pub fn public(document: &Value) -> Value {
        crate::spaces::document::public(document)
    }
}
