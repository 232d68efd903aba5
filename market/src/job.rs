//! A job: the module to run, its inputs, its limits, what hardware it needs, how it is
//! checked and the most the buyer will pay.

use alloy_primitives::{Address, B256};

use crate::codec::{Canonical, Kind, Reader, Writer};
use crate::error::DecodeError;
use crate::offer::{ComputeCapability, Gpu, MAX_NAME};

/// Most command-line arguments a job may pass.
pub const MAX_ARGS: usize = 1024;
/// Longest argument, environment name or value, in bytes.
pub const MAX_ARG: usize = 4096;
/// Most environment variables a job may set.
pub const MAX_ENV: usize = 256;
/// Most named input files a job may carry.
pub const MAX_INPUTS: usize = 256;
/// Most float arrays a tolerance check may compare.
pub const MAX_FLOAT_OUTPUTS: usize = 64;
/// `sampling_ppm` of a job checked every time.
pub const PPM: u32 = 1_000_000;

/// A content-addressed blob: its blake3 hash and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// blake3 of the bytes.
    pub hash: B256,
    /// Length in bytes.
    pub size: u64,
}

impl BlobRef {
    /// The reference of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hash: B256::from(*blake3::hash(bytes).as_bytes()),
            size: bytes.len() as u64,
        }
    }
}

/// A file the job reads from its read-only `/input` directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input {
    /// File name inside `/input`.
    pub name: String,
    /// Its content.
    pub blob: BlobRef,
}

/// What a run may consume. A run that reaches a limit ends with that outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Wasm fuel, the billing unit.
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time, in milliseconds.
    pub wall_time_ms: u64,
    /// stdout plus `/output` files, in bytes.
    pub output_bytes: u64,
}

/// GPUs a job needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GpuNeeds {
    /// How many GPUs.
    pub count: u8,
    /// Acceptable models (substring match, case-insensitive); empty accepts any model.
    pub models: Vec<String>,
    /// Device memory each GPU must have, in bytes.
    pub min_memory_bytes: u64,
    /// Lowest compute capability accepted.
    pub min_compute_capability: ComputeCapability,
}

impl GpuNeeds {
    /// Whether `gpu` is one of the GPUs this job accepts: memory, compute capability and
    /// model (a case-insensitive substring of one listed model; none listed accepts any).
    pub fn accepts(&self, gpu: &Gpu) -> bool {
        gpu.memory_bytes >= self.min_memory_bytes
            && gpu.compute_capability >= self.min_compute_capability
            && (self.models.is_empty()
                || self
                    .models
                    .iter()
                    .any(|m| contains_ignore_case(&gpu.model, m)))
    }

    /// Whether `gpus` hold at least `count` GPUs this job accepts.
    pub fn fits(&self, gpus: &[Gpu]) -> bool {
        gpus.iter().filter(|g| self.accepts(g)).count() >= usize::from(self.count)
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Hardware and features a provider must offer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Requirements {
    /// CPU cores.
    pub min_cpu_cores: u16,
    /// Runtime features the offer must list, all of them.
    pub features: Vec<String>,
    /// GPUs, if the job uses any.
    pub gpu: Option<GpuNeeds>,
}

/// Element type of a float output array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatKind {
    /// Little-endian IEEE-754 single precision.
    F32,
    /// Little-endian IEEE-754 double precision.
    F64,
}

/// A file in `/output` holding a float array compared within tolerance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FloatOutput {
    /// File name inside `/output`.
    pub path: String,
    /// Element type.
    pub kind: FloatKind,
}

/// How a re-run's result is compared with the original.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// Output hash and fuel must be equal.
    Exact,
    /// The declared float arrays must agree within bounds (GPU floats);
    /// everything else in the output must be equal.
    Tolerance {
        /// Largest relative difference accepted.
        relative: f64,
        /// Largest absolute difference accepted.
        absolute: f64,
        /// The arrays compared within bounds.
        outputs: Vec<FloatOutput>,
    },
    /// A generation job of the inference guest (docs/ai.md, "Re-scoring a generation"): a
    /// re-run does not generate again but re-scores the claimed completions (the guest's
    /// `mode=rescore`, one teacher-forced pass each), and agrees when every claimed token is
    /// within `margin` logits of the model's choice and each completion ends by the stop rule.
    /// For GPU providers whose arithmetic is not the CPU's bit for bit.
    Rescore {
        /// Largest logit margin accepted (finite, not negative).
        margin: f64,
    },
}

// Bounds are finite and not NaN (the decoder refuses anything else), so equality is total.
impl Eq for Comparison {}

impl std::hash::Hash for Comparison {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Self::Exact => 0u8.hash(state),
            Self::Tolerance {
                relative,
                absolute,
                outputs,
            } => {
                1u8.hash(state);
                relative.to_bits().hash(state);
                absolute.to_bits().hash(state);
                outputs.hash(state);
            }
            Self::Rescore { margin } => {
                2u8.hash(state);
                margin.to_bits().hash(state);
            }
        }
    }
}

/// Spot-check policy: how often and how a job is re-run elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerificationPolicy {
    /// Sampling rate `q` in parts per million (100_000 = 10%).
    pub sampling_ppm: u32,
    /// Re-runs `k` of a checked job.
    pub reruns: u8,
    /// How results are compared.
    pub comparison: Comparison,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            sampling_ppm: 100_000,
            reruns: 1,
            comparison: Comparison::Exact,
        }
    }
}

/// Everything that determines a job's result and its terms. Its blake3 hash (the spec
/// hash) is what tickets and result commitments refer to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobSpec {
    /// blake3 of the WebAssembly module.
    pub module: B256,
    /// Command-line arguments (`argv[1..]`).
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Standard input, if any.
    pub stdin: Option<BlobRef>,
    /// Files in `/input`.
    pub inputs: Vec<Input>,
    /// Resource limits.
    pub limits: Limits,
    /// What the provider must have.
    pub requirements: Requirements,
    /// Spot-check policy.
    pub verification: VerificationPolicy,
    /// Most the buyer pays for this job, in token base units: the job's value.
    pub price_cap: u128,
    /// Unix seconds by which the result must arrive.
    pub deadline: u64,
}

impl JobSpec {
    /// The spec hash: blake3 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        B256::from(*blake3::hash(&self.encode()).as_bytes())
    }
}

/// The id of one submission of a spec by a buyer: blake3 of a context string, the
/// buyer's address, its per-buyer nonce and the spec hash. Two submissions of the same
/// spec get different ids, so their tickets and checks never collide.
pub fn job_id(buyer: Address, nonce: u64, spec_hash: B256) -> B256 {
    let mut h = blake3::Hasher::new();
    h.update(b"sietch/v1/job-id\0");
    h.update(buyer.as_slice());
    h.update(&nonce.to_be_bytes());
    h.update(spec_hash.as_slice());
    B256::from(*h.finalize().as_bytes())
}

fn blob(w: &mut Writer, b: &BlobRef) {
    w.b256(&b.hash);
    w.u64(b.size);
}

fn read_blob(r: &mut Reader<'_>) -> Result<BlobRef, DecodeError> {
    Ok(BlobRef {
        hash: r.b256()?,
        size: r.u64()?,
    })
}

fn read_bound(r: &mut Reader<'_>, what: &'static str) -> Result<f64, DecodeError> {
    let v = r.f64(what)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(DecodeError::Invalid {
            what,
            why: "must be finite and not negative",
        })
    }
}

impl Canonical for JobSpec {
    const KIND: Kind = Kind::JobSpec;
    const MAX_SIZE: usize = 256 * 1024;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.module);
        w.count(self.args.len());
        for a in &self.args {
            w.str(a);
        }
        w.count(self.env.len());
        for (k, v) in &self.env {
            w.str(k);
            w.str(v);
        }
        w.option(self.stdin.as_ref(), blob);
        w.count(self.inputs.len());
        for i in &self.inputs {
            w.str(&i.name);
            blob(w, &i.blob);
        }
        let l = &self.limits;
        w.u64(l.fuel);
        w.u64(l.memory_bytes);
        w.u64(l.wall_time_ms);
        w.u64(l.output_bytes);
        let q = &self.requirements;
        w.u16(q.min_cpu_cores);
        w.count(q.features.len());
        for f in &q.features {
            w.str(f);
        }
        w.option(q.gpu.as_ref(), |w, g| {
            w.u8(g.count);
            w.count(g.models.len());
            for m in &g.models {
                w.str(m);
            }
            w.u64(g.min_memory_bytes);
            w.u8(g.min_compute_capability.major);
            w.u8(g.min_compute_capability.minor);
        });
        let v = &self.verification;
        w.u32(v.sampling_ppm);
        w.u8(v.reruns);
        match &v.comparison {
            Comparison::Exact => w.u8(0),
            Comparison::Tolerance {
                relative,
                absolute,
                outputs,
            } => {
                w.u8(1);
                w.f64(*relative);
                w.f64(*absolute);
                w.count(outputs.len());
                for o in outputs {
                    w.str(&o.path);
                    w.u8(match o.kind {
                        FloatKind::F32 => 0,
                        FloatKind::F64 => 1,
                    });
                }
            }
            Comparison::Rescore { margin } => {
                w.u8(2);
                w.f64(*margin);
            }
        }
        w.u128(self.price_cap);
        w.u64(self.deadline);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let module = r.b256()?;
        let args = r.list("args", MAX_ARGS, |r| r.string("arg", MAX_ARG))?;
        let env = r.list("env", MAX_ENV, |r| {
            Ok((
                r.string("env name", MAX_ARG)?,
                r.string("env value", MAX_ARG)?,
            ))
        })?;
        let stdin = r.option("stdin", read_blob)?;
        let inputs = r.list("inputs", MAX_INPUTS, |r| {
            Ok(Input {
                name: r.string("input name", MAX_NAME)?,
                blob: read_blob(r)?,
            })
        })?;
        let limits = Limits {
            fuel: r.u64()?,
            memory_bytes: r.u64()?,
            wall_time_ms: r.u64()?,
            output_bytes: r.u64()?,
        };
        let min_cpu_cores = r.u16()?;
        let features = r.list("features", MAX_NAME, |r| r.string("feature", MAX_NAME))?;
        let gpu = r.option("gpu", |r| {
            Ok(GpuNeeds {
                count: r.u8()?,
                models: r.list("gpu models", 16, |r| r.string("gpu model", MAX_NAME))?,
                min_memory_bytes: r.u64()?,
                min_compute_capability: ComputeCapability::new(r.u8()?, r.u8()?),
            })
        })?;
        let sampling_ppm = r.u32()?;
        if sampling_ppm > PPM {
            return Err(DecodeError::Invalid {
                what: "sampling rate",
                why: "over 100%",
            });
        }
        let reruns = r.u8()?;
        let comparison = match r.u8()? {
            0 => Comparison::Exact,
            1 => Comparison::Tolerance {
                relative: read_bound(r, "relative tolerance")?,
                absolute: read_bound(r, "absolute tolerance")?,
                outputs: r.list("float outputs", MAX_FLOAT_OUTPUTS, |r| {
                    Ok(FloatOutput {
                        path: r.string("float output path", MAX_NAME)?,
                        kind: match r.u8()? {
                            0 => FloatKind::F32,
                            1 => FloatKind::F64,
                            tag => {
                                return Err(DecodeError::BadTag {
                                    what: "float kind",
                                    tag,
                                });
                            }
                        },
                    })
                })?,
            },
            2 => Comparison::Rescore {
                margin: read_bound(r, "rescore margin")?,
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "comparison",
                    tag,
                });
            }
        };
        Ok(Self {
            module,
            args,
            env,
            stdin,
            inputs,
            limits,
            requirements: Requirements {
                min_cpu_cores,
                features,
                gpu,
            },
            verification: VerificationPolicy {
                sampling_ppm,
                reruns,
                comparison,
            },
            price_cap: r.u128()?,
            deadline: r.u64()?,
        })
    }
}
