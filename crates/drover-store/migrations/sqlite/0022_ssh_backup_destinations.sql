-- SSH backup destinations: where the password of the host's user is found (a credentials
-- reference, never the secret) and the host key drover pins.
ALTER TABLE backup_destinations ADD COLUMN credentials TEXT;
ALTER TABLE backup_destinations ADD COLUMN host_key TEXT;
