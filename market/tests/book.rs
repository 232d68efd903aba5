//! The order book: insertion rules, bounds, expiry, withdrawal, matching and explanations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use sietch_market::*;

fn book_with(offers: impl IntoIterator<Item = (u32, Offer)>) -> OrderBook {
    let mut b = OrderBook::default();
    for (i, o) in offers {
        b.insert(verified(o, i), NOW).unwrap();
    }
    b
}

#[test]
fn newer_sequence_replaces_and_older_is_refused() {
    let mut b = OrderBook::default();
    assert_eq!(
        b.insert(verified(offer(1), 1), NOW).unwrap(),
        Insertion::New
    );
    let mut o = offer(1);
    o.sequence = 2;
    o.prices.per_gfuel = 5;
    assert_eq!(
        b.insert(verified(o, 1), NOW).unwrap(),
        Insertion::Replaced {
            previous_sequence: 1
        }
    );
    assert_eq!(b.len(), 1);
    assert_eq!(
        b.get(&PublicKey::of(&key(1)))
            .unwrap()
            .payload
            .prices
            .per_gfuel,
        5
    );
    // A replayed or older sequence is refused and changes nothing.
    assert_eq!(
        b.insert(verified(offer(1), 1), NOW),
        Err(OfferError::StaleSequence { got: 1, have: 2 })
    );
    assert_eq!(b.get(&PublicKey::of(&key(1))).unwrap().payload.sequence, 2);
}

#[test]
fn ingest_refuses_bad_input_with_typed_errors() {
    let mut b = OrderBook::default();
    let good = signed(offer(1), 1).encode();
    assert_eq!(b.ingest(&good, NOW).unwrap(), Insertion::New);

    let mut forged = signed(offer(2), 3); // signed by the wrong key
    assert!(matches!(
        b.ingest(&forged.encode(), NOW),
        Err(OfferError::Signature(SignatureError::BadSignature))
    ));
    forged.payload.sequence = 9;
    assert!(b.ingest(&forged.encode(), NOW).is_err());

    assert!(matches!(
        b.ingest(&good[..40], NOW),
        Err(OfferError::Decode(_))
    ));
    assert!(matches!(
        b.ingest(&vec![1u8; 70_000], NOW),
        Err(OfferError::Decode(DecodeError::Oversized { .. }))
    ));
    let mut v2 = good.clone();
    v2[0] = 2;
    assert!(matches!(
        b.ingest(&v2, NOW),
        Err(OfferError::Decode(DecodeError::UnknownVersion(2)))
    ));

    let mut old = offer(4);
    old.expires_at = NOW;
    assert!(matches!(
        b.ingest(&signed(old, 4).encode(), NOW),
        Err(OfferError::Expired { .. })
    ));
    let mut far = offer(5);
    far.expires_at = NOW + 7 * 24 * 3600;
    assert!(matches!(
        b.ingest(&signed(far, 5).encode(), NOW),
        Err(OfferError::TtlTooLong { .. })
    ));
    assert_eq!(b.len(), 1, "only the good offer is in");
}

#[test]
fn batch_ingest_refuses_only_the_bad_ones() {
    let mut b = OrderBook::default();
    let mut items: Vec<Vec<u8>> = (0..20).map(|i| signed(offer(i), i).encode()).collect();
    items[7] = signed(offer(7), 8).encode(); // forged
    items[13][5] ^= 0xff; // corrupted provider key: bad key or bad signature
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let res = b.ingest_batch(&refs, NOW);
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 7 && i != 13, "offer {i}: {r:?}");
    }
    assert_eq!(b.len(), 18);
    // All good: one batch.
    let mut b = OrderBook::default();
    let items: Vec<Vec<u8>> = (0..20).map(|i| signed(offer(i), i).encode()).collect();
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    assert!(b.ingest_batch(&refs, NOW).iter().all(Result::is_ok));
    assert_eq!(b.len(), 20);
}

#[test]
fn offers_expire_by_ttl() {
    let mut b = OrderBook::default();
    for i in 0..10u32 {
        let mut o = offer(i);
        o.expires_at = NOW + 10 + u64::from(i);
        b.insert(verified(o, i), NOW).unwrap();
    }
    // Expired offers are never matched, even before expire() runs.
    assert_eq!(b.find(&cpu_job(), NOW + 15, &(), 100).unwrap().len(), 4);
    assert_eq!(b.expire(NOW + 15), 6);
    assert_eq!(b.len(), 4);
    assert_eq!(b.expire(NOW + 100), 4);
    assert!(b.is_empty());
    assert_eq!(
        b.find(&cpu_job(), NOW + 100, &(), 10).unwrap_err().blocker,
        Stage::Live
    );
}

#[test]
fn withdrawal_removes_and_keeps_older_copies_out() {
    let mut b = book_with([(1, offer(1))]);
    let w = |seq| {
        Signed::sign(
            Withdrawal {
                provider: PublicKey::of(&key(1)),
                sequence: seq,
            },
            &key(1),
        )
    };
    // A withdrawal older than the offer does nothing.
    let mut newer = offer(1);
    newer.sequence = 5;
    b.insert(verified(newer, 1), NOW).unwrap();
    assert!(!b.withdraw(&w(4).verify().unwrap(), NOW));
    assert_eq!(b.len(), 1);
    assert!(b.withdraw(&w(5).verify().unwrap(), NOW));
    assert!(b.is_empty());
    // A late gossip copy of the withdrawn offer does not come back...
    let mut late = offer(1);
    late.sequence = 5;
    assert!(matches!(
        b.insert(verified(late, 1), NOW + 1),
        Err(OfferError::StaleSequence { .. })
    ));
    // ...but a new offer does.
    let mut fresh = offer(1);
    fresh.sequence = 6;
    assert_eq!(
        b.insert(verified(fresh, 1), NOW + 1).unwrap(),
        Insertion::New
    );
    // A forged withdrawal never verifies.
    let forged = Signed::sign(
        Withdrawal {
            provider: PublicKey::of(&key(1)),
            sequence: 99,
        },
        &key(2),
    );
    assert!(forged.verify().is_err());
}

#[test]
fn a_full_book_evicts_the_offer_closest_to_expiry() {
    let mut b = OrderBook::new(BookConfig {
        capacity: 3,
        max_ttl_secs: 3_600,
    });
    for (i, ttl) in [(1u32, 100u64), (2, 50), (3, 200)] {
        let mut o = offer(i);
        o.expires_at = NOW + ttl;
        b.insert(verified(o, i), NOW).unwrap();
    }
    // A newcomer living longer than the soonest-expiring offer evicts it.
    let mut o = offer(4);
    o.expires_at = NOW + 60;
    assert_eq!(
        b.insert(verified(o, 4), NOW).unwrap(),
        Insertion::Evicted {
            evicted: PublicKey::of(&key(2))
        }
    );
    assert_eq!(b.len(), 3);
    // A newcomer expiring before everything held is refused.
    let mut o = offer(5);
    o.expires_at = NOW + 10;
    assert_eq!(
        b.insert(verified(o, 5), NOW),
        Err(OfferError::BookFull { capacity: 3 })
    );
    // Replacing a held offer never needs room.
    let mut o = offer(1);
    o.sequence = 2;
    o.expires_at = NOW + 5;
    assert!(matches!(
        b.insert(verified(o, 1), NOW).unwrap(),
        Insertion::Replaced { .. }
    ));
    // Expired offers make room first.
    let mut o = offer(6);
    o.expires_at = NOW + 1_000;
    assert_eq!(b.insert(verified(o, 6), NOW + 6).unwrap(), Insertion::New);
    assert!(b.get(&PublicKey::of(&key(1))).is_none());
}

#[test]
fn matching_ranks_by_price_then_reputation_and_latency() {
    let mut cheap = offer(1);
    cheap.prices.per_gfuel = 1_000;
    let mut dear = offer(2);
    dear.prices.per_gfuel = 3_000;
    let mut mid = offer(3);
    mid.prices.per_gfuel = 2_000;
    let b = book_with([(1, cheap), (2, dear), (3, mid)]);
    let m = b.find(&cpu_job(), NOW, &(), 10).unwrap();
    let order: Vec<_> = m.iter().map(|x| x.provider).collect();
    assert_eq!(order, [1, 3, 2].map(|i| PublicKey::of(&key(i))));
    // 10^9 fuel at 1000 per 10^9 fuel.
    assert_eq!(m[0].max_cost, 1_000);
    assert_eq!(b.find(&cpu_job(), NOW, &(), 1).unwrap().len(), 1);

    // A cheap provider with a bad reputation and a slow link loses to a dearer, trusted one:
    // 1000 × (2 − 0) × 1.5 = 3000 against 2000 × (2 − 1) × 1.01 = 2020.
    let obs: HashMap<PublicKey, PeerStats> = [
        (
            PublicKey::of(&key(1)),
            PeerStats {
                reputation: 0.0,
                latency_ms: 500,
            },
        ),
        (
            PublicKey::of(&key(3)),
            PeerStats {
                reputation: 1.0,
                latency_ms: 10,
            },
        ),
    ]
    .into();
    let m = b.find(&cpu_job(), NOW, &obs, 10).unwrap();
    assert_eq!(m[0].provider, PublicKey::of(&key(3)));
    assert!((m[0].score - 2_020.0).abs() < 1e-6);
}

#[test]
fn gpu_jobs_match_model_memory_capability_and_count() {
    let mut a = offer(1);
    a.hardware.gpus = vec![h100()];
    a.prices.per_gpu_second = 10;
    let mut b4090 = offer(2);
    b4090.hardware.gpus = vec![rtx4090()];
    let none = offer(3);
    let book = book_with([(1, a), (2, b4090), (3, none)]);
    let m = book.find(&gpu_job(), NOW, &(), 10).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].provider, PublicKey::of(&key(1)));
    // fuel 1000 + 10 s of one GPU at 10 per GPU-second.
    assert_eq!(m[0].max_cost, 1_100);

    let mut two = gpu_job();
    two.requirements.gpu.as_mut().unwrap().count = 2;
    let e = book.find(&two, NOW, &(), 10).unwrap_err();
    assert_eq!(e.blocker, Stage::Gpu);
    assert!(
        e.to_string().contains("none has the GPU you need (2× H100"),
        "{e}"
    );

    let mut any_model = gpu_job();
    let g = any_model.requirements.gpu.as_mut().unwrap();
    g.models.clear();
    g.min_memory_bytes = 16 * GIB;
    assert_eq!(book.find(&any_model, NOW, &(), 10).unwrap().len(), 2);
    any_model
        .requirements
        .gpu
        .as_mut()
        .unwrap()
        .min_compute_capability = ComputeCapability::new(9, 0);
    assert_eq!(book.find(&any_model, NOW, &(), 10).unwrap().len(), 1);
}

#[test]
fn when_nothing_matches_the_book_says_why() {
    // Three H100 offers, all dearer than the cap.
    let offers = (1..=3).map(|i| {
        let mut o = offer(i);
        o.hardware.gpus = vec![h100()];
        o.prices.per_gpu_second = 1_000 * u128::from(i);
        (i, o)
    });
    let mut book = book_with(offers);
    book.insert(verified(offer(9), 9), NOW).unwrap(); // no GPU
    let e = book.find(&gpu_job(), NOW, &(), 5).unwrap_err();
    assert_eq!(e.blocker, Stage::Price);
    assert_eq!(e.funnel.passed(Stage::Live), 4);
    assert_eq!(e.funnel.passed(Stage::Gpu), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("4 live offers, of those 3 have the GPU"),
        "{msg}"
    );
    // 10 s × 1000 per GPU-second + 1000 for the fuel.
    assert!(
        msg.contains(&format!(
            "all 3 cost more than your cap of 10000; the cheapest is 11000 from provider {}",
            PublicKey::of(&key(1)).short()
        )),
        "{msg}"
    );

    // Too little stake for the job's value.
    let mut poor = offer(1);
    poor.stake = 100;
    let book = book_with([(1, poor)]);
    let e = book.find(&cpu_job(), NOW, &(), 5).unwrap_err();
    assert_eq!(e.blocker, Stage::Stake);
    assert!(e.to_string().contains("it needs 90000"), "{e}");

    // Cores, memory, features.
    let book = book_with([(1, offer(1))]);
    let mut j = cpu_job();
    j.requirements.min_cpu_cores = 64;
    assert!(
        book.find(&j, NOW, &(), 5)
            .unwrap_err()
            .to_string()
            .contains("the most offered is 8")
    );
    let mut j = cpu_job();
    j.limits.memory_bytes = 64 * GIB;
    assert_eq!(
        book.find(&j, NOW, &(), 5).unwrap_err().blocker,
        Stage::Memory
    );
    let mut j = cpu_job();
    j.requirements.features = vec!["simd".into(), "nvrtc".into()];
    let e = book.find(&j, NOW, &(), 5).unwrap_err();
    assert_eq!(e.blocker, Stage::Features);
    assert!(e.to_string().contains("simd, nvrtc"));

    // A job that is never checked is covered by no stake.
    let mut j = cpu_job();
    j.verification.sampling_ppm = 0;
    assert!(
        book.find(&j, NOW, &(), 5)
            .unwrap_err()
            .to_string()
            .contains("sampling rate 0%")
    );
    assert!(
        OrderBook::default()
            .find(&cpu_job(), NOW, &(), 5)
            .unwrap_err()
            .to_string()
            .contains("no live offer")
    );
}

#[test]
fn features_beyond_the_index_still_match_by_name() {
    // 70 distinct features: the last ones get no bit in the index.
    let mut b = OrderBook::default();
    for i in 0..3u32 {
        let mut o = offer(i);
        o.features = (0..30).map(|f| format!("f{}", i * 30 + f)).collect();
        b.insert(verified(o, i), NOW).unwrap();
    }
    let mut j = cpu_job();
    j.requirements.features = vec!["f85".into()];
    let m = b.find(&j, NOW, &(), 5).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].provider, PublicKey::of(&key(2)));
    j.requirements.features = vec!["f85".into(), "nope".into()];
    assert!(b.find(&j, NOW, &(), 5).is_err());
}

// ---- the book against a naive reference -------------------------------------------

fn naive(offers: &[Offer], spec: &JobSpec, now: u64, limit: usize) -> Vec<(PublicKey, u128)> {
    let inputs: Vec<BlobRef> = spec
        .stdin
        .iter()
        .chain(spec.inputs.iter().map(|i| &i.blob))
        .copied()
        .collect();
    let largest = inputs.iter().map(|b| b.size).max().unwrap_or(0);
    let mut large: Vec<BlobRef> = Vec::new();
    for b in &inputs {
        if b.size >= 16 << 20 && !large.contains(b) {
            large.push(*b);
        }
    }
    let held = |o: &Offer| -> u64 {
        large
            .iter()
            .filter(|b| o.cached_blobs.contains(b))
            .map(|b| b.size)
            .sum()
    };
    // (key, max_cost, score, cost in 10^-9, held bytes) of every match.
    let all: Vec<(PublicKey, u128, f64, u128, u64)> = offers
        .iter()
        .filter_map(|o| {
            let (cost, score, nano) = naive_one(o, spec, now, largest)?;
            Some((o.provider, cost, score, nano, held(o)))
        })
        .collect();
    // The places: by score, then key.
    let mut places = all.clone();
    places.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
    places.truncate(limit);
    // Each place goes to the next offer of its cost by held bytes, then score, then key.
    let mut takers = all;
    takers.sort_by(|a, b| b.4.cmp(&a.4).then(a.2.total_cmp(&b.2)).then(a.0.cmp(&b.0)));
    let mut used: Vec<PublicKey> = Vec::new();
    places
        .iter()
        .map(|place| {
            let chosen = takers
                .iter()
                .find(|c| c.3 == place.3 && !used.contains(&c.0))
                .copied()
                .unwrap_or(*place);
            used.push(chosen.0);
            (chosen.0, chosen.1)
        })
        .collect()
}

/// Whether `o` matches `spec`, filter by filter: its cost, score and cost in 10^-9 if so.
fn naive_one(o: &Offer, spec: &JobSpec, now: u64, largest: u64) -> Option<(u128, f64, u128)> {
    let gpu_ok = spec
        .requirements
        .gpu
        .as_ref()
        .filter(|g| g.count > 0)
        .is_none_or(|g| {
            o.hardware
                .gpus
                .iter()
                .filter(|x| {
                    x.memory_bytes >= g.min_memory_bytes
                        && x.compute_capability >= g.min_compute_capability
                        && (g.models.is_empty()
                            || g.models
                                .iter()
                                .any(|m| x.model.to_lowercase().contains(&m.to_lowercase())))
                })
                .count()
                >= usize::from(g.count)
        });
    let fits = o.expires_at > now
        && gpu_ok
        && o.hardware.cpu_cores >= spec.requirements.min_cpu_cores
        && o.hardware.memory_bytes >= spec.limits.memory_bytes
        && (o.max_input_bytes == 0 || largest <= o.max_input_bytes)
        && spec
            .requirements
            .features
            .iter()
            .all(|f| o.features.contains(f));
    if !fits {
        return None;
    }
    let gpus = spec.requirements.gpu.as_ref().map_or(0, |g| g.count);
    let nano = u128::from(spec.limits.fuel) * o.prices.per_gfuel
        + u128::from(spec.limits.wall_time_ms)
            * u128::from(gpus)
            * o.prices.per_gpu_second
            * 1_000_000;
    if nano > spec.price_cap * 1_000_000_000 {
        return None;
    }
    if min_stake_for(spec.price_cap, spec.verification.sampling_ppm).is_none_or(|m| o.stake < m) {
        return None;
    }
    Some((
        nano.div_ceil(1_000_000_000),
        nano as f64 / 1e9 * 1.5 * 1.1,
        nano,
    ))
}

prop_compose! {
    fn arb_market_offer(i: u32)(
        cores in 1u16..32,
        mem in 1u64..64,
        gpus in prop::collection::vec((0usize..2, 8u64..96, 7u8..10), 0..6),
        features in prop::sample::subsequence(vec!["simd", "gpu", "nvrtc", "big"], 0..4),
        // Prices from a short list too, so that equal prices are common.
        per_gfuel in prop_oneof![0u128..5_000, prop::sample::select(vec![500u128, 1_000])],
        per_gpu_second in prop_oneof![0u128..2_000, Just(100u128)],
        stake in 0u128..200_000,
        ttl in 1u64..600,
        max_input_bytes in prop::sample::select(vec![0u64, 50 << 20, (100 << 20) + 5, 200 << 20, 2 * GIB]),
        cached_blobs in prop::sample::subsequence(pool(), 0..4),
    ) -> Offer {
        let models = ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"];
        Offer {
            hardware: Hardware {
                cpu_cores: cores,
                memory_bytes: mem * GIB,
                gpus: gpus.into_iter().map(|(m, gm, cc)| Gpu {
                    model: models[m].into(),
                    memory_bytes: gm * GIB,
                    compute_capability: ComputeCapability::new(cc, 0),
                    driver: "1".into(),
                }).collect(),
            },
            features: features.into_iter().map(str::to_owned).collect(),
            prices: Prices { per_gfuel, per_gpu_second },
            stake,
            expires_at: NOW + ttl,
            max_input_bytes,
            cached_blobs,
            ..offer(i)
        }
    }
}

/// Large blobs offers hold and jobs read, and one small one.
fn pool() -> Vec<BlobRef> {
    vec![
        BlobRef {
            hash: B256::repeat_byte(0xa1),
            size: 16 << 20,
        },
        BlobRef {
            hash: B256::repeat_byte(0xa2),
            size: (100 << 20) + 5,
        },
        BlobRef {
            hash: B256::repeat_byte(0xa3),
            size: GIB,
        },
    ]
}

fn arb_offers() -> impl Strategy<Value = Vec<Offer>> {
    (1usize..40).prop_flat_map(|n| (0..n as u32).map(arb_market_offer).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn find_agrees_with_a_naive_scan(
        offers in arb_offers(),
        cores in 0u16..16,
        mem in 0u64..32,
        gpu in prop::option::of((1u8..3, prop::bool::ANY, prop_oneof![(0u64..64).prop_map(|g| g * GIB), 0u64..(64 * GIB)], 7u8..10)),
        features in prop::sample::subsequence(vec!["simd", "gpu", "nvrtc"], 0..2),
        cap in 0u128..20_000,
        ppm in prop_oneof![Just(0u32), 1u32..1_000_000, Just(1_000_000)],
        later in 0u64..400,
        limit in 1usize..50,
        inputs in prop::sample::subsequence(
            {
                let mut v = pool();
                v.push(BlobRef { hash: B256::repeat_byte(0xa4), size: 1_000 });
                v
            },
            0..4,
        ),
        stdin_too in prop::bool::ANY,
    ) {
        let mut spec = cpu_job();
        spec.requirements.min_cpu_cores = cores;
        spec.limits.memory_bytes = mem * GIB;
        spec.requirements.gpu = gpu.map(|(count, h100_only, gm, cc)| GpuNeeds {
            count,
            models: if h100_only { vec!["h100".into()] } else { vec![] },
            min_memory_bytes: gm,
            min_compute_capability: ComputeCapability::new(cc, 0),
        });
        spec.requirements.features = features.into_iter().map(str::to_owned).collect();
        spec.price_cap = cap;
        spec.verification.sampling_ppm = ppm;
        spec.stdin = inputs.first().copied().filter(|_| stdin_too);
        spec.inputs = inputs
            .iter()
            .enumerate()
            .map(|(i, b)| Input { name: format!("in{i}"), blob: *b })
            .collect();
        let mut book = OrderBook::default();
        for (i, o) in offers.iter().enumerate() {
            book.insert(verified(o.clone(), i as u32), NOW).unwrap();
        }
        let now = NOW + later;
        let want = naive(&offers, &spec, now, limit);
        match book.find(&spec, now, &(), limit) {
            Ok(got) => {
                let got: Vec<_> = got.into_iter().map(|m| (m.provider, m.max_cost)).collect();
                prop_assert_eq!(got, want);
            }
            Err(e) => {
                prop_assert!(want.is_empty(), "book found nothing, naive found {:?}", want);
                // The funnel never grows, and the blocker is where it reaches zero.
                prop_assert_eq!(e.funnel.passed(e.blocker), 0);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn gpu_memory_boundaries_are_exact() {
    // A GPU with exactly the memory asked for fits; one byte less does not, whether or not
    // the amounts are whole MiB, and with more GPUs than the inline column holds.
    for need in [40 * GIB, 40 * GIB + 1_234] {
        for gpus in [1usize, 6] {
            let mut exact = offer(1);
            exact.hardware.gpus = vec![
                Gpu {
                    memory_bytes: need,
                    ..h100()
                };
                gpus
            ];
            let mut short = offer(2);
            short.hardware.gpus = vec![
                Gpu {
                    memory_bytes: need - 1,
                    ..h100()
                };
                gpus
            ];
            let b = book_with([(1, exact), (2, short)]);
            let mut j = gpu_job();
            j.requirements.gpu.as_mut().unwrap().min_memory_bytes = need;
            let m = b.find(&j, NOW, &(), 10).unwrap();
            assert_eq!(m.len(), 1, "need {need}, {gpus} GPUs");
            assert_eq!(m[0].provider, PublicKey::of(&key(1)));
        }
    }
}

#[test]
fn prices_and_stakes_beyond_64_bits_match_exactly() {
    // Token amounts with 18 decimals pass 2^64 quickly; the book must not saturate them.
    let big = u128::from(u64::MAX) * 1_000;
    let mut rich = offer(1);
    rich.stake = big; // more than any job needs
    rich.prices.per_gfuel = 2_000;
    let mut dear = offer(2);
    dear.prices.per_gfuel = big; // costs more than any cap
    let b = book_with([(1, rich), (2, dear)]);
    let mut j = cpu_job();
    j.price_cap = u128::from(u64::MAX) * 10;
    let m = b.find(&j, NOW, &(), 10).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].provider, PublicKey::of(&key(1)));
    assert_eq!(m[0].max_cost, 2_000);
    // Only a stake past 2^64 covers this job's value at 10%.
    let mut poorer = offer(3);
    poorer.stake = u128::from(u64::MAX);
    let b = book_with([(3, poorer)]);
    assert_eq!(b.find(&j, NOW, &(), 10).unwrap_err().blocker, Stage::Stake);
}

#[test]
fn the_gpu_index_follows_replacements_removals_and_reused_slots() {
    let mut b = OrderBook::new(BookConfig {
        capacity: 4,
        max_ttl_secs: 3_600,
    });
    let with = |i: u32, seq: u64, gpus: Vec<Gpu>| {
        let mut o = offer(i);
        o.sequence = seq;
        o.hardware.gpus = gpus;
        verified(o, i)
    };
    let found = |b: &OrderBook| -> Vec<PublicKey> {
        b.find(&gpu_job(), NOW, &(), 10)
            .map(|m| m.into_iter().map(|x| x.provider).collect())
            .unwrap_or_default()
    };
    b.insert(with(1, 1, vec![h100()]), NOW).unwrap();
    b.insert(with(2, 1, vec![rtx4090()]), NOW).unwrap();
    assert_eq!(found(&b), [PublicKey::of(&key(1))]);
    // Provider 1 swaps its H100 for a 4090; provider 2 gets an H100.
    b.insert(with(1, 2, vec![rtx4090()]), NOW).unwrap();
    b.insert(with(2, 2, vec![rtx4090(), h100()]), NOW).unwrap();
    assert_eq!(found(&b), [PublicKey::of(&key(2))]);
    // Provider 2 withdraws; its slot is reused by a provider with no GPU.
    let w = Signed::sign(
        Withdrawal {
            provider: PublicKey::of(&key(2)),
            sequence: 2,
        },
        &key(2),
    );
    assert!(b.withdraw(&w.verify().unwrap(), NOW));
    b.insert(with(3, 1, vec![]), NOW).unwrap();
    assert!(found(&b).is_empty());
    // More GPUs than the inline column holds, and the explanation still counts everything.
    b.insert(
        with(
            4,
            1,
            vec![rtx4090(), rtx4090(), rtx4090(), rtx4090(), h100()],
        ),
        NOW,
    )
    .unwrap();
    assert_eq!(found(&b), [PublicKey::of(&key(4))]);
    let mut two = gpu_job();
    two.requirements.gpu.as_mut().unwrap().count = 2;
    let e = b.find(&two, NOW, &(), 10).unwrap_err();
    assert_eq!(e.funnel.passed(Stage::Live), 3);
    assert_eq!(e.blocker, Stage::Gpu);
}
