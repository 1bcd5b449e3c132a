-- The names an account's certificate request covers on its server: the account's domain (whose
-- certificate the server makes for its alias domains with websites too) and each of its
-- sub-servers, which has a certificate of its own. A name is asked for while it has no
-- issued_at; a request clears it for the names it renews.
CREATE TABLE certificate_names (
    account_id BIGINT NOT NULL REFERENCES certificates (account_id) ON DELETE CASCADE,
    domain     TEXT NOT NULL,
    issued_at  TEXT,
    expires_at TEXT,
    last_error TEXT,
    PRIMARY KEY (account_id, domain)
);
-- Certificates asked for before names were kept: the account's domain, issued only when the
-- request stands issued (one asked again keeps the last issue time while it waits).
INSERT INTO certificate_names (account_id, domain, issued_at, expires_at, last_error)
SELECT c.account_id, a.domain,
       CASE WHEN c.state = 'issued' THEN c.issued_at END, c.expires_at, c.last_error
FROM certificates c JOIN accounts a ON a.id = c.account_id;
