//! The `sietch_kernels` host module: deterministic matrix products over weights that stay in
//! the host, so that a language model runs at native speed in the sandbox and concurrent jobs
//! on one model share one read-only copy of its weights. The arithmetic is the crate
//! `sietch-kernels` (bit-equal to `sandbox/guests/llm/kernels_ref.c`); the guest's header is
//! `sandbox/guests/llm/kernels.h`.
//!
//! Guest ABI (returns 0 or a WASI errno, as the WASI functions do; pointers are into the
//! guest's memory, floats little-endian, any alignment):
//!
//! | function | parameters |
//! |---|---|
//! | `matmul` | `fd: i32, offset: i64, wtype: i32, rows: i32, cols: i32, x: i32, n: i32, y: i32` |
//!
//! W is a `rows` × `cols` matrix of type `wtype` (GGUF's numbers: 0 F32, 3 Q4_1, 8 Q8_0)
//! stored row-major at byte `offset` of the `/input` file open on `fd`; x is `n` vectors of
//! `cols` floats and y receives `n` vectors of `rows` floats: `y[j][r] = W[r] · x[j]`.
//!
//! | errno | when |
//! |---|---|
//! | `ENOTSUP` | `wtype` is not 0, 3 or 8 |
//! | `EINVAL` | `rows`, `cols` or `n` not positive, `cols` not whole blocks of 32 (quantized types), a size overflowing, a negative `offset`, the tensor reaching past the file's end, x and y overlapping |
//! | `EBADF` | `fd` is not an open `/input` file (stdio, a directory, an `/output` file, closed) |
//! | `EFAULT` | x or y not wholly inside the guest's memory |
//!
//! Fuel: [`crate::wasi::HOST_CALL_FUEL`] for every call, and for a call that runs
//! `rows * cols * n / KERNEL_MACS_PER_FUEL` more, charged before the product is computed, so
//! a job without the fuel ends `OutOfFuel` and gets no free work. The virtual clock moves by
//! the same amount, as it does for guest instructions.

use wasmtime::{Caller, Linker};

use crate::host::{self, charge};
use crate::wasi::{Errno, HOST_CALL_FUEL, WasiHost};
use sietch_kernels::{KernelError, WeightType};

/// The module name guests import from.
pub const MODULE: &str = "sietch_kernels";

/// The functions of `sietch_kernels`.
pub const FUNCTIONS: &[&str] = &["matmul"];

/// Multiply-adds one fuel buys in `matmul`: the host kernels run about 8 quantized MACs per
/// nanosecond on one core (`docs/benchmarks.md`), and fuel is about a nanosecond of work.
pub const KERNEL_MACS_PER_FUEL: u64 = 8;

/// One checked call: where the weights (in the file), x and y (in guest memory) are, and
/// what the product costs.
struct Call {
    weights: std::ops::Range<usize>,
    wtype: WeightType,
    rows: usize,
    cols: usize,
    n: usize,
    x: std::ops::Range<usize>,
    y: std::ops::Range<usize>,
    fuel: u64,
}

fn kernel_errno(e: &KernelError) -> Errno {
    match e {
        KernelError::UnknownType(_) => Errno::Notsup,
        _ => Errno::Inval,
    }
}

fn positive(v: i32) -> Result<usize, Errno> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or(Errno::Inval)
}

/// `len` bytes at guest address `ptr`, inside a memory of `mem_len` bytes.
fn guest_range(ptr: i32, len: usize, mem_len: usize) -> Result<std::ops::Range<usize>, Errno> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len).ok_or(Errno::Fault)?;
    if end > mem_len {
        return Err(Errno::Fault);
    }
    Ok(start..end)
}

/// Every check of the ABI, in a fixed order, before anything is charged or computed.
#[allow(clippy::too_many_arguments)]
fn check(
    input: Result<&[u8], Errno>,
    mem_len: usize,
    offset: i64,
    wtype: i32,
    rows: i32,
    cols: i32,
    x: i32,
    n: i32,
    y: i32,
) -> Result<Call, Errno> {
    let wtype = WeightType::from_gguf(wtype).map_err(|e| kernel_errno(&e))?;
    let (rows, cols, n) = (positive(rows)?, positive(cols)?, positive(n)?);
    let shape = sietch_kernels::shape(wtype, rows, cols, n).map_err(|e| kernel_errno(&e))?;
    let file = input?;
    let offset = usize::try_from(offset).map_err(|_| Errno::Inval)?;
    let end = offset.checked_add(shape.weight_bytes).ok_or(Errno::Inval)?;
    if end > file.len() {
        return Err(Errno::Inval);
    }
    let x_bytes = n.checked_mul(cols).and_then(|v| v.checked_mul(4));
    let y_bytes = n.checked_mul(rows).and_then(|v| v.checked_mul(4));
    let x = guest_range(x, x_bytes.ok_or(Errno::Fault)?, mem_len)?;
    let y = guest_range(y, y_bytes.ok_or(Errno::Fault)?, mem_len)?;
    if x.start < y.end && y.start < x.end {
        return Err(Errno::Inval);
    }
    Ok(Call {
        weights: offset..end,
        wtype,
        rows,
        cols,
        n,
        x,
        y,
        fuel: HOST_CALL_FUEL.saturating_add(shape.macs / KERNEL_MACS_PER_FUEL),
    })
}

/// The product of a checked call, from guest memory to guest memory: x is read and y written
/// in place (`check` made sure they do not overlap), with no copy and no allocation here.
fn run(call: &Call, file: &[u8], mem: &mut [u8]) -> Result<(), Errno> {
    let weights = file.get(call.weights.clone()).ok_or(Errno::Inval)?;
    // x and y are disjoint ranges: split the memory between them.
    let (x, y) = if call.x.start < call.y.start {
        let (lo, hi) = mem.split_at_mut_checked(call.y.start).ok_or(Errno::Fault)?;
        (lo.get(call.x.clone()), hi.get_mut(..call.y.len()))
    } else {
        let (lo, hi) = mem.split_at_mut_checked(call.x.start).ok_or(Errno::Fault)?;
        (hi.get(..call.x.len()), lo.get_mut(call.y.clone()))
    };
    let (x, y) = x.zip(y).ok_or(Errno::Fault)?;
    sietch_kernels::matmul_le(weights, call.wtype, call.rows, call.cols, x, call.n, y)
        .map_err(|e| kernel_errno(&e))
}

/// Registers `sietch_kernels` on `linker`.
pub(crate) fn add_to_linker<T: WasiHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "matmul",
        |mut c: Caller<'_, T>,
         fd: i32,
         offset: i64,
         wtype: i32,
         rows: i32,
         cols: i32,
         x: i32,
         n: i32,
         y: i32|
         -> wasmtime::Result<i32> {
            let checked = match host::split(&mut c) {
                Some((mem, st)) => check(
                    st.wasi().input_data(fd),
                    mem.len(),
                    offset,
                    wtype,
                    rows,
                    cols,
                    x,
                    n,
                    y,
                ),
                None => Err(Errno::Fault),
            };
            let call = match checked {
                Ok(call) => call,
                Err(e) => {
                    charge(&mut c, HOST_CALL_FUEL)?;
                    return Ok(e as i32);
                }
            };
            // Charged before the work: a job without the fuel ends here and gets nothing.
            charge(&mut c, call.fuel)?;
            let r = match host::split(&mut c) {
                Some((mem, st)) => st
                    .wasi()
                    .input_data(fd)
                    .and_then(|file| run(&call, file, mem)),
                None => Err(Errno::Fault),
            };
            Ok(r.map_or_else(|e| e as i32, |()| 0))
        },
    )?;
    Ok(())
}
