-- A DNS provider's kind and settings become one JSON document that drover-dns reads, so a new
-- kind of provider needs no new columns.
ALTER TABLE dns_providers ADD COLUMN settings TEXT;
UPDATE dns_providers SET settings = (CASE kind
    WHEN 'powerdns' THEN jsonb_strip_nulls(jsonb_build_object(
        'kind', 'powerdns', 'api_url', api_url, 'server_id', server_id,
        'dns_address', dns_address))
    ELSE jsonb_strip_nulls(jsonb_build_object(
        'kind', 'cloudflare', 'api_url', api_url, 'account_id', account_id,
        'batch_size', batch_size))
    END)::text;
ALTER TABLE dns_providers ALTER COLUMN settings SET NOT NULL;
ALTER TABLE dns_providers
    DROP COLUMN kind,
    DROP COLUMN api_url,
    DROP COLUMN server_id,
    DROP COLUMN account_id,
    DROP COLUMN dns_address,
    DROP COLUMN batch_size;
