//! The audit log as a hash chain: each entry's hash covers its content and the hash of the
//! entry before it, so an edited, removed or reordered row breaks the chain.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditEventId;

/// A SHA-256 digest, shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first entry.
    pub const GENESIS: Self = Self([0; 32]);

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(input: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(input, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_hex(&raw).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// One audit event as stored. `details` is the exact JSON text stored, since the hash covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: AuditEventId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub correlation_id: String,
    pub details: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub prev_hash: Hash,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub hash: Hash,
}

impl AuditEntry {
    /// The hash an entry with this content and predecessor must carry.
    pub fn expected_hash(&self) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.0);
        hasher.update(self.id.get().to_be_bytes());
        let at = self.at.to_string();
        for field in [
            at.as_str(),
            &self.actor,
            &self.action,
            &self.subject,
            &self.correlation_id,
            &self.details,
        ] {
            // Length-prefixed so that moving text between fields changes the hash.
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        Hash(hasher.finalize().into())
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditChainBreak {
    #[error("audit event {id} was altered: its content no longer matches its hash")]
    Altered { id: AuditEventId },
    #[error(
        "audit event {id} does not follow the event before it ({previous}): \
         an event between them was removed or reordered"
    )]
    Unlinked { id: AuditEventId, previous: String },
    #[error(
        "the chain ends at {last} but the recorded head is event {head_id}: \
         events at the end were removed"
    )]
    Truncated { last: String, head_id: AuditEventId },
}

/// Checks entries given in id order against each other and against the recorded head (the id
/// and hash of the newest entry, kept apart from the rows). Returns how many entries were checked.
pub fn verify_chain(
    entries: impl IntoIterator<Item = AuditEntry>,
    head: Option<(AuditEventId, Hash)>,
) -> Result<u64, AuditChainBreak> {
    let mut previous: Option<(AuditEventId, Hash)> = None;
    let mut count = 0;
    for entry in entries {
        let expected_prev = previous.map_or(Hash::GENESIS, |(_, hash)| hash);
        if entry.prev_hash != expected_prev {
            return Err(AuditChainBreak::Unlinked {
                id: entry.id,
                previous: describe(previous),
            });
        }
        if entry.expected_hash() != entry.hash {
            return Err(AuditChainBreak::Altered { id: entry.id });
        }
        previous = Some((entry.id, entry.hash));
        count += 1;
    }
    match (head, previous) {
        (Some(head), last) if Some(head) != last => Err(AuditChainBreak::Truncated {
            last: describe(last),
            head_id: head.0,
        }),
        _ => Ok(count),
    }
}

fn describe(entry: Option<(AuditEventId, Hash)>) -> String {
    entry.map_or_else(|| "the start".to_owned(), |(id, _)| format!("event {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = Hash::GENESIS;
        (1..=n)
            .map(|i| {
                let mut entry = AuditEntry {
                    id: AuditEventId(i),
                    at: Timestamp::from_second(1_700_000_000 + i).unwrap(),
                    actor: "token:1".into(),
                    action: "service.activate".into(),
                    subject: format!("service:{i}"),
                    correlation_id: format!("c{i}"),
                    details: "{}".into(),
                    prev_hash: prev,
                    hash: Hash::GENESIS,
                };
                entry.hash = entry.expected_hash();
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn head(entries: &[AuditEntry]) -> Option<(AuditEventId, Hash)> {
        entries.last().map(|e| (e.id, e.hash))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(5);
        assert_eq!(verify_chain(entries.clone(), head(&entries)), Ok(5));
        assert_eq!(verify_chain(Vec::new(), None), Ok(0));
    }

    #[test]
    fn an_edited_row_is_found() {
        let mut entries = chain(5);
        let h = head(&entries);
        entries[2].actor = "someone-else".into();
        assert_eq!(
            verify_chain(entries, h),
            Err(AuditChainBreak::Altered {
                id: AuditEventId(3)
            })
        );
    }

    #[test]
    fn a_removed_row_is_found_in_the_middle_and_at_the_end() {
        let entries = chain(5);
        let h = head(&entries);
        let mut middle = entries.clone();
        middle.remove(1);
        assert!(matches!(
            verify_chain(middle, h),
            Err(AuditChainBreak::Unlinked {
                id: AuditEventId(3),
                ..
            })
        ));
        let mut tail = entries;
        tail.pop();
        assert!(matches!(
            verify_chain(tail, h),
            Err(AuditChainBreak::Truncated { .. })
        ));
    }

    #[test]
    fn moving_text_between_fields_changes_the_hash() {
        let a = &chain(1)[0];
        let mut b = a.clone();
        b.actor = format!("{}s", a.actor);
        b.action = a.action[1..].to_owned();
        assert_ne!(a.expected_hash(), b.expected_hash());
    }
}
