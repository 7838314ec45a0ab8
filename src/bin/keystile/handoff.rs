//! `keystile handoff …`: handoff links from the command line.

use std::time::Duration;

use clap::{Args, Subcommand};
use keystile::handoff::{
    DEFAULT_HANDOFF_PATH, Handoff, HandoffCodec, HandoffIssuer, LandingPath, TenantOrigin,
};
use keystile::keys::Keyring;

/// Handoff links.
#[derive(Debug, Subcommand)]
pub enum HandoffCommand {
    /// Mint a single-use handoff link and print it (signed with KEYSTILE_SECRET).
    Mint(MintArgs),
}

/// `keystile handoff mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Who the session is for.
    #[arg(long = "sub", value_name = "SUBJECT")]
    subject: String,
    /// The tenant the link may be redeemed at (e.g. `acme`).
    #[arg(long = "aud", value_name = "TENANT")]
    audience: String,
    /// Who acts as the subject (impersonation), e.g. `op:7`.
    #[arg(long = "act", value_name = "ACTOR")]
    actor: Option<String>,
    /// Lifetime in seconds (at most 600).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    ttl: u64,
    /// The tenant's origin: `http(s)://host[:port]`.
    #[arg(long, value_name = "URL")]
    url: String,
    /// The tenant's handoff path.
    #[arg(long, default_value = DEFAULT_HANDOFF_PATH)]
    path: String,
    /// A same-origin path to land on after the handoff.
    #[arg(long, value_name = "PATH")]
    next: Option<String>,
}

/// Runs a handoff subcommand; the error is the message to print.
pub fn run(command: HandoffCommand) -> Result<(), String> {
    match command {
        HandoffCommand::Mint(args) => {
            let keyring = Keyring::from_env().map_err(|e| e.to_string())?;
            println!("{}", mint(&args, keyring)?);
            Ok(())
        }
    }
}

fn mint(args: &MintArgs, keyring: Keyring) -> Result<String, String> {
    let codec = HandoffCodec::new(keyring)
        .ttl(Duration::from_secs(args.ttl))
        .map_err(|e| e.to_string())?;
    let issuer = HandoffIssuer::new(codec)
        .path(&args.path)
        .map_err(|e| e.to_string())?;
    let origin = TenantOrigin::parse(&args.url).map_err(|e| e.to_string())?;
    let mut handoff = Handoff::new(&args.subject, &args.audience);
    if let Some(actor) = &args.actor {
        handoff = handoff.acting_as(actor);
    }
    let url = match &args.next {
        Some(next) => {
            let next = LandingPath::parse(next).map_err(|e| e.to_string())?;
            issuer.redirect_url_to(&origin, &handoff, &next)
        }
        None => issuer.redirect_url(&origin, &handoff),
    };
    url.map_err(|e| e.to_string())
}
