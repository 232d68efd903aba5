//! Issue 21: offers name the large blobs they hold and the largest input they take;
//! matching prefers holders at equal price and says plainly when a job's model fits nowhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::*;
use sietch_market::offer::{LARGE_BLOB_BYTES, MAX_CACHED_BLOBS};
use sietch_market::*;

const MIB: u64 = 1 << 20;

/// A 98 MiB model, as SmolLM2-135M's GGUF is.
fn model() -> BlobRef {
    BlobRef {
        hash: B256::repeat_byte(0x4d),
        size: 98 * MIB,
    }
}

fn prompts() -> BlobRef {
    BlobRef {
        hash: B256::repeat_byte(0x50),
        size: 300,
    }
}

/// A generation job: the model and a small prompts file.
fn generation_job() -> JobSpec {
    let mut j = cpu_job();
    j.inputs = vec![
        Input {
            name: "model.gguf".into(),
            blob: model(),
        },
        Input {
            name: "prompts.jsonl".into(),
            blob: prompts(),
        },
    ];
    j
}

fn book_of(offers: impl IntoIterator<Item = (u32, Offer)>) -> OrderBook {
    let mut b = OrderBook::default();
    for (i, o) in offers {
        b.insert(verified(o, i), NOW).unwrap();
    }
    b
}

fn holding(i: u32, blobs: Vec<BlobRef>) -> Offer {
    Offer {
        cached_blobs: blobs,
        max_input_bytes: 256 * MIB,
        ..offer(i)
    }
}

fn keys(m: &[Match]) -> Vec<PublicKey> {
    m.iter().map(|x| x.provider).collect()
}

fn k(i: u32) -> PublicKey {
    PublicKey::of(&key(i))
}

#[test]
fn at_equal_price_the_provider_holding_the_model_comes_first() {
    // Same prices; the key order alone would put whichever key sorts first on top, so try
    // the holder under every key position.
    for holder in 1..=3u32 {
        let offers = (1..=3u32).map(|i| {
            let blobs = if i == holder { vec![model()] } else { vec![] };
            (i, holding(i, blobs))
        });
        let book = book_of(offers);
        let m = book.find(&generation_job(), NOW, &(), 10).unwrap();
        assert_eq!(m[0].provider, k(holder));
        assert_eq!(m[0].held_bytes, 98 * MIB);
        assert!(m[1..].iter().all(|x| x.held_bytes == 0));
        assert_eq!(m[0].max_cost, m[1].max_cost);
        // A job that does not read the model ranks them as before: by key.
        let plain = book.find(&cpu_job(), NOW, &(), 10).unwrap();
        let mut by_key = keys(&plain);
        by_key.sort();
        assert_eq!(keys(&plain), by_key);
        assert!(plain.iter().all(|x| x.held_bytes == 0));
    }
}

#[test]
fn holding_more_of_the_inputs_ranks_higher_but_never_above_a_cheaper_offer() {
    let tokenizer = BlobRef {
        hash: B256::repeat_byte(0x54),
        size: 20 * MIB,
    };
    let mut job = generation_job();
    job.inputs.push(Input {
        name: "tokenizer.bin".into(),
        blob: tokenizer,
    });
    let cheap = Offer {
        prices: Prices {
            per_gfuel: 900,
            per_gpu_second: 0,
        },
        ..holding(1, vec![])
    };
    let both = holding(2, vec![tokenizer, model()]);
    let model_only = holding(3, vec![model()]);
    let other = holding(
        4,
        vec![BlobRef {
            hash: B256::repeat_byte(0x99),
            size: 98 * MIB,
        }],
    );
    let book = book_of([(1, cheap), (2, both), (3, model_only), (4, other)]);
    let m = book.find(&job, NOW, &(), 10).unwrap();
    assert_eq!(keys(&m), [k(1), k(2), k(3), k(4)]);
    assert_eq!(
        m.iter().map(|x| x.held_bytes).collect::<Vec<_>>(),
        [0, 118 * MIB, 98 * MIB, 0]
    );
    // Only the first place: the cheaper offer keeps it.
    assert_eq!(keys(&book.find(&job, NOW, &(), 1).unwrap()), [k(1)]);
    // The second place: its price's best holder takes it, though it sorts after by key.
    let m = book.find(&job, NOW, &(), 2).unwrap();
    assert_eq!(keys(&m), [k(1), k(2)]);
}

#[test]
fn a_holder_takes_its_price_s_places_even_with_a_worse_reputation() {
    // 1 and 2 at the same price; 1 well reputed, 2 unknown but holding the model; 3 dearer
    // and trusted. Places by score: 1 (1000 × 1.0), 3 (1200 × 1.0), 2 (1000 × 1.5 × 1.1): the
    // holder takes its price's first place, and the dearer offer keeps the second.
    let trusted = PeerStats {
        reputation: 1.0,
        latency_ms: 0,
    };
    let obs: HashMap<PublicKey, PeerStats> = [(k(1), trusted), (k(3), trusted)].into();
    let dear = Offer {
        prices: Prices {
            per_gfuel: 1_200,
            per_gpu_second: 0,
        },
        ..holding(3, vec![])
    };
    let book = book_of([
        (1, holding(1, vec![])),
        (2, holding(2, vec![model()])),
        (3, dear),
    ]);
    let m = book.find(&generation_job(), NOW, &obs, 10).unwrap();
    assert_eq!(keys(&m), [k(2), k(3), k(1)]);
    // Each keeps its own score; the order is the ranking's.
    assert!((m[0].score - 1_650.0).abs() < 1e-6, "{m:?}");
    // Within the first place only, too.
    assert_eq!(
        keys(&book.find(&generation_job(), NOW, &obs, 1).unwrap()),
        [k(2)]
    );
}

#[test]
fn a_held_blob_counts_only_with_its_size_and_once() {
    let mut wrong_size = model();
    wrong_size.size += 1;
    let liar = holding(1, vec![wrong_size]);
    assert_eq!(liar.held_bytes(&[model()]), 0);
    let holder = holding(2, vec![model()]);
    assert_eq!(holder.held_bytes(&[model(), model()]), 98 * MIB);
    // The same model as stdin and as an input file is sent once, so counted once.
    let mut job = generation_job();
    job.stdin = Some(model());
    let book = book_of([(1, liar), (2, holder)]);
    let m = book.find(&job, NOW, &(), 10).unwrap();
    assert_eq!(m[0].provider, k(2));
    assert_eq!(m[0].held_bytes, 98 * MIB);
}

#[test]
fn a_model_larger_than_every_offer_takes_is_explained() {
    let mut big = generation_job();
    big.inputs[0].blob.size = 2_254_857_830; // 2.1 GiB
    let small = |i| Offer {
        max_input_bytes: 256 * MIB,
        ..offer(i)
    };
    let mid = Offer {
        max_input_bytes: GIB,
        ..offer(3)
    };
    let book = book_of([(1, small(1)), (2, small(2)), (3, mid)]);
    let e = book.find(&big, NOW, &(), 10).unwrap_err();
    assert_eq!(e.blocker, Stage::Inputs);
    assert_eq!(e.blocker.name(), "inputs");
    assert_eq!(e.funnel.passed(Stage::Memory), 3);
    assert_eq!(e.funnel.passed(Stage::Inputs), 0);
    let text = e.to_string();
    assert!(
        text.contains("the job's largest input is 2.1 GiB; the largest any offer takes is 1.0 GiB"),
        "{text}"
    );
    assert!(text.contains("3 have 1.0 GiB of memory"), "{text}");

    // The same model within the limit matches; an offer stating no limit takes anything.
    assert!(book.find(&generation_job(), NOW, &(), 10).is_ok());
    let book = book_of([(1, small(1)), (4, offer(4))]);
    assert_eq!(keys(&book.find(&big, NOW, &(), 10).unwrap()), [k(4)]);
}

#[test]
fn the_input_limit_is_exact_to_the_byte() {
    for limit in [
        256 * MIB,
        256 * MIB + 12_345,
        (u64::from(u16::MAX) << 20) + 7,
        1,
    ] {
        let book = book_of([(
            1,
            Offer {
                max_input_bytes: limit,
                ..offer(1)
            },
        )]);
        let mut job = cpu_job();
        job.inputs = vec![Input {
            name: "x".into(),
            blob: BlobRef {
                hash: B256::repeat_byte(1),
                size: limit,
            },
        }];
        assert!(book.find(&job, NOW, &(), 1).is_ok(), "{limit}");
        job.inputs[0].blob.size = limit + 1;
        let e = book.find(&job, NOW, &(), 1).unwrap_err();
        assert_eq!(e.blocker, Stage::Inputs, "{limit}");
        // stdin counts as an input too.
        job.inputs.clear();
        job.stdin = Some(BlobRef {
            hash: B256::repeat_byte(1),
            size: limit + 1,
        });
        assert_eq!(
            book.find(&job, NOW, &(), 1).unwrap_err().blocker,
            Stage::Inputs
        );
    }
}

#[test]
fn a_job_needing_more_memory_than_any_offer_has_is_explained() {
    let mut job = generation_job();
    job.limits.memory_bytes = 3 * GIB;
    let small = Offer {
        hardware: Hardware {
            memory_bytes: 512 * MIB,
            ..offer(1).hardware
        },
        ..offer(1)
    };
    let book = book_of([(1, small), (2, offer(2))]);
    let mut big = job.clone();
    big.limits.memory_bytes = 32 * GIB;
    let e = book.find(&big, NOW, &(), 10).unwrap_err();
    assert_eq!(e.blocker, Stage::Memory);
    assert!(
        e.to_string()
            .contains("the job asks for 32.0 GiB of memory; the most any offer has is 16.0 GiB"),
        "{e}"
    );
    assert!(book.find(&job, NOW, &(), 10).is_ok());
}

#[test]
fn the_stage_order_and_names_include_inputs() {
    assert_eq!(
        Stage::ALL.map(Stage::name),
        [
            "live", "gpu", "cores", "memory", "inputs", "features", "price", "stake", "avoid"
        ]
    );
}

#[test]
fn offers_name_at_most_eight_large_blobs() {
    assert_eq!(MAX_CACHED_BLOBS, 8);
    assert_eq!(LARGE_BLOB_BYTES, 16 * MIB);
}
