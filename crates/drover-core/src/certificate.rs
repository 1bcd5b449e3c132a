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

/// The earliest time another request may be made, given the failed requests of the last hour
/// (oldest first), whoever asks: one that would be the sixth failure within an hour waits
/// until the oldest of the last five is an hour old. A success does not reset the count: Let's
/// Encrypt counts failures, not streaks.
pub fn earliest_attempt(recent_failures: &[Timestamp], now: Timestamp) -> Timestamp {
    match recent_failures
        .len()
        .checked_sub(FAILED_VALIDATIONS_PER_HOUR)
    {
        Some(fifth_last) => now.max(recent_failures[fifth_last] + HOUR),
        None => now,
    }
}

/// When drover tries again on its own after `in_a_row` failures since the last success, the
/// last of them among `recent_failures` (oldest first): 5 minutes after the first, doubling to
/// at most a day, and never before [`earliest_attempt`] allows.
pub fn next_attempt(in_a_row: u32, recent_failures: &[Timestamp], now: Timestamp) -> Timestamp {
    let Some(last) = recent_failures.last() else {
        return now;
    };
    let doublings = in_a_row.saturating_sub(1).min(16);
    let wait = FIRST_RETRY
        .checked_mul(1 << doublings)
        .unwrap_or(LONGEST_RETRY)
        .min(LONGEST_RETRY);
    earliest_attempt(recent_failures, now).max(*last + wait)
}

/// Whether the zone sends the account's web names to the server, as far as the zone says: the
/// domain's address records are all the server's (and it has some), and so are `www`'s, or
/// those of the name in the zone it is an alias of. A `www` the zone does not have, or that is
/// an alias of a name elsewhere, is left to the server, which drops from its request the names
/// that do not resolve.
pub fn dns_points_at(rrsets: &[RrSet], domain: &DomainName, addresses: &[IpAddr]) -> bool {
    let addresses_of = |owner: &OwnerName| -> Vec<&String> {
        rrsets
            .iter()
            .filter(|r| &r.name == owner && matches!(r.rtype, RecordType::A | RecordType::Aaaa))
            .flat_map(|r| &r.records)
            .collect()
    };
    let all_here = |records: &[&String]| {
        records
            .iter()
            .all(|r| r.parse::<IpAddr>().is_ok_and(|ip| addresses.contains(&ip)))
    };
    let apex = addresses_of(&OwnerName::apex(domain));
    if apex.is_empty() || !all_here(&apex) {
        return false;
    }
    let Ok(www) = OwnerName::parse("www", domain) else {
        return false;
    };
    let direct = addresses_of(&www);
    if !direct.is_empty() {
        return all_here(&direct);
    }
    let alias_of = rrsets
        .iter()
        .find(|r| r.name == www && r.rtype == RecordType::Cname)
        .and_then(|r| r.records.first())
        .and_then(|target| OwnerName::parse(target, domain).ok());
    match alias_of {
        Some(target) => all_here(&addresses_of(&target)),
        None => true,
    }
}

/// The names an account's certificate request covers on its server: its domain, whose
/// certificate the server makes for its alias domains with websites too (Virtualmin's
/// `get_hostnames_for_ssl`), then each sub-server, which has a website and a certificate of
/// its own.
pub fn certificate_names(domain: &DomainName, subservers: &[DomainName]) -> Vec<DomainName> {
    std::iter::once(domain)
        .chain(subservers.iter().filter(|s| *s != domain))
        .cloned()
        .collect()
}

/// Whether accounts of `plan` have a website (an empty feature list is the server's defaults,
/// which give one): Let's Encrypt validates over it.
pub fn gives_website(plan: &crate::PlanSpec) -> bool {
    plan.features.is_empty() || plan.features.contains(&crate::Feature::Web)
}

/// Whether a certificate may be asked for an account of `plan` whose service is `status`: not
/// for a terminated service, nor a suspended one (its website does not answer), nor on a plan
/// without a website. A pending service's request waits for its activation.
pub fn check_certificate_request(
    plan: &crate::PlanSpec,
    status: crate::ServiceStatus,
    domain: &DomainName,
) -> Result<(), crate::Error> {
    crate::check_resources_change(status, domain, "certificates")?;
    if status == crate::ServiceStatus::Suspended {
        return Err(crate::Error::CertificateRefused {
            domain: domain.to_unicode(),
            why: "the account is suspended and its website does not answer Let's Encrypt's \
                  validation; unsuspend it first"
                .into(),
        });
    }
    if !gives_website(plan) {
        return Err(crate::Error::FeatureMissing {
            plan: plan.name.to_string(),
            feature: crate::Feature::Web,
            what: "certificates (Let's Encrypt validates over the website)",
        });
    }
    Ok(())
}

/// What drover knows of an account when its certificate's turn comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub domain: String,
    pub desired: crate::DesiredState,
    /// Its service is pending (not yet active).
    pub pending: bool,
    /// The server the account is on, by name, if it is placed.
    pub server: Option<String>,
    /// Its server has the domain (the last converge saw it enabled).
    pub made: bool,
    /// A move of the account has not switched it to its new server yet.
    pub moving: bool,
    /// When a converge of the account still to finish is due to run (now, when it is running
    /// or waiting for a worker): a new alias or sub-server may not be on the server before it
    /// has, and a certificate asked sooner would leave it out.
    pub converge_due: Option<Timestamp>,
    /// Why its server takes no work now (unavailable, in maintenance, its login refused).
    pub server_unusable: Option<String>,
    /// Its plan gives a website (Let's Encrypt validates over it).
    pub plan_gives_web: bool,
    /// Its server has an address recorded.
    pub server_has_address: bool,
    /// Whether its zone points at its server on every provider; `None` when drover holds no
    /// zone for it.
    pub dns_points: Option<bool>,
    /// Failed requests of the last hour, oldest first.
    pub recent_failures: Vec<Timestamp>,
}

/// What a certificate's turn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateTurn {
    /// Nothing is left to ask for.
    Done(&'static str),
    /// Not now: why, and when to look again.
    Wait { why: String, until: Timestamp },
    /// Ask the account's server now.
    Ask,
}

/// How long an account that cannot be asked for yet waits before its next look. Those that
/// change by themselves soon (a converge, a move) are looked at again soon; those that wait
/// on a person (a suspension, a plan) rarely.
const SOON: SignedDuration = SignedDuration::from_mins(1);
const LATER: SignedDuration = SignedDuration::from_mins(5);
/// A converge ends within seconds: the job looks again soon after.
const AFTER_CONVERGE: SignedDuration = SignedDuration::from_secs(5);

/// Whether the account's certificate can be asked for now: the account enabled and made on
/// its server, that server taking work, its plan giving a website, its DNS pointing there, and
/// Let's Encrypt's hourly limit not reached.
pub fn certificate_turn(facts: &CertificateFacts, now: Timestamp) -> CertificateTurn {
    use crate::DesiredState;
    let wait = |why: String, after: SignedDuration| CertificateTurn::Wait {
        why,
        until: now + after,
    };
    match facts.desired {
        DesiredState::Absent if facts.pending => {
            return wait("the service to be activated".into(), LATER);
        }
        DesiredState::Absent => return CertificateTurn::Done("the account is deleted"),
        DesiredState::Disabled => {
            let why = "the account to be unsuspended (its website does not answer while \
                       suspended)";
            return wait(why.into(), HOUR);
        }
        DesiredState::Enabled => {}
    }
    let Some(server) = &facts.server else {
        return wait("the account to be placed on a server".into(), SOON);
    };
    if !facts.made {
        return wait("the account to be made on its server".into(), SOON);
    }
    if facts.moving {
        return wait(
            "the account's move to switch it to its new server".into(),
            SOON,
        );
    }
    if let Some(why) = &facts.server_unusable {
        return wait(format!("{server} to take work again ({why})"), LATER);
    }
    if !facts.plan_gives_web {
        return wait("its plan to give a website (the feature web)".into(), HOUR);
    }
    if facts.dns_points.is_some() && !facts.server_has_address {
        let why = format!("an address for {server} (none is recorded, so no DNS can point at it)");
        return wait(why, HOUR);
    }
    if facts.dns_points == Some(false) {
        let why = format!(
            "the DNS of {} to point at {server} on every provider",
            facts.domain
        );
        return wait(why, SOON);
    }
    if let Some(due) = facts.converge_due {
        return CertificateTurn::Wait {
            why: "the account's changes to reach its server".into(),
            until: due.max(now) + AFTER_CONVERGE,
        };
    }
    let allowed = earliest_attempt(&facts.recent_failures, now);
    if allowed > now {
        return CertificateTurn::Wait {
            why: "Let's Encrypt's limit of 5 failed validations per name and hour".into(),
            until: allowed,
        };
    }
    CertificateTurn::Ask
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
        // The store keeps the last hour's failures only: the wait still doubles past them.
        let mut failures: Vec<Timestamp> = Vec::new();
        let mut waits = Vec::new();
        let mut now = at(0);
        for in_a_row in 1..=12 {
            failures.push(now);
            failures.retain(|f| *f + HOUR > now);
            let next = next_attempt(in_a_row, &failures, now);
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
        assert_eq!(next_attempt(5, &failures, at(10)), at(60).max(at(8 + 80)));
        // Four within the hour leave room for one more now.
        assert_eq!(earliest_attempt(&failures[1..], at(10)), at(10));
        // Once the oldest of the five is an hour old, the limit no longer holds anything.
        assert_eq!(earliest_attempt(&failures, at(61)), at(61));
    }

    #[test]
    fn nothing_failed_means_now() {
        assert_eq!(next_attempt(0, &[], at(3)), at(3));
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
            for (in_a_row, (operator, pause)) in (1u32..).zip(asks) {
                // The store keeps the last hour's failures.
                let recent: Vec<Timestamp> =
                    failures.iter().copied().filter(|f| *f + HOUR > now).collect();
                now = if operator {
                    earliest_attempt(&recent, now + SignedDuration::from_mins(pause))
                } else {
                    next_attempt(in_a_row, &recent, now)
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
        // No www at all: the server leaves out of its request a name that does not resolve.
        assert!(dns_points_at(&good[..1], &domain, &server));
        // www an alias of the apex, or of a name elsewhere (then the server's to judge).
        let alias = |target: &str| {
            vec![
                rr("@", RecordType::A, "192.0.2.10"),
                rr("www", RecordType::Cname, target),
            ]
        };
        assert!(dns_points_at(&alias("ana.ro."), &domain, &server));
        assert!(dns_points_at(&alias("cdn.example.net."), &domain, &server));
        let mut elsewhere = alias("old.ana.ro.");
        elsewhere.push(rr("old", RecordType::A, "192.0.2.99"));
        assert!(!dns_points_at(&elsewhere, &domain, &server));
        // The apex elsewhere, or without an address.
        assert!(!dns_points_at(&good[1..], &domain, &server));
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

    #[test]
    fn a_turn_waits_for_what_it_lacks_and_asks_when_nothing_does() {
        use crate::DesiredState;
        let now = at(0);
        let ready = CertificateFacts {
            domain: "ana.ro".into(),
            desired: DesiredState::Enabled,
            pending: false,
            server: Some("vm1".into()),
            made: true,
            moving: false,
            converge_due: None,
            server_unusable: None,
            plan_gives_web: true,
            server_has_address: true,
            dns_points: Some(true),
            recent_failures: Vec::new(),
        };
        assert_eq!(certificate_turn(&ready, now), CertificateTurn::Ask);
        let why = |facts: CertificateFacts| match certificate_turn(&facts, now) {
            CertificateTurn::Wait { why, until } => (why, minutes(until)),
            other => panic!("{other:?}"),
        };
        for (facts, says, minutes) in [
            (
                CertificateFacts {
                    desired: DesiredState::Disabled,
                    ..ready.clone()
                },
                "unsuspended",
                60,
            ),
            (
                CertificateFacts {
                    desired: DesiredState::Absent,
                    pending: true,
                    ..ready.clone()
                },
                "activated",
                5,
            ),
            (
                CertificateFacts {
                    server: None,
                    ..ready.clone()
                },
                "placed",
                1,
            ),
            (
                CertificateFacts {
                    made: false,
                    ..ready.clone()
                },
                "made on its server",
                1,
            ),
            (
                CertificateFacts {
                    moving: true,
                    ..ready.clone()
                },
                "move",
                1,
            ),
            (
                CertificateFacts {
                    converge_due: Some(now),
                    ..ready.clone()
                },
                "the account's changes to reach its server",
                0,
            ),
            (
                CertificateFacts {
                    converge_due: Some(now + SignedDuration::from_mins(30)),
                    ..ready.clone()
                },
                "the account's changes to reach its server",
                30,
            ),
            (
                CertificateFacts {
                    server_unusable: Some("maintenance".into()),
                    ..ready.clone()
                },
                "vm1 to take work again (maintenance)",
                5,
            ),
            (
                CertificateFacts {
                    plan_gives_web: false,
                    ..ready.clone()
                },
                "feature web",
                60,
            ),
            (
                CertificateFacts {
                    server_has_address: false,
                    ..ready.clone()
                },
                "an address for vm1",
                60,
            ),
            (
                CertificateFacts {
                    dns_points: Some(false),
                    ..ready.clone()
                },
                "the DNS of ana.ro to point at vm1",
                1,
            ),
            (
                CertificateFacts {
                    recent_failures: [-50, -40, -30, -20, -10].map(at).into(),
                    ..ready.clone()
                },
                "5 failed validations",
                10,
            ),
        ] {
            let (told, at_minute) = why(facts);
            assert!(told.contains(says), "{told}");
            assert_eq!(at_minute, minutes, "{told}");
        }
        let gone = CertificateFacts {
            desired: DesiredState::Absent,
            ..ready.clone()
        };
        assert_eq!(
            certificate_turn(&gone, now),
            CertificateTurn::Done("the account is deleted")
        );
        // Without a zone of drover's, the DNS is not drover's to judge.
        let outside = CertificateFacts {
            dns_points: None,
            server_has_address: false,
            ..ready
        };
        assert_eq!(certificate_turn(&outside, now), CertificateTurn::Ask);
    }
}
