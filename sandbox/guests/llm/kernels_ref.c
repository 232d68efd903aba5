// The exact arithmetic of `sietch_kernels.matmul` (kernels.h), written to be read: every
// float operation below happens in this order, rounded to f32, with no fused multiply-add
// (compile with -ffp-contract=off). The host's Rust implementation must match it bit for bit.
//
// Quantized weights are multiplied by x quantized to 16 bits, block by block (16, not the 8
// of llama.cpp: with 8-bit activations SmolLM2-135M answers "What is the capital of France?"
// with "L'Étoile", the float model with Paris; 16 bits follow the float model closely and
// the products stay integer: |w| <= 127 times |q| <= 32767, 32 of them, fit an int32):
//   per block of 32 elements of x: amax = the largest |x_i| (first wins), d = amax / 32767,
//   q_i = round-half-even(x_i * (1 / d)) (0 when d == 0), s = the integer sum of q_i.
//   Q8_0 row block (dw, w_i): acc = acc + (float)(sum w_i q_i) * (dw * d)
//   Q4_1 row block (dw, mw, w_i in 0..15): acc = acc + ((float)(sum w_i q_i) * (dw * d)
//                                                       + mw * (d * (float)s))
// F32 weights: acc = acc + w_i * x_i, i in order. acc starts at 0.0f for every output.
#include "kernels.h"

#include <string.h>

// IEEE half to float, exactly (every half is a float).
static float sk_half(const uint8_t *p) {
    uint32_t h = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// One block of x, quantized.
typedef struct {
    float d;
    float s;  // d * (float)sum of q, as Q4_1 uses it
    int16_t q[SK_BLOCK];
} sk_xblock;

static void sk_quantize(const float *x, sk_xblock *b) {
    float amax = 0.0f;
    for (int i = 0; i < SK_BLOCK; i++) {
        float a = x[i] < 0.0f ? -x[i] : x[i];
        if (a > amax) amax = a;
    }
    float d = amax / 32767.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < SK_BLOCK; i++) {
        int q = (int)__builtin_rintf(x[i] * id);  // round half to even (default rounding mode)
        b->q[i] = (int16_t)q;
        sum += q;
    }
    b->d = d;
    b->s = d * (float)sum;
}

int sk_matmul_ref(const uint8_t *w, int32_t wtype, int32_t rows, int32_t cols, const float *x,
                  int32_t n, float *y) {
    if (rows <= 0 || cols <= 0 || n <= 0) return -1;
    if (wtype == SK_F32) {
        for (int32_t j = 0; j < n; j++)
            for (int32_t r = 0; r < rows; r++) {
                const uint8_t *row = w + (size_t)r * cols * 4;
                float acc = 0.0f;
                for (int32_t i = 0; i < cols; i++) {
                    float wi;
                    memcpy(&wi, row + (size_t)i * 4, 4);
                    acc = acc + wi * x[(size_t)j * cols + i];
                }
                y[(size_t)j * rows + r] = acc;
            }
        return 0;
    }
    if (cols % SK_BLOCK != 0) return -1;
    int32_t nb = cols / SK_BLOCK;
    size_t row_bytes;
    if (wtype == SK_Q8_0) row_bytes = (size_t)nb * SK_Q8_0_BYTES;
    else if (wtype == SK_Q4_1) row_bytes = (size_t)nb * SK_Q4_1_BYTES;
    else return -1;
    sk_xblock xb[nb];
    for (int32_t j = 0; j < n; j++) {
        for (int32_t b = 0; b < nb; b++) sk_quantize(x + (size_t)j * cols + (size_t)b * SK_BLOCK, &xb[b]);
        for (int32_t r = 0; r < rows; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            float acc = 0.0f;
            for (int32_t b = 0; b < nb; b++) {
                if (wtype == SK_Q8_0) {
                    const uint8_t *blk = row + (size_t)b * SK_Q8_0_BYTES;
                    int isum = 0;
                    for (int i = 0; i < SK_BLOCK; i++) isum += (int8_t)blk[2 + i] * xb[b].q[i];
                    acc = acc + (float)isum * (sk_half(blk) * xb[b].d);
                } else {
                    const uint8_t *blk = row + (size_t)b * SK_Q4_1_BYTES;
                    int isum = 0;
                    for (int i = 0; i < SK_BLOCK / 2; i++) {
                        isum += (blk[4 + i] & 0x0f) * xb[b].q[i];
                        isum += (blk[4 + i] >> 4) * xb[b].q[i + SK_BLOCK / 2];
                    }
                    acc = acc + ((float)isum * (sk_half(blk) * xb[b].d) + sk_half(blk + 2) * xb[b].s);
                }
            }
            y[(size_t)j * rows + r] = acc;
        }
    }
    return 0;
}
