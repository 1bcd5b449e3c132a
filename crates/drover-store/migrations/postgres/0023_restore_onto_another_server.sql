-- A move whose content comes from one of the account's backups (a restore onto another
-- server) rather than from a backup taken on its source.
ALTER TABLE account_migrations ADD COLUMN restore_from BIGINT;
