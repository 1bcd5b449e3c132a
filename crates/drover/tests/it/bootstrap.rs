//! Bringing a bare server into the fleet, in the fast tier: the dry run and its refusals,
//! and the job against a real sshd on loopback where it must stop (a host presenting another
//! key, a login that is not root), every command it ran recorded. The whole run, ending with
//! a server in the fleet, is in the real tier (`real::a_bare_server_is_bootstrapped…`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drover::engine::FleetPolicy;
use drover_core::{BootstrapSpec, BootstrapState, BootstrapStep, SecretSources, StepState};
use sha2::Digest as _;

/// A local copy as an operator keeps it: the two archives and their SHA256SUMS (small
/// stand-ins: the fast tier never installs them).
pub fn local_copy(dir: &Path) -> std::path::PathBuf {
    let sources = dir.join("virtualmin-sources");
    std::fs::create_dir_all(&sources).unwrap();
    let mut sums = String::new();
    for (name, content) in [
        ("webmin-2.660-d16d9ea205a2.tar.xz", "webmin"),
        ("virtualmin-gpl-8.1.0-69a9c2af70eb.tar.xz", "virtualmin"),
    ] {
        std::fs::write(sources.join(name), content).unwrap();
        let sum = hex::encode(sha2::Sha256::digest(content.as_bytes()));
        sums.push_str(&format!("{sum}  {name}\n"));
    }
    std::fs::write(sources.join("SHA256SUMS"), sums).unwrap();
    sources
}

fn spec(value: serde_json::Value) -> BootstrapSpec {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_dry_run_lists_every_step_and_records_nothing_and_bad_input_is_refused() {
    let fleet = crate::TestFleet::new().await;
    let store = &*fleet.store;
    let ctx = crate::setup_ctx();
    let secrets = SecretSources {
        dir: fleet.dir.path().to_owned(),
        env_prefix: SecretSources::DEFAULT_ENV_PREFIX.into(),
    };
    let sources = local_copy(fleet.dir.path());
    let in_secrets = |name: &str| format!("file:{}", fleet.dir.path().join(name).display());
    let good = serde_json::json!({
        "name": "vm9",
        "host": "203.0.113.9",
        "ssh": {"key": in_secrets("vm9.ssh-key"), "host_key": format!("SHA256:{}", "C".repeat(43))},
        "api_credentials": in_secrets("vm9.webmin-password"),
        "capacity": 100,
        "allow_from": ["198.51.100.7"],
        "firewall": true,
    });
    let plan = drover::commands::bootstrap_server(
        store,
        &ctx,
        &secrets,
        Some(&sources),
        spec(good.clone()),
        true,
    )
    .await
    .unwrap();
    let steps: Vec<BootstrapStep> = plan.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps.first(), Some(&BootstrapStep::CheckSystem));
    assert!(steps.contains(&BootstrapStep::Firewall));
    assert!(!steps.contains(&BootstrapStep::Fail2ban), "not asked for");
    assert_eq!(steps.last(), Some(&BootstrapStep::FirstHealthCheck));
    let install = &plan.steps[2];
    assert!(
        install
            .uploads
            .contains(&"webmin-2.660-d16d9ea205a2.tar.xz".to_owned())
    );
    assert!(plan.bootstrap.is_none());
    assert!(
        store
            .bootstraps(Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !fleet.dir.path().join("vm9.webmin-password").exists(),
        "no password made on a dry run"
    );

    let refused = |e: drover::commands::Error| e.to_string();
    // No local copy configured: says where it is set, and the other way.
    let e =
        drover::commands::bootstrap_server(store, &ctx, &secrets, None, spec(good.clone()), true)
            .await
            .unwrap_err();
    assert!(refused(e).contains("DROVER_VIRTUALMIN_SOURCES"));
    // An archive that is not what its SHA256SUMS says.
    let tampered = fleet.dir.path().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    for entry in std::fs::read_dir(&sources).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tampered.join(entry.file_name())).unwrap();
    }
    std::fs::write(tampered.join("webmin-2.660-d16d9ea205a2.tar.xz"), "changed").unwrap();
    let e = drover::commands::bootstrap_server(
        store,
        &ctx,
        &secrets,
        Some(&tampered),
        spec(good.clone()),
        true,
    )
    .await
    .unwrap_err();
    assert!(refused(e).contains("does not match its SHA256SUMS"));
    // A key outside the secrets folder.
    let mut outside = good.clone();
    outside["ssh"]["key"] = "file:/root/.ssh/id_ed25519".into();
    let e = drover::commands::bootstrap_server(
        store,
        &ctx,
        &secrets,
        Some(&sources),
        spec(outside),
        true,
    )
    .await
    .unwrap_err();
    assert!(refused(e).contains("DROVER_SECRETS_DIR"));
    // A firewall that would shut drover out.
    let mut shut_out = good.clone();
    shut_out["allow_from"] = serde_json::json!([]);
    let e = drover::commands::bootstrap_server(
        store,
        &ctx,
        &secrets,
        Some(&sources),
        spec(shut_out),
        true,
    )
    .await
    .unwrap_err();
    assert!(refused(e).contains("shut drover out"));
    // A name the fleet has already.
    let mut taken = good.clone();
    taken["name"] = "vm1".into();
    fleet
        .add_server("vm1", serde_json::json!({"capacity": 1}))
        .await;
    let e = drover::commands::bootstrap_server(
        store,
        &ctx,
        &secrets,
        Some(&sources),
        spec(taken),
        false,
    )
    .await
    .unwrap_err();
    assert!(refused(e).contains("server named vm1"));
}

/// Starts a bootstrap of the sshd's host and lets the job run it until it ends.
async fn bootstrap_until_it_ends(
    fleet: &crate::TestFleet,
    sshd: &drover_testkit::TestSshd,
    key: &str,
    host_key: &str,
) -> drover_store::ServerBootstrap {
    let ctx = crate::setup_ctx();
    let kept = fleet.dir.path().join("vm9.ssh-key");
    std::fs::copy(key, &kept).unwrap();
    let sources = local_copy(fleet.dir.path());
    let secrets = SecretSources {
        dir: fleet.dir.path().to_owned(),
        env_prefix: SecretSources::DEFAULT_ENV_PREFIX.into(),
    };
    let started = drover::commands::bootstrap_server(
        &*fleet.store,
        &ctx,
        &secrets,
        Some(&sources),
        spec(serde_json::json!({
            "name": "vm9",
            "host": "127.0.0.1",
            "ssh": {"user": sshd.user, "port": sshd.port,
                    "key": format!("file:{}", kept.display()), "host_key": host_key},
            "api_credentials": format!("file:{}", fleet.dir.path().join("vm9.webmin-password").display()),
            "capacity": 10,
        })),
        false,
    )
    .await
    .unwrap()
    .bootstrap
    .unwrap();
    until_it_ends(fleet, started.id).await
}

/// Works the jobs until the bootstrap is no longer running.
async fn until_it_ends(fleet: &crate::TestFleet, id: i64) -> drover_store::ServerBootstrap {
    let store = Arc::clone(&fleet.store);
    let mut engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    engine.virtualmin_sources = Some(fleet.dir.path().join("virtualmin-sources"));
    let engine = Arc::new(engine);
    let mut workers = drover::engine::start(Arc::clone(&engine), 2).unwrap();
    crate::until("the bootstrap ends", Duration::from_secs(30), async || {
        store.bootstrap(id).await.unwrap().state != BootstrapState::Running
    })
    .await;
    workers.stop().await.unwrap();
    store.bootstrap(id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_presenting_another_key_is_refused_before_anything_is_sent() {
    let fleet = crate::TestFleet::new().await;
    let mut sshd = tokio::task::spawn_blocking(|| drover_testkit::TestSshd::start_as("root", None))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("sshd: {e}"));
    let key = sshd.authorize_key().unwrap();
    let other = format!("SHA256:{}", "D".repeat(43));
    let ended = bootstrap_until_it_ends(&fleet, &sshd, &key, &other).await;
    assert_eq!(ended.state, BootstrapState::Failed);
    let error = ended.error.unwrap();
    assert!(error.contains("presented the host key"), "{error}");
    assert!(error.contains(&other), "{error}");
    assert!(ended.progress.commands.is_empty(), "nothing ran");
    assert_eq!(
        ended.progress.state_of(BootstrapStep::CheckSystem),
        Some(StepState::Failed)
    );
    assert!(ended.server_id.is_none());
    assert!(
        fleet.dir.path().join("vm9.webmin-password").exists(),
        "the password is made before the connection, kept for the next try"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_is_not_root_stops_at_the_system_check_with_its_command_recorded() {
    let fleet = crate::TestFleet::new().await;
    let mut sshd = tokio::task::spawn_blocking(drover_testkit::TestSshd::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("sshd: {e}"));
    let key = sshd.authorize_key().unwrap();
    let host_key = sshd.host_key.clone();
    let ended = bootstrap_until_it_ends(&fleet, &sshd, &key, &host_key).await;
    assert_eq!(ended.state, BootstrapState::Failed, "{ended:?}");
    let error = ended.error.unwrap();
    assert!(error.contains("not root"), "{error}");
    let ran = &ended.progress.commands;
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].step, BootstrapStep::CheckSystem);
    assert_eq!(ran[0].exit_status, Some(1));
    assert!(ran[0].output.contains("drover-backup"), "{}", ran[0].output);
    assert!(ran[0].command.contains("/etc/os-release"));
    assert_eq!(
        ended.progress.state_of(BootstrapStep::InstallPackages),
        Some(StepState::Waiting),
        "nothing after it ran"
    );
    assert!(ended.server_id.is_none());

    // Resumed (the cause fixed, say): it runs again from the step that failed, by a new job.
    let ctx = crate::setup_ctx();
    let resumed = drover::commands::resume_bootstrap(&*fleet.store, &ctx, ended.id)
        .await
        .unwrap();
    assert_eq!(resumed.state, BootstrapState::Running);
    assert_ne!(resumed.job_id, ended.job_id);
    let twice = drover::commands::resume_bootstrap(&*fleet.store, &ctx, ended.id)
        .await
        .unwrap_err();
    assert!(twice.to_string().contains("only a failed one"), "{twice}");
    let again = until_it_ends(&fleet, ended.id).await;
    assert_eq!(
        again.state,
        BootstrapState::Failed,
        "the login is still not root"
    );
    let checks = again
        .progress
        .commands
        .iter()
        .filter(|c| c.step == BootstrapStep::CheckSystem)
        .count();
    assert_eq!(checks, 2, "tried once more, its record kept");
    let refused = drover::commands::resume_bootstrap(&*fleet.store, &ctx, 999)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("999"), "{refused}");
}

/// A network namespace of the test's own, joined to this one by a veth pair: the host side
/// holds two addresses (drover's, and another), the namespace one; removed when dropped.
struct TestHost {
    name: String,
    host_veth: String,
    subnet: String,
    listener: Option<std::process::Child>,
}

impl TestHost {
    fn create() -> Self {
        let id = std::process::id() % 100_000;
        let name = format!("drover-fw-{id}");
        let host_veth = format!("dfw{id}h");
        let subnet = format!("10.231.{}", id % 250 + 1);
        let mut host = Self {
            name: name.clone(),
            host_veth: host_veth.clone(),
            subnet: subnet.clone(),
            listener: None,
        };
        let peer = format!("dfw{id}n");
        for args in [
            vec!["netns", "add", &name],
            vec![
                "link", "add", &host_veth, "type", "veth", "peer", "name", &peer,
            ],
            vec!["link", "set", &peer, "netns", &name],
            vec!["addr", "add", &format!("{subnet}.1/24"), "dev", &host_veth],
            vec!["addr", "add", &format!("{subnet}.5/24"), "dev", &host_veth],
            vec!["link", "set", &host_veth, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{subnet}.2/24"),
                "dev",
                &peer,
            ],
            vec!["-n", &name, "link", "set", &peer, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            let status = std::process::Command::new("ip").args(&args).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "ip {args:?} failed: this test needs root and iproute2 (scripts/test installs it)"
            );
        }
        // Something listening on SSH's and Webmin's ports, and on one the rules leave alone.
        let listener = std::process::Command::new("ip")
            .args(["netns", "exec", &name, "python3", "-c"])
            .arg(
                "import socket, threading, time\n\
                 def serve(port):\n\
                 \x20   s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 \x20   s.bind(('0.0.0.0', port)); s.listen()\n\
                 \x20   while True:\n\
                 \x20       c, _ = s.accept(); c.sendall(b'hi'); c.close()\n\
                 for port in (22, 10000, 8080):\n\
                 \x20   threading.Thread(target=serve, args=(port,), daemon=True).start()\n\
                 time.sleep(600)\n",
            )
            .spawn()
            .unwrap();
        host.listener = Some(listener);
        host
    }

    /// Runs `script` as root in the namespace, with an /etc of its own (an empty tmpfs), so
    /// that what it writes there never reaches this machine's.
    fn run(&self, script: &str) -> (bool, String) {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount -t tmpfs tmpfs /etc\n{script}"))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Whether a connection from `from` (one of the host side's addresses) to `port` in the
    /// namespace is answered.
    async fn answers(&self, from: &str, port: u16) -> bool {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{}.{from}:0", self.subnet).parse().unwrap())
            .unwrap();
        let to = format!("{}.2:{port}", self.subnet).parse().unwrap();
        match tokio::time::timeout(Duration::from_millis(1500), socket.connect(to)).await {
            Ok(Ok(mut stream)) => {
                use tokio::io::AsyncReadExt as _;
                let mut said = [0u8; 2];
                stream.read_exact(&mut said).await.is_ok() && &said == b"hi"
            }
            _ => false,
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = listener.kill();
            let _ = listener.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .status();
    }
}

/// The firewall step's own check and script, run for real as root in a network namespace
/// (its /etc a tmpfs of its own): before, its check says it is not done; run over a
/// connection from an address it does not let in, it refuses and loads nothing; run from
/// drover's, its check then passes, only drover's address reaches SSH and Webmin and other
/// ports stay open to all; run again, it changes nothing.
#[tokio::test]
async fn the_firewall_step_lets_only_drovers_addresses_reach_ssh_and_webmin() {
    for tool in ["/usr/sbin/nft", "/usr/sbin/ip", "/usr/bin/unshare"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: scripts/test installs nftables and iproute2"
        );
    }
    let host = TestHost::create();
    let hardened = spec(serde_json::json!({
        "name": "vm9",
        "host": format!("{}.2", host.subnet),
        "ssh": {"key": "env:DROVER_SECRET_KEY", "host_key": format!("SHA256:{}", "F".repeat(43))},
        "api_credentials": "env:DROVER_SECRET_VM9",
        "capacity": 10,
        "allow_from": [format!("{}.1", host.subnet), "2001:db8::/64"],
        "firewall": true,
    }));
    let plan = drover_core::plan_bootstrap(&hardened, None);
    let firewall = plan
        .iter()
        .find(|s| s.step == BootstrapStep::Firewall)
        .unwrap();
    let (check, run) = (
        firewall.check.clone().unwrap(),
        firewall.run.clone().unwrap(),
    );
    let (done, said) = host.run(&check);
    assert!(!done, "not done before it ran: {said}");
    assert!(said.contains("not written yet"), "{said}");
    // Waiting for the listener to be up: the port no rule touches answers.
    crate::until(
        "the test host listens",
        Duration::from_secs(10),
        async || host.answers("5", 8080).await,
    )
    .await;
    assert!(host.answers("5", 22).await, "open before the rules");

    // Run over a connection from an address it does not hold: refused, nothing loaded.
    let from = |n: &str| {
        format!(
            "export SSH_CONNECTION='{0}.{n} 40022 {0}.2 22'\n",
            host.subnet
        )
    };
    let (ran, said) = host.run(&format!("{}{run}", from("5")));
    assert!(!ran && said.contains("would shut it out"), "{said}");
    assert!(host.answers("5", 22).await, "nothing loaded");

    let (ran, said) = host.run(&format!("{}{run}\n{check}", from("1")));
    assert!(ran, "the script and then its check pass: {said}");
    for (from, port, answers) in [
        ("1", 22, true),
        ("1", 10000, true),
        ("5", 22, false),
        ("5", 10000, false),
        ("5", 8080, true),
    ] {
        assert_eq!(
            host.answers(from, port).await,
            answers,
            "from .{from} to port {port}"
        );
    }
    // Again: the table is replaced, not doubled.
    let (ran, said) = host.run(&format!("{run}\nnft list ruleset"));
    assert!(ran, "{said}");
    assert_eq!(said.matches("table inet drover").count(), 1, "{said}");
    assert!(!host.answers("5", 22).await);
    assert!(host.answers("1", 22).await);
}

/// One bootstrap at a time on a machine (known by its SSH host key, whatever its name or
/// address); one whose job was cancelled before it ended is marked failed when the next
/// starts, so it holds the machine no longer.
#[tokio::test]
async fn a_machine_takes_one_bootstrap_at_a_time_and_a_cancelled_one_lets_go() {
    let fleet = crate::TestFleet::new().await;
    let store = &*fleet.store;
    let ctx = crate::setup_ctx();
    let secrets = SecretSources {
        dir: fleet.dir.path().to_owned(),
        env_prefix: SecretSources::DEFAULT_ENV_PREFIX.into(),
    };
    let sources = local_copy(fleet.dir.path());
    let of = |name: &str, host: &str| {
        spec(serde_json::json!({
            "name": name,
            "host": host,
            "ssh": {"key": "env:DROVER_SECRET_KEY", "host_key": format!("SHA256:{}", "G".repeat(43))},
            "api_credentials": "env:DROVER_SECRET_VM9",
            "capacity": 10,
        }))
    };
    let start = |spec: BootstrapSpec| {
        drover::commands::bootstrap_server(store, &ctx, &secrets, Some(&sources), spec, false)
    };
    let first = start(of("vm9", "203.0.113.9"))
        .await
        .unwrap()
        .bootstrap
        .unwrap();
    let refused = start(of("vm9-again", "vm9.example.net"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("bootstrap 1 of vm9 is under way"),
        "{refused}"
    );

    drover::commands::cancel_job(store, &ctx, first.job_id.unwrap())
        .await
        .unwrap();
    let second = start(of("vm9-again", "vm9.example.net"))
        .await
        .unwrap()
        .bootstrap
        .unwrap();
    assert_eq!(second.state, BootstrapState::Running);
    let first = store.bootstrap(first.id).await.unwrap();
    assert_eq!(first.state, BootstrapState::Failed);
    assert!(
        first
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("cancelled"),
        "{:?}",
        first.error
    );
}
