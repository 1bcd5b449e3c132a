-- DNS: drover's zones are the truth; providers serve copies of them.

CREATE TABLE dns_providers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('powerdns', 'cloudflare')),
    api_url          TEXT NOT NULL,
    credentials      TEXT NOT NULL,   -- a reference (env:NAME or file:/path), never the secret
    server_id        TEXT,            -- PowerDNS: the API's server id
    account_id       TEXT,            -- Cloudflare: the account new zones are created in
    dns_address      TEXT,            -- PowerDNS: where it answers DNS, for consistency checks
    batch_size       BIGINT CHECK (batch_size > 0),   -- Cloudflare: records per batch
    serves_new_zones BOOLEAN NOT NULL,
    created_at       TEXT NOT NULL
);

CREATE TABLE dns_zones (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    account_id         BIGINT REFERENCES accounts (id),
    generation         BIGINT NOT NULL,   -- bumped by every change of its records
    max_change_percent BIGINT CHECK (max_change_percent BETWEEN 0 AND 100),   -- safety override
    deleting           BOOLEAN NOT NULL,  -- being removed from its providers
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE UNIQUE INDEX dns_zones_account ON dns_zones (account_id);

CREATE TABLE dns_rrsets (
    zone_id BIGINT NOT NULL REFERENCES dns_zones (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    rtype   TEXT NOT NULL,
    ttl     BIGINT NOT NULL,
    records TEXT NOT NULL,   -- JSON array of canonical contents
    PRIMARY KEY (zone_id, name, rtype)
);

CREATE TABLE dns_zone_providers (
    zone_id           BIGINT NOT NULL REFERENCES dns_zones (id) ON DELETE CASCADE,
    provider_id       BIGINT NOT NULL REFERENCES dns_providers (id),
    provider_zone_id  TEXT,              -- Cloudflare's zone id, once known
    synced_generation BIGINT NOT NULL,   -- the zone generation the provider last matched
    last_error        TEXT,
    last_sync_at      TEXT,
    PRIMARY KEY (zone_id, provider_id)
);

-- Provider-side ids of single records (Cloudflare), so changes need no read first.
CREATE TABLE dns_record_ids (
    zone_id     BIGINT NOT NULL REFERENCES dns_zones (id) ON DELETE CASCADE,
    provider_id BIGINT NOT NULL REFERENCES dns_providers (id),
    name        TEXT NOT NULL,
    rtype       TEXT NOT NULL,
    content     TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    PRIMARY KEY (zone_id, provider_id, name, rtype, content)
);
