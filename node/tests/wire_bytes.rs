//! Every message of the node's request-response protocols, and its gossiped offer, pinned to
//! its exact bytes (`node/testdata/wire_v1.json`). A round trip passes whatever the encoding is; this fails
//! when an encoding changes at all, so a protocol change is made on purpose (a new message
//! tag or protocol version, `docs/node.md`) and never by accident. After an intended change:
//! `SIETCH_BLESS=1 cargo test -p sietch-node --test wire_bytes`, and say so in the commit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sietch_market::{
    Address, B256, BlobRef, Hardware, Input, JobSpec, Limits, Offer, Prices, PublicKey,
    Requirements, ResultCommitment, Signed, Ticket, U256, VerificationPolicy, Voucher,
};
use sietch_node::net::wire::{
    BlobReply, BlobRequest, JobFailure, JobReply, JobRequest, JobResult, Payment, PaymentAck,
    RefuseReason, ResultAck, ResultMessage, VerifyReply, VerifyRequest, WireMessage,
};

fn spec() -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0x01),
        args: vec!["--n".into(), "3".into()],
        env: vec![("K".into(), "V".into())],
        stdin: Some(BlobRef {
            hash: B256::repeat_byte(0x02),
            size: 5,
        }),
        inputs: vec![Input {
            name: "data.bin".into(),
            blob: BlobRef {
                hash: B256::repeat_byte(0x03),
                size: 7,
            },
        }],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 2_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 123_456,
        deadline: 1_700_000_600,
    }
}

fn ticket() -> Ticket {
    Ticket {
        job_id: B256::repeat_byte(0x10),
        spec_hash: B256::repeat_byte(0x11),
        channel_id: B256::repeat_byte(0x12),
        cumulative_before: U256::from(1_000u64),
        max_amount: U256::from(5_000u64),
        deadline: 1_700_000_900,
        check_commit: B256::repeat_byte(0x13),
        per_gfuel: 1_000,
        per_gpu_second: 10_000,
    }
}

fn payment() -> Payment {
    Payment {
        job_id: B256::repeat_byte(0x20),
        secret: B256::repeat_byte(0x21),
        voucher: Some((
            Voucher {
                channel_id: B256::repeat_byte(0x12),
                cumulative_amount: U256::from(2_000u64),
            },
            [0x22; 65],
        )),
        note: String::new(),
    }
}

fn result() -> JobResult {
    JobResult {
        job_id: B256::repeat_byte(0x10),
        outcome: sietch_market::Outcome::Exited { code: 0 },
        stdout: b"hello\n".to_vec(),
        files: [("out.txt".to_string(), b"data".to_vec())].into(),
        commitment: ResultCommitment {
            job_id: B256::repeat_byte(0x10),
            spec_hash: B256::repeat_byte(0x11),
            channel_id: B256::repeat_byte(0x12),
            output_hash: B256::repeat_byte(0x14),
            fuel_used: 4_321,
            gpu_millis: 0,
            amount: U256::from(5u64),
        },
        signature: [0x23; 65],
    }
}

/// A provider's gossiped offer (the gossip topics carry it as these bytes), signed with a
/// fixed key. `extended` adds what offers carry since issue 21: the largest input taken and
/// the large blobs held.
fn signed_offer(extended: bool) -> Vec<u8> {
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x40; 32]);
    let offer = Offer {
        provider: PublicKey::of(&key),
        evm_address: Address::repeat_byte(0x41),
        hardware: Hardware {
            cpu_cores: 4,
            memory_bytes: 8 << 30,
            gpus: vec![],
        },
        features: vec!["simd".into()],
        prices: Prices {
            per_gfuel: 1_000,
            per_gpu_second: 10_000,
        },
        stake: 100,
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        sequence: 7,
        expires_at: 1_700_000_600,
        max_input_bytes: if extended { 256 << 20 } else { 0 },
        cached_blobs: if extended {
            vec![BlobRef {
                hash: B256::repeat_byte(0x42),
                size: 98_362_432,
            }]
        } else {
            vec![]
        },
    };
    Signed::sign(offer, &key).encode()
}

/// Each message by name, with its bytes.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let failure = JobFailure {
        job_id: B256::repeat_byte(0x10),
        reason: RefuseReason::MissingBlob,
        message: "fetching blob 0x03..: not found".into(),
    };
    vec![
        // An offer as gossiped before issue 21 (it must still decode) and one with the
        // extension.
        ("signed_offer_v1", signed_offer(false)),
        ("signed_offer_with_held_blobs", signed_offer(true)),
        (
            "job_request",
            JobRequest {
                spec: spec(),
                ticket: ticket(),
                ticket_signature: [0x24; 65],
                paying: Some(payment()),
            }
            .to_bytes(),
        ),
        (
            "job_reply_accepted",
            JobReply::Accepted {
                job_id: B256::repeat_byte(0x10),
            }
            .to_bytes(),
        ),
        (
            "job_reply_refused",
            JobReply::Refused {
                reason: RefuseReason::Busy,
                message: "all 2 job slots are in use".into(),
            }
            .to_bytes(),
        ),
        (
            "job_reply_done",
            JobReply::Done(Box::new(result())).to_bytes(),
        ),
        ("result", ResultMessage::Done(Box::new(result())).to_bytes()),
        ("result_failed", ResultMessage::Failed(failure).to_bytes()),
        ("result_ack_received", ResultAck::Received.to_bytes()),
        ("result_ack_unknown", ResultAck::UnknownJob.to_bytes()),
        (
            "blob_request",
            BlobRequest {
                hash: B256::repeat_byte(0x03),
                offset: 4,
                max_len: 1 << 20,
            }
            .to_bytes(),
        ),
        (
            "blob_reply_chunk",
            BlobReply::Chunk {
                total: 7,
                data: b"bytes".to_vec(),
            }
            .to_bytes(),
        ),
        ("blob_reply_not_found", BlobReply::NotFound.to_bytes()),
        ("payment", payment().to_bytes()),
        (
            "payment_withheld",
            Payment {
                voucher: None,
                note: "spot check failed".into(),
                ..payment()
            }
            .to_bytes(),
        ),
        ("payment_ack_accepted", PaymentAck::Accepted.to_bytes()),
        (
            "payment_ack_refused",
            PaymentAck::Refused {
                message: "below the last voucher".into(),
            }
            .to_bytes(),
        ),
        (
            "verify_request",
            VerifyRequest {
                ticket_id: B256::repeat_byte(0x30),
                job_id: B256::repeat_byte(0x10),
                spec: spec(),
                delivery: Some(Box::new(result())),
            }
            .to_bytes(),
        ),
        ("verify_reply_accepted", VerifyReply::Accepted.to_bytes()),
        (
            "verify_reply_delivered",
            VerifyReply::Delivered(Box::new(result())).to_bytes(),
        ),
        (
            "verify_reply_refused",
            VerifyReply::Refused {
                message: "not drawn".into(),
            }
            .to_bytes(),
        ),
    ]
}

#[test]
fn every_wire_message_keeps_its_exact_bytes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wire_v1.json");
    sietch_testkit::pinned::check(
        &path,
        messages(),
        "wire encodings changed (see this file's docs)",
    );
    // And every pinned message still decodes to what made it.
    for (name, bytes) in messages() {
        let back = match name {
            n if n.starts_with("signed_offer") => {
                Signed::<Offer>::decode(&bytes).map(|m| m.encode())
            }
            n if n.starts_with("job_request") => {
                JobRequest::from_bytes(&bytes).map(|m| m.to_bytes())
            }
            n if n.starts_with("job_reply") => JobReply::from_bytes(&bytes).map(|m| m.to_bytes()),
            n if n.starts_with("result_ack") => ResultAck::from_bytes(&bytes).map(|m| m.to_bytes()),
            n if n.starts_with("result") => ResultMessage::from_bytes(&bytes).map(|m| m.to_bytes()),
            n if n.starts_with("blob_request") => {
                BlobRequest::from_bytes(&bytes).map(|m| m.to_bytes())
            }
            n if n.starts_with("blob_reply") => BlobReply::from_bytes(&bytes).map(|m| m.to_bytes()),
            n if n.starts_with("payment_ack") => {
                PaymentAck::from_bytes(&bytes).map(|m| m.to_bytes())
            }
            n if n.starts_with("payment") => Payment::from_bytes(&bytes).map(|m| m.to_bytes()),
            n if n.starts_with("verify_request") => {
                VerifyRequest::from_bytes(&bytes).map(|m| m.to_bytes())
            }
            n if n.starts_with("verify_reply") => {
                VerifyReply::from_bytes(&bytes).map(|m| m.to_bytes())
            }
            n => panic!("no decoder for {n}"),
        };
        assert_eq!(back.unwrap(), bytes, "{name}");
    }
}
