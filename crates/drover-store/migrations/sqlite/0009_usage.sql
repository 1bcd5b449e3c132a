-- Each account's last usage figures, as its server reported them; every sync replaces them.
-- A NULL figure is one the server does not measure (no disk quotas, no bandwidth monitoring).
CREATE TABLE account_usage (
    account_id      BIGINT PRIMARY KEY REFERENCES accounts (id),
    server_id       BIGINT NOT NULL REFERENCES servers (id),
    disk_bytes      BIGINT,
    bandwidth_bytes BIGINT,
    mailboxes       BIGINT NOT NULL,
    databases       BIGINT NOT NULL,
    database_bytes  BIGINT NOT NULL,
    measured_at     TEXT NOT NULL
);
CREATE INDEX account_usage_server ON account_usage (server_id);
