//! What this machine brings to the market: its hardware, GPUs and features as its offer
//! states them, and its blobs served from the store.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use sietch_market::B256;
use sietch_market::offer::{ComputeCapability, Gpu, Hardware};

use crate::config::NodeConfig;
use crate::net::BlobSource;
use crate::store::Store;

/// Serves blobs straight from the store's content-addressed files, a chunk at a time.
pub(super) struct StoreBlobs(pub(super) Arc<Store>);

impl BlobSource for StoreBlobs {
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)> {
        if offset == 0 {
            // Served: in use, so not evicted for a while.
            self.0.blobs().touch(hash);
        }
        let mut f = std::fs::File::open(self.0.blobs().path(hash)).ok()?;
        let total = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(offset.min(total))).ok()?;
        let mut buf = Vec::with_capacity(max_len.min(total.saturating_sub(offset) as usize));
        f.take(max_len as u64).read_to_end(&mut buf).ok()?;
        Some((total, buf))
    }
}

/// This machine's hardware, as offered.
pub(super) fn local_hardware(cfg: &NodeConfig) -> Hardware {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(cfg.max_job_memory_bytes, |kb| kb * 1024);
    Hardware {
        cpu_cores: u16::try_from(cores).unwrap_or(u16::MAX),
        memory_bytes: memory.min(cfg.max_job_memory_bytes),
        gpus: if cfg.offer_gpu {
            local_gpus()
        } else {
            Vec::new()
        },
    }
}

/// The GPU jobs run on, as an offer lists it (none where there is no GPU or no driver).
pub fn local_gpus() -> Vec<Gpu> {
    sietch_sandbox::gpu::device_info()
        .map(|d| Gpu {
            model: d.model,
            memory_bytes: d.memory_bytes,
            compute_capability: ComputeCapability {
                major: d.compute_capability.0,
                minor: d.compute_capability.1,
            },
            driver: d.driver,
        })
        .into_iter()
        .collect()
}

/// What an offer's runtime features are: `simd` always; `gpu` with a GPU, and `nvrtc` when
/// its kernels may also be given as CUDA C.
pub(super) fn local_features(hardware: &Hardware) -> Vec<String> {
    let mut f = vec!["simd".to_owned()];
    if !hardware.gpus.is_empty() {
        f.push("gpu".into());
        if sietch_sandbox::gpu::device_info().is_some_and(|d| d.nvrtc) {
            f.push("nvrtc".into());
        }
    }
    f
}
