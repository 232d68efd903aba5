// Runs the C reference `sk_matmul_ref` (sandbox/guests/llm/kernels_ref.c) on a case read
// from a file, for the Rust crate's bit-exactness test and its benchmark. Built natively:
//   clang -O2 -ffp-contract=off -I sandbox/guests/llm ref_harness.c kernels_ref.c
//
//   ref_harness IN OUT          writes y to OUT (n * rows little-endian f32)
//   ref_harness IN OUT ITERS    also runs the product ITERS more times and prints the best
//                               and the mean nanoseconds per call: "best_ns mean_ns"
//
// IN: i32 wtype, i32 rows, i32 cols, i32 n, u64 weight bytes, the weights, n * cols f32.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static void *read_exact(FILE *f, size_t len) {
    void *p = malloc(len ? len : 1);
    if (!p || fread(p, 1, len, f) != len) {
        fprintf(stderr, "short input\n");
        exit(2);
    }
    return p;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ref_harness IN OUT [ITERS]\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    int32_t hdr[4];
    uint64_t wlen;
    if (fread(hdr, 4, 4, in) != 4 || fread(&wlen, 8, 1, in) != 1) {
        fprintf(stderr, "short header\n");
        return 2;
    }
    int32_t wtype = hdr[0], rows = hdr[1], cols = hdr[2], n = hdr[3];
    uint8_t *w = read_exact(in, (size_t)wlen);
    float *x = read_exact(in, (size_t)n * (size_t)cols * 4);
    fclose(in);
    float *y = calloc((size_t)n * (size_t)rows, 4);
    if (!y || sk_matmul_ref(w, wtype, rows, cols, x, n, y) != 0) {
        fprintf(stderr, "sk_matmul_ref refused the case\n");
        return 3;
    }
    FILE *out = fopen(argv[2], "wb");
    if (!out || fwrite(y, 4, (size_t)n * (size_t)rows, out) != (size_t)n * (size_t)rows) {
        perror(argv[2]);
        return 2;
    }
    fclose(out);
    if (argc > 3) {
        long iters = atol(argv[3]);
        double best = 1e300, total = 0;
        volatile float sink = 0;
        for (long i = 0; i < iters; i++) {
            double t0 = now_ns();
            sk_matmul_ref(w, wtype, rows, cols, x, n, y);
            double t = now_ns() - t0;
            sink += y[0];
            total += t;
            if (t < best) best = t;
        }
        printf("%.0f %.0f\n", best, iters > 0 ? total / (double)iters : 0.0);
    }
    free(w);
    free(x);
    free(y);
    return 0;
}
