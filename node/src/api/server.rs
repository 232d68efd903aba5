//! The API's server: accepts connections under a cap in total and per client address, serves
//! each with hyper under the connection's clock ([`super::conn`]), and answers a connection
//! it cannot take at once, in JSON, then closes it.
//!
//! When full, a new connection closes the longest-idle one (no request in flight: an idle
//! kept-alive socket, one that never sent a request, one still trickling headers), so idle
//! sockets cannot lock clients out; when every connection is busy it is refused (503
//! `connections_full`, or 429 `connections_per_client` over the per-client cap). Out of file
//! descriptors, the server closes its longest-idle connection and accepts again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

use super::conn::{ConnState, Guarded, Tracked};
use super::http::HttpConfig;

/// Refusals being written at once; past it a connection over the cap is closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a refusal may take to write (and its request to drain) before the socket closes.
const REFUSAL_TIME: Duration = Duration::from_millis(500);

/// The open connections.
struct Registry {
    inner: Mutex<Open>,
    max: usize,
    max_per_client: usize,
}

#[derive(Default)]
struct Open {
    next: u64,
    conns: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

struct Entry {
    ip: IpAddr,
    state: Arc<ConnState>,
    close: Arc<Notify>,
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Full,
    PerClient,
}

/// A connection's place in the registry, given back on drop.
struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
    close: Arc<Notify>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.lock().remove(self.id);
    }
}

impl Open {
    fn remove(&mut self, id: u64) {
        if let Some(e) = self.conns.remove(&id)
            && let Some(n) = self.per_client.get_mut(&e.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&e.ip);
            }
        }
    }

    /// Closes the longest-idle connection (of `ip`, if given); whether there was one.
    fn evict_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, e)| ip.is_none_or(|ip| e.ip == ip))
            .filter_map(|(id, e)| e.state.idle_since().map(|t| (t, *id)))
            .min();
        match oldest {
            Some((_, id)) => {
                if let Some(e) = self.conns.get(&id) {
                    e.close.notify_one();
                }
                self.remove(id);
                true
            }
            None => false,
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut open = self.lock();
        if open.per_client.get(&ip).copied().unwrap_or(0) >= self.max_per_client
            && !open.evict_idle(Some(ip))
        {
            return Err(Refusal::PerClient);
        }
        if open.conns.len() >= self.max && !open.evict_idle(None) {
            return Err(Refusal::Full);
        }
        open.next += 1;
        let id = open.next;
        let state = ConnState::new();
        let close = Arc::new(Notify::new());
        open.conns.insert(
            id,
            Entry {
                ip,
                state: state.clone(),
                close: close.clone(),
            },
        );
        *open.per_client.entry(ip).or_default() += 1;
        Ok(Admitted {
            registry: self.clone(),
            id,
            state,
            close,
        })
    }
}

/// Accepts and serves until the listener fails for good.
pub(crate) async fn run(listener: TcpListener, app: Router, config: HttpConfig) {
    let registry = Arc::new(Registry {
        inner: Mutex::new(Open::default()),
        max: config.max_connections as usize,
        max_per_client: config.max_connections_per_client as usize,
    });
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors (or memory): free one and try again shortly; a
                // connection that broke off before it was accepted is nothing.
                let freed = registry.lock().evict_idle(None);
                tracing::debug!("API accept failed ({e}); closed an idle connection: {freed}");
                tokio::time::sleep(Duration::from_millis(if freed { 5 } else { 50 })).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match registry.admit(peer.ip()) {
            Ok(admitted) => {
                tokio::spawn(serve_one(
                    stream,
                    peer,
                    admitted,
                    app.clone(),
                    config.clone(),
                ));
            }
            Err(why) => {
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream, why).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    app: Router,
    config: HttpConfig,
) {
    let state = admitted.state.clone();
    let io = Guarded::new(
        stream,
        state.clone(),
        config.header_timeout(),
        config.idle_timeout(),
    );
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let guard = state.begin();
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            let resp = match tower_service::Service::call(&mut app, req.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Tracked {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's own bound on a request's headers, behind the connection's clock.
        .header_read_timeout(config.header_timeout() + config.idle_timeout())
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(%peer, "API connection ended: {e}");
            }
        }
        () = admitted.close.notified() => {
            tracing::debug!(%peer, "API connection closed to make room");
        }
    }
    drop(admitted);
}

/// Answers a connection over the cap with its JSON error and closes it.
async fn refuse(mut stream: TcpStream, why: Refusal) {
    let (status, code, message) = match why {
        Refusal::Full => (
            "503 Service Unavailable",
            "connections_full",
            "the node has as many API connections open as it takes, all busy; try again shortly",
        ),
        Refusal::PerClient => (
            "429 Too Many Requests",
            "connections_per_client",
            "this client has as many API connections open as the node takes from one \
             address, all busy; close some or try again shortly",
        ),
    };
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        // The request is read (a little of it) so that closing does not reset the
        // connection before the client reads the answer.
        let mut buf = [0u8; 2048];
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
