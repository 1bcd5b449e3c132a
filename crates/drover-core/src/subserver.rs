//! Sub-servers: domains under an account's own, each with its own web root, kept in drover's
//! records and made on the account's server by its converge job (`create-domain --parent`,
//! never with `--unix`: a sub-server shares its parent's user, and the server refuses one of
//! its own). Their addresses live in the account's zone, so they follow the account.

use crate::{DomainName, Error, Feature, OwnerName, PlanSpec, RecordType, RrSet};

/// Labels the account's zone holds for itself: a sub-server of that name would take them.
const ZONE_LABELS: &[&str] = &["www", "mail"];

/// The sub-server's domain for the account of `domain`: `input` is a name under it, or one
/// label that drover puts under it (`shop` is `shop.example.ro`). A name outside the
/// account's domain is refused.
pub fn subserver_domain(input: &str, domain: &DomainName) -> Result<DomainName, Error> {
    let expected = || {
        format!(
            "a name under {} (shop.{}, or just shop), whose first label is not www or mail",
            domain.to_unicode(),
            domain.to_unicode()
        )
    };
    let trimmed = input.trim().trim_end_matches('.');
    let full = if trimmed.contains('.') {
        DomainName::parse(trimmed).ok()
    } else {
        DomainName::parse(&format!("{trimmed}.{}", domain.as_str())).ok()
    };
    let full = full
        .filter(|d| is_under(d, domain))
        .ok_or_else(|| Error::invalid("sub-server", input, expected()))?;
    // Neither next to the account's domain nor at the front: `www.shop` is `shop`'s own name.
    let relative = &full.as_str()[..full.as_str().len() - domain.as_str().len() - 1];
    let labels: Vec<&str> = relative.split('.').collect();
    let outer = labels.last().copied().unwrap_or(relative);
    if ZONE_LABELS.contains(&outer) || ZONE_LABELS.contains(&labels[0]) {
        return Err(Error::invalid("sub-server", input, expected()));
    }
    Ok(full)
}

/// Whether `name` is strictly under `domain`.
pub fn is_under(name: &DomainName, domain: &DomainName) -> bool {
    name.as_str()
        .strip_suffix(domain.as_str())
        .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
}

/// The owner names a sub-server has in its account's zone, relative to the account's domain:
/// the sub-server itself and its `www`. None for a name outside the domain (one a server held
/// before drover adopted it): its addresses are not the account zone's.
pub fn subserver_owners(subserver: &DomainName, domain: &DomainName) -> Option<[String; 2]> {
    let relative = subserver
        .as_str()
        .strip_suffix(domain.as_str())?
        .strip_suffix('.')
        .filter(|r| !r.is_empty())?;
    Some([relative.to_owned(), format!("www.{relative}")])
}

/// The records a sub-server has in its account's zone: its name and its `www` at the
/// server's addresses.
pub fn subserver_records(
    subserver: &DomainName,
    domain: &DomainName,
    ipv4: Option<std::net::Ipv4Addr>,
    ipv6: Option<std::net::Ipv6Addr>,
    ttl: u32,
) -> Result<Vec<RrSet>, Error> {
    let mut rrsets = Vec::new();
    for relative in subserver_owners(subserver, domain).into_iter().flatten() {
        let owner = OwnerName::parse(&relative, domain)?;
        if let Some(v4) = ipv4 {
            let ip = v4.to_string();
            rrsets.push(RrSet::new(
                owner.clone(),
                RecordType::A,
                ttl,
                [ip.as_str()],
            )?);
        }
        if let Some(v6) = ipv6 {
            let ip = v6.to_string();
            rrsets.push(RrSet::new(owner, RecordType::Aaaa, ttl, [ip.as_str()])?);
        }
    }
    Ok(rrsets)
}

/// Whether an account on `plan` may have one more sub-server, having `count` (not being
/// deleted).
pub fn check_subserver_limit(plan: &PlanSpec, count: usize) -> Result<(), Error> {
    match plan.max_subservers {
        Some(limit) if count >= limit as usize => Err(Error::OverLimit {
            what: "sub-servers",
            plan: plan.name.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// The features a sub-server gets: its own web root and website, with the plan's mail, DNS
/// and TLS (the server's defaults give mail and DNS). Never `unix` (it shares its parent's
/// user) nor the database servers (its parent's logins serve it).
pub fn subserver_features(plan: &PlanSpec) -> Vec<Feature> {
    let mut features = vec![Feature::Dir, Feature::Web];
    if plan.features.is_empty() {
        features.extend([Feature::Dns, Feature::Mail]);
    } else {
        let given = [Feature::Ssl, Feature::Dns, Feature::Mail];
        features.extend(given.into_iter().filter(|f| plan.features.contains(f)));
    }
    features.sort();
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str) -> DomainName {
        DomainName::parse(name).unwrap()
    }

    #[test]
    fn a_subserver_is_a_name_under_the_accounts_domain() {
        let account = domain("ana.ro");
        for (input, full) in [
            ("shop", "shop.ana.ro"),
            ("shop.ana.ro", "shop.ana.ro"),
            ("Shop.Ana.ro.", "shop.ana.ro"),
            ("a.b.ana.ro", "a.b.ana.ro"),
            ("știri", "xn--tiri-pxb.ana.ro"),
        ] {
            assert_eq!(
                subserver_domain(input, &account).unwrap().as_str(),
                full,
                "{input}"
            );
        }
        for bad in [
            "ana.ro",
            "ana.com",
            "xana.ro",
            "www",
            "mail.ana.ro",
            "www.shop.ana.ro",
            "bad name",
            "",
        ] {
            let err = subserver_domain(bad, &account).unwrap_err().to_string();
            assert!(err.contains("sub-server"), "{bad}: {err}");
        }
        assert_eq!(
            subserver_owners(&domain("a.b.ana.ro"), &account),
            Some(["a.b".to_owned(), "www.a.b".to_owned()])
        );
        assert_eq!(subserver_owners(&domain("other.com"), &account), None);
    }

    #[test]
    fn a_subserver_gets_a_web_root_and_the_plans_mail_and_dns_never_a_user() {
        let plan = |features: serde_json::Value, max: Option<u32>| -> PlanSpec {
            serde_json::from_value(serde_json::json!({
                "name": "Web", "features": features, "max_subservers": max
            }))
            .unwrap()
        };
        use Feature::*;
        assert_eq!(
            subserver_features(&plan(serde_json::json!([]), None)),
            [Dir, Web, Dns, Mail]
        );
        assert_eq!(
            subserver_features(&plan(
                serde_json::json!(["web", "ssl", "mysql", "webmin"]),
                None
            )),
            [Dir, Web, Ssl]
        );
        assert_eq!(
            check_subserver_limit(&plan(serde_json::json!([]), None), 9),
            Ok(())
        );
        let err = check_subserver_limit(&plan(serde_json::json!([]), Some(1)), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan 'Web' allows 1 sub-servers per account, and the account has them all"
        );
    }
}
