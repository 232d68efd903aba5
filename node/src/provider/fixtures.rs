//! What the provider's unit tests build their inputs from: an offer, a spec, a domain.

use sietch_market::eip712::Domain;
use sietch_market::{
    Address, B256, Hardware, JobSpec, Limits, Offer, Prices, PublicKey, Requirements,
    VerificationPolicy,
};

pub(super) const NOW: u64 = 1_700_000_000;

pub(super) fn domain() -> Domain {
    Domain::new(31_337, Address::repeat_byte(0xee))
}

pub(super) fn offer() -> Offer {
    Offer {
        provider: PublicKey([1; 32]),
        evm_address: Address::repeat_byte(0xaa),
        hardware: Hardware {
            cpu_cores: 4,
            memory_bytes: 1 << 30,
            gpus: Vec::new(),
        },
        features: Vec::new(),
        prices: Prices {
            per_gfuel: 1_000,
            per_gpu_second: 10_000,
        },
        stake: 0,
        addresses: Vec::new(),
        sequence: 1,
        expires_at: NOW + 600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    }
}

pub(super) fn spec() -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(9),
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        inputs: Vec::new(),
        limits: Limits {
            fuel: 2_000_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 3_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 0,
        deadline: 0,
    }
}
