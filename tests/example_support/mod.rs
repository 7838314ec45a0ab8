//! An example run as a process of its own, for the `example_*` tests.
//!
//! The test file compiles the example's `main` in (`#[path = "../examples/…"]
//! mod example;`) and defines a `#[test] fn example_process()` that calls it
//! when the variable the test names is set. [`Example::start`] runs this
//! same test binary again with that variable set and only that test
//! selected, so the child is the example and no second cargo build is
//! needed. Every wait is bounded by [`STARTUP`], and the child is killed
//! when its [`Example`] is dropped.
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Bound on the example starting, printing a line, or stopping on its own.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The example running in a child process, and what it has printed.
pub struct Example {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far.
    pub printed: Vec<String>,
}

impl Example {
    /// Runs the example (this binary's `example_process` test, with
    /// `run_example` set) on a port of its choosing (`PORT=0`), without the
    /// variables in `remove`, with `env` on top.
    pub fn start(run_example: &str, remove: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "example_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(run_example, "1")
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for name in remove {
            command.env_remove(name);
        }
        let mut child = command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (sender, lines) = mpsc::unbounded_channel();
        // Read to the end, so a full pipe never blocks the child.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// The rest of the first line printed from now on that starts with
    /// `prefix`.
    pub async fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let line = match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("the example exited before printing {prefix:?}:\n{self}"),
                Err(_) => panic!("the example printed no {prefix:?} in {STARTUP:?}:\n{self}"),
            };
            self.printed.push(line);
            if let Some(rest) = self.printed.last().unwrap().strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// The example's base URL, once it is listening.
    pub async fn base_url(&mut self) -> String {
        self.line("listening on ").await
    }

    /// Waits for the example to stop on its own; its status and everything
    /// it printed.
    pub async fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + STARTUP;
        let status = timeout_at(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the example kept running:\n{self}"))
            .unwrap();
        while let Ok(Some(line)) = timeout_at(deadline, self.lines.recv()).await {
            self.printed.push(line);
        }
        (status, self.printed.join("\n"))
    }

    /// Kills the example.
    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

impl std::fmt::Display for Example {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.printed.join("\n"))
    }
}
