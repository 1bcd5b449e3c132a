//! What to do on a server to make one account match its record: a pure function, so lifecycle
//! changes, drift repair, rebuilds and migrations all decide the same way, and running it
//! again after success asks for nothing.

use serde::Serialize;

use crate::{DesiredState, DomainName, Feature, UnixUsername};

/// The account as drover's record says it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub domain: DomainName,
    pub unix_user: UnixUsername,
    pub state: DesiredState,
    /// The Virtualmin plan the account must carry.
    pub plan: String,
    pub suspend_reason: Option<String>,
    /// Deletion is refused while this is on.
    pub protected: bool,
    /// The features the account must have on its server (`PlanSpec::server_features`); empty
    /// leaves them to the server's defaults and checks none.
    pub features: Vec<Feature>,
}

/// The domain as the server showed it; `None` when the server said it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub unix_user: Option<String>,
    pub disabled: bool,
    pub plan: Option<String>,
    /// The features the server lists for the domain.
    pub features: Vec<Feature>,
}

/// One change to make on the server, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    Enable,
    Disable {
        reason: Option<String>,
    },
    /// Turns on features the domain lacks (Virtualmin can report a create as done and leave
    /// one out, as it does for mysql while its database server is down).
    EnableFeatures {
        features: Vec<Feature>,
    },
    ApplyPlan {
        plan: String,
    },
    Delete,
    /// A change to one of the account's mailboxes (`converge_mailboxes`).
    Mailbox(crate::MailboxAction),
    /// A change to one of the account's databases (`converge_databases`).
    Database(crate::DatabaseAction),
    /// A change to one of the account's alias domains (`converge_domains`).
    Alias(crate::DomainAction),
    /// A change to one of the account's sub-servers (`converge_domains`).
    Subserver(crate::DomainAction),
}

/// Why converging cannot go on without a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error(
        "{domain} exists on the server but belongs to unix user '{found}', not to this account's \
         '{expected}': it is someone else's domain, so drover will not touch it"
    )]
    NotOurs {
        domain: DomainName,
        expected: UnixUsername,
        found: String,
    },
    #[error(
        "{domain} is protected from deletion: lift the protection (repeating the domain name) \
         before the account can be deleted"
    )]
    Protected { domain: DomainName },
}

/// The wanted features the server does not list for the domain.
pub fn missing_features(wanted: &Wanted, observed: &Observed) -> Vec<Feature> {
    wanted
        .features
        .iter()
        .filter(|f| !observed.features.contains(f))
        .copied()
        .collect()
}

/// The actions that make the server match `wanted`, given what was `observed`.
pub fn converge(wanted: &Wanted, observed: Option<&Observed>) -> Result<Vec<Action>, Blocked> {
    let Some(observed) = observed else {
        return Ok(match wanted.state {
            DesiredState::Absent => Vec::new(),
            DesiredState::Enabled => vec![Action::Create],
            DesiredState::Disabled => vec![
                Action::Create,
                Action::Disable {
                    reason: wanted.suspend_reason.clone(),
                },
            ],
        });
    };
    let ours = observed.unix_user.as_deref() == Some(wanted.unix_user.as_str());
    if !ours {
        // A domain someone else holds is left alone; an absent account has nothing to do.
        return match wanted.state {
            DesiredState::Absent => Ok(Vec::new()),
            _ => Err(Blocked::NotOurs {
                domain: wanted.domain.clone(),
                expected: wanted.unix_user.clone(),
                found: observed
                    .unix_user
                    .clone()
                    .unwrap_or_else(|| "(none)".into()),
            }),
        };
    }
    let mut actions = Vec::new();
    let missing = missing_features(wanted, observed);
    match wanted.state {
        DesiredState::Absent if wanted.protected => {
            return Err(Blocked::Protected {
                domain: wanted.domain.clone(),
            });
        }
        DesiredState::Absent => return Ok(vec![Action::Delete]),
        DesiredState::Enabled => {
            if observed.disabled {
                actions.push(Action::Enable);
            }
            if !missing.is_empty() {
                actions.push(Action::EnableFeatures { features: missing });
            }
        }
        // Features are turned on while the domain is enabled: before it is disabled, or once
        // it is unsuspended (Virtualmin keeps a disabled domain's features switched off).
        DesiredState::Disabled if !observed.disabled => {
            if !missing.is_empty() {
                actions.push(Action::EnableFeatures { features: missing });
            }
            actions.push(Action::Disable {
                reason: wanted.suspend_reason.clone(),
            });
        }
        DesiredState::Disabled => {}
    }
    if observed.plan.as_deref() != Some(wanted.plan.as_str()) {
        actions.push(Action::ApplyPlan {
            plan: wanted.plan.clone(),
        });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(state: DesiredState, protected: bool) -> Wanted {
        Wanted {
            domain: DomainName::parse("example.ro").unwrap(),
            unix_user: UnixUsername::parse("example").unwrap(),
            state,
            plan: "Web".into(),
            suspend_reason: Some("unpaid".into()),
            protected,
            features: vec![Feature::Unix, Feature::Dir, Feature::Web],
        }
    }

    fn observed(user: &str, disabled: bool, plan: &str) -> Observed {
        Observed {
            unix_user: Some(user.into()),
            disabled,
            plan: Some(plan.into()),
            features: vec![Feature::Unix, Feature::Dir, Feature::Web],
        }
    }

    /// Every combination of wanted state, protection, presence, ownership, enabled state and
    /// plan, against the rule each must follow.
    #[test]
    fn every_combination_is_decided() {
        use DesiredState::*;
        for state in [Enabled, Disabled, Absent] {
            for protected in [false, true] {
                let w = wanted(state, protected);
                let absent = converge(&w, None).unwrap();
                let expected_absent = match state {
                    Absent => vec![],
                    Enabled => vec![Action::Create],
                    Disabled => vec![
                        Action::Create,
                        Action::Disable {
                            reason: Some("unpaid".into()),
                        },
                    ],
                };
                assert_eq!(absent, expected_absent, "{state} absent");
                for user in ["example", "someone"] {
                    for disabled in [false, true] {
                        // A server that does not say the plan has not shown it is right.
                        for plan in [Some("Web"), Some("Other"), None] {
                            let mut o = observed(user, disabled, "Web");
                            o.plan = plan.map(str::to_owned);
                            let result = converge(&w, Some(&o));
                            let case = format!(
                                "{state} protected={protected} user={user} disabled={disabled} plan={plan:?}"
                            );
                            if user != "example" {
                                match state {
                                    Absent => assert_eq!(result, Ok(vec![]), "{case}"),
                                    _ => assert!(
                                        matches!(result, Err(Blocked::NotOurs { .. })),
                                        "{case}"
                                    ),
                                }
                                continue;
                            }
                            let mut expected = match (state, disabled) {
                                (Absent, _) if protected => {
                                    assert!(
                                        matches!(result, Err(Blocked::Protected { .. })),
                                        "{case}"
                                    );
                                    continue;
                                }
                                (Absent, _) => {
                                    assert_eq!(result, Ok(vec![Action::Delete]), "{case}");
                                    continue;
                                }
                                (Enabled, true) => vec![Action::Enable],
                                (Disabled, false) => vec![Action::Disable {
                                    reason: Some("unpaid".into()),
                                }],
                                _ => vec![],
                            };
                            if plan != Some("Web") {
                                expected.push(Action::ApplyPlan { plan: "Web".into() });
                            }
                            assert_eq!(result, Ok(expected), "{case}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn converging_twice_asks_for_nothing_the_second_time() {
        for state in [DesiredState::Enabled, DesiredState::Disabled] {
            let w = wanted(state, true);
            let after = observed("example", state == DesiredState::Disabled, "Web");
            assert_eq!(converge(&w, Some(&after)), Ok(vec![]), "{state}");
        }
        assert_eq!(
            converge(&wanted(DesiredState::Absent, false), None),
            Ok(vec![])
        );
    }

    #[test]
    fn a_missing_feature_is_turned_on_while_the_domain_is_enabled() {
        let mut lacking = observed("example", false, "Web");
        lacking.features = vec![Feature::Unix, Feature::Dir];
        let web = || Action::EnableFeatures {
            features: vec![Feature::Web],
        };
        let enabled = wanted(DesiredState::Enabled, true);
        assert_eq!(converge(&enabled, Some(&lacking)), Ok(vec![web()]));
        // Unsuspended: enabled first, then the feature.
        lacking.disabled = true;
        assert_eq!(
            converge(&enabled, Some(&lacking)),
            Ok(vec![Action::Enable, web()])
        );
        // A suspended domain stays as it is until it is unsuspended…
        let suspended = wanted(DesiredState::Disabled, true);
        assert_eq!(converge(&suspended, Some(&lacking)), Ok(vec![]));
        // …and one about to be suspended gets the feature before.
        lacking.disabled = false;
        assert_eq!(
            converge(&suspended, Some(&lacking)),
            Ok(vec![
                web(),
                Action::Disable {
                    reason: Some("unpaid".into())
                }
            ])
        );
        // Features the plan leaves to the server are not checked; extra ones are left alone.
        let mut defaults = wanted(DesiredState::Enabled, true);
        defaults.features.clear();
        lacking.features.clear();
        assert_eq!(converge(&defaults, Some(&lacking)), Ok(vec![]));
        let mut extra = observed("example", false, "Web");
        extra.features.push(Feature::Mysql);
        assert_eq!(converge(&enabled, Some(&extra)), Ok(vec![]));
    }

    #[test]
    fn refusals_explain_themselves() {
        let err = converge(
            &wanted(DesiredState::Enabled, false),
            Some(&observed("other", false, "Web")),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("belongs to unix user 'other'"),
            "{err}"
        );
        let err = converge(
            &wanted(DesiredState::Absent, true),
            Some(&observed("example", false, "Web")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("protected from deletion"), "{err}");
    }
}
