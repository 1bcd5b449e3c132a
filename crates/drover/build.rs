//! Puts the commit drover was built from into `drover --version`: an operator reporting a
//! problem, or checking what a machine runs, needs more than the crate's version. A build
//! from a source archive may name it in `DROVER_COMMIT`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DROVER_COMMIT");
    let commit = std::env::var("DROVER_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "commit unknown".to_owned());
    println!("cargo:rustc-env=DROVER_COMMIT={commit}");
    // Built again when HEAD moves (a commit, a checkout), not on every build: only files that
    // exist are watched (a missing one would make every build run this again), and git says
    // where each is (packed refs, worktrees).
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
