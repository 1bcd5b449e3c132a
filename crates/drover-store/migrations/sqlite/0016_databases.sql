-- An account's databases. A name is the server's (MySQL's names are one namespace per server)
-- and carries the account's prefix, so it is unique across drover's records too.
CREATE TABLE databases (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL CHECK (type IN ('mysql', 'postgres')),
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
-- Findings about an account's databases; the mailbox or database a finding is about is its
-- resource (SQLite rebuilds the table to change a CHECK).
CREATE TABLE drift_findings_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id  BIGINT NOT NULL REFERENCES servers (id),
    kind       TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch',
                                             'feature_missing', 'mailbox_missing', 'mailbox_orphan',
                                             'mailbox_mismatch', 'database_missing',
                                             'database_orphan')),
    domain     TEXT NOT NULL,
    account_id BIGINT REFERENCES accounts (id),
    expected   TEXT,
    found      TEXT,
    action     TEXT CHECK (action IN ('log', 'enforce', 'quarantine')),
    found_at   TEXT NOT NULL,
    resource   TEXT
);
INSERT INTO drift_findings_new (id, server_id, kind, domain, account_id, expected, found, action,
                                found_at, resource)
    SELECT id, server_id, kind, domain, account_id, expected, found, action, found_at, mailbox
    FROM drift_findings;
DROP TABLE drift_findings;
ALTER TABLE drift_findings_new RENAME TO drift_findings;
CREATE INDEX drift_findings_server ON drift_findings (server_id);
