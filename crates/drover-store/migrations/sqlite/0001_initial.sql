-- drover's source of truth. River's job tables are created by River's own migrator.

CREATE TABLE customers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    email        TEXT,
    external_ref TEXT UNIQUE,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE plans (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    template       TEXT,
    disk_quota_mb  BIGINT CHECK (disk_quota_mb >= 0),
    bandwidth_mb   BIGINT CHECK (bandwidth_mb >= 0),
    max_mailboxes  BIGINT CHECK (max_mailboxes >= 0),
    max_databases  BIGINT CHECK (max_databases >= 0),
    max_subservers BIGINT CHECK (max_subservers >= 0),
    features       TEXT NOT NULL,   -- JSON array of feature names
    required_tags  TEXT NOT NULL,   -- JSON array of tags
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE servers (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    hostname           TEXT NOT NULL,
    port               BIGINT NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ipv4               TEXT,
    ipv6               TEXT,
    capacity           BIGINT NOT NULL CHECK (capacity > 0),
    tags               TEXT NOT NULL,   -- JSON array of tags
    api_user           TEXT NOT NULL,
    credentials        TEXT NOT NULL,   -- a reference (env:NAME or file:/path), never the secret
    tls_verify         INTEGER NOT NULL,
    pinned_cert_sha256 TEXT,
    rate_qps           REAL,
    state              TEXT NOT NULL CHECK (state IN ('healthy', 'degraded', 'unavailable', 'maintenance', 'draining', 'decommissioned')),
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (hostname, port)
);

CREATE TABLE services (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    plan_id     BIGINT NOT NULL REFERENCES plans (id),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'active', 'suspended', 'terminated')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX services_customer ON services (customer_id);

CREATE TABLE accounts (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id              BIGINT NOT NULL UNIQUE REFERENCES services (id),
    domain                  TEXT NOT NULL UNIQUE,   -- ASCII (punycode) form
    unix_username           TEXT NOT NULL UNIQUE,
    server_id               BIGINT REFERENCES servers (id),
    desired_state           TEXT NOT NULL CHECK (desired_state IN ('enabled', 'disabled', 'absent')),
    -- Bumped on every change of what the account should be, so a job can tell whether
    -- what it applied is still what is wanted.
    desired_generation      BIGINT NOT NULL,
    observed_state          TEXT,
    protected_from_deletion INTEGER NOT NULL DEFAULT 1,
    suspend_reason          TEXT,
    sealed_password         BLOB,
    last_sync_at            TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE INDEX accounts_server ON accounts (server_id);

-- drover's own record beside each River job: what it is about and the request that caused it.
CREATE TABLE job_subjects (
    job_id         BIGINT PRIMARY KEY,
    account_id     BIGINT REFERENCES accounts (id),
    server_id      BIGINT REFERENCES servers (id),
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX job_subjects_account ON job_subjects (account_id);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('operator', 'billing', 'readonly')),
    token_hash TEXT NOT NULL UNIQUE,   -- SHA-256 of the token; tokens are random, not passwords
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- The first answer to a request sent with an Idempotency-Key, replayed for its retries.
CREATE TABLE idempotency_keys (
    token_id        BIGINT NOT NULL REFERENCES api_tokens (id),
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status BIGINT,           -- NULL while the first request is still running
    response_body   TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (token_id, key)
);

-- Append-only, hash-chained. audit_head holds the newest event's id and hash; appending
-- updates it first, which also serialises appenders.
CREATE TABLE audit_events (
    id             BIGINT PRIMARY KEY,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    details        TEXT NOT NULL,   -- JSON, kept as the exact text the hash covers
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject);

CREATE TABLE audit_head (
    singleton INTEGER PRIMARY KEY DEFAULT 1 CHECK (singleton),
    last_id   BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (singleton, last_id, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Defence in depth: the chain detects tampering, these refuse the casual kind.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
