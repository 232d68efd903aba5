#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use sietch_contracts::SietchEscrow as E;
use sietch_market::{Address, B256, U256};

use super::*;

fn finished(n: u8, state: JobEnd) -> NodeEvent {
    NodeEvent::Finished {
        job: B256::repeat_byte(n),
        state,
        millis: 1,
    }
}

#[test]
fn a_series_coarsens_instead_of_dropping_its_start() {
    let mut m = Market::default();
    let n = (MAX_POINTS as u64) * 3;
    for t in 0..n {
        m.node_event(1_000 + t * FIRST_WIDTH, &finished(1, JobEnd::Paid));
    }
    // A failed job is not counted.
    m.node_event(1_000, &finished(2, JobEnd::Failed));
    let v = m.view();
    assert!(v.buckets.len() <= MAX_POINTS, "{} buckets", v.buckets.len());
    assert!(
        v.bucket_secs > FIRST_WIDTH,
        "the buckets widened: {}",
        v.bucket_secs
    );
    assert_eq!(v.bucket_secs % FIRST_WIDTH, 0);
    // Nothing lost: the buckets add up to the total, and the first still holds the start.
    assert_eq!(v.totals.jobs, n);
    assert_eq!(v.buckets.iter().map(|b| b.counts.jobs).sum::<u64>(), n);
    assert!(v.buckets[0].start <= 1_000);
    assert!(v.buckets.windows(2).all(|w| w[0].start < w[1].start));
    assert_eq!(v.since, Some(1_000));
}

#[test]
fn escrow_events_count_in_totals_and_for_their_provider() {
    let (p, q) = (Address::repeat_byte(1), Address::repeat_byte(2));
    let (ch, unknown) = (B256::repeat_byte(10), B256::repeat_byte(11));
    let (t1, t2) = (B256::repeat_byte(20), B256::repeat_byte(21));
    let e18 = U256::from(10u128.pow(18));
    let events = [
        E::SietchEscrowEvents::ChannelOpened(E::ChannelOpened {
            channelId: ch,
            buyer: Address::repeat_byte(9),
            provider: p,
            amount: e18 * U256::from(10),
            nonce: U256::ZERO,
        }),
        E::SietchEscrowEvents::VoucherClaimed(E::VoucherClaimed {
            channelId: ch,
            provider: p,
            cumulativeAmount: e18 * U256::from(3),
            amount: e18 * U256::from(3),
            paid: e18 * U256::from(3),
        }),
        claimed(t1, ch),
        // A ticket on a channel opened before the node read the chain: counted, no provider.
        claimed(t2, unknown),
        E::SietchEscrowEvents::TicketDisputed(E::TicketDisputed {
            ticketId: t1,
            buyer: Address::repeat_byte(9),
            bond: U256::from(5),
            drawBlock: 9,
            undelivered: false,
        }),
        E::SietchEscrowEvents::TicketSettled(E::TicketSettled {
            ticketId: t2,
            outcome: 0,
            toProvider: U256::from(7),
            refund: U256::ZERO,
            bondToBuyer: U256::ZERO,
            bondToProvider: U256::ZERO,
        }),
        E::SietchEscrowEvents::Slashed(E::Slashed {
            provider: q,
            ticketId: t1,
            amount: e18 * U256::from(500),
            verifiers: U256::ZERO,
            compensation: U256::ZERO,
            burned: U256::ZERO,
            kept: U256::ZERO,
        }),
        // Not a figure of the market: ignored.
        E::SietchEscrowEvents::Withdrawn(E::Withdrawn {
            account: p,
            amount: U256::from(1),
        }),
    ];
    let mut m = Market::default();
    for (i, e) in events.iter().enumerate() {
        m.chain_event(100 + i as u64, 5_000 + i as u64 * 10, e);
    }
    let v = m.view();
    let three = 3 * 10u128.pow(18);
    assert_eq!(
        v.totals,
        Counts {
            jobs: 0,
            channels: 1,
            escrow: Escrow {
                claims: 1,
                tickets: 2,
                volume: three + 7,
                disputes: 1,
                slashes: 1,
                slashed: 500 * 10u128.pow(18),
            },
        }
    );
    assert_eq!(v.blocks, Some((100, 106)));
    let of = |a: Address| {
        v.providers
            .iter()
            .find(|x| x.evm_address == a.to_string())
            .unwrap()
            .counts
    };
    assert_eq!(
        of(p),
        Escrow {
            claims: 1,
            tickets: 1,
            volume: three,
            disputes: 1,
            slashes: 0,
            slashed: 0,
        }
    );
    assert_eq!((of(q).slashes, of(q).slashed), (1, 500 * 10u128.pow(18)));
    assert_eq!(v.providers.len(), 2);
    // Each event in the bucket of the time it was read: 10 s apart, one bucket each.
    assert_eq!(
        v.buckets
            .iter()
            .map(|b| b.counts.escrow.tickets)
            .sum::<u64>(),
        2
    );
    assert_eq!(v.buckets.len(), 7);
    // In JSON, amounts are decimal strings and a bucket's counts sit beside its start.
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(
        json["totals"]["volume"],
        serde_json::json!((three + 7).to_string())
    );
    assert_eq!(json["buckets"][0]["channels"], serde_json::json!(1));
    assert_eq!(
        json["providers"][0]["volume"],
        serde_json::json!(three.to_string())
    );
}

fn claimed(ticket: B256, channel: B256) -> E::SietchEscrowEvents {
    E::SietchEscrowEvents::TicketClaimed(E::TicketClaimed {
        ticketId: ticket,
        channelId: channel,
        jobId: B256::repeat_byte(3),
        amount: U256::from(1),
        outputHash: B256::ZERO,
        fuelUsed: 1,
        challengeEnds: 1,
        reserved: U256::ZERO,
        cumulativeEnd: U256::from(1),
    })
}

fn offer(gpus: &[&str], per_gfuel: u128, per_gpu_second: u128) -> OfferPrices {
    OfferPrices {
        gpus: gpus.iter().map(|g| (*g).to_owned()).collect(),
        per_gfuel,
        per_gpu_second,
    }
}

#[test]
fn prices_are_followed_by_gpu_model() {
    let mut m = Market::default();
    let book = [
        offer(&[], 5, 0),
        offer(&[], 7, 0),
        offer(&["A100", "A100"], 10, 2),
        offer(&["A100", "H100"], 30, 1),
        offer(&["H100"], 20, 3),
    ];
    m.sample_offers(2_000, &book);
    // A later sample in the same bucket replaces it: a point is the book at its last sample.
    m.sample_offers(2_005, &book);
    let v = m.view();
    let model = |name: Option<&str>| {
        v.prices
            .iter()
            .find(|p| p.model.as_deref() == name)
            .unwrap()
            .points
            .clone()
    };
    let cpu = model(None);
    assert_eq!(cpu.len(), 1);
    assert_eq!(
        (
            cpu[0].point.offers,
            cpu[0].point.gpus,
            cpu[0].point.min_gfuel,
            cpu[0].point.median_gfuel
        ),
        (2, 0, Some(5), Some(7))
    );
    assert_eq!(cpu[0].point.min_gpu_hour, None);
    let a100 = &model(Some("A100"))[0].point;
    assert_eq!((a100.offers, a100.gpus), (2, 3));
    assert_eq!(
        (a100.min_gpu_hour, a100.median_gpu_hour),
        (Some(3_600), Some(7_200))
    );
    assert_eq!((a100.min_gfuel, a100.median_gfuel), (Some(10), Some(30)));
    let h100 = &model(Some("H100"))[0].point;
    assert_eq!(
        (h100.offers, h100.gpus, h100.min_gpu_hour),
        (2, 2, Some(3_600))
    );
    // The models most offered first.
    assert_eq!(v.prices.len(), 3);
    assert!(
        v.prices
            .windows(2)
            .all(|w| w[0].points[0].point.offers >= w[1].points[0].point.offers)
    );
    // A model gone from the book leaves a gap, not a point.
    m.sample_offers(2_010, &book[..2]);
    let v = m.view();
    let a = v
        .prices
        .iter()
        .find(|p| p.model.as_deref() == Some("A100"))
        .unwrap();
    assert_eq!(a.points.len(), 1);
}

#[test]
fn gpu_models_are_bounded_and_the_stalest_gives_way() {
    let mut m = Market::default();
    let names: Vec<String> = (0..MAX_MODELS + 10)
        .map(|i| format!("model-{i:02}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        m.sample_offers(
            10_000 + i as u64 * FIRST_WIDTH,
            &[offer(&[name.as_str()], 1, 1)],
        );
    }
    let v = m.view();
    assert_eq!(v.prices.len(), MAX_MODELS + 1);
    let kept: Vec<_> = v.prices.iter().filter_map(|p| p.model.clone()).collect();
    assert!(
        kept.contains(names.last().unwrap()),
        "the newest model is followed"
    );
    assert!(!kept.contains(&names[0]), "the stalest gave way");
    // A long name is cut.
    m.sample_offers(99_999, &[offer(&["x".repeat(500).as_str()], 1, 1)]);
    assert!(
        m.view()
            .prices
            .iter()
            .all(|p| p.model.as_ref().is_none_or(|n| n.chars().count() <= 64))
    );
}
