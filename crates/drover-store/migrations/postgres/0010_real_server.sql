-- A finding for an account that lacks a feature its plan gives it.
ALTER TABLE drift_findings DROP CONSTRAINT drift_findings_kind_check;
ALTER TABLE drift_findings ADD CONSTRAINT drift_findings_kind_check
    CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch', 'feature_missing'));

-- Why the account's last converge job gave up (refused, or out of retries), until one succeeds.
ALTER TABLE accounts ADD COLUMN failure TEXT;
ALTER TABLE accounts ADD COLUMN failed_at TIMESTAMPTZ;

-- Each attempt of a job as it ended, kept apart from the next (River keeps only the latest).
CREATE TABLE job_attempts (
    job_id      BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,      -- completed, snoozed, retried, discarded
    message     TEXT,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, attempt, finished_at)
);

-- A server that refused drover's login: drover stops calling it until its credentials change
-- (the secret's SHA-256 tells) or an operator lets it try again.
ALTER TABLE servers ADD COLUMN login_refused TEXT;
ALTER TABLE servers ADD COLUMN login_refused_at TIMESTAMPTZ;
ALTER TABLE servers ADD COLUMN login_refused_secret TEXT;
