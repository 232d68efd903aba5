//! The `sietch_kernels` host module: results equal to the `sietch-kernels` crate on the same
//! data, every refusal of the ABI as its errno, fuel charged before the work, determinism.
//! The guest (`guests/kernels_call.wat`) makes one call described by its stdin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::{sandbox, spec, wat};
use sietch_kernels::{Q4_1_BYTES, Q8_0_BYTES, WeightType};
use sietch_sandbox::kernels::KERNEL_MACS_PER_FUEL;
use sietch_sandbox::{JobReport, JobSpec, Outcome};

const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOTSUP: i32 = 58;

/// Where the test puts things in the guest's memory image.
const NAME_AT: usize = 64;
const X_AT: usize = 0x1000;

/// One call's arguments.
#[derive(Clone)]
struct Call {
    fd: i32,
    name: &'static str,
    offset: i64,
    wtype: i32,
    rows: i32,
    cols: i32,
    x: i32,
    n: i32,
    y: i32,
    echo: i32,
    xs: Vec<f32>,
}

impl Call {
    /// A call on the input file "w" with x at `X_AT` and y right after it.
    fn new(wtype: WeightType, rows: usize, cols: usize, n: usize, xs: Vec<f32>) -> Self {
        let y = X_AT + xs.len() * 4;
        Self {
            fd: -1,
            name: "w",
            offset: 0,
            wtype: wtype.gguf(),
            rows: rows as i32,
            cols: cols as i32,
            x: X_AT as i32,
            n: n as i32,
            y: y as i32,
            echo: (rows * n * 4) as i32,
            xs,
        }
    }

    fn stdin(&self) -> Vec<u8> {
        let mut m = vec![0u8; X_AT + self.xs.len() * 4];
        let mut put = |at: usize, b: &[u8]| m[at..at + b.len()].copy_from_slice(b);
        put(0, &self.fd.to_le_bytes());
        put(4, &(NAME_AT as i32).to_le_bytes());
        put(8, &self.offset.to_le_bytes());
        for (at, v) in [
            (16, self.wtype),
            (20, self.rows),
            (24, self.cols),
            (28, self.x),
            (32, self.n),
            (36, self.y),
            (40, self.echo),
            (44, self.name.len() as i32),
        ] {
            put(at, &v.to_le_bytes());
        }
        put(NAME_AT, self.name.as_bytes());
        let xb: Vec<u8> = self.xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        put(X_AT, &xb);
        m
    }
}

fn run_with(call: &Call, weights: &[u8], edit: impl FnOnce(&mut JobSpec)) -> JobReport {
    let sb = sandbox();
    let m = sb.load(&wat("kernels_call")).unwrap();
    let mut s = spec();
    s.stdin = call.stdin();
    s.inputs.insert("w".into(), weights.to_vec());
    s.inputs.insert("other".into(), b"short".to_vec());
    edit(&mut s);
    sb.run(&m, &s).unwrap()
}

/// Runs the call; returns the errno and the echoed y.
fn run(call: &Call, weights: &[u8]) -> (i32, Vec<f32>) {
    let r = run_with(call, weights, |_| {});
    assert_eq!(r.outcome, Outcome::Exited { code: 0 }, "{r:?}");
    let errno = i32::from_le_bytes(r.stdout[..4].try_into().unwrap());
    let y = r.stdout[4..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (errno, y)
}

fn errno(call: &Call, weights: &[u8]) -> i32 {
    run(call, weights).0
}

/// A small generator, so data are the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn f(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 1000.0 - 10.0
    }

    /// Weights of a type with finite, normal scales.
    fn weights(&mut self, t: WeightType, rows: usize, cols: usize) -> Vec<u8> {
        let s = sietch_kernels::shape(t, rows, cols, 1).unwrap();
        let mut w: Vec<u8> = (0..s.weight_bytes).map(|_| self.next() as u8).collect();
        let per = match t {
            WeightType::F32 => {
                for c in w.chunks_exact_mut(4) {
                    let v = self.f();
                    c.copy_from_slice(&v.to_le_bytes());
                }
                return w;
            }
            WeightType::Q4_1 => Q4_1_BYTES,
            WeightType::Q8_0 => Q8_0_BYTES,
        };
        for b in w.chunks_exact_mut(per) {
            b[1] = 0x20 | (b[1] & 0x83); // exponent 8..11: 2^-7 .. 2^-4
            if t == WeightType::Q4_1 {
                b[3] = 0x20 | (b[3] & 0x83);
            }
        }
        w
    }
}

fn expected(t: WeightType, w: &[u8], rows: usize, cols: usize, xs: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0.0; rows * n];
    sietch_kernels::matmul(w, t, rows, cols, xs, n, &mut y).unwrap();
    y
}

#[test]
fn products_equal_the_crate_on_the_same_data() {
    let mut rng = Rng(0x1234_5678);
    for (t, rows, cols, n) in [
        (WeightType::F32, 5, 7, 1),
        (WeightType::F32, 3, 64, 3),
        (WeightType::Q4_1, 16, 64, 1),
        (WeightType::Q4_1, 9, 96, 4),
        (WeightType::Q8_0, 33, 128, 1),
        (WeightType::Q8_0, 8, 32, 5),
    ] {
        // The tensor sits after a 100-byte prefix, as in a GGUF file.
        let mut file = vec![0xee; 100];
        let w = rng.weights(t, rows, cols);
        file.extend_from_slice(&w);
        file.extend_from_slice(&[0xdd; 7]);
        let xs: Vec<f32> = (0..n * cols).map(|_| rng.f()).collect();
        let mut call = Call::new(t, rows, cols, n, xs.clone());
        call.offset = 100;
        let (e, y) = run(&call, &file);
        assert_eq!(e, 0, "{t:?} {rows}x{cols} n={n}");
        let want = expected(t, &w, rows, cols, &xs, n);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&want), "{t:?} {rows}x{cols} n={n}");
    }
}

#[test]
fn every_refusal_is_its_errno() {
    let mut rng = Rng(99);
    let (t, rows, cols) = (WeightType::Q8_0, 4, 64);
    let w = rng.weights(t, rows, cols);
    let base = Call::new(t, rows, cols, 1, vec![1.0; cols]);
    assert_eq!(errno(&base, &w), 0);
    let with = |f: &dyn Fn(&mut Call)| {
        let mut c = base.clone();
        c.echo = 0;
        f(&mut c);
        errno(&c, &w)
    };
    // Descriptors: never opened, stdio, the preopened directories, a closed number.
    assert_eq!(with(&|c| c.fd = 77), EBADF, "unknown fd");
    assert_eq!(with(&|c| c.fd = -5), EBADF, "negative fd");
    assert_eq!(with(&|c| c.fd = 0), EBADF, "stdin");
    assert_eq!(with(&|c| c.fd = 1), EBADF, "stdout");
    assert_eq!(with(&|c| c.fd = 3), EBADF, "the /input directory");
    assert_eq!(with(&|c| c.fd = 4), EBADF, "the /output directory");
    // The tensor must lie inside the file.
    assert_eq!(with(&|c| c.offset = 1), EINVAL, "one byte past the end");
    assert_eq!(with(&|c| c.offset = 1 << 40), EINVAL, "offset past the end");
    assert_eq!(with(&|c| c.offset = -1), EINVAL, "negative offset");
    assert_eq!(
        with(&|c| c.offset = i64::MAX),
        EINVAL,
        "offset + size overflows"
    );
    assert_eq!(
        with(&|c| c.name = "other"),
        EINVAL,
        "a file shorter than the tensor"
    );
    assert_eq!(
        with(&|c| c.rows = 5),
        EINVAL,
        "more rows than the file holds"
    );
    // Shapes.
    assert_eq!(with(&|c| c.rows = 0), EINVAL, "zero rows");
    assert_eq!(with(&|c| c.cols = 0), EINVAL, "zero cols");
    assert_eq!(with(&|c| c.n = 0), EINVAL, "zero n");
    assert_eq!(with(&|c| c.rows = -4), EINVAL, "negative rows");
    assert_eq!(with(&|c| c.cols = -64), EINVAL, "negative cols");
    assert_eq!(with(&|c| c.n = -1), EINVAL, "negative n");
    assert_eq!(with(&|c| c.cols = 48), EINVAL, "cols not whole blocks");
    assert_eq!(
        with(&|c| {
            c.rows = i32::MAX;
            c.cols = i32::MAX - 31;
        }),
        EINVAL,
        "rows * cols overflows or reaches past the file"
    );
    assert_eq!(
        with(&|c| {
            c.wtype = 0;
            c.rows = i32::MAX;
            c.cols = i32::MAX;
            c.n = i32::MAX;
        }),
        EINVAL,
        "rows * cols * n overflows"
    );
    // Types.
    assert_eq!(with(&|c| c.wtype = 1), ENOTSUP, "F16 is not offered");
    assert_eq!(with(&|c| c.wtype = 2), ENOTSUP, "Q4_0 is not offered");
    assert_eq!(with(&|c| c.wtype = -1), ENOTSUP, "negative type");
    // Guest memory (64 pages = 4 MiB).
    assert_eq!(with(&|c| c.x = 0x40_0000 - 100), EFAULT, "x past memory");
    assert_eq!(
        with(&|c| c.x = -4),
        EFAULT,
        "x at the top of the address space"
    );
    assert_eq!(with(&|c| c.y = 0x40_0000 - 8), EFAULT, "y past memory");
    assert_eq!(
        with(&|c| c.y = -1),
        EFAULT,
        "y at the top of the address space"
    );
    assert_eq!(with(&|c| c.y = c.x + 16), EINVAL, "y inside x");
    assert_eq!(
        with(&|c| c.y = c.x - 8),
        EINVAL,
        "y overlapping the start of x"
    );
    assert_eq!(with(&|c| c.y = c.x - 16), 0, "y just before x");
    // The output was not touched by a refused call: y still holds the zeros of stdin.
    let mut c = base.clone();
    c.offset = 1;
    let (e, y) = run(&c, &w);
    assert_eq!((e, y), (EINVAL, vec![0.0; rows]));
}

#[test]
fn fuel_is_charged_for_the_work_before_it() {
    let mut rng = Rng(5);
    let (t, rows, cols) = (WeightType::Q8_0, 256, 512);
    let w = rng.weights(t, rows, cols);
    let fuel = |n: usize| {
        let call = Call::new(t, rows, cols, n, vec![0.5; n * cols]);
        let r = run_with(&call, &w, |_| {});
        assert_eq!(r.outcome, Outcome::Exited { code: 0 });
        r.fuel_used
    };
    // Twice the vectors cost exactly the extra multiply-adds more (the rest of the guest's
    // work differs only in the bytes it reads from stdin and echoes).
    let (one, four) = (fuel(1), fuel(4));
    let macs = (rows * cols * 3) as u64;
    let stdin_and_echo = ((3 * cols * 4) as u64 + (3 * rows * 4) as u64) / 8;
    assert!(
        four - one >= macs / KERNEL_MACS_PER_FUEL
            && four - one <= macs / KERNEL_MACS_PER_FUEL + stdin_and_echo + 200,
        "{one} {four}"
    );

    // A call bigger than the fuel left ends the job out of fuel, and it did not run: the
    // echo after it never happens, so stdout is empty.
    let n = 64;
    let call = Call::new(t, rows, cols, n, vec![0.25; n * cols]);
    let need = (rows * cols * n) as u64 / KERNEL_MACS_PER_FUEL;
    let r = run_with(&call, &w, |s| s.limits.fuel = need / 2);
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    assert!(r.stdout.is_empty());
    assert_eq!(r.fuel_used, need / 2, "the call burns what was left");
}

#[test]
fn two_runs_give_the_same_fuel_and_hash() {
    let mut rng = Rng(77);
    let (t, rows, cols, n) = (WeightType::Q4_1, 64, 256, 3);
    let w = rng.weights(t, rows, cols);
    let xs: Vec<f32> = (0..n * cols).map(|_| rng.f()).collect();
    let call = Call::new(t, rows, cols, n, xs);
    let a = run_with(&call, &w, |_| {});
    let b = run_with(&call, &w, |_| {});
    assert_eq!(a.outcome, Outcome::Exited { code: 0 });
    assert_eq!((a.output_hash, a.fuel_used), (b.output_hash, b.fuel_used));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn the_import_is_allowed_and_nothing_else_of_the_module() {
    let sb = sandbox();
    let bad = wat::parse_str(
        r#"(module (import "sietch_kernels" "matvec" (func (param i32)))
           (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    let e = sb.load(&bad).unwrap_err().to_string();
    assert!(e.contains("sietch_kernels::matvec"), "{e}");
    sb.load(&wat("kernels_call")).unwrap();
}
