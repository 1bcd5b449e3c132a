use std::fmt;

/// What went wrong, as callers decide on it. Decided once, from status codes and the message
/// texts the real server sends; callers never match on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Wrong credentials (401) or a user not allowed to run the program.
    Auth,
    /// Too many authentication failures: the server blocks this client's address (403).
    LockedOut,
    /// The domain (or user, or parent) named does not exist.
    NotFound,
    /// It exists already (domain, database, user).
    AlreadyExists,
    /// Already in the state asked for (disabling a disabled domain).
    AlreadyInState,
    /// The server refused the request as invalid: bad parameter, unknown program, missing value.
    Invalid,
    /// Refused for going too fast (by the server, a proxy, or drover's own breaker).
    RateLimited,
    /// Network failure, timeout, 5xx: may work if tried again.
    Transient,
    /// An answer drover cannot understand.
    Protocol,
}

impl ErrorKind {
    /// The server said how things stand (not there, there already, in that state already):
    /// an answer a caller decides on, not a fault.
    pub fn is_an_answer(self) -> bool {
        matches!(
            self,
            Self::NotFound | Self::AlreadyExists | Self::AlreadyInState
        )
    }

    /// Whether trying the same call again can help. Auth and lock-out never are: retrying
    /// them makes a lock-out longer.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::RateLimited)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::LockedOut => "locked_out",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::AlreadyInState => "already_in_state",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::Transient => "transient",
            Self::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call that did not succeed, with the server's own words when it gave any.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct VirtualminError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request went out and no answer came in time: the server may still be doing it.
    pub unanswered: bool,
    /// The program ran and reported that it failed (not a fault on the way to it or back).
    pub program_failed: bool,
    /// The failed program's whole output (its log of what it did before failing).
    pub output: Option<String>,
}

/// Two errors are the same when they say the same: the program's log around it (timestamps,
/// progress) is not compared.
impl PartialEq for VirtualminError {
    fn eq(&self, other: &Self) -> bool {
        (
            self.kind,
            &self.message,
            self.unanswered,
            self.program_failed,
        ) == (
            other.kind,
            &other.message,
            other.unanswered,
            other.program_failed,
        )
    }
}

impl Eq for VirtualminError {}

impl VirtualminError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            unanswered: false,
            program_failed: false,
            output: None,
        }
    }

    /// A request sent and never answered (a transient failure).
    pub fn unanswered(message: impl Into<String>) -> Self {
        Self {
            unanswered: true,
            ..Self::new(ErrorKind::Transient, message)
        }
    }

    /// Whether `create-domain` refused the administration user's name as taken on that
    /// server (a system user or group, or another server's mail prefix): another name works.
    pub fn username_taken(&self) -> bool {
        let m = self.message.trim();
        let user_or_group = self.kind == ErrorKind::AlreadyExists
            && (m.starts_with("The specified administration user already exists")
                || ((m.starts_with("An administration group named ")
                    || m.starts_with("A unix user named ")
                    || m.starts_with("A unix group named "))
                    && m.contains(" already exists")));
        // The mail prefix follows the user name; "in use" is not read as already_exists.
        let prefix = m.starts_with("The specified username prefix is already in use")
            || (m.starts_with("The username prefix ") && m.contains(" is already in use by "));
        user_or_group || prefix
    }
}

/// The kind of a `failure` the server reported, from its message. The texts are Virtualmin
/// 8.1's (see the captures); anything unrecognised is `Invalid`, which is never retried.
pub fn classify_failure(message: &str) -> ErrorKind {
    let m = message.trim();
    let m = m.strip_prefix(".. ").unwrap_or(m);
    if is_backup_host_failure(m) {
        // The backup host's trouble, not the server's: its breaker stays closed, and the
        // failure is an outcome to record (a retry now would fail the same way).
        ErrorKind::Invalid
    } else if is_dependency_failure(m) {
        ErrorKind::Transient
    } else if m.contains("You are already hosting this domain")
        || m.contains("is already associated with this server")
        || m.contains("already exists")
    {
        // "A plan name … already exists", "A plan named … already exists", "A user named …
        // already exists in this virtual server", "A database called … already exists", "A
        // user or mail alias with the same name and domain already exists", …
        ErrorKind::AlreadyExists
    } else if m.ends_with("is already disabled")
        || m.ends_with("is not disabled")
        || m.ends_with("is already enabled")
    {
        ErrorKind::AlreadyInState
    } else if (m.starts_with("Virtual server ")
        && m.trim_end_matches('.').ends_with("does not exist"))
        || (m.starts_with("No ") && (m.contains(" was found") || m.ends_with(" found")))
        || m.starts_with("Parent domain does not exist")
        || m == "Unknown plan name"
        || m == "Unknown template name"
        || m.starts_with("The specified database is not associated with this server")
        || (m.starts_with("Restore file ") && m.ends_with("does not exist"))
        || m.ends_with("does not have an SSL cert")
        || m.starts_with("None of the specified virtual servers have an SSL cert")
    {
        // "No plan with name … was found", "No plan with name or ID … found", "No virtual
        // server named … found", "No alias target named … found", "No user named … was found".
        ErrorKind::NotFound
    } else if m.starts_with("You are not allowed") {
        ErrorKind::Auth
    } else {
        ErrorKind::Invalid
    }
}

/// Whether a text says an SSH backup host failed the server's `ssh` or `scp`: refused the
/// connection or the login, or lacked a directory or file.
pub fn is_backup_host_failure(text: &str) -> bool {
    const MARKERS: &[&str] = &[
        "Failed to connect to SSH server",
        "Uploading archive to SSH server",
        "upload failed : scp: ",
        "Failed to read backup file : ssh:",
        "Failed to read backup file : scp: ",
    ];
    MARKERS.iter().any(|marker| text.contains(marker))
}

/// Whether a text says a service the server depends on failed (its database server, a
/// remote system): the request was fine and may work later.
pub fn is_dependency_failure(text: &str) -> bool {
    const MARKERS: &[&str] = &[
        "DBI connect failed",
        "Can't connect to local server through socket",
        "Can't connect to local MySQL server",
        "Can't connect to local MariaDB server",
        "Can't connect to MySQL server",
        "Can't connect to MariaDB server",
        "Failed to contact Virtualmin on destination system",
        "Connection refused",
    ];
    MARKERS.iter().any(|marker| text.contains(marker))
}

/// A line Webmin's error log handler prints to stderr, which lands in the program's output:
/// `[03/Dec/2026:08:26:19 +0000] [127.0.0.1] …`. Also matches its first part alone, as JSON
/// lists show it after splitting the line at its first ':' (`[03/Dec/2026`).
pub fn is_log_line(line: &str) -> bool {
    let b = line.trim_start().as_bytes();
    b.len() >= 12
        && b[0] == b'['
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b'/'
        && b[4..7].iter().all(u8::is_ascii_alphabetic)
        && b[7] == b'/'
        && b[8..12].iter().all(u8::is_ascii_digit)
}

/// The real cause in a failed program's whole answer (its JSON/XML `full_error`, or its text
/// output). The JSON/XML `error` is only the first non-blank line, which is often a warning
/// printed before the failure or the first step of a long program. In order: the message of
/// Webmin's `Error` block; a failed step (`.. failed : …`); a line saying what failed
/// (`Failed to …`); the first line that is not a timestamped warning; `first_line` as the
/// server chose it.
pub fn failure_message(first_line: &str, full: &str) -> String {
    let full = terminal_text(full);
    let lines: Vec<&str> = full.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "Error"
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim().starts_with("---"))
            && let Some(message) = lines.get(i + 2).map(|l| l.trim())
            && !message.is_empty()
        {
            return message.to_owned();
        }
    }
    if let Some(i) = lines.iter().position(|l| is_step_failure(l)) {
        let step = lines[i].trim().trim_start_matches('.').trim();
        // A helper that died in Python (Let's Encrypt's client): its cause is the exception
        // after the traceback, not the traceback's first line.
        return match step.strip_suffix("Traceback (most recent call last):") {
            Some(head) => format!("{head}{}", python_exception(&lines[i + 1..])),
            None => with_cause_below(step, &lines[i + 1..]),
        };
    }
    // A program that stops on a failure it prints itself (`backup-domain`'s destination
    // checks: "Failed to create directory …", then "Backup failed!").
    if let Some(i) = lines
        .iter()
        .position(|l| l.trim().starts_with("Failed to "))
    {
        return with_cause_below(lines[i].trim(), &lines[i + 1..]);
    }
    let first = first_line.trim();
    if !first.is_empty() && !is_log_line(first) {
        return first.to_owned();
    }
    lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !is_log_line(l))
        .or(Some(first).filter(|f| !f.is_empty()))
        .unwrap_or("the program failed without a message")
        .to_owned()
}

/// What `ssh` and `scp` printed through a terminal, as plain lines: carriage returns gone, and
/// their password prompts (which Virtualmin answers) left out.
fn terminal_text(full: &str) -> String {
    if !full.contains('\r') {
        return full.to_owned();
    }
    let mut text = String::with_capacity(full.len());
    for line in full.split('\n') {
        let kept: Vec<&str> = line
            .split('\r')
            .filter(|part| {
                !part.trim().is_empty()
                    && !part.trim_end().ends_with("password:")
                    && !drover_core::is_progress_meter(part)
            })
            .collect();
        // A line that held only a prompt goes; a blank one stays (it ends a message).
        if kept.is_empty() && !line.trim().is_empty() {
            continue;
        }
        text.push_str(kept.join(" ").trim_end());
        text.push('\n');
    }
    text
}

/// `head` ("… failed :", "Failed to connect to SSH server :") with the cause the program
/// printed on the lines below it, up to a blank line, when `head` itself ends before it: the
/// last three different lines (ssh's final word is last).
fn with_cause_below(head: &str, below: &[&str]) -> String {
    if !head.ends_with(':') {
        return head.to_owned();
    }
    let mut cause: Vec<&str> = Vec::new();
    for line in below.iter().map(|l| l.trim()).take_while(|l| !l.is_empty()) {
        if cause.last() != Some(&line) {
            cause.push(line);
        }
    }
    let last = &cause[cause.len().saturating_sub(3)..];
    match last.is_empty() {
        true => head.to_owned(),
        false => format!("{head} {}", last.join("; ")),
    }
}

/// The exception a Python traceback ends with, on one line: its unindented lines joined, and
/// an indented line after it (the program's next step) after a `;`.
fn python_exception(after_traceback: &[&str]) -> String {
    let mut exception = String::new();
    let start = after_traceback
        .iter()
        .position(|l| !l.starts_with(' ') && !l.trim().is_empty());
    for line in start.map_or(&[][..], |s| &after_traceback[s..]) {
        let text = line.trim();
        if text.is_empty() {
            break;
        }
        if !exception.is_empty() {
            exception.push_str(if line.starts_with(' ') { "; " } else { " " });
        }
        exception.push_str(text);
    }
    exception
}

/// Whether a line of a program's output reports one of its steps failing, though the
/// program went on: `.. MariaDB database failed : …`, `.. MariaDB user does not exist!`.
pub fn is_step_failure(line: &str) -> bool {
    let l = line.trim();
    let Some(rest) = l.strip_prefix("..") else {
        return false;
    };
    let rest = rest.to_ascii_lowercase();
    rest.contains("failed")
        || rest.contains("does not exist")
        || (rest.contains("error") && !rest.contains("no error"))
        || rest.contains("could not")
        || rest.contains("cannot")
}

/// The kind and message of a failed program, from its whole answer: `first_line` is what the
/// server reports as the error (JSON/XML `error`, or the text's first line), `full` the whole
/// output (`full_error`, or the text). A dependency failure anywhere in it makes the failure
/// transient, whatever line came first.
pub fn classify_answer(first_line: &str, full: &str) -> (ErrorKind, String) {
    let message = failure_message(first_line, full);
    let mut kind = classify_failure(&message);
    // Let's Encrypt's own refusals often quote a "Connection refused" of the customer's site,
    // and an SSH backup host's failures one of that host: answers about them, never a fault
    // of the server's.
    if full.contains("validation failed :") || is_backup_host_failure(&message) {
        kind = ErrorKind::Invalid;
    } else if kind == ErrorKind::Invalid
        && (is_dependency_failure(full) || is_dependency_failure(first_line))
    {
        kind = ErrorKind::Transient;
    }
    (kind, message)
}

/// The kind of an `error` (the program itself was refused).
pub fn classify_error(message: &str) -> ErrorKind {
    if message.contains("not allowed to run remote commands") {
        ErrorKind::Auth
    } else {
        ErrorKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backups to an SSH host that failed on the real server: ssh and scp answer through a
    /// terminal, with carriage returns and the password prompts Virtualmin answered.
    #[test]
    fn an_ssh_failure_is_told_by_ssh_own_last_words() {
        let wrong_password = "Starting backup..\nTesting backup destination /home/b/x.tar.gz on SSH server 127.0.0.1 ..\n\
            Failed to connect to SSH server : \rb@127.0.0.1's password: \r\nPermission denied, please try again.\r\r\n\
            \rb@127.0.0.1's password: \r\nPermission denied, please try again.\r\r\n\rb@127.0.0.1's password: \r\n\
            b@127.0.0.1: Permission denied (publickey,password).\r\r\nscp: Connection closed\r\r\n\n\nBackup failed!\n\n";
        assert_eq!(
            failure_message("Starting backup..", wrong_password),
            "Failed to connect to SSH server : Permission denied, please try again.; \
             b@127.0.0.1: Permission denied (publickey,password).; scp: Connection closed"
        );
        let no_directory = "Creating final backup archive ..\n.. done\n\nUploading archive to SSH server 127.0.0.1 ..\n\
            .. upload failed : \rb@127.0.0.1's password: \r\nscp: dest open \"/home/b/nodir/x.tar.gz\": No such file or directory\r\r\n\
            scp: failed to upload file /tmp/.webmin/30883-x.tar.gz to /home/b/nodir/x.tar.gz\r\r\n\n\nBackup failed!\n\n";
        assert_eq!(
            failure_message("Starting backup..", no_directory),
            "upload failed : scp: dest open \"/home/b/nodir/x.tar.gz\": No such file or directory; \
             scp: failed to upload file /tmp/.webmin/30883-x.tar.gz to /home/b/nodir/x.tar.gz"
        );
        let refused = "Starting backup..\nTesting backup destination /home/b/x.tar.gz on SSH server 127.0.0.1 ..\n\
            Failed to connect to SSH server : ssh: connect to host 127.0.0.1 port 2223: Connection refused\r\r\n\
            scp: Connection closed\r\r\n\n\nBackup failed!\n\n";
        assert_eq!(
            failure_message("Starting backup..", refused),
            "Failed to connect to SSH server : ssh: connect to host 127.0.0.1 port 2223: Connection refused"
        );
        // A full host (Virtualmin with a key file, the host's disk full: seen on the real
        // server): scp's progress meter stands before its words, and is no part of them.
        let full = "Uploading archive to SSH server 127.0.0.1 ..\n\
            .. upload failed : \r2823-x.tar.gz                            0%    0     0.0KB/s   --:-- ETA\
            \r2823-x.tar.gz                           70%  255KB  97.0MB/s   00:00 ETA\r\n\
            scp: write remote \"/srv/full/x.tar.gz\": Failure\r\r\n\
            scp: failed to upload file /tmp/.webmin/2823-x.tar.gz to /srv/full/x.tar.gz\r\r\n\n\nBackup failed!\n\n";
        assert_eq!(
            failure_message("Starting backup..", full),
            "upload failed : scp: write remote \"/srv/full/x.tar.gz\": Failure; \
             scp: failed to upload file /tmp/.webmin/2823-x.tar.gz to /srv/full/x.tar.gz"
        );
        // The backup host's trouble, not the server's: not retried, not held against it.
        for output in [wrong_password, no_directory, refused, full] {
            let (kind, _) = classify_answer("Starting backup..", output);
            assert_eq!(kind, ErrorKind::Invalid, "{output}");
        }
    }

    #[test]
    fn a_taken_administration_user_is_told_apart() {
        let taken = |message: &str| VirtualminError::new(classify_failure(message), message);
        for message in [
            // create-domain.pl's own texts (lang/en setup_euser, setup_egroup, …).
            "The specified administration user already exists",
            "An administration group named postfix already exists",
            "A unix user named mail already exists - try selecting a different administration username",
            "A unix group named mail already exists - try selecting a different administration username",
            "The username prefix mail is already in use by mail.com",
        ] {
            assert!(taken(message).username_taken(), "{message}");
        }
        for message in [
            "You are already hosting this domain",
            "A plan name Web 10GB already exists",
            "A database called tp1 already exists",
        ] {
            assert!(!taken(message).username_taken(), "{message}");
        }
    }

    #[test]
    fn lets_encrypts_refusal_of_a_site_is_an_answer_not_a_fault_of_the_server() {
        let full = "Requesting SSL certificate for ana.ro www.ana.ro ..\n.. failed : Web-based \
                    validation failed : Failed to request certificate : Fetching \
                    http://ana.ro/.well-known/acme-challenge/x: Connection refused\n";
        let (kind, message) = classify_answer("Requesting SSL certificate", full);
        assert_eq!(kind, ErrorKind::Invalid, "{message}");
        assert!(message.ends_with("Connection refused"), "{message}");
    }

    #[test]
    fn messages_of_the_real_server_are_classified() {
        use ErrorKind::*;
        for (message, kind) in [
            ("You are already hosting this domain", AlreadyExists),
            (
                "A database with the same name and type is already associated with this server",
                AlreadyExists,
            ),
            (
                "A user or mail alias with the same name and domain already exists",
                AlreadyExists,
            ),
            (
                "Virtual server beta.test is already disabled",
                AlreadyInState,
            ),
            ("Virtual server beta.test is not disabled", AlreadyInState),
            ("Virtual server nosuch.test does not exist", NotFound),
            ("Virtual server nosuch.test does not exist.", NotFound),
            (
                "No user named nobody-here was found in the server alpha.test",
                NotFound,
            ),
            ("Parent domain does not exist", NotFound),
            (
                "You are not allowed to run this command for virtual server alpha.test",
                Auth,
            ),
            ("Unknown parameter --bogus-flag", Invalid),
            ("Missing password", Invalid),
        ] {
            assert_eq!(classify_failure(message), kind, "{message}");
        }
        assert_eq!(
            classify_error("You are not allowed to run remote commands"),
            Auth
        );
        assert_eq!(classify_error("Remote program x does not exist"), Invalid);
        assert!(!Auth.is_retryable() && !LockedOut.is_retryable() && Transient.is_retryable());
    }

    const DB_SOCKET_ERROR: &str = "DBI connect failed : Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)";
    const WARNING: &str = "[03/Dec/2026:08:26:52 +0000] [127.0.0.1] Failed to get MySQL/MariaDB version for user size map : Failed to get version";

    #[test]
    fn wave_two_texts_are_classified() {
        use ErrorKind::*;
        for (message, kind) in [
            ("A plan name Web 10GB already exists", AlreadyExists),
            ("A plan named Web 20GB already exists", AlreadyExists),
            (
                "A user named hal already exists in this virtual server",
                AlreadyExists,
            ),
            ("A database called tp1 already exists", AlreadyExists),
            ("No plan with name No Such Plan was found", NotFound),
            ("No plan with name Cap Plan J2 was found", NotFound),
            ("No plan with name or ID Cap Plan X found", NotFound),
            ("Unknown plan name", NotFound),
            (
                "The specified database is not associated with this server",
                NotFound,
            ),
            ("No virtual server named nosuch-w2.test found", NotFound),
            ("No alias target named nosuch-w2.test found", NotFound),
            (
                "Restore file /var/backups/drover-cap/nosuch.tar.gz does not exist",
                NotFound,
            ),
            (
                "Virtual server kappa.test does not have an SSL cert",
                NotFound,
            ),
            (
                "None of the specified virtual servers have an SSL cert",
                NotFound,
            ),
            (DB_SOCKET_ERROR, Transient),
            (
                "Failed to contact Virtualmin on destination system : ssh: connect to host 127.0.0.2 port 22: Connection refused",
                Transient,
            ),
            ("Selected plan has no features enabled", Invalid),
            ("No virtual server features enabled", Invalid),
            (
                "Mail for the domain cannot be enabled unless an administration user is created",
                Invalid,
            ),
            ("--quota must be followed by a quota in blocks", Invalid),
            ("Missing --name flag", Invalid),
            ("Invalid new username", Invalid),
        ] {
            assert_eq!(classify_failure(message), kind, "{message}");
        }
    }

    #[test]
    fn the_real_cause_is_found_in_the_whole_answer() {
        // create-database with MariaDB down: `error` is the first warning, the cause follows.
        let full = format!(
            "{WARNING}\n[03/Dec/2026:08:26:52 +0000] [127.0.0.1] Failed to detect MySQL/MariaDB user name length : DBI connect failed :  Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2) \n[03/Dec/2026:08:26:52 +0000] [127.0.0.1] {DB_SOCKET_ERROR}\nError\n-----\n{DB_SOCKET_ERROR}\n-----\n"
        );
        assert_eq!(
            classify_answer(WARNING, &full),
            (ErrorKind::Transient, DB_SOCKET_ERROR.to_owned())
        );
        // A backup whose archive cannot be written: `error` is the first step's line.
        let full = "Starting backup..\nTesting backup destination local file /x/bk1.tar.gz ..\n.. done\n\n[03/Dec/2026:08:24:31 +0000] [127.0.0.1] Failed to open /x/bk1.tar.gz for writing : No such file or directory\nError\n-----\nFailed to open /x/bk1.tar.gz for writing : No such file or directory\n-----\n.. completed in 1 seconds\n";
        assert_eq!(
            classify_answer("Starting backup..", full),
            (
                ErrorKind::Invalid,
                "Failed to open /x/bk1.tar.gz for writing : No such file or directory".to_owned()
            )
        );
        // A destination directory `--mkdir` could not make (the real server makes only the
        // last one, not its parents): the program's own line.
        let full = "Starting backup..\nTesting backup destination local file /var/backups/nodir-x/bktest.ro/a.tar.gz ..\nFailed to create directory /var/backups/nodir-x/bktest.ro : mkdir: cannot create directory '/var/backups/nodir-x/bktest.ro': No such file or directory\n\n\nBackup failed!\n\n";
        assert_eq!(
            classify_answer("Starting backup..", full),
            (
                ErrorKind::Invalid,
                "Failed to create directory /var/backups/nodir-x/bktest.ro : mkdir: cannot \
                 create directory '/var/backups/nodir-x/bktest.ro': No such file or directory"
                    .to_owned()
            )
        );
        // A failed step names the cause.
        let full = "Checking certificate names for resolvability ..\n.. all certificate names are usable\n\nRequesting SSL certificate for kappa.test ..\n.. failed : Web-based validation failed : Failed to request certificate\n";
        assert_eq!(
            classify_answer("Checking certificate names for resolvability ..", full).1,
            "failed : Web-based validation failed : Failed to request certificate"
        );
        // An ordinary failure: the message, then the usage text.
        let full = "Unknown plan name\n\nAdds a new Virtualmin virtual server, with the settings and features\n";
        assert_eq!(
            classify_answer("Unknown plan name", full),
            (ErrorKind::NotFound, "Unknown plan name".to_owned())
        );
    }

    #[test]
    fn log_lines_and_step_failures_are_recognised() {
        assert!(is_log_line(WARNING));
        assert!(is_log_line("[03/Dec/2026"));
        assert!(!is_log_line("[--quota] blocks"));
        assert!(!is_log_line("bk3"));
        assert!(is_step_failure(
            ".. MariaDB database failed : mysql::execute_sql_logged failed : DBI connect failed :  Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)"
        ));
        assert!(is_step_failure(".. MariaDB user does not exist!"));
        for fine in [
            ".. done",
            ".. none defined",
            ".. completed in 1 seconds",
            ".. no errors found",
            "Creating MariaDB login ..",
        ] {
            assert!(!is_step_failure(fine), "{fine}");
        }
    }
}
