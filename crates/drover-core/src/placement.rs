//! Which server a new account goes to: a pure, deterministic choice.

use crate::{ServerId, ServerState, Tag};

/// A server as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: ServerId,
    pub name: String,
    pub state: ServerState,
    pub tags: Vec<Tag>,
    pub capacity: u32,
    /// Accounts it holds or is about to hold.
    pub accounts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementPolicy {
    /// Degraded servers may take new accounts.
    pub allow_degraded: bool,
    /// The share of capacity a server may be filled to, like 0.9.
    pub fill_limit: f64,
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        Self {
            allow_degraded: false,
            fill_limit: 0.9,
        }
    }
}

/// The server for a new account: among healthy (or, by policy, degraded) servers carrying
/// every required tag and under the fill limit, the one with the lowest load; ties go to the
/// fewest accounts, then the lowest id. `Err` says why none fits.
pub fn place(
    candidates: &[Candidate],
    required_tags: &[Tag],
    policy: &PlacementPolicy,
) -> Result<ServerId, String> {
    let usable = |c: &&Candidate| {
        c.state == ServerState::Healthy
            || (policy.allow_degraded && c.state == ServerState::Degraded)
    };
    let tagged = |c: &&Candidate| required_tags.iter().all(|t| c.tags.contains(t));
    let room =
        |c: &&Candidate| f64::from(c.accounts + 1) <= f64::from(c.capacity) * policy.fill_limit;
    candidates
        .iter()
        .filter(usable)
        .filter(tagged)
        .filter(room)
        .min_by(|a, b| {
            let load = |c: &Candidate| f64::from(c.accounts) / f64::from(c.capacity.max(1));
            load(a)
                .total_cmp(&load(b))
                .then(a.accounts.cmp(&b.accounts))
                .then(a.id.cmp(&b.id))
        })
        .map(|c| c.id)
        .ok_or_else(|| {
            let states = if policy.allow_degraded {
                "healthy or degraded"
            } else {
                "healthy"
            };
            let tags = if required_tags.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = required_tags.iter().map(Tag::as_str).collect();
                format!(" with tag {}", names.join(" and "))
            };
            format!(
                "no {states} server{tags} under {:.0} % of its capacity",
                policy.fill_limit * 100.0
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(
        id: i64,
        state: ServerState,
        tags: &[&str],
        capacity: u32,
        accounts: u32,
    ) -> Candidate {
        Candidate {
            id: ServerId(id),
            name: format!("vm{id}"),
            state,
            tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
            capacity,
            accounts,
        }
    }

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|t| Tag::parse(t).unwrap()).collect()
    }

    #[test]
    fn the_least_loaded_eligible_server_wins() {
        use ServerState::*;
        let fleet = [
            server(1, Healthy, &["region-eu"], 100, 50),
            server(2, Healthy, &["region-eu", "ssd"], 200, 60),
            server(3, Degraded, &["region-eu"], 100, 0),
            server(4, Draining, &["region-eu"], 100, 0),
            server(5, Healthy, &["region-us"], 100, 0),
            server(6, Maintenance, &["region-eu"], 100, 0),
        ];
        let policy = PlacementPolicy::default();
        assert_eq!(
            place(&fleet, &tags(&["region-eu"]), &policy),
            Ok(ServerId(2))
        );
        assert_eq!(place(&fleet, &tags(&[]), &policy), Ok(ServerId(5)));
        let degraded_ok = PlacementPolicy {
            allow_degraded: true,
            ..policy
        };
        assert_eq!(
            place(&fleet, &tags(&["region-eu"]), &degraded_ok),
            Ok(ServerId(3))
        );
    }

    #[test]
    fn the_fill_limit_and_ties_are_respected() {
        use ServerState::*;
        let policy = PlacementPolicy::default();
        let full = [server(1, Healthy, &[], 10, 9)];
        assert_eq!(
            place(&full, &tags(&["region-eu"]), &policy),
            Err("no healthy server with tag region-eu under 90 % of its capacity".into())
        );
        assert_eq!(
            place(&full, &[], &policy),
            Err("no healthy server under 90 % of its capacity".into())
        );
        let almost = [server(1, Healthy, &[], 10, 8)];
        assert_eq!(
            place(&almost, &[], &policy),
            Ok(ServerId(1)),
            "the 9th of 10 is still under 90 %"
        );
        let tied = [
            server(7, Healthy, &[], 100, 10),
            server(3, Healthy, &[], 100, 10),
            server(5, Healthy, &[], 200, 20),
        ];
        assert_eq!(
            place(&tied, &[], &policy),
            Ok(ServerId(3)),
            "same load and count: lowest id"
        );
    }
}
