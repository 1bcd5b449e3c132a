//! DNS as drover keeps it: zones of rrsets in one canonical form, the difference between what a
//! zone should hold and what a provider serves, the safety limits on applying it, the zone an
//! account starts with, and the address rewrite that moves traffic between servers.
//!
//! Canonical form (the one PowerDNS speaks and every comparison uses): owner names lower-case
//! ASCII without the trailing dot; CNAME, NS, MX and SRV targets lower-case with the trailing
//! dot; TXT quoted; CAA as `flags tag "value"` with a lower-case tag and the value quoted; SRV
//! as `priority weight port target`; records of an rrset sorted and without repeats.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DomainName, Error};

/// The record types drover manages. SOA belongs to each provider and is never compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecordType {
    A,
    Aaaa,
    /// Which certificate authorities may issue for the name (RFC 8659); Let's Encrypt checks it.
    Caa,
    Cname,
    Mx,
    Ns,
    /// Where a service is (RFC 2782), at `_service._proto.name`: mail clients look for
    /// `_submission._tcp`, `_imaps._tcp` and the like.
    Srv,
    Txt,
}

impl RecordType {
    pub const ALL: [Self; 8] = [
        Self::A,
        Self::Aaaa,
        Self::Caa,
        Self::Cname,
        Self::Mx,
        Self::Ns,
        Self::Srv,
        Self::Txt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Caa => "CAA",
            Self::Cname => "CNAME",
            Self::Mx => "MX",
            Self::Ns => "NS",
            Self::Srv => "SRV",
            Self::Txt => "TXT",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(input.trim()))
            .ok_or_else(|| {
                Error::invalid(
                    "record type",
                    input,
                    "one of A, AAAA, CAA, CNAME, MX, NS, SRV, TXT",
                )
            })
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RecordType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RecordType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The owner name of an rrset: inside its zone, lower-case ASCII, no trailing dot. Labels may
/// start with `_` (`_dmarc`) and the first may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct OwnerName(String);

impl OwnerName {
    /// Reads a name an operator wrote: `@` for the apex, a name relative to the zone (`www`),
    /// or an absolute one (`www.example.ro` or `www.example.ro.`).
    pub fn parse(input: &str, zone: &DomainName) -> Result<Self, Error> {
        let expected = format!(
            "a name inside {zone}: '@' for the apex, a relative name like 'www', or an absolute \
             one like 'www.{zone}'"
        );
        let trimmed = input.trim();
        let zone_name = zone.as_str();
        let absolute = if trimmed == "@" {
            zone_name.to_owned()
        } else if let Some(name) = trimmed.strip_suffix('.') {
            name.to_ascii_lowercase()
        } else {
            let lower = trimmed.to_ascii_lowercase();
            if lower == zone_name || lower.ends_with(&format!(".{zone_name}")) {
                lower
            } else {
                format!("{lower}.{zone_name}")
            }
        };
        let inside = absolute == zone_name || absolute.ends_with(&format!(".{zone_name}"));
        if !inside || absolute.len() > 253 {
            return Err(Error::invalid("owner name", input, expected));
        }
        let relative_labels = absolute[..absolute.len() - zone_name.len()].trim_end_matches('.');
        if !relative_labels.is_empty() {
            for (i, label) in relative_labels.split('.').enumerate() {
                let ok = (i == 0 && label == "*") || host_label_ok(label, true);
                if !ok {
                    return Err(Error::invalid("owner name", input, expected));
                }
            }
        }
        Ok(Self(absolute))
    }

    pub fn apex(zone: &DomainName) -> Self {
        Self(zone.as_str().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// With the trailing dot, as PowerDNS wants it.
    pub fn absolute(&self) -> String {
        format!("{}.", self.0)
    }

    pub fn is_apex(&self, zone: &DomainName) -> bool {
        self.0 == zone.as_str()
    }
}

impl fmt::Display for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn host_label_ok(label: &str, underscore: bool) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
}

/// A host name as record content: lower-case ASCII with the trailing dot.
fn canonical_host(input: &str) -> Option<String> {
    let name = input.trim().strip_suffix('.').unwrap_or(input.trim());
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii_strict(name).ok()?
    };
    let ok = !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|label| host_label_ok(label, true));
    ok.then(|| format!("{ascii}."))
}

/// Puts one record's content in canonical form, or says what its type accepts.
pub fn canonical_content(rtype: RecordType, input: &str) -> Result<String, Error> {
    let what = "record content";
    let text = input.trim();
    match rtype {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| Error::invalid(what, input, "an IPv4 address like 192.0.2.10 (type A)")),
        RecordType::Aaaa => text
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                Error::invalid(what, input, "an IPv6 address like 2001:db8::10 (type AAAA)")
            }),
        RecordType::Cname | RecordType::Ns => canonical_host(text).ok_or_else(|| {
            Error::invalid(
                what,
                input,
                format!("a host name like host.example.ro (type {rtype})"),
            )
        }),
        RecordType::Mx => {
            let mut parts = text.split_whitespace();
            let parsed = match (parts.next(), parts.next(), parts.next()) {
                (Some(pref), Some(host), None) => pref
                    .parse::<u16>()
                    .ok()
                    .zip(canonical_host(host))
                    .map(|(pref, host)| format!("{pref} {host}")),
                _ => None,
            };
            parsed.ok_or_else(|| {
                Error::invalid(
                    what,
                    input,
                    "a preference and a host, like '10 mail.example.ro' (type MX)",
                )
            })
        }
        RecordType::Txt => canonical_txt(text).ok_or_else(|| {
            Error::invalid(
                what,
                input,
                "text, or one or more double-quoted strings with \\\" and \\\\ escaped (type TXT)",
            )
        }),
        RecordType::Caa => CaaData::parse(text).map(|caa| caa.content()),
        RecordType::Srv => SrvData::parse(text).map(|srv| srv.content()),
    }
}

/// The parts of a CAA record (RFC 8659): `0 issue "letsencrypt.org"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaData {
    /// 0, or 128 for "critical".
    pub flags: u8,
    /// The property, lower-case: `issue`, `issuewild`, `iodef`, …
    pub tag: String,
    /// The value without quotes or escapes.
    pub value: String,
}

impl CaaData {
    /// Builds one from its parts, checking each.
    pub fn new(flags: u8, tag: &str, value: &str) -> Result<Self, Error> {
        let input = format!("{flags} {tag} {value}");
        let tag_ok =
            (1..=15).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric());
        if !tag_ok {
            return Err(Error::invalid("record content", &input, CAA_EXPECTED));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::invalid(
                "record content",
                &input,
                "a CAA value of printable ASCII characters",
            ));
        }
        Ok(Self {
            flags,
            tag: tag.to_ascii_lowercase(),
            value: value.to_owned(),
        })
    }

    /// Reads `flags tag value`, the value quoted (with `\"`, `\\` and `\DDD` escapes) or bare.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("record content", input, CAA_EXPECTED);
        let text = input.trim();
        let (flags, rest) = text.split_once(char::is_whitespace).ok_or_else(bad)?;
        let (tag, value) = rest
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or_else(bad)?;
        let flags = flags.parse::<u8>().map_err(|_| bad())?;
        let value = value.trim();
        let value = if value.starts_with('"') {
            unquote_one(value).ok_or_else(bad)?
        } else {
            value.to_owned()
        };
        Self::new(flags, tag, &value)
    }

    /// The canonical content: `flags tag "value"`.
    pub fn content(&self) -> String {
        let escaped = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{} {} \"{escaped}\"", self.flags, self.tag)
    }
}

const CAA_EXPECTED: &str = "flags, a tag and a value, like '0 issue \"letsencrypt.org\"' (type CAA; the tag is 1 to 15 \
     letters or digits)";

/// One double-quoted string and nothing after it, its escapes undone.
fn unquote_one(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => {
                let next = chars.next()?;
                if next.is_ascii_digit() {
                    let digits: String = [Some(next), chars.next(), chars.next()]
                        .into_iter()
                        .collect::<Option<String>>()?;
                    out.push(char::from(digits.parse::<u8>().ok()?));
                } else {
                    out.push(next);
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// The parts of an SRV record (RFC 2782): `10 5 587 mail.example.ro.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvData {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Lower-case with the trailing dot, or `.` for "no such service here".
    pub target: String,
}

impl SrvData {
    /// Builds one from its parts; the target may come with or without the trailing dot.
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Result<Self, Error> {
        let canonical = match target.trim() {
            "." => Some(".".to_owned()),
            host => canonical_host(host),
        };
        let input = format!("{priority} {weight} {port} {target}");
        let target =
            canonical.ok_or_else(|| Error::invalid("record content", &input, SRV_EXPECTED))?;
        Ok(Self {
            priority,
            weight,
            port,
            target,
        })
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("record content", input, SRV_EXPECTED);
        let parts: Vec<&str> = input.split_whitespace().collect();
        let [priority, weight, port, target] = parts.as_slice() else {
            return Err(bad());
        };
        let number = |s: &str| s.parse::<u16>().map_err(|_| bad());
        Self::new(number(priority)?, number(weight)?, number(port)?, target).map_err(|_| bad())
    }

    /// The canonical content: `priority weight port target`.
    pub fn content(&self) -> String {
        format!(
            "{} {} {} {}",
            self.priority, self.weight, self.port, self.target
        )
    }

    /// The target as Cloudflare takes it: without the trailing dot (`.` stays `.`).
    pub fn target_without_dot(&self) -> &str {
        match self.target.as_str() {
            "." => ".",
            target => target.trim_end_matches('.'),
        }
    }
}

const SRV_EXPECTED: &str = "a priority, a weight, a port and a host (or '.'), like \
     '10 5 587 mail.example.ro' (type SRV)";

/// TXT content as one or more quoted strings. Unquoted text is quoted whole.
fn canonical_txt(text: &str) -> Option<String> {
    if !text.starts_with('"') {
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        return Some(format!("\"{escaped}\""));
    }
    // Already quoted: check every string is closed and only whitespace lies between them.
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, c) if c.is_whitespace() => {}
            (false, _, _) => return None,
        }
    }
    (!in_string).then(|| text.to_owned())
}

/// The text a TXT record carries, its quoted strings joined.
pub fn txt_text(content: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut chars = content.chars();
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => out.extend(chars.next()),
            (_, '"') => in_string = !in_string,
            (true, c) => out.push(c),
            (false, _) => {}
        }
    }
    out
}

/// One name and type of a zone with its records, all in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RrSet {
    pub name: OwnerName,
    #[serde(rename = "type")]
    pub rtype: RecordType,
    pub ttl: u32,
    pub records: Vec<String>,
}

/// The largest TTL DNS allows (RFC 2181); PowerDNS would take more and serve nonsense.
pub const MAX_TTL: u32 = 2_147_483_647;

impl RrSet {
    /// Builds an rrset, putting every record in canonical form. An empty rrset is refused:
    /// removing a name and type is a delete, not an rrset without records.
    pub fn new<'a>(
        name: OwnerName,
        rtype: RecordType,
        ttl: u32,
        records: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        if ttl > MAX_TTL {
            return Err(Error::invalid(
                "TTL",
                &ttl.to_string(),
                "0 to 2147483647 seconds",
            ));
        }
        let mut canonical = records
            .into_iter()
            .map(|r| canonical_content(rtype, r))
            .collect::<Result<Vec<_>, _>>()?;
        canonical.sort();
        canonical.dedup();
        if canonical.is_empty() {
            return Err(Error::invalid(
                "rrset",
                &format!("{name} {rtype}"),
                "at least one record",
            ));
        }
        Ok(Self {
            name,
            rtype,
            ttl,
            records: canonical,
        })
    }

    pub fn key(&self) -> (&OwnerName, RecordType) {
        (&self.name, self.rtype)
    }
}

/// Provider-side ids of single records (Cloudflare's), keyed by owner name, type and canonical
/// content, so a change can name the records it touches without reading the zone first.
pub type RecordIds = BTreeMap<RecordKey, String>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub name: String,
    pub rtype: RecordType,
    pub content: String,
}

/// Whether the records of a zone may change now: not while it is being removed.
pub fn check_zone_change(zone: &DomainName, deleting: bool) -> Result<(), Error> {
    if deleting {
        return Err(Error::ZoneDeleting {
            zone: zone.to_string(),
        });
    }
    Ok(())
}

/// A zone's own safety limit: at most this share of its records changed by one sync.
pub fn check_change_percent(limit: Option<u8>) -> Result<(), Error> {
    match limit {
        Some(percent) if percent > 100 => Err(Error::invalid(
            "max change percent",
            &percent.to_string(),
            "0 to 100",
        )),
        _ => Ok(()),
    }
}

/// Refuses a set of rrsets no DNS server would serve: repeats, CNAME at the apex, CNAME beside
/// other data or with more than one record, SRV at a name without `_service._proto`.
pub fn validate_zone(zone: &DomainName, rrsets: &[RrSet]) -> Result<(), Error> {
    let mut by_name: BTreeMap<&OwnerName, Vec<RecordType>> = BTreeMap::new();
    for rrset in rrsets {
        let types = by_name.entry(&rrset.name).or_default();
        if types.contains(&rrset.rtype) {
            return Err(Error::invalid(
                "zone",
                zone.as_str(),
                format!(
                    "one rrset per name and type; {} {} appears twice",
                    rrset.name, rrset.rtype
                ),
            ));
        }
        types.push(rrset.rtype);
        if rrset.rtype == RecordType::Srv && !srv_owner_ok(zone, &rrset.name) {
            return Err(Error::invalid(
                "zone",
                zone.as_str(),
                format!(
                    "an SRV name of the form _service._proto or _service._proto.host (RFC 2782), \
                     not {}",
                    rrset.name
                ),
            ));
        }
        if rrset.rtype == RecordType::Cname {
            if rrset.name.is_apex(zone) {
                return Err(Error::invalid(
                    "zone",
                    zone.as_str(),
                    "no CNAME at the apex (it would hide the SOA and NS)",
                ));
            }
            if rrset.records.len() > 1 {
                return Err(Error::invalid(
                    "zone",
                    zone.as_str(),
                    format!("a single CNAME record at {}", rrset.name),
                ));
            }
        }
    }
    for (name, types) in by_name {
        if types.contains(&RecordType::Cname) && types.len() > 1 {
            return Err(Error::invalid(
                "zone",
                zone.as_str(),
                format!("nothing beside the CNAME at {name}"),
            ));
        }
    }
    Ok(())
}

/// `_service._proto[.host]` inside the zone.
fn srv_owner_ok(zone: &DomainName, name: &OwnerName) -> bool {
    let relative = name
        .as_str()
        .strip_suffix(zone.as_str())
        .unwrap_or("")
        .trim_end_matches('.');
    let mut labels = relative.split('.');
    let service_proto = [labels.next(), labels.next()];
    service_proto
        .iter()
        .all(|label| label.is_some_and(|l| l.len() > 1 && l.starts_with('_')))
}

/// An rrset as it is and as it should become.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RrSetUpdate {
    pub before: RrSet,
    pub after: RrSet,
}

/// What must change on a provider for a zone to hold what drover says, sorted by name and type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneDiff {
    pub creates: Vec<RrSet>,
    pub updates: Vec<RrSetUpdate>,
    pub deletes: Vec<RrSet>,
}

impl ZoneDiff {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }

    /// Records that would be changed or removed (additions are not counted: they destroy
    /// nothing).
    pub fn changed_records(&self) -> usize {
        let deleted: usize = self.deletes.iter().map(|r| r.records.len()).sum();
        let updated: usize = self
            .updates
            .iter()
            .map(|u| {
                if u.before.ttl == u.after.ttl {
                    u.before
                        .records
                        .iter()
                        .filter(|r| !u.after.records.contains(r))
                        .count()
                } else {
                    u.before.records.len()
                }
            })
            .sum();
        deleted + updated
    }

    /// The rrsets the diff leaves in place of the changed ones (creates and updated `after`s).
    pub fn upserts(&self) -> impl Iterator<Item = &RrSet> {
        self.creates
            .iter()
            .chain(self.updates.iter().map(|u| &u.after))
    }

    pub fn touches(&self, name: &OwnerName, rtype: RecordType) -> bool {
        self.creates.iter().any(|r| r.key() == (name, rtype))
            || self.deletes.iter().any(|r| r.key() == (name, rtype))
            || self.updates.iter().any(|u| u.before.key() == (name, rtype))
    }
}

impl fmt::Display for ZoneDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "  no changes");
        }
        for r in &self.creates {
            writeln!(
                f,
                "  + {} {} {} {}",
                r.name,
                r.ttl,
                r.rtype,
                r.records.join(" | ")
            )?;
        }
        for u in &self.updates {
            let (b, a) = (&u.before, &u.after);
            writeln!(
                f,
                "  ~ {} {} {} {}",
                b.name,
                b.ttl,
                b.rtype,
                b.records.join(" | ")
            )?;
            writeln!(
                f,
                "    → {} {} {} {}",
                a.name,
                a.ttl,
                a.rtype,
                a.records.join(" | ")
            )?;
        }
        for r in &self.deletes {
            writeln!(
                f,
                "  - {} {} {} {}",
                r.name,
                r.ttl,
                r.rtype,
                r.records.join(" | ")
            )?;
        }
        Ok(())
    }
}

/// What it takes to turn `actual` into `wanted`. Both are canonical; order does not matter.
pub fn diff_zone(wanted: &[RrSet], actual: &[RrSet]) -> ZoneDiff {
    let index = |sets: &[RrSet]| -> BTreeMap<(OwnerName, RecordType), RrSet> {
        sets.iter()
            .map(|r| ((r.name.clone(), r.rtype), r.clone()))
            .collect()
    };
    let wanted = index(wanted);
    let mut actual = index(actual);
    let mut diff = ZoneDiff::default();
    for (key, want) in wanted {
        match actual.remove(&key) {
            None => diff.creates.push(want),
            Some(have) if have != want => diff.updates.push(RrSetUpdate {
                before: have,
                after: want,
            }),
            Some(_) => {}
        }
    }
    diff.deletes = actual.into_values().collect();
    diff
}

/// When a plan is too dangerous to apply without an operator's `--force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SafetyLimits {
    /// The largest share of a zone's records a plan may change or delete, in percent.
    pub max_change_percent: u8,
    /// Zones with fewer records than this have no share limit (one change is already a lot).
    pub min_zone_records: usize,
}

impl Default for SafetyLimits {
    fn default() -> Self {
        Self {
            max_change_percent: 25,
            min_zone_records: 10,
        }
    }
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum SafetyRefusal {
    TooManyChanges {
        changed: usize,
        total: usize,
        max_percent: u8,
    },
    ApexNameservers,
}

impl fmt::Display for SafetyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyChanges {
                changed,
                total,
                max_percent,
            } => write!(
                f,
                "the plan changes or deletes {changed} of the zone's {total} records, more than \
                 the {max_percent} % limit"
            ),
            Self::ApexNameservers => f.write_str(
                "the plan changes the zone's apex NS records, which decide who serves the zone",
            ),
        }
    }
}

/// Checks a plan for an existing provider zone holding `actual_records` records.
pub fn check_safety(
    zone: &DomainName,
    diff: &ZoneDiff,
    actual_records: usize,
    limits: SafetyLimits,
) -> Vec<SafetyRefusal> {
    let mut refusals = Vec::new();
    let changed = diff.changed_records();
    if actual_records >= limits.min_zone_records
        && changed * 100 > actual_records * usize::from(limits.max_change_percent)
    {
        refusals.push(SafetyRefusal::TooManyChanges {
            changed,
            total: actual_records,
            max_percent: limits.max_change_percent,
        });
    }
    if diff.touches(&OwnerName::apex(zone), RecordType::Ns) {
        refusals.push(SafetyRefusal::ApexNameservers);
    }
    refusals
}

/// What applying a zone does on one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneAction {
    /// The provider lacks the zone: create it with every rrset.
    Create,
    /// Change the rrsets that differ.
    Update,
    /// drover is removing the zone and the provider still has it.
    Delete,
    /// The provider serves what drover holds (or lacks a zone drover is removing).
    None,
}

impl ZoneAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::None => "none",
        }
    }
}

/// How applying went on one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyResult {
    Applied,
    /// Nothing needed changing.
    Unchanged,
    /// Over the safety limits, and not forced.
    Refused,
    /// The provider refused or failed.
    Failed,
}

impl ApplyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for ZoneAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ApplyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What applying a zone would do on one provider, and why it would need forcing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChange {
    pub action: ZoneAction,
    pub diff: ZoneDiff,
    pub refusals: Vec<SafetyRefusal>,
}

/// Decides what applying `wanted` does on a provider that serves `served` (`None`: it lacks
/// the zone; `records`: how many records it serves). Only an update of a served zone is held to
/// the safety limits: creating adds to nothing, and deleting was confirmed by name.
pub fn plan_provider_change(
    zone: &DomainName,
    wanted: &[RrSet],
    deleting: bool,
    served: Option<(&[RrSet], usize)>,
    limits: SafetyLimits,
) -> ProviderChange {
    let (action, diff) = match (deleting, served) {
        (true, Some((actual, _))) => (ZoneAction::Delete, diff_zone(&[], actual)),
        (true, None) => (ZoneAction::None, ZoneDiff::default()),
        (false, None) => (ZoneAction::Create, diff_zone(wanted, &[])),
        (false, Some((actual, _))) => {
            let diff = diff_zone(wanted, actual);
            let action = if diff.is_empty() {
                ZoneAction::None
            } else {
                ZoneAction::Update
            };
            (action, diff)
        }
    };
    let refusals = match (action, served) {
        (ZoneAction::Update, Some((_, records))) => check_safety(zone, &diff, records, limits),
        _ => Vec::new(),
    };
    ProviderChange {
        action,
        diff,
        refusals,
    }
}

/// What a new account's zone holds besides its server's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneTemplate {
    /// TTL of the records that point at the server: short, so a failover moves traffic fast.
    pub address_ttl: u32,
    pub ttl: u32,
    /// The zone's apex NS targets (none: the providers' defaults).
    pub nameservers: Vec<String>,
}

impl Default for ZoneTemplate {
    fn default() -> Self {
        Self {
            address_ttl: 300,
            ttl: 3600,
            nameservers: Vec::new(),
        }
    }
}

/// An account's first zone: apex, `www` and `mail` at the server's addresses, mail for the
/// domain at `mail`, and an SPF record naming the server.
pub fn account_zone(
    domain: &DomainName,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    template: &ZoneTemplate,
) -> Result<Vec<RrSet>, Error> {
    let apex = OwnerName::apex(domain);
    let name = |relative: &str| OwnerName::parse(relative, domain);
    let mut rrsets = Vec::new();
    for owner in [apex.clone(), name("www")?, name("mail")?] {
        if let Some(v4) = ipv4 {
            let ip = v4.to_string();
            rrsets.push(RrSet::new(
                owner.clone(),
                RecordType::A,
                template.address_ttl,
                [ip.as_str()],
            )?);
        }
        if let Some(v6) = ipv6 {
            let ip = v6.to_string();
            rrsets.push(RrSet::new(
                owner,
                RecordType::Aaaa,
                template.address_ttl,
                [ip.as_str()],
            )?);
        }
    }
    let mx = format!("10 mail.{domain}.");
    rrsets.push(RrSet::new(
        apex.clone(),
        RecordType::Mx,
        template.ttl,
        [mx.as_str()],
    )?);
    let mut spf = String::from("v=spf1 a mx");
    if let Some(v4) = ipv4 {
        spf.push_str(&format!(" ip4:{v4}"));
    }
    if let Some(v6) = ipv6 {
        spf.push_str(&format!(" ip6:{v6}"));
    }
    spf.push_str(" ~all");
    rrsets.push(RrSet::new(
        apex.clone(),
        RecordType::Txt,
        template.ttl,
        [spf.as_str()],
    )?);
    if !template.nameservers.is_empty() {
        rrsets.push(RrSet::new(
            apex,
            RecordType::Ns,
            template.ttl,
            template.nameservers.iter().map(String::as_str),
        )?);
    }
    Ok(rrsets)
}

/// Where addresses move: each old address to the new one of its family, or away if the new
/// server has none of that family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddressMove {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub from: Vec<IpAddr>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub to: Vec<IpAddr>,
}

impl AddressMove {
    fn target(&self, old: IpAddr) -> Option<Option<IpAddr>> {
        if !self.from.contains(&old) {
            return None;
        }
        Some(
            self.to
                .iter()
                .copied()
                .find(|new| new.is_ipv4() == old.is_ipv4()),
        )
    }

    fn rewrite_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for old in &self.from {
            let prefix = if old.is_ipv4() { "ip4:" } else { "ip6:" };
            let needle = format!("{prefix}{old}");
            let replacement = match self.target(*old).flatten() {
                Some(new) => format!("{prefix}{new}"),
                None => String::new(),
            };
            out = out
                .split(' ')
                .map(|word| {
                    if word == needle {
                        replacement.as_str()
                    } else {
                        word
                    }
                })
                .filter(|word| !word.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
        out
    }
}

/// The rrsets of a zone that point at a moved address, rewritten: A/AAAA records and the
/// `ip4:`/`ip6:` terms of SPF. An rrset left without records becomes a delete.
pub fn rewrite_addresses(rrsets: &[RrSet], moved: &AddressMove) -> ZoneDiff {
    let mut diff = ZoneDiff::default();
    for rrset in rrsets {
        let new_records: Vec<String> = match rrset.rtype {
            RecordType::A | RecordType::Aaaa => rrset
                .records
                .iter()
                .filter_map(|r| {
                    let ip: IpAddr = r.parse().ok()?;
                    match moved.target(ip) {
                        None => Some(r.clone()),
                        // `target` keeps the family: an A record gets an IPv4 address.
                        Some(Some(new)) => Some(new.to_string()),
                        Some(_) => None,
                    }
                })
                .collect(),
            RecordType::Txt => rrset
                .records
                .iter()
                .map(|r| {
                    let text = txt_text(r);
                    if text.starts_with("v=spf1") {
                        let rewritten = moved.rewrite_text(&text);
                        canonical_txt(&rewritten).unwrap_or_else(|| r.clone())
                    } else {
                        r.clone()
                    }
                })
                .collect(),
            _ => rrset.records.clone(),
        };
        let mut sorted = new_records;
        sorted.sort();
        sorted.dedup();
        if sorted == rrset.records {
            continue;
        }
        if sorted.is_empty() {
            diff.deletes.push(rrset.clone());
        } else {
            diff.updates.push(RrSetUpdate {
                before: rrset.clone(),
                after: RrSet {
                    records: sorted,
                    ..rrset.clone()
                },
            });
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_being_removed_changes_no_more_and_its_own_limit_is_a_share() {
        let zone = DomainName::parse("exemplu.ro").unwrap();
        assert_eq!(check_zone_change(&zone, false), Ok(()));
        assert_eq!(
            check_zone_change(&zone, true).unwrap_err().to_string(),
            "zone exemplu.ro is being removed; its records cannot change"
        );
        for fine in [None, Some(0), Some(100)] {
            assert_eq!(check_change_percent(fine), Ok(()));
        }
        assert_eq!(
            check_change_percent(Some(101)).unwrap_err().to_string(),
            "invalid max change percent '101': 0 to 100"
        );
    }

    fn zone() -> DomainName {
        DomainName::parse("example.ro").unwrap()
    }

    fn rr(name: &str, rtype: RecordType, ttl: u32, records: &[&str]) -> RrSet {
        RrSet::new(
            OwnerName::parse(name, &zone()).unwrap(),
            rtype,
            ttl,
            records.iter().copied(),
        )
        .unwrap()
    }

    #[test]
    fn owner_names_are_read_relative_absolute_or_apex() {
        let z = zone();
        for (input, expected) in [
            ("@", "example.ro"),
            ("www", "www.example.ro"),
            ("WWW.Example.RO.", "www.example.ro"),
            ("www.example.ro", "www.example.ro"),
            ("_dmarc", "_dmarc.example.ro"),
            ("*.shop", "*.shop.example.ro"),
        ] {
            assert_eq!(
                OwnerName::parse(input, &z).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
        for bad in ["www.other.ro.", "a..b", "-x", "a*b", "shop.*", "x y"] {
            let err = OwnerName::parse(bad, &z).unwrap_err().to_string();
            assert!(err.contains("inside example.ro"), "{bad}: {err}");
        }
    }

    #[test]
    fn contents_become_canonical_or_say_what_is_accepted() {
        use RecordType::*;
        for (t, input, expected) in [
            (A, " 192.0.2.1 ", "192.0.2.1"),
            (Aaaa, "2001:DB8:0:0::1", "2001:db8::1"),
            (Cname, "Target.Example.NET", "target.example.net."),
            (Ns, "ns1.example.net.", "ns1.example.net."),
            (Mx, "10   Mail.example.ro", "10 mail.example.ro."),
            (Txt, "v=spf1 a ~all", "\"v=spf1 a ~all\""),
            (Txt, "say \"hi\"", "\"say \\\"hi\\\"\""),
            (
                Txt,
                "\"part one\" \"part two\"",
                "\"part one\" \"part two\"",
            ),
            (Cname, "știri.ro", "xn--tiri-pxb.ro."),
        ] {
            assert_eq!(
                canonical_content(t, input).unwrap(),
                expected,
                "{t} {input}"
            );
        }
        for (t, input, says) in [
            (A, "2001:db8::1", "IPv4"),
            (Aaaa, "192.0.2.1", "IPv6"),
            (Mx, "mail.example.ro", "preference"),
            (Mx, "70000 mail.example.ro", "preference"),
            (Cname, "bad host", "host name"),
            (Txt, "\"open", "double-quoted"),
        ] {
            let err = canonical_content(t, input).unwrap_err().to_string();
            assert!(err.contains(says), "{t} {input}: {err}");
        }
        assert_eq!(txt_text("\"a\\\"b\" \"c\""), "a\"bc");
    }

    #[test]
    fn caa_and_srv_contents_become_canonical_or_say_what_is_accepted() {
        use RecordType::*;
        for (t, input, expected) in [
            (
                Caa,
                "0 issue \"letsencrypt.org\"",
                "0 issue \"letsencrypt.org\"",
            ),
            (
                Caa,
                " 0  ISSUE  letsencrypt.org ",
                "0 issue \"letsencrypt.org\"",
            ),
            (Caa, "128 issuewild \";\"", "128 issuewild \";\""),
            (
                Caa,
                "0 iodef \"mailto:security@example.ro\"",
                "0 iodef \"mailto:security@example.ro\"",
            ),
            (
                Caa,
                "0 issue letsencrypt.org; validationmethods=dns-01",
                "0 issue \"letsencrypt.org; validationmethods=dns-01\"",
            ),
            (
                Caa,
                "0 issue \"a\\\"b\\\\c\\059\"",
                "0 issue \"a\\\"b\\\\c;\"",
            ),
            (Caa, "0 issue \"\"", "0 issue \"\""),
            (Srv, "10 5 587 Mail.Example.ro", "10 5 587 mail.example.ro."),
            (
                Srv,
                "0  0 993  imap.example.net.",
                "0 0 993 imap.example.net.",
            ),
            (Srv, "0 0 0 .", "0 0 0 ."),
        ] {
            assert_eq!(
                canonical_content(t, input).unwrap(),
                expected,
                "{t} {input}"
            );
        }
        for (t, input, says) in [
            (Caa, "issue letsencrypt.org", "type CAA"),
            (Caa, "256 issue \"x\"", "type CAA"),
            (Caa, "0 is-sue \"x\"", "type CAA"),
            (Caa, "0 issue \"open", "type CAA"),
            (Caa, "0 issue \"a\" \"b\"", "type CAA"),
            (Caa, "0 issue \"\u{21a}\"", "printable ASCII"),
            (Srv, "10 5 mail.example.ro", "type SRV"),
            (Srv, "10 5 70000 mail.example.ro", "type SRV"),
            (Srv, "10 5 587 bad host", "type SRV"),
            (Srv, "10 5 587 a..b", "type SRV"),
        ] {
            let err = canonical_content(t, input).unwrap_err().to_string();
            assert!(err.contains(says), "{t} {input}: {err}");
        }
        let caa = CaaData::parse("0 issue \"say \\\"hi\\\"\"").unwrap();
        assert_eq!((caa.flags, caa.tag.as_str()), (0, "issue"));
        assert_eq!(caa.value, "say \"hi\"");
        assert_eq!(CaaData::parse(&caa.content()).unwrap(), caa);
        let srv = SrvData::parse("10 5 587 mail.example.ro.").unwrap();
        assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 587));
        assert_eq!(srv.target_without_dot(), "mail.example.ro");
        assert_eq!(
            SrvData::new(0, 0, 0, ".").unwrap().target_without_dot(),
            "."
        );
    }

    #[test]
    fn srv_names_need_service_and_protocol_and_caa_srv_diff_like_others() {
        let z = zone();
        let caa = rr("@", RecordType::Caa, 3600, &["0 issue \"letsencrypt.org\""]);
        let srv = rr(
            "_submission._tcp",
            RecordType::Srv,
            3600,
            &["0 1 587 mail.example.ro"],
        );
        let host_srv = rr(
            "_imaps._tcp.mail",
            RecordType::Srv,
            3600,
            &["0 1 993 mail.example.ro"],
        );
        validate_zone(&z, &[caa.clone(), srv.clone(), host_srv.clone()]).unwrap();
        for bad in ["@", "mail", "_sip", "_sip.tcp", "sip._tcp", "_._tcp"] {
            let wrong = rr(bad, RecordType::Srv, 3600, &["0 1 5060 sip.example.ro"]);
            let err = validate_zone(&z, &[wrong]).unwrap_err().to_string();
            assert!(err.contains("_service._proto"), "{bad}: {err}");
        }
        // Beside a CNAME they are refused like any other data.
        let cname = rr(
            "_submission._tcp",
            RecordType::Cname,
            60,
            &["x.example.net"],
        );
        assert!(validate_zone(&z, &[srv.clone(), cname]).is_err());
        // Changing one CAA value and adding an SRV: one update, one create.
        let caa2 = rr(
            "@",
            RecordType::Caa,
            3600,
            &[
                "0 issue \"letsencrypt.org\"",
                "0 iodef \"mailto:ca@example.ro\"",
            ],
        );
        let diff = diff_zone(
            &[caa2.clone(), srv.clone(), host_srv.clone()],
            &[caa.clone(), host_srv],
        );
        assert_eq!(diff.creates, [srv]);
        assert_eq!(diff.updates.len(), 1);
        assert_eq!(diff.updates[0].after, caa2);
        assert_eq!(
            diff.changed_records(),
            0,
            "an added CAA value destroys nothing"
        );
        // The same records written otherwise are no change.
        let same = rr("@", RecordType::Caa, 3600, &["0 ISSUE letsencrypt.org"]);
        assert!(diff_zone(&[same], &[caa]).is_empty());
        assert_eq!(RecordType::parse("srv").unwrap(), RecordType::Srv);
        assert_eq!(RecordType::parse("caa").unwrap().to_string(), "CAA");
    }

    #[test]
    fn rrsets_sort_and_deduplicate_and_refuse_empty_or_huge_ttl() {
        let r = rr(
            "@",
            RecordType::A,
            60,
            &["192.0.2.2", "192.0.2.1", "192.0.2.2"],
        );
        assert_eq!(r.records, ["192.0.2.1", "192.0.2.2"]);
        let owner = OwnerName::apex(&zone());
        assert!(RrSet::new(owner.clone(), RecordType::A, 60, []).is_err());
        assert!(RrSet::new(owner, RecordType::A, MAX_TTL + 1, ["192.0.2.1"]).is_err());
    }

    #[test]
    fn zones_refuse_what_dns_cannot_serve() {
        let z = zone();
        let ok = [
            rr("www", RecordType::Cname, 60, &["example.ro"]),
            rr("@", RecordType::A, 60, &["192.0.2.1"]),
        ];
        validate_zone(&z, &ok).unwrap();
        for (bad, says) in [
            (vec![rr("@", RecordType::Cname, 60, &["x.net"])], "apex"),
            (
                vec![
                    rr("www", RecordType::Cname, 60, &["x.net"]),
                    rr("www", RecordType::A, 60, &["192.0.2.1"]),
                ],
                "beside the CNAME",
            ),
            (
                vec![rr("www", RecordType::Cname, 60, &["x.net", "y.net"])],
                "single CNAME",
            ),
            (
                vec![
                    rr("@", RecordType::A, 60, &["192.0.2.1"]),
                    rr("@", RecordType::A, 60, &["192.0.2.2"]),
                ],
                "twice",
            ),
        ] {
            let err = validate_zone(&z, &bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn diff_lists_creates_updates_and_deletes() {
        let actual = [
            rr("@", RecordType::A, 300, &["192.0.2.1"]),
            rr("old", RecordType::A, 300, &["192.0.2.9"]),
            rr("same", RecordType::Txt, 300, &["x"]),
        ];
        let wanted = [
            rr("@", RecordType::A, 300, &["192.0.2.2"]),
            rr("new", RecordType::A, 300, &["192.0.2.3"]),
            rr("same", RecordType::Txt, 300, &["x"]),
        ];
        let diff = diff_zone(&wanted, &actual);
        assert_eq!(diff.creates, [wanted[1].clone()]);
        assert_eq!(diff.updates.len(), 1);
        assert_eq!(diff.updates[0].after, wanted[0]);
        assert_eq!(diff.deletes, [actual[1].clone()]);
        assert_eq!(diff.changed_records(), 2);
        assert!(diff_zone(&wanted, &wanted).is_empty());
        let text = diff.to_string();
        assert!(text.contains("+ new.example.ro 300 A 192.0.2.3"), "{text}");
        assert!(text.contains("- old.example.ro"), "{text}");
    }

    #[test]
    fn safety_limits_share_minimum_size_and_apex_ns() {
        let z = zone();
        let actual: Vec<RrSet> = (0..12)
            .map(|i| rr(&format!("h{i}"), RecordType::A, 300, &["192.0.2.1"]))
            .collect();
        let limits = SafetyLimits::default();
        // 3 of 12 = 25 %: allowed; 4 of 12: refused.
        let wanted: Vec<RrSet> = actual[3..].to_vec();
        assert!(check_safety(&z, &diff_zone(&wanted, &actual), 12, limits).is_empty());
        let wanted: Vec<RrSet> = actual[4..].to_vec();
        let refusals = check_safety(&z, &diff_zone(&wanted, &actual), 12, limits);
        assert_eq!(
            refusals,
            [SafetyRefusal::TooManyChanges {
                changed: 4,
                total: 12,
                max_percent: 25
            }]
        );
        // Below the minimum size no share applies; at it, the share does.
        let small = &actual[..5];
        assert!(check_safety(&z, &diff_zone(&[], small), 5, limits).is_empty());
        let least = &actual[..10];
        assert!(check_safety(&z, &diff_zone(&least[1..], least), 9, limits).is_empty());
        assert_eq!(
            check_safety(&z, &diff_zone(&least[3..], least), 10, limits),
            [SafetyRefusal::TooManyChanges {
                changed: 3,
                total: 10,
                max_percent: 25
            }],
            "a zone of exactly the minimum size is limited"
        );
        // The apex NS is refused even alone.
        let ns = rr("@", RecordType::Ns, 3600, &["ns1.example.net"]);
        let diff = diff_zone(&[ns], &[]);
        assert_eq!(
            check_safety(&z, &diff, 0, limits),
            [SafetyRefusal::ApexNameservers]
        );
        let other = rr("sub", RecordType::Ns, 3600, &["ns1.example.net"]);
        assert!(check_safety(&z, &diff_zone(&[other], &[]), 0, limits).is_empty());
    }

    #[test]
    fn a_diff_touches_a_name_and_type_it_creates_updates_or_deletes() {
        let z = zone();
        let apex_ns = || rr("@", RecordType::Ns, 3600, &["ns1.example.net"]);
        let apex = OwnerName::apex(&z);
        let created = diff_zone(&[apex_ns()], &[]);
        let deleted = diff_zone(&[], &[apex_ns()]);
        let updated = diff_zone(
            &[rr("@", RecordType::Ns, 3600, &["ns2.example.net"])],
            &[apex_ns()],
        );
        for diff in [&created, &deleted, &updated] {
            assert!(diff.touches(&apex, RecordType::Ns), "{diff}");
            assert!(!diff.touches(&apex, RecordType::A), "{diff}");
            let www = OwnerName::parse("www", &z).unwrap();
            assert!(!diff.touches(&www, RecordType::Ns), "{diff}");
        }
        assert!(!ZoneDiff::default().touches(&apex, RecordType::Ns));
        assert_eq!(
            SafetyRefusal::ApexNameservers.to_string(),
            "the plan changes the zone's apex NS records, which decide who serves the zone"
        );
        let share = SafetyRefusal::TooManyChanges {
            changed: 4,
            total: 12,
            max_percent: 25,
        };
        assert_eq!(
            share.to_string(),
            "the plan changes or deletes 4 of the zone's 12 records, more than the 25 % limit"
        );
    }

    #[test]
    fn owner_names_may_be_as_long_as_dns_allows_and_no_longer() {
        let z = zone();
        let labels = |last: usize| format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(last));
        let longest = OwnerName::parse(&labels(50), &z).unwrap();
        assert_eq!(longest.as_str().len(), 253);
        assert_eq!(longest.absolute(), format!("{}.", longest.as_str()));
        assert!(OwnerName::parse(&labels(51), &z).is_err());
    }

    #[test]
    fn txt_content_is_plain_text_or_only_quoted_strings() {
        assert_eq!(
            canonical_content(RecordType::Txt, r#""v=spf1" "~all""#).unwrap(),
            r#""v=spf1" "~all""#
        );
        assert!(
            canonical_content(RecordType::Txt, r#""a" b"#).is_err(),
            "text beside quoted strings is neither quoted nor plain"
        );
    }

    #[test]
    fn a_provider_change_is_chosen_from_what_it_serves_and_only_updates_are_limited() {
        let z = zone();
        let limits = SafetyLimits::default();
        let served: Vec<RrSet> = (0..12)
            .map(|i| rr(&format!("h{i}"), RecordType::A, 300, &["192.0.2.1"]))
            .collect();
        let plan = |wanted: &[RrSet], deleting, served: Option<&[RrSet]>| {
            plan_provider_change(&z, wanted, deleting, served.map(|s| (s, s.len())), limits)
        };
        let created = plan(&served, false, None);
        assert_eq!(
            (created.action, created.diff.creates.len()),
            (ZoneAction::Create, 12)
        );
        assert!(created.refusals.is_empty(), "creating adds to nothing");
        let same = plan(&served, false, Some(&served));
        assert_eq!(
            (same.action, same.diff.is_empty()),
            (ZoneAction::None, true)
        );
        let deleted = plan(&served, true, Some(&served));
        assert_eq!(
            (deleted.action, deleted.diff.deletes.len()),
            (ZoneAction::Delete, 12)
        );
        assert!(
            deleted.refusals.is_empty(),
            "deleting a zone was confirmed by name"
        );
        let gone = plan(&served, true, None);
        assert_eq!(
            (gone.action, gone.diff.is_empty()),
            (ZoneAction::None, true)
        );
        let small = plan(&served[1..], false, Some(&served));
        assert_eq!(
            (small.action, small.refusals.len()),
            (ZoneAction::Update, 0)
        );
        let large = plan(&served[4..], false, Some(&served));
        assert_eq!(large.action, ZoneAction::Update);
        assert_eq!(
            large.refusals,
            [SafetyRefusal::TooManyChanges {
                changed: 4,
                total: 12,
                max_percent: 25
            }]
        );
        assert_eq!(ZoneAction::Update.to_string(), "update");
        assert_eq!(ApplyResult::Refused.to_string(), "refused");
    }

    #[test]
    fn account_zone_points_at_the_server_and_validates() {
        let z = zone();
        let template = ZoneTemplate {
            nameservers: vec!["ns1.host.net".into(), "ns2.host.net".into()],
            ..ZoneTemplate::default()
        };
        let rrsets = account_zone(
            &z,
            Some("192.0.2.10".parse().unwrap()),
            Some("2001:db8::10".parse().unwrap()),
            &template,
        )
        .unwrap();
        validate_zone(&z, &rrsets).unwrap();
        let find = |name: &str, t| {
            rrsets
                .iter()
                .find(|r| r.name.as_str() == name && r.rtype == t)
                .unwrap()
        };
        assert_eq!(
            find("www.example.ro", RecordType::A).records,
            ["192.0.2.10"]
        );
        assert_eq!(find("example.ro", RecordType::Aaaa).ttl, 300);
        assert_eq!(
            find("example.ro", RecordType::Mx).records,
            ["10 mail.example.ro."]
        );
        assert_eq!(
            find("example.ro", RecordType::Txt).records,
            ["\"v=spf1 a mx ip4:192.0.2.10 ip6:2001:db8::10 ~all\""]
        );
        assert_eq!(find("example.ro", RecordType::Ns).records.len(), 2);
        assert_eq!(rrsets.len(), 9);
    }

    #[test]
    fn rewrite_moves_every_record_pointing_at_the_old_addresses() {
        let z = zone();
        let rrsets = account_zone(
            &z,
            Some("192.0.2.10".parse().unwrap()),
            Some("2001:db8::10".parse().unwrap()),
            &ZoneTemplate::default(),
        )
        .unwrap();
        let mut with_other = rrsets.clone();
        with_other.push(rr("keep", RecordType::A, 300, &["198.51.100.1"]));
        let moved = AddressMove {
            from: vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ],
            to: vec!["203.0.113.5".parse().unwrap()],
        };
        let diff = rewrite_addresses(&with_other, &moved);
        // Three A rewritten, SPF rewritten; three AAAA dropped (the new server has no IPv6).
        assert_eq!(diff.updates.len(), 4);
        assert_eq!(diff.deletes.len(), 3);
        assert!(diff.deletes.iter().all(|r| r.rtype == RecordType::Aaaa));
        let spf = diff
            .updates
            .iter()
            .find(|u| u.after.rtype == RecordType::Txt)
            .unwrap();
        assert_eq!(spf.after.records, ["\"v=spf1 a mx ip4:203.0.113.5 ~all\""]);
        assert!(
            diff.updates
                .iter()
                .all(|u| u.after.name.as_str() != "keep.example.ro")
        );
        // Rewriting again finds nothing: the zone no longer points at the old addresses.
        let mut after = diff_apply(&with_other, &diff);
        after.sort_by(|a, b| a.key().cmp(&b.key()));
        assert!(rewrite_addresses(&after, &moved).is_empty());
    }

    fn diff_apply(rrsets: &[RrSet], diff: &ZoneDiff) -> Vec<RrSet> {
        let mut out: Vec<RrSet> = rrsets
            .iter()
            .filter(|r| !diff.deletes.contains(r) && !diff.updates.iter().any(|u| &u.before == *r))
            .cloned()
            .collect();
        out.extend(diff.upserts().cloned());
        out
    }

    proptest::proptest! {
        #[test]
        fn diff_applied_to_actual_gives_wanted(
            a in proptest::collection::btree_map(0u8..8, (0u8..3, 1u32..4), 0..8),
            w in proptest::collection::btree_map(0u8..8, (0u8..3, 1u32..4), 0..8),
        ) {
            let build = |m: &std::collections::BTreeMap<u8, (u8, u32)>| -> Vec<RrSet> {
                m.iter().map(|(name, (ip, ttl))| rr(&format!("h{name}"), RecordType::A, *ttl, &[&format!("192.0.2.{ip}")])).collect()
            };
            let (actual, wanted) = (build(&a), build(&w));
            let diff = diff_zone(&wanted, &actual);
            let mut result = diff_apply(&actual, &diff);
            result.sort_by(|x, y| x.key().cmp(&y.key()));
            proptest::prop_assert_eq!(result, wanted);
        }
    }
}
