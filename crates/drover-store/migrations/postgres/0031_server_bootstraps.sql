-- Bootstraps: a bare server brought into the fleet over SSH, step by step. What the operator
-- asked (JSON), how far it went (each step's state and every command run, JSON), and the
-- server it became once registered.
CREATE TABLE server_bootstraps (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The machine's SSH host key (SHA256:…): one bootstrap under way per machine.
    host_key    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL,
    progress    TEXT NOT NULL,
    error       TEXT,
    server_id   BIGINT REFERENCES servers (id),
    job_id      BIGINT,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- One bootstrap under way per name, and per machine.
CREATE UNIQUE INDEX server_bootstraps_running ON server_bootstraps (name) WHERE state = 'running';
CREATE UNIQUE INDEX server_bootstraps_running_host ON server_bootstraps (host_key)
    WHERE state = 'running';
