//! The load-test server of `scripts/bench`: one route per benchmark
//! scenario, each behind its own layer stack, on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p keystile-benches --bin bench_server -- 127.0.0.1:8411 routes.tsv
//! ```
//!
//! Before serving it writes `routes.tsv`: one line per scenario with its
//! name, its path and the request headers that the layer admits (so the
//! load generator sends a valid credential), tab-separated.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;

#[path = "../scenarios/mod.rs"]
mod scenarios;

use scenarios::{ALL, Fixtures};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(routes_file)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1),
    ) else {
        eprintln!("usage: bench_server <127.0.0.1:port> <routes.tsv>");
        return ExitCode::from(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("bench_server listens on loopback addresses only");
        return ExitCode::from(2);
    }

    let fixtures = Fixtures::new();
    let mut app = Router::new();
    let mut routes = String::new();
    for scenario in ALL {
        let path = format!("/{}", scenario.name());
        let prepared = fixtures.prepare(scenario, &path);
        routes.push_str(scenario.name());
        routes.push('\t');
        routes.push_str(&path);
        for (name, value) in &prepared.headers {
            routes.push('\t');
            routes.push_str(name.as_str());
            routes.push_str(": ");
            routes.push_str(value.to_str().unwrap_or_default());
        }
        routes.push('\n');
        app = app.merge(prepared.router);
    }
    let written =
        std::fs::File::create(routes_file).and_then(|mut file| file.write_all(routes.as_bytes()));
    if let Err(error) = written {
        eprintln!("{routes_file}: {error}");
        return ExitCode::FAILURE;
    }

    // One thread: `scripts/bench` pins the server to one core and the load
    // generator to the other.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("bench_server listening on {addr}");
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_server: {error}");
            ExitCode::FAILURE
        }
    }
}
