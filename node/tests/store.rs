//! The node's durable state: every table round-trips and survives a reopen, the voucher rule,
//! job state rules and multi-table updates, schema migrations, and content-addressed blobs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use ed25519_dalek::SigningKey;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sietch_market::{
    Address, B256, Hardware, JobSpec, Limits, Offer, Prices, PublicKey, Requirements,
    ResultCommitment, Signed, Ticket, U256, VerificationPolicy, Voucher, job_id,
};
use sietch_node::store::{
    BlobError, DisputableTicket, EvmSigned, JobRecord, JobState, Migration, NodeKeys, Reputation,
    SCHEMA_VERSION, Schema, Side, Store, StoreError, StoreOptions, VoucherUpdate, blob_hash,
};

const NOW: u64 = 1_700_000_000;

fn spec(n: u64) -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0xab),
        args: vec![format!("job-{n}")],
        env: vec![("K".into(), "V".into())],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 1_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 5_000,
        deadline: NOW + 3_600,
    }
}

fn channel() -> B256 {
    B256::repeat_byte(0xc1)
}

fn provider() -> Address {
    Address::repeat_byte(0x77)
}

/// A job with its spec and ticket, as a buyer stores it when it sends the request.
fn job(n: u64) -> (JobSpec, JobRecord) {
    let spec = spec(n);
    let spec_hash = spec.hash();
    let id = job_id(Address::repeat_byte(0xb0), n, spec_hash);
    let mut record = JobRecord::new(id, spec_hash, provider(), NOW);
    record.ticket = Some(EvmSigned::new(
        Ticket {
            job_id: id,
            spec_hash,
            channel_id: channel(),
            cumulative_before: U256::ZERO,
            max_amount: U256::from(5_000),
            deadline: NOW + 3_600,
            check_commit: B256::repeat_byte(0xcc),
            per_gfuel: 0,
            per_gpu_second: 0,
        },
        [0x11; 65],
    ));
    record.check_secret = Some(B256::repeat_byte(0x5e));
    (spec, record)
}

fn result_for(record: &JobRecord) -> EvmSigned<ResultCommitment> {
    EvmSigned::new(
        ResultCommitment {
            job_id: record.job_id,
            spec_hash: record.spec_hash,
            channel_id: record.ticket.map_or(channel(), |t| t.message.channel_id),
            output_hash: B256::repeat_byte(0x0f),
            fuel_used: 123,
            gpu_millis: 4,
            amount: U256::from(700),
        },
        [0x22; 65],
    )
}

fn voucher(amount: u64, sig: u8) -> EvmSigned<Voucher> {
    EvmSigned::new(
        Voucher {
            channel_id: channel(),
            cumulative_amount: U256::from(amount),
        },
        [sig; 65],
    )
}

fn offer(key: &SigningKey, sequence: u64) -> Signed<Offer> {
    Signed::sign(
        Offer {
            provider: PublicKey::of(key),
            evm_address: provider(),
            hardware: Hardware {
                cpu_cores: 8,
                memory_bytes: 16 << 30,
                gpus: vec![],
            },
            features: vec!["wasi".into()],
            prices: Prices {
                per_gfuel: 1_000,
                per_gpu_second: 0,
            },
            stake: 1_000_000,
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            sequence,
            expires_at: NOW + 600,
            max_input_bytes: 0,
            cached_blobs: vec![],
        },
        key,
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_new_store_is_created_at_the_current_version_and_owner_only() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.opened_at_version(), 0);
    assert_eq!(SCHEMA_VERSION, Schema::current().version());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.opened_at_version(), SCHEMA_VERSION);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("state.redb"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "state.redb holds secret keys");
    }
    assert_eq!(store.modules_dir(), dir.path().join("modules"));
}

#[test]
fn a_data_directory_is_open_in_one_place_at_a_time() {
    let dir = tempdir();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("another process"), "{err}");
}

#[test]
fn node_keys_round_trip_and_are_created_once() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.node_keys().unwrap(), None);
    let first = NodeKeys {
        ed25519: SigningKey::from_bytes(&[1; 32]),
        evm: Some(B256::repeat_byte(2)),
    };
    let second = NodeKeys {
        ed25519: SigningKey::from_bytes(&[3; 32]),
        evm: None,
    };
    assert_eq!(store.init_node_keys(&first).unwrap(), first);
    // A second init keeps the identity the node already has.
    assert_eq!(store.init_node_keys(&second).unwrap(), first);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.node_keys().unwrap(), Some(first.clone()));
    store.replace_node_keys(&second).unwrap();
    assert_eq!(store.node_keys().unwrap(), Some(second));
    // Debug output never shows the secrets.
    let shown = format!("{first:?}");
    assert!(!shown.contains(&hex::encode([1u8; 32])), "{shown}");
    assert!(!shown.contains(&hex::encode([2u8; 32])), "{shown}");
}

#[test]
fn config_round_trips() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    store.set_config("listen", "/ip4/0.0.0.0/tcp/4001").unwrap();
    store.set_config("chain", "31337").unwrap();
    store.set_config("listen", "/ip4/0.0.0.0/tcp/5001").unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.config("listen").unwrap().as_deref(),
        Some("/ip4/0.0.0.0/tcp/5001")
    );
    assert_eq!(
        store.config_entries().unwrap(),
        vec![
            ("chain".to_owned(), "31337".to_owned()),
            ("listen".to_owned(), "/ip4/0.0.0.0/tcp/5001".to_owned()),
        ]
    );
    assert!(store.remove_config("chain").unwrap());
    assert!(!store.remove_config("chain").unwrap());
    assert_eq!(store.config("chain").unwrap(), None);
    let err = store.set_config("k", &"x".repeat(100_000)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
}

#[test]
fn own_offers_round_trip_and_their_sequence_only_grows() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    let pk = PublicKey::of(&key);
    assert_eq!(store.own_offer(&pk).unwrap(), None);
    store.put_own_offer(&offer(&key, 5)).unwrap();
    let err = store.put_own_offer(&offer(&key, 5)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleOfferSequence {
                sequence: 5,
                stored: 5
            }
        ),
        "{err:?}"
    );
    store.put_own_offer(&offer(&key, 6)).unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let own = store.own_offer(&pk).unwrap().unwrap();
    assert_eq!(own.sequence, 6);
    let stored = own.offer.unwrap();
    assert_eq!(stored, offer(&key, 6));
    stored.verify().unwrap();

    store.withdraw_own_offer(&pk, 7).unwrap();
    let own = store.own_offer(&pk).unwrap().unwrap();
    assert_eq!((own.sequence, own.offer), (7, None));
    assert!(store.put_own_offer(&offer(&key, 7)).is_err());
    store.put_own_offer(&offer(&key, 8)).unwrap();
    assert_eq!(store.own_offers().unwrap().len(), 1);
}

#[test]
fn jobs_round_trip_on_both_sides() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec1, buyer1) = job(1);
    let (spec2, buyer2) = job(2);
    store.insert_job(Side::Buyer, &spec1, &buyer1).unwrap();
    store.insert_job(Side::Buyer, &spec2, &buyer2).unwrap();
    // The same job seen from the provider's end is a separate record.
    let mut provider1 = buyer1.clone();
    provider1.counterparty = Address::repeat_byte(0xb0);
    provider1.check_secret = None;
    store
        .insert_job(Side::Provider, &spec1, &provider1)
        .unwrap();
    let err = store.insert_job(Side::Buyer, &spec1, &buyer1).unwrap_err();
    assert!(matches!(err, StoreError::JobExists { .. }), "{err:?}");
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.job(Side::Buyer, &buyer1.job_id).unwrap(),
        Some(buyer1.clone())
    );
    assert_eq!(
        store.job(Side::Provider, &buyer1.job_id).unwrap(),
        Some(provider1)
    );
    assert_eq!(store.job(Side::Provider, &buyer2.job_id).unwrap(), None);
    assert_eq!(store.job_spec(&spec1.hash()).unwrap(), Some(spec1.clone()));
    assert_eq!(store.job_spec(&spec2.hash()).unwrap(), Some(spec2));
    assert_eq!(store.job_count(Side::Buyer).unwrap(), 2);
    assert_eq!(store.job_count(Side::Provider).unwrap(), 1);

    // Paging in job-id order.
    let all = store.jobs(Side::Buyer, None, 10).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].job_id < all[1].job_id);
    let first = store.jobs(Side::Buyer, None, 1).unwrap();
    let rest = store.jobs(Side::Buyer, Some(&first[0].job_id), 10).unwrap();
    assert_eq!([first, rest].concat(), all);

    // A record that does not match its spec, or a ticket for another job, is refused.
    let (_, mut wrong) = job(3);
    wrong.spec_hash = B256::repeat_byte(1);
    let err = store.insert_job(Side::Buyer, &spec1, &wrong).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    let (spec3, mut wrong) = job(3);
    wrong.ticket.as_mut().unwrap().message.job_id = B256::repeat_byte(1);
    let err = store.insert_job(Side::Buyer, &spec3, &wrong).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    assert_eq!(store.job_count(Side::Buyer).unwrap(), 2);
}

#[test]
fn job_states_move_forward_and_results_land_with_their_state() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec, record) = job(1);
    let id = record.job_id;
    store.insert_job(Side::Provider, &spec, &record).unwrap();

    let r = store
        .set_job_state(Side::Provider, &id, JobState::Accepted, "", NOW + 1)
        .unwrap();
    assert_eq!((r.state, r.updated_at), (JobState::Accepted, NOW + 1));
    store
        .set_job_state(Side::Provider, &id, JobState::Running, "", NOW + 2)
        .unwrap();
    // Replayed after a restart: a no-op, not an error.
    store
        .set_job_state(Side::Provider, &id, JobState::Running, "", NOW + 2)
        .unwrap();
    let err = store
        .set_job_state(Side::Provider, &id, JobState::Requested, "", NOW + 3)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateTransition {
                from: JobState::Running,
                to: JobState::Requested,
                ..
            }
        ),
        "{err:?}"
    );

    // A result for another job is refused and leaves the job as it was.
    let mut other = result_for(&record);
    other.message.job_id = B256::repeat_byte(9);
    let err = store
        .record_result(Side::Provider, &id, &other, NOW + 4)
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    // So is one signed for the same job's ticket on another channel.
    let mut elsewhere = result_for(&record);
    elsewhere.message.channel_id = B256::repeat_byte(0xee);
    let err = store
        .record_result(Side::Provider, &id, &elsewhere, NOW + 4)
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    assert_eq!(
        store.job(Side::Provider, &id).unwrap().unwrap().state,
        JobState::Running
    );

    let result = result_for(&record);
    let r = store
        .record_result(Side::Provider, &id, &result, NOW + 5)
        .unwrap();
    assert_eq!((r.state, r.result), (JobState::Done, Some(result)));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let r = store.job(Side::Provider, &id).unwrap().unwrap();
    assert_eq!((r.state, r.result), (JobState::Done, Some(result)));

    let r = store
        .set_job_state(
            Side::Provider,
            &id,
            JobState::Failed,
            "output lost",
            NOW + 6,
        )
        .unwrap();
    assert_eq!(
        (r.state, r.note.as_str()),
        (JobState::Failed, "output lost")
    );
    assert!(
        store
            .set_job_state(Side::Provider, &id, JobState::Paid, "", NOW + 7)
            .is_err(),
        "a failed job stays failed"
    );
    let missing = store
        .set_job_state(Side::Buyer, &id, JobState::Accepted, "", NOW)
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NoSuchJob { .. }),
        "{missing:?}"
    );
}

/// A buyer records a delivery (provider, ticket, result) in one commit; a delivery whose
/// result is for another job writes none of it.
#[test]
fn a_delivery_lands_whole_or_not_at_all() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec, full) = job(7);
    let id = full.job_id;
    let bare = JobRecord::new(id, full.spec_hash, Address::ZERO, NOW);
    store.insert_job(Side::Buyer, &spec, &bare).unwrap();
    let ticket = full.ticket.unwrap();

    let mut other = result_for(&full);
    other.message.job_id = B256::repeat_byte(9);
    let err = store
        .record_delivery(&id, provider(), &ticket, &other, NOW + 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    let r = store.job(Side::Buyer, &id).unwrap().unwrap();
    assert_eq!(
        (r.state, r.counterparty, r.ticket, r.result),
        (JobState::Requested, Address::ZERO, None, None)
    );

    let result = result_for(&full);
    store
        .record_delivery(&id, provider(), &ticket, &result, NOW + 2)
        .unwrap();
    drop(store);
    let r = Store::open(dir.path())
        .unwrap()
        .job(Side::Buyer, &id)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.state, r.counterparty, r.ticket, r.result, r.updated_at),
        (
            JobState::Done,
            provider(),
            Some(ticket),
            Some(result),
            NOW + 2
        )
    );
}

/// A job paid as soon as it is delivered (not sampled) is recorded in one commit:
/// delivery, outputs, payment and the provider's settled count; a refused one writes none
/// of it. A provider's job stored only once it ran carries its result, and a job id is
/// stored once.
#[test]
fn a_job_paid_at_once_lands_whole_or_not_at_all() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec, full) = job(8);
    let id = full.job_id;
    let bare = JobRecord::new(id, full.spec_hash, Address::ZERO, NOW);
    store.insert_job(Side::Buyer, &spec, &bare).unwrap();
    let ticket = full.ticket.unwrap();
    let result = result_for(&full);

    let mut other = result;
    other.message.job_id = B256::repeat_byte(9);
    let err = store
        .finish_job(
            &id,
            provider(),
            &ticket,
            &other,
            b"out",
            &voucher(300, 1),
            NOW + 1,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    let mut elsewhere = voucher(300, 1);
    elsewhere.message.channel_id = B256::repeat_byte(0xee);
    let err = store
        .finish_job(
            &id,
            provider(),
            &ticket,
            &result,
            b"out",
            &elsewhere,
            NOW + 1,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    let r = store.job(Side::Buyer, &id).unwrap().unwrap();
    assert_eq!((r.state, r.result), (JobState::Requested, None));
    assert_eq!(store.job_outputs(&id).unwrap(), None);
    assert_eq!(store.vouchers().unwrap(), vec![]);

    let (r, update) = store
        .finish_job(
            &id,
            provider(),
            &ticket,
            &result,
            b"out",
            &voucher(300, 1),
            NOW + 2,
        )
        .unwrap();
    assert_eq!((r.state, update), (JobState::Paid, VoucherUpdate::Stored));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let r = store.job(Side::Buyer, &id).unwrap().unwrap();
    assert_eq!(
        (r.state, r.counterparty, r.ticket, r.result),
        (JobState::Paid, provider(), Some(ticket), Some(result))
    );
    assert_eq!(store.job_outputs(&id).unwrap(), Some(b"out".to_vec()));
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(300, 1)));

    // The provider's side: stored with its result; then paid by a voucher written in the
    // durable commit of the next job's record (the voucher a job request carried).
    let mut ended = full.clone();
    ended.state = JobState::Done;
    ended.result = Some(result);
    store
        .insert_ended_job(Side::Provider, &spec, &ended)
        .unwrap();
    let err = store
        .insert_ended_job(Side::Provider, &spec, &ended)
        .unwrap_err();
    assert!(matches!(err, StoreError::JobExists { .. }), "{err:?}");
    // Both or neither: a next job that cannot be stored (the same id again) takes its
    // payment down with it.
    let paying = voucher(400, 2);
    let err = store
        .insert_job_paying(
            Side::Provider,
            &spec,
            &ended,
            true,
            Some((&id, &paying, NOW + 3)),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::JobExists { .. }), "{err:?}");
    let r = store.job(Side::Provider, &id).unwrap().unwrap();
    assert_eq!(r.state, JobState::Done);
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(300, 1)));
    let mut next = ended.clone();
    next.job_id = B256::repeat_byte(0x77);
    if let Some(t) = next.ticket.as_mut() {
        t.message.job_id = next.job_id;
    }
    if let Some(r) = next.result.as_mut() {
        r.message.job_id = next.job_id;
    }
    let (r, update) = store
        .insert_job_paying(
            Side::Provider,
            &spec,
            &next,
            true,
            Some((&id, &paying, NOW + 3)),
        )
        .unwrap()
        .unwrap();
    assert_eq!((r.state, update), (JobState::Paid, VoucherUpdate::Stored));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let r = store.job(Side::Provider, &id).unwrap().unwrap();
    assert_eq!((r.state, r.result), (JobState::Paid, Some(result)));
    assert_eq!(store.voucher(&channel()).unwrap(), Some(paying));
    let n = store.job(Side::Provider, &next.job_id).unwrap().unwrap();
    assert_eq!(n.state, JobState::Done);
}

#[test]
fn state_rules() {
    use JobState::*;
    for s in JobState::ALL {
        assert!(s.can_become(s));
    }
    assert!(Requested.can_become(Paid));
    assert!(Done.can_become(Checked));
    assert!(Running.can_become(Failed));
    assert!(Requested.can_become(Refused));
    assert!(!Accepted.can_become(Refused));
    assert!(!Checked.can_become(Done));
    for fin in [Paid, Refused, Failed] {
        for s in JobState::ALL {
            assert_eq!(fin.can_become(s), s == fin, "{fin} -> {s}");
        }
    }
}

#[test]
fn settling_a_job_updates_job_and_voucher_together() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec, record) = job(1);
    let id = record.job_id;
    store.insert_job(Side::Buyer, &spec, &record).unwrap();
    store
        .record_result(Side::Buyer, &id, &result_for(&record), NOW)
        .unwrap();

    // A voucher for another channel is refused, and neither part changes.
    let mut elsewhere = voucher(700, 1);
    elsewhere.message.channel_id = B256::repeat_byte(0xee);
    let err = store
        .settle_job(Side::Buyer, &id, &elsewhere, NOW)
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err:?}");
    assert_eq!(
        store.job(Side::Buyer, &id).unwrap().unwrap().state,
        JobState::Done
    );
    assert_eq!(store.vouchers().unwrap(), vec![]);

    let (r, update) = store
        .settle_job(Side::Buyer, &id, &voucher(700, 1), NOW + 1)
        .unwrap();
    assert_eq!((r.state, update), (JobState::Paid, VoucherUpdate::Stored));
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(700, 1)));

    // Settled again (a replay after a restart): the job stays paid, the voucher stays.
    let (r, update) = store
        .settle_job(Side::Buyer, &id, &voucher(700, 2), NOW + 2)
        .unwrap();
    assert_eq!(update, VoucherUpdate::Kept(voucher(700, 1)));
    assert_eq!((r.state, r.updated_at), (JobState::Paid, NOW + 1));

    // An older voucher through settlement does not overwrite the newer one either.
    let (spec2, record2) = job(2);
    store.insert_job(Side::Buyer, &spec2, &record2).unwrap();
    let (_, update) = store
        .settle_job(Side::Buyer, &record2.job_id, &voucher(600, 3), NOW + 3)
        .unwrap();
    assert_eq!(update, VoucherUpdate::Kept(voucher(700, 1)));
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(700, 1)));

    // The provider side keeps the voucher too.
    store.insert_job(Side::Provider, &spec, &record).unwrap();
    store
        .settle_job(Side::Provider, &id, &voucher(800, 4), NOW + 4)
        .unwrap();
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(800, 4)));
    // Reputation is the buyer's table's to count (`Store::put_reputations`), not the
    // store's.
    assert_eq!(store.reputations().unwrap(), vec![]);
}

#[test]
fn a_check_moves_the_job_once() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let (spec1, r1) = job(1);
    let (spec2, r2) = job(2);
    store.insert_job(Side::Buyer, &spec1, &r1).unwrap();
    store.insert_job(Side::Buyer, &spec2, &r2).unwrap();
    for r in [&r1, &r2] {
        store
            .record_result(Side::Buyer, &r.job_id, &result_for(r), NOW)
            .unwrap();
    }
    let a = store.record_check(&r1.job_id, true, NOW + 1).unwrap();
    assert_eq!(a.state, JobState::Checked);
    // The same outcome recorded twice changes nothing.
    assert_eq!(store.record_check(&r1.job_id, true, NOW + 5).unwrap(), a);
    let b = store.record_check(&r2.job_id, false, NOW + 1).unwrap();
    assert_eq!(b.state, JobState::Failed);
    assert_eq!(b.note, "spot check failed");
    // A failed check cannot be turned into a passed one.
    assert!(store.record_check(&r2.job_id, true, NOW + 2).is_err());
    assert_eq!(store.job(Side::Buyer, &r2.job_id).unwrap().unwrap(), b);
}

#[test]
fn an_older_voucher_never_overwrites_a_newer_one() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.voucher(&channel()).unwrap(), None);
    assert_eq!(
        store.put_voucher(&voucher(10, 1)).unwrap(),
        VoucherUpdate::Stored
    );
    assert_eq!(
        store.put_voucher(&voucher(5, 2)).unwrap(),
        VoucherUpdate::Kept(voucher(10, 1))
    );
    // Equal amount, other signature: the first one stays.
    assert_eq!(
        store.put_voucher(&voucher(10, 3)).unwrap(),
        VoucherUpdate::Kept(voucher(10, 1))
    );
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.voucher(&channel()).unwrap(), Some(voucher(10, 1)));
    assert_eq!(
        store.put_voucher(&voucher(11, 4)).unwrap(),
        VoucherUpdate::Stored
    );

    // In any order of arrival, the stored voucher is the highest seen.
    use rand::{Rng, SeedableRng, seq::SliceRandom};
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut amounts: Vec<u64> = (0..60).map(|_| rng.gen_range(12..10_000)).collect();
    amounts.shuffle(&mut rng);
    let mut max = 11;
    for a in amounts {
        store.put_voucher(&voucher(a, 5)).unwrap();
        max = max.max(a);
        assert_eq!(
            store
                .voucher(&channel())
                .unwrap()
                .unwrap()
                .message
                .cumulative_amount,
            U256::from(max),
            "seed {seed}"
        );
    }
    // Vouchers of other channels are independent.
    let mut other = voucher(1, 6);
    other.message.channel_id = B256::repeat_byte(0xd2);
    assert_eq!(store.put_voucher(&other).unwrap(), VoucherUpdate::Stored);
    assert_eq!(store.vouchers().unwrap().len(), 2);
    // A huge amount, past 64 bits, round-trips.
    let mut huge = voucher(0, 7);
    huge.message.cumulative_amount = U256::MAX;
    store.put_voucher(&huge).unwrap();
    assert_eq!(store.voucher(&channel()).unwrap(), Some(huge));
}

#[test]
fn chain_cursor_and_reputation_round_trip() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.chain_cursor(31337).unwrap(), None);
    store.set_chain_cursor(31337, 120).unwrap();
    store.set_chain_cursor(1, 7).unwrap();
    store.set_chain_cursor(31337, 118).unwrap(); // a reorg may move it back
    let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
    let counted = Reputation {
        settled_jobs: 2,
        checks_passed: 1,
        checks_failed: 1,
        slashes: 1,
        disputes: 1,
    };
    let slashed = Reputation {
        slashes: 1,
        ..Reputation::default()
    };
    store
        .put_reputations(&[(a, counted), (b, slashed)])
        .unwrap();
    // A write that lands late, with older counts, keeps the greater of each counter.
    let older = Reputation {
        settled_jobs: 1,
        checks_passed: 3,
        ..Reputation::default()
    };
    store.put_reputations(&[(a, older)]).unwrap();
    let account = Address::repeat_byte(9);
    store.put_provider_key(&account, &a).unwrap();
    let ticket = B256::repeat_byte(0x33);
    let kept = DisputableTicket {
        job_id: B256::repeat_byte(0x34),
        channel_id: channel(),
        undelivered: false,
    };
    store.put_disputable(&ticket, &kept).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.chain_cursor(31337).unwrap(), Some(118));
    assert_eq!(store.chain_cursor(1).unwrap(), Some(7));
    assert_eq!(
        store.reputation(&a).unwrap(),
        Reputation {
            checks_passed: 3,
            ..counted
        }
    );
    assert_eq!(store.reputations().unwrap().len(), 2);
    assert_eq!(
        store.reputation(&PublicKey([3; 32])).unwrap(),
        Reputation::default()
    );
    assert_eq!(store.provider_keys().unwrap(), vec![(account, a)]);
    assert_eq!(store.disputable(10).unwrap(), vec![(ticket, kept)]);
    assert!(store.remove_disputable(&ticket).unwrap());
    assert_eq!(store.disputable(10).unwrap(), vec![]);
}

// ---- migrations ----

const V2_TABLE: TableDefinition<'_, &str, u64> = TableDefinition::new("test_v2_marker");
const SCHEMA_TABLE: TableDefinition<'_, &str, u64> = TableDefinition::new("schema");

fn to_v2(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut t = tx.open_table(V2_TABLE).map_err(redb::Error::from)?;
    let runs = t
        .get("runs")
        .map_err(redb::Error::from)?
        .map_or(0, |v| v.value());
    t.insert("runs", runs + 1).map_err(redb::Error::from)?;
    Ok(())
}

fn half_then_fail(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    to_v2(tx)?;
    Err(StoreError::Invalid {
        what: "test migration",
        why: "fails on purpose".into(),
    })
}

fn v2() -> StoreOptions {
    StoreOptions::default().schema(Schema::current().then(Migration {
        name: "test: add a marker table",
        apply: to_v2,
    }))
}

fn raw_version_and_runs(dir: &std::path::Path) -> (u64, Option<u64>) {
    let db = redb::Database::open(dir.join("state.redb")).unwrap();
    let tx = db.begin_read().unwrap();
    let version = tx
        .open_table(SCHEMA_TABLE)
        .unwrap()
        .get("version")
        .unwrap()
        .unwrap()
        .value();
    let runs = tx
        .open_table(V2_TABLE)
        .ok()
        .and_then(|t| t.get("runs").unwrap().map(|v| v.value()));
    (version, runs)
}

#[test]
fn an_older_file_is_migrated_once_and_keeps_its_data() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    store.set_config("kept", "yes").unwrap();
    store.set_chain_cursor(1, 99).unwrap();
    drop(store);

    let store = Store::open_with(dir.path(), v2()).unwrap();
    assert_eq!(store.opened_at_version(), SCHEMA_VERSION);
    assert_eq!(store.config("kept").unwrap().as_deref(), Some("yes"));
    assert_eq!(store.chain_cursor(1).unwrap(), Some(99));
    drop(store);
    assert_eq!(
        raw_version_and_runs(dir.path()),
        (SCHEMA_VERSION + 1, Some(1))
    );

    let store = Store::open_with(dir.path(), v2()).unwrap();
    assert_eq!(store.opened_at_version(), SCHEMA_VERSION + 1);
    drop(store);
    assert_eq!(
        raw_version_and_runs(dir.path()),
        (SCHEMA_VERSION + 1, Some(1)),
        "ran once"
    );
}

#[test]
fn a_new_file_runs_every_step() {
    let dir = tempdir();
    let store = Store::open_with(dir.path(), v2()).unwrap();
    assert_eq!(store.opened_at_version(), 0);
    store.set_config("a", "b").unwrap();
    drop(store);
    assert_eq!(
        raw_version_and_runs(dir.path()),
        (SCHEMA_VERSION + 1, Some(1))
    );
}

#[test]
fn a_newer_file_is_refused_with_the_versions() {
    let dir = tempdir();
    drop(Store::open_with(dir.path(), v2()).unwrap());
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found,
                supported,
                ..
            } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)) && msg.contains("newer"),
        "{msg}"
    );
    // Refusing did not touch the file.
    assert_eq!(
        raw_version_and_runs(dir.path()),
        (SCHEMA_VERSION + 1, Some(1))
    );
}

#[test]
fn a_failed_migration_leaves_the_file_as_it_was() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    store.set_config("kept", "yes").unwrap();
    drop(store);
    let failing = StoreOptions::default().schema(Schema::current().then(Migration {
        name: "test: fails half way",
        apply: half_then_fail,
    }));
    let err = Store::open_with(dir.path(), failing).unwrap_err();
    assert!(
        matches!(err, StoreError::Migration { from, .. } if from == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("fails on purpose"), "{err}");
    assert_eq!(
        raw_version_and_runs(dir.path()),
        (SCHEMA_VERSION, None),
        "nothing half-done"
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.config("kept").unwrap().as_deref(), Some("yes"));
}

#[test]
fn an_empty_redb_file_is_version_zero_and_a_foreign_one_is_refused() {
    let empty = tempdir();
    drop(redb::Database::create(empty.path().join("state.redb")).unwrap());
    let store = Store::open(empty.path()).unwrap();
    assert_eq!(store.opened_at_version(), 0);
    drop(store);

    let foreign = tempdir();
    {
        let db = redb::Database::create(foreign.path().join("state.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(V2_TABLE).unwrap().insert("x", 1).unwrap();
        tx.commit().unwrap();
    }
    let err = Store::open(foreign.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
}

#[test]
fn a_damaged_record_is_an_error_not_a_panic() {
    const BUYER_JOBS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("buyer_jobs");
    const VOUCHERS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("vouchers");
    const NODE_KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("node_keys");
    let dir = tempdir();
    drop(Store::open(dir.path()).unwrap());
    {
        let db = redb::Database::open(dir.path().join("state.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(BUYER_JOBS)
            .unwrap()
            .insert(&[1; 32], [1u8, 0, 0].as_slice())
            .unwrap();
        tx.open_table(VOUCHERS)
            .unwrap()
            .insert(&[2; 32], [9u8; 500].as_slice())
            .unwrap();
        tx.open_table(NODE_KEYS)
            .unwrap()
            .insert("node", [2u8, 1].as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    for err in [
        store.job(Side::Buyer, &B256::repeat_byte(1)).unwrap_err(),
        store.jobs(Side::Buyer, None, 10).unwrap_err(),
        store.voucher(&B256::repeat_byte(2)).unwrap_err(),
        store.vouchers().unwrap_err(),
        store.node_keys().unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
    // A write over a damaged row refuses too, rather than guessing.
    let mut on_damaged = voucher(1, 1);
    on_damaged.message.channel_id = B256::repeat_byte(2);
    assert!(matches!(
        store.put_voucher(&on_damaged).unwrap_err(),
        StoreError::Corrupt {
            table: "vouchers",
            ..
        }
    ));
}

// ---- blobs ----

#[test]
fn blobs_round_trip_with_a_size_figure() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let blobs = store.blobs();
    assert_eq!(blobs.total(), (0, 0));
    let a = blobs.put(b"hello").unwrap();
    let b = blobs.put(&[7u8; 10_000]).unwrap();
    assert_eq!(a, blob_hash(b"hello"));
    assert_eq!(blobs.put(b"hello").unwrap(), a, "storing twice is a no-op");
    assert_eq!(blobs.total(), (10_005, 2));
    assert!(blobs.has(&a));
    assert_eq!(blobs.get(&a).unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(blobs.get(&B256::repeat_byte(3)).unwrap(), None);
    assert_eq!(
        blobs.path(&a),
        dir.path().join("blobs").join(hex::encode(a))
    );
    let mut listed = blobs.list().unwrap();
    listed.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(listed, expected);

    let err = blobs.put_expecting(&a, b"not hello").unwrap_err();
    assert!(matches!(err, BlobError::HashMismatch { .. }), "{err:?}");
    blobs.put_expecting(&blob_hash(b"x"), b"x").unwrap();

    assert!(blobs.remove(&b).unwrap());
    assert!(!blobs.remove(&b).unwrap());
    assert!(!blobs.has(&b));
    assert_eq!(blobs.total(), (6, 2));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.blobs().total(), (6, 2), "recounted at open");
}

#[test]
fn a_blob_over_the_bound_is_refused() {
    let dir = tempdir();
    let store =
        Store::open_with(dir.path(), StoreOptions::default().max_blob_bytes(1_000)).unwrap();
    store.blobs().put(&[0u8; 1_000]).unwrap();
    let err = store.blobs().put(&[0u8; 1_001]).unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::TooLarge {
                len: 1_001,
                max: 1_000
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.blobs().total(), (1_000, 1));
}

#[test]
fn a_corrupted_blob_is_reported_and_removed_not_returned() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let blobs = store.blobs();
    let h = blobs.put(&[5u8; 4096]).unwrap();
    let keep = blobs.put(b"intact").unwrap();
    // Flip one byte on disk.
    let path = blobs.path(&h);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let err = blobs.get(&h).unwrap_err();
    match err {
        BlobError::Corrupt { hash, found } => {
            assert_eq!(hash, h);
            assert_eq!(found, blob_hash(&bytes));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!blobs.has(&h), "the corrupt file is gone");
    assert_eq!(blobs.get(&h).unwrap(), None);
    assert_eq!(blobs.total(), (6, 1));
    assert_eq!(blobs.get(&keep).unwrap().as_deref(), Some(&b"intact"[..]));
    // The blob can be fetched and stored again.
    blobs.put(&[5u8; 4096]).unwrap();
    assert_eq!(blobs.get(&h).unwrap().unwrap().len(), 4096);
}

#[test]
fn temporary_files_left_by_a_crash_are_never_blobs_and_are_cleaned_up() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let h = store.blobs().put(b"whole").unwrap();
    drop(store);
    let blob_dir = dir.path().join("blobs");
    let tmp = blob_dir.join(format!(".tmp-{}-1-0", hex::encode(blob_hash(b"half"))));
    std::fs::write(&tmp, b"ha").unwrap();
    std::fs::write(blob_dir.join("not-a-blob.txt"), b"stray").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(!tmp.exists());
    assert_eq!(store.blobs().total(), (5, 1));
    assert_eq!(store.blobs().list().unwrap(), vec![h]);
    assert!(!store.blobs().has(&blob_hash(b"half")));
}

/// Writers on eight threads at once (the node's job path writes from tokio's blocking pool):
/// every write that returned is committed and survives a reopen (each thread's last write
/// is durable), and a write refused by its own checks among the others changes nothing.
#[test]
fn concurrent_writes_all_land_and_a_refused_one_changes_nothing() {
    const THREADS: u8 = 8;
    const JOBS: u64 = 40;
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                let chan = B256::repeat_byte(t + 1);
                for i in 0..JOBS {
                    let n = u64::from(t) * 1_000 + i;
                    let (spec, mut record) = job(n);
                    if let Some(ticket) = record.ticket.as_mut() {
                        ticket.message.channel_id = chan;
                    }
                    store.insert_job(Side::Buyer, &spec, &record).unwrap();
                    // Refused: the job exists. Nothing of it is written.
                    assert!(matches!(
                        store.insert_job(Side::Buyer, &spec, &record),
                        Err(StoreError::JobExists { .. })
                    ));
                    store
                        .record_result(Side::Buyer, &record.job_id, &result_for(&record), NOW + 1)
                        .unwrap();
                    // Refused: a voucher of another channel.
                    let wrong = EvmSigned::new(
                        Voucher {
                            channel_id: B256::repeat_byte(0xee),
                            cumulative_amount: U256::from(i + 1),
                        },
                        [3; 65],
                    );
                    assert!(matches!(
                        store.settle_job(Side::Buyer, &record.job_id, &wrong, NOW + 2),
                        Err(StoreError::Mismatch { .. })
                    ));
                    let v = EvmSigned::new(
                        Voucher {
                            channel_id: chan,
                            cumulative_amount: U256::from(i + 1),
                        },
                        [4; 65],
                    );
                    let (paid, _) = store
                        .settle_job(Side::Buyer, &record.job_id, &v, NOW + 2)
                        .unwrap();
                    assert_eq!(paid.state, JobState::Paid);
                }
            });
        }
    });
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let jobs = store.jobs(Side::Buyer, None, usize::MAX).unwrap();
    assert_eq!(jobs.len(), usize::from(THREADS) * JOBS as usize);
    assert!(
        jobs.iter()
            .all(|r| r.state == JobState::Paid && r.result.is_some())
    );
    for t in 0..THREADS {
        let v = store.voucher(&B256::repeat_byte(t + 1)).unwrap().unwrap();
        assert_eq!(v.message.cumulative_amount, U256::from(JOBS));
    }
    assert_eq!(store.voucher(&B256::repeat_byte(0xee)).unwrap(), None);
}
