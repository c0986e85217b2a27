-- Spaces created through the admin API (hosted mode). `settings`: the space's document
-- (JSON) without its providers; `providers`: the providers' document, sealed with
-- AES-256-GCM under PAASTIS_MASTER_KEY and bound to the space id (it holds credentials).
-- `revision` grows by one at every change, so other instances see what changed.
CREATE TABLE spaces (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    providers TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- A space's API tokens as SHA-256 hashes (hex); a token is shown once, never stored.
CREATE TABLE space_tokens (
    space TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (space, id)
) STRICT;

-- One row: a known text sealed under the master key the first time hosted mode ran, so a
-- wrong key is told at start rather than at the first space that does not open.
CREATE TABLE master_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
) STRICT;
