//! The test-only content endpoint, beside remote.cgi and without its login: a test (or a user
//! of the simulator binary) puts and reads a domain's content over HTTP, as the customer's
//! uploads, mail and application would, and finds it again after a backup, restore or move.
//!
//! - `PUT /_test/content/DOMAIN/files/PATH`: the body is the file; `GET` reads it back
//! - `POST /_test/content/DOMAIN/mail/MAILBOX`: the body is a letter; `GET`: the letters (JSON)
//! - `POST /_test/content/DOMAIN/rows/DATABASE`: the body is a row; `GET`: the rows (JSON)
//!
//! A 404 names what the server lacks (the domain, the mailbox, the database, the file).

use super::State;

pub const PREFIX: &str = "/_test/content/";

/// Status, content type and body for a request whose path starts with [`PREFIX`].
pub(super) fn answer(
    state: &mut State,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let not_found = |what: String| (404, TEXT, format!("no {what}\n").into_bytes());
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let mut parts = rest.splitn(3, '/');
    let (Some(domain), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return (
            400,
            TEXT,
            format!("expected {PREFIX}DOMAIN/(files|mail|rows)/NAME\n").into_bytes(),
        );
    };
    let text = String::from_utf8_lossy(body).into_owned();
    let json = |items: Vec<String>| {
        (
            200,
            "application/json",
            serde_json::to_vec(&items).unwrap_or_default(),
        )
    };
    let put = |done: Option<()>, what: String| match done {
        Some(()) => (204, TEXT, Vec::new()),
        None => not_found(what),
    };
    if !state.domains.contains_key(domain) {
        return not_found(format!("domain {domain}"));
    }
    match (method, kind) {
        ("PUT", "files") => put(
            state.put_file(domain, name, &text),
            format!("domain {domain}"),
        ),
        ("GET", "files") => match state.file(domain, name) {
            Some(file) => (200, TEXT, file.into_bytes()),
            None => not_found(format!("file {name} in {domain}")),
        },
        ("POST", "mail") => put(
            state.put_mail(domain, name, &text),
            format!("mailbox {name} in {domain}"),
        ),
        ("GET", "mail") => json(state.mail(domain, name)),
        ("POST", "rows") => put(
            state.put_row(domain, name, &text),
            format!("database {name} of {domain}"),
        ),
        ("GET", "rows") => json(state.rows(domain, name)),
        _ => (
            405,
            TEXT,
            b"PUT or GET files, POST or GET mail and rows\n".to_vec(),
        ),
    }
}
