//! A real OpenSSH server on a free loopback port, for backups to an SSH host: its own host key
//! (kept across runs, so that servers which met it once still trust it), and one user,
//! `drover-backup`, logging in with a password. Needs root (to make the user and to let it log
//! in) and Debian's openssh-server.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// Kept across runs and checkouts: a server that stored this host's key (Virtualmin's `scp`
/// trusts on first use) refuses a new one for the same address.
const STATE: &str = "/var/lib/drover-tests/sshd";

#[derive(Debug)]
pub struct TestSshd {
    child: Child,
    pub port: u16,
    pub user: &'static str,
    pub password: &'static str,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub host_key: String,
    dir: PathBuf,
}

impl TestSshd {
    pub const USER: &str = "drover-backup";
    pub const PASSWORD: &str = "drover-test-backup-Pw1";

    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Result<Self, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is missing: install the Debian package openssh-server (scripts/test does)"
            ));
        }
        let state = Path::new(STATE);
        std::fs::create_dir_all(state).map_err(|e| format!("{STATE}: {e}"))?;
        let key = state.join("ssh_host_ed25519_key");
        if !key.exists() {
            run(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", &path(&key)],
            )?;
        }
        let printed = run(
            "ssh-keygen",
            &["-l", "-f", &path(&key.with_extension("pub"))],
        )?;
        let host_key = printed
            .split_whitespace()
            .nth(1)
            .filter(|f| f.starts_with("SHA256:"))
            .ok_or_else(|| format!("ssh-keygen printed no SHA256 fingerprint: {printed}"))?
            .to_owned();
        ensure_user()?;
        // Privilege separation wants this directory.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::temp_dir().join(format!("drover-sshd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n\
             AllowUsers {user}\nSubsystem sftp internal-sftp\n",
            key = key.display(),
            user = Self::USER
        );
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
        let server = Self {
            child,
            port,
            user: Self::USER,
            password: Self::PASSWORD,
            host_key,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(server.dir.join("sshd.log")).unwrap_or_default();
                return Err(format!("sshd did not listen within 10 s; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// A directory of the user's, made for one test: where its archives go.
    pub fn directory(&self, name: &str) -> Result<String, String> {
        let dir = format!("/home/{}/{name}", Self::USER);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
        run("chown", &[&format!("{0}:{0}", Self::USER), &dir])?;
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The backup user, made once, its password set each time (the same in every process: tests running at
/// once share the user).
fn ensure_user() -> Result<(), String> {
    let user = TestSshd::USER;
    let exists = |user: &str| {
        Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists(user) {
        // Another test process may make it at the same moment: made is made.
        let made = run("useradd", &["--create-home", "--shell", "/bin/sh", user]);
        if !exists(user) {
            return made.map(drop);
        }
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("chpasswd: {e}"))?;
    use std::io::Write;
    chpasswd
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{user}:{}\n", TestSshd::PASSWORD).as_bytes())
        .map_err(|e| e.to_string())?;
    match chpasswd.wait().map_err(|e| e.to_string())?.success() {
        true => Ok(()),
        false => Err(format!(
            "chpasswd could not set {user}'s password (drover's tests run as root)"
        )),
    }
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
