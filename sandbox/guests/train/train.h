// What every part of the training guest shares: its limits, how it fails, its PRNG.
// docs/training.md ("The training guest") is the contract; README.md lists the files.
#ifndef TRAIN_H
#define TRAIN_H

#include <stddef.h>
#include <stdint.h>

#define MAX_LAYERS 16            // dense layers
#define MAX_DIM 4096             // width of any layer, and a shard's d
#define MAX_PARAMS (1u << 22)    // 16 MiB of f32 parameters: five copies fit 256 MiB
#define MAX_RECORDS (1u << 20)   // records in a shard
#define MAX_STEPS 100000u
#define MAX_BATCH 4096u
#define MAX_PIXEL 16             // inputs are pixel / 16

// Exit codes: 2 bad input (arguments, files), with nothing written to /output; 1 the job
// could not finish (out of memory, an output not written). A message on stderr either way.
_Noreturn void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *xcalloc(size_t n, size_t size);  // calloc, or fail(1)

// splitmix64 (Steele, Lea, Flood 2014): the one source of randomness, seeded by `seed=`.
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// A uniform index below n (0 < n <= 2^32): Lemire's multiply-shift on the top 32 bits, as the
// SDK's round driver draws its split (bias below 2^-12 for n <= 2^20; the same everywhere).
static inline uint32_t rng_below(uint64_t *s, uint64_t n) {
    return (uint32_t)(((rng_next(s) >> 32) * n) >> 32);
}

#endif
