-- SSH backup destinations that log in with a key file kept on every server (its path only)
-- instead of a password.
ALTER TABLE backup_destinations ADD COLUMN key_file TEXT;
