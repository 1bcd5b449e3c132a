//! `drover serve` as the benches run it: the built binary in a directory of its own, quiet
//! but for errors, stopped when dropped.

use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `drover serve`, its address and what it printed before listening (on a first
/// start, the line after the first is the operator's token).
pub struct Served {
    pub child: tokio::process::Child,
    pub base: String,
    // Not every bench reads it (one seeds its own token), and each compiles this file alone.
    #[allow(dead_code)]
    pub printed: Vec<String>,
}

/// Starts `drover serve` in `dir` with `settings` in its environment.
pub async fn start(dir: &std::path::Path, settings: &[(&str, &str)]) -> Served {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DROVER_LOG_FORMAT", "text")
        .env("RUST_LOG", "error")
        .envs(settings.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("drover serve stopped");
        if let Some(rest) = line.strip_prefix("drover listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        printed.push(line);
    };
    // Whoever started it stops reading: drover must not mind.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        child,
        base,
        printed,
    }
}
