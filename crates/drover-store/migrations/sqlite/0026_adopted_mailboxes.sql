-- A mailbox adopted from a server keeps the password's hash the server showed, sealed in
-- place of the password: it is made again with that hash (`create-user --encpass`), so the
-- customer's own password keeps working. A password set in drover replaces it.
ALTER TABLE mailboxes ADD COLUMN password_is_hash BOOLEAN NOT NULL DEFAULT FALSE;
