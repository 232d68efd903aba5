// See args.h. Every value is checked here, so the rest of the guest trusts its arguments.
#include "args.h"

#include <string.h>

enum { K_MODE, K_STEPS, K_BATCH, K_LR, K_MOMENTUM, K_OPTIMIZER, K_WD, K_SEED, K_DIMS, N_KEYS };
static const char *const KEYS[N_KEYS] = {"mode",      "steps", "batch", "lr",  "momentum",
                                         "optimizer", "wd",    "seed",  "dims"};

int parse_decimal(const char *s, double *out) {
    int neg = 0, digits = 0, frac = 0, point = 0;
    uint64_t m = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    for (; *s; s++) {
        if (*s == '.' && !point) {
            point = 1;
            continue;
        }
        if (*s < '0' || *s > '9' || ++digits > 15) return 0;
        m = m * 10 + (uint64_t)(*s - '0');  // < 10^15 < 2^53: exact in double
        frac += point;
    }
    if (!digits) return 0;
    double p = 1.0;
    for (int i = 0; i < frac; i++) p *= 10.0;  // 10^15 at most: exact
    double v = (double)m / p;                   // one correctly rounded division
    *out = neg ? -v : v;
    return 1;
}

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

static uint32_t parse_count(const char *key, const char *v, uint32_t max) {
    uint64_t n;
    if (!parse_u64(v, max, &n) || n == 0) fail(2, "%s=%.40s: want a whole number 1..%u", key, v, max);
    return (uint32_t)n;
}

static float parse_float(const char *key, const char *v, double lo, double hi, int lo_open) {
    double d;
    if (!parse_decimal(v, &d) || d < lo || d > hi || (lo_open && d == lo))
        fail(2, "%s=%.40s: want a decimal in %s%g, %g]", key, v, lo_open ? "(" : "[", lo, hi);
    return (float)d;
}

static void parse_dims(args *a, const char *v) {
    uint32_t n = 0;
    const char *p = v;
    for (;;) {
        char num[16];
        size_t len = strcspn(p, ",");
        uint64_t d;
        if (n == MAX_LAYERS + 1 || len == 0 || len >= sizeof num) break;
        memcpy(num, p, len);
        num[len] = 0;
        if (!parse_u64(num, MAX_DIM, &d) || d == 0) break;
        a->dims[n++] = (uint32_t)d;
        p += len;
        if (!*p) {
            if (n < 2) break;
            a->n_layers = n - 1;
            return;
        }
        p++;
    }
    fail(2, "dims=%.80s: want 2..%d widths 1..%d, comma-separated", v, MAX_LAYERS + 1, MAX_DIM);
}

void args_parse(args *a, int argc, char **argv) {
    static const uint32_t DEFAULT_DIMS[3] = {64, 32, 10};
    memset(a, 0, sizeof *a);
    a->mode = MODE_TRAIN;
    a->steps = 20;
    a->batch = 32;
    a->lr = 0.1f;
    a->momentum = 0.9f;
    a->opt = OPT_SGDM;
    a->n_layers = 2;
    memcpy(a->dims, DEFAULT_DIMS, sizeof DEFAULT_DIMS);
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
        switch (key) {
            case K_MODE:
                if (!strcmp(v, "train")) a->mode = MODE_TRAIN;
                else if (!strcmp(v, "init")) a->mode = MODE_INIT;
                else if (!strcmp(v, "eval")) a->mode = MODE_EVAL;
                else fail(2, "mode=%.40s: want train, init or eval", v);
                break;
            case K_STEPS: a->steps = parse_count("steps", v, MAX_STEPS); break;
            case K_BATCH: a->batch = parse_count("batch", v, MAX_BATCH); break;
            case K_LR: a->lr = parse_float("lr", v, 0.0, 1000.0, 1); break;
            case K_MOMENTUM: a->momentum = parse_float("momentum", v, 0.0, 0.999999, 0); break;
            case K_WD: a->wd = parse_float("wd", v, 0.0, 1000.0, 0); break;
            case K_OPTIMIZER:
                if (!strcmp(v, "sgdm")) a->opt = OPT_SGDM;
                else if (!strcmp(v, "adamw")) a->opt = OPT_ADAMW;
                else fail(2, "optimizer=%.40s: want sgdm or adamw", v);
                break;
            case K_SEED:
                if (!parse_u64(v, UINT64_MAX, &a->seed))
                    fail(2, "seed=%.40s: want a whole number 0..2^64-1", v);
                break;
            default: parse_dims(a, v); break;
        }
    }
}
