//! The lane table's rules, without a network or a chain.

use std::time::Duration;

use libp2p::PeerId;

use super::*;

pub(crate) const P: Address = Address::repeat_byte(0xaa);
const Q: Address = Address::repeat_byte(0xbb);

pub(crate) fn ch(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn room(max: usize) -> Room {
    Room {
        opening: 0,
        max_lanes: Some(max),
        may_open: true,
    }
}

/// A free lane to P on channel `n` holding `deposit`.
pub(crate) fn with_lane(n: u8, deposit: u64) -> Lanes {
    let mut lanes = Lanes::default();
    lanes.opened(ch(n), P, U256::from(deposit), U256::ZERO);
    lanes.release(ch(n), false);
    lanes
}

fn restored(n: u8, cumulative: u64, retired: bool) -> Restored {
    Restored {
        channel: ch(n),
        provider: P,
        cumulative: U256::from(cumulative),
        deposit: U256::from(100u64),
        retired,
        closes_at: None,
        payment: None,
    }
}

/// The payment of job `job`, paying channel `n` up to `cumulative`.
fn payment(n: u8, job: u8, cumulative: u64) -> Payment {
    Payment {
        job_id: B256::repeat_byte(job),
        secret: B256::repeat_byte(job.wrapping_add(100)),
        voucher: Some((
            sietch_market::Voucher {
                channel_id: ch(n),
                cumulative_amount: U256::from(cumulative),
            },
            [0; 65],
        )),
        note: String::new(),
    }
}

/// Lane `n` restored at `cumulative`, its last job's payment sent again.
fn restored_paying(n: u8, job: u8, cumulative: u64) -> Restored {
    Restored {
        payment: Some(payment(n, job, cumulative)),
        ..restored(n, cumulative, false)
    }
}

#[test]
fn a_restored_lane_is_taken_where_its_line_stood_and_a_retired_one_never() {
    let mut lanes = Lanes::default();
    lanes.restore(restored(1, 40, true), Instant::now());
    lanes.restore(restored(2, 30, false), Instant::now());
    // The next job takes the open channel, its ticket from the last voucher on.
    assert_eq!(
        lanes.take(P, U256::from(50), room(1)),
        Take::Ready(Taken {
            channel: ch(2),
            provider: P,
            cumulative_before: U256::from(30u64)
        })
    );
    assert_eq!(lanes.to_close(), vec![ch(1)]);
    // Restoring again never moves a line back nor un-retires a lane.
    lanes.advance(ch(2), U256::from(80u64), None);
    lanes.restore(restored(2, 30, false), Instant::now());
    lanes.restore(restored(1, 10, false), Instant::now());
    assert_eq!(
        lanes.line(ch(2)),
        Some((U256::from(80u64), U256::from(100u64)))
    );
    assert_eq!(lanes.line(ch(1)).map(|l| l.0), Some(U256::from(40u64)));
    assert_eq!(lanes.first_live(P), Some(ch(2)));
}

#[test]
fn a_free_funded_lane_is_taken_and_then_busy() {
    let mut lanes = with_lane(1, 100);
    let t = lanes.take(P, U256::from(60), room(1));
    assert_eq!(
        t,
        Take::Ready(Taken {
            channel: ch(1),
            provider: P,
            cumulative_before: U256::ZERO
        })
    );
    // Held: the next job finds no free lane, and the one lane allowed exists.
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Wait);
    // Another provider's jobs never take it.
    assert_eq!(lanes.take(Q, U256::from(1), room(1)), Take::Open);
}

#[test]
fn a_lane_short_of_money_is_taken_for_a_top_up_to_the_job_end() {
    let mut lanes = with_lane(1, 100);
    assert!(!lanes.advance(ch(1), U256::from(70), None));
    assert_eq!(
        lanes.take(P, U256::from(50), room(1)),
        Take::TopUp {
            channel: ch(1),
            end: U256::from(120)
        }
    );
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Wait);
}

#[test]
fn opening_respects_max_lanes_one_open_at_a_time_and_extra() {
    let mut lanes = Lanes::default();
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Open);
    lanes.opened(ch(1), P, U256::from(10), U256::ZERO);
    // Busy, and max_lanes reached: wait.
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Wait);
    // Room for a second, but one is already opening: wait for it.
    let opening = Room {
        opening: 1,
        ..room(3)
    };
    assert_eq!(lanes.take(P, U256::from(1), opening), Take::Wait);
    // A job with its own open running does not start another.
    let mine = Room {
        may_open: false,
        ..room(3)
    };
    assert_eq!(lanes.take(P, U256::from(1), mine), Take::Wait);
    // Re-runs open beyond max_lanes rather than wait.
    let extra = Room {
        max_lanes: None,
        ..room(1)
    };
    assert_eq!(lanes.take(P, U256::from(1), extra), Take::Open);
}

#[test]
fn releasing_frees_and_retiring_takes_a_lane_out_for_good() {
    let mut lanes = with_lane(1, 100);
    assert!(matches!(
        lanes.take(P, U256::from(1), room(2)),
        Take::Ready(_)
    ));
    lanes.release(ch(1), false);
    assert!(matches!(
        lanes.take(P, U256::from(1), room(2)),
        Take::Ready(_)
    ));
    lanes.release(ch(1), true);
    // Retired: never taken again, and it no longer counts against max_lanes.
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Open);
    assert_eq!(lanes.first_live(P), None);
    // A later plain release does not un-retire it.
    lanes.release(ch(1), false);
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Open);
    assert_eq!(lanes.to_close(), vec![ch(1)]);
    assert!(lanes.owns(&ch(1)));
}

#[test]
fn advancing_moves_the_line_forward_only_and_starts_the_next_range_there() {
    let mut lanes = with_lane(1, 100);
    assert!(matches!(
        lanes.take(P, U256::from(10), room(1)),
        Take::Ready(_)
    ));
    assert!(!lanes.advance(ch(1), U256::from(30), None));
    assert_eq!(lanes.line(ch(1)), Some((U256::from(30), U256::from(100))));
    // Never back.
    lanes.advance(ch(1), U256::from(20), None);
    assert_eq!(lanes.line(ch(1)), Some((U256::from(30), U256::from(100))));
    // Free again, and the next ticket's range starts where the last voucher ended.
    match lanes.take(P, U256::from(10), room(1)) {
        Take::Ready(t) => assert_eq!(t.cumulative_before, U256::from(30)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lane_running_low_is_topped_up_once_and_not_when_retired() {
    let mut lanes = with_lane(1, 100);
    let low = Some(U256::from(25));
    assert!(!lanes.advance(ch(1), U256::from(70), low), "30 left");
    assert!(lanes.advance(ch(1), U256::from(80), low), "20 left: top up");
    assert!(
        !lanes.advance(ch(1), U256::from(85), low),
        "one top-up at a time"
    );
    lanes.topped_up(ch(1), Some(U256::from(100)));
    assert_eq!(lanes.line(ch(1)), Some((U256::from(85), U256::from(200))));
    // A failed top-up adds nothing but lets the next one start.
    assert!(lanes.advance(ch(1), U256::from(190), low));
    lanes.topped_up(ch(1), None);
    assert_eq!(lanes.line(ch(1)), Some((U256::from(190), U256::from(200))));
    lanes.retire(ch(1));
    assert!(!lanes.advance(ch(1), U256::from(195), low));
    // Without a chain, never.
    let mut plain = with_lane(2, 100);
    assert!(!plain.advance(ch(2), U256::from(99), None));
}

#[test]
fn room_counts_free_lanes_against_waiting_jobs() {
    let lanes = with_lane(1, 100);
    assert!(lanes.has_room(P, 0, 0, 1));
    // One free lane, one job already waiting for it: no room.
    assert!(!lanes.has_room(P, 0, 1, 4));
    let mut busy = with_lane(1, 100);
    assert!(matches!(
        busy.take(P, U256::from(1), room(1)),
        Take::Ready(_)
    ));
    // Busy, but another lane may be opened...
    assert!(busy.has_room(P, 0, 0, 2));
    // ...not past max_lanes, nor while one is opening.
    assert!(!busy.has_room(P, 0, 0, 1));
    assert!(!busy.has_room(P, 1, 0, 2));
    // No lane at all to a provider: one may be opened.
    assert!(busy.has_room(Q, 0, 0, 1));
}

#[test]
fn closing_goes_retire_then_close_then_finalize() {
    let mut lanes = with_lane(1, 100);
    assert!(lanes.to_close().is_empty(), "a live lane is not closed");
    lanes.retire(ch(1));
    assert_eq!(lanes.to_close(), vec![ch(1)]);
    lanes.set_closes_at(ch(1), Some(50));
    assert!(lanes.to_close().is_empty(), "a close already started");
    assert!(lanes.to_finalize(50).is_empty(), "not before its time");
    assert_eq!(lanes.to_finalize(51), vec![ch(1)]);
    lanes.mark_closed(ch(1));
    assert!(lanes.to_finalize(51).is_empty());
}

#[test]
fn per_provider_counts_hold_until_dropped() {
    let counts = PerProvider::default();
    {
        let _a = counts.hold(P);
        let _b = counts.hold(P);
        counts.add(Q);
        assert_eq!((counts.of(P), counts.of(Q), counts.total()), (2, 1, 3));
    }
    assert_eq!((counts.of(P), counts.total()), (0, 1));
    counts.sub(Q);
    counts.sub(Q);
    assert_eq!(counts.total(), 0);
}

#[test]
fn a_restored_lanes_payment_rides_with_the_next_job_to_its_provider() {
    let mut lanes = Lanes::default();
    lanes.restore(restored_paying(1, 7, 40), Instant::now());
    // Its peer is not known: it does not go alone, and does not keep the carry loop awake.
    let (due, left) = lanes.due_payments(Duration::ZERO, Instant::now() + Duration::from_secs(1));
    assert!(due.is_empty() && !left);
    assert_eq!(lanes.peerless(), vec![(ch(1), P)]);
    // Waiting on it, the lane is not closed before the provider has it.
    lanes.retire(ch(1));
    assert!(lanes.to_close().is_empty());
    let mut lanes = Lanes::default();
    lanes.restore(restored_paying(1, 7, 40), Instant::now());
    // The next job takes the lane where the payment ends it, and the payment with it.
    assert_eq!(
        lanes.take(P, U256::from(10), room(1)),
        Take::Ready(Taken {
            channel: ch(1),
            provider: P,
            cumulative_before: U256::from(40u64)
        })
    );
    assert_eq!(lanes.take_pending(ch(1)), Some(payment(1, 7, 40)));
    assert!(lanes.peerless().is_empty());
}

#[test]
fn a_restored_lanes_payment_goes_alone_once_its_provider_is_found() {
    let mut lanes = Lanes::default();
    let t0 = Instant::now();
    lanes.restore(restored_paying(1, 7, 40), t0);
    let peer = PeerId::random();
    assert!(!lanes.found_peer(ch(9), peer), "no such lane");
    assert!(lanes.found_peer(ch(1), peer));
    assert!(!lanes.found_peer(ch(1), peer), "found once");
    let (due, left) = lanes.due_payments(Duration::ZERO, t0);
    assert_eq!(due, vec![(ch(1), peer, payment(1, 7, 40), 0)]);
    assert!(!left);
    // Held while on its way: no job's request overtakes it.
    assert_eq!(lanes.take(P, U256::from(1), room(1)), Take::Wait);
    lanes.release(ch(1), false);
    assert!(matches!(
        lanes.take(P, U256::from(1), room(1)),
        Take::Ready(_)
    ));
}

#[test]
fn a_restored_payment_replaced_by_a_newer_one_goes_alone_to_the_same_provider() {
    let mut lanes = Lanes::default();
    let t0 = Instant::now();
    lanes.restore(restored_paying(1, 7, 40), t0);
    let peer = PeerId::random();
    assert_eq!(
        lanes.leave_payment(ch(1), peer, payment(1, 8, 50), t0),
        Some((payment(1, 7, 40), peer))
    );
    assert_eq!(lanes.take_pending(ch(1)), Some(payment(1, 8, 50)));
}

#[test]
fn a_restored_payment_whose_provider_never_comes_back_retires_its_lane() {
    let mut lanes = Lanes::default();
    let t0 = Instant::now();
    lanes.restore(restored_paying(1, 7, 40), t0);
    lanes.restore(restored_paying(2, 8, 30), t0);
    lanes.restore(restored(3, 20, false), t0);
    assert!(lanes.found_peer(ch(2), PeerId::random()));
    assert_eq!(lanes.give_up_peerless(), vec![ch(1)]);
    assert_eq!(lanes.to_close(), vec![ch(1)]);
    assert_eq!(lanes.take_pending(ch(1)), None);
    // The others go on: the found payment still waits, lane 3 still takes tickets.
    assert_eq!(lanes.first_live(P), Some(ch(2)));
    assert_eq!(lanes.take_pending(ch(2)), Some(payment(2, 8, 30)));
}

#[test]
fn restoring_a_lane_again_never_moves_its_line_back_nor_takes_a_stale_payment() {
    let mut lanes = Lanes::default();
    let t0 = Instant::now();
    lanes.restore(restored(1, 40, false), t0);
    lanes.advance(ch(1), U256::from(60u64), None);
    // A payment ending the line at 40 is older than what was signed since: not taken.
    lanes.restore(restored_paying(1, 7, 40), t0);
    assert_eq!(lanes.take_pending(ch(1)), None);
    assert_eq!(lanes.line(ch(1)).map(|l| l.0), Some(U256::from(60u64)));
    // One ending it where it stands is.
    lanes.restore(restored_paying(1, 8, 60), t0);
    assert_eq!(lanes.take_pending(ch(1)), Some(payment(1, 8, 60)));
}

#[test]
fn a_lane_opened_again_on_an_id_goes_on_from_its_voucher_and_a_vanished_one_is_forgotten() {
    let mut lanes = Lanes::default();
    // An id that had vouchers up to 3 before its open was reorganized out.
    let t = lanes.opened(ch(1), P, U256::from(10), U256::from(3));
    assert_eq!(t.cumulative_before, U256::from(3));
    assert_eq!(lanes.line(ch(1)), Some((U256::from(3), U256::from(10))));
    lanes.forget(ch(1));
    assert!(!lanes.owns(&ch(1)));
    assert!(lanes.summary().is_empty());
    // Its job ending finds no lane: nothing comes back.
    lanes.release(ch(1), false);
    assert!(lanes.summary().is_empty());
}

#[test]
fn a_lane_whose_top_up_vanished_comes_down_to_the_chains_deposit_and_never_up() {
    let mut lanes = with_lane(1, 100);
    lanes.add_deposit(ch(1), U256::from(50u64));
    // The top-up of 50 was reorganized out: the chain holds 100.
    assert_eq!(
        lanes.lower_deposit(ch(1), U256::from(100u64)),
        Some(U256::from(150u64))
    );
    assert_eq!(lanes.line(ch(1)), Some((U256::ZERO, U256::from(100u64))));
    // A chain that shows more (a top-up mined again) does not raise it, nor the same.
    assert_eq!(lanes.lower_deposit(ch(1), U256::from(150u64)), None);
    assert_eq!(lanes.lower_deposit(ch(1), U256::from(100u64)), None);
    assert_eq!(lanes.line(ch(1)), Some((U256::ZERO, U256::from(100u64))));
    // A lane the buyer does not have: nothing.
    assert_eq!(lanes.lower_deposit(ch(2), U256::ZERO), None);
}

#[test]
fn a_payment_that_did_not_arrive_waits_on_its_lane_until_its_time_unless_a_newer_one_does() {
    let mut lanes = with_lane(1, 100);
    let peer = PeerId::random();
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(2);
    assert!(lanes.send_again(ch(1), peer, payment(1, 7, 40), 1, later));
    // Not due before its time, but still counted as waiting (the carry loop stays awake).
    let (due, left) = lanes.due_payments(Duration::ZERO, t0);
    assert!(due.is_empty() && left);
    let (due, left) = lanes.due_payments(Duration::ZERO, later);
    assert_eq!(due, vec![(ch(1), peer, payment(1, 7, 40), 1)]);
    assert!(!left);
    lanes.release(ch(1), false);
    // A newer payment waiting there pays its money too: the older is not put back.
    assert!(
        lanes
            .leave_payment(ch(1), peer, payment(1, 8, 50), t0)
            .is_none()
    );
    assert!(!lanes.send_again(ch(1), peer, payment(1, 7, 40), 2, later));
    assert_eq!(lanes.take_pending(ch(1)), Some(payment(1, 8, 50)));
    // Nor on a lane that is gone.
    assert!(!lanes.send_again(ch(9), peer, payment(9, 7, 40), 1, later));
}
