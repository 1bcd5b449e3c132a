//! drover's own look at an SSH backup host before a server is sent there: the host must
//! present the key its destination pins. The servers' own `scp` trusts a host it has never
//! seen (Virtualmin answers "yes" for it), so this is where a replaced or impersonated host is
//! stopped before any password or archive goes to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_core::{BackupDestinationSpec, BackupLocation, SshHostKey, SshLocation};
use russh::keys::HashAlg;
use secrecy::SecretString;

/// How long drover waits for the host's key.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The password a server needs to reach `archive`, kept at `destination`: none for a
/// directory on the server itself; for an SSH host its user's, once drover saw the host
/// present the pinned key. The error says what an operator must fix.
pub async fn archive_password(
    fleet: &super::Fleet,
    destination: &BackupDestinationSpec,
    archive: &BackupLocation,
) -> Result<Option<SecretString>, String> {
    let BackupLocation::Ssh(ssh) = archive else {
        return Ok(None);
    };
    let (Some(credentials), Some(pinned)) = (&destination.credentials, &destination.host_key)
    else {
        return Err(format!(
            "the destination {} has no credentials or host_key for {archive}",
            destination.name
        ));
    };
    let password = fleet
        .secret(credentials)
        .map_err(|e| format!("the password of {archive} cannot be read: {e}"))?;
    check_host_key(ssh, pinned).await?;
    Ok(Some(password))
}

/// Ok when the host at `location` presents `pinned`; otherwise what it presented, or why it
/// could not be asked, in words an operator can act on.
pub async fn check_host_key(location: &SshLocation, pinned: &SshHostKey) -> Result<(), String> {
    let seen = Arc::new(Mutex::new(None));
    let handler = Pin {
        pinned: pinned.as_str().to_owned(),
        seen: Arc::clone(&seen),
    };
    let config = Arc::new(russh::client::Config::default());
    let address = (location.host.as_str(), location.port);
    let connected =
        tokio::time::timeout(TIMEOUT, russh::client::connect(config, address, handler)).await;
    let presented = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let host = format!("{}:{}", location.host_for_url(), location.port);
    match (connected, presented) {
        (Ok(Ok(session)), _) => {
            let _ = session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            Ok(())
        }
        (_, Some(other)) if other != pinned.as_str() => Err(format!(
            "the SSH host {host} presented the host key {other}, not the pinned {pinned}: \
             nothing was sent to it (if its key was changed on purpose, pin the new one with \
             host_key)"
        )),
        (Ok(Err(e)), _) => Err(format!(
            "drover could not check the host key of {host} (it does before each use): {e}"
        )),
        (Err(_), _) => Err(format!(
            "drover could not check the host key of {host} (it does before each use): no \
             answer within {} s",
            TIMEOUT.as_secs()
        )),
    }
}

struct Pin {
    pinned: String,
    seen: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for Pin {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is pinned by the key it certifies.
        let key = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => cert.public_key(),
        };
        let seen = key.fingerprint(HashAlg::Sha256).to_string();
        let matches = seen == self.pinned;
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(seen);
        Ok(matches)
    }
}
