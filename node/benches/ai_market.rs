//! The language model through the market (issue 21): `cargo bench -p sietch-node --bench
//! ai_market`. Needs the cached model (`bash scripts/model.sh`, as `sietch_testkit::model`).
//!
//! A real anvil, the escrow, one provider node and a buyer node (the devnet's, in one
//! process: real libp2p on loopback, real sandboxes, real stores on disk, in a temporary
//! directory removed at the end). Each figure has a baseline measured in the same run:
//!
//! - **model transfer:** the first generation job makes the provider fetch the 98 MB model
//!   from the buyer (streamed over `/sietch/blob-stream/1` into its store: hashed on the way,
//!   flushed to disk and published); its `BlobFetched` event gives bytes and milliseconds.
//!   Then the buyer fetches the model back from the provider `AI_MARKET_FETCHES` times
//!   (default 3, median) each way: streamed into memory (`Network::fetch_blob`), streamed
//!   into a store (`fetch_blob_into` and `Blobs::commit`), and chunk by chunk as before
//!   (`fetch_blob_chunked`, `/sietch/blob/1`). Baseline: the same bytes over one plain
//!   loopback TCP connection (tokio, write all, read all into a buffer), median of 3. Goal
//!   ≥ 0.5×. Also one blob request's round trip (a blob the provider lacks), and what bounds
//!   a transfer on this machine, each over the model's bytes on one thread: the cipher
//!   libp2p's noise runs (ring's ChaCha20-Poly1305 in 64,511-byte frames, as snow's ring
//!   resolver: copy, then seal in place; copy, then open in place), blake3, one memcpy.
//! - **first-token latency:** a job of one ChatML prompt with `max_tokens` 1 (sampling 1 ppm,
//!   so not re-run), from `Buyer::submit` to the verified result, after a trivial job has
//!   opened the payment channel: the first (the provider fetches the guest and the model
//!   and compiles the guest: not cached), then `AI_MARKET_JOBS` more (default 5,
//!   the model cached; median). Baseline: the same job run directly in a local
//!   `sietch_sandbox::Sandbox` configured as a provider's (the host-kernel guest
//!   `sietch_guests::LLM`, module compiled and run once beforehand; one run before the
//!   first job and one before each cached job, median), what a provider's run alone takes.
//!
//! CPU time of the whole process over the TCP copies and over the fetches says whether a
//! transfer is bound by round trips or by work per byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sietch_market::*;
use sietch_node::events::NodeEvent;
use sietch_node::net::BlobRequest;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};

#[path = "shared/measure.rs"]
mod measure;
use measure::{cpu_secs, load_average, mb_s, median, num, tcp_copy};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUESTION: &str = "What is the capital of France?";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One prompt, one token; sampled one in a million (not re-run).
fn spec(model: BlobRef, prompts: &[u8]) -> JobSpec {
    JobSpec {
        module: BlobRef::of(sietch_guests::LLM).hash,
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        inputs: vec![
            Input {
                name: sietch_guests::MODEL_INPUT.into(),
                blob: model,
            },
            Input {
                name: sietch_guests::PROMPTS_INPUT.into(),
                blob: BlobRef::of(prompts),
            },
        ],
        limits: Limits {
            fuel: 5_000_000_000,
            memory_bytes: 256 << 20,
            wall_time_ms: 120_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy {
            sampling_ppm: 1,
            ..VerificationPolicy::default()
        },
        // At 1 ppm sampling a provider must stake a million times the job's worth
        // (1,000 tokens on the devnet): at most 0.001 token, far above what it costs at the
        // devnet's price (1,000 base units per 10^9 fuel).
        price_cap: E18 / 1000,
        deadline: now() + 600,
    }
}

/// (prompt tokens, completion tokens, text) of the first completion.
fn first_completion(jsonl: &[u8]) -> (u64, u64, String) {
    let line = jsonl
        .split(|b| *b == b'\n')
        .find(|l| !l.is_empty())
        .expect("no completion");
    let v: serde_json::Value = serde_json::from_slice(line).expect("a completion line");
    (
        v["prompt_tokens"].as_u64().unwrap_or(0),
        v["completion_tokens"].as_u64().unwrap_or(0),
        v["text"].as_str().unwrap_or("").to_owned(),
    )
}

/// What bounds a transfer on this machine, each over `bytes` on one thread, in MB/s.
struct Bounds {
    seal: f64,
    open: f64,
    blake3: f64,
    memcpy: f64,
}

/// The cipher as libp2p's noise runs it (snow's ring resolver), blake3 and one memcpy, each
/// the best of 3 over `bytes`.
fn bounds(bytes: &[u8]) -> Bounds {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    const FRAME: usize = 64_511;
    const TAG: usize = 16;
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap());
    let nonce = |n: u64| {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(b)
    };
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let len = bytes.len() as u64;
    let frames = bytes.len().div_ceil(FRAME);
    let mut sealed = vec![0u8; bytes.len() + frames * TAG];
    let seal = best(&mut || {
        for (i, (plain, out)) in bytes
            .chunks(FRAME)
            .zip(sealed.chunks_mut(FRAME + TAG))
            .enumerate()
        {
            let (body, tag) = out.split_at_mut(plain.len());
            body.copy_from_slice(plain);
            let t = key
                .seal_in_place_separate_tag(nonce(i as u64), Aad::empty(), body)
                .unwrap();
            tag[..TAG].copy_from_slice(t.as_ref());
        }
    });
    let mut opened = vec![0u8; FRAME + TAG];
    let mut ok = true;
    let open = best(&mut || {
        for (i, frame) in sealed.chunks(FRAME + TAG).enumerate() {
            let buf = &mut opened[..frame.len()];
            buf.copy_from_slice(frame);
            ok &= key
                .open_in_place(nonce(i as u64), Aad::empty(), buf)
                .is_ok();
        }
    });
    assert!(ok, "the cipher did not open what it sealed");
    let mut hash = [0u8; 32];
    let blake = best(&mut || hash = *blake3::hash(bytes).as_bytes());
    std::hint::black_box(hash);
    let mut copy = vec![0u8; bytes.len()];
    let memcpy = best(&mut || copy.copy_from_slice(bytes));
    std::hint::black_box(&copy);
    Bounds {
        seal: mb_s(len, seal),
        open: mb_s(len, open),
        blake3: mb_s(len, blake),
        memcpy: mb_s(len, memcpy),
    }
}

fn main() -> anyhow::Result<()> {
    let jobs = num("AI_MARKET_JOBS", 5).max(1) as usize;
    let fetches = num("AI_MARKET_FETCHES", 3).max(1) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let model_path = sietch_testkit::model::smollm2();
        let model_bytes: Arc<[u8]> = std::fs::read(&model_path)?.into();
        let model = BlobRef::of(&model_bytes);
        let prompts = format!(
            "{}\n",
            serde_json::json!({"prompt": QUESTION, "max_tokens": 1})
        );
        let prompts = prompts.into_bytes();
        println!(
            "ai_market bench: 1 provider, 1 buyer, in one process on loopback; model {} ({} bytes); load average {}",
            model_path.display(),
            model_bytes.len(),
            load_average()
        );

        // Baseline 1: the model over plain loopback TCP.
        let mut tcp = Vec::new();
        let cpu0 = cpu_secs();
        for _ in 0..3 {
            let d = tcp_copy(model_bytes.clone()).await?;
            tcp.push(mb_s(model_bytes.len() as u64, d.as_secs_f64()));
        }
        let tcp_cpu = (cpu_secs() - cpu0) / 3.0;
        let tcp_mb_s = median(&mut tcp);
        eprintln!("baseline: loopback TCP {tcp:.0?} MB/s, load average {}", load_average());

        // Baseline 2: the job in a local sandbox configured as a provider's.
        let cfg = sietch_node::config::NodeConfig::default();
        let sandbox = sietch_sandbox::Sandbox::new(sietch_sandbox::SandboxConfig {
            max_memory_bytes: cfg.max_job_memory_bytes,
            max_concurrent_jobs: cfg.max_concurrent_jobs,
            ..sietch_sandbox::SandboxConfig::default()
        })?;
        let loaded = sandbox.load(sietch_guests::LLM)?;
        let mut inputs = BTreeMap::new();
        inputs.insert(sietch_guests::MODEL_INPUT.to_owned(), model_bytes.clone());
        inputs.insert(
            sietch_guests::PROMPTS_INPUT.to_owned(),
            Arc::<[u8]>::from(prompts.as_slice()),
        );
        let job = sietch_node::jobs::sandbox_job(&spec(model, &prompts), &B256::ZERO, Vec::new(), inputs);
        let mut local = Vec::new();
        let run_local = |local: &mut Vec<f64>| -> anyhow::Result<Vec<u8>> {
            let t = Instant::now();
            let report = sandbox.run(&loaded, &job)?;
            local.push(t.elapsed().as_secs_f64());
            report
                .outputs
                .get(sietch_guests::COMPLETIONS_OUTPUT)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("the local run wrote no completions"))
        };
        // Once to warm up, not counted.
        run_local(&mut Vec::new())?;
        let (prompt_tokens, completion_tokens, text) = first_completion(&run_local(&mut local)?);
        eprintln!(
            "baseline: local sandbox {local:.3?} s, {prompt_tokens} prompt tokens → {text:?}; load average {}",
            load_average()
        );

        // The market.
        let dir = tempfile::tempdir()?;
        let mut net = Devnet::start(DevnetConfig::new(1, dir.path())).await?;
        let (fetched_tx, mut fetched_rx) = tokio::sync::mpsc::unbounded_channel();
        let (_, drained) = tokio::sync::mpsc::channel(1);
        let mut events = std::mem::replace(&mut net.events, drained);
        let model_hash = model.hash;
        tokio::spawn(async move {
            while let Some((who, e)) = events.recv().await {
                if let NodeEvent::BlobFetched { hash, bytes, millis } = e
                    && hash == model_hash
                {
                    let _ = fetched_tx.send((who, bytes, millis));
                }
            }
        });
        let buyer = net.buyer.buyer.clone();
        net.buyer.store.blobs().put(sietch_guests::LLM)?;
        net.buyer.store.blobs().put(&model_bytes)?;
        net.buyer.store.blobs().put(&prompts)?;
        let provider_peer = net.providers[0].net.peer_id();

        // A trivial job first, so that the buyer's payment channel to the provider is open
        // (its opening waits for blocks) and the first generation job measures the model.
        let trivial = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start")))"#,
        )?;
        net.buyer.store.blobs().put(&trivial)?;
        let mut warmup = spec(model, &prompts);
        warmup.module = BlobRef::of(&trivial).hash;
        warmup.inputs.clear();
        warmup.limits.memory_bytes = 1 << 16;
        let t = Instant::now();
        buyer.submit(warmup).await?;
        eprintln!(
            "channel opened with a trivial job in {:.2} s",
            t.elapsed().as_secs_f64()
        );

        // Not cached: the provider fetches the guest and the model and compiles the guest.
        let load_cold = load_average();
        let t = Instant::now();
        let done = buyer.submit(spec(model, &prompts)).await?;
        let cold = t.elapsed();
        let out = done
            .result
            .files
            .get(sietch_guests::COMPLETIONS_OUTPUT)
            .expect("no completions from the market");
        anyhow::ensure!(
            first_completion(out) == (prompt_tokens, completion_tokens, text.clone()),
            "the market's completion differs from the local run's"
        );
        let (who, fetched_bytes, fetched_ms) = fetched_rx
            .try_recv()
            .map_err(|_| anyhow::anyhow!("no provider fetched the model"))?;
        let p2p_job_mb_s = mb_s(fetched_bytes, fetched_ms as f64 / 1e3);
        eprintln!(
            "not cached: {:.3} s (the model fetch {fetched_ms} ms by {who}, {p2p_job_mb_s:.0} MB/s); load average {load_cold}",
            cold.as_secs_f64()
        );

        // Cached, each job after a local run (interleaved, so that the machine's load
        // touches both alike).
        let mut warm = Vec::new();
        for _ in 0..jobs {
            tokio::task::block_in_place(|| run_local(&mut local).map(drop))?;
            let t = Instant::now();
            let done = buyer.submit(spec(model, &prompts)).await?;
            warm.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(done.check.is_none(), "a cached job was sampled");
        }
        anyhow::ensure!(fetched_rx.try_recv().is_err(), "the model was fetched twice");
        let load_warm = load_average();
        eprintln!("cached: {warm:.3?} s, local {local:.3?} s; load average {load_warm}");
        let warm_s = median(&mut warm);
        let local_n = local.len();
        let local_s = median(&mut local);

        // The same transfer the other way, a few times each way: the buyer fetches the model
        // back, streamed into memory, streamed into a store, and chunk by chunk.
        let buyer_net = net.buyer.net.clone();
        let len = model_bytes.len() as u64;
        let mut back = Vec::new();
        let cpu0 = cpu_secs();
        for _ in 0..fetches {
            let t = Instant::now();
            let got = buyer_net.fetch_blob(provider_peer, model.hash, |_, _| {}).await?;
            let d = t.elapsed();
            anyhow::ensure!(got.bytes.len() == model_bytes.len(), "short fetch");
            anyhow::ensure!(got.streamed, "not streamed");
            back.push(mb_s(len, d.as_secs_f64()));
        }
        let back_cpu = (cpu_secs() - cpu0) / fetches as f64;
        let load_fetch = load_average();
        eprintln!("fetch back, streamed into memory: {back:.0?} MB/s; load average {load_fetch}");
        let back_mb_s = median(&mut back);
        let store_dir = tempfile::tempdir()?;
        let store = Arc::new(sietch_node::store::Blobs::open(store_dir.path(), 1 << 30)?);
        let mut stored = Vec::new();
        let cpu0 = cpu_secs();
        for _ in 0..fetches {
            let t = Instant::now();
            let got = buyer_net
                .fetch_blob_into(provider_peer, model.hash, store.writer(&model.hash), |_, _| {})
                .await?;
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.commit(got.sink)).await??;
            let d = t.elapsed();
            stored.push(mb_s(len, d.as_secs_f64()));
            store.remove(&model.hash)?;
        }
        let stored_cpu = (cpu_secs() - cpu0) / fetches as f64;
        eprintln!("fetch back, streamed into a store: {stored:.0?} MB/s");
        let stored_mb_s = median(&mut stored);
        let mut chunked = Vec::new();
        let cpu0 = cpu_secs();
        for _ in 0..fetches {
            let t = Instant::now();
            let got = buyer_net
                .fetch_blob_chunked(provider_peer, model.hash, |_, _| {})
                .await?;
            let d = t.elapsed();
            anyhow::ensure!(got.bytes.len() == model_bytes.len(), "short fetch");
            chunked.push(mb_s(len, d.as_secs_f64()));
        }
        let chunked_cpu = (cpu_secs() - cpu0) / fetches as f64;
        eprintln!("fetch back, chunk by chunk: {chunked:.0?} MB/s");
        let chunked_mb_s = median(&mut chunked);
        let bound = tokio::task::block_in_place(|| bounds(&model_bytes));
        // One request's round trip (a blob the provider lacks).
        let mut rtts = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let _ = buyer_net
                .blob_chunk(
                    provider_peer,
                    BlobRequest {
                        hash: B256::repeat_byte(9),
                        offset: 0,
                        max_len: 1,
                    },
                )
                .await;
            rtts.push(t.elapsed().as_secs_f64());
        }
        let rtt = median(&mut rtts);
        let chunk = sietch_node::net::NetConfig::default().blob_chunk;
        let chunks = model_bytes.len().div_ceil(chunk as usize);
        drop(buyer_net);
        drop(buyer);
        drop((loaded, sandbox, job));
        net.shutdown().await;
        drop(dir);

        println!("| measure | figure | goal | baseline (same run) | ratio |");
        println!("| --- | ---: | --- | ---: | ---: |");
        let ms = |mb_s: f64| len as f64 / 1e6 / mb_s * 1e3;
        println!(
            "| model transfer, provider ← buyer, the first job's fetch ({fetched_bytes} bytes streamed into its store: hashed, flushed to disk, published) | {p2p_job_mb_s:.0} MB/s ({fetched_ms} ms) | ≥ 0.5× TCP | loopback TCP {tcp_mb_s:.0} MB/s (median of 3; {:.2} s CPU per copy) | {:.2}× |",
            tcp_cpu,
            p2p_job_mb_s / tcp_mb_s
        );
        println!(
            "| model transfer, buyer ← provider, streamed into memory, `fetch_blob` (median of {fetches}) | {back_mb_s:.0} MB/s ({:.0} ms, {back_cpu:.2} s CPU per fetch, both nodes) | ≥ 0.5× TCP | loopback TCP {tcp_mb_s:.0} MB/s | {:.2}× |",
            ms(back_mb_s),
            back_mb_s / tcp_mb_s
        );
        println!(
            "| model transfer, buyer ← provider, streamed into a store, `fetch_blob_into` + `commit` (median of {fetches}) | {stored_mb_s:.0} MB/s ({:.0} ms, {stored_cpu:.2} s CPU) | ≥ 0.5× TCP | loopback TCP {tcp_mb_s:.0} MB/s | {:.2}× |",
            ms(stored_mb_s),
            stored_mb_s / tcp_mb_s
        );
        println!(
            "| model transfer, buyer ← provider, chunk by chunk as before, `fetch_blob_chunked` ({chunks} requests of {} KiB; median of {fetches}) | {chunked_mb_s:.0} MB/s ({:.0} ms, {chunked_cpu:.2} s CPU) | | loopback TCP {tcp_mb_s:.0} MB/s | {:.2}× |",
            chunk / 1024,
            ms(chunked_mb_s),
            chunked_mb_s / tcp_mb_s
        );
        println!(
            "| the cipher alone, one thread: ChaCha20-Poly1305 seal (ring, 64,511-byte frames, copy + seal in place as noise does) | {:.0} MB/s ({:.0} ms) | | | |",
            bound.seal,
            ms(bound.seal)
        );
        println!(
            "| the cipher alone, one thread: open (copy + open in place) | {:.0} MB/s ({:.0} ms) | | | |",
            bound.open,
            ms(bound.open)
        );
        println!(
            "| blake3 over the model, one thread / one memcpy of it | {:.0} MB/s ({:.0} ms) / {:.0} MB/s ({:.0} ms) | | | |",
            bound.blake3,
            ms(bound.blake3),
            bound.memcpy,
            ms(bound.memcpy)
        );
        println!(
            "| one blob request's round trip (median of 50) | {:.2} ms ({:.0} ms over {chunks} chunks) | | | |",
            rtt * 1e3,
            rtt * 1e3 * chunks as f64
        );
        println!(
            "| first token through the market, not cached (first generation job, channel already open: the guest and the model fetched, the guest compiled) | {:.2} s | | the run alone, local sandbox {:.2} s (median of {local_n}, interleaved with the cached jobs) | {:.1}× |",
            cold.as_secs_f64(),
            local_s,
            cold.as_secs_f64() / local_s
        );
        println!(
            "| first token through the market, cached (median of {jobs}) | {warm_s:.2} s | | the run alone {local_s:.2} s | {:.2}× ({:.0} ms over) |",
            warm_s / local_s,
            (warm_s - local_s) * 1e3
        );
        println!(
            "prompt {QUESTION:?} in ChatML: {prompt_tokens} prefill tokens, {completion_tokens} generated ({text:?}); load average now {}",
            load_average()
        );
        Ok(())
    })
}
