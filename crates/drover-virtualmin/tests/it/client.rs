//! The client against the simulator: typed operations, TLS pinning, authentication and
//! lock-out, retries, the breaker and the rate limit, as a real server would exercise them.

use std::time::Duration;

use drover_testkit::virtualmin::{Fault, SimConfig, VirtualminSim};
use drover_virtualmin::{
    BreakerConfig, BreakerState, DomainChange, Endpoint, ErrorKind, MailboxPassword, NewDomain,
    Placement, TlsPolicy, VirtualminClient, VirtualminSettings, fingerprint,
};
use secrecy::SecretString;

fn settings() -> VirtualminSettings {
    VirtualminSettings {
        retry_delay: Duration::from_millis(10),
        max_retries: 3,
        ..VirtualminSettings::default()
    }
}

fn endpoint(sim: &VirtualminSim, password: &str) -> Endpoint {
    Endpoint {
        name: "sim".into(),
        base_url: sim.url(),
        user: "root".into(),
        password: SecretString::from(password.to_owned()),
        tls: TlsPolicy::default(),
        rate_qps: 100.0,
        max_concurrency: 4,
    }
}

async fn client(sim: &VirtualminSim) -> VirtualminClient {
    VirtualminClient::new(
        endpoint(sim, "secret"),
        &settings(),
        BreakerConfig::default(),
    )
    .unwrap()
}

fn new_domain(name: &str) -> NewDomain {
    NewDomain {
        domain: name.into(),
        password: SecretString::from("s3cret-pass".to_owned()),
        unix_user: Some(name.split('.').next().unwrap().into()),
        plan: None,
        template: None,
        features: vec!["unix".into(), "dir".into(), "web".into(), "dns".into()],
        description: Some("Created by drover".into()),
        placement: Placement::TopLevel,
        skip_warnings: false,
    }
}

/// Usage reads two listings per server, whatever the number of domains: every domain's
/// figures, and every user of every domain.
#[tokio::test]
async fn usage_figures_come_from_two_listings() {
    use drover_testkit::virtualmin::{SimDomain, SimUsage};
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let vm = client(&sim).await;
    for name in ["example.ro", "other.ro"] {
        let mut new = new_domain(name);
        new.features.push("mail".into());
        vm.create_domain(&new).await.unwrap();
    }
    for (domain, user) in [
        ("example.ro", "ana"),
        ("example.ro", "bob"),
        ("other.ro", "cy"),
    ] {
        vm.create_mailbox(
            domain,
            user,
            MailboxPassword::Plain(SecretString::from("pw".to_owned())),
            None,
            None,
        )
        .await
        .unwrap();
    }
    // A password's hash read from one server makes the mailbox on another as the customer
    // knows it (`--encpass`): the hash comes back as given.
    let ana = vm.mailboxes("example.ro").await.unwrap();
    let hash = ana[0]
        .password_hash
        .clone()
        .expect("shown to the master admin");
    vm.create_mailbox(
        "other.ro",
        "ana",
        MailboxPassword::Hashed(hash.clone()),
        None,
        None,
    )
    .await
    .unwrap();
    let copied = vm.mailboxes("other.ro").await.unwrap();
    let copied = copied.iter().find(|u| u.user == "ana").unwrap();
    assert_eq!(copied.password_hash.as_ref(), Some(&hash));
    assert_eq!(format!("{hash:?}"), "PasswordHash(***)", "masked");
    vm.delete_mailbox("other.ro", "ana").await.unwrap();
    sim.with_state(|s| {
        s.domains.get_mut("example.ro").unwrap().usage = SimUsage {
            disk_bytes: 5_000_000,
            bandwidth_bytes: 7_000_000,
            database_bytes: 0,
        };
        // A domain without the mail feature: its users have no mailbox.
        let mut ftp = SimDomain::top_level("ftp.ro", "ftp");
        ftp.features.retain(|f| f != "mail");
        ftp.mailboxes.insert("uploader".into(), String::new());
        s.domains.insert("ftp.ro".into(), ftp);
    });
    let before = sim.stats().requests;

    // Quotas and bandwidth monitoring off, as on the captured server: unknown, not zero.
    let listed = vm.list_domains().await.unwrap();
    let example = listed.iter().find(|d| d.domain == "example.ro").unwrap();
    assert_eq!(example.quota.server_byte_quota_used, None);
    assert_eq!(example.quota.bandwidth_byte_usage, None);
    assert_eq!(
        example.quota.databases_count, None,
        "no databases, no lines"
    );

    sim.with_state(|s| {
        s.home_quotas = true;
        s.bandwidth_monitoring = true;
    });
    let listed = vm.list_domains().await.unwrap();
    let example = listed.iter().find(|d| d.domain == "example.ro").unwrap();
    assert_eq!(example.quota.server_byte_quota_used, Some(5_000_000));
    assert_eq!(example.quota.bandwidth_byte_usage, Some(7_000_000));
    assert_eq!(
        example.quota.bandwidth_start.as_deref(),
        Some("01/Nov/2026")
    );

    let users = vm.list_all_users().await.unwrap();
    let mut mailboxes: Vec<(&str, &str)> = users
        .iter()
        .filter(|u| u.is_mailbox())
        .map(|u| (u.domain.as_str(), u.user.as_str()))
        .collect();
    mailboxes.sort_unstable();
    assert_eq!(
        mailboxes,
        [
            ("example.ro", "ana"),
            ("example.ro", "bob"),
            ("other.ro", "cy")
        ]
    );
    assert_eq!(users.len(), 4, "the FTP-only user is listed, not a mailbox");
    assert_eq!(sim.stats().requests - before, 3);
}

#[tokio::test]
async fn typed_operations_drive_a_domain_through_its_life() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    sim.with_state(|s| s.home_quotas = true);
    let vm = client(&sim).await;
    assert_eq!(
        vm.get_domain("example.ro").await.unwrap(),
        None,
        "absent is exactly 'does not exist'"
    );

    vm.create_domain(&new_domain("example.ro")).await.unwrap();
    let again = vm
        .create_domain(&new_domain("example.ro"))
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists);

    let domain = vm.get_domain("example.ro").await.unwrap().unwrap();
    assert_eq!(domain.unix_user.as_deref(), Some("example"));
    assert_eq!(domain.features, ["unix", "dir", "dns", "web"]);

    vm.disable_domain("example.ro", Some("unpaid invoice"))
        .await
        .unwrap();
    vm.disable_domain("example.ro", Some("unpaid invoice"))
        .await
        .unwrap();
    let disabled = vm.get_domain("example.ro").await.unwrap().unwrap();
    assert_eq!(
        disabled.disabled.unwrap().reason.as_deref(),
        Some("unpaid invoice")
    );
    vm.enable_domain("example.ro").await.unwrap();
    vm.enable_domain("example.ro").await.unwrap();

    let change = DomainChange {
        description: Some("Renamed".into()),
        quota_blocks: Some(1_048_576),
        ..DomainChange::default()
    };
    vm.modify_domain("example.ro", &change).await.unwrap();
    let modified = vm.get_domain("example.ro").await.unwrap().unwrap();
    assert_eq!(modified.description.as_deref(), Some("Renamed"));
    assert_eq!(modified.quota.server_block_quota, Some(1_048_576));

    let mut sub = new_domain("shop.example.ro");
    sub.placement = Placement::SubServerOf("example.ro".into());
    // A sub-server shares its parent's administration user: --unix is refused for it.
    sub.features.retain(|f| f != "unix");
    vm.create_domain(&sub).await.unwrap();
    vm.create_mailbox(
        "example.ro",
        "ana",
        MailboxPassword::Plain(SecretString::from("pw".to_owned())),
        Some("Ana"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(vm.list_mailboxes("example.ro").await.unwrap().len(), 1);
    vm.create_database("example.ro", "example_shop", "mysql")
        .await
        .unwrap_err();
    let listed = vm.list_domains().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].parent.as_deref(), Some("example.ro"));
    assert!(
        vm.info()
            .await
            .unwrap()
            .output
            .contains("virtualmin version")
    );
    assert!(
        vm.backup_domain("example.ro", &at("/backups/example.tar.gz"), None)
            .await
            .unwrap()
            .contains("complete")
    );
    use secrecy::ExposeSecret;
    // A login link needs the domain's Webmin login, as on the real server.
    let refused = vm.create_login_link("example.ro", 300).await.unwrap_err();
    assert_eq!(
        refused.message,
        "Virtual server example.ro has no Webmin login"
    );
    vm.enable_features("example.ro", &["webmin".to_owned()])
        .await
        .unwrap();
    let link = vm.create_login_link("example.ro", 300).await.unwrap();
    assert!(
        link.expose_secret()
            .starts_with("https://example.ro:10000/session_login.cgi?session="),
        "{}",
        link.expose_secret()
    );
    assert!(
        !format!("{link:?}").contains("session"),
        "a login link is kept out of logs"
    );

    vm.delete_domain("example.ro").await.unwrap();
    assert!(
        vm.list_domains().await.unwrap().is_empty(),
        "sub-servers go with their parent"
    );
    let missing = vm.delete_domain("example.ro").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_failed_observation_is_an_error_never_an_empty_list() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let patient = BreakerConfig {
        failure_threshold: 100,
        ..BreakerConfig::default()
    };
    let vm = VirtualminClient::new(endpoint(&sim, "secret"), &settings(), patient).unwrap();
    vm.create_domain(&new_domain("example.ro")).await.unwrap();
    for fault in [Fault::Garble, Fault::Status(500), Fault::Drop] {
        // Enough faults to outlast the retries (a garbled answer is not retried).
        let times = if fault == Fault::Garble { 1 } else { 4 };
        for _ in 0..times {
            sim.fail_next(fault.clone());
        }
        let err = vm.list_domains().await.unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::Protocol | ErrorKind::Transient),
            "{fault:?}: {err}"
        );
    }
    assert_eq!(vm.list_domains().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_values_are_refused_before_anything_is_sent() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let vm = client(&sim).await;
    let change = DomainChange {
        description: Some("line one\nline two".into()),
        ..DomainChange::default()
    };
    let err = vm.modify_domain("example.ro", &change).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test]
async fn reads_are_retried_after_transient_failures_and_writes_are_not() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let vm = client(&sim).await;
    sim.fail_next(Fault::Status(502));
    sim.fail_next(Fault::Drop);
    assert!(vm.list_domains().await.unwrap().is_empty());
    assert_eq!(sim.stats().requests, 3, "two failures, then the answer");

    sim.fail_next(Fault::Status(503));
    let err = vm
        .create_domain(&new_domain("example.ro"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(sim.stats().requests, 4, "a create is not repeated blindly");

    // An idempotent write whose failure the server answered is sent again.
    vm.create_domain(&new_domain("example.ro")).await.unwrap();
    let before = sim.stats().requests;
    sim.fail_next(Fault::Status(503));
    vm.disable_domain("example.ro", None).await.unwrap();
    assert_eq!(sim.stats().requests, before + 2);
}

/// A change the server was still making when drover stopped waiting is not sent again: a
/// second would queue behind the first (Virtualmin serialises changes with locks), so the
/// caller looks before repeating. Whole-domain changes wait as long as a create.
#[tokio::test]
async fn an_unanswered_change_is_not_sent_again() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let mut settings = settings();
    settings.timeouts.api_request = Duration::from_millis(100);
    settings.timeouts.provisioning = Duration::from_millis(600);
    let vm = VirtualminClient::new(
        endpoint(&sim, "secret"),
        &settings,
        BreakerConfig::default(),
    )
    .unwrap();
    vm.create_domain(&new_domain("example.ro")).await.unwrap();

    sim.fail_next(Fault::SlowAnswer(Duration::from_millis(300)));
    vm.disable_domain("example.ro", Some("unpaid"))
        .await
        .unwrap();

    sim.fail_next(Fault::SlowAnswer(Duration::from_secs(2)));
    let before = sim.stats().requests;
    let err = vm.enable_domain("example.ro").await.unwrap_err();
    assert!(err.unanswered && err.kind == ErrorKind::Transient, "{err}");
    assert_eq!(sim.stats().requests, before + 1, "sent once");
    let seen = vm.get_domain("example.ro").await.unwrap().unwrap();
    assert!(seen.disabled.is_none(), "the server did it all the same");
}

#[tokio::test]
async fn wrong_credentials_are_never_retried_and_lead_to_the_lock_out() {
    let config = SimConfig {
        block_for: Duration::from_millis(400),
        pass_delay: Duration::from_millis(40),
        latency_scale: 1.0,
        ..SimConfig::default()
    };
    let sim = VirtualminSim::start(config).await.unwrap();
    // Each login is a new client's: a client whose login was refused calls no more.
    let wrong = || {
        VirtualminClient::new(
            endpoint(&sim, "wrong"),
            &settings(),
            BreakerConfig::default(),
        )
        .unwrap()
    };
    let refused = wrong();
    refused.list_domains().await.unwrap_err();
    let err = refused.list_domains().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.starts_with("not called"), "{err}");
    assert_eq!(
        sim.stats().requests,
        1,
        "the refused client did not call again"
    );
    assert!(refused.login_refusal().is_some());
    for attempt in 2..=4 {
        let started = std::time::Instant::now();
        let err = wrong().list_domains().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "attempt {attempt}");
        // The server waits 40 ms more at each failure: the n-th refusal takes at least n × 40 ms.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(40) * attempt,
            "the delay grows: {took:?} at attempt {attempt}"
        );
    }
    assert_eq!(sim.stats().requests, 4, "auth failures are not retried");
    let err = wrong().list_domains().await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::LockedOut,
        "the fifth failure in a row blocks the address"
    );
    let right = client(&sim).await;
    assert_eq!(
        right.list_domains().await.unwrap_err().kind,
        ErrorKind::LockedOut
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        right.list_domains().await.is_err(),
        "a client that met the lock-out does not call again on its own"
    );
    assert!(
        client(&sim).await.list_domains().await.is_ok(),
        "the block expires: a new client (the operator allowed it) gets through"
    );
}

#[tokio::test]
async fn the_breaker_opens_on_a_dead_server_and_closes_when_it_returns() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_millis(300),
    };
    let no_retry = VirtualminSettings {
        max_retries: 0,
        ..settings()
    };
    let vm = VirtualminClient::new(endpoint(&sim, "secret"), &no_retry, breaker).unwrap();
    sim.set_down(true);
    for _ in 0..3 {
        assert_eq!(
            vm.list_domains().await.unwrap_err().kind,
            ErrorKind::Transient
        );
    }
    assert_eq!(vm.breaker_state(), BreakerState::Open);
    let seen = sim.stats().requests;
    let fast = vm.list_domains().await.unwrap_err();
    assert!(fast.message.contains("circuit open"), "{fast}");
    assert_eq!(
        sim.stats().requests,
        seen,
        "an open breaker spares the server"
    );

    sim.set_down(false);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(vm.breaker_state(), BreakerState::HalfOpen);
    vm.list_domains().await.unwrap();
    assert_eq!(vm.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn the_call_rate_is_never_exceeded() {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let mut config = endpoint(&sim, "secret");
    config.rate_qps = 10.0;
    let vm = std::sync::Arc::new(
        VirtualminClient::new(config, &settings(), BreakerConfig::default()).unwrap(),
    );
    let calls: Vec<_> = (0..15)
        .map(|_| {
            let vm = std::sync::Arc::clone(&vm);
            tokio::spawn(async move { vm.list_domains().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = sim.stats();
    assert_eq!(stats.requests, 15);
    // Spaced 100 ms apart, 15 calls span 1.4 s: the average rate is the limit's. Two intervals
    // are left for the scheduling of this process, which can delay an arrival, and so one
    // call more in a one-second window.
    let span = stats.last_arrival.unwrap() - stats.first_arrival.unwrap();
    assert!(
        span >= Duration::from_millis(1200),
        "15 calls at 10 a second took only {span:?}"
    );
    assert!(
        stats.max_calls_per_second <= 11,
        "saw {} calls in one second",
        stats.max_calls_per_second
    );
}

async fn tls_client(sim: &VirtualminSim, tls: TlsPolicy) -> VirtualminClient {
    let mut config = endpoint(sim, "secret");
    config.tls = tls;
    VirtualminClient::new(config, &settings(), BreakerConfig::default()).unwrap()
}

#[tokio::test]
async fn a_pinned_certificate_is_checked_before_credentials_are_sent() {
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let right = fingerprint(sim.certificate_der().unwrap());

    let pinned = tls_client(
        &sim,
        TlsPolicy {
            pinned_sha256: Some(right),
            ..TlsPolicy::default()
        },
    )
    .await;
    assert!(
        pinned.list_domains().await.is_ok(),
        "the right pin is accepted"
    );

    let wrong_pin = drover_core::CertFingerprint::parse(&"ab".repeat(32)).unwrap();
    let wrong = tls_client(
        &sim,
        TlsPolicy {
            pinned_sha256: Some(wrong_pin),
            ..TlsPolicy::default()
        },
    )
    .await;
    let err = wrong.list_domains().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Protocol, "{err}");
    assert!(err.message.contains("not the pinned one"), "{err}");

    let unverified = tls_client(&sim, TlsPolicy::default()).await;
    let err = unverified.list_domains().await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Protocol,
        "a self-signed certificate with no pin and no CA: {err}"
    );

    let requests = sim.stats().requests;
    assert_eq!(
        requests, 1,
        "refused handshakes never sent a request (or credentials)"
    );
}

#[test]
fn endpoints_never_show_their_password() {
    let endpoint = Endpoint {
        name: "vm1".into(),
        base_url: "https://vm1:10000".into(),
        user: "root".into(),
        password: SecretString::from("hunter2".to_owned()),
        tls: TlsPolicy::default(),
        rate_qps: 2.0,
        max_concurrency: 4,
    };
    let shown = format!("{endpoint:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("***"),
        "{shown}"
    );
}

#[tokio::test]
async fn every_call_is_counted_by_server_program_and_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    static RECORDER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    let snapshotter = RECORDER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only metrics recorder of this test binary");
        snapshotter
    });
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    let mut config = endpoint(&sim, "secret");
    config.name = "metrics-test".into();
    let vm = VirtualminClient::new(config, &settings(), BreakerConfig::default()).unwrap();
    vm.list_domains().await.unwrap();
    vm.delete_domain("nosuch.ro").await.unwrap_err();

    let mut counted = std::collections::BTreeMap::new();
    let mut durations = 0;
    let mut circuit = None;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: std::collections::BTreeMap<String, String> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        if labels.get("server").map(String::as_str) != Some("metrics-test") {
            continue;
        }
        match (key.key().name(), value) {
            ("drover_virtualmin_requests_total", DebugValue::Counter(n)) => {
                counted.insert((labels["program"].clone(), labels["outcome"].clone()), n);
            }
            ("drover_virtualmin_request_duration_seconds", DebugValue::Histogram(v)) => {
                durations += v.len()
            }
            ("drover_virtualmin_circuit_state", DebugValue::Gauge(g)) => {
                circuit = Some(g.into_inner())
            }
            _ => {}
        }
    }
    assert_eq!(
        counted.get(&("list-domains".into(), "success".into())),
        Some(&1)
    );
    assert_eq!(
        counted.get(&("delete-domain".into(), "not_found".into())),
        Some(&1)
    );
    assert_eq!(durations, 2);
    assert_eq!(circuit, Some(0.0), "closed");
}

#[tokio::test]
async fn the_presented_certificate_is_read_without_trusting_it() {
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let addr = sim.addr();
    let cert = drover_virtualmin::presented_certificate(
        &addr.ip().to_string(),
        addr.port(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(Some(cert.sha256.to_hex()), sim.certificate_sha256());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        cert.not_after > now,
        "the simulator's certificate is still valid"
    );
    // Nobody listening: a clear error, not a hang.
    let err = drover_virtualmin::presented_certificate("127.0.0.1", 9, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(err.contains("cannot connect to 127.0.0.1:9"), "{err}");
}

/// Whole-server listings run under their own, longer limits: a fleet of thousands of domains
/// lists slower than one call is allowed to take.
#[tokio::test]
async fn whole_server_listings_have_their_own_time_limits() {
    let sim = VirtualminSim::start(SimConfig {
        latency_scale: 1.0,
        latency: [
            ("list-domains".to_owned(), Duration::from_millis(400)),
            ("list-users".to_owned(), Duration::from_millis(400)),
        ]
        .into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut settings = settings();
    settings.max_retries = 0;
    settings.timeouts.api_request = Duration::from_millis(150);
    settings.timeouts.domain_sync = Duration::from_secs(5);
    settings.timeouts.usage_sync = Duration::from_millis(150);
    let vm = VirtualminClient::new(
        endpoint(&sim, "secret"),
        &settings,
        BreakerConfig::default(),
    )
    .unwrap();
    assert!(
        vm.list_domains().await.unwrap().is_empty(),
        "domain sync limit"
    );
    let one = vm.get_domain("example.ro").await.unwrap_err();
    assert_eq!(
        one.kind,
        ErrorKind::Transient,
        "one domain: the request limit: {one}"
    );
    let users = vm.list_all_users().await.unwrap_err();
    assert_eq!(
        users.kind,
        ErrorKind::Transient,
        "usage sync limit: {users}"
    );
}

/// A backup archive's place, as drover names it.
fn at(path: &str) -> drover_core::BackupLocation {
    drover_core::BackupLocation::parse(path).unwrap()
}
