//! The API's JSON forms of the protocol's types. Amounts of tokens are strings of decimal
//! digits (they exceed what JSON numbers hold exactly); hashes, ids and addresses are
//! `0x`-prefixed hex; byte contents (stdout, files) are base64.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sietch_market::{
    B256, BlobRef, Canonical, Comparison, ComputeCapability, FloatKind, FloatOutput, GpuNeeds,
    Input, JobSpec, Limits, Requirements, VerificationPolicy,
};

use crate::net::JobResult;

/// A job to submit: what `POST /api/v1/jobs` takes. Blobs (module, stdin, inputs) are named
/// by the hashes `POST /api/v1/blobs` returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSubmission {
    /// blake3 of the WebAssembly module.
    pub module: B256,
    /// Arguments after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables, as `[name, value]` pairs.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// blake3 of standard input, if any.
    #[serde(default)]
    pub stdin: Option<B256>,
    /// Files of `/input`.
    #[serde(default)]
    pub inputs: Vec<InputJson>,
    /// Resource limits.
    #[serde(default)]
    pub limits: LimitsJson,
    /// What the provider must have.
    #[serde(default)]
    pub requirements: RequirementsJson,
    /// Spot-check policy.
    #[serde(default)]
    pub verification: VerificationJson,
    /// Most the job may cost, token base units (decimal string).
    pub price_cap: String,
    /// Seconds from now by which the result must arrive.
    #[serde(default = "default_deadline")]
    pub deadline_secs: u64,
    /// Providers the job must not go to, by EVM address (`0x` and 40 hex digits), at most
    /// [`MAX_AVOID`]: a job submitted again after one of them failed or was slow. Matching
    /// only; not part of the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid: Vec<String>,
}

/// Most providers one job may avoid.
pub const MAX_AVOID: usize = 16;

fn default_deadline() -> u64 {
    600
}

/// A file of `/input`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputJson {
    /// File name.
    pub name: String,
    /// blake3 of its content.
    pub blob: B256,
}

/// Resource limits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsJson {
    /// Fuel (the billing unit).
    pub fuel: u64,
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Wall-clock time, milliseconds.
    pub wall_time_ms: u64,
    /// stdout and `/output` files, bytes (each).
    pub output_bytes: u64,
}

impl Default for LimitsJson {
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 60_000,
            output_bytes: 1 << 20,
        }
    }
}

/// GPU needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GpuJson {
    /// How many.
    pub count: u8,
    /// Acceptable models (substring, case-insensitive); empty: any.
    #[serde(default)]
    pub models: Vec<String>,
    /// Memory per GPU, bytes.
    #[serde(default)]
    pub min_memory_bytes: u64,
    /// Lowest compute capability, `"major.minor"`.
    #[serde(default = "default_cc")]
    pub min_compute_capability: String,
}

fn default_cc() -> String {
    "0.0".into()
}

/// Requirements.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RequirementsJson {
    /// CPU cores.
    pub min_cpu_cores: u16,
    /// Runtime features the offer must list.
    pub features: Vec<String>,
    /// GPUs.
    pub gpu: Option<GpuJson>,
}

impl Default for RequirementsJson {
    fn default() -> Self {
        Self {
            min_cpu_cores: 1,
            features: Vec::new(),
            gpu: None,
        }
    }
}

/// A float array compared within tolerance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FloatOutputJson {
    /// File in `/output`.
    pub path: String,
    /// `f32` or `f64`.
    pub kind: String,
}

/// Spot-check policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationJson {
    /// Sampling rate, parts per million (100000 = 10%).
    pub sampling_ppm: u32,
    /// Re-runs of a sampled job.
    pub reruns: u8,
    /// `exact`, `tolerance` with the bounds and arrays below, or `rescore` with `margin`.
    pub comparison: String,
    /// Tolerance: largest relative difference.
    pub relative: f64,
    /// Tolerance: largest absolute difference.
    pub absolute: f64,
    /// Tolerance: the arrays compared.
    pub float_outputs: Vec<FloatOutputJson>,
    /// Rescore: largest logit margin accepted (docs/ai.md, "Re-scoring a generation");
    /// finite, above 0, at most [`MAX_RESCORE_MARGIN`] (0.1 is what docs/ai.md measured).
    pub margin: f64,
}

/// The largest rescore margin a submission may ask for (what the inference guest takes).
pub const MAX_RESCORE_MARGIN: f64 = sietch_verifier::rescore::MAX_MARGIN;

impl Default for VerificationJson {
    fn default() -> Self {
        Self {
            sampling_ppm: 100_000,
            reruns: 1,
            comparison: "exact".into(),
            relative: 0.0,
            absolute: 0.0,
            float_outputs: Vec::new(),
            margin: 0.0,
        }
    }
}

/// Why a submission cannot become a spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A field is out of range or malformed.
    #[error("{field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// A blob it names was never uploaded.
    #[error("blob {0} is not on this node: upload it with POST /api/v1/blobs first")]
    MissingBlob(B256),
    /// The list of providers to avoid is too long or names something that is not an EVM
    /// address.
    #[error("avoid: {0}")]
    Avoid(String),
    /// An input's name breaks the protocol's rule for file names, or repeats another's.
    #[error(
        "inputs[{index}]: the name {name} {why}; input names are flat, printable and at most 255 bytes"
    )]
    InputName {
        /// Which input.
        index: usize,
        /// The name, quoted and escaped.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Most the node handles of a token amount: what the escrow's deposits and prices hold.
pub const MAX_AMOUNT: u128 = u128::MAX;

/// Why a token amount was refused ([`parse_amount`]); `shown` is the text given, cut to 80
/// characters, quoted and escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Nothing was given.
    #[error("empty; write a whole number of token base units in decimal digits")]
    Empty,
    /// Something other than decimal digits.
    #[error(
        "{shown} is not a whole number of token base units in decimal digits (no sign, no 0x, \
         no spaces)"
    )]
    NotDigits {
        /// The text given, as shown.
        shown: String,
    },
    /// Over [`MAX_AMOUNT`].
    #[error(
        "{shown} is over the most this node handles ({} base units)",
        MAX_AMOUNT
    )]
    TooLarge {
        /// The text given, as shown.
        shown: String,
    },
}

/// A token amount in base units: decimal digits only (no sign, no `0x`, no spaces), at most
/// [`MAX_AMOUNT`]; `Err` says what is wrong.
pub fn parse_amount(s: &str) -> Result<u128, AmountError> {
    let shown = || {
        let cut: String = s.chars().take(80).collect();
        format!("{:?}", sietch_market::printable(&cut))
    };
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotDigits { shown: shown() });
    }
    s.parse::<u128>()
        .map_err(|_| AmountError::TooLarge { shown: shown() })
}

/// Arguments and environment, in bytes, that the sandbox takes at most.
const MAX_ARGS_ENV_BYTES: usize = 1 << 20;
/// Linear memory a job may ask for at most (wasm32 addresses 4 GiB).
const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// What a provider's admission and sandbox would refuse in a spec (with the sizes of its
/// blobs), checked before the node accepts it: a job the API takes can run.
fn check_runnable(
    sub: &JobSubmission,
    stdin_bytes: u64,
    input_bytes: u64,
) -> Result<(), SpecError> {
    let mut seen = std::collections::BTreeSet::new();
    for (index, input) in sub.inputs.iter().enumerate() {
        let name = || {
            let cut: String = input.name.chars().take(80).collect();
            format!("{:?}", sietch_market::printable(&cut))
        };
        if let Err(e) = sietch_market::check_file_name(&input.name) {
            return Err(SpecError::InputName {
                index,
                name: name(),
                why: format!("is refused: {e}"),
            });
        }
        if !seen.insert(input.name.as_str()) {
            return Err(SpecError::InputName {
                index,
                name: name(),
                why: "is already the name of another input".into(),
            });
        }
    }
    if sub.inputs.len() > sietch_sandbox::MAX_INPUT_FILES {
        return Err(invalid(
            "inputs",
            format!("over {} files", sietch_sandbox::MAX_INPUT_FILES),
        ));
    }
    let most_input = sietch_sandbox::SandboxConfig::default().max_input_bytes as u64;
    if stdin_bytes.saturating_add(input_bytes) > most_input {
        return Err(invalid(
            "inputs",
            format!(
                "stdin and inputs hold {} bytes; a provider's sandbox takes at most {most_input}",
                stdin_bytes.saturating_add(input_bytes)
            ),
        ));
    }
    if sub.args.iter().any(|a| a.contains('\0')) {
        return Err(invalid("args", "an argument contains NUL"));
    }
    if let Some((k, _)) = sub
        .env
        .iter()
        .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
    {
        return Err(invalid(
            "env",
            format!(
                "{:?}: a variable's name must be non-empty, without `=` or NUL, and its value \
                 without NUL",
                sietch_market::printable(&k.chars().take(80).collect::<String>())
            ),
        ));
    }
    let strings: usize = sub
        .args
        .iter()
        .chain(sub.env.iter().flat_map(|(k, v)| [k, v]))
        .map(|s| s.len() + 1)
        .sum();
    if strings > MAX_ARGS_ENV_BYTES {
        return Err(invalid(
            "args",
            format!("arguments and environment hold {strings} bytes, over 1 MiB"),
        ));
    }
    let l = &sub.limits;
    if l.memory_bytes > MAX_MEMORY_BYTES {
        return Err(invalid(
            "limits.memory_bytes",
            format!(
                "{} is over 4 GiB, all a WebAssembly module can address",
                l.memory_bytes
            ),
        ));
    }
    // A provider refuses a job whose stdout and `/output` together could overflow one
    // result message.
    let most_output = (crate::net::MAX_RESULT / 2 - 64 * 1024) as u64;
    if l.output_bytes > most_output {
        return Err(invalid(
            "limits.output_bytes",
            format!(
                "{} is over {most_output}, the most a result carries (stdout and /output each)",
                l.output_bytes
            ),
        ));
    }
    if l.wall_time_ms == 0 {
        return Err(invalid("limits.wall_time_ms", "must be above 0"));
    }
    if sub.deadline_secs == 0 {
        return Err(invalid("deadline_secs", "must be above 0"));
    }
    Ok(())
}

fn invalid(field: &'static str, why: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field,
        why: why.into(),
    }
}

impl JobSubmission {
    /// The providers to avoid, each once; `Err` names the first entry that is not an EVM
    /// address, or a list over [`MAX_AVOID`].
    pub fn avoided(&self) -> Result<Vec<sietch_market::Address>, SpecError> {
        if self.avoid.len() > MAX_AVOID {
            return Err(SpecError::Avoid(format!(
                "{} providers; a job avoids at most {MAX_AVOID}",
                self.avoid.len()
            )));
        }
        let mut out = Vec::with_capacity(self.avoid.len());
        for (i, a) in self.avoid.iter().enumerate() {
            let hex = a
                .strip_prefix("0x")
                .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            let Some(address) = hex.and_then(|h| h.parse::<sietch_market::Address>().ok()) else {
                let cut: String = a.chars().take(80).collect();
                return Err(SpecError::Avoid(format!(
                    "[{i}] {:?} is not an EVM address (0x and 40 hex digits)",
                    sietch_market::printable(&cut)
                )));
            };
            if !out.contains(&address) {
                out.push(address);
            }
        }
        Ok(out)
    }

    /// The spec, with blob sizes from `size_of` (`None`: not on the node) and the deadline
    /// from `now`.
    pub fn to_spec(
        &self,
        now: u64,
        size_of: impl Fn(&B256) -> Option<u64>,
    ) -> Result<JobSpec, SpecError> {
        let blob = |h: &B256| -> Result<BlobRef, SpecError> {
            Ok(BlobRef {
                hash: *h,
                size: size_of(h).ok_or(SpecError::MissingBlob(*h))?,
            })
        };
        blob(&self.module)?;
        let price_cap =
            parse_amount(&self.price_cap).map_err(|why| invalid("price_cap", why.to_string()))?;
        let stdin_bytes = self
            .stdin
            .as_ref()
            .map(blob)
            .transpose()?
            .map_or(0, |b| b.size);
        let mut input_bytes = 0u64;
        for i in &self.inputs {
            input_bytes = input_bytes.saturating_add(blob(&i.blob)?.size);
        }
        check_runnable(self, stdin_bytes, input_bytes)?;
        let gpu = match &self.requirements.gpu {
            None => None,
            Some(g) => {
                let (major, minor) = g
                    .min_compute_capability
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| {
                        invalid("requirements.gpu.min_compute_capability", "not major.minor")
                    })?;
                Some(GpuNeeds {
                    count: g.count,
                    models: g.models.clone(),
                    min_memory_bytes: g.min_memory_bytes,
                    min_compute_capability: ComputeCapability::new(major, minor),
                })
            }
        };
        let v = &self.verification;
        let comparison = match v.comparison.as_str() {
            "exact" => Comparison::Exact,
            "tolerance" => {
                let bound = |x: f64| x.is_finite() && x >= 0.0;
                if !(bound(v.relative) && bound(v.absolute)) {
                    return Err(invalid(
                        "verification",
                        "relative and absolute bounds must be finite and not negative",
                    ));
                }
                let outputs = v
                    .float_outputs
                    .iter()
                    .map(|o| {
                        Ok(FloatOutput {
                            path: o.path.clone(),
                            kind: match o.kind.as_str() {
                                "f32" => FloatKind::F32,
                                "f64" => FloatKind::F64,
                                _ => {
                                    return Err(invalid(
                                        "verification.float_outputs.kind",
                                        "f32 or f64",
                                    ));
                                }
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Comparison::Tolerance {
                    relative: v.relative,
                    absolute: v.absolute,
                    outputs,
                }
            }
            "rescore" => {
                let m = v.margin;
                if !(m.is_finite() && m > 0.0 && m <= MAX_RESCORE_MARGIN) {
                    return Err(invalid(
                        "verification.margin",
                        format!("a rescore margin is above 0 and at most {MAX_RESCORE_MARGIN}"),
                    ));
                }
                Comparison::Rescore { margin: m }
            }
            other => {
                return Err(invalid(
                    "verification.comparison",
                    format!("{other:?} is not exact, tolerance or rescore"),
                ));
            }
        };
        if v.sampling_ppm > 1_000_000 {
            return Err(invalid("verification.sampling_ppm", "at most 1000000"));
        }
        let spec = JobSpec {
            module: self.module,
            args: self.args.clone(),
            env: self.env.clone(),
            stdin: self.stdin.as_ref().map(blob).transpose()?,
            inputs: self
                .inputs
                .iter()
                .map(|i| {
                    Ok(Input {
                        name: i.name.clone(),
                        blob: blob(&i.blob)?,
                    })
                })
                .collect::<Result<Vec<_>, SpecError>>()?,
            limits: Limits {
                fuel: self.limits.fuel,
                memory_bytes: self.limits.memory_bytes,
                wall_time_ms: self.limits.wall_time_ms,
                output_bytes: self.limits.output_bytes,
            },
            requirements: Requirements {
                min_cpu_cores: self.requirements.min_cpu_cores,
                features: self.requirements.features.clone(),
                gpu,
            },
            verification: VerificationPolicy {
                sampling_ppm: v.sampling_ppm,
                reruns: v.reruns,
                comparison,
            },
            price_cap,
            deadline: now.saturating_add(self.deadline_secs),
        };
        // The canonical encoding's bounds (names, counts, sizes) are the protocol's.
        JobSpec::decode(&spec.encode()).map_err(|e| invalid("job", e.to_string()))?;
        Ok(spec)
    }
}

/// A job's outputs, as the API returns them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputsJson {
    /// How it ended, in words.
    pub outcome: String,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// stdout, base64.
    pub stdout: String,
    /// `/output` files: name → base64 content.
    pub files: std::collections::BTreeMap<String, String>,
    /// The committed output hash.
    pub output_hash: B256,
    /// Fuel used.
    pub fuel_used: u64,
    /// What it cost, token base units.
    pub amount: String,
}

impl OutputsJson {
    /// The JSON form of a result.
    pub fn of(r: &JobResult) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Self {
            outcome: r.outcome.to_string(),
            exit_code: match r.outcome {
                sietch_market::Outcome::Exited { code } => Some(code),
                _ => None,
            },
            stdout: b64(&r.stdout),
            files: r.files.iter().map(|(n, d)| (n.clone(), b64(d))).collect(),
            output_hash: r.commitment.output_hash,
            fuel_used: r.commitment.fuel_used,
            amount: r.commitment.amount.to_string(),
        }
    }
}

/// The output file of a generation job (the inference guest's `/output/completions.jsonl`).
pub const COMPLETIONS_FILE: &str = "completions.jsonl";
/// The inputs a generation job's spec names (the model and the prompts).
pub const GENERATION_INPUTS: [&str; 2] = ["model.gguf", "prompts.jsonl"];
/// Lines of `completions.jsonl` read at most for a summary.
pub const MAX_COMPLETION_LINES: usize = 1000;
/// Characters of the first completion's text a summary keeps.
pub const FIRST_TEXT_CHARS: usize = 200;

/// Whether a spec is a generation job's: its inputs name the model and the prompts.
pub fn is_generation_spec(spec: &sietch_market::JobSpec) -> bool {
    GENERATION_INPUTS
        .iter()
        .all(|n| spec.inputs.iter().any(|i| i.name == *n))
}

/// What a generation job gave, from its `/output` files: `None` when they hold no
/// `completions.jsonl`. Reads at most [`MAX_COMPLETION_LINES`] lines and skips those that are
/// not a completion (a JSON object with whole `prompt_tokens` and `completion_tokens`).
/// `amount` is what the job cost (base units) and `seconds` how long it took: tokens per
/// second are completion tokens over `seconds` (at least 1), the cost per 1,000 tokens is
/// `amount × 1000 / (prompt + completion tokens)` (null for no tokens).
pub fn generation_summary(
    files: &sietch_market::OutputFiles,
    amount: sietch_market::U256,
    seconds: u64,
) -> Option<serde_json::Value> {
    use serde_json::Value;
    let jsonl = files.get(COMPLETIONS_FILE)?;
    let (mut prompts, mut prompt_tokens, mut completion_tokens, mut errors) =
        (0u64, 0u64, 0u64, 0u64);
    let mut first: Option<(String, bool, Value)> = None;
    for line in jsonl.split(|b| *b == b'\n').take(MAX_COMPLETION_LINES) {
        let Ok(Value::Object(c)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let (Some(p), Some(n)) = (
            c.get("prompt_tokens").and_then(Value::as_u64),
            c.get("completion_tokens").and_then(Value::as_u64),
        ) else {
            continue;
        };
        prompts += 1;
        prompt_tokens = prompt_tokens.saturating_add(p);
        completion_tokens = completion_tokens.saturating_add(n);
        let finish = c.get("finish").cloned().unwrap_or(Value::Null);
        if finish == "error" {
            errors += 1;
        }
        if first.is_none() {
            let text = c.get("text").and_then(Value::as_str).unwrap_or_default();
            let cut: String = text.chars().take(FIRST_TEXT_CHARS).collect();
            let truncated = cut.len() < text.len();
            first = Some((cut, truncated, finish));
        }
    }
    let seconds = seconds.max(1);
    let tokens = prompt_tokens.saturating_add(completion_tokens);
    let cost = (tokens > 0).then(|| {
        (amount.saturating_mul(sietch_market::U256::from(1000u32))
            / sietch_market::U256::from(tokens))
        .to_string()
    });
    let (text, truncated, finish) = first.unwrap_or((String::new(), false, Value::Null));
    Some(serde_json::json!({
        "prompts": prompts,
        "errors": errors,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "seconds": seconds,
        "tokens_per_second": completion_tokens as f64 / seconds as f64,
        "cost_per_1k_tokens": cost,
        "first_text": text,
        "first_text_truncated": truncated,
        "first_finish": finish,
    }))
}
