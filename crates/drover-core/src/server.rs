//! Servers of the fleet: how they are addressed and the states they move through.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, ServerName, Tag};

/// Where a server is reached: a DNS name (any, internal names included) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        if let Ok(ip) = input
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Self(ip.to_string()));
        }
        let name = input
            .strip_suffix('.')
            .unwrap_or(input)
            .to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
            Ok(Self(name))
        } else {
            Err(Error::invalid(
                "hostname",
                input,
                "a DNS name (letters, digits, hyphens and dots) or an IPv4/IPv6 address",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Hostname {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A server's place in the fleet. Health checks move it between healthy, degraded and
/// unavailable; operators choose maintenance, draining and decommissioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Healthy,
    Degraded,
    Unavailable,
    Maintenance,
    Draining,
    Decommissioned,
}

impl ServerState {
    pub const ALL: [Self; 6] = [
        Self::Healthy,
        Self::Degraded,
        Self::Unavailable,
        Self::Maintenance,
        Self::Draining,
        Self::Decommissioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
            Self::Maintenance => "maintenance",
            Self::Draining => "draining",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == input)
            .ok_or_else(|| {
                Error::invalid(
                    "server state",
                    input,
                    "one of healthy, degraded, unavailable, maintenance, draining, decommissioned",
                )
            })
    }
}

/// Why an operator's change of a server's state is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerRefusal {
    #[error("server {name} is decommissioned: it no longer changes state")]
    Decommissioned { name: String },
    #[error(
        "server {name} still holds {holding} accounts; drain it first (drover servers drain {id})"
    )]
    NotEmpty {
        name: String,
        id: crate::ServerId,
        holding: i64,
    },
    #[error(
        "server {name} has no SSH access: give it ssh (user, key, host_key) before the \
         break-glass path can reach it"
    )]
    NoSshAccess { name: String },
    #[error(
        "server {name} is not marked as worked on over SSH: mark it first (drover servers \
         break-glass {name} --reason …); jobs never turn to SSH on their own"
    )]
    NotInBreakGlass { name: String },
}

impl ServerState {
    /// The state a drain leaves the server in: it takes no new account while its accounts move.
    pub fn drain(self, name: &ServerName) -> Result<Self, ServerRefusal> {
        self.unless_decommissioned(name).map(|_| Self::Draining)
    }

    /// The state maintenance on or off leaves the server in. Off, a server in maintenance is
    /// taken as healthy until its next health check; any other state stays.
    pub fn maintenance(self, name: &ServerName, on: bool) -> Result<Self, ServerRefusal> {
        self.unless_decommissioned(name)?;
        Ok(match (on, self) {
            (true, _) => Self::Maintenance,
            (false, Self::Maintenance) => Self::Healthy,
            (false, other) => other,
        })
    }

    /// Retires the server for good: only once no account needs it (`holding` counts those
    /// assigned to it that must still exist).
    pub fn decommission(
        self,
        id: crate::ServerId,
        name: &ServerName,
        holding: i64,
    ) -> Result<Self, ServerRefusal> {
        if holding > 0 {
            return Err(ServerRefusal::NotEmpty {
                name: name.to_string(),
                id,
                holding,
            });
        }
        Ok(Self::Decommissioned)
    }

    /// Whether a server's existing domains may be adopted as drover's accounts: not once it
    /// is retired.
    pub fn accepts_adoption(self, name: &ServerName) -> Result<(), ServerRefusal> {
        self.unless_decommissioned(name).map(|_| ())
    }

    fn unless_decommissioned(self, name: &ServerName) -> Result<Self, ServerRefusal> {
        if self == Self::Decommissioned {
            return Err(ServerRefusal::Decommissioned {
                name: name.to_string(),
            });
        }
        Ok(self)
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_moves_a_server_between_states_until_it_is_decommissioned() {
        use ServerState::*;
        let name = ServerName::parse("vm1").unwrap();
        let id = crate::ServerId(7);
        assert_eq!(Healthy.drain(&name), Ok(Draining));
        assert_eq!(Unavailable.drain(&name), Ok(Draining));
        assert_eq!(Degraded.maintenance(&name, true), Ok(Maintenance));
        assert_eq!(Maintenance.maintenance(&name, false), Ok(Healthy));
        assert_eq!(Draining.maintenance(&name, false), Ok(Draining));
        assert_eq!(Draining.decommission(id, &name, 0), Ok(Decommissioned));
        let refused = Draining.decommission(id, &name, 1).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "server vm1 still holds 1 accounts; drain it first (drover servers drain 7)"
        );
        for change in [
            Decommissioned.drain(&name),
            Decommissioned.maintenance(&name, true),
            Decommissioned.maintenance(&name, false),
        ] {
            assert_eq!(
                change,
                Err(ServerRefusal::Decommissioned { name: "vm1".into() })
            );
        }
    }

    #[test]
    fn secrets_are_read_only_from_the_secrets_directory_and_prefixed_variables() {
        let sources = SecretSources {
            dir: PathBuf::from("/var/lib/drover/secrets"),
            env_prefix: "DROVER_SECRET_".into(),
        };
        let check = |reference: &str| sources.check(&CredentialRef::parse(reference).unwrap());
        for allowed in [
            "file:/var/lib/drover/secrets/vm1.pass",
            "file:/var/lib/drover/secrets/dns/pdns.key",
            "file:/var/lib/drover/secrets/./vm1.pass",
            "env:DROVER_SECRET_VM1",
        ] {
            assert_eq!(check(allowed), Ok(()), "{allowed}");
        }
        for refused in [
            "file:/var/lib/drover/drover.key",
            "file:/var/lib/drover/secrets/../drover.key",
            "file:/var/lib/drover/secrets",
            "file:/var/lib/drover/secrets-old/vm1.pass",
            "file:/etc/shadow",
            "env:DATABASE_URL",
            "env:DROVER_SECRET_",
            "env:MY_DROVER_SECRET_X",
        ] {
            let err = check(refused).unwrap_err().to_string();
            assert!(
                err.contains("DROVER_SECRETS_DIR") || err.contains("DROVER_SECRET_ENV_PREFIX"),
                "{refused}: {err}"
            );
        }
    }

    #[test]
    fn hostnames_accept_names_and_addresses() {
        assert_eq!(
            Hostname::parse("VM1.Example.net.").unwrap().as_str(),
            "vm1.example.net"
        );
        assert_eq!(Hostname::parse("[::1]").unwrap().as_str(), "::1");
        assert_eq!(Hostname::parse("127.0.0.1").unwrap().as_str(), "127.0.0.1");
        assert!(Hostname::parse("bad host").is_err());
        assert!(Hostname::parse("").is_err());
        assert!(Hostname::parse("https://vm1").is_err());
    }

    #[test]
    fn states_round_trip() {
        for s in ServerState::ALL {
            assert_eq!(ServerState::parse(s.as_str()), Ok(s));
        }
    }
}

/// The SHA-256 fingerprint of a server's certificate, for pinning. Accepts 64 hex digits, with
/// or without colons between bytes, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let digits: String = input.trim().chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| {
            Error::invalid(
                "SHA-256 certificate fingerprint",
                input,
                "64 hex digits, optionally in pairs separated by colons",
            )
        })?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl Serialize for CertFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for CertFingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::CertFingerprint;

    #[test]
    fn fingerprints_accept_colons_and_case() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            CertFingerprint::parse(&plain),
            CertFingerprint::parse(&colons)
        );
        assert_eq!(CertFingerprint::parse(&colons).unwrap().to_hex(), plain);
        assert!(CertFingerprint::parse("abcd").is_err());
        assert!(CertFingerprint::parse(&"zz".repeat(32)).is_err());
    }
}

/// Where a server's API password is found: an environment variable (`env:NAME`) or a file
/// (`file:/absolute/path`). The secret itself is never stored in drover's database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialRef {
    Env(String),
    File(String),
}

impl CredentialRef {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let expected =
            "env:VARIABLE_NAME or file:/absolute/path (the password itself is never stored)";
        match input.trim().split_once(':') {
            Some(("env", name))
                if !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok(Self::Env(name.to_owned()))
            }
            Some(("file", path)) if path.starts_with('/') && !path.contains('\n') => {
                Ok(Self::File(path.to_owned()))
            }
            // Not echoed: an operator who pasted the password here must not see it logged.
            _ => Err(Error::InvalidSecret {
                what: "credentials reference",
                expected: expected.into(),
            }),
        }
    }
}

/// Where drover may read secrets from: files under one directory and environment variables
/// with one prefix. Anything else is refused, so that whoever may edit a server or a DNS
/// provider cannot point it at another file or variable drover can read (its own key, say) and
/// have that sent to a host of their choosing as a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSources {
    /// Absolute; files below it, at any depth.
    pub dir: PathBuf,
    pub env_prefix: String,
}

impl SecretSources {
    pub const DEFAULT_ENV_PREFIX: &str = "DROVER_SECRET_";

    /// Accepts a reference to a file below the directory (by its path as written: `..` is
    /// refused) or to a variable with the prefix.
    pub fn check(&self, reference: &CredentialRef) -> Result<(), Error> {
        let refused = |expected: String| Error::InvalidValue {
            what: "credentials",
            input: reference.to_string(),
            expected,
        };
        match reference {
            CredentialRef::Env(name) => {
                if name.len() > self.env_prefix.len() && name.starts_with(&self.env_prefix) {
                    Ok(())
                } else {
                    Err(refused(format!(
                        "env:{}NAME: drover reads secrets only from variables whose names start \
                         with {} (DROVER_SECRET_ENV_PREFIX)",
                        self.env_prefix, self.env_prefix
                    )))
                }
            }
            CredentialRef::File(path) => {
                let path = Path::new(path);
                let plain = path.components().all(|c| {
                    matches!(
                        c,
                        Component::RootDir | Component::CurDir | Component::Normal(_)
                    )
                });
                if plain && path.starts_with(&self.dir) && path != self.dir {
                    Ok(())
                } else {
                    Err(refused(format!(
                        "file:{}/NAME: drover reads secret files only below {} \
                         (DROVER_SECRETS_DIR), named without '..'",
                        self.dir.display(),
                        self.dir.display()
                    )))
                }
            }
        }
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl Serialize for CredentialRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CredentialRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn default_port() -> u16 {
    10000
}

fn default_api_user() -> String {
    "root".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_ssh_port() -> u16 {
    22
}

/// SSH access to a server for the break-glass path: Virtualmin's own `virtualmin` command,
/// for when remote.cgi does not answer. Never used by jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerSsh {
    /// Who logs in: `root`, or a user allowed to run `virtualmin`.
    #[serde(default = "default_api_user")]
    pub user: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Where its private key is read: an unencrypted Ed25519 or ECDSA key in OpenSSH format.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "file:vm1.ssh-key"))]
    pub key: CredentialRef,
    /// The host's key, pinned (`SHA256:…`, as `ssh-keygen -lf` prints it): a host that
    /// presents another is refused before any credential is sent.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub host_key: crate::SshHostKey,
}

/// Everything an operator says about a server when adding or editing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "vm-eu-1"))]
    pub name: ServerName,
    /// Where Virtualmin's API answers.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "vm1.example.net"))]
    pub hostname: Hostname,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Public addresses, written into DNS for the accounts it hosts.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv6: Option<Ipv6Addr>,
    /// The most accounts it may hold.
    pub capacity: u32,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub tags: Vec<Tag>,
    /// The Webmin user drover logs in as.
    #[serde(default = "default_api_user")]
    pub api_user: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "env:VM1_PASSWORD"))]
    pub credentials: CredentialRef,
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pinned_cert_sha256: Option<CertFingerprint>,
    /// Calls per second for this server, when not the fleet default.
    #[serde(default)]
    pub rate_qps: Option<f64>,
    /// SSH access for the break-glass path, if any.
    #[serde(default)]
    pub ssh: Option<ServerSsh>,
}

/// A partial change to a server: absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<ServerName>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub hostname: Option<Hostname>,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv4: Option<Option<Ipv4Addr>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv6: Option<Option<Ipv6Addr>>,
    pub capacity: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub tags: Option<Vec<Tag>>,
    pub api_user: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub credentials: Option<CredentialRef>,
    pub tls_verify: Option<bool>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pinned_cert_sha256: Option<Option<CertFingerprint>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub rate_qps: Option<Option<f64>>,
    /// `null` takes the SSH access away.
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    pub ssh: Option<Option<ServerSsh>>,
}

impl ServerSpec {
    /// Checks what field types alone cannot say.
    pub fn validated(mut self) -> Result<Self, Error> {
        if self.capacity == 0 {
            return Err(Error::invalid("capacity", "0", "at least 1 account"));
        }
        if self.port == 0 {
            return Err(Error::invalid("port", "0", "a TCP port from 1 to 65535"));
        }
        if let Some(qps) = self.rate_qps
            && !(qps.is_finite() && qps > 0.0 && qps <= 1000.0)
        {
            return Err(Error::invalid(
                "rate_qps",
                &qps.to_string(),
                "calls per second, more than 0 and at most 1000",
            ));
        }
        let bad_user = |user: &str| {
            user.is_empty()
                || user.len() > 64
                || user
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        };
        if bad_user(&self.api_user) {
            return Err(Error::invalid(
                "api_user",
                &self.api_user,
                "a Webmin user name: 1 to 64 characters, no spaces or ':'",
            ));
        }
        if let Some(ssh) = &self.ssh {
            if bad_user(&ssh.user) || ssh.user.starts_with('-') {
                return Err(Error::invalid(
                    "ssh.user",
                    &ssh.user,
                    "a user name: 1 to 64 characters, no spaces or ':'",
                ));
            }
            if ssh.port == 0 {
                return Err(Error::invalid(
                    "ssh.port",
                    "0",
                    "a TCP port from 1 to 65535",
                ));
            }
        }
        self.tags.sort();
        self.tags.dedup();
        Ok(self)
    }

    pub fn patched(self, patch: ServerPatch) -> Result<Self, Error> {
        Self {
            name: patch.name.unwrap_or(self.name),
            hostname: patch.hostname.unwrap_or(self.hostname),
            port: patch.port.unwrap_or(self.port),
            ipv4: patch.ipv4.unwrap_or(self.ipv4),
            ipv6: patch.ipv6.unwrap_or(self.ipv6),
            capacity: patch.capacity.unwrap_or(self.capacity),
            tags: patch.tags.unwrap_or(self.tags),
            api_user: patch.api_user.unwrap_or(self.api_user),
            credentials: patch.credentials.unwrap_or(self.credentials),
            tls_verify: patch.tls_verify.unwrap_or(self.tls_verify),
            pinned_cert_sha256: patch.pinned_cert_sha256.unwrap_or(self.pinned_cert_sha256),
            rate_qps: patch.rate_qps.unwrap_or(self.rate_qps),
            ssh: patch.ssh.unwrap_or(self.ssh),
        }
        .validated()
    }
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    #[test]
    fn server_specs_take_defaults_and_refuse_nonsense() {
        let spec: ServerSpec = serde_json::from_str(
            r#"{"name":"vm1","hostname":"vm1.example.net","capacity":100,"credentials":"env:VM1_PASS","tags":["ssd","region-eu","ssd"]}"#,
        )
        .unwrap();
        let spec = spec.validated().unwrap();
        assert_eq!(
            (spec.port, spec.api_user.as_str(), spec.tls_verify),
            (10000, "root", true)
        );
        assert_eq!(spec.tags.len(), 2);
        let zero = ServerSpec {
            capacity: 0,
            ..spec.clone()
        };
        assert!(
            zero.validated()
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
        let patched = spec
            .clone()
            .patched(serde_json::from_str(r#"{"capacity":5,"ipv4":"192.0.2.10"}"#).unwrap())
            .unwrap();
        assert_eq!(
            (patched.capacity, patched.ipv4),
            (5, Some(Ipv4Addr::new(192, 0, 2, 10)))
        );
        assert!(CredentialRef::parse("hunter2").is_err());
        assert!(CredentialRef::parse("file:relative").is_err());
        assert_eq!(
            CredentialRef::parse("file:/etc/drover/vm1")
                .unwrap()
                .to_string(),
            "file:/etc/drover/vm1"
        );
    }
}
