-- An account's mailboxes, by their short name (the local part). The password is kept sealed,
-- as the account's is, so a move or a rebuild can create the mailbox again; its generation
-- moves with each change, and the server has it once `password_applied` reaches it.
CREATE TABLE mailboxes (
    account_id          BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    real_name           TEXT NOT NULL DEFAULT '',
    sealed_password     BLOB NOT NULL,
    password_generation BIGINT NOT NULL DEFAULT 1,
    password_applied    BIGINT NOT NULL DEFAULT 0,
    deleting            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
