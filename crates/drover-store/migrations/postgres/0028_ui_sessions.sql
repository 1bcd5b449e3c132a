-- Web UI sessions: an API token exchanged for a cookie. Only the cookie's hash is kept; the
-- form token is compared with what every form posts (CSRF). A revoked token ends its sessions.
CREATE TABLE ui_sessions (
    secret_hash TEXT PRIMARY KEY,
    token_id    BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    form_token  TEXT NOT NULL,
    language    TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
-- The dashboard and /metrics count accounts by desired state, from this index alone.
CREATE INDEX accounts_desired_state ON accounts (desired_state);
