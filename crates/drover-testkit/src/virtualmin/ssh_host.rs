//! An SSH host backups go to, as the simulated servers' `scp` sees it: one user with a
//! password, its directories and the archives written there. Shared by every simulated server
//! given it, so that an archive one server wrote another restores, as with a real host.
//! Its answers are the real server's (Virtualmin 8.1.0 with OpenSSH, seen in the real tier).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::SimDomain;

#[derive(Debug, Clone)]
pub struct SimSshHost(Arc<Mutex<Host>>);

#[derive(Debug)]
struct Host {
    host: String,
    port: u16,
    user: String,
    password: String,
    /// Private key files on the servers whose public halves the user authorized.
    key_files: BTreeSet<String>,
    directories: BTreeSet<String>,
    archives: BTreeMap<String, SimDomain>,
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
    /// A host at `host:port` where `user` logs in with `password`, with `directories`.
    pub fn new(host: &str, port: u16, user: &str, password: &str, directories: &[&str]) -> Self {
        Self(Arc::new(Mutex::new(Host {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            key_files: BTreeSet::new(),
            directories: directories.iter().map(|d| (*d).to_owned()).collect(),
            archives: BTreeMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Host> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_at(&self, host: &str, port: u16) -> bool {
        let me = self.lock();
        me.host == host && me.port == port
    }

    /// The archives on the host, by path.
    pub fn archives(&self) -> Vec<String> {
        self.lock().archives.keys().cloned().collect()
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

    fn login(&self, url: &SshUrl) -> Result<MutexGuard<'_, Host>, ScpRefusal> {
        let me = self.lock();
        // A login starting with `|` is a key file's path on the server, `/` written as `|`.
        let admitted = match url.password.strip_prefix('|') {
            Some(_) => me.key_files.contains(&url.password.replace('|', "/")),
            None => me.password == url.password,
        };
        if me.user != url.user || !admitted {
            let who = format!("{}@{}", url.user, url.host);
            let prompt = format!("\r{who}'s password: \r\n");
            return Err(ScpRefusal::Connect(format!(
                "{prompt}Permission denied, please try again.\r\r\n{prompt}Permission denied, please \
                 try again.\r\r\n{prompt}{who}: Permission denied (publickey,password).\r\r\n\
                 scp: Connection closed\r\r\n"
            )));
        }
        Ok(me)
    }

    pub(crate) fn check_login(&self, url: &SshUrl) -> Result<(), ScpRefusal> {
        self.login(url).map(drop)
    }

    pub(crate) fn upload(&self, url: &SshUrl, domain: SimDomain) -> Result<(), ScpRefusal> {
        let mut me = self.login(url)?;
        let directory = url.path.rsplit_once('/').map_or("/", |(d, _)| d);
        if !me.directories.contains(directory) {
            return Err(ScpRefusal::File(format!(
                "\r{}@{}'s password: \r\nscp: dest open \"{path}\": No such file or directory\r\r\n\
                 scp: failed to upload file /tmp/.webmin/30883-{file} to {path}\r\r\n",
                url.user,
                url.host,
                path = url.path,
                file = url.path.rsplit('/').next().unwrap_or_default(),
            )));
        }
        me.archives.insert(url.path.clone(), domain);
        Ok(())
    }

    pub(crate) fn download(&self, url: &SshUrl) -> Result<SimDomain, ScpRefusal> {
        let me = self.login(url)?;
        me.archives.get(&url.path).cloned().ok_or_else(|| {
            ScpRefusal::File(format!(
                "\r{}@{}'s password: \r\nscp: {}: No such file or directory\r\r\n",
                url.user, url.host, url.path
            ))
        })
    }

    /// `ssh … rm -rf PATH` (and its companions): one already gone is no error.
    pub(crate) fn remove(&self, url: &SshUrl) -> Result<(), ScpRefusal> {
        let mut me = self.login(url)?;
        me.archives.remove(&url.path);
        Ok(())
    }
}

/// What `scp` says when nothing listens at `host:port`.
pub(crate) fn connection_refused(url: &SshUrl) -> ScpRefusal {
    ScpRefusal::Connect(format!(
        "ssh: connect to host {} port {}: Connection refused\r\r\nscp: Connection closed\r\r\n",
        url.host, url.port
    ))
}
