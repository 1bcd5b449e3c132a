-- An account's databases. A name is the server's (MySQL's names are one namespace per server)
-- and carries the account's prefix, so it is unique across drover's records too.
CREATE TABLE databases (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL CHECK (type IN ('mysql', 'postgres')),
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, name)
);
-- Findings about an account's databases; the mailbox or database a finding is about is its
-- resource.
ALTER TABLE drift_findings DROP CONSTRAINT drift_findings_kind_check;
ALTER TABLE drift_findings ADD CONSTRAINT drift_findings_kind_check
    CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch', 'feature_missing',
                    'mailbox_missing', 'mailbox_orphan', 'mailbox_mismatch',
                    'database_missing', 'database_orphan'));
ALTER TABLE drift_findings RENAME COLUMN mailbox TO resource;
