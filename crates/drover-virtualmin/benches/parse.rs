//! Parses a 10,000-domain `list-domains --multiline` answer, in JSON and in text, and prints
//! the time and peak memory of each next to a baseline measured in the same run, interleaved
//! round by round (A B A B): for JSON, the usual generic parse into a `serde_json::Value`; for
//! text, a bare split of the answer into lines, the least any text parse does.
//!
//! `cargo bench -p drover-virtualmin --bench parse`. Each case runs in a child process so its
//! peak memory (VmHWM) is its own; each child parses `PARSES` times and reports its median,
//! and the medians of the rounds are compared.

use std::time::{Duration, Instant};

use drover_testkit::virtualmin::{SimConfig, SimDomain, VirtualminSim};
use drover_virtualmin::{DomainInfo, parse_reply, text_records};

const DOMAINS: usize = 10_000;
const ROUNDS: usize = 5;
const PARSES: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--case") {
        return run_case(&args[pos + 1], &args[pos + 2]);
    }
    let dir = std::env::temp_dir().join(format!("drover-parse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (json, text) = runtime.block_on(bodies());
    let json_path = dir.join("list.json");
    let text_path = dir.join("list.txt");
    std::fs::write(&json_path, &json).unwrap();
    std::fs::write(&text_path, &text).unwrap();
    println!(
        "list-domains --multiline with {DOMAINS} domains: JSON {:.1} MB, text {:.1} MB",
        mb(json.len()),
        mb(text.len())
    );
    println!(
        "{:<34} {:>10} {:>14} {:>12}",
        "case (median of rounds)", "time", "peak memory", "vs baseline"
    );
    let pairs = [
        (
            "serde_json::Value (json)",
            "value-json",
            "drover parse (json)",
            "json",
            &json_path,
        ),
        (
            "bare line split (text)",
            "baseline-text",
            "drover parse (text)",
            "text",
            &text_path,
        ),
    ];
    for (baseline_name, baseline_case, name, case, path) in pairs {
        let (mut baseline, mut drover) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            baseline.push(child(baseline_case, path));
            drover.push(child(case, path));
        }
        let baseline = median(baseline);
        let drover = median(drover);
        for (name, (time, memory)) in [(baseline_name, baseline), (name, drover)] {
            let ratio = time.as_secs_f64() / baseline.0.as_secs_f64();
            println!(
                "{name:<34} {:>8.1}ms {memory:>11.1} MB {ratio:>10.2}x",
                ms(time)
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The median time of the rounds, and the highest peak memory.
fn median(mut rounds: Vec<(Duration, f64)>) -> (Duration, f64) {
    let memory = rounds.iter().map(|r| r.1).fold(0.0, f64::max);
    rounds.sort_by_key(|r| r.0);
    (rounds[rounds.len() / 2].0, memory)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs one case in a child process: (median time, peak RSS in MB).
fn child(case: &str, path: &std::path::Path) -> (Duration, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--case", case, path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let nanos: u64 = fields
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("case {case}: {text}"));
    let kb: f64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    (Duration::from_nanos(nanos), kb / 1000.0)
}

fn run_case(case: &str, path: &str) {
    let body = std::fs::read(path).unwrap();
    let mut times = Vec::new();
    for _ in 0..PARSES {
        // The parse takes the answer as the client hands it over: its own bytes.
        let body = body.clone();
        let start = Instant::now();
        let count = match case {
            "json" => parse_reply(200, body)
                .unwrap()
                .records
                .into_iter()
                .map(DomainInfo::from_record)
                .count(),
            "text" => {
                let reply = parse_reply(200, body).unwrap();
                text_records(&reply.output)
                    .into_iter()
                    .map(DomainInfo::from_record)
                    .count()
            }
            "value-json" => {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                value["data"].as_array().map_or(0, Vec::len)
            }
            "baseline-text" => std::str::from_utf8(&body)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with(' ') && l.split_once(':').is_none())
                .count(),
            other => panic!("unknown case {other}"),
        };
        times.push(start.elapsed());
        assert!(count >= DOMAINS, "{case}: {count} domains");
    }
    times.sort();
    let peak_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!("{} {peak_kb}", times[PARSES / 2].as_nanos());
}

/// The JSON and text answers of a simulator holding 10,000 domains.
async fn bodies() -> (Vec<u8>, Vec<u8>) {
    let sim = VirtualminSim::start(SimConfig::default()).await.unwrap();
    sim.with_state(|state| {
        // Quota figures listed as on a server with disk quotas.
        state.home_quotas = true;
        for i in 0..DOMAINS {
            let name = format!("customer-{i:05}.example.ro");
            state.domains.insert(
                name.clone(),
                SimDomain {
                    id: 1_000_000 + i as u64,
                    description: format!("Customer {i}"),
                    features: ["unix", "dir", "dns", "mail", "web"]
                        .map(String::from)
                        .to_vec(),
                    disabled: (i % 10 == 0).then(|| "Suspended for non-payment".to_owned()),
                    quota_blocks: Some(1_048_576),
                    created_unix: 1_795_318_727,
                    ..SimDomain::top_level(&name, &format!("cust{i:05}"))
                },
            );
        }
    });
    let fetch = |query: &'static str| {
        let addr = sim.addr();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "POST /virtual-server/remote.cgi HTTP/1.0\r\nAuthorization: Basic cm9vdDpzZWNyZXQ=\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{query}",
                query.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.unwrap();
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            raw[split + 4..].to_vec()
        }
    };
    let json = fetch("program=list-domains&multiline=&json=1").await;
    let text = fetch("program=list-domains&multiline=").await;
    (json, text)
}
