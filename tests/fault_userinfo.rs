//! The userinfo endpoint (the source of truth for session versions) failing
//! in the middle of a bounded request load — answering 500, answering
//! garbage, or not answering at all — then recovering. Every subject is new,
//! so every request needs a fetch: while the endpoint fails each one is a
//! 503, never admitted, and the same app admits again once it answers.

mod session_version_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keystile::session_version::{
    MemorySessionVersionCache, SessionVersionValidator, UserinfoFetcher,
};
use session_version_support::{Idp, Mode, ResourceServer, token};
use support::outage::{Answer, Backend, Request, outage_under_load};

/// The fetch timeout these tests configure.
const FETCH_TIMEOUT: Duration = Duration::from_millis(300);

/// The identity provider switched between answering and one failure mode.
struct Failing {
    idp: Idp,
    mode: Mode,
}

#[async_trait]
impl Backend for Failing {
    async fn take_down(&mut self) {
        self.idp.set_mode(self.mode);
    }
    async fn bring_back(&mut self) {
        self.idp.set_mode(Mode::Answer);
    }
}

async fn resource_server(idp: &Idp) -> ResourceServer {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let fetcher = UserinfoFetcher::new(&idp.userinfo_url)
        .unwrap()
        .client(client)
        .timeout(FETCH_TIMEOUT);
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetcher);
    ResourceServer::start(validator).await
}

/// `/api/me` for a subject never seen before, so the cache cannot answer.
fn fresh_subject_request(server: ResourceServer) -> Request {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move || {
        let (client, server, next) = (client.clone(), server.clone(), Arc::clone(&next));
        Box::pin(async move {
            let subject = format!("user{}", next.fetch_add(1, Ordering::SeqCst));
            let response = server.me(&client, &token(&subject, Some(0))).await;
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.text().await.unwrap_or_default();
            Answer {
                status,
                admitted: body.starts_with(&format!("{subject} ")),
                retry_after,
            }
        })
    })
}

async fn fails_closed_and_recovers(mode: Mode) {
    let idp = Idp::start().await;
    let server = resource_server(&idp).await;
    let mut failing = Failing { idp, mode };
    let report = outage_under_load(&mut failing, fresh_subject_request(server), 200).await;
    assert!(
        report.refused > 0 && report.after > 0,
        "{mode:?}: {report:?}"
    );
}

#[tokio::test]
async fn a_userinfo_endpoint_answering_500_is_503_until_it_recovers() {
    fails_closed_and_recovers(Mode::ServerError).await;
}

#[tokio::test]
async fn a_userinfo_endpoint_answering_garbage_is_503_until_it_recovers() {
    fails_closed_and_recovers(Mode::Garbage).await;
}

#[tokio::test]
async fn a_userinfo_endpoint_that_hangs_is_503_until_it_recovers() {
    fails_closed_and_recovers(Mode::Hang).await;
}

#[tokio::test]
async fn a_hanging_userinfo_endpoint_is_503_within_a_bound_not_a_hang() {
    let idp = Idp::start().await;
    let request = fresh_subject_request(resource_server(&idp).await);
    idp.set_mode(Mode::Hang);
    // A liveness bound, not a performance figure: five times the timeout.
    let bound = FETCH_TIMEOUT * 5;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = request().await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503);
        assert!(!answer.admitted && answer.retry_after);
        assert!(took < bound, "took {took:?}, bound {bound:?}");
    }
}
