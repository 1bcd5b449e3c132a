-- The id of the operator key that seals account passwords (a fingerprint, never the key): every
-- process checks its key against it, so one started with another key, or none, refuses rather
-- than sealing with a new one.
CREATE TABLE seal_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
