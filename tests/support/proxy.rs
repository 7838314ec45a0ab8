//! A loopback TCP proxy a test owns, put in front of a shared backend so the
//! test can take "the backend" away, bring it back, or slow it down without
//! touching the server other tests use.
//!
//! - [`Proxy::cut`] drops every relayed connection and refuses new ones (they
//!   are accepted and closed at once, as a dead server's port would behave
//!   behind a load balancer), while the proxy keeps its port.
//! - [`Proxy::restore`] relays new connections again on the same port, so a
//!   client that reconnects by itself recovers without being rebuilt.
//! - [`Proxy::delay`] holds every chunk in both directions for a while: a
//!   slow backend, for timeout tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A cuttable, delaying TCP proxy on 127.0.0.1; stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    controls: Arc<Controls>,
    accept: JoinHandle<()>,
}

struct Controls {
    up: AtomicBool,
    delay_millis: AtomicU64,
    /// Bumped on every cut: each relay ends when it sees a change.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Starts relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let controls = Arc::new(Controls {
            up: AtomicBool::new(true),
            delay_millis: AtomicU64::new(0),
            cuts: watch::channel(0).0,
        });
        let shared = Arc::clone(&controls);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !shared.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, upstream, Arc::clone(&shared)));
            }
        });
        Self {
            addr,
            controls,
            accept,
        }
    }

    /// Starts a proxy in front of the host and port of `url`.
    pub async fn in_front_of(url: &str) -> Self {
        Self::start(addr_of(url).await).await
    }

    /// Takes the backend down: open connections are dropped, new ones closed.
    pub fn cut(&self) {
        self.controls.up.store(false, Ordering::SeqCst);
        self.controls.cuts.send_modify(|n| *n += 1);
    }

    /// Brings the backend back for new connections.
    pub fn restore(&self) {
        self.controls.up.store(true, Ordering::SeqCst);
    }

    /// Holds every relayed chunk for `delay` (zero: no delay).
    pub fn delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.controls.delay_millis.store(millis, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's; scheme,
    /// credentials, path and query are kept.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}{tail}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The socket address of the host and port in `url` (default ports for
/// `redis` and `postgres` schemes).
pub async fn addr_of(url: &str) -> SocketAddr {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        let port = match scheme {
            "redis" => 6379,
            "postgres" | "postgresql" => 5432,
            _ => 80,
        };
        format!("{host_port}:{port}")
    };
    tokio::net::lookup_host(&host_port)
        .await
        .unwrap_or_else(|e| panic!("cannot resolve {host_port}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{host_port} resolves to nothing"))
}

async fn relay(client: TcpStream, upstream: SocketAddr, controls: Arc<Controls>) {
    let mut cut = controls.cuts.subscribe();
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, &controls) => {}
        _ = pump(server_read, client_write, &controls) => {}
        _ = cut.changed() => {}
    }
}

/// Copies one direction until either side closes, holding each chunk for
/// the current delay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    controls: &Controls,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = controls.delay_millis.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
