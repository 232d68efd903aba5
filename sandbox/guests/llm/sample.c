// See sample.h.
#include "sample.h"

#include <stdlib.h>
#include <sys/random.h>

#include "mathx.h"

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {  // xoshiro256**
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}

uint64_t seed_from_entropy(void) {
    uint64_t seed = 0;
    if (getentropy(&seed, sizeof seed)) abort();
    return seed;
}

int sample_greedy(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static const float *sort_keys;
static int by_weight(const void *a, const void *b) {  // descending, then by id: a total order
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_keys[i] != sort_keys[j]) return sort_keys[i] > sort_keys[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

float rng_uniform(rng *r) {
    return (float)(rng_next(r) >> 40) * 0x1p-24f;  // uniform in [0, 1), 24 bits
}

int sample_top_p(const float *logits, int n, float temperature, float top_p, rng *r,
                 float *w, int32_t *idx) {
    return sample_top_p_u(logits, n, temperature, top_p, rng_uniform(r), w, idx);
}

int sample_top_p_u(const float *logits, int n, float temperature, float top_p, float u,
                   float *w, int32_t *idx) {
    float mx = logits[sample_greedy(logits, n)], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        w[i] = mx_exp((logits[i] - mx) / temperature);
        sum = sum + w[i];
    }
    int kept = n;
    if (top_p < 1.0f) {
        for (int i = 0; i < n; i++) idx[i] = i;
        sort_keys = w;
        qsort(idx, (size_t)n, sizeof *idx, by_weight);
        float acc = 0.0f, target = top_p * sum;
        for (kept = 0; kept < n;) {
            acc = acc + w[idx[kept++]];
            if (acc >= target) break;
        }
        sum = acc;
    }
    float target = u * sum, acc = 0.0f;
    for (int k = 0; k < kept; k++) {
        int i = top_p < 1.0f ? idx[k] : k;
        acc = acc + w[i];
        if (acc > target) return i;
    }
    // Rounding left the target at the very end: the last token with any weight.
    for (int k = kept - 1; k > 0; k--)
        if (w[top_p < 1.0f ? idx[k] : k] > 0.0f) return top_p < 1.0f ? idx[k] : k;
    return top_p < 1.0f ? idx[0] : 0;
}
