-- An account's alias domains and sub-servers. A domain is hosted once: as an account, an
-- alias or a sub-server (the store checks the other tables on each insert).
CREATE TABLE aliases (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL UNIQUE,
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, domain)
);
CREATE TABLE subservers (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL UNIQUE,
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, domain)
);
ALTER TABLE plans ADD COLUMN max_aliases BIGINT;
-- Set when a plan change was forced past what the account holds: what is over, as said then.
ALTER TABLE accounts ADD COLUMN over_limit TEXT;
-- An account has its own zone (named as its domain, unique as every zone name is) and one per
-- alias.
DROP INDEX dns_zones_account;
CREATE INDEX dns_zones_account ON dns_zones (account_id);
ALTER TABLE drift_findings DROP CONSTRAINT drift_findings_kind_check;
ALTER TABLE drift_findings ADD CONSTRAINT drift_findings_kind_check
    CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch', 'feature_missing',
                    'mailbox_missing', 'mailbox_orphan', 'mailbox_mismatch',
                    'database_missing', 'database_orphan', 'alias_missing', 'alias_orphan',
                    'subserver_missing', 'subserver_orphan'));
