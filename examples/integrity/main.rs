//! Request integrity: `cargo run --example integrity`, then open
//! <http://localhost:3006/>.
//!
//! - `POST /demo-login` (the form on `/`) sets a demo session cookie;
//! - `GET /profile` shows a form carrying the CSRF token; `POST /profile`
//!   is refused without it, and from any other origin (a sibling
//!   subdomain included);
//! - `POST /magic-link` (`user=…`) answers a signed, single-use link, and
//!   `GET /magic?…` redeems it once;
//! - `POST /hooks/github` and `POST /hooks/stripe` verify signatures made
//!   with `GITHUB_WEBHOOK_SECRET` and `STRIPE_WEBHOOK_SECRET` (defaults are
//!   printed at start-up).
//!
//! Environment: `PORT` (default 3006, on 127.0.0.1), the two secrets,
//! `RUST_LOG` (default `info`).

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

use keystile::keys::Keyring;
use tracing_subscriber::EnvFilter;

use crate::app::{AppConfig, app};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3006);
    let secret =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let github_secret = secret("GITHUB_WEBHOOK_SECRET", "github-demo-secret");
    let stripe_secret = secret("STRIPE_WEBHOOK_SECRET", "whsec_stripe_demo_secret");
    let Ok(keyring) = Keyring::generate() else {
        eprintln!("no OS randomness for the signing key");
        return ExitCode::FAILURE;
    };
    let listener =
        match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {error}");
                return ExitCode::FAILURE;
            }
        };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("integrity demo on http://localhost:{port}/");
    println!("GITHUB_WEBHOOK_SECRET={github_secret}");
    println!("STRIPE_WEBHOOK_SECRET={stripe_secret}");
    println!("curl -s -X POST -d user=alice http://localhost:{port}/magic-link");
    let app = app(AppConfig {
        keyring,
        origin: format!("http://localhost:{port}"),
        github_secret,
        stripe_secret,
    });
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}
