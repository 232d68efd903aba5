// The language-model guest's vector arithmetic, in one fixed order on every host. Sums run in
// eight lanes: lane j adds the products of elements i = j (mod 8) in ascending i, the lanes are
// then added as ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)), and elements past the last
// multiple of 8 are added one by one after that, in ascending order. The lanes are written with
// clang's vector extension (the same IEEE operation in each lane: SIMD128 in wasm, SSE natively)
// and -ffp-contract=off keeps every multiply and add apart, so each host rounds alike.
#ifndef TRAIN_LM_VEC_H
#define TRAIN_LM_VEC_H

#include <stdint.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float v4_fold(v4f a, v4f b) {
    return ((a[0] + b[0]) + (a[1] + b[1])) + ((a[2] + b[2]) + (a[3] + b[3]));
}

// sum a[i] b[i], i < n, in the order above.
static inline float dot(const float *a, const float *b, uint32_t n) {
    v4f s0 = {0.0f, 0.0f, 0.0f, 0.0f}, s1 = s0;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = s0 + v4_load(a + i) * v4_load(b + i);
        s1 = s1 + v4_load(a + i + 4) * v4_load(b + i + 4);
    }
    float r = v4_fold(s0, s1);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

// sum a[i], i < n, in the same order.
static inline float vsum(const float *a, uint32_t n) {
    v4f s0 = {0.0f, 0.0f, 0.0f, 0.0f}, s1 = s0;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = s0 + v4_load(a + i);
        s1 = s1 + v4_load(a + i + 4);
    }
    float r = v4_fold(s0, s1);
    for (; i < n; i++) r += a[i];
    return r;
}

// y[i] += s x[i]: no sum, each element one multiply and one add.
static inline void axpy(float *y, float s, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) y[i] += s * x[i];
}

#endif
