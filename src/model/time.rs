//! How instants are written for people and machines alike.

use std::time::SystemTime;

/// RFC 3339, UTC, milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
