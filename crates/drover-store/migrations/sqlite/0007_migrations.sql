-- Moving an account to another server: created there, then traffic switched, then the source
-- copy disabled, then deleted once confirmed or after the grace period.
CREATE TABLE account_migrations (
    account_id      BIGINT PRIMARY KEY REFERENCES accounts (id),
    from_server     BIGINT NOT NULL REFERENCES servers (id),
    to_server       BIGINT NOT NULL REFERENCES servers (id),
    state           TEXT NOT NULL CHECK (state IN ('creating', 'switched', 'source_disabled', 'done')),
    delete_after_ms BIGINT NOT NULL,   -- unix milliseconds: the source copy goes after this
    confirmed       BOOLEAN NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
