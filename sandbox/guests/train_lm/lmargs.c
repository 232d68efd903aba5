// See lmargs.h. Decimals through ../train/args.c's parse_decimal (the same bits everywhere);
// files through ../train/formats.c's read_file and write_file.
#include "lmargs.h"

#include <stdlib.h>
#include <string.h>

#include "../train/args.h"
#include "../train/formats.h"

enum {
    K_MODE, K_STEPS, K_BATCH, K_LR, K_WD, K_SEED, K_FROM, K_TO, K_TOKENS,
    K_VOCAB, K_CTX, K_D, K_LAYERS, K_HEADS, K_FF, N_KEYS
};
static const char *const KEYS[N_KEYS] = {"mode", "steps",  "batch", "lr",     "wd",
                                         "seed", "from",   "to",    "tokens", "vocab",
                                         "ctx",  "d",      "layers", "heads", "ff"};

// Decimal digits only, no sign, at most `max`.
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static uint32_t parse_count(const char *key, const char *v, uint32_t min, uint32_t max) {
    uint64_t n;
    if (!parse_u64(v, max, &n) || n < min)
        fail(2, "%s=%.40s: want a whole number %u..%u", key, v, min, max);
    return (uint32_t)n;
}

static float parse_float(const char *key, const char *v, double lo, double hi, int lo_open) {
    double d;
    if (!parse_decimal(v, &d) || d < lo || d > hi || (lo_open && d == lo))
        fail(2, "%s=%.40s: want a decimal in %s%g, %g]", key, v, lo_open ? "(" : "[", lo, hi);
    return (float)d;
}

static lm_mode parse_mode(const char *v) {
    static const char *const MODES[] = {"train", "init", "eval", "grad", "sample"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(v, MODES[i])) return (lm_mode)i;
    fail(2, "mode=%.40s: want train, init, eval, grad or sample", v);
}

void lm_args_parse(lm_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->mode = LM_TRAIN;
    a->steps = 10;
    a->batch = 8;
    a->tokens = 200;
    a->lr = 0.003f;
    a->config = (lm_config){256, 64, 96, 2, 4, 384};
    unsigned seen = 0;
    for (int k = 1; k < argc; k++) {
        const char *arg = argv[k], *eq = strchr(arg, '=');
        if (!eq) fail(2, "argument %.40s is not key=value", arg);
        size_t klen = (size_t)(eq - arg);
        const char *v = eq + 1;
        int key = -1;
        for (int i = 0; i < N_KEYS; i++)
            if (strlen(KEYS[i]) == klen && !memcmp(KEYS[i], arg, klen)) key = i;
        if (key < 0) fail(2, "unknown key in %.40s", arg);
        if (seen & (1u << key)) fail(2, "%s given twice", KEYS[key]);
        seen |= 1u << key;
        lm_config *c = &a->config;
        switch (key) {
            case K_MODE: a->mode = parse_mode(v); break;
            case K_STEPS: a->steps = parse_count("steps", v, 1, 100000); break;
            case K_BATCH: a->batch = parse_count("batch", v, 1, 4096); break;
            case K_TOKENS: a->tokens = parse_count("tokens", v, 1, 100000); break;
            case K_LR: a->lr = parse_float("lr", v, 0.0, 1000.0, 1); break;
            case K_WD: a->wd = parse_float("wd", v, 0.0, 1000.0, 0); break;
            case K_SEED:
                if (!parse_u64(v, UINT64_MAX, &a->seed))
                    fail(2, "seed=%.40s: want a whole number 0..2^64-1", v);
                break;
            case K_FROM: a->from = parse_count("from", v, 0, UINT32_MAX); break;
            case K_TO: a->to = parse_count("to", v, 1, UINT32_MAX); break;
            case K_VOCAB: c->vocab = parse_count("vocab", v, 2, LM_MAX_VOCAB); break;
            case K_CTX: c->ctx = parse_count("ctx", v, 1, LM_MAX_CTX); break;
            case K_D: c->d = parse_count("d", v, 1, LM_MAX_D); break;
            case K_LAYERS: c->layers = parse_count("layers", v, 1, LM_MAX_LAYERS); break;
            case K_HEADS: c->heads = parse_count("heads", v, 1, LM_MAX_D); break;
            default: c->ff = parse_count("ff", v, 1, LM_MAX_FF); break;
        }
    }
    if ((seen >> K_VOCAB) && a->mode != LM_INIT)
        fail(2, "vocab, ctx, d, layers, heads and ff are for mode=init (the weights name them)");
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

float *lmw_parse(const uint8_t *buf, size_t len, const char *what, lm_layout *lay) {
    if (len < LMW_HEADER || memcmp(buf, "LMW1", 4))
        fail(2, "%s: not a language model's weights (magic LMW1, a 28-byte header)", what);
    lm_config c = {rd32(buf + 4),  rd32(buf + 8),  rd32(buf + 12),
                   rd32(buf + 16), rd32(buf + 20), rd32(buf + 24)};
    const char *bad = lm_layout_new(lay, &c);
    if (bad) fail(2, "%s: %s", what, bad);
    size_t want = LMW_HEADER + 4 * (size_t)lay->n_params;
    if (len != want)
        fail(2, "%s: %zu bytes, its config makes %zu (%s)", what, len, want,
             len < want ? "truncated" : "trailing bytes");
    float *p = xcalloc(lay->n_params, sizeof(float));
    for (uint32_t k = 0; k < lay->n_params; k++) {
        uint32_t bits = rd32(buf + LMW_HEADER + 4 * (size_t)k);
        memcpy(&p[k], &bits, 4);
    }
    return p;
}

void lmw_write(const char *path, const lm_layout *lay, const float *params) {
    size_t len = LMW_HEADER + 4 * (size_t)lay->n_params;
    uint8_t *buf = xcalloc(len, 1);
    const lm_config *c = &lay->c;
    memcpy(buf, "LMW1", 4);
    uint32_t head[6] = {c->vocab, c->ctx, c->d, c->layers, c->heads, c->ff};
    for (int i = 0; i < 6; i++) wr32(buf + 4 + 4 * i, head[i]);
    for (uint32_t k = 0; k < lay->n_params; k++) {
        uint32_t bits;
        memcpy(&bits, &params[k], 4);
        wr32(buf + LMW_HEADER + 4 * (size_t)k, bits);
    }
    write_file(path, buf, len);
    free(buf);
}
