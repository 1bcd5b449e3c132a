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
}

impl BackupLocation {
    /// Accepts an absolute directory on the server: `/var/backups/drover`. Nothing the
    /// server's programs would read as more than a path (no `..`, spaces, quotes, control
    /// characters or shell syntax).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let expected = "an absolute directory on the server, like /var/backups/drover (letters, \
                        digits, '.', '-', '_' and '/'; no '..')";
        if input.contains("://") {
            return Err(Error::invalid(
                "backup location",
                input,
                format!("{expected}; remote destinations are not supported yet"),
            ));
        }
        let path = input.trim_end_matches('/');
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
        let ok = input.starts_with('/')
            && !path.is_empty()
            && path.len() <= 1024
            && path.chars().all(safe)
            && !path.contains("//")
            && path.split('/').all(|part| part != ".." && part != ".");
        if ok {
            Ok(Self::ServerDirectory(path.to_owned()))
        } else {
            Err(Error::invalid("backup location", input, expected))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::ServerDirectory(path) => path,
        }
    }

    /// Where the account's archive taken at `at` goes: one directory per domain, one file per
    /// backup, named by its UTC time to the millisecond so that names sort by age and two
    /// backups of an account (one at a time) never share one.
    pub fn archive(&self, domain: &DomainName, at: Timestamp) -> String {
        let stamp = at.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S%.3f");
        format!("{}/{domain}/{domain}-{stamp}.tar.gz", self.as_str())
    }
}

impl fmt::Display for BackupLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for BackupLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    /// An absolute directory on each account's own server.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "/var/backups/drover"))]
    pub location: BackupLocation,
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
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub default: Option<bool>,
}

impl BackupDestinationSpec {
    pub fn patched(self, patch: BackupDestinationPatch) -> Self {
        Self {
            name: self.name,
            location: patch.location.unwrap_or(self.location),
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

/// The server's lines that say what went wrong: those from the first error on, without the
/// progress before it (kept short for the record).
pub fn failure_lines(output: &str) -> String {
    const KEPT: usize = 4096;
    let lines: Vec<&str> = output.lines().collect();
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
    /// The server that wrote the archive (on its own disk).
    pub backup_server: Option<crate::ServerId>,
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
    if facts.backup_server != Some(server) {
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
    fn a_location_is_an_absolute_directory_without_surprises() {
        let ok = BackupLocation::parse("/var/backups/drover/").unwrap();
        assert_eq!(ok.as_str(), "/var/backups/drover");
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
        let err = BackupLocation::parse("ssh://u@h:/b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("remote destinations are not supported yet"),
            "{err}"
        );
    }

    #[test]
    fn an_archive_is_named_by_domain_and_utc_time() {
        let location = BackupLocation::parse("/var/backups/drover").unwrap();
        let domain = DomainName::parse("știri.ro").unwrap();
        let at: Timestamp = "2026-12-06T09:05:07.04Z".parse().unwrap();
        assert_eq!(
            location.archive(&domain, at),
            "/var/backups/drover/xn--tiri-pxb.ro/xn--tiri-pxb.ro-20261206-090507.040.tar.gz"
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
