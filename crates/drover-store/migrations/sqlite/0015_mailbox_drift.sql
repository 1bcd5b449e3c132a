-- Findings about an account's mailboxes, each naming its mailbox (SQLite rebuilds the table to
-- change a CHECK).
CREATE TABLE drift_findings_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id  BIGINT NOT NULL REFERENCES servers (id),
    kind       TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch',
                                             'feature_missing', 'mailbox_missing', 'mailbox_orphan',
                                             'mailbox_mismatch')),
    domain     TEXT NOT NULL,
    account_id BIGINT REFERENCES accounts (id),
    expected   TEXT,
    found      TEXT,
    action     TEXT CHECK (action IN ('log', 'enforce', 'quarantine')),
    found_at   TEXT NOT NULL,
    mailbox    TEXT
);
INSERT INTO drift_findings_new (id, server_id, kind, domain, account_id, expected, found, action,
                                found_at)
    SELECT id, server_id, kind, domain, account_id, expected, found, action, found_at
    FROM drift_findings;
DROP TABLE drift_findings;
ALTER TABLE drift_findings_new RENAME TO drift_findings;
CREATE INDEX drift_findings_server ON drift_findings (server_id);
