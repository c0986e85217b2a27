-- The catalog: one row per app ever seen by discovery. Times are milliseconds since the
-- Unix epoch, durations milliseconds.
CREATE TABLE apps (
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    upstream TEXT,
    running INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    deleted_at INTEGER,
    -- JSON object: process type -> amount, remembered at the last stop.
    formation TEXT,
    asleep_since INTEGER,
    asleep_total INTEGER NOT NULL DEFAULT 0,
    last_activity INTEGER,
    PRIMARY KEY (space, provider, name)
) STRICT;

-- The newest start durations of each app (for ETAs), oldest first by id.
CREATE TABLE app_starts (
    id INTEGER PRIMARY KEY,
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    FOREIGN KEY (space, provider, name) REFERENCES apps (space, provider, name)
        ON DELETE CASCADE
) STRICT;

CREATE INDEX app_starts_app ON app_starts (space, provider, name, id);

-- Every event; `details` is a JSON object with the fields of the `kind`.
-- AUTOINCREMENT: ids are never reused, even after pruning the newest rows.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL
) STRICT;

-- Queries filter on app, space or kind and a time range, newest first (the rowid, last
-- column of every index, breaks ties); pruning scans `at`.
CREATE INDEX events_at ON events (at);
CREATE INDEX events_app_at ON events (app, at);
CREATE INDEX events_space_at ON events (space, at);
CREATE INDEX events_kind_at ON events (kind, at);
