//! drover's own look at an SSH backup host before a server is sent there: the host must
//! present the key its destination pins. The servers' own `scp` trusts a host it has never
//! seen (Virtualmin answers "yes" for it), so this is where a replaced or impersonated host is
//! stopped before any password or archive goes to it.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_core::{BackupDestinationSpec, BackupLocation, SshHostKey, SshLocation};
use drover_virtualmin::SshLogin;
use russh::keys::{Algorithm, EcdsaCurve};

/// How long drover waits for the host's key.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How a server logs in to reach `archive`, kept at `destination`: not at all for a directory
/// on the server itself; for an SSH host with its user's password or the key file on the
/// servers, once drover saw the host present the pinned key. The error says what an operator
/// must fix.
pub async fn archive_login(
    fleet: &super::Fleet,
    destination: &BackupDestinationSpec,
    archive: &BackupLocation,
) -> Result<Option<SshLogin>, String> {
    let BackupLocation::Ssh(ssh) = archive else {
        return Ok(None);
    };
    let Some(pinned) = &destination.host_key else {
        return Err(format!(
            "the destination {} has no host_key for {archive}",
            destination.name
        ));
    };
    let login = match (&destination.credentials, &destination.key_file) {
        (_, Some(key)) => SshLogin::KeyFile(key.clone()),
        (Some(credentials), None) => SshLogin::Password(
            fleet
                .secret(credentials)
                .map_err(|e| format!("the password of {archive} cannot be read: {e}"))?,
        ),
        (None, None) => {
            return Err(format!(
                "the destination {} has no credentials or key_file for {archive}",
                destination.name
            ));
        }
    };
    check_host_key(ssh, pinned).await?;
    Ok(Some(login))
}

/// The key types drover can check, one connection each: a host offers several, and the
/// operator pinned one of them. (RSA keys are not among them: drover's SSH library is built
/// without RSA.)
const KEY_TYPES: &[&[Algorithm]] = &[
    &[Algorithm::Ed25519],
    &[
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
    ],
];

/// Ok when the host at `location` presents `pinned` (its Ed25519 or ECDSA key); otherwise
/// what it presented, or why it could not be asked, in words an operator can act on.
pub async fn check_host_key(location: &SshLocation, pinned: &SshHostKey) -> Result<(), String> {
    let host = format!("{}:{}", location.host_for_url(), location.port);
    let mut presented = Vec::new();
    let mut failure = None;
    for key_type in KEY_TYPES {
        match presents(location, key_type, pinned).await {
            Ok(Some(key)) if key == pinned.as_str() => return Ok(()),
            Ok(Some(key)) => presented.push(key),
            Ok(None) => {}
            Err(e) => failure = Some(e),
        }
    }
    match (presented.is_empty(), failure) {
        (false, _) => Err(format!(
            "the SSH host {host} presented the host key {}, not the pinned {pinned}: nothing \
             was sent to it (pin its Ed25519 or ECDSA key with host_key, as `ssh-keyscan -t \
             ed25519 -p {} {} | ssh-keygen -lf -` prints it, checked on the host itself)",
            presented.join(" and "),
            location.port,
            location.host
        )),
        (true, Some(e)) => Err(format!(
            "drover could not check the host key of {host} (it does before each use): {e}"
        )),
        (true, None) => Err(format!(
            "the SSH host {host} offers no Ed25519 or ECDSA host key for drover to check"
        )),
    }
}

/// The fingerprint of the `key_type` key the host presents: none when it has no key of the
/// type.
async fn presents(
    location: &SshLocation,
    key_type: &'static [Algorithm],
    pinned: &SshHostKey,
) -> Result<Option<String>, String> {
    let seen = Arc::new(Mutex::new(None));
    let handler = drover_virtualmin::PinnedHostKey {
        pinned: pinned.as_str().to_owned(),
        seen: Arc::clone(&seen),
    };
    let config = Arc::new(russh::client::Config {
        preferred: russh::Preferred {
            key: Cow::Borrowed(key_type),
            ..russh::Preferred::default()
        },
        ..russh::client::Config::default()
    });
    let address = (location.host.as_str(), location.port);
    let connected =
        tokio::time::timeout(TIMEOUT, russh::client::connect(config, address, handler)).await;
    let presented = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match connected {
        Ok(Ok(session)) => {
            let _ = session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            Ok(presented)
        }
        // Refused by our own check: the key is what it presented.
        Ok(Err(_)) if presented.is_some() => Ok(presented),
        // No key of this type in common.
        Ok(Err(russh::Error::NoCommonAlgo { .. })) => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
    }
}
