//! An SSH host backups go to, as the simulated servers' `scp` sees it: a real sshd
//! ([`TestSshd`]) whose user's directories hold the archives, shared by every simulated server
//! given it, so that an archive one server wrote another restores, as with a real host.
//! Archives travel through the real sshd with OpenSSH's own `scp` (its words are the
//! failures); the login checked is the simulator's (the password, or a key file on the
//! server, as the URL gives it), while the transfer itself logs in with a key of the test
//! sshd's. The rest of its answers are the real server's (Virtualmin 8.1.0 with OpenSSH,
//! seen in the real tier).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use super::SimDomain;
use super::disk::{decode, encode};
use crate::TestSshd;

#[derive(Debug, Clone)]
pub struct SimSshHost(Arc<Mutex<Host>>);

#[derive(Debug)]
struct Host {
    port: u16,
    user: String,
    password: String,
    /// Private key files on the servers whose public halves the user authorized.
    key_files: BTreeSet<String>,
    /// Where archives are listed from.
    directories: Vec<String>,
    /// The key the transfers log in with.
    transport_key: String,
    /// The host keys `scp` met (it trusts a host on first use, as the servers' does).
    known_hosts: tempfile::NamedTempFile,
}

/// Where an `ssh://user:password@host:port:/path` URL points, as Virtualmin reads it.
pub(crate) struct SshUrl {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl SshUrl {
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("ssh://")?;
        let (login, place) = rest.rsplit_once('@')?;
        let (user, password) = login.split_once(':')?;
        let (host, after) = match place.strip_prefix('[') {
            Some(v6) => v6.split_once(']')?,
            None => place.split_at(place.find([':', '/'])?),
        };
        let after = after.strip_prefix(':').unwrap_or(after);
        let (port, path) = match after.split_once(':') {
            Some((port, path)) if port.chars().all(|c| c.is_ascii_digit()) => {
                (port.parse().ok()?, path)
            }
            _ => (22, after),
        };
        Some(Self {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Why `scp` did not get the file across, in its own words.
pub(crate) enum ScpRefusal {
    /// The connection failed: the line after "Failed to connect to SSH server : ".
    Connect(String),
    /// Connected, and the file could not be written or read: scp's lines.
    File(String),
}

impl SimSshHost {
    /// The host `sshd` is, where `user`'s password is `password` (the simulator's check) and
    /// archives are listed from `directories` (made with [`TestSshd::directory`]).
    pub fn on(sshd: &mut TestSshd, password: &str, directories: &[&str]) -> Result<Self, String> {
        Ok(Self(Arc::new(Mutex::new(Host {
            port: sshd.port,
            user: sshd.user.to_owned(),
            password: password.to_owned(),
            key_files: BTreeSet::new(),
            directories: directories.iter().map(|d| (*d).to_owned()).collect(),
            transport_key: sshd.authorize_key()?,
            known_hosts: tempfile::NamedTempFile::new().map_err(|e| e.to_string())?,
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, Host> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_at(&self, host: &str, port: u16) -> bool {
        host == "127.0.0.1" && self.lock().port == port
    }

    /// The archives on the host, by path.
    pub fn archives(&self) -> Vec<String> {
        let directories = self.lock().directories.clone();
        let mut found: Vec<String> = directories
            .iter()
            .flat_map(|dir| {
                std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(move |e| {
                        Some(format!("{dir}/{}", e.file_name().into_string().ok()?))
                    })
            })
            .collect();
        found.sort();
        found
    }

    /// The user's password changes (the operator rotated it on the host).
    pub fn set_password(&self, password: &str) {
        self.lock().password = password.to_owned();
    }

    /// The key file at `path` on the servers may log in as the user (its public half is in
    /// the user's authorized_keys).
    pub fn authorize_key_file(&self, path: &str) {
        self.lock().key_files.insert(path.to_owned());
    }

    /// How to reach the host for the login `url` gives, once the simulator admitted it.
    fn transfer(&self, url: &SshUrl) -> Result<Transfer, ScpRefusal> {
        let me = self.lock();
        let who = format!("{}@{}", url.user, url.host);
        let prompt = format!("\r{who}'s password: \r\n");
        // A login starting with `|` is a key file's path on the server, `/` written as `|`;
        // ssh asks for a password on the server's terminal only without one.
        let (admitted, shown) = match url.password.strip_prefix('|') {
            Some(_) => (
                me.key_files.contains(&url.password.replace('|', "/")),
                String::new(),
            ),
            None => (me.password == url.password, prompt.clone()),
        };
        if me.user != url.user || !admitted {
            return Err(ScpRefusal::Connect(format!(
                "{prompt}Permission denied, please try again.\r\r\n{prompt}Permission denied, please \
                 try again.\r\r\n{prompt}{who}: Permission denied (publickey,password).\r\r\n\
                 scp: Connection closed\r\r\n"
            )));
        }
        let options = [
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=accept-new",
            "GlobalKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "ConnectTimeout=10",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!(
            "UserKnownHostsFile={}",
            me.known_hosts.path().display()
        )])
        .flat_map(|option| ["-o".to_owned(), option])
        .chain(["-i".to_owned(), me.transport_key.clone()])
        .collect();
        Ok(Transfer {
            login: format!("{}@127.0.0.1", me.user),
            port: url.port,
            options,
            prompt: shown,
        })
    }

    pub(crate) fn check_login(&self, url: &SshUrl) -> Result<(), ScpRefusal> {
        self.transfer(url).map(drop)
    }

    /// `scp`s the archive of `domains` to the host.
    pub(crate) fn upload(&self, url: &SshUrl, domains: &[SimDomain]) -> Result<(), ScpRefusal> {
        let transfer = self.transfer(url)?;
        let file = tempfile::NamedTempFile::new().map_err(local)?;
        std::fs::write(file.path(), encode(domains)).map_err(local)?;
        transfer.scp(
            &file.path().display().to_string(),
            &format!("{}:{}", transfer.login, url.path),
        )
    }

    /// `scp`s an archive back from the host.
    pub(crate) fn download(&self, url: &SshUrl) -> Result<Vec<SimDomain>, ScpRefusal> {
        let transfer = self.transfer(url)?;
        let dir = tempfile::tempdir().map_err(local)?;
        let file: PathBuf = dir.path().join("archive.tar.gz");
        transfer.scp(
            &format!("{}:{}", transfer.login, url.path),
            &file.display().to_string(),
        )?;
        let bytes = std::fs::read(&file).map_err(local)?;
        decode(&bytes).ok_or_else(|| ScpRefusal::File(format!("{} is not an archive\n", url.path)))
    }

    /// `ssh … rm -f PATH` (and its companions): one already gone is no error.
    pub(crate) fn remove(&self, url: &SshUrl) -> Result<(), ScpRefusal> {
        let transfer = self.transfer(url)?;
        let mut ssh = Command::new("ssh");
        ssh.arg("-p")
            .arg(url.port.to_string())
            .args(&transfer.options)
            .arg(&transfer.login)
            .args(["rm", "-f", "--"])
            // The remote shell reads the command line: each path quoted for it.
            .args(
                ["", ".info", ".dom"]
                    .map(|suffix| format!("'{}{suffix}'", url.path.replace('\'', "'\\''"))),
            );
        transfer.run(ssh)
    }
}

/// One way to the host: the transfer key's login and options, and the password prompt the
/// server's terminal shows first when the URL gave a password.
struct Transfer {
    login: String,
    port: u16,
    options: Vec<String>,
    prompt: String,
}

impl Transfer {
    /// OpenSSH's `scp` from `from` to `to` (as Virtualmin runs it: without `-q`, which would
    /// drop its diagnostics too).
    fn scp(&self, from: &str, to: &str) -> Result<(), ScpRefusal> {
        let mut scp = Command::new("scp");
        scp.arg("-P")
            .arg(self.port.to_string())
            .args(&self.options)
            .args([from, to]);
        self.run(scp)
    }

    /// Runs ssh or scp; on failure its words as the server reads them: Virtualmin runs them in
    /// a pseudo-terminal, which shows the password prompt and turns each newline into a
    /// carriage return and a newline.
    fn run(&self, mut command: Command) -> Result<(), ScpRefusal> {
        let output = command.output().map_err(local)?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr).replace('\n', "\r\n");
        Err(ScpRefusal::File(format!("{}{said}", self.prompt)))
    }
}

/// A failure on the simulator's own side (a temporary file, `scp` missing).
fn local(e: std::io::Error) -> ScpRefusal {
    ScpRefusal::File(format!("the simulator could not run scp: {e}\n"))
}

/// What `scp` says when nothing listens at `host:port`.
pub(crate) fn connection_refused(url: &SshUrl) -> ScpRefusal {
    ScpRefusal::Connect(format!(
        "ssh: connect to host {} port {}: Connection refused\r\r\nscp: Connection closed\r\r\n",
        url.host, url.port
    ))
}
