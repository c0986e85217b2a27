-- The catalog: one row per app ever seen by discovery. Times are milliseconds since the
-- Unix epoch, durations milliseconds.
CREATE TABLE apps (
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    upstream TEXT,
    running BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    deleted_at BIGINT,
    -- JSON object: process type -> amount, remembered at the last stop.
    formation TEXT,
    asleep_since BIGINT,
    asleep_total BIGINT NOT NULL DEFAULT 0,
    last_activity BIGINT,
    PRIMARY KEY (space, provider, name)
);

-- The newest start durations of each app (for ETAs), oldest first by id.
CREATE TABLE app_starts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    FOREIGN KEY (space, provider, name) REFERENCES apps (space, provider, name)
        ON DELETE CASCADE
);

CREATE INDEX app_starts_app ON app_starts (space, provider, name, id);

-- Every event; `details` is a JSON object with the fields of the `kind`. Text rather than
-- JSONB: JSONB refuses the escaped NUL character (`\u0000`) a provider's message may hold,
-- and text gives back exactly what was written (`details::jsonb` for ad hoc queries).
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    space TEXT NOT NULL,
    provider TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL
);

-- Queries filter on app, space or kind and a time range, newest first (id breaks ties);
-- pruning scans `at`.
CREATE INDEX events_at ON events (at, id);
CREATE INDEX events_app_at ON events (app, at, id);
CREATE INDEX events_space_at ON events (space, at, id);
CREATE INDEX events_kind_at ON events (kind, at, id);
