//! The break-glass path: with remote.cgi out of reach, an operator marks the server and runs
//! Virtualmin's emergency programs through its `virtualmin` command over SSH (a real sshd on
//! loopback, its command the simulator's), audited, the answers parsed as remote.cgi's; the
//! server's jobs wait meanwhile, and a host presenting another key is refused before any
//! credential is sent.

use std::sync::Arc;
use std::time::Duration;

use drover::commands::Requested;
use drover::engine::FleetPolicy;
use drover_core::{DomainName, ServerRefusal, Transition};
use drover_store::NewService;
use drover_store::jobs::SshProgram;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_suspends_and_lists_over_ssh_while_jobs_wait() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let ctx = crate::setup_ctx();
    let (sim, vm1) = fleet
        .add_server("vm1", serde_json::json!({"capacity": 10}))
        .await;
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let engine = Arc::new(fleet.engine(crate::quick_retries(), FleetPolicy::default()));
    let mut workers = drover::engine::start(Arc::clone(&engine), 4).unwrap();
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse("știri-bune.ro").unwrap(),
    };
    let service = crate::create_service(&*store, &ctx, new).await.unwrap();
    let domain = service.domain.as_str().to_owned();
    crate::transition_service(&*store, &ctx, service.id, Transition::Activate, None)
        .await
        .unwrap();
    crate::settled(&*store, service.account_id).await;

    // A real sshd whose command is the simulator's `virtualmin`; drover's key in its secrets.
    let command = sim.as_command();
    let mut sshd = tokio::task::spawn_blocking(move || {
        drover_testkit::TestSshd::start_as(drover_testkit::TestSshd::USER, Some(&command))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("sshd: {e}"));
    let key = sshd.authorize_key().unwrap();
    let kept = fleet.dir.path().join("vm1.ssh-key");
    std::fs::copy(&key, &kept).unwrap();
    let ssh = |host_key: &str| {
        serde_json::json!({"ssh": {
            "user": sshd.user, "port": sshd.port,
            "key": format!("file:{}", kept.display()), "host_key": host_key,
        }})
    };
    let over_ssh = |program: SshProgram| Requested::OverSsh {
        server: vm1.id,
        program,
    };

    // Unmarked, the server is not reached over SSH.
    let refused = drover::commands::request(&*store, &ctx, over_ssh(SshProgram::ListDomains))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no SSH access"), "{refused}");
    let patch = serde_json::from_value(ssh(&sshd.host_key)).unwrap();
    drover::commands::update_server(&*store, &ctx, vm1.id, patch)
        .await
        .unwrap();
    let refused = drover::commands::request(&*store, &ctx, over_ssh(SshProgram::ListDomains))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            drover::commands::Error::Rule(drover_core::Error::ServerRefused(
                ServerRefusal::NotInBreakGlass { .. }
            ))
        ),
        "{refused}"
    );

    // Marked: the account's jobs wait, and the emergency programs run over SSH.
    let marked = drover::commands::set_break_glass(
        &*store,
        &ctx,
        vm1.id,
        Some("remote.cgi answers 500 since 09:12"),
    )
    .await
    .unwrap();
    assert_eq!(marked.break_glass.as_ref().unwrap().by, ctx.actor);
    let suspended = crate::transition_service(
        &*store,
        &ctx,
        service.id,
        Transition::Suspend,
        Some("unpaid".into()),
    )
    .await
    .unwrap();
    crate::until("the converge waits", Duration::from_secs(10), async || {
        let job = store.job(suspended.job_id).await.unwrap();
        job.output
            .is_some_and(|o| o.to_string().contains("worked on over SSH"))
    })
    .await;
    assert!(
        sim.with_state(|s| s.domains[&domain].disabled.is_none()),
        "not by the job"
    );

    let listed = drover::commands::request(&*store, &ctx, over_ssh(SshProgram::ListDomains))
        .await
        .unwrap();
    let listed = crate::finished(&*store, listed).await;
    assert_eq!(listed.state, "completed", "{listed:?}");
    let answer = &listed.output.unwrap()["answer"];
    assert_eq!(answer["domains"][0]["domain"], domain.as_str());
    assert!(answer["domains"][0]["disabled"].is_null());

    let disable = SshProgram::DisableDomain {
        domain: "știri-bune.ro".into(),
        why: Some("unpaid".into()),
    };
    let disabled = drover::commands::request(&*store, &ctx, over_ssh(disable))
        .await
        .unwrap();
    assert_eq!(crate::finished(&*store, disabled).await.state, "completed");
    assert!(
        sim.with_state(|s| s.domains[&domain].disabled.is_some()),
        "disabled over SSH"
    );
    let info = drover::commands::request(&*store, &ctx, over_ssh(SshProgram::Info))
        .await
        .unwrap();
    let info = crate::finished(&*store, info).await;
    assert_eq!(info.state, "completed", "{info:?}");
    let enable = SshProgram::EnableDomain {
        domain: domain.clone(),
    };
    let enabled = drover::commands::request(&*store, &ctx, over_ssh(enable))
        .await
        .unwrap();
    assert_eq!(crate::finished(&*store, enabled).await.state, "completed");
    assert!(sim.with_state(|s| s.domains[&domain].disabled.is_none()));

    // A host that presents another key than the pinned one is refused before drover's key
    // is offered.
    let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let patch = serde_json::from_value(ssh(other)).unwrap();
    drover::commands::update_server(&*store, &ctx, vm1.id, patch)
        .await
        .unwrap();
    let wrong = drover::commands::request(&*store, &ctx, over_ssh(SshProgram::ListDomains))
        .await
        .unwrap();
    let wrong = crate::finished(&*store, wrong).await;
    assert_eq!(wrong.state, "discarded", "{wrong:?}");
    let why = wrong.output.unwrap()["refused"].to_string();
    assert!(
        why.contains(&sshd.host_key) && why.contains("not the pinned") && why.contains(other),
        "{why}"
    );

    // Lifted: the waiting suspension carries on through remote.cgi.
    drover::commands::set_break_glass(&*store, &ctx, vm1.id, None)
        .await
        .unwrap();
    drover::commands::retry_job(&*store, &ctx, suspended.job_id)
        .await
        .unwrap();
    crate::until(
        "the suspension is done",
        Duration::from_secs(30),
        async || sim.with_state(|s| s.domains[&domain].disabled.is_some()),
    )
    .await;
    workers.stop().await.unwrap();
    let audit = store
        .latest_audit_events(Some(&format!("server:{}", vm1.id)), None, 100)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "server.break_glass",
        "server.break_glass_call",
        "server.break_glass_lifted",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}
