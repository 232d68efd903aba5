//! The canonical encoding: exact bytes pinned, round trips, and hostile input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::*;
use proptest::prelude::*;
use sietch_market::codec::Kind;
use sietch_market::*;

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

#[test]
fn voucher_bytes_are_pinned() {
    let v = Voucher {
        channel_id: B256::repeat_byte(0x11),
        cumulative_amount: U256::from(0x0102u64),
    };
    let mut want = vec![1u8, 6]; // version 1, kind Voucher
    want.extend([0x11; 32]);
    want.extend([0u8; 30]);
    want.extend([0x01, 0x02]);
    assert_eq!(v.encode(), want);
    assert_eq!(Voucher::decode(&want).unwrap(), v);
}

#[test]
fn ticket_bytes_are_pinned() {
    let t = Ticket {
        job_id: B256::repeat_byte(1),
        spec_hash: B256::repeat_byte(2),
        channel_id: B256::repeat_byte(3),
        cumulative_before: U256::from(0x0a0bu64),
        max_amount: U256::from(500u64),
        deadline: 0x0102_0304_0506_0708,
        check_commit: B256::repeat_byte(4),
        per_gfuel: 0x1112,
        per_gpu_second: 5,
    };
    let mut want = vec![1u8, 4];
    for b in [1u8, 2, 3] {
        want.extend([b; 32]);
    }
    want.extend([0u8; 30]);
    want.extend([0x0a, 0x0b]);
    want.extend([0u8; 30]);
    want.extend([0x01, 0xf4]);
    want.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    want.extend([4u8; 32]);
    // The prices: two big-endian u128s.
    want.extend([0u8; 14]);
    want.extend([0x11, 0x12]);
    want.extend([0u8; 15]);
    want.push(5);
    assert_eq!(t.encode(), want);
    assert_eq!(Ticket::decode(&want).unwrap(), t);
}

#[test]
fn offer_bytes_are_pinned() {
    let o = Offer {
        provider: PublicKey([7; 32]),
        evm_address: Address::repeat_byte(9),
        hardware: Hardware {
            cpu_cores: 2,
            memory_bytes: 256,
            gpus: vec![Gpu {
                model: "A".into(),
                memory_bytes: 1,
                compute_capability: ComputeCapability::new(8, 6),
                driver: "d".into(),
            }],
        },
        features: vec!["x".into()],
        prices: Prices {
            per_gfuel: 3,
            per_gpu_second: 4,
        },
        stake: 5,
        addresses: vec![],
        sequence: 6,
        expires_at: 7,
        max_input_bytes: 0,
        cached_blobs: vec![],
    };
    let mut want = vec![1u8, 1];
    want.extend([7u8; 32]); // provider
    want.extend([9u8; 20]); // evm address
    want.extend([0, 2]); // cores
    want.extend([0, 0, 0, 0, 0, 0, 1, 0]); // memory 256
    want.extend([0, 0, 0, 1]); // 1 gpu
    want.extend([0, 0, 0, 1, b'A']); // model
    want.extend([0, 0, 0, 0, 0, 0, 0, 1]); // gpu memory
    want.extend([8, 6]); // compute capability
    want.extend([0, 0, 0, 1, b'd']); // driver
    want.extend([0, 0, 0, 1, 0, 0, 0, 1, b'x']); // features
    for p in [3u8, 4, 5] {
        // per_gfuel, per_gpu_second, stake: u128
        want.extend([0u8; 15]);
        want.push(p);
    }
    want.extend([0, 0, 0, 0]); // no addresses
    want.extend([0, 0, 0, 0, 0, 0, 0, 6]); // sequence
    want.extend([0, 0, 0, 0, 0, 0, 0, 7]); // expiry
    assert_eq!(hex(&o.encode()), hex(&want));
    assert_eq!(Offer::decode(&want).unwrap(), o);
}

/// The extension after the expiry (issue 21): the largest input taken and the large blobs
/// held. An offer without it keeps the bytes it had before (the test above).
#[test]
fn offer_extension_bytes_are_pinned() {
    let mut o = offer(1);
    o.max_input_bytes = 256 << 20;
    o.cached_blobs = vec![BlobRef {
        hash: B256::repeat_byte(0x4d),
        size: 98 << 20,
    }];
    let mut plain = offer(1);
    plain.cached_blobs.clear();
    plain.max_input_bytes = 0;
    let mut want = plain.encode();
    want.extend([0, 0, 0, 0, 0x10, 0, 0, 0]); // max_input_bytes 256 MiB
    want.extend([0, 0, 0, 1]); // one blob
    want.extend([0x4d; 32]); // its hash
    want.extend([0, 0, 0, 0, 0x06, 0x20, 0, 0]); // 98 MiB
    assert_eq!(hex(&o.encode()), hex(&want));
    assert_eq!(Offer::decode(&want).unwrap(), o);
    // Signed: the extension sits between the body and the signature.
    let s = signed(o.clone(), 1);
    let bytes = s.encode();
    assert_eq!(&bytes[2..bytes.len() - 64], &want[2..]);
    assert_eq!(Signed::<Offer>::decode(&bytes).unwrap(), s);
    assert!(Signed::<Offer>::decode(&bytes).unwrap().verify().is_ok());
    // An offer signed before the extension existed still decodes and verifies.
    let old = signed(plain.clone(), 1);
    let back = Signed::<Offer>::decode(&old.encode()).unwrap();
    assert_eq!(back, old);
    assert!(back.verify().is_ok());
}

#[test]
fn offer_extensions_out_of_bounds_are_refused() {
    let blob = |n: u8, size: u64| BlobRef {
        hash: B256::repeat_byte(n),
        size,
    };
    let ext = |max_input: u64, blobs: &[BlobRef]| {
        let mut plain = offer(1);
        plain.max_input_bytes = 0;
        plain.cached_blobs.clear();
        let mut b = plain.encode();
        b.extend(max_input.to_be_bytes());
        b.extend((blobs.len() as u32).to_be_bytes());
        for x in blobs {
            b.extend(x.hash.as_slice());
            b.extend(x.size.to_be_bytes());
        }
        b
    };
    // Eight blobs decode, nine do not (refused on the count, before any allocation).
    let eight: Vec<BlobRef> = (0..8).map(|n| blob(n, 16 << 20)).collect();
    assert_eq!(Offer::decode(&ext(0, &eight)).unwrap().cached_blobs, eight);
    let nine: Vec<BlobRef> = (0..9).map(|n| blob(n, 16 << 20)).collect();
    assert!(matches!(
        Offer::decode(&ext(0, &nine)),
        Err(DecodeError::TooLong {
            what: "cached blobs",
            len: 9,
            max: 8
        })
    ));
    let mut huge = ext(0, &[]);
    let at = huge.len() - 4;
    huge[at..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Offer::decode(&huge),
        Err(DecodeError::TooLong { .. })
    ));
    // A blob under 16 MiB, a blob named twice, an empty extension: refused.
    assert!(matches!(
        Offer::decode(&ext(1, &[blob(1, (16 << 20) - 1)])),
        Err(DecodeError::Invalid {
            what: "cached blob",
            ..
        })
    ));
    assert!(matches!(
        Offer::decode(&ext(1, &[blob(1, 16 << 20), blob(1, 17 << 20)])),
        Err(DecodeError::Invalid {
            what: "cached blob",
            ..
        })
    ));
    assert!(matches!(
        Offer::decode(&ext(0, &[])),
        Err(DecodeError::Invalid {
            what: "offer extension",
            ..
        })
    ));
    // A stated limit alone is an extension.
    assert_eq!(Offer::decode(&ext(5, &[])).unwrap().max_input_bytes, 5);
    // The order book refuses such offers like any malformed one.
    let mut book = OrderBook::default();
    let mut bad = signed(offer(1), 1).encode();
    bad.truncate(bad.len() - 64);
    bad.extend(0u64.to_be_bytes());
    bad.extend(9u32.to_be_bytes());
    bad.extend([0u8; 64]);
    assert!(book.ingest(&bad, NOW).is_err());
    assert!(book.is_empty());
}

#[test]
fn job_spec_bytes_are_pinned() {
    // The spec hash is what tickets and result commitments name: any change to the
    // encoding changes every spec hash, so it must be deliberate.
    let spec = gpu_job();
    let want = concat!(
        "0103",
        "abababababababababababababababababababababababababababababababab", // module
        "00000002",
        "00000003",
        "2d2d6e",
        "00000004",
        "31303030", // args "--n" "1000"
        "00000001",
        "00000004",
        "4d4f4445",
        "00000004",
        "66617374", // env MODE=fast
        "00",       // no stdin
        "00000000", // no inputs
        "000000003b9aca00",
        "0000000040000000",
        "0000000000002710",
        "0000000000100000", // limits
        "0000",             // cores
        "00000000",         // features
        "01",
        "01",
        "00000001",
        "00000004",
        "48313030",
        "0000000a00000000",
        "0800", // gpu
        "000186a0",
        "01",
        "00",                               // 10% sampling, k = 1, exact
        "00000000000000000000000000002710", // price cap
        "000000006553ff10",                 // deadline
    );
    assert_eq!(hex(&spec.encode()), want);
    assert_eq!(
        spec.hash().to_string(),
        "0x1ee6e46a9bf3a1a1348b6253bebe143df74795c6d48f5182ed95e14eaeb90b3b"
    );
}

#[test]
fn signed_offer_bytes_are_header_body_signature() {
    let s = signed(offer(1), 1);
    let bytes = s.encode();
    let body = offer(1).encode();
    assert_eq!(&bytes[..2], &[1, 7]);
    assert_eq!(&bytes[2..bytes.len() - 64], &body[2..]);
    assert_eq!(&bytes[bytes.len() - 64..], &s.signature);
    assert_eq!(Signed::<Offer>::decode(&bytes).unwrap(), s);
}

#[test]
fn hostile_bytes_get_typed_errors() {
    let good = offer(1).encode();
    // Unknown version.
    let mut b = good.clone();
    b[0] = 2;
    assert_eq!(Offer::decode(&b), Err(DecodeError::UnknownVersion(2)));
    // Wrong kind.
    let mut b = good.clone();
    b[1] = Kind::Voucher as u8;
    assert!(matches!(
        Offer::decode(&b),
        Err(DecodeError::WrongKind {
            expected: 1,
            found: 6
        })
    ));
    // Truncated anywhere.
    for n in 0..good.len() {
        assert!(
            Offer::decode(&good[..n]).is_err(),
            "prefix of {n} bytes decoded"
        );
    }
    // A byte after the expiry starts the extension, which must then be whole.
    let mut b = good.clone();
    b.push(0);
    assert_eq!(Offer::decode(&b), Err(DecodeError::UnexpectedEnd));
    // Trailing bytes after a whole extension.
    let mut with_ext = offer(1);
    with_ext.max_input_bytes = 1 << 28;
    let mut b = with_ext.encode();
    b.push(0);
    assert_eq!(Offer::decode(&b), Err(DecodeError::TrailingBytes(1)));
    // Oversized.
    let big = vec![0u8; Offer::MAX_SIZE + 1];
    assert!(matches!(
        Offer::decode(&big),
        Err(DecodeError::Oversized { .. })
    ));
    // A list count far over its bound is refused before any allocation.
    let mut b = good[..2 + 32 + 20 + 2 + 8].to_vec();
    b.extend(u32::MAX.to_be_bytes());
    assert!(matches!(
        Offer::decode(&b),
        Err(DecodeError::TooLong { what: "gpus", .. })
    ));
}

#[test]
fn invalid_values_are_refused() {
    // A NaN tolerance has many encodings: refused.
    let mut spec = cpu_job();
    spec.verification.comparison = Comparison::Tolerance {
        relative: f64::NAN,
        absolute: 0.0,
        outputs: vec![],
    };
    assert!(matches!(
        JobSpec::decode(&spec.encode()),
        Err(DecodeError::Invalid {
            what: "relative tolerance",
            ..
        })
    ));
    // Negative bounds make no sense.
    spec.verification.comparison = Comparison::Tolerance {
        relative: 0.1,
        absolute: -1.0,
        outputs: vec![],
    };
    assert!(JobSpec::decode(&spec.encode()).is_err());
    // Sampling over 100%.
    let mut spec = cpu_job();
    spec.verification.sampling_ppm = 1_000_001;
    assert!(JobSpec::decode(&spec.encode()).is_err());
    // A string that is not UTF-8.
    let mut o = offer(1);
    o.features = vec!["é".into()];
    let mut b = o.encode();
    let pos = b.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    b[pos] = 0xff;
    assert_eq!(
        Offer::decode(&b),
        Err(DecodeError::Invalid {
            what: "feature",
            why: "not UTF-8"
        })
    );
    // An option tag other than 0 or 1.
    let spec = cpu_job();
    let mut b = spec.encode();
    // stdin's tag follows module, args and env.
    let tag_at = 2 + 32 + (4 + 4 + 3 + 4 + 4) + (4 + 4 + 4 + 4 + 4);
    assert_eq!(b[tag_at], 0);
    b[tag_at] = 2;
    assert_eq!(
        JobSpec::decode(&b),
        Err(DecodeError::BadTag {
            what: "stdin",
            tag: 2
        })
    );
}

fn arb_string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./:_é-]{0,24}"
}

fn arb_gpu() -> impl Strategy<Value = Gpu> {
    (
        arb_string(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        arb_string(),
    )
        .prop_map(|(model, memory_bytes, major, minor, driver)| Gpu {
            model,
            memory_bytes,
            compute_capability: ComputeCapability::new(major, minor),
            driver,
        })
}

prop_compose! {
    fn arb_offer()(
        provider in any::<[u8; 32]>(),
        addr in any::<[u8; 20]>(),
        cpu_cores in any::<u16>(),
        memory_bytes in any::<u64>(),
        gpus in prop::collection::vec(arb_gpu(), 0..4),
        features in prop::collection::vec(arb_string(), 0..4),
        per_gfuel in any::<u128>(),
        per_gpu_second in any::<u128>(),
        stake in any::<u128>(),
        addresses in prop::collection::vec(arb_string(), 0..3),
        sequence in any::<u64>(),
        expires_at in any::<u64>(),
        max_input_bytes in prop_oneof![Just(0u64), any::<u64>()],
        cached in prop::collection::vec(
            (any::<[u8; 32]>(), sietch_market::offer::LARGE_BLOB_BYTES..u64::MAX),
            0..=sietch_market::offer::MAX_CACHED_BLOBS,
        ),
    ) -> Offer {
        let mut cached_blobs: Vec<BlobRef> = Vec::new();
        for (hash, size) in cached {
            let b = BlobRef { hash: B256::from(hash), size };
            if !cached_blobs.iter().any(|c| c.hash == b.hash) {
                cached_blobs.push(b);
            }
        }
        Offer {
            provider: PublicKey(provider),
            evm_address: Address::from(addr),
            hardware: Hardware { cpu_cores, memory_bytes, gpus },
            features,
            prices: Prices { per_gfuel, per_gpu_second },
            stake,
            addresses,
            sequence,
            expires_at,
            max_input_bytes,
            cached_blobs,
        }
    }
}

fn arb_b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn arb_u256() -> impl Strategy<Value = U256> {
    any::<[u8; 32]>().prop_map(U256::from_be_bytes)
}

fn arb_blob() -> impl Strategy<Value = BlobRef> {
    (arb_b256(), any::<u64>()).prop_map(|(hash, size)| BlobRef { hash, size })
}

fn arb_bound() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(f64::MIN_POSITIVE), 0.0f64..1e6]
}

prop_compose! {
    fn arb_spec()(
        module in arb_b256(),
        args in prop::collection::vec(arb_string(), 0..4),
        env in prop::collection::vec((arb_string(), arb_string()), 0..3),
        stdin in prop::option::of(arb_blob()),
        inputs in prop::collection::vec((arb_string(), arb_blob()), 0..3),
        limits in any::<(u64, u64, u64, u64)>(),
        min_cpu_cores in any::<u16>(),
        features in prop::collection::vec(arb_string(), 0..3),
        gpu in prop::option::of((any::<u8>(), prop::collection::vec(arb_string(), 0..2), any::<u64>(), any::<(u8, u8)>())),
        sampling_ppm in 0u32..=1_000_000,
        reruns in any::<u8>(),
        tolerance in prop::option::of((arb_bound(), arb_bound(), prop::collection::vec((arb_string(), any::<bool>()), 0..3))),
        price_cap in any::<u128>(),
        deadline in any::<u64>(),
    ) -> JobSpec {
        JobSpec {
            module,
            args,
            env,
            stdin,
            inputs: inputs.into_iter().map(|(name, blob)| Input { name, blob }).collect(),
            limits: Limits { fuel: limits.0, memory_bytes: limits.1, wall_time_ms: limits.2, output_bytes: limits.3 },
            requirements: Requirements {
                min_cpu_cores,
                features,
                gpu: gpu.map(|(count, models, min_memory_bytes, (a, b))| GpuNeeds {
                    count, models, min_memory_bytes, min_compute_capability: ComputeCapability::new(a, b),
                }),
            },
            verification: VerificationPolicy {
                sampling_ppm,
                reruns,
                comparison: match tolerance {
                    None => Comparison::Exact,
                    // (bounds without arrays: a rescore comparison's margin instead)
                    Some((margin, _, outs)) if outs.is_empty() => Comparison::Rescore { margin },
                    Some((relative, absolute, outs)) => Comparison::Tolerance {
                        relative,
                        absolute,
                        outputs: outs.into_iter().map(|(path, f64k)| FloatOutput {
                            path,
                            kind: if f64k { FloatKind::F64 } else { FloatKind::F32 },
                        }).collect(),
                    },
                },
            },
            price_cap,
            deadline,
        }
    }
}

proptest! {
    #[test]
    fn offers_round_trip(o in arb_offer()) {
        let b = o.encode();
        prop_assert_eq!(Offer::decode(&b).unwrap(), o.clone());
        // Canonical: re-encoding the decoded value gives the same bytes.
        prop_assert_eq!(Offer::decode(&b).unwrap().encode(), b);
    }

    #[test]
    fn specs_round_trip(s in arb_spec()) {
        let b = s.encode();
        let d = JobSpec::decode(&b).unwrap();
        prop_assert_eq!(d.hash(), s.hash());
        prop_assert_eq!(d, s);
    }

    #[test]
    fn settlement_messages_round_trip(
        ids in (arb_b256(), arb_b256(), arb_b256(), arb_b256()),
        amount in arb_u256(),
        n in any::<(u64, u64)>(),
    ) {
        let t = Ticket { job_id: ids.0, spec_hash: ids.1, channel_id: ids.2, cumulative_before: amount.wrapping_add(U256::from(n.1)), max_amount: amount, deadline: n.0, check_commit: ids.3, per_gfuel: n.1 as u128, per_gpu_second: u128::from(n.0) };
        prop_assert_eq!(Ticket::decode(&t.encode()).unwrap(), t);
        let r = ResultCommitment { job_id: ids.0, spec_hash: ids.1, channel_id: ids.3, output_hash: ids.2, fuel_used: n.0, gpu_millis: n.1, amount };
        prop_assert_eq!(ResultCommitment::decode(&r.encode()).unwrap(), r);
        let v = Voucher { channel_id: ids.2, cumulative_amount: amount };
        prop_assert_eq!(Voucher::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn signed_offers_round_trip(o in arb_offer(), sig in prop::collection::vec(any::<u8>(), 64)) {
        let s = Signed { payload: o, extensions: Extensions::new(), signature: sig.try_into().unwrap() };
        prop_assert_eq!(Signed::<Offer>::decode(&s.encode()).unwrap(), s);
    }

    /// Whatever the bytes, decoding returns (never panics) and anything accepted re-encodes
    /// to exactly the same bytes.
    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(o) = Offer::decode(&b) { prop_assert_eq!(o.encode(), b.clone()); }
        if let Ok(s) = JobSpec::decode(&b) { prop_assert_eq!(s.encode(), b.clone()); }
        if let Ok(s) = Signed::<Offer>::decode(&b) { prop_assert_eq!(s.encode(), b.clone()); }
        let _ = Ticket::decode(&b);
        let _ = ResultCommitment::decode(&b);
        let _ = Voucher::decode(&b);
        let _ = Withdrawal::decode(&b);
    }

    /// Valid messages with bytes flipped: still no panic, and every accepted result is canonical.
    #[test]
    fn mutated_messages_never_panic(o in arb_offer(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut b = signed_bytes(o);
        for (i, x) in flips { let i = i.index(b.len()); b[i] ^= x; }
        if let Ok(s) = Signed::<Offer>::decode(&b) { prop_assert_eq!(s.encode(), b); }
    }
}

fn signed_bytes(o: Offer) -> Vec<u8> {
    Signed {
        payload: o,
        extensions: Extensions::new(),
        signature: [3; 64],
    }
    .encode()
}
