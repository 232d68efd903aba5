//! An RPC endpoint that fails the way public ones do: a TCP proxy in front of anvil that
//! drops connections at random (before a request reaches the chain, or after, with its answer
//! lost) and goes down altogether for a while when told to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy did to its clients so far.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests whose connection was closed before they reached the chain.
    pub dropped_before: AtomicU64,
    /// Requests forwarded to the chain whose answer was thrown away (the connection closed).
    pub dropped_after: AtomicU64,
    /// Connections refused while the proxy was down.
    pub refused: AtomicU64,
}

impl ProxyStats {
    /// Every failure a client saw: requests dropped either way and connections refused.
    pub fn failures(&self) -> u64 {
        self.dropped_before.load(Ordering::Relaxed)
            + self.dropped_after.load(Ordering::Relaxed)
            + self.refused.load(Ordering::Relaxed)
    }
}

struct Shared {
    upstream: SocketAddr,
    /// Chance, in millionths, that a request's connection is dropped.
    drop_ppm: AtomicU32,
    down: AtomicBool,
    stats: ProxyStats,
}

/// A proxy listening on 127.0.0.1; stops when dropped.
pub struct RpcProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl RpcProxy {
    /// Listens on a free loopback port and forwards to `upstream` (anvil's `host:port`),
    /// dropping a request's connection with a chance of `drop_ppm` in a million.
    pub async fn start(upstream: SocketAddr, drop_ppm: u32) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the RPC proxy")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            drop_ppm: AtomicU32::new(drop_ppm),
            down: AtomicBool::new(false),
            stats: ProxyStats::default(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.stats.connections.fetch_add(1, Ordering::Relaxed);
                if s.down.load(Ordering::Relaxed) {
                    s.stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                tokio::spawn(serve(client, s.clone()));
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The URL clients use instead of the chain's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the chance a request's connection is dropped (0: a calm endpoint).
    pub fn set_drop_ppm(&self, ppm: u32) {
        self.shared.drop_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Takes the endpoint down (new connections closed at once) or up again. Connections
    /// already open are dropped at their next request while it is down.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::Relaxed);
    }

    /// What it did so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: its reads forwarded one at a time (each read is a request, or
/// part of one), each with the drop chance; the chain's answers copied back as they come.
async fn serve(client: TcpStream, s: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect(s.upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut up_r, mut up_w) = upstream.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut up_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(chunk) = buf.get(..n) else { break };
        if s.down.load(Ordering::Relaxed) {
            s.stats.refused.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let ppm = s.drop_ppm.load(Ordering::Relaxed);
        let roll: u32 = rand::thread_rng().gen_range(0..1_000_000);
        if roll < ppm {
            // Half before the chain sees the request, half after (it ran; its answer is lost).
            if roll.is_multiple_of(2) {
                s.stats.dropped_before.fetch_add(1, Ordering::Relaxed);
            } else {
                s.stats.dropped_after.fetch_add(1, Ordering::Relaxed);
                let _ = up_w.write_all(chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            break;
        }
        if up_w.write_all(chunk).await.is_err() {
            break;
        }
    }
    back.abort();
}
