//! What a job is, as flags: one set with one set of defaults, shared by `sietch job run
//! --local` and `sietch job submit`, so that a job tried locally is the job submitted, and
//! runs as a provider runs it (`sietch_node::jobs::run` on the same kind of spec).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use sietch_market::{BlobRef, Input, JobSpec, Limits, Requirements, VerificationPolicy};

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
            requirements: Requirements::default(),
            verification: VerificationPolicy::default(),
            price_cap: 0,
            deadline: 0,
        })
    }
}
