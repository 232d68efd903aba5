// Choosing the next token: greedy (temperature 0), or temperature and top-p sampling driven by
// a PRNG of our own (xoshiro256**, seeded through splitmix64), so that a seed gives the same
// tokens in every build.
#ifndef LLM_SAMPLE_H
#define LLM_SAMPLE_H
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
// A seed from the system's entropy (WASI random_get: in the sandbox, derived from the job id).
uint64_t seed_from_entropy(void);
// The index of the largest logit (the first of equals).
int sample_greedy(const float *logits, int n);
// Samples from softmax(logits / temperature) restricted to the smallest set of most likely
// tokens whose probability reaches top_p (ties broken by the lower id). work: n floats and n ints.
int sample_top_p(const float *logits, int n, float temperature, float top_p, rng *r,
                 float *work, int32_t *idx);
// The same with the draw given: u uniform in [0, 1) (what sample_top_p draws from r). Leaves
// the weights exp((logit - max) / temperature) in work and, when top_p < 1, the token ids sorted
// by weight (then id) in idx.
int sample_top_p_u(const float *logits, int n, float temperature, float top_p, float u,
                   float *work, int32_t *idx);
// The next draw of r, uniform in [0, 1) with 24 bits: one per sampled token.
float rng_uniform(rng *r);
#endif
