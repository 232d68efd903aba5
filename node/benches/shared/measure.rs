//! What the benches share: their settings from the environment, the machine's load and
//! the process's CPU time, medians and MB/s, and the transfer benches' baseline (the same
//! bytes over one plain loopback TCP connection: tokio, write all, read all into a buffer).
//! Each bench includes it with `#[path]` and uses what it needs.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one copy of `bytes` over a fresh loopback TCP connection takes.
pub(crate) async fn tcp_copy(bytes: Arc<[u8]>) -> anyhow::Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let len = bytes.len();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = Vec::with_capacity(len);
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf.len())
    });
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(&bytes).await?;
    s.shutdown().await?;
    let got = reader.await??;
    let took = t.elapsed();
    anyhow::ensure!(got == len, "TCP copy read {got} of {len} bytes");
    Ok(took)
}

/// The median of `v` (sorted in place; 0 when empty).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `bytes` in `secs`, in MB/s (10^6 bytes).
pub(crate) fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// The setting `name` from the environment, else `default`.
pub(crate) fn num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 1, 5 and 15-minute load averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time of this process (every thread), in seconds.
pub(crate) fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name's closing parenthesis: fields 3.. ; utime and stime are 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}
