-- A failover move: the source is lost, so its copy is neither disabled nor deleted (a drift scan
-- finds it as an orphan if the server comes back).
ALTER TABLE account_migrations ADD COLUMN failover BOOLEAN NOT NULL DEFAULT FALSE;
