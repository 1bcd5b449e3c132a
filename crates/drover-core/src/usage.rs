//! Usage: what each account uses on its server (disk, bandwidth, mailboxes, databases), summed
//! over the sub-servers the account holds, as billing reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One domain's figures as its server lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedUsage {
    pub domain: String,
    /// The top-level domain a sub-server belongs to.
    pub parent: Option<String>,
    /// An alias serves names only: it has no figures of its own.
    pub alias: bool,
    /// Reported for top-level domains only, and only where the server has disk quotas.
    pub disk_bytes: Option<u64>,
    /// Reported for top-level domains only, and only where the server monitors bandwidth.
    pub bandwidth_bytes: Option<u64>,
    pub databases: u64,
    pub database_bytes: u64,
}

/// An account's usage. A figure the server does not measure is `None`, never a made-up zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Home and mail files, sub-servers included (the server's quota accounting).
    pub disk_bytes: Option<u64>,
    /// Transferred since the start of the server's bandwidth period, sub-servers included.
    pub bandwidth_bytes: Option<u64>,
    pub mailboxes: u64,
    pub databases: u64,
    pub database_bytes: u64,
}

/// Each top-level domain's usage: its own figures plus its sub-servers' databases and
/// mailboxes. `mailbox_domains` names the domain of every mailbox on the server; a mailbox of a
/// domain not listed is not counted.
pub fn usage_by_domain<'a>(
    listed: &[ListedUsage],
    mailbox_domains: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Usage> {
    let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for d in listed.iter().filter(|d| !d.alias) {
        let top = d.parent.as_deref().unwrap_or(&d.domain);
        owner.insert(&d.domain, top);
        let entry = usage.entry(top.to_owned()).or_default();
        if d.parent.is_none() {
            entry.disk_bytes = d.disk_bytes;
            entry.bandwidth_bytes = d.bandwidth_bytes;
        }
        entry.databases += d.databases;
        entry.database_bytes += d.database_bytes;
    }
    for domain in mailbox_domains {
        if let Some(entry) = owner.get(domain).and_then(|top| usage.get_mut(*top)) {
            entry.mailboxes += 1;
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(domain: &str, disk: Option<u64>, databases: u64) -> ListedUsage {
        ListedUsage {
            domain: domain.into(),
            disk_bytes: disk,
            bandwidth_bytes: disk.map(|d| d * 2),
            databases,
            database_bytes: databases * 100,
            ..ListedUsage::default()
        }
    }

    #[test]
    fn sub_servers_add_their_databases_and_mailboxes_to_their_account() {
        let listed = [
            top("a.ro", Some(1_000), 1),
            ListedUsage {
                domain: "shop.a.ro".into(),
                parent: Some("a.ro".into()),
                databases: 2,
                database_bytes: 50,
                ..ListedUsage::default()
            },
            ListedUsage {
                domain: "a-alias.ro".into(),
                parent: Some("a.ro".into()),
                alias: true,
                databases: 9,
                ..ListedUsage::default()
            },
            top("b.ro", Some(7), 0),
        ];
        let usage = usage_by_domain(
            &listed,
            ["a.ro", "shop.a.ro", "shop.a.ro", "b.ro", "gone.ro"],
        );
        assert_eq!(usage.len(), 2, "one entry per top-level domain");
        assert_eq!(
            usage["a.ro"],
            Usage {
                disk_bytes: Some(1_000),
                bandwidth_bytes: Some(2_000),
                mailboxes: 3,
                databases: 3,
                database_bytes: 150,
            }
        );
        assert_eq!(usage["b.ro"].mailboxes, 1);
        assert_eq!(usage["b.ro"].databases, 0);
    }

    #[test]
    fn figures_a_server_does_not_measure_stay_unknown() {
        let usage = usage_by_domain(&[top("a.ro", None, 0)], []);
        assert_eq!(usage["a.ro"].disk_bytes, None);
        assert_eq!(usage["a.ro"].bandwidth_bytes, None);
        assert_eq!(usage["a.ro"].mailboxes, 0);
    }
}
