//! An account's other domains, alias domains and sub-servers alike: what to create and what to
//! delete on the account's server, from drover's records and the server's one listing.

use crate::DomainName;

/// An alias domain or sub-server as drover's records say it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedDomain {
    pub domain: DomainName,
    /// Deleted in drover: to go from the server.
    pub deleting: bool,
}

/// One change to an account's alias domains or sub-servers on its server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "domain_action", rename_all = "snake_case")]
pub enum DomainAction {
    Create { domain: DomainName },
    Delete { domain: DomainName },
}

/// The changes that make the server's domains of one kind under an account (`listed`) match
/// drover's, deletions first. Domains drover does not know are left alone; drift reports them.
pub fn converge_domains(wanted: &[WantedDomain], listed: &[String]) -> Vec<DomainAction> {
    let (leaving, staying): (Vec<&WantedDomain>, Vec<&WantedDomain>) =
        wanted.iter().partition(|d| d.deleting);
    let mut actions = Vec::new();
    for want in leaving.into_iter().chain(staying) {
        let on_server = listed.iter().any(|l| l == want.domain.as_str());
        let domain = want.domain.clone();
        match (on_server, want.deleting) {
            (true, true) => actions.push(DomainAction::Delete { domain }),
            (false, false) => actions.push(DomainAction::Create { domain }),
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_domains_converge_with_the_fewest_changes() {
        let domain = |name: &str| DomainName::parse(name).unwrap();
        let want = |name: &str, deleting| WantedDomain {
            domain: domain(name),
            deleting,
        };
        let wanted = [
            want("a.com", false),
            want("b.com", false),
            want("c.com", true),
        ];
        let listed = ["b.com".to_owned(), "c.com".to_owned(), "x.com".to_owned()];
        assert_eq!(
            converge_domains(&wanted, &listed),
            [
                DomainAction::Delete {
                    domain: domain("c.com")
                },
                DomainAction::Create {
                    domain: domain("a.com")
                },
            ]
        );
        let done = ["a.com".to_owned(), "b.com".to_owned()];
        assert_eq!(converge_domains(&wanted, &done), []);
    }
}
