//! Real PowerDNS servers for tests: `pdns_server` with the gsqlite3 backend (Debian packages
//! `pdns-server`, `pdns-backend-sqlite3`, and `sqlite3` to create the database), each on its own
//! loopback ports and directory, as in `powerdns-captures/setup/`.
//!
//! The server runs under a small shell that waits on its stdin: when the test process ends, for
//! any reason, the pipe closes and the shell stops the server and removes its directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PDNS_SERVER: &str = "/usr/sbin/pdns_server";
pub const SQLITE_SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

#[derive(Debug)]
pub struct PowerDns {
    /// `http://127.0.0.1:PORT`
    pub api_url: String,
    pub api_key: String,
    /// Where it answers DNS (UDP and TCP).
    pub dns_addr: SocketAddr,
    pub dir: PathBuf,
    // Held for its stdin: dropping it (or the process ending) stops the server.
    _guard: Child,
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

fn free_tcp_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_dns_port() -> std::io::Result<u16> {
    // The DNS port must be free for UDP and TCP alike.
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

impl PowerDns {
    /// Starts a fresh server and waits until its API answers.
    pub fn start() -> Result<Self, String> {
        for (path, package) in [
            (PDNS_SERVER, "pdns-server"),
            (SQLITE_SCHEMA, "pdns-backend-sqlite3"),
            ("/usr/bin/sqlite3", "sqlite3"),
        ] {
            if !std::path::Path::new(path).exists() {
                return Err(format!(
                    "{path} is missing: install the Debian package {package} (.ci/run does)"
                ));
            }
        }
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("drover-pdns-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let api_port = free_tcp_port().map_err(|e| e.to_string())?;
        let dns_port = free_dns_port().map_err(|e| e.to_string())?;
        let api_key = format!("drover-test-key-{n}");
        let config = format!(
            "launch=gsqlite3\n\
             gsqlite3-database={dir}/pdns.sqlite3\n\
             local-address=127.0.0.1\n\
             local-port={dns_port}\n\
             api=yes\n\
             api-key={api_key}\n\
             webserver=yes\n\
             webserver-address=127.0.0.1\n\
             webserver-port={api_port}\n\
             webserver-allow-from=127.0.0.0/8\n\
             socket-dir={dir}\n\
             daemon=no\n\
             guardian=no\n\
             disable-syslog=yes\n\
             log-dns-queries=no\n\
             loglevel=4\n\
             security-poll-suffix=\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pdns.conf"), config).map_err(|e| e.to_string())?;
        let script = format!(
            "set -e\n\
             sqlite3 '{dir}/pdns.sqlite3' < '{SQLITE_SCHEMA}'\n\
             '{PDNS_SERVER}' --config-dir='{dir}' > '{dir}/pdns.log' 2>&1 &\n\
             pid=$!\n\
             cat > /dev/null || true\n\
             kill $pid 2>/dev/null || true\n\
             wait $pid 2>/dev/null || true\n\
             rm -rf '{dir}'\n",
            dir = dir.display()
        );
        let guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sh for pdns_server: {e}"))?;
        let server = Self {
            api_url: format!("http://127.0.0.1:{api_port}"),
            api_key,
            dns_addr: SocketAddr::from(([127, 0, 0, 1], dns_port)),
            dir,
            _guard: guard,
        };
        server.wait_ready(Duration::from_secs(20))?;
        Ok(server)
    }

    /// Two servers shared by every test of the process (tests use their own zone names).
    pub fn shared() -> &'static [PowerDns; 2] {
        static SHARED: OnceLock<[PowerDns; 2]> = OnceLock::new();
        SHARED.get_or_init(|| {
            let start = || PowerDns::start().unwrap_or_else(|e| panic!("PowerDNS: {e}"));
            [start(), start()]
        })
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.get("/api/v1/servers/localhost") {
                Ok(answer) if answer.starts_with("HTTP/1.1 200") => return Ok(()),
                _ if Instant::now() > deadline => {
                    let log =
                        std::fs::read_to_string(self.dir.join("pdns.log")).unwrap_or_default();
                    return Err(format!(
                        "pdns_server did not answer within {limit:?}; its log:\n{log}"
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A bare GET of the API, for readiness checks.
    fn get(&self, path: &str) -> std::io::Result<String> {
        let addr = self.api_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {}\r\nConnection: close\r\n\r\n",
            self.api_key
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// The server's log so far, for messages when a test fails.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pdns.log")).unwrap_or_default()
    }
}
