//! The store's settings: the `database` section (where the catalog and events live) and
//! the `events` section (how long they are kept), their defaults, and how they are read
//! with the shared [`Reader`]. Reading only: the URL is opened (and checked) by
//! [`super::open`].

use std::time::Duration;

use serde_json::Value;

use crate::settings::Reader;

/// The default `database.url`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://paastis.db";

/// The default `events.retention`.
pub const DEFAULT_EVENTS_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

impl Reader<'_> {
    /// `database`: where the catalog and events live. The URL is checked when the engine
    /// opens it (the error then names what is wrong, password hidden).
    pub(crate) fn database(&mut self, value: &Value, path: &str) -> Option<String> {
        let mut fields = self.mapping(value, path)?;
        let url = fields
            .take("url")
            .and_then(|(v, p)| self.non_empty_string(v, &p));
        self.finish(fields, &[]);
        url
    }

    /// `events`: how long they are kept.
    pub(crate) fn events(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let mut fields = self.mapping(value, path)?;
        let retention = fields
            .take("retention")
            .and_then(|(v, p)| self.positive_duration(v, &p));
        self.finish(fields, &[]);
        retention
    }
}

use crate::settings::{Key, Kind};

/// The keys of `database`, as `Reader::database` takes them.
pub const DATABASE_KEYS: &[Key] = &[Key::new(
    "url",
    Kind::Text("URL"),
    "Where the catalog and the event history live: a SQLite file (sqlite://path), \
     sqlite::memory: (nothing kept), or postgres://user:password@host:port/db for several \
     instances.",
)
.default(DEFAULT_DATABASE_URL)];

/// The keys of `events`, as `Reader::events` takes them.
pub const EVENTS_KEYS: &[Key] = &[Key::new(
    "retention",
    Kind::Duration,
    "How long events are kept; older ones are pruned.",
)
.default("90d")];
