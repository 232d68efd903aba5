//! Every record kind pinned by its exact bytes (`node/testdata/records_v1.json`): a
//! round trip passes whatever the encoding; this fails when it changes at all, so a
//! change is made with a schema migration and never by accident. After an intended
//! change: `SIETCH_BLESS=1 cargo test -p sietch-node --lib store::records::pinned`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use sietch_market::{Hardware, Prices, PublicKey, U256};

fn records() -> Vec<(&'static str, Vec<u8>)> {
    let ticket = Ticket {
        job_id: B256::repeat_byte(0x10),
        spec_hash: B256::repeat_byte(0x11),
        channel_id: B256::repeat_byte(0x12),
        cumulative_before: U256::from(1_000u64),
        max_amount: U256::from(5_000u64),
        deadline: 1_700_000_900,
        check_commit: B256::repeat_byte(0x13),
        per_gfuel: 1_000,
        per_gpu_second: 0,
    };
    let result = ResultCommitment {
        job_id: B256::repeat_byte(0x10),
        spec_hash: B256::repeat_byte(0x11),
        channel_id: B256::repeat_byte(0x12),
        output_hash: B256::repeat_byte(0x14),
        fuel_used: 4_321,
        gpu_millis: 7,
        amount: U256::from(5u64),
    };
    let mut job = JobRecord::new(
        B256::repeat_byte(0x10),
        B256::repeat_byte(0x11),
        Address::repeat_byte(0x15),
        1_700_000_000,
    );
    job.state = JobState::Paid;
    job.ticket = Some(EvmSigned::new(ticket, [0x16; 65]));
    job.result = Some(EvmSigned::new(result, [0x17; 65]));
    job.check_secret = Some(B256::repeat_byte(0x18));
    job.note = "paid".into();
    job.updated_at = 1_700_000_100;
    let key = SigningKey::from_bytes(&[0x19; 32]);
    let offer = Offer {
        provider: PublicKey::of(&key),
        evm_address: Address::repeat_byte(0x1a),
        hardware: Hardware {
            cpu_cores: 8,
            memory_bytes: 16 << 30,
            gpus: vec![],
        },
        features: vec!["wasi".into()],
        prices: Prices {
            per_gfuel: 1_000,
            per_gpu_second: 0,
        },
        stake: 1_000_000,
        addresses: vec!["/ip4/127.0.0.1/tcp/7070".into()],
        sequence: 3,
        expires_at: 1_700_000_600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    };
    vec![
        ("job_record", job.to_bytes()),
        (
            "job_record_new",
            JobRecord::new(B256::ZERO, B256::ZERO, Address::ZERO, 1).to_bytes(),
        ),
        (
            "voucher",
            EvmSigned::new(
                Voucher {
                    channel_id: B256::repeat_byte(0x12),
                    cumulative_amount: U256::from(2_000u64),
                },
                [0x1b; 65],
            )
            .to_bytes(),
        ),
        (
            "reputation",
            Reputation {
                settled_jobs: 10,
                checks_passed: 3,
                checks_failed: 1,
                slashes: 0,
                disputes: 2,
            }
            .to_bytes(),
        ),
        (
            "disputable_ticket",
            DisputableTicket {
                job_id: B256::repeat_byte(0x10),
                channel_id: B256::repeat_byte(0x12),
                undelivered: true,
            }
            .to_bytes(),
        ),
        (
            "node_keys",
            NodeKeys {
                ed25519: key.clone(),
                evm: Some(B256::repeat_byte(0x1c)),
            }
            .to_bytes(),
        ),
        (
            "own_offer",
            OwnOffer {
                sequence: 3,
                offer: Some(Signed::sign(offer, &key)),
            }
            .to_bytes(),
        ),
        (
            "own_offer_withdrawn",
            OwnOffer {
                sequence: 4,
                offer: None,
            }
            .to_bytes(),
        ),
    ]
}

#[test]
fn every_record_keeps_its_exact_bytes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/records_v1.json");
    sietch_testkit::pinned::check(
        &path,
        records(),
        "a record encoding changed: migrate the schema (see this module's docs)",
    );
    let bytes: std::collections::HashMap<_, _> = records().into_iter().collect();
    assert_eq!(
        JobRecord::from_bytes(&bytes["job_record"])
            .unwrap()
            .to_bytes(),
        bytes["job_record"]
    );
    assert_eq!(
        OwnOffer::from_bytes(&bytes["own_offer"])
            .unwrap()
            .to_bytes(),
        bytes["own_offer"]
    );
}
