//! The `drover` command.

use clap::Parser;
use drover::cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    init_logging(&args);
    match cli::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &cli::Args) {
    use tracing_subscriber::EnvFilter;
    // Commands other than the long-running ones keep their output clean unless asked.
    let default = if args.command.is_service() {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        cli::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        cli::LogFormat::Text => builder.init(),
    }
}
