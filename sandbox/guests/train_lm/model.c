// See lm.h: the layout, the initialisation and the forward pass. Float arithmetic (f32, losses
// in double) with every sum in vec.h's fixed order and positions in ascending order; exp and
// log from ../llm/mathx.c (basic IEEE operations only, no libm); -ffp-contract=off.
#include <stdlib.h>

#include "../llm/mathx.h"
#include "vec.h"
#include "work.h"

const char *lm_layout_new(lm_layout *lay, const lm_config *c) {
    if (c->vocab < 2 || c->vocab > LM_MAX_VOCAB) return "vocab: want 2..256";
    if (c->ctx < 1 || c->ctx > LM_MAX_CTX) return "ctx: want 1..1024";
    if (c->d < 1 || c->d > LM_MAX_D) return "d: want 1..1024";
    if (c->layers < 1 || c->layers > LM_MAX_LAYERS) return "layers: want 1..8";
    if (c->heads < 1 || c->d % c->heads) return "heads: want a divisor of d";
    if (c->ff < 1 || c->ff > LM_MAX_FF) return "ff: want 1..4096";
    uint64_t D = c->d, F = c->ff, at = 0;  // at most ~2^36 below: no overflow
    lay->c = *c;
    lay->wte = (uint32_t)at, at += (uint64_t)c->vocab * D;
    lay->wpe = (uint32_t)at, at += (uint64_t)c->ctx * D;
    for (uint32_t l = 0; l < c->layers; l++) {
        lm_block *b = &lay->block[l];
        if (at > MAX_PARAMS) break;
        b->ln1_g = (uint32_t)at, at += D;
        b->ln1_b = (uint32_t)at, at += D;
        b->wqkv = (uint32_t)at, at += 3 * D * D;
        b->bqkv = (uint32_t)at, at += 3 * D;
        b->wo = (uint32_t)at, at += D * D;
        b->bo = (uint32_t)at, at += D;
        b->ln2_g = (uint32_t)at, at += D;
        b->ln2_b = (uint32_t)at, at += D;
        b->w1 = (uint32_t)at, at += F * D;
        b->b1 = (uint32_t)at, at += F;
        b->w2 = (uint32_t)at, at += D * F;
        b->b2 = (uint32_t)at, at += D;
    }
    if (at > MAX_PARAMS) return "more than 2^22 parameters";
    lay->lnf_g = (uint32_t)at, at += D;
    lay->lnf_b = (uint32_t)at, at += D;
    lay->wout = (uint32_t)at, at += (uint64_t)c->vocab * D;
    lay->bout = (uint32_t)at, at += c->vocab;
    if (at > MAX_PARAMS) return "more than 2^22 parameters";
    lay->n_params = (uint32_t)at;
    // One window's activations (lm_work_new): at most 2^25 floats (128 MiB).
    uint64_t T = c->ctx, per_block = T * (10 * D + 2 * F + 2) + (uint64_t)c->heads * T * T;
    uint64_t work = c->layers * per_block + T * (10 * D + F + 2 * c->vocab + 2) + c->vocab;
    if (work > (1u << 25)) return "one window's activations would take more than 2^25 floats";
    return NULL;
}

static float *floats(uint64_t n) { return xcalloc((size_t)n, sizeof(float)); }

static void ln_alloc(ln_cache *c, uint64_t T, uint64_t D) {
    c->xhat = floats(T * D);
    c->y = floats(T * D);
    c->rstd = floats(T);
}

lm_work *lm_work_new(const lm_layout *lay) {
    const lm_config *c = &lay->c;
    uint64_t T = c->ctx, D = c->d, F = c->ff, V = c->vocab, L = c->layers;
    lm_work *w = xcalloc(1, sizeof *w);
    w->h = floats((L + 1) * T * D);
    w->hm = floats(L * T * D);
    for (uint32_t l = 0; l < L; l++) {
        block_cache *b = &w->b[l];
        ln_alloc(&b->ln1, T, D);
        ln_alloc(&b->ln2, T, D);
        b->qkv = floats(T * 3 * D);
        b->p = floats(c->heads * T * T);
        b->att = floats(T * D);
        b->f = floats(T * F);
        b->r = floats(T * F);
    }
    ln_alloc(&w->lnf, T, D);
    w->logits = floats(T * V);
    w->dlogits = floats(T * V);
    w->dh = floats(T * D);
    w->dy = floats(T * D);
    w->datt = floats(T * D);
    w->tmp = floats(T * D);
    w->dqkv = floats(T * 3 * D);
    w->dr = floats(T * F);
    w->dp = floats(T);
    w->e = floats(V);
    return w;
}

void lm_init(float *p, const lm_layout *lay, uint64_t seed) {
    const lm_config *c = &lay->c;
    uint64_t s = seed, D = c->d, F = c->ff;
    double a = 0.02 * __builtin_sqrt(3.0), deep = a / __builtin_sqrt(2.0 * c->layers);
    float *at = p;
#define FILL(n, lim)                                                          \
    for (uint64_t k = 0; k < (n); k++) {                                      \
        double u = (double)(rng_next(&s) >> 11) * 0x1p-53; /* [0, 1) */       \
        *at++ = (float)((2.0 * u - 1.0) * (lim));                             \
    }
#define CONST(n, v) \
    for (uint64_t k = 0; k < (n); k++) *at++ = (v);
    FILL(c->vocab * D, a);  // wte
    FILL(c->ctx * D, a);    // wpe
    for (uint32_t l = 0; l < c->layers; l++) {
        CONST(D, 1.0f);  // ln1
        CONST(D, 0.0f);
        FILL(3 * D * D, a);  // wqkv
        CONST(3 * D, 0.0f);
        FILL(D * D, deep);  // wo
        CONST(D, 0.0f);
        CONST(D, 1.0f);  // ln2
        CONST(D, 0.0f);
        FILL(F * D, a);  // w1
        CONST(F, 0.0f);
        FILL(D * F, deep);  // w2
        CONST(D, 0.0f);
    }
    CONST(D, 1.0f);  // lnf
    CONST(D, 0.0f);
    FILL(c->vocab * D, a);  // wout
    CONST(c->vocab, 0.0f);
#undef FILL
#undef CONST
}

// out[t] = W in[t] + b for t < n: out[t][o] = dot(W[o], in[t]) + b[o].
static void linear(float *out, const float *in, const float *W, const float *b, uint32_t n,
                   uint32_t ni, uint32_t no) {
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t o = 0; o < no; o++)
            out[(size_t)t * no + o] = dot(W + (size_t)o * ni, in + (size_t)t * ni, ni) + b[o];
}

// y = (x - mean) / sqrt(var + 1e-5) * g + b per position; mean = sum x / D,
// var = sum (x - mean)^2 / D (population variance).
static void layernorm(ln_cache *c, const float *x, const float *g, const float *b, uint32_t n,
                      uint32_t D) {
    for (uint32_t t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * D;
        float *xh = c->xhat + (size_t)t * D, *y = c->y + (size_t)t * D;
        float mean = vsum(xt, D) / (float)D;
        for (uint32_t i = 0; i < D; i++) xh[i] = xt[i] - mean;
        float var = dot(xh, xh, D) / (float)D, rs = 1.0f / mx_sqrt(var + 1e-5f);
        c->rstd[t] = rs;
        for (uint32_t i = 0; i < D; i++) {
            xh[i] = xh[i] * rs;
            y[i] = xh[i] * g[i] + b[i];
        }
    }
}

// Causal self-attention of each head (head width hd = D / H): s_u = dot(q_t, k_u) * scale
// for u <= t, scale = 1 / sqrt(hd); p_u = exp(s_u - max) / sum; out_t = sum_u p_u v_u.
static void attention(block_cache *b, const lm_config *c, uint32_t n) {
    uint32_t D = c->d, T = c->ctx, hd = D / c->heads;
    size_t row = 3 * (size_t)D;
    float scale = 1.0f / mx_sqrt((float)hd);
    for (uint32_t hh = 0; hh < c->heads; hh++) {
        for (uint32_t t = 0; t < n; t++) {
            const float *q = b->qkv + t * row + hh * hd;
            float *pr = b->p + ((size_t)hh * T + t) * T, mx = 0.0f, sum = 0.0f;
            for (uint32_t u = 0; u <= t; u++) {
                pr[u] = dot(q, b->qkv + u * row + D + hh * hd, hd) * scale;
                if (u == 0 || pr[u] > mx) mx = pr[u];
            }
            for (uint32_t u = 0; u <= t; u++) {
                pr[u] = mx_exp(pr[u] - mx);
                sum += pr[u];
            }
            float *out = b->att + (size_t)t * D + hh * hd;
            for (uint32_t i = 0; i < hd; i++) out[i] = 0.0f;
            for (uint32_t u = 0; u <= t; u++) {
                pr[u] = pr[u] / sum;
                axpy(out, pr[u], b->qkv + u * row + 2 * (size_t)D + hh * hd, hd);
            }
        }
    }
}

double lm_xent(const float *z, uint32_t V, uint32_t y, float *e, float *dz, float scale) {
    float mx = z[0], s = 0.0f;
    for (uint32_t k = 1; k < V; k++)
        if (z[k] > mx) mx = z[k];
    for (uint32_t k = 0; k < V; k++) {
        e[k] = mx_exp(z[k] - mx);
        s += e[k];
    }
    if (dz)
        for (uint32_t k = 0; k < V; k++) dz[k] = (e[k] / s - (k == y ? 1.0f : 0.0f)) * scale;
    return mx_log((double)s) - (double)(z[y] - mx);
}

double lm_sequence(lm_work *w, const lm_layout *lay, const float *p, const uint8_t *x,
                   const uint8_t *y, uint32_t n, float scale, float *grad,
                   const float **last_logits) {
    const lm_config *c = &lay->c;
    uint32_t D = c->d, F = c->ff, V = c->vocab, T = c->ctx;
    size_t TD = (size_t)T * D;
    for (uint32_t t = 0; t < n; t++) {
        float *h = w->h + (size_t)t * D;
        const float *te = p + lay->wte + (size_t)x[t] * D, *pe = p + lay->wpe + (size_t)t * D;
        for (uint32_t i = 0; i < D; i++) h[i] = te[i] + pe[i];
    }
    for (uint32_t l = 0; l < c->layers; l++) {
        const lm_block *k = &lay->block[l];
        block_cache *b = &w->b[l];
        float *h = w->h + l * TD, *hm = w->hm + l * TD, *next = h + TD;
        layernorm(&b->ln1, h, p + k->ln1_g, p + k->ln1_b, n, D);
        linear(b->qkv, b->ln1.y, p + k->wqkv, p + k->bqkv, n, D, 3 * D);
        attention(b, c, n);
        linear(w->tmp, b->att, p + k->wo, p + k->bo, n, D, D);
        for (size_t i = 0; i < (size_t)n * D; i++) hm[i] = h[i] + w->tmp[i];
        layernorm(&b->ln2, hm, p + k->ln2_g, p + k->ln2_b, n, D);
        linear(b->f, b->ln2.y, p + k->w1, p + k->b1, n, D, F);
        for (size_t i = 0; i < (size_t)n * F; i++) b->r[i] = b->f[i] > 0.0f ? b->f[i] : 0.0f;
        linear(w->tmp, b->r, p + k->w2, p + k->b2, n, F, D);
        for (size_t i = 0; i < (size_t)n * D; i++) next[i] = hm[i] + w->tmp[i];
    }
    const float *top = w->h + c->layers * TD;
    layernorm(&w->lnf, top, p + lay->lnf_g, p + lay->lnf_b, n, D);
    if (!y) {  // the next token's logits only
        const float *in = w->lnf.y + (size_t)(n - 1) * D;
        linear(w->logits, in, p + lay->wout, p + lay->bout, 1, D, V);
        *last_logits = w->logits;
        return 0.0;
    }
    linear(w->logits, w->lnf.y, p + lay->wout, p + lay->bout, n, D, V);
    double loss = 0.0;
    for (uint32_t t = 0; t < n; t++)
        loss += lm_xent(w->logits + (size_t)t * V, V, y[t], w->e,
                        grad ? w->dlogits + (size_t)t * V : NULL, scale);
    if (grad) lm_backward(w, lay, p, x, n, grad);
    return loss;
}
