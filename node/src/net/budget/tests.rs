//! The budgets' unit tests.

use super::*;

fn guard() -> Arc<Guard> {
    Guard::new(Limits {
        per_peer: 100,
        total: 150,
        streams_per_peer: 3,
        max_expected: 2,
    })
    .0
}

#[test]
fn refusals_are_reported_with_their_peer() {
    let (g, mut rx) = Guard::new(Limits {
        per_peer: 10,
        total: 100,
        streams_per_peer: 1,
        max_expected: 2,
    });
    let p = PeerId::random();
    let _held = g.open(p).unwrap();
    assert!(g.open(p).is_err());
    assert!(g.admit_result(p, B256::ZERO, 1).is_err());
    let (who, d) = rx.try_recv().unwrap();
    assert_eq!((who, d.offence()), (p, Some(Offence::OverBudget)));
    let (_, d) = rx.try_recv().unwrap();
    assert_eq!(d.offence(), Some(Offence::UnsolicitedResult));
}

#[test]
fn bytes_are_taken_from_the_peer_and_the_node_and_given_back() {
    let g = guard();
    let (a, b) = (PeerId::random(), PeerId::random());
    let mut l1 = g.open(a).unwrap();
    l1.grow(60).unwrap();
    let mut l2 = g.open(a).unwrap();
    assert!(matches!(l2.grow(41), Err(Denied::PeerBudget { .. })));
    l2.grow(40).unwrap();
    let mut l3 = g.open(b).unwrap();
    assert!(matches!(l3.grow(51), Err(Denied::TotalBudget { .. })));
    l3.grow(50).unwrap();
    assert_eq!(g.stats().held, 150);
    drop(l1);
    assert_eq!(g.stats().held, 90);
    drop((l2, l3));
    let s = g.stats();
    assert_eq!((s.held, s.peak, s.refused), (0, 150, 2));
    assert!(g.state().peers.is_empty(), "no entry outlives its leases");
}

#[test]
fn held_buffers_count_against_the_budgets_and_are_given_back() {
    let (g, mut rx) = Guard::new(Limits {
        per_peer: 100,
        total: 150,
        streams_per_peer: 2,
        max_expected: 2,
    });
    let (a, b) = (PeerId::random(), PeerId::random());
    let held = g.try_hold(a, 80).unwrap();
    assert!(matches!(g.try_hold(a, 21), Err(Denied::PeerBudget { .. })));
    assert!(matches!(g.try_hold(b, 71), Err(Denied::TotalBudget { .. })));
    let _second = g.try_hold(a, 20).unwrap();
    assert!(matches!(g.try_hold(a, 0), Err(Denied::Streams { .. })));
    assert_eq!(g.stats().held, 100);
    assert!(
        rx.try_recv().is_err(),
        "refusals of held buffers are not charged"
    );
    drop(held);
    assert_eq!(g.stats().held, 20);
    assert!(g.try_hold(b, 70).is_ok());
}

#[test]
fn streams_per_peer_are_bounded() {
    let g = guard();
    let a = PeerId::random();
    let held: Vec<Lease> = (0..3).map(|_| g.open(a).unwrap()).collect();
    assert!(matches!(g.open(a), Err(Denied::Streams { streams: 3, .. })));
    assert!(
        g.open(PeerId::random()).is_ok(),
        "another peer has its own slots"
    );
    drop(held);
    assert!(g.open(a).is_ok());
}

#[test]
fn results_are_read_only_from_the_asked_peer_within_the_jobs_bound() {
    let g = guard();
    let (p, q) = (PeerId::random(), PeerId::random());
    let job = B256::repeat_byte(1);
    assert!(matches!(
        g.admit_result(p, job, 10),
        Err(Denied::Unsolicited { .. })
    ));
    g.expect(job, p, 1000, Duration::from_secs(60));
    assert!(g.admit_result(p, job, 1000 + RESULT_FRAMING).is_ok());
    assert!(matches!(
        g.admit_result(p, job, 1001 + RESULT_FRAMING),
        Err(Denied::OverJobBound { .. })
    ));
    assert!(matches!(
        g.admit_result(q, job, 10),
        Err(Denied::Unsolicited { .. })
    ));
    // Never above the protocol's own bound.
    g.expect(job, q, u64::MAX, Duration::from_secs(60));
    assert!(g.admit_result(q, job, MAX_RESULT as u64 + 1).is_err());
}

#[test]
fn expectations_expire_and_are_bounded() {
    let g = guard();
    let p = PeerId::random();
    let (j1, j2, j3) = (
        B256::repeat_byte(1),
        B256::repeat_byte(2),
        B256::repeat_byte(3),
    );
    g.expect(j1, p, 10, Duration::ZERO);
    assert!(g.admit_result(p, j1, 1).is_err(), "expired");
    g.expect(j1, p, 10, Duration::from_secs(5));
    g.expect(j2, p, 10, Duration::from_secs(50));
    g.expect(j3, p, 10, Duration::from_secs(60));
    assert_eq!(g.expected_len(), 2);
    assert!(g.admit_result(p, j1, 1).is_err(), "the soonest went first");
    assert!(g.admit_result(p, j2, 1).is_ok());
    assert!(g.admit_result(p, j3, 1).is_ok());
}
