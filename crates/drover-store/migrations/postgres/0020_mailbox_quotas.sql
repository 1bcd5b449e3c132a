-- Each mailbox's disk quota: the plan's (the default and the most a mailbox may be given), and
-- a mailbox's own when it was given one (MB; NULL: the plan's, or no limit).
ALTER TABLE plans ADD COLUMN mailbox_quota_mb BIGINT;
ALTER TABLE mailboxes ADD COLUMN quota_mb BIGINT;
