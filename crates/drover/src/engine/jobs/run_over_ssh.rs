//! `run_over_ssh`: the break-glass path. One of Virtualmin's programs through its own
//! `virtualmin` command over SSH, on a server an operator marked, its answer parsed as
//! remote.cgi's and kept as the job's output. Refused (discarded, with the reason) once the
//! mark is lifted or the server has no SSH access: jobs never turn to SSH on their own.

use std::sync::Arc;
use std::time::Duration;

use drover_core::ServerId;
use drover_store::StoreError;
use drover_store::jobs::SshProgram;
use drover_virtualmin::{SshAccess, SshVirtualmin, VirtualminError};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::{Value, json};

use crate::engine::Engine;

/// How long one program may take over SSH (a disable visits every feature of the domain).
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum OverSshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Worth another try (the host did not answer, the connection dropped).
    #[error("{0}")]
    Transient(VirtualminError),
}

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RunOverSsh>,
) -> Result<WorkOutcome, OverSshError> {
    let server = engine.store.server(ServerId(job.args.server_id)).await?;
    let name = server.spec.name.to_string();
    let refuse = |why: String| {
        let _ = context.record_output(json!({ "refused": why }));
        Ok(WorkOutcome::Discard)
    };
    let Some(ssh) = &server.spec.ssh else {
        return refuse(drover_core::ServerRefusal::NoSshAccess { name }.to_string());
    };
    if server.break_glass.is_none() {
        return refuse(drover_core::ServerRefusal::NotInBreakGlass { name }.to_string());
    }
    let key = match engine.fleet.secret(&ssh.key) {
        Ok(key) => key,
        Err(e) => return refuse(format!("the SSH key of {name} cannot be read: {e}")),
    };
    let target = SshVirtualmin::new(SshAccess {
        host: server.spec.hostname.to_string(),
        port: ssh.port,
        user: ssh.user.clone(),
        key,
        host_key: ssh.host_key.to_string(),
        timeout: TIMEOUT,
    });
    let answer = match &job.args.program {
        SshProgram::ListDomains => target.list_domains().await.map(|domains| {
            let listed: Vec<Value> = domains
                .iter()
                .map(|d| {
                    json!({
                        "domain": d.domain,
                        "disabled": d.disabled.as_ref().map(|x| x.reason.clone().unwrap_or_default()),
                        "plan": d.plan,
                        "parent": d.parent,
                        "alias_of": d.alias_of,
                        "unix_user": d.unix_user,
                    })
                })
                .collect();
            json!({ "domains": listed })
        }),
        SshProgram::Info => target
            .info()
            .await
            .map(|reply| json!({ "info": reply.output })),
        SshProgram::DisableDomain { domain, why } => target
            .disable_domain(domain, why.as_deref())
            .await
            .map(|()| json!({ "disabled": domain })),
        SshProgram::EnableDomain { domain } => target
            .enable_domain(domain)
            .await
            .map(|()| json!({ "enabled": domain })),
    };
    match answer {
        Ok(answer) => {
            let _ = context.record_output(json!({ "server": server.spec.name, "answer": answer }));
            Ok(WorkOutcome::Complete)
        }
        Err(e) if e.kind.is_retryable() => Err(OverSshError::Transient(e)),
        Err(e) => refuse(e.to_string()),
    }
}
