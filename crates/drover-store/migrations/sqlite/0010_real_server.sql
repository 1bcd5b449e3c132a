-- A finding for an account that lacks a feature its plan gives it (SQLite rebuilds the table
-- to change a CHECK).
CREATE TABLE drift_findings_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id  BIGINT NOT NULL REFERENCES servers (id),
    kind       TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch', 'feature_missing')),
    domain     TEXT NOT NULL,
    account_id BIGINT REFERENCES accounts (id),
    expected   TEXT,
    found      TEXT,
    action     TEXT CHECK (action IN ('log', 'enforce', 'quarantine')),
    found_at   TEXT NOT NULL
);
INSERT INTO drift_findings_new SELECT * FROM drift_findings;
DROP TABLE drift_findings;
ALTER TABLE drift_findings_new RENAME TO drift_findings;
CREATE INDEX drift_findings_server ON drift_findings (server_id);

-- Why the account's last converge job gave up (refused, or out of retries), until one succeeds.
ALTER TABLE accounts ADD COLUMN failure TEXT;
ALTER TABLE accounts ADD COLUMN failed_at TEXT;

-- Each attempt of a job as it ended, kept apart from the next (River keeps only the latest).
CREATE TABLE job_attempts (
    job_id      BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,      -- completed, snoozed, retried, discarded
    message     TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, finished_at)
);

-- A server that refused drover's login: drover stops calling it until its credentials change
-- (the secret's SHA-256 tells) or an operator lets it try again.
ALTER TABLE servers ADD COLUMN login_refused TEXT;
ALTER TABLE servers ADD COLUMN login_refused_at TEXT;
ALTER TABLE servers ADD COLUMN login_refused_secret TEXT;
