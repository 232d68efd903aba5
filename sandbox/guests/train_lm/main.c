// The language-model training guest's I/O (docs/training.md, "A second model"; README.md):
//   mode=train   /input/weights.lmw, /input/corpus.txt -> /output/update.lmw, /output/stats.json
//   mode=grad    the same inputs -> /output/grad.lmw (one batch's gradient), /output/stats.json
//   mode=init    -> /output/weights.lmw
//   mode=eval    /input/weights.lmw, /input/corpus.txt -> /output/eval.json
//   mode=sample  /input/weights.lmw, /input/prompt.txt -> /output/sample.txt
// The shard is bytes [from, to) of the corpus. Natively (train_lm-native) the same paths under
// the directory $TRAIN_ROOT. Exit codes: 0 done; 2 bad input, nothing written; 1 could not finish.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../train/formats.h"
#include "../train/mlp.h"
#include "lmargs.h"

#define MAX_WEIGHTS_BYTES (LMW_HEADER + 4 * (size_t)MAX_PARAMS)
#define MAX_CORPUS_BYTES ((size_t)256 << 20)

_Noreturn void fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("train_lm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fail(1, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

// `rel` ("/input/...", "/output/...") under $TRAIN_ROOT natively, as it is in the sandbox.
static char *at(const char *rel) {
    const char *root = "";
#ifndef __wasi__
    const char *env = getenv("TRAIN_ROOT");
    if (env) root = env;
#endif
    size_t len = strlen(root) + strlen(rel) + 1;
    char *p = xcalloc(len, 1);
    snprintf(p, len, "%s%s", root, rel);
    return p;
}

static uint8_t *read_input(const char *name, size_t max, size_t *len) {
    char rel[64];
    snprintf(rel, sizeof rel, "/input/%s", name);
    char *p = at(rel);
    uint8_t *b = read_file(p, max, len);
    free(p);
    return b;
}

static void write_output(const char *name, const void *data, size_t len) {
    char rel[64];
    snprintf(rel, sizeof rel, "/output/%s", name);
    char *p = at(rel);
    write_file(p, data, len);
    free(p);
}

// A JSON number with 9 significant digits (%.9g rounds exactly in glibc and wasi-libc), or null.
static const char *num(char *buf, size_t cap, double v) {
    if (__builtin_isfinite(v)) snprintf(buf, cap, "%.9g", v);
    else snprintf(buf, cap, "null");
    return buf;
}

static float *load_weights(lm_layout *lay) {
    size_t len;
    uint8_t *b = read_input("weights.lmw", MAX_WEIGHTS_BYTES, &len);
    float *p = lmw_parse(b, len, "weights.lmw", lay);
    free(b);
    return p;
}

// The shard [from, to) of /input/corpus.txt, checked: inside the corpus, at least ctx + 1
// bytes, every byte below vocab. Returns the corpus; *from and *to set.
static const uint8_t *load_shard(const lm_args *a, const lm_layout *lay, uint32_t *from,
                                 uint32_t *to) {
    size_t len;
    const uint8_t *text = read_input("corpus.txt", MAX_CORPUS_BYTES, &len);
    uint32_t T = lay->c.ctx, f = a->from, t = a->to ? a->to : (uint32_t)len;
    if (a->to > len) fail(2, "to=%u: past the end of corpus.txt (%zu bytes)", a->to, len);
    if (f >= t) fail(2, "from=%u: not before to=%u (corpus.txt has %zu bytes)", f, t, len);
    if (t - f < T + 1)
        fail(2, "the shard [%u, %u) has %u bytes, want at least ctx + 1 = %u", f, t, t - f,
             T + 1);
    for (uint32_t i = f; i < t; i++)
        if (text[i] >= lay->c.vocab)
            fail(2, "corpus.txt: byte %u is %u, not below vocab = %u", i, text[i], lay->c.vocab);
    *from = f;
    *to = t;
    return text;
}

// One batch: `batch` windows of ctx + 1 bytes, each starting at from + below(to - from - ctx)
// (splitmix64 from the seed, one draw a window, in order). Adds the gradient of the mean loss
// over batch x ctx predictions to grad; returns that mean loss.
static double batch_step(lm_work *w, const lm_layout *lay, const float *p, const uint8_t *text,
                         uint32_t from, uint32_t to, uint32_t batch, uint64_t *rng,
                         float *grad) {
    uint32_t T = lay->c.ctx;
    float scale = 1.0f / (float)((uint64_t)batch * T);
    double loss = 0.0;
    for (uint32_t j = 0; j < batch; j++) {
        const uint8_t *x = text + from + rng_below(rng, (uint64_t)(to - from - T));
        loss += lm_sequence(w, lay, p, x, x + 1, T, scale, grad, NULL);
    }
    return loss / ((double)batch * T);
}

static void train(const lm_args *a, int grad_only) {
    lm_layout lay;
    float *p = load_weights(&lay);
    uint32_t from, to, P = lay.n_params;
    const uint8_t *text = load_shard(a, &lay, &from, &to);
    lm_work *w = lm_work_new(&lay);
    float *start = xcalloc(P, sizeof(float)), *grad = xcalloc(P, sizeof(float));
    uint64_t rng = a->seed;
    char f1[32], f2[32], f3[32], json[256];
    if (grad_only) {
        double loss = batch_step(w, &lay, p, text, from, to, a->batch, &rng, grad);
        char *path = at("/output/grad.lmw");
        lmw_write(path, &lay, grad);
        snprintf(json, sizeof json, "{\"loss\":%s,\"params\":%u}\n", num(f1, sizeof f1, loss), P);
        write_output("stats.json", json, strlen(json));
        return;
    }
    memcpy(start, p, (size_t)P * sizeof(float));
    opt_state o = {a->lr, 0.0f, a->wd, xcalloc(P, sizeof(float)), xcalloc(P, sizeof(float)),
                   1.0, 1.0};
    double first = 0.0, last = 0.0, sum = 0.0;
    for (uint32_t step = 0; step < a->steps; step++) {
        memset(grad, 0, (size_t)P * sizeof(float));
        double loss = batch_step(w, &lay, p, text, from, to, a->batch, &rng, grad);
        if (step == 0) first = loss;
        last = loss;
        sum += loss;
        adamw_step(&o, p, grad, P);
    }
    for (uint32_t k = 0; k < P; k++) start[k] = p[k] - start[k];  // the update
    char *path = at("/output/update.lmw");
    lmw_write(path, &lay, start);
    snprintf(json, sizeof json,
             "{\"loss_first\":%s,\"loss_last\":%s,\"loss_mean\":%s,\"steps\":%u,"
             "\"tokens\":%llu,\"params\":%u}\n",
             num(f1, sizeof f1, first), num(f2, sizeof f2, last),
             num(f3, sizeof f3, sum / (double)a->steps), a->steps,
             (unsigned long long)a->steps * a->batch * lay.c.ctx, P);
    write_output("stats.json", json, strlen(json));
}

// The mean loss over the windows of ctx + 1 bytes at from, from + ctx, ... inside [from, to).
static void eval(const lm_args *a) {
    lm_layout lay;
    float *p = load_weights(&lay);
    uint32_t from, to, T = lay.c.ctx;
    const uint8_t *text = load_shard(a, &lay, &from, &to);
    lm_work *w = lm_work_new(&lay);
    double sum = 0.0;
    uint64_t n = 0;
    for (uint64_t s = from; s + T + 1 <= to; s += T, n += T)
        sum += lm_sequence(w, &lay, p, text + s, text + s + 1, T, 0.0f, NULL, NULL);
    char f1[32], json[128];
    snprintf(json, sizeof json, "{\"loss\":%s,\"tokens\":%llu}\n",
             num(f1, sizeof f1, sum / (double)n), (unsigned long long)n);
    write_output("eval.json", json, strlen(json));
}

// Greedy continuation of /input/prompt.txt: `tokens` bytes, each the highest logit (the lowest
// byte on a tie) given the last ctx bytes so far. /output/sample.txt: the continuation only.
static void sample(const lm_args *a) {
    lm_layout lay;
    float *p = load_weights(&lay);
    size_t len;
    uint8_t *prompt = read_input("prompt.txt", 1 << 20, &len);
    uint32_t T = lay.c.ctx, V = lay.c.vocab;
    if (len == 0) fail(2, "prompt.txt is empty");
    for (size_t i = 0; i < len; i++)
        if (prompt[i] >= V) fail(2, "prompt.txt: byte %zu is %u, not below vocab", i, prompt[i]);
    uint8_t *text = xcalloc(len + a->tokens, 1);
    memcpy(text, prompt, len);
    lm_work *w = lm_work_new(&lay);
    for (size_t n = len; n < len + a->tokens; n++) {
        uint32_t ctx = n < T ? (uint32_t)n : T;
        const float *z;
        lm_sequence(w, &lay, p, text + n - ctx, NULL, ctx, 0.0f, NULL, &z);
        uint32_t best = 0;
        for (uint32_t k = 1; k < V; k++)
            if (z[k] > z[best]) best = k;
        text[n] = (uint8_t)best;
    }
    write_output("sample.txt", text + len, a->tokens);
}

int main(int argc, char **argv) {
    lm_args a;
    lm_args_parse(&a, argc, argv);
    switch (a.mode) {
        case LM_INIT: {
            lm_layout lay;
            const char *bad = lm_layout_new(&lay, &a.config);
            if (bad) fail(2, "%s", bad);
            float *p = xcalloc(lay.n_params, sizeof(float));
            lm_init(p, &lay, a.seed);
            char *path = at("/output/weights.lmw");
            lmw_write(path, &lay, p);
            break;
        }
        case LM_TRAIN: train(&a, 0); break;
        case LM_GRAD: train(&a, 1); break;
        case LM_EVAL: eval(&a); break;
        default: sample(&a); break;
    }
    return 0;
}
