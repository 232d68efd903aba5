//! Builders shared by the market crate's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::SigningKey;
use sietch_market::*;

pub const NOW: u64 = 1_700_000_000;
pub const GIB: u64 = 1 << 30;

/// A deterministic provider key.
pub fn key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    seed[31] = 0x5a;
    SigningKey::from_bytes(&seed)
}

pub fn h100() -> Gpu {
    Gpu {
        model: "NVIDIA H100 80GB HBM3".into(),
        memory_bytes: 80 * GIB,
        compute_capability: ComputeCapability::new(9, 0),
        driver: "550.54.15".into(),
    }
}

pub fn rtx4090() -> Gpu {
    Gpu {
        model: "NVIDIA GeForce RTX 4090".into(),
        memory_bytes: 24 * GIB,
        compute_capability: ComputeCapability::new(8, 9),
        driver: "550.54.15".into(),
    }
}

/// An offer of provider `i` with no GPU.
pub fn offer(i: u32) -> Offer {
    Offer {
        provider: PublicKey::of(&key(i)),
        evm_address: Address::repeat_byte(i as u8),
        hardware: Hardware {
            cpu_cores: 8,
            memory_bytes: 16 * GIB,
            gpus: vec![],
        },
        features: vec!["simd".into()],
        prices: Prices {
            per_gfuel: 1_000,
            per_gpu_second: 0,
        },
        stake: 1_000_000_000,
        addresses: vec!["/ip4/127.0.0.1/udp/4001/quic-v1".into()],
        sequence: 1,
        expires_at: NOW + 600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    }
}

pub fn signed(o: Offer, i: u32) -> Signed<Offer> {
    Signed::sign(o, &key(i))
}

pub fn verified(o: Offer, i: u32) -> Verified<Offer> {
    signed(o, i).verify().unwrap()
}

/// A CPU job: 10^9 fuel, 1 GiB, 10 s, cap 10_000, 10% sampling.
pub fn cpu_job() -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0xab),
        args: vec!["--n".into(), "1000".into()],
        env: vec![("MODE".into(), "fast".into())],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000_000,
            memory_bytes: GIB,
            wall_time_ms: 10_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 10_000,
        deadline: NOW + 3_600,
    }
}

/// A GPU job needing one H100-class GPU for 10 s.
pub fn gpu_job() -> JobSpec {
    let mut j = cpu_job();
    j.requirements.gpu = Some(GpuNeeds {
        count: 1,
        models: vec!["H100".into()],
        min_memory_bytes: 40 * GIB,
        min_compute_capability: ComputeCapability::new(8, 0),
    });
    j
}
