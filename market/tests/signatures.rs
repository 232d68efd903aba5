//! ed25519 envelopes, EIP-712 signatures, and the vectors the contract checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use alloy_signer_local::PrivateKeySigner;
use common::*;
use sietch_market::*;

#[test]
fn a_signed_offer_verifies_and_any_change_breaks_it() {
    let s = signed(offer(1), 1);
    assert!(s.clone().verify().is_ok());

    let mut tampered = s.clone();
    tampered.payload.prices.per_gfuel += 1;
    assert_eq!(tampered.verify().unwrap_err(), SignatureError::BadSignature);

    let mut bad_sig = s.clone();
    bad_sig.signature[10] ^= 1;
    assert_eq!(bad_sig.verify().unwrap_err(), SignatureError::BadSignature);

    // Signed by someone else than the provider it names: a forgery.
    let forged = Signed::sign(offer(1), &key(2));
    assert_eq!(forged.verify().unwrap_err(), SignatureError::BadSignature);
}

#[test]
fn a_key_that_is_not_a_curve_point_is_refused() {
    let mut o = offer(1);
    // y = 2 is not the encoding of any point on the curve.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    o.provider = PublicKey(bytes);
    let s = Signed {
        payload: o,
        extensions: Extensions::new(),
        signature: [0; 64],
    };
    assert_eq!(s.verify().unwrap_err(), SignatureError::BadKey);
}

#[test]
fn signatures_do_not_cross_message_kinds() {
    // A withdrawal and an offer share a signer; a signature on one never verifies the other.
    let w = Withdrawal {
        provider: PublicKey::of(&key(1)),
        sequence: 1,
    };
    let sw = Signed::sign(w.clone(), &key(1));
    assert!(sw.clone().verify().is_ok());
    let as_offer = Signed {
        payload: offer(1),
        extensions: Extensions::new(),
        signature: sw.signature,
    };
    assert!(as_offer.verify().is_err());
}

fn buyer() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap()
}
fn provider() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x22)).unwrap()
}
fn domain() -> Domain {
    Domain::new(
        31337,
        "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            .parse()
            .unwrap(),
    )
}

fn voucher(amount: u64) -> Voucher {
    Voucher {
        channel_id: B256::repeat_byte(0xcc),
        cumulative_amount: U256::from(amount),
    }
}

#[test]
fn eip712_signatures_verify_for_their_signer_only() {
    let v = voucher(1_000);
    let sig = v.sign(&domain(), &buyer()).unwrap();
    assert_eq!(sig.len(), 65);
    assert!(sig[64] == 27 || sig[64] == 28);
    v.verify(&domain(), &sig, buyer().address()).unwrap();
    assert!(matches!(
        v.verify(&domain(), &sig, provider().address()),
        Err(Eip712Error::WrongSigner { .. })
    ));
    // Another amount, another digest.
    assert!(
        voucher(1_001)
            .verify(&domain(), &sig, buyer().address())
            .is_err()
    );
}

#[test]
fn the_domain_binds_chain_and_contract() {
    let v = voucher(5);
    let sig = v.sign(&domain(), &buyer()).unwrap();
    let other_chain = Domain::new(1, domain().verifying_contract);
    let other_contract = Domain::new(31337, Address::repeat_byte(1));
    assert_ne!(v.digest(&domain()), v.digest(&other_chain));
    assert!(v.verify(&other_chain, &sig, buyer().address()).is_err());
    assert!(v.verify(&other_contract, &sig, buyer().address()).is_err());
}

#[test]
fn malleable_and_malformed_signatures_are_refused() {
    let v = voucher(7);
    let sig = v.sign(&domain(), &buyer()).unwrap();
    // The high-s twin of a valid signature recovers the same key in raw ECDSA; refuse it.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let s = U256::from_be_slice(&sig[32..64]);
    let mut twin = sig;
    twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    twin[64] = if sig[64] == 27 { 28 } else { 27 };
    assert!(matches!(
        v.verify(&domain(), &twin, buyer().address()),
        Err(Eip712Error::Malformed(_))
    ));
    let mut bad_v = sig;
    bad_v[64] = 1;
    assert!(matches!(
        v.verify(&domain(), &bad_v, buyer().address()),
        Err(Eip712Error::Malformed(_))
    ));
    assert!(matches!(
        v.verify(&domain(), &sig[..64], buyer().address()),
        Err(Eip712Error::Malformed(_))
    ));
}

#[test]
fn type_hashes_are_the_documented_type_strings() {
    use alloy_primitives::keccak256;
    use alloy_sol_types::SolStruct;
    use sietch_market::eip712::sol;
    assert_eq!(
        sol::Ticket::eip712_encode_type(),
        "Ticket(bytes32 jobId,bytes32 specHash,bytes32 channelId,uint256 cumulativeBefore,uint256 maxAmount,uint64 deadline,bytes32 checkCommit,uint128 pricePerGFuel,uint128 pricePerGpuSecond)"
    );
    assert_eq!(
        sol::ResultCommitment::eip712_encode_type(),
        "ResultCommitment(bytes32 jobId,bytes32 specHash,bytes32 channelId,bytes32 outputHash,uint64 fuelUsed,uint64 gpuMillis,uint256 amount)"
    );
    assert_eq!(
        sol::Voucher::eip712_encode_type(),
        "Voucher(bytes32 channelId,uint256 cumulativeAmount)"
    );
    assert_eq!(
        sol::Voucher::eip712_type_hash(&voucher(0).to_sol()),
        keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount)")
    );
}

#[test]
fn sampling_follows_the_commit_reveal_rule() {
    let job = B256::repeat_byte(9);
    let secret = B256::repeat_byte(1);
    assert!(!is_checked(&secret, &job, 0));
    assert!(is_checked(&secret, &job, 1_000_000));
    assert_eq!(check_commit(&secret), alloy_primitives::keccak256(secret));
    // Over many secrets the rate is q: 10% of 20,000 draws, within 5 standard deviations
    // (sd = sqrt(20000 · 0.1 · 0.9) ≈ 42).
    let checked = (0u32..20_000)
        .filter(|i| {
            let s = alloy_primitives::keccak256(i.to_be_bytes());
            is_checked(&s, &job, 100_000)
        })
        .count();
    assert!(
        (2_000usize.abs_diff(checked)) < 5 * 43,
        "checked {checked} of 20000 at q = 10%"
    );
}

#[test]
fn the_value_cap_is_stake_q_over_one_minus_q() {
    // q = 10%: a job may be worth stake / 9.
    assert_eq!(max_job_value(900, 100_000), Some(100));
    assert_eq!(min_stake_for(100, 100_000), Some(900));
    assert_eq!(min_stake_for(101, 100_000), Some(909));
    assert_eq!(max_job_value(5, 1_000_000), None);
    assert_eq!(min_stake_for(5, 1_000_000), Some(0));
    // q = 0: the job is never checked and no stake protects it.
    assert_eq!(min_stake_for(5, 0), None);
    assert_eq!(max_job_value(1_000, 0), Some(0));
    // No overflow at the extremes.
    assert_eq!(min_stake_for(u128::MAX, 1), Some(u128::MAX));
}

// ---- the vectors the contract's forge test checks ----------------------------------

fn vectors() -> serde_json::Value {
    use serde_json::json;
    let d = domain();
    let hex32 = |b: &B256| b.to_string();
    let sig_hex = |s: [u8; 65]| format!("0x{}", hex::encode(s));
    let tickets: Vec<_> = [
        (1u8, U256::ZERO, 1_000u64, 1_700_000_000u64),
        (2, U256::from(123_456_789u64), 0, u64::MAX),
        (3, U256::MAX, 7, 0),
    ]
    .iter()
    .map(|&(i, before, max, deadline)| {
        let t = Ticket {
            job_id: B256::repeat_byte(i),
            spec_hash: B256::repeat_byte(i + 0x10),
            channel_id: B256::repeat_byte(0xcc),
            cumulative_before: before,
            max_amount: U256::from(max),
            deadline,
            check_commit: check_commit(&B256::repeat_byte(i + 0x20)),
            // Every vector prices differently (the largest price too), so a contract that
            // ignores either field fails the vectors.
            per_gfuel: [1_000, u128::MAX, 0][usize::from(i - 1)],
            per_gpu_second: [0, 5 * 10u128.pow(18), u128::MAX][usize::from(i - 1)],
        };
        json!({
            "jobId": hex32(&t.job_id), "specHash": hex32(&t.spec_hash),
            "channelId": hex32(&t.channel_id),
            "cumulativeBefore": t.cumulative_before.to_string(),
            "maxAmount": t.max_amount.to_string(),
            "deadline": t.deadline.to_string(), "checkCommit": hex32(&t.check_commit),
            "pricePerGFuel": t.per_gfuel.to_string(),
            "pricePerGpuSecond": t.per_gpu_second.to_string(),
            "structHash": hex32(&t.struct_hash()), "digest": hex32(&t.digest(&d)),
            "signer": buyer().address().to_string(),
            "signature": sig_hex(t.sign(&d, &buyer()).unwrap()),
        })
    })
    .collect();
    let results: Vec<_> = [(1u8, 123_456u64, 0u64, 999u64), (2, u64::MAX, 1_500, 0)]
        .iter()
        .map(|&(i, fuel, gpu, amount)| {
            let r = ResultCommitment {
                job_id: B256::repeat_byte(i),
                spec_hash: B256::repeat_byte(i + 0x10),
                channel_id: B256::repeat_byte(i + 0x20),
                output_hash: B256::repeat_byte(i + 0x30),
                fuel_used: fuel,
                gpu_millis: gpu,
                amount: U256::from(amount),
            };
            json!({
                "jobId": hex32(&r.job_id), "specHash": hex32(&r.spec_hash),
                "channelId": hex32(&r.channel_id), "outputHash": hex32(&r.output_hash), "fuelUsed": r.fuel_used.to_string(),
                "gpuMillis": r.gpu_millis.to_string(), "amount": r.amount.to_string(),
                "structHash": hex32(&r.struct_hash()), "digest": hex32(&r.digest(&d)),
                "signer": provider().address().to_string(),
                "signature": sig_hex(r.sign(&d, &provider()).unwrap()),
            })
        })
        .collect();
    let vouchers: Vec<_> = [U256::ZERO, U256::from(1_000u64), U256::MAX]
        .iter()
        .map(|&amount| {
            let v = Voucher {
                channel_id: B256::repeat_byte(0xcc),
                cumulative_amount: amount,
            };
            json!({
                "channelId": hex32(&v.channel_id), "cumulativeAmount": amount.to_string(),
                "structHash": hex32(&v.struct_hash()), "digest": hex32(&v.digest(&d)),
                "signer": buyer().address().to_string(),
                "signature": sig_hex(v.sign(&d, &buyer()).unwrap()),
            })
        })
        .collect();
    use alloy_sol_types::SolStruct;
    use sietch_market::eip712::sol;
    let t0 = Ticket {
        job_id: B256::ZERO,
        spec_hash: B256::ZERO,
        channel_id: B256::ZERO,
        cumulative_before: U256::ZERO,
        max_amount: U256::ZERO,
        deadline: 0,
        check_commit: B256::ZERO,
        per_gfuel: 0,
        per_gpu_second: 0,
    };
    let r0 = ResultCommitment {
        job_id: B256::ZERO,
        spec_hash: B256::ZERO,
        channel_id: B256::ZERO,
        output_hash: B256::ZERO,
        fuel_used: 0,
        gpu_millis: 0,
        amount: U256::ZERO,
    };
    json!({
        "comment": "EIP-712 vectors from the market crate (docs/eip712.md). Buyer key 0x11..11, provider key 0x22..22. Regenerate: SIETCH_BLESS=1 cargo test -p sietch-market --test signatures",
        "chainId": d.chain_id,
        "verifyingContract": d.verifying_contract.to_string(),
        "domainSeparator": hex32(&d.separator()),
        "typeHashes": {
            "ticket": hex32(&sol::Ticket::eip712_type_hash(&t0.to_sol())),
            "resultCommitment": hex32(&sol::ResultCommitment::eip712_type_hash(&r0.to_sol())),
            "voucher": hex32(&sol::Voucher::eip712_type_hash(&voucher(0).to_sol())),
        },
        "buyer": buyer().address().to_string(),
        "provider": provider().address().to_string(),
        "tickets": tickets,
        "results": results,
        "vouchers": vouchers,
    })
}

#[test]
fn eip712_vectors_match_the_committed_file() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/eip712_vectors.json");
    let fresh = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("SIETCH_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} differs from what the market crate signs; if the change is deliberate, \
         regenerate with SIETCH_BLESS=1 and re-run the contract's vector test",
        path.display()
    );
    // Every vector verifies with the crate's own recovery.
    let v = vectors();
    for kind in ["tickets", "results", "vouchers"] {
        for item in v[kind].as_array().unwrap() {
            let digest: B256 = item["digest"].as_str().unwrap().parse().unwrap();
            let sig = hex::decode(&item["signature"].as_str().unwrap()[2..]).unwrap();
            let signer: Address = item["signer"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                sietch_market::eip712::recover(&digest, &sig).unwrap(),
                signer
            );
        }
    }
}

/// The market signs with libsecp256k1; the signature must be the one alloy's signer (k256)
/// makes for the same key and digest, bit for bit, and recover to the key's address.
#[test]
fn libsecp256k1_signatures_are_alloys_signatures() {
    use alloy_signer::SignerSync;
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(
            &(any::<[u8; 32]>(), any::<[u8; 32]>()),
            |(secret, digest)| {
                let Ok(key) = PrivateKeySigner::from_bytes(&B256::from(secret)) else {
                    return Ok(()); // not a valid scalar (zero or past the order)
                };
                let digest = B256::from(digest);
                let ours = sietch_market::eip712::sign_digest(&digest, &key).unwrap();
                let alloys = key.sign_hash_sync(&digest).unwrap().as_bytes();
                prop_assert_eq!(ours, alloys);
                prop_assert_eq!(
                    sietch_market::eip712::recover(&digest, &ours).unwrap(),
                    key.address()
                );
                Ok(())
            },
        )
        .unwrap();
}
