//! drover-dns against real PowerDNS servers (started by the testkit) and the Cloudflare fake.

mod captures;
mod cloudflare;
mod powerdns;

use drover_core::{DomainName, OwnerName, RecordType, RrSet};

/// A zone name no other test uses.
pub fn unique_zone(prefix: &str) -> DomainName {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    DomainName::parse(&format!("{prefix}-{}-{n}.ro", std::process::id())).unwrap()
}

pub fn rr(zone: &DomainName, name: &str, rtype: RecordType, ttl: u32, records: &[&str]) -> RrSet {
    RrSet::new(
        OwnerName::parse(name, zone).unwrap(),
        rtype,
        ttl,
        records.iter().copied(),
    )
    .unwrap()
}

/// A small zone like the ones accounts get.
pub fn sample_zone(zone: &DomainName, ip: &str) -> Vec<RrSet> {
    drover_core::account_zone(
        zone,
        Some(ip.parse().unwrap()),
        None,
        &drover_core::ZoneTemplate {
            nameservers: vec!["ns1.drover-test.net".into(), "ns2.drover-test.net".into()],
            ..Default::default()
        },
    )
    .unwrap()
}

pub fn sorted(mut rrsets: Vec<RrSet>) -> Vec<RrSet> {
    rrsets.sort_by(|a, b| a.key().cmp(&b.key()));
    rrsets
}
