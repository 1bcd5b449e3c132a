//! The `drover` command.

use clap::Parser;
use drover::cli;

/// How a shell reports a command killed by SIGPIPE (128 + 13).
const CLOSED_PIPE: u8 = 141;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let args = cli::Args::parse();
    init_logging(&args);
    match cli::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.is::<cli::ChangesFound>() => std::process::ExitCode::from(2),
        Err(error) if is_closed_pipe(&error) => std::process::ExitCode::from(CLOSED_PIPE),
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
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = args.log_format.unwrap_or(if terminal {
        cli::LogFormat::Text
    } else {
        cli::LogFormat::Json
    });
    match format {
        cli::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        // Colour is for a person at a terminal, not for a file or a pipe.
        cli::LogFormat::Text => builder.with_ansi(terminal).init(),
    }
}

/// `drover jobs show 7 | head` closes the pipe early: Rust ignores SIGPIPE, so printing panics
/// instead of the process ending quietly as other commands do. End it quietly.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            std::process::exit(CLOSED_PIPE.into());
        }
        default(info);
    }));
}

fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
