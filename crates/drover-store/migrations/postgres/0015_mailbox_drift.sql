-- Findings about an account's mailboxes, each naming its mailbox.
ALTER TABLE drift_findings DROP CONSTRAINT drift_findings_kind_check;
ALTER TABLE drift_findings ADD CONSTRAINT drift_findings_kind_check
    CHECK (kind IN ('missing', 'orphan', 'state_mismatch', 'plan_mismatch', 'feature_missing',
                    'mailbox_missing', 'mailbox_orphan', 'mailbox_mismatch'));
ALTER TABLE drift_findings ADD COLUMN mailbox TEXT;
