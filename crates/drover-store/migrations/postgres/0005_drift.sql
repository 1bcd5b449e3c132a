-- The open findings of each server's last drift scan (earlier scans live in the audit log).
CREATE TABLE drift_findings (
    id         BIGSERIAL PRIMARY KEY,
    server_id  BIGINT NOT NULL REFERENCES servers (id),
    kind       TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch')),
    domain     TEXT NOT NULL,
    account_id BIGINT REFERENCES accounts (id),
    expected   TEXT,
    found      TEXT,
    action     TEXT CHECK (action IN ('log', 'enforce', 'quarantine')),   -- what the last repair did
    found_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX drift_findings_server ON drift_findings (server_id);
