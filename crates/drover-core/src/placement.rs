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

/// An account to move off a server, as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaving {
    pub account: crate::AccountId,
    /// Tags its plan requires of a server.
    pub required_tags: Vec<Tag>,
    /// A move of it is under way already: it is left to that one.
    pub under_way: bool,
}

/// Where each account leaving a server goes, decided together: each move counts on its target
/// at once, so the next account sees the target's new load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MovePlan {
    pub moves: Vec<(crate::AccountId, ServerId)>,
    /// Accounts no server can take now, with the reason.
    pub unplaced: Vec<(crate::AccountId, String)>,
    pub under_way: Vec<crate::AccountId>,
}

/// Places every account leaving `from` on the other candidates.
pub fn plan_moves(
    from: ServerId,
    leaving: &[Leaving],
    candidates: &[Candidate],
    policy: &PlacementPolicy,
) -> MovePlan {
    let mut candidates: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.id != from)
        .cloned()
        .collect();
    let mut plan = MovePlan::default();
    for account in leaving {
        if account.under_way {
            plan.under_way.push(account.account);
            continue;
        }
        match place(&candidates, &account.required_tags, policy) {
            Ok(to) => {
                if let Some(chosen) = candidates.iter_mut().find(|c| c.id == to) {
                    chosen.accounts += 1;
                }
                plan.moves.push((account.account, to));
            }
            Err(reason) => plan.unplaced.push((account.account, reason)),
        }
    }
    plan
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
    fn moves_off_a_server_spread_by_load_skip_those_under_way_and_say_why_one_stays() {
        use crate::AccountId;
        let leaving = |id, tags: &[&str], under_way| Leaving {
            account: AccountId(id),
            required_tags: self::tags(tags),
            under_way,
        };
        let candidates = [
            server(1, ServerState::Healthy, &[], 10, 0),
            server(2, ServerState::Healthy, &[], 10, 1),
            server(3, ServerState::Healthy, &[], 10, 2),
        ];
        let accounts = [
            leaving(10, &[], false),
            leaving(11, &[], false),
            leaving(12, &[], true),
            leaving(13, &["region-us"], false),
            leaving(14, &[], false),
        ];
        let plan = plan_moves(
            ServerId(1),
            &accounts,
            &candidates,
            &PlacementPolicy::default(),
        );
        // The least loaded first; each move counts, so the load evens out; never back onto
        // the server being left, however empty it looks.
        assert_eq!(
            plan.moves,
            [
                (AccountId(10), ServerId(2)),
                (AccountId(11), ServerId(2)),
                (AccountId(14), ServerId(3)),
            ]
        );
        assert_eq!(plan.under_way, [AccountId(12)]);
        assert_eq!(plan.unplaced.len(), 1);
        assert_eq!(plan.unplaced[0].0, AccountId(13));
        assert!(
            plan.unplaced[0].1.contains("region-us"),
            "{:?}",
            plan.unplaced
        );
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
