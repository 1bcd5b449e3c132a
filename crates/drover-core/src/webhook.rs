//! Events drover sends to billing and monitoring: which there are, where they may go, and
//! when a failing receiver is tried again or given up on.

use std::time::Duration;

use crate::Error;

/// What happened. Each has a stable name (`account.suspended`) and a stable payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// The account exists on its server for the first time.
    AccountProvisioned,
    /// The server disabled the account (billing suspended the service).
    AccountSuspended,
    /// The server enabled the suspended account again.
    AccountUnsuspended,
    /// The account is gone from its server.
    AccountDeleted,
    /// The account's job gave up: it does not match its record (the reason says why).
    AccountFailed,
    /// A terminated account is protected from deletion: drover keeps it until an operator
    /// lifts the protection.
    AccountProtectedDeletionHeld,
    /// A mailbox, database, alias domain or sub-server was recorded for the account or
    /// removed from it (its converge job carries the change to the server).
    AccountResourceChanged,
    /// A server moved between healthy, degraded, unavailable, maintenance, draining and
    /// decommissioned.
    ServerStateChanged,
    /// A lost server's accounts are being recreated elsewhere.
    ServerFailoverStarted,
    /// The last of them is recreated: with the time since the server was found unavailable.
    ServerFailoverComplete,
    /// A drift scan found the server differing from drover's records.
    DriftFound,
    /// A server's usage figures were refreshed (read them at `/api/v1/usage?server_id=`).
    UsageUpdated,
    /// A backup of an account failed.
    BackupFailed,
}

impl EventType {
    pub const ALL: [Self; 13] = [
        Self::AccountProvisioned,
        Self::AccountSuspended,
        Self::AccountUnsuspended,
        Self::AccountDeleted,
        Self::AccountFailed,
        Self::AccountProtectedDeletionHeld,
        Self::AccountResourceChanged,
        Self::ServerStateChanged,
        Self::ServerFailoverStarted,
        Self::ServerFailoverComplete,
        Self::DriftFound,
        Self::UsageUpdated,
        Self::BackupFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountProvisioned => "account.provisioned",
            Self::AccountSuspended => "account.suspended",
            Self::AccountUnsuspended => "account.unsuspended",
            Self::AccountDeleted => "account.deleted",
            Self::AccountFailed => "account.failed",
            Self::AccountProtectedDeletionHeld => "account.protected_deletion_held",
            Self::AccountResourceChanged => "account.resource_changed",
            Self::ServerStateChanged => "server.state_changed",
            Self::ServerFailoverStarted => "server.failover_started",
            Self::ServerFailoverComplete => "server.failover_complete",
            Self::DriftFound => "drift.found",
            Self::UsageUpdated => "usage.updated",
            Self::BackupFailed => "backup.failed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == input)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                Error::invalid("event type", input, format!("one of {}", names.join(", ")))
            })
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The events an account's move on its server makes, from the state drover last saw there
/// (`None`: never seen) to the one it sees now (`enabled`, `disabled` or `absent`).
pub fn account_state_events(before: Option<&str>, now: &str) -> Vec<EventType> {
    let existed = matches!(before, Some("enabled" | "disabled"));
    match (before, now) {
        (Some(b), n) if b == n => Vec::new(),
        (_, "enabled") if existed => vec![EventType::AccountUnsuspended],
        (_, "enabled") => vec![EventType::AccountProvisioned],
        (_, "disabled") if existed => vec![EventType::AccountSuspended],
        // Created suspended: it exists, and it is suspended.
        (_, "disabled") => vec![EventType::AccountProvisioned, EventType::AccountSuspended],
        (_, "absent") if existed => vec![EventType::AccountDeleted],
        _ => Vec::new(),
    }
}

/// Where events may be sent: `https://` anywhere, `http://` only to this machine (a
/// receiver beside drover) and only where an operator allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(input: &str, allow_http_loopback: bool) -> Result<Self, Error> {
        let refuse = |expected: &str| Error::invalid("webhook URL", input, expected);
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| refuse("an https:// URL"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(refuse("a URL without user or password in it"));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("an https:// URL with a host and no spaces"));
        }
        match scheme {
            "https" => {}
            "http" if !is_loopback(host) => {
                return Err(refuse(
                    "https://; http:// is accepted only for this machine (localhost, 127.0.0.1, [::1])",
                ));
            }
            "http" if !allow_http_loopback => {
                return Err(refuse(
                    "https://; an http:// URL to this machine needs allow_http set by an operator",
                ));
            }
            "http" => {}
            _ => return Err(refuse("an https:// URL")),
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long a failing delivery waits before its next try: 1 s, 2 s, 4 s, … up to `cap`.
pub fn delivery_retry_delay(failed_attempts: u32, cap: Duration) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(20);
    Duration::from_secs(1 << exponent).min(cap)
}

/// An endpoint failing since `failing_since` is paused once it has failed for `after`.
pub fn should_pause_endpoint(
    failing_since: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    after: Duration,
) -> bool {
    failing_since.is_some_and(|since| now.duration_since(since).as_secs() >= after.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_keep_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
        }
        let refused = EventType::parse("account.exploded")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("account.suspended"), "{refused}");
    }

    #[test]
    fn an_accounts_moves_on_its_server_are_its_events() {
        use EventType::*;
        let cases: [(Option<&str>, &str, &[EventType]); 9] = [
            (None, "enabled", &[AccountProvisioned]),
            (Some("absent"), "enabled", &[AccountProvisioned]),
            (Some("enabled"), "disabled", &[AccountSuspended]),
            (Some("disabled"), "enabled", &[AccountUnsuspended]),
            (None, "disabled", &[AccountProvisioned, AccountSuspended]),
            (Some("enabled"), "absent", &[AccountDeleted]),
            (Some("disabled"), "absent", &[AccountDeleted]),
            (Some("enabled"), "enabled", &[]),
            (None, "absent", &[]),
        ];
        for (before, now, events) in cases {
            assert_eq!(
                account_state_events(before, now),
                events,
                "{before:?} → {now}"
            );
        }
    }

    #[test]
    fn webhooks_go_over_https_or_to_this_machine_when_allowed() {
        for ok in [
            "https://billing.example/hooks",
            "https://[2001:db8::1]:8443/x",
        ] {
            assert!(WebhookUrl::parse(ok, false).is_ok(), "{ok}");
        }
        for ok in [
            "http://127.0.0.1:9000/in",
            "http://localhost/in",
            "http://[::1]:80/",
        ] {
            assert!(WebhookUrl::parse(ok, true).is_ok(), "{ok}");
            let refused = WebhookUrl::parse(ok, false).unwrap_err().to_string();
            assert!(refused.contains("allow_http"), "{refused}");
        }
        for bad in [
            "http://billing.example/hooks",
            "ftp://billing.example/",
            "billing.example/hooks",
            "https://user:pw@billing.example/",
            "https:///nohost",
            "https://bill ing.example/",
        ] {
            assert!(WebhookUrl::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn failing_deliveries_back_off_to_a_cap_and_a_day_of_failure_pauses() {
        let cap = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=11)
            .map(|n| delivery_retry_delay(n, cap).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        let now: jiff::Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let day = Duration::from_secs(86_400);
        assert!(!should_pause_endpoint(None, now, day));
        let since: jiff::Timestamp = "2026-12-06T12:00:01Z".parse().unwrap();
        assert!(!should_pause_endpoint(Some(since), now, day));
        let since: jiff::Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        assert!(should_pause_endpoint(Some(since), now, day));
    }
}
