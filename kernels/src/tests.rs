//! Shapes, errors and small known values. The bit-for-bit comparison with the C reference
//! is `tests/reference.rs`.

use super::*;
use proptest::prelude::*;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// f16 bits of small exact values.
const H_ONE: [u8; 2] = [0x00, 0x3c];
const H_HALF: [u8; 2] = [0x00, 0x38];
const H_TWO: [u8; 2] = [0x00, 0x40];
const H_ZERO: [u8; 2] = [0x00, 0x00];

fn q8_block(d: [u8; 2], q: [i8; 32]) -> Vec<u8> {
    let mut b = d.to_vec();
    b.extend(q.iter().map(|&v| v as u8));
    b
}

fn q4_block(d: [u8; 2], m: [u8; 2], q: [u8; 32]) -> Vec<u8> {
    let mut b = d.to_vec();
    b.extend_from_slice(&m);
    b.extend((0..16).map(|i| (q[i] & 15) | (q[i + 16] << 4)));
    b
}

#[test]
fn half_conversion_is_exact() {
    assert_eq!(half_to_f32(H_ONE), 1.0);
    assert_eq!(half_to_f32(H_HALF), 0.5);
    assert_eq!(half_to_f32([0x00, 0xc0]), -2.0);
    assert_eq!(half_to_f32([0xff, 0x7b]), 65504.0);
    assert_eq!(half_to_f32([0x01, 0x00]), 2f32.powi(-24));
    assert_eq!(half_to_f32([0xff, 0x03]), 1023.0 * 2f32.powi(-24));
    assert_eq!(half_to_f32([0x00, 0x80]).to_bits(), 0x8000_0000);
    assert_eq!(half_to_f32([0x01, 0x80]), -(2f32.powi(-24)));
    assert_eq!(half_to_f32([0x00, 0x7c]), f32::INFINITY);
    assert_eq!(half_to_f32([0x00, 0xfc]), f32::NEG_INFINITY);
    assert_eq!(half_to_f32([0x01, 0x7e]).to_bits(), 0x7fc0_2000);
}

#[test]
fn every_half_matches_the_reference_formula() {
    // The C reference's normalizing loop, transcribed, against the shortcut above.
    for h in 0..=u16::MAX {
        let sign = u32::from(h & 0x8000) << 16;
        let exp = u32::from((h >> 10) & 0x1f);
        let mut man = u32::from(h & 0x3ff);
        let bits = if exp == 0 && man == 0 {
            sign
        } else if exp == 0 {
            let mut e: i32 = -1;
            loop {
                man <<= 1;
                e += 1;
                if man & 0x400 != 0 {
                    break;
                }
            }
            sign | (((127 - 15 - e) as u32) << 23) | ((man & 0x3ff) << 13)
        } else if exp == 31 {
            sign | 0x7f80_0000 | (man << 13)
        } else {
            sign | ((exp + 127 - 15) << 23) | (man << 13)
        };
        assert_eq!(
            half_to_f32(h.to_le_bytes()).to_bits(),
            bits,
            "half {h:#06x}"
        );
    }
}

#[test]
fn f32_known_values_and_order() {
    let w = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let x = [1.0, 0.5, 0.25, -1.0, 0.0, 2.0];
    let mut y = [0.0; 4];
    matmul(&w, WeightType::F32, 2, 3, &x, 2, &mut y).unwrap();
    assert_eq!(y, [2.75, 8.0, 5.0, 8.0]);
    // Summed in order from 0: (1e8 + 1) - 1e8 is 0 in f32, not 1.
    let w = f32_bytes(&[1e8, 1.0, -1e8]);
    let mut y = [9.0];
    matmul(&w, WeightType::F32, 1, 3, &[1.0, 1.0, 1.0], 1, &mut y).unwrap();
    assert_eq!(y, [0.0]);
}

#[test]
fn q8_0_known_values() {
    // x = 0..31 scaled so amax = 32767: d = 1, q = x exactly.
    let x: Vec<f32> = (0..32).map(|i| (i as f32) * 32767.0 / 31.0).collect();
    let xq = quantize(x.as_slice().try_into().unwrap());
    assert_eq!(xq.d, 1.0);
    let mut ones = [0i8; 32];
    ones[31] = 1;
    let w = q8_block(H_TWO, ones);
    let mut y = [0.0];
    matmul(&w, WeightType::Q8_0, 1, 32, &x, 1, &mut y).unwrap();
    // W's last value is 1 at scale 2: y = 2 * x[31] = 2 * 32767.
    assert_eq!(y, [65534.0]);
}

#[test]
fn q4_1_known_values() {
    // x all 32767: d = 1, q = 32767, s = 32 * 32767. W = 0.5 * nibble + 1 with nibbles 1.
    let x = [32767.0f32; 32];
    let w = q4_block(H_HALF, H_ONE, [1; 32]);
    let mut y = [0.0];
    matmul(&w, WeightType::Q4_1, 1, 32, &x, 1, &mut y).unwrap();
    // isum = s = 32 * 32767 = 1048544: 1048544 * 0.5 + 1 * 1048544
    assert_eq!(y, [524272.0 + 1048544.0]);
}

#[test]
fn quantization_rounds_half_to_even() {
    // amax 32767 -> d = 1 exactly, so q = rint(x).
    let mut x = [0.0f32; 32];
    x[0] = 32767.0;
    x[1] = 0.5;
    x[2] = 1.5;
    x[3] = 2.5;
    x[4] = -0.5;
    x[5] = -1.5;
    let b = quantize(&x);
    assert_eq!(&b.q[..6], &[32767, 0, 2, 2, 0, -2]);
    assert_eq!(b.s, 32767.0 + 2.0 + 2.0 - 2.0);
}

/// The call-free rounding equals `round_ties_even`: quarters up to 35,000 (every half), a
/// sample of every binade below 2^23, the values around 2^22 and 2^23, and past them (huge,
/// infinite, NaN).
#[test]
fn round_half_even_matches_round_ties_even() {
    let check = |v: f32| {
        let (got, want) = (round_half_even(v), v.round_ties_even());
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{v} ({:#x})",
            v.to_bits()
        );
    };
    for i in -140_000i32..=140_000 {
        check(i as f32 * 0.25);
    }
    for bits in (0u32..0x4b00_0000).step_by(997) {
        check(f32::from_bits(bits));
        check(-f32::from_bits(bits));
    }
    for v in [
        4_194_303.5,
        4_194_304.0,
        4_194_304.5,
        8_388_607.0,
        8_388_607.5,
        8_388_608.0,
        8_388_609.0,
        1e10,
        3e9,
        -3e9,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.5,
        -0.5,
        1.5,
        -2.5,
    ] {
        check(v);
        check(-v);
    }
}

#[test]
fn an_all_zero_block_quantizes_to_zero() {
    let b = quantize(&[0.0; 32]);
    assert_eq!((b.d, b.s, b.q), (0.0, 0.0, [0; 32]));
    let w = q8_block(H_ONE, [5; 32]);
    let mut y = [1.0];
    matmul(&w, WeightType::Q8_0, 1, 32, &[0.0; 32], 1, &mut y).unwrap();
    assert_eq!(y[0].to_bits(), 0);
}

#[test]
fn nan_outputs_are_canonical() {
    let w = q8_block([0x01, 0xfe], [1; 32]); // a NaN scale with a payload and the sign set
    let mut y = [0.0];
    matmul(&w, WeightType::Q8_0, 1, 32, &[1.0; 32], 1, &mut y).unwrap();
    assert_eq!(y[0].to_bits(), CANONICAL_NAN);
}

#[test]
fn shape_errors_are_typed() {
    let w = vec![0u8; 1024];
    let mut y = [0.0; 4];
    let e = |r: Result<(), KernelError>| r.unwrap_err();
    assert_eq!(
        e(matmul(&w, WeightType::F32, 0, 1, &[], 1, &mut [])),
        KernelError::Empty {
            rows: 0,
            cols: 1,
            n: 1
        }
    );
    assert!(matches!(
        e(matmul(&w, WeightType::F32, 1, 1, &[], 0, &mut [])),
        KernelError::Empty { .. }
    ));
    assert_eq!(
        e(matmul(
            &w,
            WeightType::Q8_0,
            1,
            33,
            &[0.0; 33],
            1,
            &mut y[..1]
        )),
        KernelError::Unaligned { cols: 33 }
    );
    assert_eq!(
        e(matmul(
            &w,
            WeightType::Q4_1,
            100,
            32,
            &[0.0; 32],
            1,
            &mut y[..1]
        )),
        KernelError::WeightsTooShort {
            need: 2000,
            have: 1024
        }
    );
    assert_eq!(
        e(matmul(&w, WeightType::F32, 2, 4, &[0.0; 7], 1, &mut y[..2])),
        KernelError::XLength { need: 4, have: 7 }
    );
    assert_eq!(
        e(matmul(&w, WeightType::F32, 2, 4, &[0.0; 4], 1, &mut y[..3])),
        KernelError::YLength { need: 2, have: 3 }
    );
    assert_eq!(
        e(matmul(&w, WeightType::F32, usize::MAX, 2, &[], 1, &mut [])),
        KernelError::Overflow
    );
    assert_eq!(
        shape(WeightType::Q8_0, 1 << 40, 1 << 40, 1).unwrap_err(),
        KernelError::Overflow
    );
    assert_eq!(WeightType::from_gguf(2), Err(KernelError::UnknownType(2)));
    for t in [WeightType::F32, WeightType::Q4_1, WeightType::Q8_0] {
        assert_eq!(WeightType::from_gguf(t.gguf()), Ok(t));
    }
    // An error writes nothing.
    assert_eq!(y, [0.0; 4]);
}

#[test]
fn shape_counts_bytes_and_work() {
    let s = shape(WeightType::Q4_1, 576, 1536, 2).unwrap();
    assert_eq!(s.row_bytes, 48 * 20);
    assert_eq!(s.weight_bytes, 576 * 48 * 20);
    assert_eq!(s.macs, 576 * 1536 * 2);
    assert_eq!(shape(WeightType::F32, 3, 5, 1).unwrap().weight_bytes, 60);
    assert_eq!(shape(WeightType::Q8_0, 2, 64, 1).unwrap().weight_bytes, 136);
}

fn wtype() -> impl Strategy<Value = WeightType> {
    prop_oneof![
        Just(WeightType::F32),
        Just(WeightType::Q4_1),
        Just(WeightType::Q8_0)
    ]
}

proptest! {
    /// Any arguments at all: an answer, never a panic, and `Ok` exactly when the lengths fit.
    #[test]
    fn arbitrary_arguments_never_panic(
        t in wtype(),
        rows in 0usize..6,
        cols in 0usize..100,
        n in 0usize..4,
        wlen in 0usize..2000,
        xlen in 0usize..400,
        ylen in 0usize..30,
    ) {
        let w = vec![0x3cu8; wlen];
        let x = vec![1.0f32; xlen];
        let mut y = vec![0.0f32; ylen];
        let r = matmul(&w, t, rows, cols, &x, n, &mut y);
        let ok = rows > 0 && cols > 0 && n > 0
            && (t == WeightType::F32 || cols % 32 == 0)
            && wlen >= shape(t, rows.max(1), cols.max(1), 1).map_or(usize::MAX, |s| s.weight_bytes)
            && xlen == n * cols && ylen == n * rows;
        prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
        // The byte form, with lengths in bytes that may also be no whole float.
        let xb = vec![0u8; xlen * 4 + usize::from(xlen % 3 == 1)];
        let mut yb = vec![0u8; ylen * 4 + usize::from(ylen % 3 == 2)];
        let r = matmul_le(&w, t, rows, cols, &xb, n, &mut yb);
        let ok = ok && xb.len().is_multiple_of(4) && yb.len().is_multiple_of(4);
        prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
    }

    /// n vectors at once give the same bits as n calls of one vector.
    #[test]
    fn a_batch_is_its_vectors(
        t in wtype(),
        rows in 1usize..5,
        blocks in 1usize..4,
        n in 1usize..4,
        seed in any::<u64>(),
    ) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let cols = blocks * 32;
        let s = shape(t, rows, cols, n).unwrap();
        let mut w: Vec<u8> = (0..s.weight_bytes).map(|_| rng.r#gen()).collect();
        // Keep the f16 scales finite so outputs are numbers.
        if t != WeightType::F32 {
            let per = if t == WeightType::Q8_0 { Q8_0_BYTES } else { Q4_1_BYTES };
            for blk in w.chunks_mut(per) {
                blk[1] &= 0xbb;
                if t == WeightType::Q4_1 { blk[3] &= 0xbb; }
            }
        } else {
            for c in w.chunks_mut(4) { c[3] &= 0xbf; }
        }
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-4.0f32..4.0)).collect();
        let mut y = vec![0.0; n * rows];
        matmul(&w, t, rows, cols, &x, n, &mut y).unwrap();
        // The byte form gives the same bits.
        let xb: Vec<u8> = f32_bytes(&x);
        let mut yb = vec![0u8; 4 * n * rows];
        matmul_le(&w, t, rows, cols, &xb, n, &mut yb).unwrap();
        prop_assert_eq!(&yb, &f32_bytes(&y));
        for (j, xj) in x.chunks(cols).enumerate() {
            let mut yj = vec![0.0; rows];
            matmul(&w, t, rows, cols, xj, 1, &mut yj).unwrap();
            let got: Vec<u32> = y[j * rows..(j + 1) * rows].iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = yj.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// With a scale of one and x already on the 16-bit grid (amax 32767), Q8_0 is an exact
    /// integer dot product.
    #[test]
    fn q8_0_on_the_grid_is_exact(q in prop::collection::vec(-32767i16..=32767, 32), wq in prop::collection::vec(any::<i8>(), 32)) {
        let mut x: Vec<f32> = q.iter().map(|&v| f32::from(v)).collect();
        x[0] = 32767.0;
        let mut wa = [0i8; 32];
        wa.copy_from_slice(&wq);
        let w = q8_block(H_ONE, wa);
        let mut y = [0.0];
        matmul(&w, WeightType::Q8_0, 1, 32, &x, 1, &mut y).unwrap();
        let want: i32 = x.iter().zip(&wq).map(|(&a, &b)| a as i32 * i32::from(b)).sum();
        prop_assert_eq!(y[0], want as f32);
    }
}

#[test]
fn zero_scale_rows_give_zero() {
    let w = q4_block(H_ZERO, H_ZERO, [15; 32]);
    let mut y = [1.0];
    matmul(&w, WeightType::Q4_1, 1, 32, &[3.0; 32], 1, &mut y).unwrap();
    assert_eq!(y, [0.0]);
}
