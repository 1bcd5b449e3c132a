-- A DNS provider's kind and settings become one JSON document that drover-dns reads, so a new
-- kind of provider needs no new columns. (SQLite cannot add a NOT NULL column without a
-- default; drover always writes it.)
ALTER TABLE dns_providers ADD COLUMN settings TEXT NOT NULL DEFAULT '';
UPDATE dns_providers SET settings = CASE kind
    WHEN 'powerdns' THEN json_patch('{}', json_object(
        'kind', 'powerdns', 'api_url', api_url, 'server_id', server_id,
        'dns_address', dns_address))
    ELSE json_patch('{}', json_object(
        'kind', 'cloudflare', 'api_url', api_url, 'account_id', account_id,
        'batch_size', batch_size))
    END;
ALTER TABLE dns_providers DROP COLUMN kind;
ALTER TABLE dns_providers DROP COLUMN api_url;
ALTER TABLE dns_providers DROP COLUMN server_id;
ALTER TABLE dns_providers DROP COLUMN account_id;
ALTER TABLE dns_providers DROP COLUMN dns_address;
ALTER TABLE dns_providers DROP COLUMN batch_size;
