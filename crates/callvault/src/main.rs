//! The `callvault` binary. This first cut has the CLI skeleton only; `serve`, `demo` and the user
//! commands arrive with the server issue.

use clap::Parser;

/// Self-hostable, end-to-end encrypted voice and video calling.
#[derive(Debug, Parser)]
#[command(name = "callvault", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the protocol schemas this build speaks (schema id and Rust type).
    Schemas,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Schemas) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for e in callvault_protocol::registry::ENTRIES {
                writeln!(out, "{}\t{}", e.id, e.rust_type)?;
            }
        }
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
        }
    }
    Ok(())
}
