-- The last health check of each server and the streak of results behind its state.
CREATE TABLE server_health (
    server_id  BIGINT PRIMARY KEY REFERENCES servers (id),
    failures   BIGINT NOT NULL,   -- consecutive failed checks
    degraded   BIGINT NOT NULL,   -- consecutive degraded-or-worse checks
    healthy    BIGINT NOT NULL,   -- consecutive healthy checks
    verdict    TEXT NOT NULL CHECK (verdict IN ('healthy', 'degraded', 'unavailable')),
    reasons    TEXT NOT NULL,     -- JSON array of sentences
    probe      TEXT NOT NULL,     -- JSON: what the last check found
    checked_at TEXT NOT NULL
);
