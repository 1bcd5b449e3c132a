//! A real OpenSSH server on a free loopback port, for backups to an SSH host: its own Ed25519
//! host key (one per machine, kept across runs, so that a server's `scp` that met it once
//! at an address finds the same key there again), and one user, `drover-backup`, who logs in
//! with a password of the run's or a key made for it only when a test asks (root needed for
//! that), locked again afterwards. Needs Debian's openssh-server.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// Kept across runs and checkouts.
const STATE: &str = "/var/lib/drover-tests/sshd";

#[derive(Debug)]
pub struct TestSshd {
    child: Child,
    pub port: u16,
    pub user: &'static str,
    /// `SHA256:…` of its Ed25519 key, as `ssh-keygen -lf` prints it.
    pub host_key: String,
    dir: PathBuf,
    /// The user's password, once [`TestSshd::login`] set it; locked again when dropped.
    password: Option<String>,
    /// The key pair [`TestSshd::authorize_key`] made (its public half in this server's own
    /// authorized_keys file): removed when dropped.
    key: Option<PathBuf>,
    /// Made by [`TestSshd::directory`], removed when dropped.
    directories: Vec<String>,
}

impl TestSshd {
    pub const USER: &str = "drover-backup";

    /// Starts a server and waits until it accepts connections. Its host key is made once per
    /// machine; no user is touched (see [`TestSshd::login`]).
    pub fn start() -> Result<Self, String> {
        Self::start_as(Self::USER, None)
    }

    /// As [`TestSshd::start`], letting `user` log in (root too, with a key only), and, given
    /// a `command` script, running it instead of whatever a client asks (sshd's
    /// `ForceCommand`; the client's command line is in `SSH_ORIGINAL_COMMAND`).
    pub fn start_as(user: &'static str, command: Option<&str>) -> Result<Self, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is missing: install the Debian package openssh-server (scripts/test does)"
            ));
        }
        let key = host_key()?;
        let printed = run("ssh-keygen", &["-l", "-f", &path(&key)])?;
        let host_key = printed
            .split_whitespace()
            .nth(1)
            .filter(|f| f.starts_with("SHA256:"))
            .ok_or_else(|| format!("ssh-keygen printed no SHA256 fingerprint: {printed}"))?
            .to_owned();
        // Privilege separation wants this directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut last = String::new();
        // A port found free may be taken before sshd binds it: then sshd exits, and another
        // is tried.
        for _ in 0..5 {
            match Self::spawn(&key, &host_key, user, command) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(
        key: &Path,
        host_key: &str,
        user: &'static str,
        command: Option<&str>,
    ) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::temp_dir().join(format!("drover-sshd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n\
             AllowUsers {user}\nSubsystem sftp internal-sftp\n\
             AuthorizedKeysFile {keys}\nStrictModes no\nPermitRootLogin prohibit-password\n",
            key = key.display(),
            keys = dir.join("authorized_keys").display(),
        );
        if let Some(script) = command {
            // Readable and runnable by the user sshd runs it as.
            use std::os::unix::fs::PermissionsExt as _;
            let path = dir.join("command");
            std::fs::write(&path, script).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            config.push_str(&format!("ForceCommand {}\n", path.display()));
        }
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
        let mut server = Self {
            child,
            port,
            user,
            host_key: host_key.to_owned(),
            dir,
            password: None,
            key: None,
            directories: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = || std::fs::read_to_string(server.dir.join("sshd.log")).unwrap_or_default();
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("sshd exited ({status}); its log:\n{}", log()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Listening, and it is ours: it has not exited for want of the port.
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(None) = server.child.try_wait() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd did not listen within 10 s; its log:\n{}",
                    log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets the backup user log in, with a password of this run's (made when missing; needs
    /// root). Locked again when the server is dropped, so that no known password opens the
    /// machine's own sshd afterwards.
    pub fn login(&mut self) -> Result<String, String> {
        let user = Self::USER;
        made_user()?;
        let mut bytes = [0u8; 12];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
            &mut bytes,
        )
        .map_err(|e| e.to_string())?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("chpasswd: {e}"))?;
        chpasswd
            .stdin
            .take()
            .expect("piped")
            .write_all(format!("{user}:{password}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        if !chpasswd.wait().map_err(|e| e.to_string())?.success() {
            return Err(format!(
                "chpasswd could not set {user}'s password (the real tier runs as root)"
            ));
        }
        run("usermod", &["--unlock", user])?;
        self.password = Some(password.clone());
        Ok(password)
    }

    /// Lets the backup user log in with a key made for this server (needs root): the private
    /// half's path is returned (root's alone, where a server on this machine reads it); the
    /// public half is in this server's own authorized_keys file (no other server's, and not
    /// the user's), so test processes running at once do not meet. The same key each time.
    pub fn authorize_key(&mut self) -> Result<String, String> {
        if let Some(key) = &self.key {
            return Ok(path(key));
        }
        made_user()?;
        let key = state_dir()?.join(format!("client-{}_ed25519", self.port));
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &path(&key)],
        )?;
        self.key = Some(key.clone());
        let public =
            std::fs::read_to_string(key.with_extension("pub")).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join("authorized_keys"), public).map_err(|e| e.to_string())?;
        Ok(path(&key))
    }

    /// A directory of the user's, made for one test (named after `name` and this server's
    /// port, so that tests running at once have their own): where its archives go. Removed
    /// when the server is dropped.
    pub fn directory(&mut self, name: &str) -> Result<String, String> {
        made_user()?;
        let dir = format!("/home/{}/{name}-{}", Self::USER, self.port);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
        run("chown", &[&format!("{0}:{0}", Self::USER), &dir])?;
        self.directories.push(dir.clone());
        Ok(dir)
    }

    /// The files in one of its directories, by name.
    pub fn files(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        // What is named after the port goes while the port is still ours: another test's
        // server may take the port (and the same names) once this one has stopped.
        for dir in &self.directories {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(key) = &self.key {
            let _ = std::fs::remove_file(key);
            let _ = std::fs::remove_file(key.with_extension("pub"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.password.is_some() {
            let _ = run("usermod", &["--lock", Self::USER]);
        }
    }
}

/// The backup user, made when missing (needs root).
fn made_user() -> Result<(), String> {
    let user = TestSshd::USER;
    let exists = || {
        Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists() {
        // Another test process may make it at the same moment: made is made.
        let made = run("useradd", &["--create-home", "--shell", "/bin/sh", user]);
        if !exists() {
            return Err(made
                .err()
                .unwrap_or_else(|| format!("useradd made no {user}")));
        }
    }
    Ok(())
}

/// Where the tests' SSH keys are kept: without root (a developer's fast tier), in the user's
/// temporary directory.
fn state_dir() -> Result<PathBuf, String> {
    let state = match std::fs::create_dir_all(STATE) {
        Ok(()) => PathBuf::from(STATE),
        Err(_) => std::env::temp_dir().join("drover-tests-sshd"),
    };
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    Ok(state)
}

/// The host key, made once per machine: made aside and linked into place, so that test
/// processes starting at once end up with one key (the first link wins).
fn host_key() -> Result<PathBuf, String> {
    let state = state_dir()?;
    let key = state.join("ssh_host_ed25519_key");
    if !key.exists() {
        let aside = state.join(format!("new-{}", std::process::id()));
        let _ = std::fs::remove_file(&aside);
        let _ = std::fs::remove_file(aside.with_extension("pub"));
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &path(&aside)],
        )?;
        match std::fs::hard_link(&aside, &key) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{}: {e}", key.display())),
        }
        let _ = std::fs::remove_file(&aside);
        let _ = std::fs::remove_file(aside.with_extension("pub"));
    }
    Ok(key)
}
fn path(p: &Path) -> String {
    p.display().to_string()
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
