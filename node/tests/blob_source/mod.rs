//! What the blob stream tests share: a blob source in memory that records what it is asked
//! and can pause once, test blobs, and the temporary files a blob directory holds.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sietch_market::B256;
use sietch_node::net::{BlobSource, NetConfig, Network};
use sietch_node::store::blob_hash;
use sietch_testkit::net::{TestNode, start};
use tokio::sync::mpsc;

/// A pause the source makes once, at the first read at or past `at`, after telling `signal`.
pub struct Pause {
    at: u64,
    wait: Duration,
    signal: Option<mpsc::Sender<()>>,
}

/// Blobs served from memory under the hashes given (which they need not match), recording
/// every offset asked for.
#[derive(Default)]
pub struct Source {
    blobs: HashMap<B256, Vec<u8>>,
    asked: Mutex<Vec<u64>>,
    pause: Mutex<Option<Pause>>,
}

impl Source {
    pub fn of(blobs: impl IntoIterator<Item = (B256, Vec<u8>)>) -> Self {
        Self {
            blobs: blobs.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn pausing(self, at: u64, wait: Duration, signal: Option<mpsc::Sender<()>>) -> Self {
        *self.pause.lock().unwrap() = Some(Pause { at, wait, signal });
        self
    }

    pub fn asked(&self) -> Vec<u64> {
        self.asked.lock().unwrap().clone()
    }
}

impl BlobSource for Source {
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)> {
        let b = self.blobs.get(hash)?;
        self.asked.lock().unwrap().push(offset);
        let pause = {
            let mut p = self.pause.lock().unwrap();
            if p.as_ref().is_some_and(|p| offset >= p.at) {
                p.take()
            } else {
                None
            }
        };
        if let Some(p) = pause {
            if let Some(s) = p.signal {
                let _ = s.try_send(());
            }
            std::thread::sleep(p.wait);
        }
        let start = (offset as usize).min(b.len());
        let end = (start + max_len).min(b.len());
        Some((b.len() as u64, b[start..end].to_vec()))
    }
}

pub fn blob(len: usize, seed: u32) -> (B256, Vec<u8>) {
    let bytes: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect();
    (blob_hash(&bytes), bytes)
}

/// Temporary files left in a blob directory.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

pub async fn serving(i: u32, source: Arc<Source>, cfg: NetConfig) -> TestNode {
    start(
        i,
        NetConfig {
            blobs: Some(source),
            ..cfg
        },
    )
    .await
}

pub async fn connect(client: &Network, server: &TestNode) {
    client
        .add_address(server.net.peer_id(), server.addr.clone())
        .await
        .unwrap();
    client.dial(server.addr.clone()).await.unwrap();
}
