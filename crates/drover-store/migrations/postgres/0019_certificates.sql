-- An account's Let's Encrypt certificate: asked for by an operator or the billing system,
-- requested by a job once the account's DNS points at its server, renewed by the server.
CREATE TABLE certificates (
    account_id      BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('requested', 'issued', 'failed')),
    waiting_for     TEXT,
    last_error      TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    requested_at    TIMESTAMPTZ NOT NULL,
    issued_at       TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX certificates_expiry ON certificates (expires_at) WHERE state = 'issued';
-- Failed requests of the last hour, for Let's Encrypt's limit of five an hour: kept with the
-- account, not its certificate record, so asking again (or forgetting and asking) starts no
-- new count.
CREATE TABLE certificate_failures (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    failed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX certificate_failures_account ON certificate_failures (account_id, failed_at);
