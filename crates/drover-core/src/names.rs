//! Short names drover chooses or operators type: each checked against what the systems that
//! receive it accept.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DomainName, Error};

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A plan's name as Virtualmin knows it (its account plan): printable text without line
    /// breaks, 1 to 64 characters.
    PlanName
);

validated_string!(
    /// An operator's short name for a server: lower-case letters, digits and hyphens.
    ServerName
);

validated_string!(
    /// A placement tag such as `region-eu` or `ssd`.
    Tag
);

validated_string!(
    /// A unix user name on a Virtualmin server, chosen by drover before the first call.
    UnixUsername
);

impl PlanName {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let expected = "1 to 64 printable characters, no line breaks or leading/trailing spaces";
        let ok = !input.is_empty()
            && input.chars().count() <= 64
            && input.trim() == input
            && !input.chars().any(char::is_control);
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid("plan name", input, expected))
        }
    }
}

impl ServerName {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if is_slug(input, 63) {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "server name",
                input,
                "1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit",
            ))
        }
    }
}

impl ServerName {
    /// Accepts `typed` as confirming a change that cannot be undone when it is this name.
    pub fn confirm(&self, typed: &str, purpose: impl FnOnce() -> String) -> Result<(), Error> {
        if typed.trim() == self.0 {
            return Ok(());
        }
        Err(Error::ConfirmationMismatch {
            what: "name",
            purpose: purpose(),
            expected: self.0.clone(),
            got: crate::error::shown(typed),
        })
    }
}

impl Tag {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if is_slug(input, 63) {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "tag",
                input,
                "1 to 63 lower-case letters, digits and hyphens, like region-eu or ssd",
            ))
        }
    }
}

const MAX_USERNAME_LEN: usize = 32;

impl UnixUsername {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let mut chars = input.chars();
        let ok = input.len() <= MAX_USERNAME_LEN
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "unix username",
                input,
                "1 to 32 characters: a lower-case letter, then lower-case letters, digits, '-' or '_'",
            ))
        }
    }

    /// The `attempt`-th candidate name for a domain's account: its first label reduced to what
    /// a unix name allows, then a number when an earlier candidate was taken. Deterministic, so
    /// a caller can walk candidates until one is free.
    pub fn candidate_for(domain: &DomainName, attempt: u32) -> Self {
        let mut base: String = domain
            .first_label()
            .trim_start_matches("xn--")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
            base.insert(0, 'u');
        }
        let suffix = if attempt == 0 {
            String::new()
        } else {
            attempt.to_string()
        };
        base.truncate(12 - suffix.len().min(11));
        base.push_str(&suffix);
        Self(base)
    }

    /// The names to try for a domain's account, in order: the candidates after `after` (from
    /// the first when `None`), without the names a server keeps for its own services.
    pub fn candidates(
        domain: &DomainName,
        after: Option<&UnixUsername>,
    ) -> impl Iterator<Item = Self> {
        let all = (0..MAX_CANDIDATES).map(|attempt| Self::candidate_for(domain, attempt));
        let start = after
            .and_then(|after| all.clone().position(|c| &c == after))
            .map_or(0, |i| i + 1);
        all.skip(start).filter(|c| !c.is_system_name())
    }

    /// Whether a hosting server's own services commonly hold this name (a Debian or RHEL
    /// install with Virtualmin's stack): Virtualmin refuses it as an administration user.
    pub fn is_system_name(&self) -> bool {
        SYSTEM_USERS.contains(&self.0.as_str())
    }
}

/// How many numbered candidates drover walks before it gives up on a domain's first label.
const MAX_CANDIDATES: u32 = 1000;

/// Users and groups of a Debian or RHEL server running Virtualmin's stack (base system,
/// Apache, Postfix, Dovecot, BIND, MariaDB, PostgreSQL, ClamAV, SpamAssassin, ProFTPD, …).
const SYSTEM_USERS: &[&str] = &[
    "adm",
    "admin",
    "apache",
    "backup",
    "bin",
    "bind",
    "clamav",
    "daemon",
    "dovecot",
    "dovenull",
    "ftp",
    "games",
    "gnats",
    "halt",
    "irc",
    "list",
    "lp",
    "mail",
    "mailman",
    "man",
    "messagebus",
    "mysql",
    "named",
    "news",
    "nginx",
    "nobody",
    "nogroup",
    "ntp",
    "opendkim",
    "operator",
    "polkitd",
    "postfix",
    "postgres",
    "proftpd",
    "proxy",
    "root",
    "shutdown",
    "spamd",
    "sshd",
    "staff",
    "sudo",
    "sync",
    "sys",
    "tss",
    "users",
    "uucp",
    "webmin",
    "wheel",
    "www",
    "www-data",
];

fn is_slug(input: &str, max: usize) -> bool {
    !input.is_empty()
        && input.len() <= max
        && input.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && input
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_refuse_line_breaks_and_padding() {
        assert!(PlanName::parse("Web Hosting 10GB").is_ok());
        assert!(PlanName::parse("").is_err());
        assert!(PlanName::parse(" lead").is_err());
        assert!(PlanName::parse("two\nlines").is_err());
        assert!(PlanName::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn slugs() {
        assert!(ServerName::parse("vm-eu-1").is_ok());
        assert!(ServerName::parse("VM1").is_err());
        assert!(ServerName::parse("-vm").is_err());
        let name = ServerName::parse("vm-eu-1").unwrap();
        assert!(name.confirm("vm-eu-1", String::new).is_ok());
        assert_eq!(
            name.confirm("vm-eu-2", || "retire server 3".into())
                .unwrap_err()
                .to_string(),
            "to retire server 3, repeat its name vm-eu-1 exactly; got 'vm-eu-2'"
        );
        assert!(Tag::parse("region-eu").is_ok());
        assert!(
            Tag::parse("region eu")
                .unwrap_err()
                .to_string()
                .contains("like region-eu")
        );
    }

    #[test]
    fn username_candidates_are_valid_and_distinct() {
        let domain = DomainName::parse("știri.ro").unwrap();
        let first = UnixUsername::candidate_for(&domain, 0);
        assert_eq!(first.as_str(), "tiripxb");
        assert_eq!(UnixUsername::candidate_for(&domain, 2).as_str(), "tiripxb2");
        let numeric = DomainName::parse("123.ro").unwrap();
        assert_eq!(UnixUsername::candidate_for(&numeric, 0).as_str(), "u123");
        let long = DomainName::parse("averyveryverylongname.com").unwrap();
        assert_eq!(
            UnixUsername::candidate_for(&long, 0).as_str(),
            "averyveryver"
        );
        assert_eq!(
            UnixUsername::candidate_for(&long, 15).as_str(),
            "averyveryv15"
        );
        let mail = DomainName::parse("mail.ro").unwrap();
        let names: Vec<String> = UnixUsername::candidates(&mail, None)
            .take(2)
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            names,
            ["mail1", "mail2"],
            "a server's own user is never chosen"
        );
        let after = UnixUsername::parse("mail1").unwrap();
        assert_eq!(
            UnixUsername::candidates(&mail, Some(&after))
                .next()
                .unwrap()
                .as_str(),
            "mail2"
        );
        for attempt in [0, 1, 99, 12345] {
            let name = UnixUsername::candidate_for(&long, attempt);
            assert_eq!(UnixUsername::parse(name.as_str()), Ok(name));
        }
    }
}
