//! The break-glass path: Virtualmin's own `virtualmin` command run over SSH when remote.cgi
//! does not answer. Only the programs an operator needs then (look, suspend, unsuspend) are
//! offered; what comes back is parsed as remote.cgi's text answers are (remote.cgi runs the
//! same programs and prints their output with an `Exit status:` line).
//!
//! The host must present the key pinned for it: checked during the handshake, before any
//! credential is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::HashAlg;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::DomainInfo;
use crate::error::{ErrorKind, VirtualminError};
use crate::reply::{Reply, parse_text_output};
use crate::request::Call;

/// How drover reaches a server over SSH.
#[derive(Clone)]
pub struct SshAccess {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key (OpenSSH format, Ed25519 or ECDSA), as read from its credential.
    pub key: SecretString,
    /// `SHA256:…`, as `ssh-keygen -lf` prints the host's key.
    pub host_key: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for SshAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshAccess")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("key", &"[redacted]")
            .field("host_key", &self.host_key)
            .finish()
    }
}

/// The `virtualmin` command on one server, over SSH.
#[derive(Debug, Clone)]
pub struct SshVirtualmin {
    access: SshAccess,
}

impl SshVirtualmin {
    pub fn new(access: SshAccess) -> Self {
        Self { access }
    }

    /// Every domain on the server, as remote.cgi's `list-domains --multiline` lists them.
    pub async fn list_domains(&self) -> Result<Vec<DomainInfo>, VirtualminError> {
        let reply = self.call(&crate::operations::list_domains_call()).await?;
        Ok(crate::operations::records(reply)
            .into_iter()
            .map(DomainInfo::from_record)
            .collect())
    }

    pub async fn enable_domain(&self, domain: &str) -> Result<(), VirtualminError> {
        crate::operations::idempotent(
            self.call(&crate::operations::enable_domain_call(domain))
                .await,
        )
    }

    pub async fn disable_domain(
        &self,
        domain: &str,
        why: Option<&str>,
    ) -> Result<(), VirtualminError> {
        crate::operations::idempotent(
            self.call(&crate::operations::disable_domain_call(domain, why))
                .await,
        )
    }

    /// The server's own description, as its text lines.
    pub async fn info(&self) -> Result<Reply, VirtualminError> {
        self.call(&crate::operations::info_call()).await
    }

    /// Runs one program and reads its answer as remote.cgi's text form.
    async fn call(&self, call: &Call) -> Result<Reply, VirtualminError> {
        let command = call.command_line()?;
        let (output, status) = tokio::time::timeout(self.access.timeout, self.run(&command))
            .await
            .map_err(|_| {
                VirtualminError::new(
                    ErrorKind::Transient,
                    format!(
                        "no answer over SSH from {}:{} within {} s",
                        self.access.host,
                        self.access.port,
                        self.access.timeout.as_secs()
                    ),
                )
            })??;
        parse_text_output(&output, status)
    }

    async fn run(&self, command: &str) -> Result<(String, u32), VirtualminError> {
        let shell = SshShell::connect(&self.access).await?;
        let ran = shell.exec(command, None).await;
        shell.close().await;
        let ran = ran?;
        Ok((ran.combined, ran.status))
    }
}

/// The longest an SSH handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a command run over SSH printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    /// Both, in the order they came.
    pub combined: String,
    pub status: u32,
}

/// A logged-in SSH connection to one host, for running commands as its user: checked to be
/// the pinned host before the key is offered.
pub struct SshShell {
    session: russh::client::Handle<PinnedHostKey>,
    where_: String,
}

impl std::fmt::Debug for SshShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshShell")
            .field("to", &self.where_)
            .finish()
    }
}

impl SshShell {
    /// Connects, checks the host's key against the pin, and logs in with the key.
    pub async fn connect(access: &SshAccess) -> Result<Self, VirtualminError> {
        let where_ = format!("{}@{}:{}", access.user, access.host, access.port);
        let seen = Arc::new(Mutex::new(None));
        let handler = PinnedHostKey {
            pinned: access.host_key.clone(),
            seen: Arc::clone(&seen),
        };
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(access.timeout),
            ..russh::client::Config::default()
        });
        // The handshake is short whatever the commands may take.
        let handshake = access.timeout.min(CONNECT_TIMEOUT);
        let connected = tokio::time::timeout(
            handshake,
            russh::client::connect(config, (access.host.as_str(), access.port), handler),
        )
        .await
        .map_err(|_| {
            VirtualminError::new(
                ErrorKind::Transient,
                format!(
                    "no SSH answer from {where_} within {} s",
                    handshake.as_secs()
                ),
            )
        })?;
        let mut session = match connected {
            Ok(session) => session,
            Err(e) => {
                let presented = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                return Err(match presented {
                    Some(key) if key != access.host_key => VirtualminError::new(
                        ErrorKind::Auth,
                        format!(
                            "{where_} presented the host key {key}, not the pinned {}: nothing \
                             was sent to it",
                            access.host_key
                        ),
                    ),
                    _ => VirtualminError::new(
                        ErrorKind::Transient,
                        format!("cannot reach {where_} over SSH: {e}"),
                    ),
                });
            }
        };
        let key = russh::keys::decode_secret_key(access.key.expose_secret(), None).map_err(|e| {
            VirtualminError::new(
                ErrorKind::Invalid,
                format!(
                    "the SSH key for {where_} cannot be read (an unencrypted Ed25519 or ECDSA key \
                     in OpenSSH format is expected): {e}"
                ),
            )
        })?;
        let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None);
        let auth = tokio::time::timeout(
            handshake,
            session.authenticate_publickey(access.user.clone(), key),
        )
        .await
        .map_err(|_| {
            VirtualminError::new(
                ErrorKind::Transient,
                format!(
                    "{where_} did not answer drover's key within {} s",
                    handshake.as_secs()
                ),
            )
        })?
        .map_err(|e| transient(&where_, e))?;
        if !auth.success() {
            return Err(VirtualminError::new(
                ErrorKind::Auth,
                format!("{where_} refused drover's SSH key"),
            ));
        }
        Ok(Self { session, where_ })
    }

    /// Runs `command` through the user's shell, `stdin` given on its standard input (then
    /// closed), and waits for it to end.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, VirtualminError> {
        let where_ = &self.where_;
        let mut channel = self
            .session
            .channel_open_session()
            .await
            .map_err(|e| transient(where_, e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| transient(where_, e))?;
        if let Some(input) = stdin {
            channel
                .data(input)
                .await
                .map_err(|e| transient(where_, e))?;
        }
        channel.eof().await.map_err(|e| transient(where_, e))?;
        let (mut stdout, mut stderr, mut combined) = (Vec::new(), Vec::new(), Vec::new());
        let mut status = None;
        while let Some(message) = channel.wait().await {
            match message {
                russh::ChannelMsg::Data { data } => {
                    stdout.extend_from_slice(&data);
                    combined.extend_from_slice(&data);
                }
                russh::ChannelMsg::ExtendedData { data, .. } => {
                    stderr.extend_from_slice(&data);
                    combined.extend_from_slice(&data);
                }
                russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        let status = status.ok_or_else(|| {
            VirtualminError::new(
                ErrorKind::Transient,
                format!("{where_} closed the command without its exit status"),
            )
        })?;
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            combined: String::from_utf8_lossy(&combined).into_owned(),
            status,
        })
    }

    pub async fn close(self) {
        let _ = self
            .session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn transient(where_: &str, e: russh::Error) -> VirtualminError {
    VirtualminError::new(ErrorKind::Transient, format!("SSH to {where_}: {e}"))
}

/// Accepts the host only if it presents `pinned`; keeps what it presented for the error.
#[derive(Debug)]
pub struct PinnedHostKey {
    pub pinned: String,
    pub seen: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for PinnedHostKey {
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
