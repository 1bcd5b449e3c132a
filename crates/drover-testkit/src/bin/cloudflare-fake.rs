//! `cloudflare-fake`: the Cloudflare API fake on its own, for driving it with other clients
//! (Cloudflare's SDKs, octoDNS) or trying drover by hand.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use drover_testkit::{CloudflareFake, FakeConfig};

#[derive(Debug, Parser)]
#[command(about = "A stateful fake of Cloudflare's zones and DNS records API.")]
struct Args {
    /// Address and port to listen on (port 0: any free port; the URL printed says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// An API token to accept (as `Authorization: Bearer TOKEN`); repeat for more.
    #[arg(long = "token", required = true)]
    tokens: Vec<String>,
    /// The account new zones are created in.
    #[arg(long, default_value = "acc0000000000000000000000000001")]
    account_id: String,
    /// Calls per token per window before every call of the token is refused with 429.
    #[arg(long, default_value_t = 1200)]
    limit: usize,
    /// The rate-limit window, in seconds.
    #[arg(long, default_value_t = 300)]
    window_secs: u64,
    /// How long a breach blocks the token, in seconds.
    #[arg(long, default_value_t = 300)]
    block_secs: u64,
    /// Records allowed in one batch (200 on the free plan).
    #[arg(long, default_value_t = 200)]
    max_batch: usize,
    /// A zone that exists from the start (active, in the account); repeat for more.
    #[arg(long = "zone")]
    zones: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = FakeConfig {
        tokens: args.tokens,
        account_id: args.account_id.clone(),
        limit: args.limit,
        window: Duration::from_secs(args.window_secs),
        block: Duration::from_secs(args.block_secs),
        max_batch: args.max_batch,
    };
    let fake = CloudflareFake::start_on(args.listen, config).await?;
    for zone in &args.zones {
        let id = fake.add_zone(zone);
        println!("zone {zone}: {id}");
    }
    println!("account id: {}", args.account_id);
    // Printed last: a script reading the output can stop at this line.
    println!("cloudflare-fake listening on {}", fake.api_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
