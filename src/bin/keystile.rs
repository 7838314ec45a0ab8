//! The `keystile` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "keystile/handoff.rs"]
mod handoff;
#[path = "keystile/key.rs"]
mod key;

/// keystile: secrets and credentials for the authentication edge.
#[derive(Debug, Parser)]
#[command(name = "keystile", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signing secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Single-use handoff links to a tenant.
    #[command(subcommand)]
    Handoff(handoff::HandoffCommand),
    /// API keys: mint, list, revoke.
    #[command(subcommand)]
    Key(key::KeyCommand),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Print a fresh 32-byte secret in the form KEYSTILE_SECRET accepts.
    Generate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keystile: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Secret(SecretCommand::Generate) => {
            let secret = keystile::keys::generate_secret().map_err(|e| e.to_string())?;
            println!("{}", secret.as_str());
            Ok(())
        }
        Command::Handoff(command) => handoff::run(command),
        Command::Key(command) => key::run(command),
    }
}
