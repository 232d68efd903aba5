//! A node killed at any instant restarts with nothing lost (`docs/protocol.md` §7).
//!
//! The test runs its own test binary again as a child (the same test, `--exact`, with
//! [`CHILD_ENV`] set) that commits numbered jobs and blobs in a loop and prints each number
//! once the call that stored it has returned. The parent kills the child with SIGKILL at
//! random moments, reopens the store after each kill and checks that every number the child
//! reported is there and intact, and that nothing half-written is visible: every job has its
//! spec, the paid jobs, the channel's voucher and the provider's settled count agree, and
//! every file under a blob's name hashes to that name. The seed is printed; set
//! `SIETCH_CRASH_SEED` to replay one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sietch_market::{
    Address, B256, JobSpec, Limits, Requirements, ResultCommitment, Ticket, U256,
    VerificationPolicy, Voucher, job_id,
};
use sietch_node::store::{EvmSigned, JobRecord, JobState, Side, Store, StoreError, blob_hash};

/// Set in the child: the data directory to write to.
const CHILD_ENV: &str = "SIETCH_STORE_CRASH_CHILD";
/// This test's name, for `--exact`.
const TEST_NAME: &str = "a_killed_writer_keeps_every_reported_commit_and_nothing_half_written";
/// Starts each report of the child, so reports are told apart from the test harness's own
/// output (which may share a line with the first report).
const MARK: &str = "committed: ";
const NOW: u64 = 1_700_000_000;
const ROUNDS: usize = 10;
/// A child stops by itself after this long, should the parent fail to kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

fn buyer() -> Address {
    Address::repeat_byte(0xb0)
}
fn provider() -> Address {
    Address::repeat_byte(0x77)
}
fn channel() -> B256 {
    B256::repeat_byte(0xc1)
}

fn spec(n: u64) -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(0xab),
        args: vec![format!("{n}")],
        env: vec![],
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

fn job(n: u64) -> JobRecord {
    let spec_hash = spec(n).hash();
    let id = job_id(buyer(), n, spec_hash);
    let mut r = JobRecord::new(id, spec_hash, provider(), NOW);
    r.ticket = Some(EvmSigned::new(
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
    r.check_secret = Some(B256::from(U256::from(n)));
    r
}

fn result(n: u64) -> EvmSigned<ResultCommitment> {
    let r = job(n);
    EvmSigned::new(
        ResultCommitment {
            job_id: r.job_id,
            spec_hash: r.spec_hash,
            channel_id: channel(),
            output_hash: B256::from(U256::from(n)),
            fuel_used: n,
            gpu_millis: 0,
            amount: U256::from(1),
        },
        [0x22; 65],
    )
}

/// Blob `n`: 1 KiB to 4 MiB of bytes that depend on `n`, large enough that kills land in
/// the middle of writes.
fn blob(n: u64) -> Vec<u8> {
    let len = ((n * 7_919) % 4_096 + 1) as usize * 1_024;
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&n.to_be_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The child: commits job `n` (inserted with its spec, given its result, settled with a
/// voucher one higher than the channel's, which also counts in the provider's reputation;
/// in turn by the store's three ways to pay a job), then blob `n`, printing each number
/// after the call returns.
fn child(dir: &Path) -> Result<(), StoreError> {
    let started = Instant::now();
    let store = Store::open(dir)?;
    let mut out = std::io::stdout().lock();
    let mut n = store.job_count(Side::Buyer)?;
    // A job paid the third way: its voucher, written with the next job's record.
    let mut pending: Option<(u64, B256, EvmSigned<Voucher>)> = None;
    while started.elapsed() < CHILD_LIFETIME {
        let record = job(n);
        let paying = pending.take();
        store.insert_job_paying(
            Side::Buyer,
            &spec(n),
            &record,
            paying.is_some(),
            paying.as_ref().map(|(_, id, v)| (id, v, NOW + n)),
        )?;
        if let Some((k, ..)) = paying {
            writeln!(out, "{MARK}job {k}")
                .and_then(|()| out.flush())
                .ok();
        }
        let owed = store
            .voucher(&channel())?
            .map_or(U256::ZERO, |v| v.message.cumulative_amount);
        let voucher = EvmSigned::new(
            Voucher {
                channel_id: channel(),
                cumulative_amount: owed + U256::from(1),
            },
            [0x33; 65],
        );
        // The three ways a job is paid: result then payment; delivery, outputs and
        // payment in one commit; and a payment written in the durable commit of the next
        // job's record (a provider's voucher carried by the next job request).
        match n % 3 {
            0 => {
                store.record_result(Side::Buyer, &record.job_id, &result(n), NOW + n)?;
                store.settle_job(Side::Buyer, &record.job_id, &voucher, NOW + n)?;
            }
            1 => {
                let (ticket, outputs) = (record.ticket.unwrap(), blob(n % 8));
                store.finish_job(
                    &record.job_id,
                    provider(),
                    &ticket,
                    &result(n),
                    &outputs,
                    &voucher,
                    NOW + n,
                )?;
            }
            _ => {
                store.record_result(Side::Buyer, &record.job_id, &result(n), NOW + n)?;
                pending = Some((n, record.job_id, voucher));
            }
        }
        if pending.is_none() {
            writeln!(out, "{MARK}job {n}")
                .and_then(|()| out.flush())
                .ok();
        }

        store.blobs().put(&blob(n))?;
        writeln!(out, "{MARK}blob {n}")
            .and_then(|()| out.flush())
            .ok();
        n += 1;
    }
    Ok(())
}

/// Runs one child, kills it after `delay` (or after its first report when `after_first`),
/// and returns the complete lines it printed.
fn run_and_kill(dir: &Path, delay: Duration, after_first: bool) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child: Child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line cut by the kill has no newline: it was not reported.
            if buf.last() == Some(&b'\n') {
                let line = String::from_utf8_lossy(&buf);
                if let Some(at) = line.find(MARK) {
                    let _ = first_tx.send(());
                    lines.push(line[at + MARK.len()..].trim().to_owned());
                }
            }
        }
        lines
    });
    if after_first {
        // The first report, or give up waiting and kill anyway.
        let _ = first_rx.recv_timeout(Duration::from_secs(20));
    }
    std::thread::sleep(delay);
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 failed");
    let exit = child.wait().unwrap();
    assert!(
        !exit.success(),
        "the child ended by itself before it was killed"
    );
    reader.join().unwrap()
}

/// Every file named like a blob hashes to its name, read straight from the directory
/// before the store gets a chance to clean anything.
fn check_blob_dir(dir: &Path) -> BTreeSet<B256> {
    let mut found = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir.join("blobs")) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with(".tmp-") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            hex::encode(blob_hash(&bytes)),
            name,
            "a file under a blob's name is not that blob ({} bytes)",
            bytes.len()
        );
        found.insert(blob_hash(&bytes));
    }
    found
}

fn numbers(lines: &[String], prefix: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The cross-table invariants of what the child writes; returns the numbers of paid jobs.
fn check_store(store: &Store) -> BTreeSet<u64> {
    let jobs = store.jobs(Side::Buyer, None, usize::MAX).unwrap();
    let mut present = BTreeSet::new();
    let mut paid = BTreeSet::new();
    for record in &jobs {
        // Every job has its spec: the two were inserted together.
        let spec = store
            .job_spec(&record.spec_hash)
            .unwrap()
            .expect("a job without its spec");
        let n: u64 = spec.args[0].parse().unwrap();
        assert_eq!(record.job_id, job(n).job_id);
        assert_eq!(record.ticket, job(n).ticket);
        assert_eq!(record.check_secret, job(n).check_secret);
        match record.state {
            JobState::Requested => assert_eq!(record.result, None),
            JobState::Done => assert_eq!(record.result, Some(result(n))),
            JobState::Paid => {
                assert_eq!(record.result, Some(result(n)));
                if n % 3 == 1 {
                    // Paid in the commit that kept the outputs.
                    assert_eq!(
                        store.job_outputs(&record.job_id).unwrap(),
                        Some(blob(n % 8))
                    );
                }
                paid.insert(n);
            }
            other => panic!("job {n} in unexpected state {other}"),
        }
        present.insert(n);
    }
    // The child works in order, so the jobs are 0..k.
    assert_eq!(
        present,
        (0..jobs.len() as u64).collect(),
        "jobs are not a prefix"
    );
    // Paid job and voucher were written together, so they agree exactly.
    let owed = store
        .voucher(&channel())
        .unwrap()
        .map_or(U256::ZERO, |v| v.message.cumulative_amount);
    assert_eq!(owed, U256::from(paid.len()), "voucher vs paid jobs");
    paid
}

#[test]
fn a_killed_writer_keeps_every_reported_commit_and_nothing_half_written() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        if let Err(e) = child(Path::new(&dir)) {
            panic!("child failed: {e}");
        }
        return;
    }

    let seed: u64 = std::env::var("SIETCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (SIETCH_CRASH_SEED={seed} to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("data");

    let mut reported_jobs = BTreeSet::new();
    let mut reported_blobs = BTreeSet::new();
    // Rounds whose kill cut a blob write short (a temporary file was left), for the log.
    let mut cut_blobs = 0;
    for round in 0..ROUNDS {
        // Half the kills land anywhere, opening and migrating included; the other half
        // once the loop is running.
        let after_first = round % 2 == 1;
        let delay = Duration::from_millis(rng.gen_range(0..400));
        let lines = run_and_kill(&dir, delay, after_first);
        reported_jobs.extend(numbers(&lines, "job "));
        reported_blobs.extend(numbers(&lines, "blob "));

        let on_disk = check_blob_dir(&dir);
        let cut_blob = std::fs::read_dir(dir.join("blobs")).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tmp-")))
        });
        cut_blobs += usize::from(cut_blob);
        for n in &reported_blobs {
            assert!(
                on_disk.contains(&blob_hash(&blob(*n))),
                "seed {seed}: blob {n} was reported stored and is gone"
            );
        }

        let store = Store::open(&dir).unwrap();
        let paid = check_store(&store);
        for n in &reported_jobs {
            assert!(
                paid.contains(n),
                "seed {seed}: job {n} was reported committed and is not"
            );
        }
        for n in &reported_blobs {
            assert_eq!(
                store.blobs().get(&blob_hash(&blob(*n))).unwrap(),
                Some(blob(*n))
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "left after reopening: {leftovers:?}");
        let (bytes, count) = store.blobs().total();
        assert_eq!(count, on_disk.len() as u64);
        assert!(bytes >= reported_blobs.len() as u64 * 1_024);
        eprintln!(
            "round {round}: {} jobs and {} blobs reported so far, {} jobs paid; \
             {cut_blobs} kills so far cut a blob write",
            reported_jobs.len(),
            reported_blobs.len(),
            paid.len()
        );
    }
    assert!(
        !reported_jobs.is_empty() && !reported_blobs.is_empty(),
        "seed {seed}: the child never got to commit anything; the test proved nothing"
    );
}
