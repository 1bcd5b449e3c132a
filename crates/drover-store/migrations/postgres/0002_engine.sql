-- The Virtualmin calls each job made (secrets masked), in order.
CREATE TABLE job_calls (
    job_id      BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    server      TEXT NOT NULL,
    call        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    message     TEXT,
    duration_ms BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- The last account record generation a converge job made the server match.
ALTER TABLE accounts ADD COLUMN applied_generation BIGINT NOT NULL DEFAULT 0;

-- Held by the job working on the account, so two jobs never work one account at once.
ALTER TABLE accounts ADD COLUMN lease_owner BIGINT;
ALTER TABLE accounts ADD COLUMN lease_until BIGINT;   -- unix milliseconds: compares alike on both databases

-- The next free call slot per server (unix milliseconds), shared by every drover process so a
-- server's call rate holds fleet-wide.
CREATE TABLE server_call_slots (
    server_id    BIGINT PRIMARY KEY,
    next_slot_ms BIGINT NOT NULL
);
