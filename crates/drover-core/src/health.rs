//! Server health: what one check found, what it means, and when a server's state moves. A state
//! moves only after consecutive results agree, so one slow answer does not flap a server, and
//! the states an operator chose (maintenance, draining, decommissioned) are never touched.

use serde::{Deserialize, Serialize};

use crate::ServerState;

/// What one health check of a server found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthProbe {
    /// The API answered a cheap call correctly.
    pub api_ok: bool,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// Days until the server's TLS certificate expires (negative: expired), if it was read.
    pub certificate_days_left: Option<i64>,
    /// Whether the certificate matches the pinned fingerprint, where one is pinned.
    pub pin_matches: Option<bool>,
    /// drover's circuit breaker for the server is open (calls are being refused).
    pub breaker_open: bool,
    /// The server refused drover's login, so drover did not call it: it may be up, but
    /// nothing can be done on it until its credentials are fixed.
    #[serde(default)]
    pub login_refused: bool,
}

/// What a single check says about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Degraded,
    Unavailable,
}

/// Thresholds of the health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// Consecutive failed checks before a server is unavailable.
    pub fail_after: u32,
    /// Consecutive degraded (or worse) checks before a healthy server is degraded.
    pub degrade_after: u32,
    /// Consecutive healthy checks before a degraded or unavailable server is healthy again.
    pub recover_after: u32,
    /// An answer slower than this is degraded.
    pub slow_ms: u64,
    /// A certificate expiring within this many days is degraded.
    pub certificate_warn_days: i64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            fail_after: 3,
            degrade_after: 2,
            recover_after: 2,
            slow_ms: 2000,
            certificate_warn_days: 14,
        }
    }
}

/// Consecutive results so far, kept between checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthStreak {
    pub failures: u32,
    pub degraded: u32,
    pub healthy: u32,
}

impl HealthProbe {
    /// The verdict and the reasons for it, in words an operator reads.
    pub fn assess(&self, policy: &HealthPolicy) -> (Verdict, Vec<String>) {
        let mut reasons = Vec::new();
        // A refused login is not an outage (moving its accounts away would not help, fixing
        // the login does), unless the certificate says something is wrong too.
        if self.login_refused {
            reasons.push(format!(
                "drover's login is refused: {}",
                self.error.as_deref().unwrap_or("no detail")
            ));
        } else if !self.api_ok {
            reasons.push(format!(
                "the API did not answer correctly: {}",
                self.error.as_deref().unwrap_or("no detail")
            ));
        }
        if self.pin_matches == Some(false) {
            reasons.push("the TLS certificate does not match the pinned fingerprint".to_owned());
        }
        if self.certificate_days_left.is_some_and(|d| d < 0) {
            reasons.push("the TLS certificate has expired".to_owned());
        }
        if reasons.len() > usize::from(self.login_refused) {
            return (Verdict::Unavailable, reasons);
        }
        if self.login_refused {
            return (Verdict::Degraded, reasons);
        }
        if self.breaker_open {
            reasons.push("drover's circuit breaker for it is open".to_owned());
        }
        if self.latency_ms > policy.slow_ms {
            reasons.push(format!(
                "it answered in {} ms, slower than {} ms",
                self.latency_ms, policy.slow_ms
            ));
        }
        if let Some(days) = self
            .certificate_days_left
            .filter(|d| *d < policy.certificate_warn_days)
        {
            reasons.push(format!("its TLS certificate expires in {days} days"));
        }
        if reasons.is_empty() {
            (Verdict::Healthy, reasons)
        } else {
            (Verdict::Degraded, reasons)
        }
    }
}

/// The state after one more check: counts the streak, and moves the state when a streak reaches
/// its threshold. States an operator chose stay as they are.
pub fn next_health(
    current: ServerState,
    streak: HealthStreak,
    verdict: Verdict,
    policy: &HealthPolicy,
) -> (ServerState, HealthStreak) {
    let streak = match verdict {
        Verdict::Healthy => HealthStreak {
            healthy: streak.healthy + 1,
            ..HealthStreak::default()
        },
        Verdict::Degraded => HealthStreak {
            degraded: streak.degraded + 1,
            ..HealthStreak::default()
        },
        Verdict::Unavailable => HealthStreak {
            failures: streak.failures + 1,
            // A failure is worse than degraded: it counts towards degrading too.
            degraded: streak.degraded + 1,
            healthy: 0,
        },
    };
    let state = match current {
        ServerState::Maintenance | ServerState::Draining | ServerState::Decommissioned => current,
        _ if streak.failures >= policy.fail_after => ServerState::Unavailable,
        ServerState::Healthy if streak.degraded >= policy.degrade_after => ServerState::Degraded,
        ServerState::Degraded | ServerState::Unavailable
            if streak.healthy >= policy.recover_after =>
        {
            ServerState::Healthy
        }
        // An unavailable server that answers again, but not well, is degraded once that holds.
        ServerState::Unavailable
            if verdict == Verdict::Degraded && streak.degraded >= policy.recover_after =>
        {
            ServerState::Degraded
        }
        other => other,
    };
    (state, streak)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(api_ok: bool, latency_ms: u64) -> HealthProbe {
        HealthProbe {
            api_ok,
            latency_ms,
            error: (!api_ok).then(|| "connection refused".to_owned()),
            certificate_days_left: Some(90),
            pin_matches: Some(true),
            breaker_open: false,
            login_refused: false,
        }
    }

    #[test]
    fn each_threshold_is_met_only_past_it() {
        let policy = HealthPolicy::default();
        let verdict = |p: &HealthProbe| p.assess(&policy).0;
        assert_eq!(verdict(&probe(true, policy.slow_ms)), Verdict::Healthy);
        assert_eq!(verdict(&probe(true, policy.slow_ms + 1)), Verdict::Degraded);
        let mut expiring = probe(true, 10);
        expiring.certificate_days_left = Some(policy.certificate_warn_days);
        assert_eq!(verdict(&expiring), Verdict::Healthy);
        expiring.certificate_days_left = Some(policy.certificate_warn_days - 1);
        assert_eq!(verdict(&expiring), Verdict::Degraded);
        // Expiring today is a warning; a day past it, the certificate has expired.
        expiring.certificate_days_left = Some(0);
        assert_eq!(verdict(&expiring), Verdict::Degraded);
        expiring.certificate_days_left = Some(-1);
        let (verdict, reasons) = expiring.assess(&policy);
        assert_eq!(verdict, Verdict::Unavailable);
        assert_eq!(reasons, ["the TLS certificate has expired"]);
    }

    #[test]
    fn a_refused_login_degrades_and_a_wrong_certificate_beside_it_is_unavailable() {
        let policy = HealthPolicy::default();
        let mut refused = probe(false, 10);
        refused.login_refused = true;
        let (verdict, reasons) = refused.assess(&policy);
        assert_eq!(verdict, Verdict::Degraded);
        assert!(
            reasons[0].starts_with("drover's login is refused"),
            "{reasons:?}"
        );
        refused.pin_matches = Some(false);
        let (verdict, reasons) = refused.assess(&policy);
        assert_eq!(verdict, Verdict::Unavailable);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
    }

    #[test]
    fn a_check_is_judged_with_its_reasons() {
        let policy = HealthPolicy::default();
        assert_eq!(probe(true, 30).assess(&policy), (Verdict::Healthy, vec![]));
        let (verdict, reasons) = probe(true, 2500).assess(&policy);
        assert_eq!(verdict, Verdict::Degraded);
        assert!(reasons[0].contains("2500 ms"), "{reasons:?}");
        let (verdict, reasons) = probe(false, 10).assess(&policy);
        assert_eq!(verdict, Verdict::Unavailable);
        assert!(reasons[0].contains("connection refused"), "{reasons:?}");
        let mut expiring = probe(true, 10);
        expiring.certificate_days_left = Some(5);
        assert_eq!(expiring.assess(&policy).0, Verdict::Degraded);
        expiring.certificate_days_left = Some(-1);
        assert_eq!(expiring.assess(&policy).0, Verdict::Unavailable);
        let mut wrong_pin = probe(true, 10);
        wrong_pin.pin_matches = Some(false);
        assert!(wrong_pin.assess(&policy).1[0].contains("pinned"));
        let mut open = probe(true, 10);
        open.breaker_open = true;
        assert_eq!(open.assess(&policy).0, Verdict::Degraded);
    }

    /// Runs verdicts from a state and returns the states after each.
    fn run(from: ServerState, verdicts: &[Verdict]) -> Vec<ServerState> {
        let policy = HealthPolicy::default();
        let mut state = from;
        let mut streak = HealthStreak::default();
        verdicts
            .iter()
            .map(|v| {
                (state, streak) = next_health(state, streak, *v, &policy);
                state
            })
            .collect()
    }

    #[test]
    fn states_move_only_after_consecutive_results() {
        use ServerState::*;
        use Verdict as V;
        // Three failures in a row: degraded after two, unavailable after three.
        assert_eq!(
            run(Healthy, &[V::Unavailable, V::Unavailable, V::Unavailable]),
            [Healthy, Degraded, Unavailable]
        );
        // One bad check between good ones changes nothing.
        assert_eq!(
            run(
                Healthy,
                &[V::Unavailable, V::Healthy, V::Degraded, V::Healthy]
            ),
            [Healthy; 4]
        );
        // Recovery needs two healthy checks.
        assert_eq!(
            run(
                Unavailable,
                &[V::Healthy, V::Unavailable, V::Healthy, V::Healthy]
            ),
            [Unavailable, Unavailable, Unavailable, Healthy]
        );
        // Slow answers degrade, and back.
        assert_eq!(
            run(Healthy, &[V::Degraded, V::Degraded, V::Healthy, V::Healthy]),
            [Healthy, Degraded, Degraded, Healthy]
        );
        // Unavailable that answers slowly becomes degraded, not healthy.
        assert_eq!(
            run(Unavailable, &[V::Degraded, V::Degraded]),
            [Unavailable, Degraded]
        );
    }

    #[test]
    fn an_operators_choice_is_never_overridden() {
        for chosen in [
            ServerState::Maintenance,
            ServerState::Draining,
            ServerState::Decommissioned,
        ] {
            let verdicts = [Verdict::Unavailable; 5];
            assert!(
                run(chosen, &verdicts).iter().all(|s| *s == chosen),
                "{chosen}"
            );
            assert!(
                run(chosen, &[Verdict::Healthy; 3])
                    .iter()
                    .all(|s| *s == chosen)
            );
        }
    }
}
