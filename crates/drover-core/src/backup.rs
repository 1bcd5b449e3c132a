//! Backups of accounts' content: where they go (a destination), what an archive is called,
//! which archives retention keeps, and when an account's last good backup is too old.
//!
//! The server does the work (`backup-domain`); drover decides when, where and what to keep.

use std::fmt;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::{DomainName, Error, ServerName};

/// Where a destination keeps archives, as the server writing them sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackupLocation {
    /// A directory on the account's own server (an absolute path).
    ServerDirectory(String),
    /// A directory on a host every server reaches over SSH (`scp`): an archive one server
    /// wrote can be restored by another, and outlives the server it came from.
    Ssh(SshLocation),
}

/// A directory on an SSH host: `ssh://user@host[:port]:/path`. The password is never part of
/// it (a destination's `credentials` say where it is found).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshLocation {
    pub user: String,
    pub host: crate::Hostname,
    pub port: u16,
    /// Absolute, on the SSH host.
    pub path: String,
}

const DIRECTORY_EXPECTED: &str = "an absolute directory on the server, like /var/backups/drover, \
                                  or one on an SSH host, like ssh://backup@vault.example.net:/srv/backups \
                                  (letters, digits, '.', '-', '_' and '/'; no '..')";

/// `input` as it may be echoed: in any `scheme://user:secret@host…` the secret (up to the last
/// `@`, as passwords may hold one) replaced by `***`, so that a password pasted into a
/// location is neither shown back nor logged with the error.
fn without_password(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_owned();
    };
    match (rest.split_once(':'), rest.rfind('@')) {
        (Some((user, _)), Some(at)) if user.len() < at => {
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        // A colon and no `@`: what follows may be a password all the same.
        (Some((user, _)), None) if !user.contains('/') => format!("{scheme}://{user}:***"),
        _ => input.to_owned(),
    }
}

/// An absolute path the server's programs read as nothing more than a path (no `..`, spaces,
/// quotes, control characters or shell syntax), without its trailing `/`.
fn plain_path(input: &str) -> Option<String> {
    let path = input.trim_end_matches('/');
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
    let ok = input.starts_with('/')
        && !path.is_empty()
        && path.len() <= 2048
        && path.chars().all(safe)
        && !path.contains("//")
        && path.split('/').all(|part| part != ".." && part != ".");
    ok.then(|| path.to_owned())
}

impl BackupLocation {
    /// Accepts an absolute directory on the server (`/var/backups/drover`) or on an SSH host
    /// (`ssh://user@host:/path`, `ssh://user@host:2222:/path`; `ssh://user@host/path` too).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let shown = without_password(input);
        let invalid = |why: &str| Error::invalid("backup location", &shown, why.to_owned());
        let scheme = input.get(..6).map(str::to_ascii_lowercase);
        if let (Some("ssh://"), Some(rest)) = (scheme.as_deref(), input.get(6..)) {
            return SshLocation::parse(rest)
                .map(Self::Ssh)
                .map_err(|why| invalid(&why));
        }
        if input.contains("://") {
            return Err(invalid(&format!(
                "{DIRECTORY_EXPECTED}; other remote destinations are not supported"
            )));
        }
        plain_path(input)
            .map(Self::ServerDirectory)
            .ok_or_else(|| invalid(DIRECTORY_EXPECTED))
    }

    /// Whether any server of the fleet can read what one wrote there.
    pub fn shared(&self) -> bool {
        matches!(self, Self::Ssh(_))
    }

    /// The same place's `path` instead (an archive in it).
    fn with_path(&self, path: String) -> Self {
        match self {
            Self::ServerDirectory(_) => Self::ServerDirectory(path),
            Self::Ssh(ssh) => Self::Ssh(SshLocation {
                path,
                ..ssh.clone()
            }),
        }
    }

    /// Where the account's archive taken at `at` goes: one file per backup, named by its UTC
    /// time to the millisecond so that names sort by age and two backups of an account (one
    /// at a time) never share one. On the server itself in a directory per domain (the
    /// server makes it); on an SSH host side by side, as the server makes no directory there
    /// (`--mkdir` is for local backups only).
    pub fn archive(&self, domain: &DomainName, at: Timestamp) -> Self {
        let stamp = at.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S%.3f");
        match self {
            Self::ServerDirectory(dir) => {
                self.with_path(format!("{dir}/{domain}/{domain}-{stamp}.tar.gz"))
            }
            Self::Ssh(ssh) => self.with_path(format!("{}/{domain}-{stamp}.tar.gz", ssh.path)),
        }
    }
}

impl SshLocation {
    /// What follows `ssh://`; the error says what was wrong.
    fn parse(rest: &str) -> Result<Self, String> {
        let expected = "ssh://user@host:/absolute/path or ssh://user@host:PORT:/absolute/path";
        let Some((user, after)) = rest.split_once('@') else {
            return Err(format!("{expected}: the user is missing"));
        };
        if user.contains(':') {
            return Err(format!(
                "{expected}, without the password: it goes in the destination's credentials \
                 (env:NAME or file:/path), never in its location"
            ));
        }
        let user_ok = !user.is_empty()
            && user.len() <= 32
            && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && user.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if !user_ok {
            return Err(format!(
                "{expected}: '{user}' is not a user name (lower-case letters, digits, '_', '-', '.')"
            ));
        }
        // `[v6 address]`, or a name up to the port or the path.
        let (host, after) = match after.strip_prefix('[') {
            Some(bracketed) => bracketed
                .split_once(']')
                .ok_or_else(|| format!("{expected}: the ']' after the address is missing"))?,
            None => after.split_at(after.find([':', '/']).unwrap_or(after.len())),
        };
        let host = crate::Hostname::parse(host).map_err(|e| format!("{expected}: {e}"))?;
        let (port, path) = match after.strip_prefix(':') {
            Some(tail) if tail.starts_with(|c: char| c.is_ascii_digit()) => {
                let end = tail.find([':', '/']).unwrap_or(tail.len());
                let port = tail[..end]
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{expected}: '{}' is not a port", &tail[..end]))?;
                (port, tail[end..].strip_prefix(':').unwrap_or(&tail[end..]))
            }
            Some(tail) => (22, tail),
            None => (22, after),
        };
        let path = plain_path(path).ok_or_else(|| {
            format!(
                "{expected}: the directory must be absolute (letters, digits, '.', '-', '_' and \
                 '/'; no '..')"
            )
        })?;
        Ok(Self {
            user: user.to_owned(),
            host,
            port,
            path,
        })
    }

    /// `host` as `scp` and Virtualmin take it: an IPv6 address in brackets.
    pub fn host_for_url(&self) -> String {
        match self.host.as_str().contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.to_string(),
        }
    }
}

impl fmt::Display for SshLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (user, host, path) = (&self.user, self.host_for_url(), &self.path);
        match self.port {
            22 => write!(f, "ssh://{user}@{host}:{path}"),
            port => write!(f, "ssh://{user}@{host}:{port}:{path}"),
        }
    }
}

impl fmt::Display for BackupLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerDirectory(path) => f.write_str(path),
            Self::Ssh(ssh) => ssh.fmt(f),
        }
    }
}

impl Serialize for BackupLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BackupLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A place backups go, and how many of them it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupDestinationSpec {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "local"))]
    pub name: ServerName,
    /// An absolute directory on each account's own server, or on an SSH host every server
    /// reaches: `ssh://user@host[:port]:/path` (no password in it).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "/var/backups/drover"))]
    pub location: BackupLocation,
    /// For an SSH host: where the password of its user is found (`env:NAME` or
    /// `file:/path`, read by drover when a backup runs and never stored).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "env:DROVER_SECRET_BACKUP_VAULT"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<crate::CredentialRef>,
    /// For an SSH host, instead of a password: a private key file kept on every server (its
    /// public half authorized for the user on the host), which the servers' `scp` logs in
    /// with. Only its path is known to drover.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "/root/.ssh/backup_ed25519"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<SshKeyFile>,
    /// For an SSH host: its host key, pinned, as `ssh-keygen -lf` prints it
    /// (`SHA256:…`). drover checks it before each use and sends nothing to a host that
    /// presents another.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "SHA256:D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<SshHostKey>,
    /// The newest backup of each of the last N days is kept.
    #[serde(default = "default_keep_daily")]
    pub keep_daily: u32,
    /// The newest backup of each of the last M weeks is kept too.
    #[serde(default = "default_keep_weekly")]
    pub keep_weekly: u32,
    /// Scheduled backups go to the default destination.
    #[serde(default)]
    pub default: bool,
}

/// A change to a destination: absent fields are kept. Its name stays: archives and history
/// are filed under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupDestinationPatch {
    /// A new directory: later backups go there; archives written before stay where they are
    /// (and are still pruned and restored from there).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub location: Option<BackupLocation>,
    /// A password reference instead of the key file.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub credentials: Option<crate::CredentialRef>,
    /// A key file instead of the password.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key_file: Option<SshKeyFile>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub host_key: Option<SshHostKey>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub default: Option<bool>,
}

impl BackupDestinationSpec {
    /// Why `after` may not replace this destination, if it may not: archives on an SSH host
    /// are reached with the destination's login and pinned key, so while it holds good
    /// backups its host, port and user stay (a new host is a new destination).
    pub fn change_refusal(&self, after: &Self, holds_backups: bool) -> Option<Error> {
        let BackupLocation::Ssh(before) = &self.location else {
            return None;
        };
        let same_host = match &after.location {
            BackupLocation::Ssh(now) => {
                (&now.user, &now.host, now.port) == (&before.user, &before.host, before.port)
            }
            BackupLocation::ServerDirectory(_) => false,
        };
        (holds_backups && !same_host).then(|| Error::DestinationChangeRefused {
            name: self.name.to_string(),
            why: format!(
                "it holds backups on {}@{}:{}, reached with its credentials and pinned key; add \
                 a destination for the new place instead (this one keeps its archives until \
                 retention deletes them)",
                before.user, before.host, before.port
            ),
        })
    }

    pub fn patched(self, patch: BackupDestinationPatch) -> Self {
        let location = patch.location.unwrap_or(self.location);
        // A directory on the servers themselves needs no SSH login: moving there drops it.
        let ssh = location.shared();
        // One way to log in: a new one replaces the other. Those given with a directory stay,
        // for validation to refuse as it does for a new destination.
        let (credentials, key_file) = match (patch.credentials, patch.key_file) {
            (None, None) => (
                self.credentials.filter(|_| ssh),
                self.key_file.filter(|_| ssh),
            ),
            given => given,
        };
        Self {
            name: self.name,
            location,
            credentials,
            key_file,
            host_key: patch.host_key.or(self.host_key.filter(|_| ssh)),
            keep_daily: patch.keep_daily.unwrap_or(self.keep_daily),
            keep_weekly: patch.keep_weekly.unwrap_or(self.keep_weekly),
            default: patch.default.unwrap_or(self.default),
        }
    }
}

fn default_keep_daily() -> u32 {
    7
}

fn default_keep_weekly() -> u32 {
    4
}

impl BackupDestinationSpec {
    /// The most days or weeks a destination keeps: ten years.
    pub const MAX_KEEP: u32 = 520;

    pub fn validated(self) -> Result<Self, Error> {
        // Room for the archive's name below it (a domain and a time), within a path's limit.
        let location = self.location.to_string();
        if location.len() > 1024 {
            return Err(Error::invalid(
                "location",
                &location[..64],
                "at most 1024 characters",
            ));
        }
        for (what, keep) in [
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
        ] {
            if keep > Self::MAX_KEEP {
                return Err(Error::invalid(
                    what,
                    &keep.to_string(),
                    format!("at most {}", Self::MAX_KEEP),
                ));
            }
        }
        let login = self.credentials.is_some() as u8 + self.key_file.is_some() as u8;
        match (&self.location, login, &self.host_key) {
            (BackupLocation::Ssh(_), 1, Some(_))
            | (BackupLocation::ServerDirectory(_), 0, None) => {}
            (BackupLocation::Ssh(_), 2, _) => {
                return Err(Error::invalid(
                    "key_file",
                    "",
                    "one way to log in: credentials (a password) or key_file, not both",
                ));
            }
            (BackupLocation::Ssh(ssh), login, _) => {
                let missing = if login == 0 {
                    "credentials"
                } else {
                    "host_key"
                };
                return Err(Error::invalid(
                    missing,
                    "",
                    format!(
                        "an SSH destination needs credentials (env:NAME or file:/path holding \
                         the password of {}) or key_file (a private key kept on every server), \
                         and host_key (its SHA256:… fingerprint, as \
                         `ssh-keyscan -p {} {} | ssh-keygen -lf -` prints it)",
                        ssh.user, ssh.port, ssh.host
                    ),
                ));
            }
            (BackupLocation::ServerDirectory(_), ..) => {
                return Err(Error::invalid(
                    "credentials",
                    "",
                    "none for a directory on the server itself: credentials, key_file and \
                     host_key are for SSH destinations",
                ));
            }
        }
        if self.keep_daily == 0 && self.keep_weekly == 0 {
            return Err(Error::invalid(
                "keep_daily",
                "0",
                "at least 1 day or 1 week kept, or the newest backup would be deleted",
            ));
        }
        Ok(self)
    }
}

/// A private key file on the servers, by its absolute path: what their `scp` logs in to an
/// SSH host with (`-i`) instead of a password. The path is all drover knows of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshKeyFile(String);

impl SshKeyFile {
    pub fn parse(input: &str) -> Result<Self, Error> {
        plain_path(input)
            .filter(|_| !input.ends_with('/'))
            .map(Self)
            .ok_or_else(|| {
                Error::invalid(
                    "key_file",
                    input,
                    "the absolute path of a private key file on every server, like \
                     /root/.ssh/backup_ed25519 (letters, digits, '.', '-', '_' and '/'; no '..'), \
                     readable by root there, its public half in the SSH user's authorized_keys",
                )
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SshKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SshKeyFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SshKeyFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An SSH host key's SHA-256 fingerprint, as OpenSSH prints it: `SHA256:` and 43 base64
/// characters (no padding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshHostKey(String);

impl SshHostKey {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
        match input.strip_prefix("SHA256:") {
            Some(hash)
                if hash.trim_end_matches('=').len() == 43
                    && hash.trim_end_matches('=').chars().all(b64) =>
            {
                Ok(Self(format!("SHA256:{}", hash.trim_end_matches('='))))
            }
            _ => Err(Error::invalid(
                "host key",
                input,
                "SHA256: and 43 base64 characters, as `ssh-keygen -lf` prints a host key's \
                 fingerprint",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SshHostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SshHostKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SshHostKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// How a backup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// Asked of the server; no answer yet.
    Running,
    Succeeded,
    /// The server's own message is kept.
    Failed,
    /// Deleted by retention; the record stays for the account's history.
    Pruned,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Pruned => "pruned",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        match input {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            "pruned" => Ok(Self::Pruned),
            _ => Err(Error::invalid(
                "backup state",
                input,
                "running, succeeded, failed or pruned",
            )),
        }
    }
}

/// The archive's size from `backup-domain`'s last line: "Backup completed successfully. Final
/// size was 59.21 KiB".
pub fn final_size_bytes(output: &str) -> Option<u64> {
    let rest = output.rsplit("Final size was ").next()?;
    if rest.len() == output.len() {
        return None;
    }
    let mut words = rest.split_whitespace();
    let number: f64 = words.next()?.parse().ok()?;
    // Webmin's `nice_size` labels: binary ones (what backups print), decimal ones otherwise.
    let power = |base: f64, n: i32| base.powi(n);
    let unit = match words.next()?.trim_end_matches('.') {
        "bytes" | "b" | "B" => 1.0,
        "KiB" => power(1024.0, 1),
        "MiB" => power(1024.0, 2),
        "GiB" => power(1024.0, 3),
        "TiB" => power(1024.0, 4),
        "PiB" => power(1024.0, 5),
        "kB" => power(1000.0, 1),
        "MB" => power(1000.0, 2),
        "GB" => power(1000.0, 3),
        "TB" => power(1000.0, 4),
        "PB" => power(1000.0, 5),
        _ => return None,
    };
    // Truncated to two decimals by the server: within a hundredth of its unit.
    (number.is_finite() && number >= 0.0).then(|| (number * unit).round() as u64)
}

/// How much smaller than its source a restored domain may measure and still count as whole:
/// a tenth, or a mebibyte for small ones (block sizes, database pages and logs differ from
/// server to server). Larger is always fine: the target may already hold logs of its own.
const RESTORE_SIZE_TOLERANCE: (u64, u64) = (10, 1024 * 1024);

/// Why a restored domain's `what` (its disk use) falls short of its source's:
/// when both servers measure it and it is smaller by more than [`RESTORE_SIZE_TOLERANCE`].
pub fn size_shortfall(what: &str, source: Option<u64>, restored: Option<u64>) -> Option<String> {
    let (source, restored) = (source?, restored?);
    let (percent, floor) = RESTORE_SIZE_TOLERANCE;
    let allowed = (source / percent).max(floor);
    (restored.saturating_add(allowed) < source)
        .then(|| format!("{what} of {restored} bytes where the source has {source}"))
}

/// A backup's failure as the server said it, with what it most likely means where the words
/// alone leave an operator guessing: SFTP reports a write the host refused only as "Failure".
pub fn explained_failure(message: &str) -> String {
    if message.contains("write remote") && message.contains("Failure") {
        return format!(
            "{message} (the SSH host took no more of the archive: its disk, or its user's \
             quota there, is most likely full)"
        );
    }
    message.to_owned()
}

/// The server's lines that say what went wrong: those from the first error on, without the
/// progress before it (kept short for the record).
pub fn failure_lines(output: &str) -> String {
    const KEPT: usize = 4096;
    // `ssh` and `scp` answer through a terminal: their lines end in carriage returns, and
    // scp redraws its progress meter after them (once a second, for as long as it sends).
    let output: String = output
        .split('\n')
        .map(|line| {
            line.split('\r')
                .filter(|part| !is_progress_meter(part))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| l.contains("Failed") || l.starts_with("Error") || l.contains("failed"))
        .unwrap_or(0);
    let text = lines[start..].join("\n");
    let text = text.trim();
    match text.char_indices().nth(KEPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// scp's progress meter, redrawn on the server's terminal while a file travels: its name, how
/// much (a percentage), how many bytes, how fast (`…/s`), and the time left.
pub fn is_progress_meter(part: &str) -> bool {
    let words: Vec<&str> = part.split_whitespace().collect();
    let percent = words.iter().position(|w| {
        w.strip_suffix('%')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    percent.is_some_and(|at| words[at..].iter().any(|w| w.ends_with("/s")))
}

/// Which of a destination's good backups of one account retention deletes: every one that is
/// neither among the newest per day for the last `keep_daily` days nor the newest per week for
/// the last `keep_weekly` weeks (weeks counted back from `now`). The newest is always kept.
pub fn to_prune<T: Copy + PartialEq>(
    backups: &[(T, Timestamp)],
    keep_daily: u32,
    keep_weekly: u32,
    now: Timestamp,
) -> Vec<T> {
    const DAY: i64 = 86_400;
    let mut newest_first: Vec<(T, Timestamp)> = backups.to_vec();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.1));
    let age_in = |at: Timestamp, period: i64| (now.as_second() - at.as_second()).div_euclid(period);
    let mut kept: Vec<T> = Vec::new();
    let mut days_seen: Vec<i64> = Vec::new();
    let mut weeks_seen: Vec<i64> = Vec::new();
    for (i, (id, at)) in newest_first.iter().enumerate() {
        let day = age_in(*at, DAY);
        let week = age_in(*at, 7 * DAY);
        let mut keep = i == 0;
        if day < i64::from(keep_daily) && !days_seen.contains(&day) {
            days_seen.push(day);
            keep = true;
        }
        if week < i64::from(keep_weekly) && !weeks_seen.contains(&week) {
            weeks_seen.push(week);
            keep = true;
        }
        if keep {
            kept.push(*id);
        }
    }
    newest_first
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !kept.contains(id))
        .collect()
}

/// What an account's backup finds when its turn comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFacts {
    /// The account's service was terminated.
    pub deleted: bool,
    /// Made on its server (the last converge saw it there).
    pub made: bool,
    /// The state of its server, when it has one to be on (a pending service's has none).
    pub server: Option<crate::ServerState>,
    pub login_refused: bool,
    /// A move is under way: its content is between servers.
    pub moving: bool,
}

/// Why the account cannot be backed up now, if it cannot: nothing to back up, or a server that
/// takes no work. A draining server still backs up (its accounts' content is about to move).
pub fn backup_refusal(facts: &BackupFacts) -> Option<String> {
    use crate::ServerState::*;
    if facts.deleted {
        return Some("the account is deleted".into());
    }
    let Some(state) = facts.server else {
        return Some("the account is on no server yet".into());
    };
    if !facts.made {
        return Some("the account is not made on its server yet".into());
    }
    if facts.moving {
        return Some("the account is moving between servers".into());
    }
    match state {
        Maintenance => Some("its server is in maintenance".into()),
        Unavailable | Decommissioned => Some(format!("its server is {state}")),
        _ if facts.login_refused => Some("its server refuses drover's login".into()),
        _ => None,
    }
}

/// What a restore of an account from one of its backups finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFacts {
    /// The account's service was terminated.
    pub deleted: bool,
    /// The account's server.
    pub server: Option<crate::ServerId>,
    /// The backup is the account's own.
    pub backup_of_account: bool,
    pub backup_state: BackupState,
    /// The server that wrote the archive.
    pub backup_server: Option<crate::ServerId>,
    /// The archive is where every server reads it (an SSH host), not on its writer's disk.
    pub backup_shared: bool,
    pub moving: bool,
    /// The account's server's state, and whether it refuses drover's login.
    pub server_state: Option<crate::ServerState>,
    pub login_refused: bool,
}

/// Why the account cannot be restored from the backup, if it cannot: a backup that is not a
/// good one of its own, an account gone or moving, or an archive on another server's disk.
pub fn restore_refusal(facts: &RestoreFacts) -> Option<String> {
    if !facts.backup_of_account {
        return Some("the backup is another account's".into());
    }
    match facts.backup_state {
        BackupState::Succeeded => {}
        BackupState::Pruned => return Some("the backup's archive was deleted by retention".into()),
        BackupState::Failed => return Some("the backup failed: it holds nothing".into()),
        BackupState::Running => return Some("the backup has not finished".into()),
    }
    if facts.deleted {
        return Some("the account is deleted".into());
    }
    let Some(server) = facts.server else {
        return Some("the account is on no server".into());
    };
    if facts.moving {
        return Some("the account is moving between servers".into());
    }
    if !facts.backup_shared && facts.backup_server != Some(server) {
        return Some(
            "the archive is on the disk of the server that wrote it, not the account's server"
                .into(),
        );
    }
    use crate::ServerState::*;
    match facts.server_state {
        Some(Maintenance) => Some("its server is in maintenance".into()),
        Some(state @ (Unavailable | Decommissioned)) => Some(format!("its server is {state}")),
        _ if facts.login_refused => Some("its server refuses drover's login".into()),
        _ => None,
    }
}

/// Since when an account must have a good backup not to be overdue: twice the schedule's
/// interval (one missed run is retried at the next; two are an alert). An account created
/// since then is not overdue either.
pub fn overdue_before(every: SignedDuration, now: Timestamp) -> Timestamp {
    now - every * 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn scps_progress_meter_is_no_part_of_a_failures_lines() {
        let meter = "2823-x.tar.gz   70%  255KB  97.0MB/s   00:00 ETA";
        let output = format!(
            "Uploading archive to SSH server 127.0.0.1 ..\n.. upload failed : {}\r\n\
             scp: write remote \"/srv/x.tar.gz\": Failure\r\r\n",
            format!("\r{meter}").repeat(500)
        );
        assert_eq!(
            failure_lines(&output),
            ".. upload failed :\nscp: write remote \"/srv/x.tar.gz\": Failure"
        );
        assert!(is_progress_meter(meter));
        assert!(!is_progress_meter(
            "scp: write remote \"/srv/x.tar.gz\": Failure"
        ));
    }

    #[test]
    fn a_refused_write_on_an_ssh_host_is_explained() {
        let full = "upload failed : scp: write remote \"/srv/a.tar.gz\": Failure";
        assert!(explained_failure(full).ends_with("is most likely full)"));
        let other = "upload failed : scp: dest open \"/srv/a.tar.gz\": No such file or directory";
        assert_eq!(explained_failure(other), other);
    }

    #[test]
    fn a_restore_counts_as_whole_within_a_tenth_or_a_mebibyte() {
        const MIB: u64 = 1024 * 1024;
        // Unmeasured on the source: nothing to compare.
        assert_eq!(size_shortfall("disk use", None, Some(0)), None);
        // Small domains: a mebibyte of slack.
        assert_eq!(size_shortfall("disk use", Some(MIB), Some(0)), None);
        assert!(size_shortfall("disk use", Some(MIB + 1), Some(0)).is_some());
        // Large ones: a tenth.
        assert_eq!(
            size_shortfall("disk use", Some(100 * MIB), Some(90 * MIB)),
            None
        );
        let short = size_shortfall("disk use", Some(100 * MIB), Some(90 * MIB - 1)).unwrap();
        assert_eq!(
            short,
            format!(
                "disk use of {} bytes where the source has {}",
                90 * MIB - 1,
                100 * MIB
            )
        );
        // Not measured by the target (quotas off there): nothing to compare.
        assert_eq!(size_shortfall("disk use", Some(5 * MIB), None), None);
        // Larger is fine.
        assert_eq!(size_shortfall("disk use", Some(MIB), Some(u64::MAX)), None);
    }

    #[test]
    fn a_location_is_an_absolute_directory_without_surprises() {
        let ok = BackupLocation::parse("/var/backups/drover/").unwrap();
        assert_eq!(ok.to_string(), "/var/backups/drover");
        for bad in [
            "var/backups",
            "/",
            "/var/../etc",
            "/var/back ups",
            "/var/$(reboot)",
            "/var//x",
            "",
        ] {
            let err = BackupLocation::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("an absolute directory on the server"),
                "{bad}: {err}"
            );
        }
        let err = BackupLocation::parse("ftp://u:p@h/b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other remote destinations are not supported"),
            "{err}"
        );
    }

    #[test]
    fn an_ssh_location_names_user_host_port_and_directory_never_a_password() {
        for (input, shown, port) in [
            (
                "ssh://backup@vault.example.net:/srv/backups/",
                "ssh://backup@vault.example.net:/srv/backups",
                22,
            ),
            (
                "ssh://backup@vault.example.net/srv/backups",
                "ssh://backup@vault.example.net:/srv/backups",
                22,
            ),
            (
                "ssh://backup@127.0.0.1:2222:/srv/b",
                "ssh://backup@127.0.0.1:2222:/srv/b",
                2222,
            ),
            (
                "ssh://backup@127.0.0.1:2222/srv/b",
                "ssh://backup@127.0.0.1:2222:/srv/b",
                2222,
            ),
            (
                "ssh://backup@[::1]:2222:/srv/b",
                "ssh://backup@[::1]:2222:/srv/b",
                2222,
            ),
        ] {
            let location = BackupLocation::parse(input).unwrap();
            assert_eq!(location.to_string(), shown);
            assert_eq!(BackupLocation::parse(shown).unwrap(), location);
            let BackupLocation::Ssh(ssh) = &location else {
                panic!("{input} is not an SSH location");
            };
            assert_eq!((ssh.user.as_str(), ssh.port), ("backup", port));
            assert!(location.shared());
        }
        for (bad, says) in [
            (
                "ssh://backup:hunter2@vault.example.net:/srv",
                "never in its location",
            ),
            (
                "ssh://backup:hun@ter2@vault.example.net:/srv",
                "never in its location",
            ),
            (
                "SSH://backup:hunter2@vault.example.net:/srv",
                "never in its location",
            ),
            (
                "ftp://backup:hunter2@vault.example.net/srv",
                "not supported",
            ),
            ("ssh://backup:hunter2", "the user is missing"),
            ("ssh://vault.example.net:/srv", "the user is missing"),
            ("ssh://Backup@vault.example.net:/srv", "is not a user name"),
            ("ssh://backup@vault.example.net:99999:/srv", "is not a port"),
            ("ssh://backup@vault.example.net:srv", "must be absolute"),
            (
                "ssh://backup@vault.example.net:/srv/../etc",
                "must be absolute",
            ),
            ("ssh://backup@vault example.net:/srv", "hostname"),
        ] {
            let err = BackupLocation::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn an_ssh_destination_needs_its_password_source_and_pinned_key() {
        let with_key =
            |location: &str, login: (Option<&str>, Option<&str>), host_key: Option<&str>| {
                BackupDestinationSpec {
                    name: ServerName::parse("vault").unwrap(),
                    location: BackupLocation::parse(location).unwrap(),
                    credentials: login.0.map(|c| crate::CredentialRef::parse(c).unwrap()),
                    key_file: login.1.map(|k| SshKeyFile::parse(k).unwrap()),
                    host_key: host_key.map(|k| SshHostKey::parse(k).unwrap()),
                    keep_daily: 7,
                    keep_weekly: 4,
                    default: false,
                }
                .validated()
            };
        let spec = |location: &str, credentials: Option<&str>, host_key: Option<&str>| {
            with_key(location, (credentials, None), host_key)
        };
        let key = "SHA256:D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU";
        assert!(
            spec(
                "ssh://b@vault:/srv",
                Some("env:DROVER_SECRET_VAULT"),
                Some(key)
            )
            .is_ok()
        );
        let err = spec("ssh://b@vault:/srv", None, Some(key))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("credentials") && err.contains("password of b"),
            "{err}"
        );
        let err = spec("ssh://b@vault:/srv", Some("env:DROVER_SECRET_VAULT"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host_key") && err.contains("ssh-keyscan -p 22 vault"),
            "{err}"
        );
        let err = spec("/srv", Some("env:DROVER_SECRET_VAULT"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("for SSH destinations"), "{err}");
        // A key file on the servers instead of a password; not both, not on a directory.
        let file = Some("/root/.ssh/backup_ed25519");
        assert!(with_key("ssh://b@vault:/srv", (None, file), Some(key)).is_ok());
        let err = with_key(
            "ssh://b@vault:/srv",
            (Some("env:DROVER_SECRET_VAULT"), file),
            Some(key),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
        let err = with_key("/srv", (None, file), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key_file"), "{err}");
        for bad in [
            "root/.ssh/k",
            "/root/.ssh/",
            "/root/my key",
            "/a|b",
            "/a:b",
            "/../k",
        ] {
            let err = SshKeyFile::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("a private key file on every server"),
                "{bad}: {err}"
            );
        }
        assert_eq!(SshHostKey::parse(&format!("{key}=")).unwrap().as_str(), key);
        for bad in [
            "D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU",
            "SHA256:short",
            "MD5:aa:bb",
        ] {
            assert!(SshHostKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_ssh_destination_holding_backups_keeps_its_host_and_login() {
        let key = SshHostKey::parse("SHA256:D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU").unwrap();
        let vault = BackupDestinationSpec {
            name: ServerName::parse("vault").unwrap(),
            location: BackupLocation::parse("ssh://b@vault:/srv").unwrap(),
            credentials: Some(crate::CredentialRef::parse("env:DROVER_SECRET_V").unwrap()),
            key_file: None,
            host_key: Some(key),
            keep_daily: 7,
            keep_weekly: 4,
            default: true,
        };
        let moved = |location: &str| {
            vault.clone().patched(BackupDestinationPatch {
                location: Some(BackupLocation::parse(location).unwrap()),
                ..BackupDestinationPatch::default()
            })
        };
        // Another directory on the same host and login: fine, with backups or without.
        assert!(
            vault
                .change_refusal(&moved("ssh://b@vault:/srv/new"), true)
                .is_none()
        );
        for elsewhere in [
            "ssh://b@other:/srv",
            "ssh://b@vault:2222:/srv",
            "ssh://c@vault:/srv",
        ] {
            let err = vault
                .change_refusal(&moved(elsewhere), true)
                .unwrap()
                .to_string();
            assert!(err.contains("add a destination for the new place"), "{err}");
            assert!(vault.change_refusal(&moved(elsewhere), false).is_none());
        }
        // Back to the servers' own disks: the SSH login goes with the move.
        let local = moved("/var/backups");
        assert_eq!(
            (local.credentials.clone(), local.host_key.clone()),
            (None, None)
        );
        assert!(local.clone().validated().is_ok());
        assert!(vault.change_refusal(&local, true).is_some());
        // A key file replaces the password, and the password the key file.
        let keyed = vault.clone().patched(BackupDestinationPatch {
            key_file: Some(SshKeyFile::parse("/root/.ssh/k").unwrap()),
            ..BackupDestinationPatch::default()
        });
        assert_eq!(keyed.credentials, None);
        assert!(keyed.clone().validated().is_ok());
        assert!(vault.change_refusal(&keyed, true).is_none());
        let back = keyed.patched(BackupDestinationPatch {
            credentials: vault.credentials.clone(),
            ..BackupDestinationPatch::default()
        });
        assert_eq!((back.credentials.is_some(), back.key_file), (true, None));
        // A key file given to a directory destination is refused, as when it is made.
        let err = local
            .patched(BackupDestinationPatch {
                key_file: Some(SshKeyFile::parse("/root/.ssh/k").unwrap()),
                ..BackupDestinationPatch::default()
            })
            .validated()
            .unwrap_err()
            .to_string();
        assert!(err.contains("for SSH destinations"), "{err}");
    }

    #[test]
    fn an_archive_is_named_by_domain_and_utc_time() {
        let location = BackupLocation::parse("/var/backups/drover").unwrap();
        let domain = DomainName::parse("știri.ro").unwrap();
        let at: Timestamp = "2026-12-06T09:05:07.04Z".parse().unwrap();
        assert_eq!(
            location.archive(&domain, at).to_string(),
            "/var/backups/drover/xn--tiri-pxb.ro/xn--tiri-pxb.ro-20261206-090507.040.tar.gz"
        );
        // No directory per domain on an SSH host: the server makes none there.
        let vault = BackupLocation::parse("ssh://b@vault:2222:/srv").unwrap();
        assert_eq!(
            vault.archive(&domain, at).to_string(),
            "ssh://b@vault:2222:/srv/xn--tiri-pxb.ro-20261206-090507.040.tar.gz"
        );
    }

    #[test]
    fn the_final_size_is_read_from_the_servers_last_line() {
        let output = "Creating final backup archive ..\n.. done\n\n1 virtual servers backed up \
                      successfully\nBackup completed successfully. Final size was 59.21 KiB\n\n";
        assert_eq!(final_size_bytes(output), Some(60_631));
        assert_eq!(
            final_size_bytes("Final size was 1.5 GiB"),
            Some(1_610_612_736)
        );
        assert_eq!(final_size_bytes("Final size was 812 bytes"), Some(812));
        assert_eq!(final_size_bytes("Final size was 2 MB."), Some(2_000_000));
        assert_eq!(final_size_bytes("Backup completed successfully."), None);
        assert_eq!(final_size_bytes("Final size was lots"), None);
    }

    #[test]
    fn failure_lines_start_at_the_first_error() {
        let output = "Starting backup..\n    Copying virtual server configuration ..\n    .. done\n\n\
                      [03/Dec/2026:08:24:31 +0000] [127.0.0.1] Failed to open /x/a.tar.gz for writing \
                      : No such file or directory\nError\n-----\n";
        assert_eq!(
            failure_lines(output),
            "[03/Dec/2026:08:24:31 +0000] [127.0.0.1] Failed to open /x/a.tar.gz for writing : \
             No such file or directory\nError\n-----"
        );
    }

    #[test]
    fn retention_keeps_one_a_day_and_one_a_week() {
        const DAY: i64 = 86_400;
        let now = at(100 * DAY);
        // Two a day for twenty days, newest first: 40 backups.
        let backups: Vec<(u32, Timestamp)> = (0..40)
            .map(|i| (i, at(100 * DAY - i64::from(i) * DAY / 2 - 60)))
            .collect();
        let pruned = to_prune(&backups, 3, 2, now);
        let kept: Vec<u32> = (0..40).filter(|i| !pruned.contains(i)).collect();
        // The newest of each of days 0, 1, 2, and of week 1 (days 7..13): the newest there.
        assert_eq!(kept, [0, 2, 4, 14]);
        assert_eq!(to_prune(&backups[..1], 0, 0, now), Vec::<u32>::new());
    }

    #[test]
    fn a_backup_needs_an_account_made_on_a_server_taking_work() {
        use crate::ServerState;
        let ready = BackupFacts {
            deleted: false,
            made: true,
            server: Some(ServerState::Draining),
            login_refused: false,
            moving: false,
        };
        assert_eq!(backup_refusal(&ready), None);
        for (facts, why) in [
            (
                BackupFacts {
                    deleted: true,
                    ..ready.clone()
                },
                "the account is deleted",
            ),
            (
                BackupFacts {
                    server: None,
                    ..ready.clone()
                },
                "the account is on no server yet",
            ),
            (
                BackupFacts {
                    made: false,
                    ..ready.clone()
                },
                "the account is not made on its server yet",
            ),
            (
                BackupFacts {
                    moving: true,
                    ..ready.clone()
                },
                "the account is moving between servers",
            ),
            (
                BackupFacts {
                    server: Some(ServerState::Maintenance),
                    ..ready.clone()
                },
                "its server is in maintenance",
            ),
            (
                BackupFacts {
                    login_refused: true,
                    ..ready.clone()
                },
                "its server refuses drover's login",
            ),
        ] {
            assert_eq!(backup_refusal(&facts).as_deref(), Some(why));
        }
    }

    #[test]
    fn a_restore_needs_a_good_backup_of_the_account_on_its_own_server() {
        use crate::ServerId;
        let ready = RestoreFacts {
            deleted: false,
            server: Some(ServerId(1)),
            backup_of_account: true,
            backup_state: BackupState::Succeeded,
            backup_server: Some(ServerId(1)),
            backup_shared: false,
            moving: false,
            server_state: Some(crate::ServerState::Draining),
            login_refused: false,
        };
        assert_eq!(restore_refusal(&ready), None);
        assert_eq!(
            restore_refusal(&RestoreFacts {
                server_state: Some(crate::ServerState::Maintenance),
                ..ready.clone()
            })
            .as_deref(),
            Some("its server is in maintenance")
        );
        assert_eq!(
            restore_refusal(&RestoreFacts {
                login_refused: true,
                ..ready.clone()
            })
            .as_deref(),
            Some("its server refuses drover's login")
        );
        let refused = |facts: RestoreFacts| restore_refusal(&facts).unwrap();
        assert_eq!(
            refused(RestoreFacts {
                backup_of_account: false,
                ..ready.clone()
            }),
            "the backup is another account's"
        );
        assert_eq!(
            refused(RestoreFacts {
                backup_state: BackupState::Pruned,
                ..ready.clone()
            }),
            "the backup's archive was deleted by retention"
        );
        assert_eq!(
            refused(RestoreFacts {
                backup_state: BackupState::Failed,
                ..ready.clone()
            }),
            "the backup failed: it holds nothing"
        );
        assert_eq!(
            refused(RestoreFacts {
                deleted: true,
                ..ready.clone()
            }),
            "the account is deleted"
        );
        assert_eq!(
            refused(RestoreFacts {
                moving: true,
                ..ready.clone()
            }),
            "the account is moving between servers"
        );
        assert!(
            refused(RestoreFacts {
                backup_server: Some(ServerId(2)),
                ..ready.clone()
            })
            .starts_with("the archive is on the disk of the server that wrote it")
        );
        // An archive on an SSH host is read by any server.
        assert_eq!(
            restore_refusal(&RestoreFacts {
                backup_server: Some(ServerId(2)),
                backup_shared: true,
                ..ready.clone()
            }),
            None
        );
    }

    #[test]
    fn an_account_is_overdue_after_two_missed_runs() {
        let day = SignedDuration::from_hours(24);
        assert_eq!(overdue_before(day, at(3 * 86_400)), at(86_400));
    }

    proptest! {
        #[test]
        fn retention_never_deletes_the_newest_nor_more_than_it_was_given(
            ages in proptest::collection::vec(0i64..90 * 86_400, 1..60),
            keep_daily in 0u32..10,
            keep_weekly in 0u32..6,
        ) {
            let now = at(100 * 86_400);
            let backups: Vec<(usize, Timestamp)> =
                ages.iter().enumerate().map(|(i, age)| (i, at(100 * 86_400 - age))).collect();
            let pruned = to_prune(&backups, keep_daily, keep_weekly, now);
            let newest = backups.iter().map(|b| b.1).max().unwrap();
            prop_assert!(backups.iter().any(|b| b.1 == newest && !pruned.contains(&b.0)));
            let kept = backups.len() - pruned.len();
            prop_assert!(kept >= 1);
            prop_assert!(kept <= 1 + keep_daily as usize + keep_weekly as usize);
        }
    }
}
