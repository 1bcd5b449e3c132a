//! Alias domains: extra domains that serve an account's site and mail, kept in drover's records
//! and made on the account's server by its converge job (`create-domain --alias`, see
//! `other_domain.rs`), each with a DNS zone of its own that follows the account.

use crate::{DomainName, Error, PlanSpec};

/// Whether `alias` may be an alias of the account of `domain`: another name, and not one
/// under the account's own domain (a name there is a sub-server's, in the account's zone).
pub fn check_alias(alias: &DomainName, domain: &DomainName) -> Result<(), Error> {
    let under = alias
        .as_str()
        .strip_suffix(domain.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
    if under {
        return Err(Error::invalid(
            "alias domain",
            &alias.to_unicode(),
            format!(
                "a domain other than {} and outside it (a name under it is a sub-server's)",
                domain.to_unicode()
            ),
        ));
    }
    Ok(())
}

/// Whether an account on `plan` may have one more alias domain, having `count` (not being
/// deleted).
pub fn check_alias_limit(plan: &PlanSpec, count: usize) -> Result<(), Error> {
    match plan.max_aliases {
        Some(limit) if count >= limit as usize => Err(Error::OverLimit {
            what: "alias domains",
            plan: plan.name.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str) -> DomainName {
        DomainName::parse(name).unwrap()
    }

    #[test]
    fn an_alias_is_another_domain_outside_the_accounts() {
        let account = domain("ana.ro");
        for ok in ["ana.com", "ana-shop.ro", "știri.ro", "xana.ro"] {
            assert_eq!(check_alias(&domain(ok), &account), Ok(()), "{ok}");
        }
        for bad in ["ana.ro", "shop.ana.ro"] {
            let err = check_alias(&domain(bad), &account).unwrap_err().to_string();
            assert!(err.contains("alias domain"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_plan_limits_how_many_aliases_an_account_has() {
        let plan = |max: Option<u32>| -> PlanSpec {
            serde_json::from_value(serde_json::json!({"name": "Web", "max_aliases": max})).unwrap()
        };
        assert_eq!(check_alias_limit(&plan(None), 100), Ok(()));
        assert_eq!(check_alias_limit(&plan(Some(2)), 1), Ok(()));
        let err = check_alias_limit(&plan(Some(2)), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan 'Web' allows 2 alias domains per account, and the account has them all"
        );
    }
}
