//! The protocol's test vectors (`docs/protocol/vectors/*.json`, described in
//! `docs/protocol/README.md`): every gossip and request-response message, every signature
//! and every derived hash, as readable fields and exact bytes, for another implementation to
//! check itself against.
//!
//! Without `SIETCH_BLESS` the test checks, in both directions:
//! - the committed files are exactly what this code makes from its sample values (the
//!   values' fields and their encodings);
//! - every committed vector's bytes decode, with the node's own decoders, to its committed
//!   fields, and re-encode to the same bytes; every invalid vector is refused with its
//!   committed error kind;
//! - every signature verifies and signing again gives the same bytes (ed25519 and RFC 6979
//!   ECDSA are deterministic); every tampered signature is refused.
//!
//! After an intended protocol change: `SIETCH_BLESS=1 cargo test -p sietch-node --test
//! protocol_vectors`, and say so in the commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sietch_market::codec::Canonical;
use sietch_market::eip712::{self, sol};
use sietch_market::error::DecodeError;
use sietch_market::signed::signing_bytes;
use sietch_market::{
    Address, B256, BlobRef, Comparison, ComputeCapability, Domain, FloatKind, FloatOutput, Gpu,
    GpuNeeds, Hardware, Input, JobSpec, Limits, Offer, Outcome, OutputFiles, Prices, PublicKey,
    Requirements, ResultCommitment, Signable, Signed, Ticket, TrapKind, TypedData, U256,
    VerificationPolicy, Voucher, Withdrawal, registration,
};
use sietch_node::net::OfferClass;
use sietch_node::net::wire::{
    BlobReply, BlobRequest, JobFailure, JobReply, JobRequest, JobResult, Payment, PaymentAck,
    RefuseReason, ResultAck, ResultMessage, VerifyReply, VerifyRequest, WireMessage, read_frame,
    write_frame,
};

#[path = "protocol_vectors/extensions.rs"]
mod extensions;

// ---------------------------------------------------------------------------------------
// Keys and sample values (the wire pins' values, `node/tests/wire_bytes.rs`, with real
// signatures).

/// The provider's ed25519 seed (its libp2p identity; signs offers and withdrawals).
const PROVIDER_SEED: [u8; 32] = [0x40; 32];
/// The buyer's EVM key (signs tickets and vouchers), as in `market/testdata/eip712_vectors.json`.
const BUYER_EVM_KEY: [u8; 32] = [0x11; 32];
/// The provider's EVM key (signs result commitments).
const PROVIDER_EVM_KEY: [u8; 32] = [0x22; 32];
/// The EIP-712 domain: anvil's chain and the first contract its account 0 deploys.
const CHAIN_ID: u64 = 31_337;
const ESCROW: &str = "5FbDB2315678afecb367f032d93F642f64180aa3";

fn domain() -> Domain {
    Domain::new(CHAIN_ID, ESCROW.parse().unwrap())
}

fn ed_key() -> SigningKey {
    SigningKey::from_bytes(&PROVIDER_SEED)
}

fn evm_key(k: [u8; 32]) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::from(k)).unwrap()
}

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

/// A generation job checked by re-scoring (comparison tag 2): the GPU job with the rescore
/// comparison.
fn rescore_spec() -> JobSpec {
    let mut s = gpu_spec();
    s.verification.comparison = Comparison::Rescore { margin: 0.1 };
    s
}

/// A GPU job compared within tolerance: every optional part of a spec present.
fn gpu_spec() -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0x05),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 5_000_000_000,
            memory_bytes: 4 << 30,
            wall_time_ms: 60_000,
            output_bytes: 64 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 2,
            features: vec!["gpu".into(), "nvrtc".into()],
            gpu: Some(GpuNeeds {
                count: 1,
                models: vec!["H100".into()],
                min_memory_bytes: 40 << 30,
                min_compute_capability: ComputeCapability::new(9, 0),
            }),
        },
        verification: VerificationPolicy {
            sampling_ppm: 250_000,
            reruns: 2,
            comparison: Comparison::Tolerance {
                relative: 1e-5,
                absolute: 0.001,
                outputs: vec![
                    FloatOutput {
                        path: "logits.f32".into(),
                        kind: FloatKind::F32,
                    },
                    FloatOutput {
                        path: "energy.f64".into(),
                        kind: FloatKind::F64,
                    },
                ],
            },
        },
        price_cap: 50_000_000,
        deadline: 1_700_003_600,
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

fn commitment() -> ResultCommitment {
    ResultCommitment {
        job_id: B256::repeat_byte(0x10),
        spec_hash: B256::repeat_byte(0x11),
        channel_id: B256::repeat_byte(0x12),
        output_hash: B256::repeat_byte(0x14),
        fuel_used: 4_321,
        gpu_millis: 0,
        amount: U256::from(5u64),
    }
}

fn voucher() -> Voucher {
    Voucher {
        channel_id: B256::repeat_byte(0x12),
        cumulative_amount: U256::from(2_000u64),
    }
}

fn sign712<T: TypedData>(m: &T, key: [u8; 32]) -> [u8; 65] {
    m.sign(&domain(), &evm_key(key)).unwrap()
}

fn payment() -> Payment {
    Payment {
        job_id: B256::repeat_byte(0x20),
        secret: B256::repeat_byte(0x21),
        voucher: Some((voucher(), sign712(&voucher(), BUYER_EVM_KEY))),
        note: String::new(),
    }
}

fn result() -> JobResult {
    JobResult {
        job_id: B256::repeat_byte(0x10),
        outcome: Outcome::Exited { code: 0 },
        stdout: b"hello\n".to_vec(),
        files: [("out.txt".to_string(), b"data".to_vec())].into(),
        commitment: commitment(),
        signature: sign712(&commitment(), PROVIDER_EVM_KEY),
    }
}

fn offer(extended: bool) -> Offer {
    Offer {
        provider: PublicKey::of(&ed_key()),
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
    }
}

fn gpu_offer() -> Offer {
    let gpu = |cc: u8| Gpu {
        model: "NVIDIA H100 80GB HBM3".into(),
        memory_bytes: 80 << 30,
        compute_capability: ComputeCapability::new(cc, 0),
        driver: "550.54.15".into(),
    };
    Offer {
        hardware: Hardware {
            cpu_cores: 32,
            memory_bytes: 256 << 30,
            gpus: vec![gpu(9), gpu(9)],
        },
        features: vec!["gpu".into(), "nvrtc".into(), "simd".into()],
        addresses: vec![
            "/ip4/203.0.113.7/tcp/4001".into(),
            "/ip4/203.0.113.7/udp/4001/quic-v1".into(),
        ],
        sequence: 8,
        ..offer(false)
    }
}

fn withdrawal() -> Withdrawal {
    Withdrawal {
        provider: PublicKey::of(&ed_key()),
        sequence: 7,
    }
}

// ---------------------------------------------------------------------------------------
// Fields as JSON: integers of up to 32 bits are JSON numbers, wider ones decimal strings;
// bytes are lowercase hex without a prefix; text is a JSON string; absent options null.

fn hx(b: impl AsRef<[u8]>) -> Value {
    Value::String(hex::encode(b))
}

fn big(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn blob_j(b: &BlobRef) -> Value {
    json!({ "hash": hx(b.hash), "size": big(b.size) })
}

fn cc_j(c: ComputeCapability) -> Value {
    json!({ "major": c.major, "minor": c.minor })
}

fn offer_j(o: &Offer) -> Value {
    let gpus: Vec<Value> = o
        .hardware
        .gpus
        .iter()
        .map(|g| {
            json!({
                "model": g.model,
                "memory_bytes": big(g.memory_bytes),
                "compute_capability": cc_j(g.compute_capability),
                "driver": g.driver,
            })
        })
        .collect();
    json!({
        "provider": hx(o.provider.0),
        "evm_address": hx(o.evm_address),
        "hardware": {
            "cpu_cores": o.hardware.cpu_cores,
            "memory_bytes": big(o.hardware.memory_bytes),
            "gpus": gpus,
        },
        "features": o.features,
        "prices": {
            "per_gfuel": big(o.prices.per_gfuel),
            "per_gpu_second": big(o.prices.per_gpu_second),
        },
        "stake": big(o.stake),
        "addresses": o.addresses,
        "sequence": big(o.sequence),
        "expires_at": big(o.expires_at),
        "max_input_bytes": big(o.max_input_bytes),
        "cached_blobs": o.cached_blobs.iter().map(blob_j).collect::<Vec<_>>(),
    })
}

fn withdrawal_j(w: &Withdrawal) -> Value {
    json!({ "provider": hx(w.provider.0), "sequence": big(w.sequence) })
}

fn spec_j(s: &JobSpec) -> Value {
    let comparison = match &s.verification.comparison {
        Comparison::Exact => json!({ "kind": "exact" }),
        Comparison::Tolerance {
            relative,
            absolute,
            outputs,
        } => json!({
            "kind": "tolerance",
            "relative": relative,
            "absolute": absolute,
            "outputs": outputs.iter().map(|o| json!({
                "path": o.path,
                "kind": match o.kind { FloatKind::F32 => "f32", FloatKind::F64 => "f64" },
            })).collect::<Vec<_>>(),
        }),
        Comparison::Rescore { margin } => json!({ "kind": "rescore", "margin": margin }),
    };
    let gpu = s.requirements.gpu.as_ref().map(|g| {
        json!({
            "count": g.count,
            "models": g.models,
            "min_memory_bytes": big(g.min_memory_bytes),
            "min_compute_capability": cc_j(g.min_compute_capability),
        })
    });
    json!({
        "module": hx(s.module),
        "args": s.args,
        "env": s.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "stdin": s.stdin.as_ref().map(blob_j),
        "inputs": s.inputs.iter().map(|i| json!({ "name": i.name, "blob": blob_j(&i.blob) })).collect::<Vec<_>>(),
        "limits": {
            "fuel": big(s.limits.fuel),
            "memory_bytes": big(s.limits.memory_bytes),
            "wall_time_ms": big(s.limits.wall_time_ms),
            "output_bytes": big(s.limits.output_bytes),
        },
        "requirements": {
            "min_cpu_cores": s.requirements.min_cpu_cores,
            "features": s.requirements.features,
            "gpu": gpu,
        },
        "verification": {
            "sampling_ppm": s.verification.sampling_ppm,
            "reruns": s.verification.reruns,
            "comparison": comparison,
        },
        "price_cap": big(s.price_cap),
        "deadline": big(s.deadline),
    })
}

fn ticket_j(t: &Ticket) -> Value {
    json!({
        "job_id": hx(t.job_id),
        "spec_hash": hx(t.spec_hash),
        "channel_id": hx(t.channel_id),
        "cumulative_before": big(t.cumulative_before),
        "max_amount": big(t.max_amount),
        "deadline": big(t.deadline),
        "check_commit": hx(t.check_commit),
        "per_gfuel": big(t.per_gfuel),
        "per_gpu_second": big(t.per_gpu_second),
    })
}

fn commitment_j(c: &ResultCommitment) -> Value {
    json!({
        "job_id": hx(c.job_id),
        "spec_hash": hx(c.spec_hash),
        "channel_id": hx(c.channel_id),
        "output_hash": hx(c.output_hash),
        "fuel_used": big(c.fuel_used),
        "gpu_millis": big(c.gpu_millis),
        "amount": big(c.amount),
    })
}

fn voucher_j(v: &Voucher) -> Value {
    json!({ "channel_id": hx(v.channel_id), "cumulative_amount": big(v.cumulative_amount) })
}

fn reason_j(r: RefuseReason) -> Value {
    let name = match r {
        RefuseReason::TooBig => "too_big",
        RefuseReason::PriceTooLow => "price_too_low",
        RefuseReason::ChannelUnderfunded => "channel_underfunded",
        RefuseReason::BadSignature => "bad_signature",
        RefuseReason::Busy => "busy",
        RefuseReason::MissingBlob => "missing_blob",
        RefuseReason::Other => "other",
        _ => panic!("a refuse reason these vectors do not know: add it"),
    };
    json!({ "code": r as u8, "name": name })
}

fn payment_j(p: &Payment) -> Value {
    json!({
        "job_id": hx(p.job_id),
        "secret": hx(p.secret),
        "voucher": p.voucher.as_ref().map(|(v, sig)| json!({ "voucher": voucher_j(v), "signature": hx(sig) })),
        "note": p.note,
    })
}

fn result_j(r: &JobResult) -> Value {
    let (tag, value) = r.outcome.tag();
    json!({
        "job_id": hx(r.job_id),
        "outcome": { "tag": tag, "value": value },
        "stdout": hx(&r.stdout),
        "files": r.files.iter().map(|(n, d)| json!({ "name": n, "data": hx(d) })).collect::<Vec<_>>(),
        "commitment": commitment_j(&r.commitment),
        "signature": hx(r.signature),
    })
}

fn failure_j(f: &JobFailure) -> Value {
    json!({ "job_id": hx(f.job_id), "reason": reason_j(f.reason), "message": f.message })
}

fn job_request_j(m: &JobRequest) -> Value {
    json!({
        "spec": spec_j(&m.spec),
        "ticket": ticket_j(&m.ticket),
        "ticket_signature": hx(m.ticket_signature),
        "paying": m.paying.as_ref().map(payment_j),
    })
}

fn job_reply_j(m: &JobReply) -> Value {
    match m {
        JobReply::Accepted { job_id } => json!({ "variant": "accepted", "job_id": hx(job_id) }),
        JobReply::Refused { reason, message } => {
            json!({ "variant": "refused", "reason": reason_j(*reason), "message": message })
        }
        JobReply::Done(r) => json!({ "variant": "done", "result": result_j(r) }),
    }
}

fn result_message_j(m: &ResultMessage) -> Value {
    match m {
        ResultMessage::Done(r) => json!({ "variant": "done", "result": result_j(r) }),
        ResultMessage::Failed(f) => json!({ "variant": "failed", "failure": failure_j(f) }),
    }
}

fn result_ack_j(m: &ResultAck) -> Value {
    json!({ "variant": match m { ResultAck::Received => "received", ResultAck::UnknownJob => "unknown_job" } })
}

fn blob_request_j(m: &BlobRequest) -> Value {
    json!({ "hash": hx(m.hash), "offset": big(m.offset), "max_len": m.max_len })
}

fn blob_reply_j(m: &BlobReply) -> Value {
    match m {
        BlobReply::Chunk { total, data } => {
            json!({ "variant": "chunk", "total": big(total), "data": hx(data) })
        }
        BlobReply::NotFound => json!({ "variant": "not_found" }),
    }
}

fn payment_ack_j(m: &PaymentAck) -> Value {
    match m {
        PaymentAck::Accepted => json!({ "variant": "accepted" }),
        PaymentAck::Refused { message } => json!({ "variant": "refused", "message": message }),
    }
}

fn verify_request_j(m: &VerifyRequest) -> Value {
    json!({
        "ticket_id": hx(m.ticket_id),
        "job_id": hx(m.job_id),
        "spec": spec_j(&m.spec),
        "delivery": m.delivery.as_deref().map(result_j),
    })
}

fn verify_reply_j(m: &VerifyReply) -> Value {
    match m {
        VerifyReply::Accepted => json!({ "variant": "accepted" }),
        VerifyReply::Delivered(r) => json!({ "variant": "delivered", "result": result_j(r) }),
        VerifyReply::Refused { message } => json!({ "variant": "refused", "message": message }),
    }
}

fn signed_j(payload: Value, signature: &[u8; 64]) -> Value {
    json!({ "payload": payload, "signature": hx(signature) })
}

/// Decodes `bytes` as a message of type `ty` with the node's own decoders: its fields and
/// its bytes encoded again.
fn decode(ty: &str, b: &[u8]) -> Result<(Value, Vec<u8>), DecodeError> {
    fn canonical<T: Canonical>(
        b: &[u8],
        j: fn(&T) -> Value,
    ) -> Result<(Value, Vec<u8>), DecodeError> {
        let m = T::decode(b)?;
        Ok((j(&m), m.encode()))
    }
    fn wire<T: WireMessage>(b: &[u8], j: fn(&T) -> Value) -> Result<(Value, Vec<u8>), DecodeError> {
        let m = T::from_bytes(b)?;
        Ok((j(&m), m.to_bytes()))
    }
    match ty {
        "Offer" => canonical(b, offer_j),
        "Withdrawal" => canonical(b, withdrawal_j),
        "JobSpec" => canonical(b, spec_j),
        "Ticket" => canonical(b, ticket_j),
        "ResultCommitment" => canonical(b, commitment_j),
        "Voucher" => canonical(b, voucher_j),
        "SignedOffer" => {
            let m = Signed::<Offer>::decode(b)?;
            Ok((signed_j(offer_j(&m.payload), &m.signature), m.encode()))
        }
        "SignedWithdrawal" => {
            let m = Signed::<Withdrawal>::decode(b)?;
            Ok((signed_j(withdrawal_j(&m.payload), &m.signature), m.encode()))
        }
        "JobRequest" => wire(b, job_request_j),
        "JobReply" => wire(b, job_reply_j),
        "ResultMessage" => wire(b, result_message_j),
        "ResultAck" => wire(b, result_ack_j),
        "BlobRequest" => wire(b, blob_request_j),
        "BlobReply" => wire(b, blob_reply_j),
        "Payment" => wire(b, payment_j),
        "PaymentAck" => wire(b, payment_ack_j),
        "VerifyRequest" => wire(b, verify_request_j),
        "VerifyReply" => wire(b, verify_reply_j),
        t => panic!("no decoder for message type {t}"),
    }
}

/// The kind of a decoding error, as the vectors name it.
fn error_kind(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Oversized { .. } => "Oversized",
        DecodeError::UnknownVersion(_) => "UnknownVersion",
        DecodeError::WrongKind { .. } => "WrongKind",
        DecodeError::UnexpectedEnd => "UnexpectedEnd",
        DecodeError::TrailingBytes(_) => "TrailingBytes",
        DecodeError::TooLong { .. } => "TooLong",
        DecodeError::BadTag { .. } => "BadTag",
        DecodeError::Invalid { .. } => "Invalid",
        DecodeError::CriticalExtension { .. } => "CriticalExtension",
        _ => panic!("a decoding error these vectors do not know: {e}"),
    }
}

fn vector(name: &str, ty: &str, description: &str, fields: Value, bytes: &[u8]) -> Value {
    json!({
        "name": name,
        "type": ty,
        "description": description,
        "fields": fields,
        "hex": hex::encode(bytes),
    })
}

// ---------------------------------------------------------------------------------------
// The files.

fn gossip_file() -> Value {
    let key = ed_key();
    let gossiped = |name: &str, description: &str, o: Offer| {
        let class = OfferClass::of(&o);
        let s = Signed::sign(o, &key);
        let bytes = s.encode();
        let mut v = vector(
            name,
            "SignedOffer",
            description,
            signed_j(offer_j(&s.payload), &s.signature),
            &bytes,
        );
        v["topic"] = json!(class.topic().to_string());
        v["message_id"] = hx(blake3::hash(&bytes).as_bytes());
        v
    };
    let w = Signed::sign(withdrawal(), &key);
    let wb = w.encode();
    let mut wv = vector(
        "signed_withdrawal",
        "SignedWithdrawal",
        "A provider's withdrawal of its offers up to sequence 7, signed; gossiped on every offer topic.",
        signed_j(withdrawal_j(&w.payload), &w.signature),
        &wb,
    );
    wv["topics"] = json!(
        OfferClass::ALL
            .iter()
            .map(|c| c.topic().to_string())
            .collect::<Vec<_>>()
    );
    wv["message_id"] = hx(blake3::hash(&wb).as_bytes());
    json!({
        "comment": "Gossip messages (docs/protocol/messages.md). Each signed with the ed25519 seed 4040..40 (docs/protocol/vectors/signatures.json). message_id is blake3 of the bytes. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "vectors": [
            gossiped("signed_offer_cpu", "A CPU offer without the extension (max_input_bytes 0, no held blobs): the body ends at expires_at.", offer(false)),
            gossiped("signed_offer_with_extension", "The same offer with the extension: max_input_bytes 256 MiB and one held blob of 98,362,432 bytes.", offer(true)),
            gossiped("signed_offer_gpu", "An offer with two compute-capability-9.0 GPUs, three features and two addresses: topic gpu-sm9plus.", gpu_offer()),
            wv,
        ],
    })
}

fn market_file() -> Value {
    let s = Signed::sign(offer(true), &ed_key());
    json!({
        "comment": "Top-level messages of the canonical encoding (docs/protocol/encoding.md, messages.md), unsigned forms. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "vectors": [
            vector("offer", "Offer", "An offer's canonical bytes (kind 1): what its ed25519 signature covers after the context string.", offer_j(&s.payload), &s.payload.encode()),
            vector("withdrawal", "Withdrawal", "A withdrawal's canonical bytes (kind 2).", withdrawal_j(&withdrawal()), &withdrawal().encode()),
            vector("job_spec", "JobSpec", "A CPU job with arguments, an environment variable, stdin and one input file; default verification (10%, 1 re-run, exact).", spec_j(&spec()), &spec().encode()),
            vector("job_spec_gpu_tolerance", "JobSpec", "A GPU job: no stdin or inputs, GPU needs present, tolerance comparison with two float outputs.", spec_j(&gpu_spec()), &gpu_spec().encode()),
            vector("job_spec_rescore", "JobSpec", "The GPU job with the rescore comparison (tag 2, the margin in logits): a generation job re-scored by the inference guest (docs/ai.md).", spec_j(&rescore_spec()), &rescore_spec().encode()),
            vector("ticket", "Ticket", "A ticket's canonical bytes (kind 4); its EIP-712 form is in signatures.json.", ticket_j(&ticket()), &ticket().encode()),
            vector("result_commitment", "ResultCommitment", "A result commitment's canonical bytes (kind 5).", commitment_j(&commitment()), &commitment().encode()),
            vector("voucher", "Voucher", "A voucher's canonical bytes (kind 6).", voucher_j(&voucher()), &voucher().encode()),
        ],
    })
}

fn wire_file() -> Value {
    let mut vs = Vec::new();
    let mut add = |name: &str, ty: &str, d: &str, fields: Value, bytes: Vec<u8>| {
        vs.push(vector(name, ty, d, fields, &bytes));
    };
    let req = JobRequest {
        spec: spec(),
        ticket: ticket(),
        ticket_signature: sign712(&ticket(), BUYER_EVM_KEY),
        paying: Some(payment()),
    };
    add(
        "job_request",
        "JobRequest",
        "/sietch/job/3 request carrying the payment of the channel's previous job.",
        job_request_j(&req),
        req.to_bytes(),
    );
    let alone = JobRequest {
        paying: None,
        ..req.clone()
    };
    add(
        "job_request_no_payment",
        "JobRequest",
        "A job request with nothing to carry (option tag 0).",
        job_request_j(&alone),
        alone.to_bytes(),
    );
    let m = JobReply::Accepted {
        job_id: B256::repeat_byte(0x10),
    };
    add(
        "job_reply_accepted",
        "JobReply",
        "The provider runs the job; the result follows on /sietch/result/1.",
        job_reply_j(&m),
        m.to_bytes(),
    );
    for (reason, text) in [
        (
            RefuseReason::TooBig,
            "the job asks for 8 cores; this offer has 4",
        ),
        (
            RefuseReason::PriceTooLow,
            "the ticket allows 10; the job can cost 1000",
        ),
        (
            RefuseReason::ChannelUnderfunded,
            "the channel holds 5 and the ticket may take 5000",
        ),
        (
            RefuseReason::BadSignature,
            "the ticket's signature is not the channel's buyer",
        ),
        (RefuseReason::Busy, "all 2 job slots are in use"),
        (
            RefuseReason::MissingBlob,
            "blob 0303.. could not be fetched",
        ),
        (RefuseReason::Other, "shutting down"),
    ] {
        let m = JobReply::Refused {
            reason,
            message: text.into(),
        };
        let n = reason_j(reason)["name"].as_str().unwrap().to_string();
        add(
            &format!("job_reply_refused_{n}"),
            "JobReply",
            &format!(
                "The provider refuses the job, reason code {}.",
                reason as u8
            ),
            job_reply_j(&m),
            m.to_bytes(),
        );
    }
    let m = JobReply::Done(Box::new(result()));
    add(
        "job_reply_done",
        "JobReply",
        "A short job answered with its result in the reply (variant 2 then a JobResult body).",
        job_reply_j(&m),
        m.to_bytes(),
    );
    let m = ResultMessage::Done(Box::new(result()));
    add(
        "result",
        "ResultMessage",
        "/sietch/result/1: a result (tag 3), exit code 0, stdout and one output file, signed commitment.",
        result_message_j(&m),
        m.to_bytes(),
    );
    let trapped = JobResult {
        outcome: Outcome::Trapped {
            trap: TrapKind::Unreachable,
        },
        stdout: vec![],
        files: OutputFiles::new(),
        ..result()
    };
    let m = ResultMessage::Done(Box::new(trapped));
    add(
        "result_trapped",
        "ResultMessage",
        "A result of a run that trapped (outcome tag 5, trap code 10 unreachable), no output.",
        result_message_j(&m),
        m.to_bytes(),
    );
    let m = ResultMessage::Failed(JobFailure {
        job_id: B256::repeat_byte(0x10),
        reason: RefuseReason::MissingBlob,
        message: "fetching blob 0x03..: not found".into(),
    });
    add(
        "result_failed",
        "ResultMessage",
        "/sietch/result/1: a failure (tag 11): the accepted job will have no result.",
        result_message_j(&m),
        m.to_bytes(),
    );
    for (n, m) in [
        ("result_ack_received", ResultAck::Received),
        ("result_ack_unknown_job", ResultAck::UnknownJob),
    ] {
        add(
            n,
            "ResultAck",
            "The buyer's acknowledgement of a result (tag 4).",
            result_ack_j(&m),
            m.to_bytes(),
        );
    }
    let m = BlobRequest {
        hash: B256::repeat_byte(0x03),
        offset: 4,
        max_len: 1 << 20,
    };
    add(
        "blob_request",
        "BlobRequest",
        "/sietch/blob/1: up to 1 MiB of blob 0303.. from byte 4.",
        blob_request_j(&m),
        m.to_bytes(),
    );
    let m = BlobReply::Chunk {
        total: 7,
        data: b"bytes".to_vec(),
    };
    add(
        "blob_reply_chunk",
        "BlobReply",
        "A chunk of 5 bytes of a blob whose whole size (total) is 7.",
        blob_reply_j(&m),
        m.to_bytes(),
    );
    let m = BlobReply::NotFound;
    add(
        "blob_reply_not_found",
        "BlobReply",
        "The node does not hold the blob.",
        blob_reply_j(&m),
        m.to_bytes(),
    );
    let m = payment();
    add(
        "payment",
        "Payment",
        "/sietch/pay/1: the check secret and a signed voucher.",
        payment_j(&m),
        m.to_bytes(),
    );
    let m = Payment {
        voucher: None,
        note: "spot check failed".into(),
        ..payment()
    };
    add(
        "payment_withheld",
        "Payment",
        "The secret without a voucher: payment withheld, the note says why.",
        payment_j(&m),
        m.to_bytes(),
    );
    for (n, d, m) in [
        (
            "payment_ack_accepted",
            "The voucher is recorded.",
            PaymentAck::Accepted,
        ),
        (
            "payment_ack_refused",
            "The payment is not recorded, and why.",
            PaymentAck::Refused {
                message: "below the last voucher".into(),
            },
        ),
    ] {
        add(n, "PaymentAck", d, payment_ack_j(&m), m.to_bytes());
    }
    let m = VerifyRequest {
        ticket_id: sietch_market::ticket_id(&B256::repeat_byte(0x12), &B256::repeat_byte(0x10)),
        job_id: B256::repeat_byte(0x10),
        spec: spec(),
        delivery: Some(Box::new(result())),
    };
    add(
        "verify_request",
        "VerifyRequest",
        "/sietch/verify/1 from the provider, with its result as delivery.",
        verify_request_j(&m),
        m.to_bytes(),
    );
    let m = VerifyRequest {
        delivery: None,
        ..m
    };
    add(
        "verify_request_no_delivery",
        "VerifyRequest",
        "A verify request from the buyer, without a delivery.",
        verify_request_j(&m),
        m.to_bytes(),
    );
    for (n, d, m) in [
        (
            "verify_reply_accepted",
            "The verifier re-runs and votes.",
            VerifyReply::Accepted,
        ),
        (
            "verify_reply_delivered",
            "The verifier hands over the provider's result.",
            VerifyReply::Delivered(Box::new(result())),
        ),
        (
            "verify_reply_refused",
            "The verifier refuses, and why.",
            VerifyReply::Refused {
                message: "not drawn".into(),
            },
        ),
    ] {
        add(n, "VerifyReply", d, verify_reply_j(&m), m.to_bytes());
    }
    let ack = ResultAck::Received.to_bytes();
    let mut frame = (ack.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&ack);
    json!({
        "comment": "Request-response messages (docs/protocol/messages.md), as the stream carries them after their 4-byte length; `framing` shows one frame. Signatures are real (signatures.json's keys and domain). Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "framing": {
            "description": "One message on a request-response stream: its length as a big-endian u32, then the message; the writer then closes its side of the stream.",
            "message": hex::encode(&ack),
            "frame": hex::encode(&frame),
        },
        "vectors": vs,
    })
}

/// A copy of `b` with `f` applied.
fn edit(mut b: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut b);
    b
}

fn invalid_file() -> Value {
    let sig_at = |b: &Vec<u8>| b.len() - 64;
    let plain_offer = Signed::sign(offer(false), &ed_key()).encode();
    let ext_offer = Signed::sign(offer(true), &ed_key()).encode();
    let spec_bytes = spec().encode();
    // Offsets in the spec: header 2, module 32, args count at 34.
    let gpu_bytes = gpu_spec().encode();
    // The tolerance comparison's relative bound: after the comparison tag 1, which follows
    // sampling_ppm (4), reruns (1); found by encoding the spec with a marker value.
    let rel_at = {
        let marked = JobSpec {
            verification: VerificationPolicy {
                comparison: Comparison::Tolerance {
                    relative: f64::from_bits(0x1122_3344_5566_7788),
                    absolute: 0.001,
                    outputs: vec![],
                },
                ..gpu_spec().verification
            },
            ..gpu_spec()
        }
        .encode();
        marked
            .windows(8)
            .position(|w| w == 0x1122_3344_5566_7788u64.to_be_bytes())
            .unwrap()
    };
    let ppm_at = rel_at - 1 - 1 - 4;
    let rows: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "voucher_trailing_byte",
            "Voucher",
            "A valid voucher with one 0x00 byte appended: 67 bytes, over a voucher's limit of 66 (its exact size), so refused for its size before anything is read.",
            edit(voucher().encode(), |b| b.push(0)),
        ),
        (
            "job_spec_trailing_byte",
            "JobSpec",
            "A valid job spec with one 0x00 byte appended.",
            edit(spec_bytes.clone(), |b| b.push(0)),
        ),
        (
            "voucher_truncated",
            "Voucher",
            "A voucher missing its last byte.",
            edit(voucher().encode(), |b| {
                b.pop();
            }),
        ),
        (
            "ticket_bad_version",
            "Ticket",
            "A ticket whose version byte is 2.",
            edit(ticket().encode(), |b| b[0] = 2),
        ),
        (
            "voucher_wrong_kind",
            "Voucher",
            "A voucher's bytes with kind byte 4 (a ticket's) in place of 6.",
            edit(voucher().encode(), |b| b[1] = 4),
        ),
        (
            "withdrawal_oversized",
            "Withdrawal",
            "65 bytes where a withdrawal may have 64: refused before reading.",
            edit(withdrawal().encode(), |b| b.resize(65, 0)),
        ),
        (
            "job_spec_too_many_args",
            "JobSpec",
            "A spec whose args count is 1,025 (at most 1,024): refused before reading any argument.",
            edit(spec_bytes.clone(), |b| {
                b[34..38].copy_from_slice(&1025u32.to_be_bytes())
            }),
        ),
        (
            "job_spec_sampling_over_100_percent",
            "JobSpec",
            "sampling_ppm 1,000,001.",
            edit(gpu_bytes.clone(), |b| {
                b[ppm_at..ppm_at + 4].copy_from_slice(&1_000_001u32.to_be_bytes())
            }),
        ),
        (
            "job_spec_nan_tolerance",
            "JobSpec",
            "A tolerance whose relative bound is a NaN (bits 7ff8000000000000).",
            edit(gpu_bytes.clone(), |b| {
                b[rel_at..rel_at + 8].copy_from_slice(&f64::NAN.to_bits().to_be_bytes())
            }),
        ),
        (
            "job_spec_negative_tolerance",
            "JobSpec",
            "A tolerance whose relative bound is -1.0.",
            edit(gpu_bytes.clone(), |b| {
                b[rel_at..rel_at + 8].copy_from_slice(&(-1.0f64).to_bits().to_be_bytes())
            }),
        ),
        (
            "signed_offer_empty_extension",
            "SignedOffer",
            "An offer with an extension that says nothing (max_input_bytes 0, no blobs): it must be left out instead.",
            edit(plain_offer.clone(), |b| {
                let at = sig_at(b);
                b.splice(at..at, [0u8; 12]);
            }),
        ),
        (
            "signed_offer_small_held_blob",
            "SignedOffer",
            "An offer naming a held blob of 16 MiB - 1 bytes.",
            edit(ext_offer.clone(), |b| {
                let at = sig_at(b) - 8;
                b[at..at + 8].copy_from_slice(&((16u64 << 20) - 1).to_be_bytes());
            }),
        ),
        (
            "signed_offer_blob_named_twice",
            "SignedOffer",
            "An offer naming the same held blob twice.",
            edit(ext_offer.clone(), |b| {
                let at = sig_at(b);
                let entry = b[at - 40..at].to_vec();
                b.splice(at..at, entry);
                let count = at - 40 - 4;
                b[count..count + 4].copy_from_slice(&2u32.to_be_bytes());
            }),
        ),
        (
            "signed_offer_too_many_held_blobs",
            "SignedOffer",
            "An offer whose held-blob count is 9 (at most 8).",
            edit(ext_offer.clone(), |b| {
                let count = sig_at(b) - 40 - 4;
                b[count..count + 4].copy_from_slice(&9u32.to_be_bytes());
            }),
        ),
        (
            "job_request_bad_option_tag",
            "JobRequest",
            "A job request whose `paying` option tag is 2 (only 0 and 1 exist; the same rule as a bool, which no message has).",
            edit(
                JobRequest {
                    spec: spec(),
                    ticket: ticket(),
                    ticket_signature: [0x24; 65],
                    paying: None,
                }
                .to_bytes(),
                |b| *b.last_mut().unwrap() = 2,
            ),
        ),
        (
            "job_request_bad_nested_version",
            "JobRequest",
            "A job request whose nested spec has version byte 2.",
            edit(
                JobRequest {
                    spec: spec(),
                    ticket: ticket(),
                    ticket_signature: [0x24; 65],
                    paying: None,
                }
                .to_bytes(),
                |b| b[6] = 2,
            ),
        ),
        (
            "job_reply_message_too_long",
            "JobReply",
            "A refusal whose message length is 1,025 bytes (at most 1,024).",
            edit(vec![1, 2, 1, 5], |b| {
                b.extend_from_slice(&1025u32.to_be_bytes());
                b.extend(std::iter::repeat_n(b'x', 1025));
            }),
        ),
        (
            "job_reply_bad_reason",
            "JobReply",
            "A refusal with reason code 8 (codes are 1 to 7).",
            vec![1, 2, 1, 8, 0, 0, 0, 0],
        ),
        (
            "job_reply_bad_variant",
            "JobReply",
            "A job reply with variant byte 3.",
            vec![1, 2, 3],
        ),
        (
            "job_reply_not_utf8",
            "JobReply",
            "A refusal whose message is the byte ff, not UTF-8.",
            vec![1, 2, 1, 5, 0, 0, 0, 1, 0xff],
        ),
        (
            "payment_ack_bad_version",
            "PaymentAck",
            "A payment ack whose version byte is 2.",
            vec![2, 8, 0],
        ),
        (
            "payment_ack_wrong_tag",
            "PaymentAck",
            "A result ack (tag 4) read where a payment ack (tag 8) is expected.",
            vec![1, 4, 0],
        ),
        (
            "result_ack_trailing_byte",
            "ResultAck",
            "A result ack with one byte too many.",
            vec![1, 4, 0, 0],
        ),
        (
            "result_duplicate_file_names",
            "ResultMessage",
            "A result naming the output file out.txt twice.",
            {
                let mut w = sietch_market::codec::Writer::new();
                w.u8(1);
                w.u8(3);
                w.b256(&B256::repeat_byte(0x10));
                w.u8(0);
                w.u32(0);
                w.bytes(b"");
                w.count(2);
                for _ in 0..2 {
                    w.str("out.txt");
                    w.bytes(b"x");
                }
                w.bytes(&commitment().encode());
                w.fixed(&[0x23; 65]);
                w.into_bytes()
            },
        ),
        (
            "blob_reply_chunk_too_long",
            "BlobReply",
            "A chunk whose data length is 1 MiB + 1 (at most 1 MiB); only the length is sent.",
            edit(vec![1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 9], |b| {
                b.extend_from_slice(&((1u32 << 20) + 1).to_be_bytes())
            }),
        ),
    ];
    let vectors: Vec<Value> = rows
        .into_iter()
        .map(|(name, ty, d, bytes)| {
            let err = decode(ty, &bytes).expect_err(name);
            json!({
                "name": name,
                "type": ty,
                "description": d,
                "hex": hex::encode(&bytes),
                "error": error_kind(&err),
                "detail": err.to_string(),
            })
        })
        .collect();
    json!({
        "comment": "Bytes every implementation must refuse, each with the kind of error (docs/protocol/encoding.md \"Errors\"); `detail` is this implementation's message, for people. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "vectors": vectors,
    })
}

fn secp_order() -> U256 {
    U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap()
}

fn signatures_file() -> Value {
    let key = ed_key();
    let pk = PublicKey::of(&key);
    let peer = sietch_node::net::peer_id_of(&pk).unwrap().to_string();
    let ed = |name: &str,
              d: &str,
              context: &[u8],
              payload_type: &str,
              payload: Vec<u8>,
              signed: Vec<u8>,
              signature: [u8; 64],
              envelope: Vec<u8>| {
        json!({
            "name": name,
            "description": d,
            "seed": hx(PROVIDER_SEED),
            "public_key": hx(pk.0),
            "peer_id": peer,
            "context": String::from_utf8(context.to_vec()).unwrap(),
            "payload_type": payload_type,
            "payload": hex::encode(&payload),
            "signed_bytes": hex::encode(&signed),
            "signature": hx(signature),
            "envelope": hex::encode(&envelope),
        })
    };
    let o = Signed::sign(offer(true), &key);
    let w = Signed::sign(withdrawal(), &key);
    let account = evm_key(PROVIDER_EVM_KEY).address();
    let escrow: Address = ESCROW.parse().unwrap();
    let reg_msg = registration::message(CHAIN_ID, escrow, account);
    let reg = registration::prove(&key, CHAIN_ID, escrow, account);

    let dom = domain();
    let typed = |name: &str,
                 ty: &str,
                 d: &str,
                 key: [u8; 32],
                 fields: Value,
                 canonical: Vec<u8>,
                 struct_hash: B256,
                 digest: B256| {
        let signer = evm_key(key);
        let sig = eip712::sign_digest(&digest, &signer).unwrap();
        json!({
            "name": name,
            "type": ty,
            "description": d,
            "private_key": hx(key),
            "signer": hx(signer.address()),
            "fields": fields,
            "canonical": hex::encode(&canonical),
            "struct_hash": hx(struct_hash),
            "digest": hx(digest),
            "signature": hx(sig),
        })
    };
    let t = ticket();
    let c = commitment();
    let v = voucher();

    // Tampered signatures.
    let mut bad_offer = o.clone();
    bad_offer.signature[63] ^= 0x01;
    let good = t.sign(&dom, &evm_key(BUYER_EVM_KEY)).unwrap();
    let high_s = {
        let s = U256::from_be_slice(&good[32..64]);
        let mut b = good;
        b[32..64].copy_from_slice(&(secp_order() - s).to_be_bytes::<32>());
        b[64] = if good[64] == 27 { 28 } else { 27 };
        b
    };
    let bad_v = {
        let mut b = good;
        b[64] = 29;
        b
    };

    json!({
        "comment": "Every signature of the protocol (docs/protocol/signatures.md). ed25519: RFC 8032 over signed_bytes, verified strictly. EIP-712: the domain and types of docs/eip712.md; signatures are r || s || v, v in {27, 28}, low s. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "ed25519": [
            ed("offer", "An offer's signature: context \"sietch/v1/offer\", a 0x00 byte, the canonical Offer (kind 1). The envelope is the SignedOffer (kind 7) that gossip carries.", Offer::CONTEXT, "Offer", o.payload.encode(), signing_bytes(&o.payload), o.signature, o.encode()),
            ed("withdrawal", "A withdrawal's signature: context \"sietch/v1/withdrawal\", a 0x00 byte, the canonical Withdrawal (kind 2). The envelope is the SignedWithdrawal (kind 8).", Withdrawal::CONTEXT, "Withdrawal", w.payload.encode(), signing_bytes(&w.payload), w.signature, w.encode()),
        ],
        "registration": {
            "name": "registration_proof",
            "description": "The proof a node key gives for register(nodeKey, proof): ed25519 over \"sietch register\" || chain id (u64 big-endian) || escrow (20 bytes) || account (20 bytes), with no separator byte.",
            "seed": hx(PROVIDER_SEED),
            "public_key": hx(pk.0),
            "chain_id": big(CHAIN_ID),
            "escrow": hx(escrow),
            "account": hx(account),
            "signed_bytes": hex::encode(&reg_msg),
            "signature": hx(reg),
        },
        "eip712": {
            "domain": {
                "name": eip712::DOMAIN_NAME,
                "version": eip712::DOMAIN_VERSION,
                "chain_id": big(CHAIN_ID),
                "verifying_contract": hx(escrow),
                "separator": hx(dom.separator()),
            },
            "types": {
                "Ticket": { "type_string": sol::Ticket::eip712_encode_type(), "type_hash": hx(sol::Ticket::eip712_type_hash(&t.to_sol())) },
                "ResultCommitment": { "type_string": sol::ResultCommitment::eip712_encode_type(), "type_hash": hx(sol::ResultCommitment::eip712_type_hash(&c.to_sol())) },
                "Voucher": { "type_string": sol::Voucher::eip712_encode_type(), "type_hash": hx(sol::Voucher::eip712_type_hash(&v.to_sol())) },
            },
            "messages": [
                typed("ticket", "Ticket", "The buyer's ticket (the one in wire.json's job requests).", BUYER_EVM_KEY, ticket_j(&t), t.encode(), t.struct_hash(), t.digest(&dom)),
                typed("result_commitment", "ResultCommitment", "The provider's result commitment (the one in wire.json's results).", PROVIDER_EVM_KEY, commitment_j(&c), c.encode(), c.struct_hash(), c.digest(&dom)),
                typed("voucher", "Voucher", "The buyer's voucher (the one in wire.json's payments).", BUYER_EVM_KEY, voucher_j(&v), v.encode(), v.struct_hash(), v.digest(&dom)),
            ],
        },
        "invalid": [
            { "name": "offer_signature_flipped_bit", "kind": "ed25519", "description": "The offer envelope with the last bit of its signature flipped: it decodes, and does not verify.", "envelope": hex::encode(bad_offer.encode()), "error": "BadSignature" },
            { "name": "registration_other_account", "kind": "registration", "description": "The registration proof checked for another account (0x4141..41): it does not verify.", "account": hx(Address::repeat_byte(0x41)), "signature": hx(reg), "error": "BadSignature" },
            { "name": "ticket_high_s", "kind": "eip712", "type": "Ticket", "description": "The ticket's signature in its other valid ECDSA form (s replaced by n - s, v flipped): refused as malleable.", "digest": hx(t.digest(&dom)), "signature": hx(high_s), "error": "Malformed" },
            { "name": "ticket_bad_v", "kind": "eip712", "type": "Ticket", "description": "The ticket's signature with v = 29.", "digest": hx(t.digest(&dom)), "signature": hx(bad_v), "error": "Malformed" },
        ],
    })
}

fn hashes_file() -> Value {
    let spec_hash = spec().hash();
    let buyer = evm_key(BUYER_EVM_KEY).address();
    let nonce = 42u64;
    let job = sietch_market::job_id(buyer, nonce, spec_hash);
    let mut pre = b"sietch/v1/job-id\0".to_vec();
    pre.extend_from_slice(buyer.as_slice());
    pre.extend_from_slice(&nonce.to_be_bytes());
    pre.extend_from_slice(spec_hash.as_slice());
    let channel = B256::repeat_byte(0x12);
    let secret = B256::repeat_byte(0x21);
    let mut draw_pre = secret.to_vec();
    draw_pre.extend_from_slice(job.as_slice());
    let draw = alloy::primitives::keccak256(&draw_pre);
    let checks: Vec<Value> = [0u32, 1, 100_000, 500_000, 999_999, 1_000_000]
        .into_iter()
        .map(|ppm| {
            json!({ "sampling_ppm": ppm, "checked": sietch_market::is_checked(&secret, &job, ppm) })
        })
        .collect();
    let files: OutputFiles = [("b".to_string(), vec![0xBB]), ("a".to_string(), vec![])].into();
    let out = Outcome::Exited { code: -2 };
    let enc = sietch_market::encode_output(out, b"hi", &files);
    let trapped = Outcome::Trapped {
        trap: TrapKind::StackOverflow,
    };
    let empty = OutputFiles::new();
    let costs: Vec<Value> = [
        (1_000_000u64, 0u64, 1_000u128, 10_000u128),
        (1_000_000_001, 0, 1_000, 0),
        (5_000_000_000, 60_000, 1_000, 10_000),
        (u64::MAX, u64::MAX, u128::MAX, u128::MAX),
    ]
    .into_iter()
    .map(|(fuel, ms, pf, pg)| {
        json!({
            "fuel": big(fuel),
            "gpu_millis": big(ms),
            "per_gfuel": big(pf),
            "per_gpu_second": big(pg),
            "cost": big(sietch_market::settlement::cost(fuel, ms, pf, pg)),
        })
    })
    .collect();
    json!({
        "comment": "Hashes and numbers derived from messages (docs/protocol/signatures.md \"Hashes\"). Regenerate: SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors",
        "spec_hash": [
            { "name": "job_spec", "spec": hex::encode(spec().encode()), "hash": hx(spec_hash), "description": "blake3 of the canonical JobSpec, header included (market.json's job_spec)." },
            { "name": "job_spec_gpu_tolerance", "spec": hex::encode(gpu_spec().encode()), "hash": hx(gpu_spec().hash()), "description": "market.json's job_spec_gpu_tolerance." },
            { "name": "job_spec_rescore", "spec": hex::encode(rescore_spec().encode()), "hash": hx(rescore_spec().hash()), "description": "market.json's job_spec_rescore." },
        ],
        "job_id": {
            "description": "blake3(\"sietch/v1/job-id\" || 0x00 || buyer (20 bytes) || nonce (u64 big-endian) || spec hash).",
            "buyer": hx(buyer), "nonce": big(nonce), "spec_hash": hx(spec_hash),
            "preimage": hex::encode(&pre), "job_id": hx(job),
        },
        "ticket_id": {
            "description": "The escrow's id of a ticket: keccak256(channel id || job id).",
            "channel_id": hx(channel), "job_id": hx(job), "ticket_id": hx(sietch_market::ticket_id(&channel, &job)),
        },
        "spot_check": {
            "description": "check_commit = keccak256(secret); a job is checked iff uint256(keccak256(secret || job id)) < floor((2^256 - 1) / 10^6) * sampling_ppm, and always at 10^6.",
            "secret": hx(secret), "check_commit": hx(sietch_market::check_commit(&secret)),
            "job_id": hx(job), "draw": hx(draw),
            "threshold_unit": big(U256::MAX / U256::from(1_000_000u32)),
            "checks": checks,
        },
        "output_hash": [
            { "name": "exited_with_files", "outcome": { "tag": 0, "value": -2 }, "stdout": hx(b"hi"),
              "files": files.iter().map(|(n, d)| json!({ "name": n, "data": hx(d) })).collect::<Vec<_>>(),
              "encoding": hex::encode(&enc), "hash": hx(sietch_market::output_hash(out, b"hi", &files)),
              "description": "Exit code -2, stdout \"hi\", files b (one byte bb) and a (empty), sorted by name." },
            { "name": "trapped_empty", "outcome": { "tag": 5, "value": 1 }, "stdout": "", "files": [],
              "encoding": hex::encode(sietch_market::encode_output(trapped, b"", &empty)), "hash": hx(sietch_market::output_hash(trapped, b"", &empty)),
              "description": "A stack overflow trap (tag 5, trap code 1), nothing written." },
        ],
        "cost": costs,
    })
}

// ---------------------------------------------------------------------------------------
// The checks.

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol/vectors")
}

fn fresh() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("gossip.json", gossip_file()),
        ("market.json", market_file()),
        ("wire.json", wire_file()),
        ("invalid.json", invalid_file()),
        ("signatures.json", signatures_file()),
        ("hashes.json", hashes_file()),
        ("extensions.json", extensions::file()),
    ])
}

fn committed(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SIETCH_BLESS=1 writes it)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).unwrap()
}

/// Names of the entries of two lists of vectors that differ.
fn differing(a: &Value, b: &Value) -> Vec<String> {
    let by_name = |v: &Value| -> BTreeMap<String, Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|x| (x["name"].as_str().unwrap_or("?").to_string(), x.clone()))
            .collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn committed_vectors_are_what_the_code_makes() {
    let made = fresh();
    if std::env::var_os("SIETCH_BLESS").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        for (name, v) in &made {
            let text = serde_json::to_string_pretty(v).unwrap() + "\n";
            std::fs::write(dir().join(name), text).unwrap();
        }
    }
    for (name, v) in &made {
        let c = committed(name);
        if &c != v {
            let mut what = Vec::new();
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    if c.get(k) != Some(x) {
                        let inner = differing(x, &c[k]);
                        what.push(if inner.is_empty() {
                            k.clone()
                        } else {
                            format!("{k}: {inner:?}")
                        });
                    }
                }
            }
            panic!(
                "docs/protocol/vectors/{name} is not what the code makes ({what:?}): a protocol \
                 change? Then SIETCH_BLESS=1 cargo test -p sietch-node --test protocol_vectors"
            );
        }
    }
}

#[test]
fn committed_messages_decode_to_their_fields_and_encode_to_their_bytes() {
    let mut types = std::collections::BTreeSet::new();
    let mut variants = std::collections::BTreeSet::new();
    for file in ["gossip.json", "market.json", "wire.json"] {
        let doc = committed(file);
        for v in doc["vectors"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let ty = v["type"].as_str().unwrap();
            let bytes = unhex(&v["hex"]);
            let (fields, again) =
                decode(ty, &bytes).unwrap_or_else(|e| panic!("{file} {name}: {e}"));
            assert_eq!(fields, v["fields"], "{file} {name}: decoded fields");
            assert_eq!(
                hex::encode(again),
                hex::encode(&bytes),
                "{file} {name}: re-encoded"
            );
            types.insert(ty.to_string());
            if let Some(var) = v["fields"]["variant"].as_str() {
                variants.insert(format!("{ty}.{var}"));
            }
            if let Some(m) = v.get("message_id") {
                assert_eq!(
                    m,
                    &hx(blake3::hash(&bytes).as_bytes()),
                    "{name}: message id"
                );
            }
        }
    }
    // Every message type and every variant has a vector.
    for t in [
        "Offer",
        "Withdrawal",
        "SignedOffer",
        "SignedWithdrawal",
        "JobSpec",
        "Ticket",
        "ResultCommitment",
        "Voucher",
        "JobRequest",
        "JobReply",
        "ResultMessage",
        "ResultAck",
        "BlobRequest",
        "BlobReply",
        "Payment",
        "PaymentAck",
        "VerifyRequest",
        "VerifyReply",
    ] {
        assert!(types.contains(t), "no vector of {t}");
    }
    for v in [
        "JobReply.accepted",
        "JobReply.refused",
        "JobReply.done",
        "ResultMessage.done",
        "ResultMessage.failed",
        "ResultAck.received",
        "ResultAck.unknown_job",
        "BlobReply.chunk",
        "BlobReply.not_found",
        "PaymentAck.accepted",
        "PaymentAck.refused",
        "VerifyReply.accepted",
        "VerifyReply.delivered",
        "VerifyReply.refused",
    ] {
        assert!(variants.contains(v), "no vector of {v}");
    }

    // One frame, both ways.
    let f = &committed("wire.json")["framing"];
    let (msg, frame) = (unhex(&f["message"]), unhex(&f["frame"]));
    let mut out = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(write_frame(&mut out, &msg)).unwrap();
    assert_eq!(out.into_inner(), frame);
    let read = futures::executor::block_on(read_frame(&mut frame.as_slice(), msg.len())).unwrap();
    assert_eq!(read, msg);
    assert!(futures::executor::block_on(read_frame(&mut frame.as_slice(), msg.len() - 1)).is_err());
}

#[test]
fn committed_invalid_messages_are_refused_with_their_error() {
    let doc = committed("invalid.json");
    let mut kinds = std::collections::BTreeSet::new();
    for v in doc["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let ty = v["type"].as_str().unwrap();
        let err = decode(ty, &unhex(&v["hex"])).map(|_| ()).expect_err(name);
        assert_eq!(error_kind(&err), v["error"], "{name}: {err}");
        kinds.insert(error_kind(&err));
    }
    for k in [
        "Oversized",
        "UnknownVersion",
        "WrongKind",
        "UnexpectedEnd",
        "TrailingBytes",
        "TooLong",
        "BadTag",
        "Invalid",
    ] {
        assert!(kinds.contains(k), "no invalid vector of kind {k}");
    }
}

#[test]
fn committed_signatures_verify_and_sign_again_to_the_same_bytes() {
    let doc = committed("signatures.json");
    for v in doc["ed25519"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let seed: [u8; 32] = unhex(&v["seed"]).try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        let pk = PublicKey::of(&key);
        assert_eq!(hx(pk.0), v["public_key"], "{name}: public key");
        assert_eq!(
            sietch_node::net::peer_id_of(&pk).unwrap().to_string(),
            v["peer_id"],
            "{name}: peer id"
        );
        let payload = unhex(&v["payload"]);
        let signed = unhex(&v["signed_bytes"]);
        let sig: [u8; 64] = unhex(&v["signature"]).try_into().unwrap();
        let envelope = unhex(&v["envelope"]);
        let mut expected = v["context"].as_str().unwrap().as_bytes().to_vec();
        expected.push(0);
        expected.extend_from_slice(&payload);
        assert_eq!(signed, expected, "{name}: context || 0 || payload");
        match v["payload_type"].as_str().unwrap() {
            "Offer" => {
                let p = Offer::decode(&payload).unwrap();
                assert_eq!(signing_bytes(&p), signed, "{name}");
                let s = Signed::sign(p.clone(), &key);
                assert_eq!(s.signature, sig, "{name}: signed again");
                assert_eq!(s.encode(), envelope, "{name}: envelope");
                let d = Signed::<Offer>::decode(&envelope).unwrap();
                assert_eq!(d.payload, p);
                d.verify().unwrap();
            }
            "Withdrawal" => {
                let p = Withdrawal::decode(&payload).unwrap();
                assert_eq!(signing_bytes(&p), signed, "{name}");
                let s = Signed::sign(p.clone(), &key);
                assert_eq!(s.signature, sig, "{name}: signed again");
                assert_eq!(s.encode(), envelope, "{name}: envelope");
                let d = Signed::<Withdrawal>::decode(&envelope).unwrap();
                assert_eq!(d.payload, p);
                d.verify().unwrap();
            }
            t => panic!("{name}: payload type {t}"),
        }
    }

    let r = &doc["registration"];
    let seed: [u8; 32] = unhex(&r["seed"]).try_into().unwrap();
    let key = SigningKey::from_bytes(&seed);
    let pk = PublicKey::of(&key);
    assert_eq!(hx(pk.0), r["public_key"]);
    let chain: u64 = r["chain_id"].as_str().unwrap().parse().unwrap();
    let escrow = Address::from_slice(&unhex(&r["escrow"]));
    let account = Address::from_slice(&unhex(&r["account"]));
    assert_eq!(
        registration::message(chain, escrow, account),
        unhex(&r["signed_bytes"])
    );
    let proof = unhex(&r["signature"]);
    assert_eq!(
        registration::prove(&key, chain, escrow, account).to_vec(),
        proof
    );
    assert!(registration::verify(&pk, &proof, chain, escrow, account));

    let e = &doc["eip712"];
    let d = &e["domain"];
    let dom = Domain::new(
        d["chain_id"].as_str().unwrap().parse().unwrap(),
        Address::from_slice(&unhex(&d["verifying_contract"])),
    );
    assert_eq!(d["name"], eip712::DOMAIN_NAME);
    assert_eq!(d["version"], eip712::DOMAIN_VERSION);
    assert_eq!(hx(dom.separator()), d["separator"]);
    for (ty, ts) in e["types"].as_object().unwrap() {
        let s = ts["type_string"].as_str().unwrap();
        let want = match ty.as_str() {
            "Ticket" => sol::Ticket::eip712_encode_type(),
            "ResultCommitment" => sol::ResultCommitment::eip712_encode_type(),
            "Voucher" => sol::Voucher::eip712_encode_type(),
            t => panic!("type {t}"),
        };
        assert_eq!(s, want, "{ty}: type string");
        assert_eq!(
            hx(alloy::primitives::keccak256(s.as_bytes())),
            ts["type_hash"],
            "{ty}: type hash"
        );
    }
    for m in e["messages"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let canonical = unhex(&m["canonical"]);
        let (fields, struct_hash, digest) = match m["type"].as_str().unwrap() {
            "Ticket" => {
                let t = Ticket::decode(&canonical).unwrap();
                (ticket_j(&t), t.struct_hash(), t.digest(&dom))
            }
            "ResultCommitment" => {
                let c = ResultCommitment::decode(&canonical).unwrap();
                (commitment_j(&c), c.struct_hash(), c.digest(&dom))
            }
            "Voucher" => {
                let v = Voucher::decode(&canonical).unwrap();
                (voucher_j(&v), v.struct_hash(), v.digest(&dom))
            }
            t => panic!("{name}: type {t}"),
        };
        assert_eq!(fields, m["fields"], "{name}: fields");
        assert_eq!(hx(struct_hash), m["struct_hash"], "{name}: struct hash");
        assert_eq!(hx(digest), m["digest"], "{name}: digest");
        // The digest by its definition, from the committed parts.
        let mut pre = vec![0x19, 0x01];
        pre.extend_from_slice(&unhex(&d["separator"]));
        pre.extend_from_slice(&unhex(&m["struct_hash"]));
        assert_eq!(
            hx(alloy::primitives::keccak256(&pre)),
            m["digest"],
            "{name}: keccak256(0x1901 || separator || struct hash)"
        );
        let key: [u8; 32] = unhex(&m["private_key"]).try_into().unwrap();
        let signer = evm_key(key);
        assert_eq!(hx(signer.address()), m["signer"], "{name}: signer");
        let sig = unhex(&m["signature"]);
        assert_eq!(
            eip712::sign_digest(&digest, &signer).unwrap().to_vec(),
            sig,
            "{name}: signed again"
        );
        assert_eq!(
            eip712::recover(&digest, &sig).unwrap(),
            signer.address(),
            "{name}: recovers"
        );
    }

    for v in doc["invalid"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let refused = match v["kind"].as_str().unwrap() {
            "ed25519" => {
                let s = Signed::<Offer>::decode(&unhex(&v["envelope"])).unwrap();
                match s.verify() {
                    Err(sietch_market::SignatureError::BadSignature) => "BadSignature",
                    other => panic!("{name}: {other:?}"),
                }
            }
            "registration" => {
                let other = Address::from_slice(&unhex(&v["account"]));
                assert!(!registration::verify(
                    &pk,
                    &unhex(&v["signature"]),
                    chain,
                    escrow,
                    other
                ));
                "BadSignature"
            }
            "eip712" => {
                let digest = B256::from_slice(&unhex(&v["digest"]));
                match eip712::recover(&digest, &unhex(&v["signature"])) {
                    Err(sietch_market::Eip712Error::Malformed(_)) => "Malformed",
                    other => panic!("{name}: {other:?}"),
                }
            }
            k => panic!("{name}: kind {k}"),
        };
        assert_eq!(refused, v["error"], "{name}");
    }
}
