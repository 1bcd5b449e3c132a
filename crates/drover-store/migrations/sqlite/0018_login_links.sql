-- One-time login links into an account's panel, sealed as passwords are, kept from the job
-- that made them until the one who asked takes them (or they expire).
CREATE TABLE login_links (
    job_id     BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sealed_url BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
