//! The C reference, built natively, and the cases it runs: shared by the bit-exactness test
//! (`tests/reference.rs`) and the benchmark (`benches/matmul.rs`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sietch_kernels::{WeightType, shape};

/// The C flags of the reference: what `kernels_ref.c` asks for (no contraction into FMA).
pub const CFLAGS: &[&str] = &["-O2", "-ffp-contract=off"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/ref_harness.c` linked with `sandbox/guests/llm/kernels_ref.c`, compiled natively
/// with clang (cached by sources and flags). Panics with the way to install clang when it is
/// missing.
pub fn harness() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let llm = repo().join("sandbox/guests/llm");
    let sources = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ref_harness.c"),
        llm.join("kernels_ref.c"),
    ];
    let mut key = String::new();
    for p in sources.iter().chain([&llm.join("kernels.h")]) {
        let text = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        key.push_str(&format!("{:016x}", fnv(&text)));
    }
    key.push_str(&format!("{:016x}", fnv(CFLAGS.join(" ").as_bytes())));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sietch-kernels");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("ref_harness-{:016x}", fnv(key.as_bytes())));
    if !out.exists() {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("clang")
            .args(CFLAGS)
            .arg("-I")
            .arg(&llm)
            .args(&sources)
            .arg("-lm")
            .arg("-o")
            .arg(&tmp)
            .status();
        match status {
            Ok(s) if s.success() => std::fs::rename(&tmp, &out).unwrap(),
            other => panic!(
                "could not compile the C reference (tests/ref_harness.c, \
                 sandbox/guests/llm/kernels_ref.c) natively with clang ({other:?}): \
                 install clang with scripts/setup.sh"
            ),
        }
    }
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One product to run: weights and x.
pub struct Case {
    pub wtype: WeightType,
    pub rows: usize,
    pub cols: usize,
    pub n: usize,
    pub w: Vec<u8>,
    pub x: Vec<f32>,
}

impl Case {
    /// The harness's input file format (see `ref_harness.c`).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [
            self.wtype.gguf(),
            self.rows as i32,
            self.cols as i32,
            self.n as i32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.w.len() as u64).to_le_bytes());
        b.extend_from_slice(&self.w);
        for v in &self.x {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The Rust result.
    pub fn rust(&self) -> Vec<f32> {
        let mut y = vec![0.0; self.n * self.rows];
        sietch_kernels::matmul(
            &self.w, self.wtype, self.rows, self.cols, &self.x, self.n, &mut y,
        )
        .unwrap();
        y
    }

    /// Runs the C reference on this case in `dir`; with `iters`, also times it and returns
    /// (best, mean) nanoseconds per call.
    pub fn reference(&self, dir: &Path, iters: u32) -> (Vec<f32>, Option<(f64, f64)>) {
        let input = dir.join("case.bin");
        let output = dir.join("y.bin");
        std::fs::write(&input, self.encode()).unwrap();
        let mut cmd = Command::new(harness());
        cmd.arg(&input).arg(&output);
        if iters > 0 {
            cmd.arg(iters.to_string());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "ref_harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let y = std::fs::read(&output)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let timing = (iters > 0).then(|| {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut it = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        });
        (y, timing)
    }
}

/// A small deterministic generator (xorshift64*), so cases are the same in every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A finite f16: any sign, normal or subnormal (and zero now and then).
    pub fn half(&mut self) -> [u8; 2] {
        let h = self.next() as u16;
        let h = match self.below(8) {
            0 => h & 0x83ff,                             // subnormal or zero
            1 => 0,                                      // zero
            _ if (h >> 10) & 0x1f == 0x1f => h & 0xbfff, // keep it finite
            _ => h,
        };
        h.to_le_bytes()
    }

    /// An x value: zeros, ties on the quantization grid, and large and small magnitudes.
    pub fn x(&mut self) -> f32 {
        let sign = if self.next() & 1 == 0 { 1.0 } else { -1.0 };
        sign * match self.below(10) {
            0 => 0.0,
            1 => (self.below(255) as f32) * 0.5, // k + 0.5 ties when amax is 127
            2 => 127.0,
            3 => f32::from_bits(0x3f80_0000 | (self.next() as u32 & 0x007f_ffff)) * 1e30,
            4 => f32::from_bits(0x3f80_0000 | (self.next() as u32 & 0x007f_ffff)) * 1e-30,
            5 => f32::from_bits(self.next() as u32 & 0x007f_ffff), // subnormal
            _ => (self.next() as u32 as f32 / u32::MAX as f32) * 8.0 - 4.0,
        }
    }

    /// A case shaped like a real model's tensor: every scale a normal half of a model's
    /// magnitude (about 2^-10 to 2^-5; Q4_1 minimums negative), x of activations' size.
    pub fn model_case(&mut self, wtype: WeightType, rows: usize, cols: usize, n: usize) -> Case {
        let mut c = self.case(wtype, rows, cols, n);
        let per = match wtype {
            WeightType::F32 => 0,
            WeightType::Q8_0 => sietch_kernels::Q8_0_BYTES,
            WeightType::Q4_1 => sietch_kernels::Q4_1_BYTES,
        };
        let scale = |rng: &mut Self, sign: u16| -> [u8; 2] {
            let exp = 5 + rng.below(6) as u16; // 2^-10 .. 2^-5
            (sign | (exp << 10) | (rng.next() as u16 & 0x3ff)).to_le_bytes()
        };
        if per > 0 {
            for b in c.w.chunks_exact_mut(per) {
                let d = scale(self, 0);
                b[..2].copy_from_slice(&d);
                if wtype == WeightType::Q4_1 {
                    let m = scale(self, 0x8000);
                    b[2..4].copy_from_slice(&m);
                }
            }
        } else {
            for w in c.w.chunks_exact_mut(4) {
                let v = (self.next() as u32 as f32 / u32::MAX as f32 - 0.5) * 0.1;
                w.copy_from_slice(&v.to_le_bytes());
            }
        }
        for v in &mut c.x {
            *v = (self.next() as u32 as f32 / u32::MAX as f32 - 0.5) * 6.0;
        }
        c
    }

    /// A random case: weights with random finite scales, one all-zero block of x and one
    /// all-zero block of weights.
    pub fn case(&mut self, wtype: WeightType, rows: usize, cols: usize, n: usize) -> Case {
        let s = shape(wtype, rows, cols, n).unwrap();
        let mut w: Vec<u8> = (0..s.weight_bytes).map(|_| self.next() as u8).collect();
        match wtype {
            WeightType::F32 => {
                for c in w.chunks_exact_mut(4) {
                    let v = self.x();
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
            WeightType::Q8_0 => {
                for b in w.chunks_exact_mut(sietch_kernels::Q8_0_BYTES) {
                    let h = self.half();
                    b[..2].copy_from_slice(&h);
                }
            }
            WeightType::Q4_1 => {
                for b in w.chunks_exact_mut(sietch_kernels::Q4_1_BYTES) {
                    let (d, m) = (self.half(), self.half());
                    b[..2].copy_from_slice(&d);
                    b[2..4].copy_from_slice(&m);
                }
            }
        }
        if let Some(b) = w.get_mut(..s.row_bytes.min(34)) {
            b.fill(0);
        }
        let mut x: Vec<f32> = (0..n * cols).map(|_| self.x()).collect();
        // Blocks of one scale: sometimes all tiny, sometimes all zero.
        if cols >= 32 {
            for v in &mut x[..32] {
                *v = 0.0;
            }
        }
        if cols >= 64 {
            // The last vector's second block: all subnormal (with zeros), so d is subnormal
            // and 1 / d overflows: the path where x86-64's conversion to int decides.
            let at = (n - 1) * cols + 32;
            for v in &mut x[at..at + 32] {
                let bits = match self.below(4) {
                    0 => 0,
                    _ => (self.next() as u32 & 0x7fff) | ((self.next() as u32 & 1) << 31),
                };
                *v = f32::from_bits(bits);
            }
        }
        if cols >= 96 && n > 1 {
            for v in &mut x[64..96] {
                *v *= 1e-36;
            }
        }
        Case {
            wtype,
            rows,
            cols,
            n,
            w,
            x,
        }
    }
}
