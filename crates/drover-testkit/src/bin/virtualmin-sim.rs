//! `virtualmin-sim`: the Virtualmin remote.cgi simulator on its own, for trying drover by hand.
//! A domain's files, mail and database rows are put and read at `/_test/content/…` (see
//! `drover_testkit::virtualmin::content`), to follow them through backups and moves.

use std::net::SocketAddr;

use clap::Parser;
use drover_testkit::virtualmin::{Fault, SimConfig, VirtualminSim};

#[derive(Debug, Parser)]
#[command(about = "A Virtualmin remote.cgi simulator that answers like Virtualmin 8.1.")]
struct Args {
    /// Address and port to listen on (not Webmin's 10000: a real server may hold it).
    #[arg(long, default_value = "127.0.0.1:10443")]
    listen: SocketAddr,
    /// The Webmin user to accept.
    #[arg(long, default_value = "root")]
    user: String,
    /// Its password.
    #[arg(long)]
    pass: String,
    /// Serve HTTPS with a self-signed certificate (its SHA-256 is printed, for pinning).
    #[arg(long)]
    tls: bool,
    /// 1.0 answers as slowly as a real server; 0 at once.
    #[arg(long, default_value_t = 1.0)]
    latency_scale: f64,
    /// An account plan the server knows besides "Default Plan"; repeat for more.
    #[arg(long = "plan")]
    plans: Vec<String>,
    /// The share of requests (0 to 1) that fail as a troubled server's do: a proxy's 502, a
    /// dropped connection, an answer in no format, or one 2 s late.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    fault_rate: f64,
}

fn share(input: &str) -> Result<f64, String> {
    match input.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "'{input}' is not a share: expected a number from 0 to 1"
        )),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtualmin-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = SimConfig {
        user: args.user,
        password: args.pass,
        tls: args.tls,
        latency_scale: args.latency_scale,
        ..SimConfig::default()
    };
    let listen = args.listen;
    let sim = VirtualminSim::start_on(listen, config)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e} (choose another with --listen)"))?;
    sim.with_state(|state| state.plans.extend(args.plans.into_iter().map(Into::into)));
    sim.set_fault_rate(
        args.fault_rate,
        vec![
            Fault::Status(502),
            Fault::Drop,
            Fault::Garble,
            Fault::Slow(std::time::Duration::from_secs(2)),
        ],
    );
    println!(
        "virtualmin-sim listening on {}/virtual-server/remote.cgi",
        sim.url()
    );
    if let Some(pin) = sim.certificate_sha256() {
        println!("certificate SHA-256: {pin}");
    }
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_address_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let args = Args::parse_from(["virtualmin-sim", "--pass", "x", "--listen", &addr]);
        let error = run(args).await.unwrap_err();
        assert!(
            error.starts_with(&format!("cannot listen on {addr}: ")) && error.contains("--listen"),
            "{error}"
        );
    }
}
