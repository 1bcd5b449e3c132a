//! Let's Encrypt certificates for an account's names: when drover may ask (the account's DNS
//! points at its server, and never a sixth failed validation within an hour), and how long it
//! waits after a failure.
//!
//! Let's Encrypt allows 5 failed validations per account, name and hour; past that it refuses
//! the name for a while. Virtualmin asks with one ACME account per server and drover asks for
//! an account's names only, so counting an account's failures counts its names'.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{DomainName, OwnerName, RecordType, RrSet};

/// Let's Encrypt's limit on failed validations per account, name and hour.
pub const FAILED_VALIDATIONS_PER_HOUR: usize = 5;
/// The wait after a first failure; it doubles with each failure after it.
pub const FIRST_RETRY: SignedDuration = SignedDuration::from_mins(5);
/// The longest wait: a name that keeps failing is tried once a day, as Virtualmin's own
/// renewals slow down to.
pub const LONGEST_RETRY: SignedDuration = SignedDuration::from_hours(24);
const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// Where an account's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CertificateState {
    /// Asked for; waiting for the account's DNS to point at its server, or for its turn.
    Requested,
    /// Issued and installed by the account's server, which renews it.
    Issued,
    /// The last request failed (the server's message is kept); tried again after a wait.
    Failed,
}

impl CertificateState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Issued => "issued",
            Self::Failed => "failed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, crate::Error> {
        match input {
            "requested" => Ok(Self::Requested),
            "issued" => Ok(Self::Issued),
            "failed" => Ok(Self::Failed),
            _ => Err(crate::Error::invalid(
                "certificate state",
                input,
                "requested, issued or failed",
            )),
        }
    }
}

impl std::fmt::Display for CertificateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The earliest time another request may be made, given the failures since the last success
/// (oldest first), whoever asks: the one that would be the sixth failure within an hour waits
/// until the oldest of the last five is an hour old.
pub fn earliest_attempt(failures: &[Timestamp], now: Timestamp) -> Timestamp {
    match failures.len().checked_sub(FAILED_VALIDATIONS_PER_HOUR) {
        Some(fifth_last) => now.max(failures[fifth_last] + HOUR),
        None => now,
    }
}

/// When drover tries again on its own after the failures since the last success (oldest
/// first): 5 minutes after the first, doubling to at most a day, and never before
/// [`earliest_attempt`] allows.
pub fn next_attempt(failures: &[Timestamp], now: Timestamp) -> Timestamp {
    let Some(last) = failures.last() else {
        return now;
    };
    let doublings = u32::try_from(failures.len() - 1)
        .unwrap_or(u32::MAX)
        .min(16);
    let wait = FIRST_RETRY
        .checked_mul(1 << doublings)
        .unwrap_or(LONGEST_RETRY)
        .min(LONGEST_RETRY);
    earliest_attempt(failures, now).max(*last + wait)
}

/// Whether the zone sends the account's web names (the domain and `www`) to the server: each
/// has an address record, and every address record of theirs is one of the server's
/// addresses. Let's Encrypt validates over the web at those names.
pub fn dns_points_at(rrsets: &[RrSet], domain: &DomainName, addresses: &[IpAddr]) -> bool {
    let Ok(www) = OwnerName::parse("www", domain) else {
        return false;
    };
    [OwnerName::apex(domain), www].iter().all(|owner| {
        let records: Vec<&String> = rrsets
            .iter()
            .filter(|r| &r.name == owner && matches!(r.rtype, RecordType::A | RecordType::Aaaa))
            .flat_map(|r| &r.records)
            .collect();
        !records.is_empty()
            && records
                .iter()
                .all(|r| r.parse::<IpAddr>().is_ok_and(|ip| addresses.contains(&ip)))
    })
}

/// The longest look ahead at expiries: ten years.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// The moment `days` days after `now`, for "expiring within": at most [`MAX_EXPIRY_DAYS`].
pub fn expiring_within(now: Timestamp, days: u32) -> Result<Timestamp, crate::Error> {
    if days > MAX_EXPIRY_DAYS {
        return Err(crate::Error::invalid(
            "number of days",
            &days.to_string(),
            format!("0 to {MAX_EXPIRY_DAYS}"),
        ));
    }
    Ok(now + SignedDuration::from_hours(24 * i64::from(days)))
}

/// Days until `expires_at`, rounded down (negative once expired).
pub fn days_left(expires_at: Timestamp, now: Timestamp) -> i64 {
    expires_at.duration_since(now).as_secs().div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    fn minutes(t: Timestamp) -> i64 {
        (t.as_second() - 1_800_000_000) / 60
    }

    #[test]
    fn the_wait_doubles_from_five_minutes_to_a_day() {
        let mut failures = Vec::new();
        let mut waits = Vec::new();
        let mut now = at(0);
        for _ in 0..12 {
            failures.push(now);
            let next = next_attempt(&failures, now);
            waits.push(minutes(next) - minutes(now));
            now = next;
        }
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440, 1440]
        );
    }

    #[test]
    fn a_sixth_failure_within_the_hour_is_not_risked() {
        // An operator tried five times in ten minutes.
        let failures: Vec<_> = [0, 2, 4, 6, 8].map(at).into();
        assert_eq!(earliest_attempt(&failures, at(10)), at(60));
        assert_eq!(next_attempt(&failures, at(10)), at(60).max(at(8 + 80)));
        // Four within the hour leave room for one more now.
        assert_eq!(earliest_attempt(&failures[1..], at(10)), at(10));
        // Once the oldest of the five is an hour old, the limit no longer holds anything.
        assert_eq!(earliest_attempt(&failures, at(61)), at(61));
    }

    #[test]
    fn nothing_failed_means_now() {
        assert_eq!(next_attempt(&[], at(3)), at(3));
        assert_eq!(earliest_attempt(&[], at(3)), at(3));
    }

    proptest! {
        /// Whoever asks when (drover after its waits, an operator whenever the limit allows),
        /// no hour ever holds more than five failed validations.
        #[test]
        fn no_hour_holds_more_than_five_failures(
            asks in proptest::collection::vec((any::<bool>(), 0i64..90), 1..40)
        ) {
            let mut failures: Vec<Timestamp> = Vec::new();
            let mut now = at(0);
            for (operator, pause) in asks {
                now = if operator {
                    earliest_attempt(&failures, now + SignedDuration::from_mins(pause))
                } else {
                    next_attempt(&failures, now)
                };
                failures.push(now);
            }
            for (i, start) in failures.iter().enumerate() {
                let within = failures[i..].iter().filter(|f| **f < *start + HOUR).count();
                prop_assert!(within <= FAILED_VALIDATIONS_PER_HOUR, "{within} failures within an hour of {start}");
            }
        }
    }

    #[test]
    fn dns_points_at_the_server_only_when_every_web_name_does() {
        let domain = DomainName::parse("ana.ro").unwrap();
        let rr = |name: &str, rtype, ip: &str| {
            RrSet::new(OwnerName::parse(name, &domain).unwrap(), rtype, 300, [ip]).unwrap()
        };
        let server: Vec<IpAddr> = vec!["192.0.2.10".parse().unwrap()];
        let good = vec![
            rr("@", RecordType::A, "192.0.2.10"),
            rr("www", RecordType::A, "192.0.2.10"),
        ];
        assert!(dns_points_at(&good, &domain, &server));
        // www still at the old server.
        let moving = vec![
            rr("@", RecordType::A, "192.0.2.10"),
            rr("www", RecordType::A, "192.0.2.99"),
        ];
        assert!(!dns_points_at(&moving, &domain, &server));
        // No www at all.
        assert!(!dns_points_at(&good[..1], &domain, &server));
        // An AAAA the server does not have.
        let mut six = good.clone();
        six.push(rr("@", RecordType::Aaaa, "2001:db8::1"));
        assert!(!dns_points_at(&six, &domain, &server));
    }

    #[test]
    fn days_are_counted_and_bounded() {
        let now = at(0);
        let days = |d: i64| now + SignedDuration::from_hours(24 * d);
        assert_eq!(days_left(days(13), now), 13);
        assert_eq!(days_left(now - SignedDuration::from_hours(1), now), -1);
        assert_eq!(expiring_within(now, 14).unwrap(), days(14));
        let err = expiring_within(now, u32::MAX).unwrap_err().to_string();
        assert!(err.contains("0 to 3650"), "{err}");
    }
}
