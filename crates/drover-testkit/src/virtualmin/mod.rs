//! A Virtualmin remote.cgi simulator: a stateful HTTP(S) server that answers like the real one
//! (status lines, headers, JSON/XML/text shapes, error texts, slowness, 401s with growing
//! delay and a 403 lock-out), with fault injection and counters that prove limits were kept.

pub mod content;
mod disk;
mod plans;
mod programs;
mod render;
mod server;
mod ssh_host;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use disk::SimDisk;
pub use plans::{PLAN_MAXES, SimPlan};
pub use programs::{Acme, Kind, SimDomain, SimUsage, State};
pub use ssh_host::SimSshHost;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub user: String,
    pub password: String,
    /// Serve HTTPS with a self-signed certificate (as Webmin does by default).
    pub tls: bool,
    /// Multiplies every latency: 1.0 is as slow as the real server, 0.0 answers at once.
    pub latency_scale: f64,
    /// Consecutive failed logins from one address that block it (Webmin's `blockhost_failures`).
    pub block_after: u32,
    pub block_for: Duration,
    /// Added per consecutive failed login for a user (Webmin's `passdelay`), before scaling.
    pub pass_delay: Duration,
    /// Latency of a successful call by program, where not the real server's median.
    pub latency: HashMap<String, Duration>,
    /// Account plans the server has besides "Default Plan" when it starts (tests may also
    /// push them into `State::plans` later).
    pub plans: Vec<SimPlan>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            user: "root".to_owned(),
            password: "secret".to_owned(),
            tls: false,
            latency_scale: 0.0,
            block_after: 5,
            block_for: Duration::from_secs(60),
            pass_delay: Duration::from_secs(1),
            latency: HashMap::new(),
            plans: Vec::new(),
        }
    }
}

/// A failure to inject instead of (or before) a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (a 5xx from a proxy, say).
    Status(u16),
    /// Read the request, never answer.
    Hang,
    /// Read the request, close the connection without a word.
    Drop,
    /// Answer 200 with bytes that are no format at all.
    Garble,
    /// Answer normally, this much later.
    Slow(Duration),
    /// Run the program at once, send its answer this much later.
    SlowAnswer(Duration),
    /// Run the program at once, send its answer once the test has released the domain the
    /// request names ([`Gate::release`]; `""` for a request naming none): a window exactly as
    /// long as the test needs.
    AnswerWhenReleased(Gate),
}

/// Holds answers about a domain until the test releases it.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    released: Arc<Mutex<std::collections::BTreeSet<String>>>,
    opened: Arc<tokio::sync::Notify>,
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.released, &other.released)
    }
}

impl Eq for Gate {}

impl Gate {
    /// Lets the answers about `domain` go, now and from now on.
    pub fn release(&self, domain: &str) {
        self.released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(domain.to_owned());
        self.opened.notify_waiters();
    }

    pub(crate) async fn wait(&self, domain: &str) {
        loop {
            let opened = self.opened.notified();
            if self
                .released
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(domain)
            {
                return;
            }
            opened.await;
        }
    }
}

/// What the simulator saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests that reached a program (authenticated, not faulted), by program.
    pub calls_by_program: BTreeMap<String, u64>,
    /// Calls that reached a program naming a domain (`domain=`), by domain, then program:
    /// `create-domain` twice for one domain shows here even when the second was refused.
    pub calls_by_domain: BTreeMap<String, BTreeMap<String, u64>>,
    /// Successful `create-domain` calls, by domain: a domain created twice shows 2.
    pub creates_by_domain: BTreeMap<String, u64>,
    /// Every request that arrived, faulted or not.
    pub requests: u64,
    /// The most requests that arrived within any one second.
    pub max_calls_per_second: u32,
    /// When the first and the latest request arrived.
    pub first_arrival: Option<tokio::time::Instant>,
    pub last_arrival: Option<tokio::time::Instant>,
}

/// Median latencies of the real server (INDEX.md), by program, for successful calls.
fn median_latency(program: &str) -> Duration {
    let ms = match program {
        "create-domain" => 6792,
        "delete-domain" => 4157,
        "disable-domain" => 2756,
        "enable-domain" => 2289,
        "modify-domain" => 2655,
        "create-user" => 2907,
        "delete-user" => 2905,
        "modify-user" => 1404,
        "create-database" => 2146,
        "backup-domain" => 2461,
        // Onto a server that lacks the domain, as a move's target does (wave 2's median).
        "restore-domain" => 9320,
        "generate-letsencrypt-cert" => 5000,
        "list-domains" => 482,
        "list-users" => 519,
        "list-templates" => 494,
        "info" => 454,
        "list-databases" => 325,
        "list-plans" => 266,
        "list-features" => 238,
        _ => 250,
    };
    Duration::from_millis(ms)
}

/// Refusals are quick on the real server: about a quarter of a second.
const REFUSAL_LATENCY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Faults {
    down: bool,
    queued: VecDeque<Fault>,
    probability: f64,
    random: Vec<Fault>,
}

#[derive(Debug, Default)]
struct Logins {
    failures_by_ip: HashMap<IpAddr, u32>,
    failures_by_user: HashMap<String, u32>,
    blocked_until: HashMap<IpAddr, tokio::time::Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    stats: SimStats,
    arrivals: VecDeque<tokio::time::Instant>,
}

#[derive(Debug)]
struct Shared {
    config: SimConfig,
    state: Mutex<State>,
    faults: Mutex<Faults>,
    logins: Mutex<Logins>,
    counters: Mutex<Counters>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct VirtualminSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    certificate_der: Option<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl VirtualminSim {
    /// Starts on a free loopback port.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address"), config).await
    }

    pub async fn start_on(listen: SocketAddr, config: SimConfig) -> std::io::Result<Self> {
        let mut state = State::default();
        state.plans.extend(config.plans.iter().cloned());
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
            logins: Mutex::new(Logins::default()),
            counters: Mutex::new(Counters::default()),
        });
        let (addr, certificate_der, task) = server::spawn(listen, Arc::clone(&shared)).await?;
        Ok(Self {
            shared,
            addr,
            certificate_der,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// This simulator as Virtualmin's own `virtualmin` command: a script for a test's sshd to
    /// run (`ForceCommand`) that turns the command line it was asked for into a remote.cgi
    /// call and prints the text answer, exiting with its status, as the real command does.
    pub fn as_command(&self) -> String {
        use base64::Engine as _;
        let config = &self.shared.config;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", config.user, config.password));
        COMMAND
            .replace("{url}", &self.url())
            .replace("{auth}", &auth)
    }

    /// The self-signed certificate served, for pinning.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.certificate_der.as_deref()
    }

    /// The SHA-256 of the served certificate in hex, as drover pins it.
    pub fn certificate_sha256(&self) -> Option<String> {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.certificate_der.as_deref()?);
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The JSON a drover server record needs to reach this simulator (name, address, its
    /// password file, and the pinned certificate when serving TLS), merged with `extra`
    /// (capacity, rate, tags).
    pub fn server_record(
        &self,
        name: &str,
        password_file: &std::path::Path,
        extra: serde_json::Value,
    ) -> serde_json::Value {
        let mut record = serde_json::json!({
            "name": name,
            "hostname": self.addr.ip().to_string(),
            "port": self.addr.port(),
            "credentials": format!("file:{}", password_file.display()),
        });
        if let Some(pin) = self.certificate_sha256() {
            record["pinned_cert_sha256"] = pin.into();
        }
        if let (Some(record), serde_json::Value::Object(extra)) = (record.as_object_mut(), extra) {
            record.extend(extra);
        }
        record
    }

    /// Reads or changes the server's state directly, as an administrator on the box would.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.shared.state))
    }

    /// Puts a file of the customer's into a domain's home directory (`None` when the server
    /// lacks the domain), as the customer's uploads would. (Also over HTTP: see
    /// [`content`](self::content).)
    pub fn put_file(&self, domain: &str, path: &str, text: &str) -> Option<()> {
        self.with_state(|s| s.put_file(domain, path, text))
    }

    /// A file of a domain's home directory, if the server has the domain and the file.
    pub fn file(&self, domain: &str, path: &str) -> Option<String> {
        self.with_state(|s| s.file(domain, path))
    }

    /// Delivers a letter to a mailbox of a domain (`None` when the server lacks either).
    pub fn put_mail(&self, domain: &str, mailbox: &str, letter: &str) -> Option<()> {
        self.with_state(|s| s.put_mail(domain, mailbox, letter))
    }

    /// The letters in a mailbox of a domain.
    pub fn mail(&self, domain: &str, mailbox: &str) -> Vec<String> {
        self.with_state(|s| s.mail(domain, mailbox))
    }

    /// Inserts a row into a database of a domain (`None` when the server lacks either), as
    /// the customer's application would.
    pub fn put_row(&self, domain: &str, database: &str, row: &str) -> Option<()> {
        self.with_state(|s| s.put_row(domain, database, row))
    }

    /// The rows in a database of a domain.
    pub fn rows(&self, domain: &str, database: &str) -> Vec<String> {
        self.with_state(|s| s.rows(domain, database))
    }

    pub fn domain_names(&self) -> Vec<String> {
        self.with_state(|s| s.domains.keys().cloned().collect())
    }

    /// The next request gets this fault.
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.shared.faults).queued.push_back(fault);
    }

    /// Each request gets one of `faults`, picked at random, with this probability.
    pub fn set_fault_rate(&self, probability: f64, faults: Vec<Fault>) {
        let mut f = lock(&self.shared.faults);
        f.probability = probability.clamp(0.0, 1.0);
        f.random = faults;
    }

    /// A down server closes every connection at once.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.faults).down = down;
    }

    /// Stops or starts Virtualmin's own MariaDB server: while it is down, programs that need
    /// it answer as the real server did (see `State::database_down`).
    pub fn set_database_down(&self, down: bool) {
        self.with_state(|s| s.database_down = down);
    }

    /// How many calls of `program` named `domain`.
    pub fn calls_naming(&self, domain: &str, program: &str) -> u64 {
        lock(&self.shared.counters)
            .stats
            .calls_by_domain
            .get(domain)
            .and_then(|by_program| by_program.get(program))
            .copied()
            .unwrap_or(0)
    }

    pub fn stats(&self) -> SimStats {
        lock(&self.shared.counters).stats.clone()
    }
}

impl Drop for VirtualminSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// See [`VirtualminSim::as_command`].
const COMMAND: &str = r#"#!/usr/bin/env python3
import os, shlex, ssl, sys, urllib.parse, urllib.request

words = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
if len(words) < 2 or words[0] != "virtualmin":
    print("only the virtualmin command runs here", file=sys.stderr)
    sys.exit(127)
form, rest, i = [("program", words[1])], words[2:], 0
while i < len(rest):
    if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
        form.append((rest[i][2:], rest[i + 1]))
        i += 2
    else:
        form.append((rest[i][2:], ""))
        i += 1
request = urllib.request.Request(
    "{url}/virtual-server/remote.cgi",
    data=urllib.parse.urlencode(form).encode(),
    headers={"Authorization": "Basic {auth}"},
)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
body = urllib.request.urlopen(request, context=context).read().decode()
output, _, status = body.rstrip("\n").rpartition("\n")
code = int(status.split(":")[1])
sys.stdout.write(output + "\n")
# remote.cgi shows the wait status (256 for 1); a command exits with the code.
sys.exit(code >> 8 if code > 255 else code)
"#;
