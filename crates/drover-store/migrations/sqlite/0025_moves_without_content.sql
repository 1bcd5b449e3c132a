-- A planned move the operator let go without its content (nothing could carry it): the
-- move's job makes the account empty on the target only then, and stops otherwise.
ALTER TABLE account_migrations ADD COLUMN without_content BOOLEAN NOT NULL DEFAULT FALSE;
