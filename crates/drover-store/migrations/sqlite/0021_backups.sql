-- Hours between a plan's accounts' scheduled backups: NULL, the fleet's interval; 0, none.
ALTER TABLE plans ADD COLUMN backup_interval_hours BIGINT;
-- Where backups go: a directory on each account's own server, and how many archives retention
-- keeps. Scheduled backups go to the one default destination.
CREATE TABLE backup_destinations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    location    TEXT NOT NULL,
    keep_daily  INTEGER NOT NULL,
    keep_weekly INTEGER NOT NULL,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX backup_destinations_default ON backup_destinations (is_default) WHERE is_default;
-- Each backup of an account: asked of its server, then its outcome (the archive's size, or
-- the server's own message and log lines). Kept after retention deletes the archive, as the
-- account's history.
CREATE TABLE backups (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     BIGINT NOT NULL REFERENCES accounts (id),
    destination_id BIGINT NOT NULL REFERENCES backup_destinations (id),
    server_id      BIGINT REFERENCES servers (id),
    archive        TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'pruned')),
    size_bytes     BIGINT,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    error          TEXT,
    log            TEXT
);
CREATE INDEX backups_account ON backups (account_id, started_at);
CREATE INDEX backups_good ON backups (account_id, finished_at) WHERE state = 'succeeded';
