//! The baseline of the transfer benches: the same bytes over one plain loopback TCP
//! connection (tokio, write all, read all into a buffer).

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
