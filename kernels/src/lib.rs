//! Deterministic matrix products with the exact arithmetic of the `sietch_kernels` host
//! module (`sandbox/guests/llm/kernels.h`, `kernels_ref.c`): `y[j][r] = W[r] · x[j]` for a
//! `rows` × `cols` weight matrix stored row-major as F32, Q4_1 or Q8_0 (GGUF's layouts) and
//! `n` vectors `x`.
//!
//! [`matmul`] gives the same bits as `sk_matmul_ref` for every finite input: the same float
//! operations in the same order, each rounded to f32, no fused multiply-add (Rust never
//! contracts), halves converted exactly, x quantized with round-half-even. Only the integer
//! dot product inside a block is summed in another order (integers: any order gives the same
//! sum), which lets LLVM vectorize it. `kernels/tests/reference.rs` compares every output bit
//! with the C reference compiled natively.
//!
//! Two things the C leaves to the hardware are defined here so that every host agrees:
//! a quantized x value that does not fit an `i32` (only when a block's scale is subnormal,
//! so `1 / d` overflows, or x is not finite) counts as `i32::MIN`, as x86-64 converts it; and
//! every NaN output is the canonical quiet NaN `0x7fc00000` (x86-64 and aarch64 produce
//! different NaN bits, as wasmtime's NaN canonicalization also hides for guest code).
//!
//! ```
//! use sietch_kernels::{WeightType, matmul};
//! // A 2 x 3 F32 matrix times one vector.
//! let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let mut y = [0.0f32; 2];
//! matmul(&w, WeightType::F32, 2, 3, &[1.0, 0.5, 0.25], 1, &mut y)?;
//! assert_eq!(y, [2.75, 8.0]);
//! # Ok::<(), sietch_kernels::KernelError>(())
//! ```
#![forbid(unsafe_code)]

/// Elements per quantized block (Q4_1 and Q8_0).
pub const BLOCK: usize = 32;
/// Bytes per Q4_1 block: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles (element `i`
/// in the low nibble of byte `i`, element `i + 16` in its high nibble).
pub const Q4_1_BYTES: usize = 20;
/// Bytes per Q8_0 block: f16 scale `d`, 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

/// The canonical NaN every NaN output is replaced with.
pub const CANONICAL_NAN: u32 = 0x7fc0_0000;

/// How the weights are stored, numbered as GGUF numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum WeightType {
    /// Little-endian f32, `cols` per row.
    F32,
    /// Blocks of 32: 4-bit values `q` with `w = d * q + m` ([`Q4_1_BYTES`] per block).
    Q4_1,
    /// Blocks of 32: 8-bit values `q` with `w = d * q` ([`Q8_0_BYTES`] per block).
    Q8_0,
}

impl WeightType {
    /// The type GGUF numbers `code` (0 F32, 3 Q4_1, 8 Q8_0), or `UnknownType`.
    pub fn from_gguf(code: i32) -> Result<Self, KernelError> {
        match code {
            0 => Ok(Self::F32),
            3 => Ok(Self::Q4_1),
            8 => Ok(Self::Q8_0),
            other => Err(KernelError::UnknownType(other)),
        }
    }

    /// GGUF's number for the type.
    pub fn gguf(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::Q4_1 => 3,
            Self::Q8_0 => 8,
        }
    }

    /// Bytes of one row of `cols` elements; `Unaligned` when a quantized row is not whole
    /// blocks, `Overflow` when it does not fit a `usize`.
    pub fn row_bytes(self, cols: usize) -> Result<usize, KernelError> {
        let (per, bytes) = match self {
            Self::F32 => (1, 4),
            Self::Q4_1 => (BLOCK, Q4_1_BYTES),
            Self::Q8_0 => (BLOCK, Q8_0_BYTES),
        };
        if !cols.is_multiple_of(per) {
            return Err(KernelError::Unaligned { cols });
        }
        (cols / per).checked_mul(bytes).ok_or(KernelError::Overflow)
    }
}

/// Why [`matmul`] refused its arguments. Nothing is written to `y` on an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// `rows`, `cols` or `n` is zero.
    #[error("rows, cols and n must be positive (rows {rows}, cols {cols}, n {n})")]
    Empty {
        /// Rows of W.
        rows: usize,
        /// Columns of W.
        cols: usize,
        /// Vectors in x.
        n: usize,
    },
    /// A quantized matrix whose rows are not whole blocks of 32.
    #[error("cols {cols} is not a multiple of the block size {BLOCK}")]
    Unaligned {
        /// Columns of W.
        cols: usize,
    },
    /// A weight type number that is not F32, Q4_1 or Q8_0.
    #[error("unknown weight type {0} (known: 0 F32, 3 Q4_1, 8 Q8_0)")]
    UnknownType(i32),
    /// A size computed from the shape does not fit a `usize`.
    #[error("the shape's sizes overflow")]
    Overflow,
    /// The weights are shorter than the tensor.
    #[error("the tensor needs {need} bytes of weights, {have} given")]
    WeightsTooShort {
        /// Bytes the tensor occupies.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// `x` is not `n * cols` floats.
    #[error("x holds {have} floats, n * cols is {need}")]
    XLength {
        /// `n * cols`.
        need: usize,
        /// `x.len()`.
        have: usize,
    },
    /// `y` is not `n * rows` floats.
    #[error("y holds {have} floats, n * rows is {need}")]
    YLength {
        /// `n * rows`.
        need: usize,
        /// `y.len()`.
        have: usize,
    },
}

/// The checked sizes of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bytes of one row of W.
    pub row_bytes: usize,
    /// Bytes of the whole tensor (`rows * row_bytes`).
    pub weight_bytes: usize,
    /// Multiply-adds of the product (`rows * cols * n`), what fuel is charged for.
    pub macs: u64,
}

/// Checks a shape without touching any data: every dimension positive, quantized rows whole
/// blocks, and no size overflowing. The host module uses it to check that the tensor lies
/// inside the file before it reads anything.
pub fn shape(wtype: WeightType, rows: usize, cols: usize, n: usize) -> Result<Shape, KernelError> {
    if rows == 0 || cols == 0 || n == 0 {
        return Err(KernelError::Empty { rows, cols, n });
    }
    let row_bytes = wtype.row_bytes(cols)?;
    let weight_bytes = rows.checked_mul(row_bytes).ok_or(KernelError::Overflow)?;
    n.checked_mul(cols).ok_or(KernelError::Overflow)?;
    n.checked_mul(rows).ok_or(KernelError::Overflow)?;
    let macs = u64::try_from(rows)
        .ok()
        .zip(u64::try_from(cols).ok())
        .zip(u64::try_from(n).ok())
        .and_then(|((r, c), n)| r.checked_mul(c)?.checked_mul(n))
        .ok_or(KernelError::Overflow)?;
    Ok(Shape {
        row_bytes,
        weight_bytes,
        macs,
    })
}

/// `y[j * rows + r] = W[r] · x[j * cols ..]` for `j < n`, `r < rows`: W is `rows` × `cols`
/// stored row-major as `wtype` in the first bytes of `w` (more bytes are ignored), `x` is
/// exactly `n * cols` floats and `y` exactly `n * rows`. The arithmetic is `sk_matmul_ref`'s
/// (see the crate documentation); errors are checked before anything is written.
pub fn matmul(
    w: &[u8],
    wtype: WeightType,
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let (s, w) = check(w, wtype, rows, cols, n, x.len(), y.len())?;
    let (blocks, _) = x.as_chunks::<BLOCK>();
    product(w, wtype, &s, cols, x, blocks.iter().copied(), y);
    Ok(())
}

/// [`matmul`] with x and y as little-endian f32 bytes (`4 * n * cols` and `4 * n * rows` of
/// them), as they lie in a WebAssembly guest's memory: the sandbox's host module reads x and
/// writes y in place, with no copy of either. The same bits as [`matmul`].
pub fn matmul_le(
    w: &[u8],
    wtype: WeightType,
    rows: usize,
    cols: usize,
    x: &[u8],
    n: usize,
    y: &mut [u8],
) -> Result<(), KernelError> {
    let (s, w) = check(w, wtype, rows, cols, n, x.len() / 4, y.len() / 4)?;
    if !x.len().is_multiple_of(4) || !y.len().is_multiple_of(4) {
        return Err(KernelError::XLength {
            need: n.saturating_mul(cols),
            have: x.len() / 4,
        });
    }
    let (xs, _) = x.as_chunks::<4>();
    let (blocks, _) = x.as_chunks::<{ 4 * BLOCK }>();
    let blocks = blocks.iter().map(|b| {
        let (f, _) = b.as_chunks::<4>();
        std::array::from_fn(|i| f.get(i).map_or(0.0, |c| f32::from_le_bytes(*c)))
    });
    let (ys, _) = y.as_chunks_mut::<4>();
    // F32 weights read x as floats (the F32 product is a model's rare case: norms are not
    // products). The quantized products only read x through `blocks`.
    let xf: Vec<f32> = if wtype == WeightType::F32 {
        xs.iter().map(|c| f32::from_le_bytes(*c)).collect()
    } else {
        Vec::new()
    };
    product(w, wtype, &s, cols, &xf, blocks, ys);
    Ok(())
}

/// Every check of [`matmul`] and [`matmul_le`] (lengths in floats), and the tensor's bytes.
fn check(
    w: &[u8],
    wtype: WeightType,
    rows: usize,
    cols: usize,
    n: usize,
    x_len: usize,
    y_len: usize,
) -> Result<(Shape, &[u8]), KernelError> {
    let s = shape(wtype, rows, cols, n)?;
    let w = w
        .get(..s.weight_bytes)
        .ok_or(KernelError::WeightsTooShort {
            need: s.weight_bytes,
            have: w.len(),
        })?;
    // Both products were checked by `shape`.
    let (nx, ny) = (n.saturating_mul(cols), n.saturating_mul(rows));
    if x_len != nx {
        return Err(KernelError::XLength {
            need: nx,
            have: x_len,
        });
    }
    if y_len != ny {
        return Err(KernelError::YLength {
            need: ny,
            have: y_len,
        });
    }
    Ok((s, w))
}

/// Where outputs go: f32s, or little-endian f32 bytes. Every NaN is stored as
/// [`CANONICAL_NAN`].
trait Out {
    fn set(&mut self, i: usize, v: f32);
}

#[inline(always)]
fn canonical(v: f32) -> f32 {
    if v.is_nan() {
        f32::from_bits(CANONICAL_NAN)
    } else {
        v
    }
}

impl Out for [f32] {
    #[inline(always)]
    fn set(&mut self, i: usize, v: f32) {
        if let Some(o) = self.get_mut(i) {
            *o = canonical(v);
        }
    }
}

impl Out for [[u8; 4]] {
    #[inline(always)]
    fn set(&mut self, i: usize, v: f32) {
        if let Some(o) = self.get_mut(i) {
            *o = canonical(v).to_le_bytes();
        }
    }
}

/// A checked product: `x` (floats, read by F32 weights) or `blocks` (x's blocks of 32, read
/// by quantized weights) into `y`.
fn product<Y: Out + ?Sized>(
    w: &[u8],
    wtype: WeightType,
    s: &Shape,
    cols: usize,
    x: &[f32],
    blocks: impl Iterator<Item = [f32; BLOCK]>,
    y: &mut Y,
) {
    let rows = w.len() / s.row_bytes;
    match wtype {
        WeightType::F32 => f32_rows(w, s.row_bytes, x, cols, y, rows),
        WeightType::Q8_0 => {
            let xq: Vec<XBlock> = blocks.map(|b| quantize(&b)).collect();
            quantized_rows::<Q8_0_BYTES, Y>(w, s.row_bytes, &xq, cols / BLOCK, y, rows, q8_0_block)
        }
        WeightType::Q4_1 => {
            let xq: Vec<XBlock> = blocks.map(|b| quantize(&b)).collect();
            quantized_rows::<Q4_1_BYTES, Y>(w, s.row_bytes, &xq, cols / BLOCK, y, rows, q4_1_block)
        }
    }
}

/// IEEE half to float, exactly (every half is a float), without branches: the half's
/// exponent and mantissa moved to a float's place read as a float 2^112 times too small,
/// which the multiplication corrects exactly, for normal and subnormal halves alike (a
/// subnormal half becomes a subnormal float there, multiplied into a normal one). Infinities
/// and NaNs keep their mantissa bits, as the reference converts them.
#[inline(always)]
pub fn half_to_f32(bits: [u8; 2]) -> f32 {
    let h = u32::from(u16::from_le_bytes(bits));
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7fff) << 13;
    let finite = (f32::from_bits(magnitude) * f32::from_bits(0x7780_0000)).to_bits(); // 2^112
    let bits = if h & 0x7c00 == 0x7c00 {
        magnitude | 0x7f80_0000
    } else {
        finite
    };
    f32::from_bits(sign | bits)
}

/// One block of x, quantized to 16 bits: `d = amax / 32767`, `q = round-half-even(x / d)`, and
/// `s = d * sum(q)` as Q4_1 uses it.
#[derive(Debug, Clone, Copy)]
struct XBlock {
    d: f32,
    s: f32,
    q: [i16; BLOCK],
}

/// `v` (already rounded to an integer) as C's `(int)` gives it on x86-64: a value outside
/// `i32` (or NaN) is `i32::MIN`.
#[inline(always)]
fn to_i32(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// `v.round_ties_even()` without a call: baseline x86-64 (SSE2) has no rounding instruction,
/// so the method is a call to `rintf` per element, which LLVM makes even when a branch avoids
/// it (2% of a language model's time in the sandbox). For `|v| < 2^23`, `(|v| + 2^23) - 2^23`
/// rounds `|v|` to an integer half to even (the sum lies in [2^23, 2^24), where the floats
/// are the integers and 2^23 is even) and the subtraction is exact; the sign is put back. A
/// float of magnitude 2^23 or more is already an integer (or infinite, or NaN): it is kept.
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = v.abs();
    if a < TWO_23 {
        ((a + TWO_23) - TWO_23).copysign(v)
    } else {
        v
    }
}

fn quantize(x: &[f32; BLOCK]) -> XBlock {
    let mut amax = 0.0f32;
    for &v in x {
        let a = if v < 0.0 { -v } else { v };
        if a > amax {
            amax = a;
        }
    }
    let d = amax / 32767.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i16; BLOCK];
    let mut sum = 0i32;
    for (qi, &v) in q.iter_mut().zip(x) {
        let r = to_i32(round_half_even(v * id));
        // As C's `(int16_t)` of an int: modulo 2^16 (only reachable for a subnormal scale).
        *qi = r as i16;
        sum = sum.wrapping_add(r);
    }
    XBlock {
        d,
        s: d * sum as f32,
        q,
    }
}

/// The integer dot product of a Q8_0 block's values with x's (any order: integers). It cannot
/// overflow (|w| <= 128, |q| <= 32768, 32 terms: below 2^27); the wrapping operations say so to
/// debug builds, whose overflow checks would otherwise keep LLVM from vectorizing it (the
/// sandbox's tests run the kernels in a debug build).
#[inline(always)]
fn dot_q8(w: &[u8; BLOCK], q: &[i16; BLOCK]) -> i32 {
    w.iter().zip(q).fold(0i32, |s, (&a, &b)| {
        s.wrapping_add(i32::from(a as i8).wrapping_mul(i32::from(b)))
    })
}

/// The integer dot product of a Q4_1 block's nibbles with x's values (below 2^25: wrapping
/// operations as in [`dot_q8`]).
#[inline(always)]
fn dot_q4(nibbles: &[u8; BLOCK / 2], q: &[i16; BLOCK]) -> i32 {
    let (lo, hi) = q.split_at(BLOCK / 2);
    nibbles
        .iter()
        .zip(lo)
        .zip(hi)
        .fold(0i32, |s, ((&b, &l), &h)| {
            s.wrapping_add(i32::from(b & 0x0f).wrapping_mul(i32::from(l)))
                .wrapping_add(i32::from(b >> 4).wrapping_mul(i32::from(h)))
        })
}

/// `acc + (float)isum * (dw * d)`, as the reference adds a Q8_0 block.
#[inline(always)]
fn q8_0_block(acc: f32, blk: &[u8; Q8_0_BYTES], xb: &XBlock) -> f32 {
    let [d0, d1, qs @ ..] = blk;
    acc + dot_q8(qs, &xb.q) as f32 * (half_to_f32([*d0, *d1]) * xb.d)
}

/// `acc + ((float)isum * (dw * d) + mw * s)`, as the reference adds a Q4_1 block.
#[inline(always)]
fn q4_1_block(acc: f32, blk: &[u8; Q4_1_BYTES], xb: &XBlock) -> f32 {
    let [d0, d1, m0, m1, qs @ ..] = blk;
    let isum = dot_q4(qs, &xb.q);
    acc + (isum as f32 * (half_to_f32([*d0, *d1]) * xb.d) + half_to_f32([*m0, *m1]) * xb.s)
}

/// Every output of a quantized product. Rows outside, vectors inside: a row of weights is
/// read once for all `n` vectors (each output still sums its blocks in order from 0.0).
fn quantized_rows<const B: usize, Y: Out + ?Sized>(
    w: &[u8],
    row_bytes: usize,
    xq: &[XBlock],
    nb: usize,
    y: &mut Y,
    rows: usize,
    block: impl Fn(f32, &[u8; B], &XBlock) -> f32 + Copy,
) {
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let (blocks, _) = row.as_chunks::<B>();
        for (j, xj) in xq.chunks_exact(nb).enumerate() {
            let acc = blocks
                .iter()
                .zip(xj)
                .fold(0.0f32, |acc, (blk, xb)| block(acc, blk, xb));
            y.set(j * rows + r, acc);
        }
    }
}

/// Every output of an F32 product: `acc = acc + w_i * x_i` in order of `i`.
fn f32_rows<Y: Out + ?Sized>(
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    cols: usize,
    y: &mut Y,
    rows: usize,
) {
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let (ws, _) = row.as_chunks::<4>();
        for (j, xj) in x.chunks_exact(cols).enumerate() {
            let acc = ws
                .iter()
                .zip(xj)
                .fold(0.0f32, |acc, (wi, &xi)| acc + f32::from_le_bytes(*wi) * xi);
            y.set(j * rows + r, acc);
        }
    }
}

#[cfg(test)]
mod tests;
