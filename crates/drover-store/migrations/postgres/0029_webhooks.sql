-- Signed webhooks. An event is written in the same transaction as the change that causes it
-- (an outbox), with one delivery per endpoint that wants its type; a job per endpoint sends
-- them in order, at least once.
CREATE TABLE webhook_endpoints (
    id                     BIGSERIAL PRIMARY KEY,
    url                    TEXT NOT NULL,
    -- A JSON array of event types; empty: every type.
    event_types            TEXT NOT NULL,
    -- The HMAC secret, sealed with drover's key; the one it replaced signs too until
    -- previous_valid_until, so a receiver can move to the new one.
    sealed_secret          BYTEA NOT NULL,
    previous_sealed_secret BYTEA,
    previous_valid_until   TIMESTAMPTZ,
    seal_key_id            TEXT NOT NULL,
    paused                 BOOLEAN NOT NULL DEFAULT FALSE,
    paused_reason          TEXT,
    -- The first failure since the last delivery that got through.
    failing_since          TIMESTAMPTZ,
    -- Moved by every event for this endpoint: the delivery job ends only when it has not
    -- moved since the job last looked, so an event recorded as it ends is never left behind.
    wanted                 BIGINT NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    event_type  TEXT NOT NULL,
    account_id  BIGINT,
    subject     TEXT NOT NULL,
    -- The event's own fields, JSON (sent as its `data`).
    data        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    endpoint_id      BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         BIGINT NOT NULL REFERENCES events (id),
    delivered        BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    last_status      INTEGER,
    last_error       TEXT,
    last_duration_ms BIGINT,
    -- The receiver's answer, its first kilobyte only.
    last_response    TEXT,
    last_attempt_at  TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
-- The delivery job reads an endpoint's undelivered deliveries oldest first.
CREATE INDEX webhook_deliveries_undelivered ON webhook_deliveries (endpoint_id, delivered, event_id);
