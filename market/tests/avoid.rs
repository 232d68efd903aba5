//! Matching that avoids providers (`OrderBook::find_avoiding`, issue 28: a shard submitted
//! again after its provider failed or straggled): the avoided offers are never returned,
//! whatever their rank; the rest keep their order; and when only avoided offers fit, the
//! explanation says so with its own filter, `avoid`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::*;
use sietch_market::*;

/// Offers 1..=n, offer i at price 1000 · i (offer 1 the cheapest).
fn book(n: u32) -> OrderBook {
    let mut b = OrderBook::default();
    for i in 1..=n {
        let mut o = offer(i);
        o.prices.per_gfuel = 1_000 * u128::from(i);
        b.insert(verified(o, i), NOW).unwrap();
    }
    b
}

fn keys(found: &[Match]) -> Vec<PublicKey> {
    found.iter().map(|m| m.provider).collect()
}

#[test]
fn avoided_offers_are_never_matched_and_the_others_keep_their_order() {
    let b = book(5);
    let all = b.find(&cpu_job(), NOW, &(), 10).unwrap();
    assert_eq!(
        keys(&all),
        (1..=5).map(|i| PublicKey::of(&key(i))).collect::<Vec<_>>()
    );
    // Without a list, `find_avoiding` is `find`.
    assert_eq!(b.find_avoiding(&cpu_job(), NOW, &(), 10, &[]).unwrap(), all);

    let avoid = [offer(1).evm_address, offer(4).evm_address];
    let found = b.find_avoiding(&cpu_job(), NOW, &(), 10, &avoid).unwrap();
    assert_eq!(
        keys(&found),
        [2, 3, 5].map(|i| PublicKey::of(&key(i))).to_vec()
    );
    // The limit counts only what is returned: the best two not avoided.
    let two = b.find_avoiding(&cpu_job(), NOW, &(), 2, &avoid).unwrap();
    assert_eq!(keys(&two), [2, 3].map(|i| PublicKey::of(&key(i))).to_vec());
    // An address no offer has changes nothing.
    let stranger = [Address::repeat_byte(0xee)];
    assert_eq!(
        b.find_avoiding(&cpu_job(), NOW, &(), 10, &stranger)
            .unwrap(),
        all
    );
}

#[test]
fn when_only_avoided_offers_fit_the_book_says_so() {
    let b = book(2);
    let both = [offer(1).evm_address, offer(2).evm_address];
    let e = b
        .find_avoiding(&cpu_job(), NOW, &(), 10, &both)
        .unwrap_err();
    assert_eq!(e.blocker, Stage::Avoid);
    assert_eq!(e.blocker.name(), "avoid");
    assert_eq!(e.funnel.passed(Stage::Stake), 2);
    assert_eq!(e.funnel.passed(Stage::Avoid), 0);
    let msg = e.to_string();
    assert!(msg.contains("of those 2 have the stake for it"), "{msg}");
    assert!(
        msg.contains("all 2 that fit are on the job's list of 2 providers to avoid"),
        "{msg}"
    );

    // One fits, and it is avoided.
    let mut poor = offer(2);
    poor.stake = 1; // too little for the job: stopped by the stake filter
    let mut b = OrderBook::default();
    b.insert(verified(offer(1), 1), NOW).unwrap();
    b.insert(verified(poor, 2), NOW).unwrap();
    let e = b
        .find_avoiding(&cpu_job(), NOW, &(), 10, &[offer(1).evm_address])
        .unwrap_err();
    assert_eq!(e.blocker, Stage::Avoid);
    assert_eq!(e.funnel.passed(Stage::Stake), 1);
    assert!(
        e.to_string()
            .contains("the one that fits is on the job's list of 1 providers to avoid"),
        "{e}"
    );

    // A filter before it stops the offers first: the explanation is that filter's.
    let mut dear = cpu_job();
    dear.price_cap = 1;
    let e = b
        .find_avoiding(&dear, NOW, &(), 10, &[offer(1).evm_address])
        .unwrap_err();
    assert_eq!(e.blocker, Stage::Price);
    // Every filter in order, the avoid list last.
    assert_eq!(Stage::ALL.last(), Some(&Stage::Avoid));
}
