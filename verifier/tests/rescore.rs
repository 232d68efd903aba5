//! The rescoring comparison (`Comparison::Rescore`, `verifier/src/rescore.rs`, docs/ai.md
//! "Re-scoring a generation") through the whole check, on the real model in real sandboxes: a
//! generation job's re-runs are rescoring jobs derived from its spec and its claimed
//! completions (handed to the executor as blobs), an honest generation passes (also when its
//! provider billed other fuel, as a GPU path does), and a claim with a replaced token is found
//! wrong by a majority of rescoring runs, with evidence.
//!
//! Without the model in the cache (scripts/model.sh) every test prints SKIPPED and passes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sietch_market::{
    B256, BlobRef, Comparison, Input, JobSpec, Limits, Requirements, Ticket, U256,
    VerificationPolicy, job_id,
};
use sietch_sandbox::{JobModule, Sandbox, SandboxConfig};
use sietch_verifier::rescore::{COMPLETIONS, rescore_spec};
use sietch_verifier::{
    Agreement, Check, Decision, Difference, Executor, Job, Outputs, RerunError, RerunRequest,
    RunResult, Verifier, VerifierConfig, new_secret,
};
use support::{BUYER, Behaviour, Compute, NOW, Network, Run};

const MODEL_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const PROMPTS: &str = concat!(
    "{\"prompt\":\"What is the capital of France?\",\"max_tokens\":12}\n",
    "{\"prompt\":\"Write a haiku about the sea.\",\"max_tokens\":8,\"temperature\":0.8,\"top_p\":0.9,\"seed\":7}\n",
);

/// The model's bytes, or None (and SKIPPED printed) when it is not cached.
fn model() -> Option<Vec<u8>> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sietch/models")
        });
    let path = dir.join(MODEL_NAME);
    if path.is_file() {
        Some(std::fs::read(path).unwrap())
    } else {
        println!(
            "SKIPPED: the model {} is not cached (scripts/model.sh)",
            path.display()
        );
        None
    }
}

/// The inference guest's market build (`llm.wasm`), made by its build.sh once per version of
/// its sources.
fn llm_wasm() -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/guests/llm");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut key = blake3::Hasher::new();
    for p in &names {
        key.update(p.file_name().unwrap().to_string_lossy().as_bytes());
        key.update(&std::fs::read(p).unwrap());
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sietch-guests");
    let dir = root.join(format!("verifier-llm-{}", &key.finalize().to_hex()[..16]));
    if !dir.join("llm.wasm").exists() {
        std::fs::create_dir_all(&root).unwrap();
        let tmp = root.join(format!("verifier-llm-tmp{}", std::process::id()));
        let ok = Command::new("bash")
            .arg(src.join("build.sh"))
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "guests/llm/build.sh failed: scripts/setup.sh installs clang"
        );
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    std::fs::read(dir.join("llm.wasm")).unwrap()
}

/// The sandbox with the guest and the blobs jobs name.
struct Llm {
    sandbox: Sandbox,
    module: JobModule,
    blobs: Mutex<HashMap<B256, Arc<[u8]>>>,
}

impl Llm {
    fn new() -> Self {
        let sandbox = Sandbox::new(SandboxConfig {
            max_memory_bytes: 512 << 20,
            max_concurrent_jobs: 2,
            ..SandboxConfig::default()
        })
        .unwrap();
        let module = sandbox.load(&llm_wasm()).unwrap();
        Self {
            sandbox,
            module,
            blobs: Mutex::new(HashMap::new()),
        }
    }

    fn put(&self, bytes: Vec<u8>) -> BlobRef {
        let r = BlobRef::of(&bytes);
        self.blobs.lock().unwrap().insert(r.hash, Arc::from(bytes));
        r
    }
}

impl Compute for Llm {
    fn run(&self, job_id: B256, spec: &JobSpec) -> Run {
        assert_eq!(spec.module, B256::from(self.module.hash()));
        let mut run = sietch_sandbox::JobSpec {
            job_id: job_id.0,
            args: spec.args.clone(),
            limits: sietch_sandbox::Limits {
                fuel: spec.limits.fuel,
                memory_bytes: spec.limits.memory_bytes,
                deadline: Duration::from_millis(spec.limits.wall_time_ms),
                ..sietch_sandbox::Limits::default()
            },
            ..sietch_sandbox::JobSpec::default()
        };
        for i in &spec.inputs {
            let data = self.blobs.lock().unwrap()[&i.blob.hash].clone();
            run.inputs.insert(i.name.clone(), data);
        }
        let report = self.sandbox.run(&self.module, &run).unwrap();
        Run {
            outputs: Outputs {
                outcome: report.outcome,
                stdout: report.stdout,
                files: report.outputs,
            },
            fuel: report.fuel_used,
        }
    }
}

/// The test market's executor, which hands the re-run provider the blobs the verifier derived
/// (as the node puts them in its blob store) and counts them.
struct Market {
    net: Network,
    llm: Arc<Llm>,
    blobs_handed: Mutex<usize>,
}

#[async_trait]
impl Executor for Market {
    async fn rerun(&self, r: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        for b in r.blobs {
            self.llm.put(b.clone());
            *self.blobs_handed.lock().unwrap() += 1;
        }
        self.net.rerun(r).await
    }
}

fn market(llm: Arc<Llm>) -> Market {
    let net = Network::of(vec![Behaviour::Honest; 4], llm.clone(), 21);
    Market {
        net,
        llm,
        blobs_handed: Mutex::new(0),
    }
}

fn generation(llm: &Llm, model: Vec<u8>, comparison: Comparison) -> JobSpec {
    JobSpec {
        module: B256::from(llm.module.hash()),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![
            Input {
                name: "model.gguf".into(),
                blob: llm.put(model),
            },
            Input {
                name: "prompts.jsonl".into(),
                blob: llm.put(PROMPTS.as_bytes().to_vec()),
            },
        ],
        limits: Limits {
            fuel: 2_000_000_000_000,
            memory_bytes: 400 << 20,
            wall_time_ms: 900_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy {
            sampling_ppm: 1_000_000,
            reruns: 1,
            comparison,
        },
        price_cap: 1_000,
        deadline: NOW + 3_600,
    }
}

/// Provider 0 runs `spec` (its run changed by `cheat`), and the buyer checks it.
fn run_and_check(m: &Market, spec: &JobSpec, cheat: impl FnOnce(&mut Run)) -> (Check, Run) {
    let provider = &m.net.providers[0];
    let id = job_id(BUYER, 0, spec.hash());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (secret, commit) = new_secret(&mut rng);
    let ticket = Ticket {
        job_id: id,
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(0xc0),
        cumulative_before: U256::ZERO,
        max_amount: U256::from(spec.price_cap),
        deadline: NOW + 3_600,
        check_commit: commit,
        per_gfuel: 0,
        per_gpu_second: 0,
    };
    let mut run = provider
        .answer(&*m.net.compute, id, spec, Some(&ticket))
        .run;
    cheat(&mut run);
    let result = provider.sign(ticket.channel_id, id, spec, run.clone());
    let job = Job {
        spec,
        ticket: &ticket,
        ticket_signature: None,
        secret,
        provider: &provider.offer,
        result: &result,
    };
    let verifier = Verifier::new(m, support::DOMAIN, VerifierConfig::default());
    let candidates = m.net.offers();
    let check =
        futures::executor::block_on(verifier.check(&job, &candidates, NOW, &mut rng)).unwrap();
    (check, run)
}

fn completions(run: &Run) -> String {
    String::from_utf8(run.outputs.files[COMPLETIONS].clone()).unwrap()
}

#[test]
fn an_honest_generation_passes_its_rescoring_even_billed_otherwise() {
    let Some(model) = model() else { return };
    let llm = Arc::new(Llm::new());
    let m = market(llm.clone());
    let spec = generation(&llm, model, Comparison::Rescore { margin: 0.1 });
    // A GPU path bills other fuel than the CPU's: exact comparison would differ on it.
    let (check, run) = run_and_check(&m, &spec, |r| r.fuel += 12_345);
    let claimed = completions(&run);
    println!("{claimed}{check:?}");
    assert!(claimed.contains("Paris"), "{claimed}");
    assert_eq!(check.decision, Decision::Passed);
    assert_eq!(check.runs.len(), 1);
    // The re-run ran the rescoring job of this spec and claim, with the claim handed over.
    let rescoring = rescore_spec(&spec, 0.1, claimed.as_bytes(), false);
    assert_eq!(check.runs[0].commitment.spec_hash, rescoring.hash());
    assert_ne!(rescoring.hash(), spec.hash());
    assert_eq!(*m.blobs_handed.lock().unwrap(), 1);
    assert!(check.evidence.is_none());
}

#[test]
fn a_replaced_token_is_found_wrong_by_a_majority_with_evidence() {
    let Some(model) = model() else { return };
    let llm = Arc::new(Llm::new());
    let m = market(llm.clone());
    let spec = generation(&llm, model, Comparison::Rescore { margin: 0.1 });
    // Token 3 of the first completion ("France" in "The capital of France is Paris.") replaced
    // by an unlikely one, its line otherwise unchanged.
    let (check, run) = run_and_check(&m, &spec, |r| {
        let text = String::from_utf8(r.outputs.files[COMPLETIONS].clone()).unwrap();
        let at = text.find("\"tokens\":[").unwrap() + 10;
        let ids: Vec<&str> = text[at..].split(',').take(4).collect();
        let (before, third) = (ids[..3].join(","), ids[3]);
        let cheat = text.replacen(
            &format!("[{before},{third},"),
            &format!("[{before},1000,"),
            1,
        );
        assert_ne!(cheat, text);
        r.outputs
            .files
            .insert(COMPLETIONS.into(), cheat.into_bytes());
    });
    println!("{}{check:?}", completions(&run));
    assert_eq!(check.decision, Decision::ProviderWrong);
    assert_eq!(check.runs.len(), 3, "the sample and the escalation");
    for r in &check.runs {
        match &r.agreement {
            Agreement::Differs(Difference::Rescored { verdict }) => assert!(
                verdict.contains("\"failure\":{\"index\":0,\"token\":3,"),
                "{verdict}"
            ),
            other => panic!("{other:?}"),
        }
    }
    let evidence = check.evidence.expect("a provider found wrong has evidence");
    assert!(evidence.tolerance, "compared by outputs");
    assert_eq!(evidence.differing(), 3);
    evidence.verify().unwrap();
}
