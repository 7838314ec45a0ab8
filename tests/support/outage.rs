//! A backend outage in the middle of a bounded request load, and the checks
//! every fault test shares: while the backend is away nothing is admitted
//! (every answer is 503 with `Retry-After`), and once it is back the same
//! app — not restarted — admits again.
//!
//! Each answer is tagged with the phase its request started in: a request
//! that started after the backend was taken away and finished before it was
//! brought back must not be admitted — that would be a fail-open bug.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use async_trait::async_trait;

use super::proxy::Proxy;
use super::redis_server::ThrowawayRedis;

/// What the app answered to one request of the load.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Whether the answer let the caller in (a session cookie, a 200 body).
    pub admitted: bool,
    /// Whether `Retry-After` was present.
    pub retry_after: bool,
}

/// One request of the load.
pub type Request = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// Something a test can take away and bring back.
#[async_trait]
pub trait Backend: Send {
    /// Takes the backend away.
    async fn take_down(&mut self);
    /// Brings it back where it was.
    async fn bring_back(&mut self);
}

#[async_trait]
impl Backend for ThrowawayRedis {
    async fn take_down(&mut self) {
        self.stop();
    }
    async fn bring_back(&mut self) {
        self.restart().await;
    }
}

#[async_trait]
impl Backend for Proxy {
    async fn take_down(&mut self) {
        self.cut();
    }
    async fn bring_back(&mut self) {
        self.restore();
    }
}

/// Concurrent workers of the load; each sends one request at a time.
const WORKERS: usize = 4;
/// Requests per worker at most: the load stops by itself.
const MAX_PER_WORKER: usize = 600;
/// Answers needed in each phase before moving on.
const STEADY: usize = 12;

/// How a run went, for the caller's own assertions and messages.
#[derive(Debug, Default)]
pub struct Report {
    /// Answers with the success status before the outage.
    pub before: usize,
    /// 503 answers during the outage.
    pub refused: usize,
    /// 503 answers after the backend returned, before the app reconnected.
    pub reconnecting: usize,
    /// Answers with the success status after the backend returned.
    pub after: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Up,
    Down,
    Back,
    Done,
}

/// The phase requests starting now belong to, shared with the workers.
struct PhaseNow(AtomicU8);

impl PhaseNow {
    fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::SeqCst);
    }
    fn get(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            0 => Phase::Up,
            1 => Phase::Down,
            2 => Phase::Back,
            _ => Phase::Done,
        }
    }
}

/// Runs the load, takes `backend` down once `STEADY` requests succeeded,
/// brings it back once `STEADY` were refused, and ends once `STEADY`
/// succeeded in a row again. `success` is the status of an admitted answer.
///
/// Panics (fails the test) when any answer is neither `success` nor 503,
/// when a 503 admits or lacks `Retry-After`, when a request that started
/// during the outage is admitted, or when the load runs out before the app
/// recovers.
pub async fn outage_under_load(
    backend: &mut dyn Backend,
    request: Request,
    success: u16,
) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let now = Arc::new(PhaseNow(AtomicU8::new(Phase::Up as u8)));
    let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..WORKERS {
        let (stop, now) = (Arc::clone(&stop), Arc::clone(&now));
        let (sender, request) = (sender.clone(), Arc::clone(&request));
        tokio::spawn(async move {
            for _ in 0..MAX_PER_WORKER {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let started = now.get();
                if sender.send((started, request().await)).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);

    let mut phase = Phase::Up;
    let mut in_a_row = 0;
    let mut report = Report::default();
    while let Some((started, answer)) = answers.recv().await {
        let Answer {
            status,
            admitted,
            retry_after,
        } = answer;
        assert!(
            status == success || status == 503,
            "{phase:?}: unexpected status {status}"
        );
        if status == 503 {
            assert!(!admitted, "{phase:?}: a 503 admitted the caller");
            assert!(retry_after, "{phase:?}: a 503 without Retry-After");
        } else {
            assert!(admitted, "{phase:?}: a {status} that did not admit");
        }
        match phase {
            Phase::Up => {
                assert_eq!(status, success, "refused before the outage");
                report.before += 1;
                if report.before >= STEADY {
                    backend.take_down().await;
                    now.set(Phase::Down);
                    phase = Phase::Down;
                }
            }
            Phase::Down => {
                // Received before the backend was brought back, so it also
                // finished while the backend was down.
                assert!(
                    status == 503 || started != Phase::Down,
                    "admitted by a request that started and ended while the backend was down"
                );
                if status == 503 {
                    report.refused += 1;
                }
                if report.refused >= STEADY {
                    backend.bring_back().await;
                    now.set(Phase::Back);
                    phase = Phase::Back;
                }
            }
            Phase::Back => {
                if status == success {
                    report.after += 1;
                    in_a_row += 1;
                } else {
                    report.reconnecting += 1;
                    in_a_row = 0;
                }
                if in_a_row >= STEADY {
                    stop.store(true, Ordering::SeqCst);
                    now.set(Phase::Done);
                    phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }
    assert_eq!(
        phase,
        Phase::Done,
        "the load ran out before the app recovered: {report:?}"
    );
    report
}
