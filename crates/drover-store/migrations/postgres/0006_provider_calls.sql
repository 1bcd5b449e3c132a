-- Calls made with each DNS provider credential (Cloudflare counts per token), shared by every
-- drover process so a budget holds fleet-wide. `provider_budgets` rows serialise reservations.
CREATE TABLE provider_budgets (
    budget_key TEXT PRIMARY KEY,
    reserved   BIGINT NOT NULL
);

CREATE TABLE provider_calls (
    budget_key TEXT NOT NULL,
    at_ms      BIGINT NOT NULL   -- unix milliseconds
);
CREATE INDEX provider_calls_key_at ON provider_calls (budget_key, at_ms);
