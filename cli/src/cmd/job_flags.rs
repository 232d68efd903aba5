//! What a job is, as flags: one set with one set of defaults, shared by `sietch job run
//! --local` and `sietch job submit`, so that a job tried locally is the job submitted, and
//! runs as a provider runs it (`sietch_node::jobs::run` on the same kind of spec).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use sietch_market::{
    BlobRef, ComputeCapability, GpuNeeds, Input, JobSpec, Limits, Requirements, VerificationPolicy,
};

/// The job's module, arguments, inputs and limits.
#[derive(Debug, Args)]
pub(crate) struct JobFlags {
    /// The module (.wasm, a WASI preview 1 command).
    pub(crate) module: PathBuf,
    /// Arguments passed to the job (it sees `argv[0] == "job"` before them). Flags of
    /// `sietch` may come before or after them; put job arguments that start with `-` after `--`.
    pub(crate) args: Vec<String>,
    /// File whose bytes the job reads on stdin.
    #[arg(long, value_name = "FILE")]
    pub(crate) stdin: Option<PathBuf>,
    /// A file of the job's read-only `/input` directory (repeatable).
    #[arg(long = "input", value_name = "NAME=FILE")]
    pub(crate) inputs: Vec<String>,
    /// An environment variable of the job (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Fuel limit (the billing unit).
    #[arg(long, default_value_t = 1_000_000_000)]
    pub(crate) fuel: u64,
    /// Memory limit in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub(crate) memory: u64,
    /// Wall-clock limit in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub(crate) timeout: f64,
    /// Most bytes of stdout, and of `/output` files together.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub(crate) output_bytes: u64,
    /// The GPUs the job needs.
    #[command(flatten)]
    pub(crate) gpu: GpuFlags,
}

/// What GPUs a job needs: none unless asked (any `--gpu-*` flag alone asks for one).
#[derive(Debug, Args)]
pub(crate) struct GpuFlags {
    /// How many GPUs the provider must have (1 when only another --gpu-* flag is given;
    /// 0: none).
    #[arg(long = "gpus", help_heading = GPU_HEADING, value_name = "N", value_parser = parse_gpus)]
    pub(crate) gpu_count: Option<u8>,
    /// An acceptable GPU model, matched as a case-insensitive part of the driver's name, e.g.
    /// H100 or "RTX 4090" (repeatable: any of them; default: any model).
    #[arg(long = "gpu-model", help_heading = GPU_HEADING, value_name = "NAME", value_parser = parse_model)]
    pub(crate) gpu_models: Vec<String>,
    /// Device memory each GPU must have, e.g. 24GiB, 80GB, 512MiB.
    #[arg(long = "gpu-memory", help_heading = GPU_HEADING, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) gpu_memory: Option<u64>,
    /// The lowest CUDA compute capability accepted, e.g. 8.0 (A100), 8.9 (RTX 4090), 9.0
    /// (H100).
    #[arg(long = "gpu-compute", help_heading = GPU_HEADING, value_name = "MAJOR.MINOR", value_parser = parse_compute)]
    pub(crate) gpu_compute: Option<ComputeCapability>,
}

/// Where `--help` lists the GPU flags.
const GPU_HEADING: &str = "GPU needs (default: no GPU)";

/// The most GPUs a job may ask for (one machine's).
const MAX_GPUS: u8 = 16;

fn parse_gpus(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(n) if n <= MAX_GPUS => Ok(n),
        _ => Err(format!(
            "the number of GPUs is a whole number from 0 to {MAX_GPUS}, e.g. --gpus 1"
        )),
    }
}

fn parse_model(s: &str) -> Result<String, String> {
    let m = s.trim();
    if m.is_empty() {
        return Err("name a model, e.g. --gpu-model H100 (leave the flag out for any)".into());
    }
    if m.len() > sietch_market::offer::MAX_NAME || m.chars().any(char::is_control) {
        return Err(format!(
            "a model is part of a GPU's name, printable and at most {} bytes, e.g. H100",
            sietch_market::offer::MAX_NAME
        ));
    }
    Ok(m.to_owned())
}

/// A size with its unit: `24GiB`, `80GB`, `512MiB`, `1.5TiB`, or bytes (`25769803776`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{unit:?} is not a unit: write the size like 24GiB, 80GB or 512MiB"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write it like 24GiB, 80GB or 512MiB"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    let bytes = bytes as u64;
    if unit.is_empty() && bytes < 1 << 20 {
        return Err(format!(
            "{s} bytes is less than a MiB: give the unit, e.g. {s}GiB"
        ));
    }
    Ok(bytes)
}

/// A compute capability: `8.0`, `9` (9.0) or `sm_86` (8.6).
fn parse_compute(s: &str) -> Result<ComputeCapability, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a CUDA compute capability: write MAJOR.MINOR, e.g. 8.0 (A100) or 9.0 \
             (H100)"
        )
    };
    let (major, minor) = if let Some(sm) = t.strip_prefix("sm_").or_else(|| t.strip_prefix("sm")) {
        // sm_86: the last digit is the minor version.
        if sm.len() < 2 || !sm.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (a, b) = sm.split_at(sm.len() - 1);
        (a, b)
    } else {
        t.split_once('.').unwrap_or((t, "0"))
    };
    match (major.parse::<u8>(), minor.parse::<u8>()) {
        (Ok(a), Ok(b)) => Ok(ComputeCapability::new(a, b)),
        _ => Err(bad()),
    }
}

impl GpuFlags {
    /// The GPU needs the flags give: `None` without any GPU flag or with `--gpus 0`; an
    /// error for `--gpus 0` with another GPU flag.
    pub(crate) fn needs(&self) -> anyhow::Result<Option<GpuNeeds>> {
        let other =
            !self.gpu_models.is_empty() || self.gpu_memory.is_some() || self.gpu_compute.is_some();
        let count = match self.gpu_count {
            Some(0) if other => bail!(
                "--gpus 0 asks for no GPU, but a --gpu-* flag asks for one: drop --gpus 0, or \
                 the --gpu-model/--gpu-memory/--gpu-compute flags"
            ),
            Some(0) => return Ok(None),
            Some(n) => n,
            None if other => 1,
            None => return Ok(None),
        };
        Ok(Some(GpuNeeds {
            count,
            models: self.gpu_models.clone(),
            min_memory_bytes: self.gpu_memory.unwrap_or(0),
            min_compute_capability: self.gpu_compute.unwrap_or(ComputeCapability::new(0, 0)),
        }))
    }
}

/// The GPU needs for people: `1× H100, ≥ 80.0 GiB each, compute capability ≥ 9.0`.
pub(crate) fn describe_gpu(g: &GpuNeeds) -> String {
    let models = if g.models.is_empty() {
        "any model".to_owned()
    } else {
        g.models.join(" or ")
    };
    let mut s = format!("{}× {models}", g.count);
    if g.min_memory_bytes > 0 {
        s.push_str(&format!(
            ", ≥ {:.1} GiB each",
            g.min_memory_bytes as f64 / f64::from(1u32 << 30)
        ));
    }
    if g.min_compute_capability > ComputeCapability::new(0, 0) {
        s.push_str(&format!(
            ", compute capability ≥ {}",
            g.min_compute_capability
        ));
    }
    s
}

/// A job's bytes, read from the files its flags name.
pub(crate) struct JobBytes {
    /// The module.
    pub(crate) module: Vec<u8>,
    /// stdin, if any.
    pub(crate) stdin: Option<Vec<u8>>,
    /// `/input` files by name.
    pub(crate) inputs: BTreeMap<String, Vec<u8>>,
    /// The environment.
    pub(crate) env: Vec<(String, String)>,
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// `NAME=VALUE` split at the first `=`.
pub(crate) fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("{what} must look like NAME=VALUE, got {s:?}"),
    }
}

impl JobFlags {
    /// The wall-clock limit in milliseconds; refuses a limit that is not a positive number.
    pub(crate) fn wall_time_ms(&self) -> anyhow::Result<u64> {
        let ms = self.timeout * 1000.0;
        if !ms.is_finite() || ms < 1.0 || ms > u64::MAX as f64 {
            bail!("--timeout must be a positive number of seconds (at least 0.001)");
        }
        Ok(ms as u64)
    }

    /// The limits a provider runs the job under.
    pub(crate) fn limits(&self) -> anyhow::Result<Limits> {
        Ok(Limits {
            fuel: self.fuel,
            memory_bytes: self.memory,
            wall_time_ms: self.wall_time_ms()?,
            output_bytes: self.output_bytes,
        })
    }

    /// Reads the module, stdin and inputs the flags name.
    pub(crate) fn read(&self) -> anyhow::Result<JobBytes> {
        let module =
            read(&self.module).with_context(|| format!("the module {}", self.module.display()))?;
        let stdin = self.stdin.as_deref().map(read).transpose()?;
        let mut inputs = BTreeMap::new();
        for i in &self.inputs {
            let (name, file) = pair(i, "--input")?;
            let data = read(Path::new(&file)).with_context(|| format!("input {name}"))?;
            if inputs.insert(name.clone(), data).is_some() {
                bail!("--input {name} is given twice");
            }
        }
        let env = self
            .env
            .iter()
            .map(|e| pair(e, "--env"))
            .collect::<anyhow::Result<_>>()?;
        Ok(JobBytes {
            module,
            stdin,
            inputs,
            env,
        })
    }

    /// The job's spec as the market carries it (no price cap or deadline: a local run has
    /// neither), naming `bytes` by hash.
    pub(crate) fn spec(&self, bytes: &JobBytes) -> anyhow::Result<JobSpec> {
        Ok(JobSpec {
            module: BlobRef::of(&bytes.module).hash,
            args: self.args.clone(),
            env: bytes.env.clone(),
            stdin: bytes.stdin.as_deref().map(BlobRef::of),
            inputs: bytes
                .inputs
                .iter()
                .map(|(name, data)| Input {
                    name: name.clone(),
                    blob: BlobRef::of(data),
                })
                .collect(),
            limits: self.limits()?,
            requirements: Requirements {
                gpu: self.gpu.needs()?,
                ..Requirements::default()
            },
            verification: VerificationPolicy::default(),
            price_cap: 0,
            deadline: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        crate::cmd::Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("24GiB"), Ok(24 << 30));
        assert_eq!(parse_size("24 gib"), Ok(24 << 30));
        assert_eq!(parse_size("24G"), Ok(24 << 30));
        assert_eq!(parse_size("80GB"), Ok(80_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5TiB"), Ok(3 << 39));
        assert_eq!(parse_size("25769803776"), Ok(24 << 30));
        assert!(parse_size("24").unwrap_err().contains("24GiB"));
        assert!(parse_size("24XB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1e30GiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn compute_capabilities_read_three_ways() {
        let cc = |a, b| Ok(ComputeCapability::new(a, b));
        assert_eq!(parse_compute("8.0"), cc(8, 0));
        assert_eq!(parse_compute("8.6"), cc(8, 6));
        assert_eq!(parse_compute("9"), cc(9, 0));
        assert_eq!(parse_compute("sm_86"), cc(8, 6));
        assert_eq!(parse_compute("sm90"), cc(9, 0));
        assert_eq!(parse_compute("sm_100"), cc(10, 0));
        for bad in ["eight", "8.x", "sm_", "sm_8", "", "8.0.1", "-1"] {
            assert!(parse_compute(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_gpu_unless_asked() {
        let flags = |count, models: &[&str], memory, compute| GpuFlags {
            gpu_count: count,
            gpu_models: models.iter().map(|m| (*m).to_owned()).collect(),
            gpu_memory: memory,
            gpu_compute: compute,
        };
        assert_eq!(flags(None, &[], None, None).needs().unwrap(), None);
        assert_eq!(flags(Some(0), &[], None, None).needs().unwrap(), None);
        let one = flags(None, &["H100"], None, None).needs().unwrap().unwrap();
        assert_eq!(one.count, 1);
        assert_eq!(one.models, ["H100"]);
        assert_eq!(one.min_compute_capability, ComputeCapability::new(0, 0));
        let two = flags(
            Some(2),
            &[],
            Some(1 << 30),
            Some(ComputeCapability::new(8, 0)),
        )
        .needs()
        .unwrap()
        .unwrap();
        assert_eq!((two.count, two.min_memory_bytes), (2, 1 << 30));
        assert_eq!(
            describe_gpu(&two),
            "2× any model, ≥ 1.0 GiB each, compute capability ≥ 8.0"
        );
        let err = flags(Some(0), &[], Some(1), None).needs().unwrap_err();
        assert!(err.to_string().contains("drop --gpus 0"), "{err}");
        assert!(parse_gpus("17").is_err() && parse_gpus("16") == Ok(16));
        assert!(parse_model("").is_err() && parse_model("a\u{1b}b").is_err());
    }
}
