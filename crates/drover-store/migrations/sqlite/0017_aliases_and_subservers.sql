-- An account's alias domains and sub-servers. A domain is hosted once: as an account, an
-- alias or a sub-server (the store checks the other tables on each insert).
CREATE TABLE aliases (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL UNIQUE,
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, domain)
);
CREATE TABLE subservers (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL UNIQUE,
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, domain)
);
ALTER TABLE plans ADD COLUMN max_aliases BIGINT;
-- Set when a plan change was forced past what the account holds: what is over, as said then.
ALTER TABLE accounts ADD COLUMN over_limit TEXT;
-- An account has its own zone (named as its domain, unique as every zone name is) and one per
-- alias.
DROP INDEX dns_zones_account;
CREATE INDEX dns_zones_account ON dns_zones (account_id);
-- SQLite rebuilds the table to change a CHECK.
CREATE TABLE drift_findings_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id  BIGINT NOT NULL REFERENCES servers (id),
    kind       TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch',
                                             'feature_missing', 'mailbox_missing', 'mailbox_orphan',
                                             'mailbox_mismatch', 'database_missing',
                                             'database_orphan', 'alias_missing', 'alias_orphan',
                                             'subserver_missing', 'subserver_orphan')),
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
    SELECT id, server_id, kind, domain, account_id, expected, found, action, found_at, resource
    FROM drift_findings;
DROP TABLE drift_findings;
ALTER TABLE drift_findings_new RENAME TO drift_findings;
CREATE INDEX drift_findings_server ON drift_findings (server_id);
