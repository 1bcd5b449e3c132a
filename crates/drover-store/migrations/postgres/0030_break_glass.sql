-- SSH access to a server for the break-glass path (JSON: user, port, key, host_key), and the
-- mark an operator sets while working on a server over SSH: jobs wait while it is set.
ALTER TABLE servers ADD COLUMN ssh TEXT;
ALTER TABLE servers ADD COLUMN break_glass TEXT;
ALTER TABLE servers ADD COLUMN break_glass_by TEXT;
ALTER TABLE servers ADD COLUMN break_glass_at TIMESTAMPTZ;
