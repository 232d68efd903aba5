//! Real runs: the wasmtime sandbox behind [`Compute`], with WAT guests and the job's blobs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sietch_market::{B256, BlobRef, Comparison, FloatKind, FloatOutput, JobSpec};
use sietch_sandbox::{JobModule, Sandbox, SandboxConfig};
use sietch_verifier::Outputs;

use super::{Compute, Run, formula_spec};

/// A WAT guest, from this crate's `tests/guests` or, for `sandbox/NAME`, the sandbox's.
pub fn guest(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("sandbox/") {
        Some(n) => root.join("../sandbox/guests").join(format!("{n}.wat")),
        None => root.join("tests/guests").join(format!("{name}.wat")),
    };
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sandbox, the modules it loaded and the blobs jobs name.
pub struct Sandboxed {
    sandbox: Sandbox,
    modules: Mutex<HashMap<B256, JobModule>>,
    blobs: Mutex<HashMap<B256, Vec<u8>>>,
}

impl Sandboxed {
    pub fn new() -> Self {
        let sandbox = Sandbox::new(SandboxConfig {
            max_memory_bytes: 16 << 20,
            max_concurrent_jobs: 4,
            max_module_bytes: 1 << 20,
            ..SandboxConfig::default()
        })
        .unwrap();
        Self {
            sandbox,
            modules: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    /// Loads a module; returns its hash, which specs name.
    pub fn load(&self, wasm: &[u8]) -> B256 {
        let module = self.sandbox.load(wasm).unwrap();
        let hash = B256::from(module.hash());
        self.modules.lock().unwrap().insert(hash, module);
        hash
    }

    /// Stores a blob; returns its reference.
    pub fn put(&self, bytes: Vec<u8>) -> BlobRef {
        let r = BlobRef::of(&bytes);
        self.blobs.lock().unwrap().insert(r.hash, bytes);
        r
    }

    fn blob(&self, r: &BlobRef) -> Vec<u8> {
        self.blobs.lock().unwrap()[&r.hash].clone()
    }

    /// A spec that runs `module` on `stdin`, checked at `sampling_ppm`.
    pub fn spec(&self, module: B256, stdin: Vec<u8>, sampling_ppm: u32) -> JobSpec {
        JobSpec {
            module,
            stdin: Some(self.put(stdin)),
            ..formula_spec(0, sampling_ppm, 1)
        }
    }
}

/// Tolerance mode over the f32 array of `floats.wat`.
pub fn float_tolerance(relative: f64, absolute: f64) -> Comparison {
    Comparison::Tolerance {
        relative,
        absolute,
        outputs: vec![FloatOutput {
            path: "y.f32".into(),
            kind: FloatKind::F32,
        }],
    }
}

impl Compute for Sandboxed {
    fn run(&self, job_id: B256, spec: &JobSpec) -> Run {
        let module = self.modules.lock().unwrap()[&spec.module].clone();
        let output = usize::try_from(spec.limits.output_bytes).unwrap();
        let run = sietch_sandbox::JobSpec {
            job_id: job_id.0,
            args: spec.args.clone(),
            env: spec.env.clone(),
            stdin: spec.stdin.map(|b| self.blob(&b)).unwrap_or_default(),
            inputs: spec
                .inputs
                .iter()
                .map(|i| (i.name.clone(), self.blob(&i.blob)))
                .collect(),
            limits: sietch_sandbox::Limits {
                fuel: spec.limits.fuel,
                memory_bytes: spec.limits.memory_bytes,
                deadline: Duration::from_millis(spec.limits.wall_time_ms),
                stdout_bytes: output,
                output_bytes: output,
                ..sietch_sandbox::Limits::default()
            },
        };
        let report = self.sandbox.run(&module, &run).unwrap();
        let outputs = Outputs {
            outcome: report.outcome,
            stdout: report.stdout,
            files: report.outputs,
        };
        // Every real run: the outputs hash to what the sandbox reported.
        assert_eq!(outputs.hash(), B256::from(report.output_hash));
        Run {
            outputs,
            fuel: report.fuel_used,
        }
    }
}
