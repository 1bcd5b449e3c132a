//! `drover servers bootstrap …` and `drover servers bootstraps`: a bare server brought into
//! the fleet over SSH, planned first, then followed step by step.

use std::time::Duration;

use anyhow::bail;
use clap::Args as ClapArgs;
use drover_core::{BootstrapSpec, BootstrapState, StepProgress, StepState};
use drover_store::{RequestContext, ServerBootstrap, Store};
use serde_json::{Value, json};

use super::{Output, PageArgs, from_flags};
use crate::commands::{self, BootstrapPlan};
use crate::config::Config;

/// What `drover servers bootstrap` is told.
#[derive(Debug, ClapArgs)]
pub struct BootstrapArgs {
    /// How drover logs in: root@HOST or root@HOST:PORT (every step runs as root).
    #[arg(long, value_name = "USER@HOST[:PORT]")]
    ssh: String,
    /// Where its private key is: env:NAME or file:/path (an unencrypted Ed25519 or ECDSA key).
    #[arg(long)]
    ssh_key: String,
    /// The server's SSH host key to pin, as `ssh-keygen -lf` prints it (SHA256:…): checked
    /// before the key is offered.
    #[arg(long)]
    ssh_host_key: String,
    /// drover's name for the server, unique in the fleet.
    #[arg(long)]
    name: String,
    /// The most accounts it may hold.
    #[arg(long)]
    capacity: u32,
    /// Where Webmin will answer [default: 10000].
    #[arg(long)]
    webmin_port: Option<u16>,
    /// The Webmin user made for drover [default: drover].
    #[arg(long)]
    api_user: Option<String>,
    /// Where that user's password is kept: env:NAME or file:/path; a file that does not exist
    /// yet is filled with a new random password [default: file:<secrets dir>/<name>.webmin-password].
    #[arg(long)]
    api_credentials: Option<String>,
    /// Public IPv4 address, written into DNS.
    #[arg(long)]
    ipv4: Option<String>,
    /// Public IPv6 address, written into DNS.
    #[arg(long)]
    ipv6: Option<String>,
    /// A placement tag such as region-eu; repeat for more.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// drover's own address or network; repeat for more. Its Webmin user logs in only from
    /// these; with --firewall, only these reach Webmin and SSH.
    #[arg(long = "allow-from", value_name = "ADDRESS[/PREFIX]")]
    allow_from: Vec<String>,
    /// Let only --allow-from reach Webmin's and SSH's ports (nftables).
    #[arg(long, requires = "allow_from")]
    firewall: bool,
    /// Ban addresses that keep failing to log in to SSH or Webmin (fail2ban).
    #[arg(long)]
    fail2ban: bool,
    /// Install with Virtualmin's online installer instead of the local copy
    /// (DROVER_VIRTUALMIN_SOURCES).
    #[arg(long)]
    online: bool,
    /// Print every step and its commands; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Follow the steps until the server is in the fleet (or the bootstrap failed).
    #[arg(long, conflicts_with = "dry_run")]
    wait: bool,
}

impl BootstrapArgs {
    fn spec(&self, config: &Config) -> anyhow::Result<BootstrapSpec> {
        let Some((user, address)) = self.ssh.split_once('@') else {
            bail!(
                "--ssh '{}' is not USER@HOST[:PORT] (root@vm9.example.net)",
                self.ssh
            );
        };
        // [2001:db8::9]:22, vm9.example.net:2222, 203.0.113.9
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--ssh: '{port}' is not a TCP port"))?;
                (host.trim_matches(['[', ']']), Some(port))
            }
            _ => (address.trim_matches(['[', ']']), None),
        };
        let credentials = self.api_credentials.clone().unwrap_or_else(|| {
            format!(
                "file:{}",
                config
                    .secret_sources
                    .dir
                    .join(format!("{}.webmin-password", self.name))
                    .display()
            )
        });
        let mut ssh = json!({ "user": user, "key": self.ssh_key, "host_key": self.ssh_host_key });
        if let Some(port) = port {
            ssh["port"] = port.into();
        }
        let mut spec = json!({
            "name": self.name,
            "host": host,
            "ssh": ssh,
            "api_credentials": credentials,
            "capacity": self.capacity,
            "tags": self.tags,
            "allow_from": self.allow_from,
            "firewall": self.firewall,
            "fail2ban": self.fail2ban,
            "install": if self.online { "online" } else { "local_copy" },
        });
        let optional = [
            ("webmin_port", self.webmin_port.map(Value::from)),
            ("api_user", self.api_user.clone().map(Value::from)),
            ("ipv4", self.ipv4.clone().map(Value::from)),
            ("ipv6", self.ipv6.clone().map(Value::from)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                spec[key] = value;
            }
        }
        from_flags(spec)
    }
}

pub async fn start(
    args: BootstrapArgs,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    let spec = args.spec(config)?;
    let plan = commands::bootstrap_server(
        store,
        ctx,
        &config.secret_sources,
        config.virtualmin_sources.as_deref(),
        spec,
        args.dry_run,
    )
    .await?;
    if out.json && !args.wait {
        return out.one(&plan);
    }
    if !out.json {
        print_plan(&plan);
    }
    let Some(started) = plan.bootstrap else {
        return Ok(());
    };
    if !args.wait {
        return Ok(());
    }
    ended(follow(store, started.id, out).await?, out)
}

/// `drover servers bootstraps ID --resume [--wait]`.
pub async fn resume(
    id: i64,
    wait: bool,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    let resumed = commands::resume_bootstrap(store, ctx, id).await?;
    if !wait {
        if out.json {
            return out.one(&resumed);
        }
        println!(
            "bootstrap {} of {} runs again (job {})",
            resumed.id,
            resumed.spec.name,
            resumed.job_id.map(|j| j.to_string()).unwrap_or_default()
        );
        return Ok(());
    }
    ended(follow(store, id, out).await?, out)
}

/// Says how a followed bootstrap ended: an error when it failed.
fn ended(ended: ServerBootstrap, out: Output) -> anyhow::Result<()> {
    if out.json {
        out.one(&ended)?;
    }
    match ended.state {
        BootstrapState::Done => Ok(()),
        _ => bail!(
            "bootstrap {} of {} failed: {}",
            ended.id,
            ended.spec.name,
            ended.error.as_deref().unwrap_or("see its steps")
        ),
    }
}

fn print_plan(plan: &BootstrapPlan) {
    let name = |plan: &BootstrapPlan| {
        plan.bootstrap
            .as_ref()
            .map(|b| b.spec.name.to_string())
            .unwrap_or_default()
    };
    if plan.dry_run {
        println!(
            "dry run: {} steps, each run as root over SSH after its check (a step whose check \
             passes is not run); nothing was changed",
            plan.steps.len()
        );
    }
    for (n, step) in plan.steps.iter().enumerate() {
        println!("{}. {}: {}", n + 1, step.step, step.what);
        if !plan.dry_run {
            continue;
        }
        let indent = |text: &str| {
            text.lines()
                .map(|l| format!("     {l}\n"))
                .collect::<String>()
        };
        if let Some(check) = &step.check {
            print!("   check:\n{}", indent(check));
        }
        for upload in &step.uploads {
            println!(
                "   upload: {upload} -> {}/{upload}",
                drover_core::UPLOAD_DIR
            );
        }
        if let Some(run) = &step.run {
            print!("   run:\n{}", indent(run));
        }
        if step.reads_password {
            println!("   (the Webmin user's password is given on the standard input)");
        }
    }
    if let Some(started) = &plan.bootstrap {
        println!(
            "bootstrap {} of {} started (job {}): follow it with `drover servers bootstraps {}`",
            started.id,
            name(plan),
            started.job_id.map(|j| j.to_string()).unwrap_or_default(),
            started.id
        );
    }
}

/// Prints each step as it changes, until the bootstrap ends.
async fn follow(store: &dyn Store, id: i64, out: Output) -> anyhow::Result<ServerBootstrap> {
    let mut shown: Vec<(String, StepState)> = Vec::new();
    let mut said: Option<String> = None;
    loop {
        let bootstrap = store.bootstrap(id).await?;
        // A step that failed and is tried again later says so, once per note.
        if bootstrap.state == BootstrapState::Running
            && bootstrap.error.is_some()
            && bootstrap.error != said
        {
            if !out.json {
                eprintln!("{}", bootstrap.error.as_deref().unwrap_or_default());
            }
            said.clone_from(&bootstrap.error);
            // The step runs again: show its states again.
            shown.retain(|(_, state)| *state != StepState::Running && *state != StepState::Failed);
        }
        for step in &bootstrap.progress.steps {
            let key = (step.step.to_string(), step.state);
            if step.state == StepState::Waiting || shown.contains(&key) {
                continue;
            }
            if !out.json {
                eprintln!("{}", step_line(step));
            }
            shown.push(key);
        }
        if bootstrap.state != BootstrapState::Running {
            return Ok(bootstrap);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `api-user: done (what it found)`
fn step_line(step: &StepProgress) -> String {
    let detail = step.detail.as_deref().map(|d| format!(" ({d})"));
    format!(
        "{}: {}{}",
        step.step,
        state_words(step.state),
        detail.unwrap_or_default()
    )
}

fn state_words(state: StepState) -> &'static str {
    match state {
        StepState::Waiting => "waiting",
        StepState::Running => "running",
        StepState::AlreadyDone => "already done",
        StepState::Done => "done",
        StepState::Failed => "failed",
    }
}

/// `drover servers bootstraps [ID]`: the bootstraps, or one with its steps and commands.
pub async fn show(
    id: Option<i64>,
    page: PageArgs,
    store: &dyn Store,
    out: Output,
) -> anyhow::Result<()> {
    let Some(id) = id else {
        let list: Vec<Value> = store
            .bootstraps(page.page())
            .await?
            .into_iter()
            .map(|b| {
                json!({
                    "id": b.id, "name": b.spec.name, "host": b.spec.host, "state": b.state,
                    "server_id": b.server_id, "error": b.error,
                })
            })
            .collect();
        return out.list(
            &list,
            &["id", "name", "host", "state", "server_id", "error"],
        );
    };
    let bootstrap = store.bootstrap(id).await?;
    if out.json {
        return out.one(&bootstrap);
    }
    println!(
        "bootstrap {} of {} ({}): {}{}",
        bootstrap.id,
        bootstrap.spec.name,
        bootstrap.spec.host,
        bootstrap.state.as_str(),
        bootstrap
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    for step in &bootstrap.progress.steps {
        println!("  {}", step_line(step));
    }
    println!("commands run ({}):", bootstrap.progress.commands.len());
    for command in &bootstrap.progress.commands {
        let first = command.command.lines().next().unwrap_or_default();
        println!(
            "  [{}] {} {}: {}… exit {} in {:.1} s",
            command.started_at,
            command.step,
            command.kind,
            first,
            command
                .exit_status
                .map_or_else(|| "none".to_owned(), |s| s.to_string()),
            command.seconds
        );
    }
    Ok(())
}
