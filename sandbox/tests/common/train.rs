//! The training guest (`guests/train`, docs/training.md) for the tests: its builds, made with
//! `guests/train/build.sh` and cached by the sources' hash; a job run by either build on the
//! same inputs and arguments; the weights file; shards, synthetic or from the digits data set.
//! Its test crate also declares `mod common` (the shared build helper).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sietch_sandbox::{JobModule, JobSpec, Limits, Outcome, Sandbox, SandboxConfig};

pub fn train_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/train")
}

/// The guest's two builds (see `guests/train/build.sh`).
pub struct Builds {
    pub dir: PathBuf,
}

impl Builds {
    pub fn native(&self) -> PathBuf {
        self.dir.join("train-native")
    }
    pub fn wasm(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("train.wasm")).unwrap()
    }
}

/// Builds both once per version of the sources (its own and `../llm/mathx.{c,h}`).
pub fn builds() -> Builds {
    let src = train_dir();
    let extra = [src.join("../llm/mathx.c"), src.join("../llm/mathx.h")];
    Builds {
        dir: crate::common::build_guest_once("train", &src, &extra, "train-native"),
    }
}

/// What a run left: its exit code (-1 for any other end), `/output`, stderr, fuel (0 natively).
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub outputs: BTreeMap<String, Vec<u8>>,
    pub stderr: String,
    pub fuel: u64,
    pub wall: Duration,
}

impl Run {
    /// A number in one of the guest's JSON files (one flat object of numbers): None if the
    /// key is missing or null.
    pub fn number(&self, file: &str, key: &str) -> Option<f64> {
        let text = std::str::from_utf8(&self.outputs[file]).unwrap();
        let start = text.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &text[start..];
        rest[..rest.find([',', '}'])?].parse().ok()
    }
}

/// A sandbox like a provider's, small.
pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_memory_bytes: 64 << 20,
        max_concurrent_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

pub const FUEL: u64 = 20_000_000_000;

/// A job of the training guest, inputs by name in `/input`.
pub fn spec(inputs: &[(&str, &[u8])], args: &[&str]) -> JobSpec {
    let mut s = JobSpec {
        job_id: [28; 32],
        args: args.iter().map(|a| a.to_string()).collect(),
        limits: Limits {
            fuel: FUEL,
            memory_bytes: 32 << 20,
            deadline: Duration::from_secs(300),
            ..Limits::default()
        },
        ..JobSpec::default()
    };
    for (name, data) in inputs {
        s.inputs.insert(name.to_string(), data.to_vec());
    }
    s
}

/// The wasm build in the sandbox.
pub fn run_wasm(sb: &Sandbox, m: &JobModule, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let r = sb.run(m, &spec(inputs, args)).unwrap();
    let code = match r.outcome {
        Outcome::Exited { code } => code,
        other => panic!(
            "the job ended {other}: {}",
            String::from_utf8_lossy(&r.stderr)
        ),
    };
    Run {
        code,
        outputs: r.outputs,
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        fuel: r.fuel_used,
        wall: r.wall_time,
    }
}

/// The native build, with `/input` and `/output` under a fresh `$TRAIN_ROOT`.
pub fn run_native(b: &Builds, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("input"), root.path().join("output"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    for (name, data) in inputs {
        std::fs::write(input.join(name), data).unwrap();
    }
    let started = Instant::now();
    let out = Command::new(b.native())
        .args(args)
        .env("TRAIN_ROOT", root.path())
        .output()
        .unwrap();
    let wall = started.elapsed();
    let mut outputs = BTreeMap::new();
    for e in std::fs::read_dir(&output).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        outputs.insert(name, std::fs::read(&p).unwrap());
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        outputs,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        fuel: 0,
        wall,
    }
}

/// A weights or update file (`SWT1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Swt {
    pub dims: Vec<u32>,
    pub params: Vec<f32>,
}

impl Swt {
    pub fn parse(b: &[u8]) -> Swt {
        assert_eq!(&b[..4], b"SWT1");
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let layers = u32_at(4) as usize;
        let dims: Vec<u32> = (0..=layers).map(|i| u32_at(8 + 4 * i)).collect();
        let head = 8 + 4 * (layers + 1);
        let params: Vec<f32> = b[head..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want: usize = dims.windows(2).map(|w| (w[0] * w[1] + w[1]) as usize).sum();
        assert_eq!(params.len(), want, "{} bytes for dims {dims:?}", b.len());
        Swt { dims, params }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = b"SWT1".to_vec();
        b.extend_from_slice(&(self.dims.len() as u32 - 1).to_le_bytes());
        for d in &self.dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        for p in &self.params {
            b.extend_from_slice(&p.to_le_bytes());
        }
        b
    }

    /// These weights plus an update, element by element in f32.
    pub fn plus(&self, update: &Swt) -> Swt {
        assert_eq!(self.dims, update.dims);
        let params = self.params.iter().zip(&update.params).map(|(w, u)| w + u);
        Swt {
            dims: self.dims.clone(),
            params: params.collect(),
        }
    }
}

/// A shard (`SDG1`) of records: d pixels and a label each.
pub fn sdg(d: u32, records: &[(Vec<u8>, u8)]) -> Vec<u8> {
    let mut b = b"SDG1".to_vec();
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    b.extend_from_slice(&d.to_le_bytes());
    for (pixels, label) in records {
        b.extend_from_slice(pixels);
        b.push(*label);
    }
    b
}

/// `n` records of 64 pixels 0..=16 and labels 0..10 from a seed, learnable: each class has its
/// own bright region, with noise.
pub fn synthetic_shard(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let records: Vec<(Vec<u8>, u8)> = (0..n)
        .map(|_| {
            let label = (next() % 10) as u8;
            let pixels = (0..64u32)
                .map(|i| {
                    let bright = i / 6 == u32::from(label);
                    ((next() % 6) + if bright { 11 } else { 0 }) as u8
                })
                .collect();
            (pixels, label)
        })
        .collect();
    sdg(64, &records)
}

/// The digits data set where scripts/digits.sh keeps it (`$SIETCH_MODEL_DIR` or
/// `~/.cache/sietch/models`), or None (the tests that need it print SKIPPED).
pub fn digits_csv() -> Option<PathBuf> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sietch/models")))?;
    let path = dir.join("digits.csv.gz");
    path.is_file().then_some(path)
}

/// Shards of the digits data set made by `guests/train/digits.py` in `out`.
pub fn digits_shards(csv: &Path, out: &Path, shards: u32, holdout: u32, seed: u64) {
    let status = Command::new("python3")
        .arg(train_dir().join("digits.py"))
        .arg("--csv")
        .arg(csv)
        .arg("--out")
        .arg(out)
        .args([
            "--shards",
            &shards.to_string(),
            "--holdout",
            &holdout.to_string(),
        ])
        .args(["--seed", &seed.to_string()])
        .status()
        .expect("python3");
    assert!(status.success(), "digits.py failed");
}
