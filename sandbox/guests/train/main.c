// The training guest's I/O (docs/training.md, "The training guest"; README.md):
//   mode=train  /input/weights.swt, /input/shard.sdg -> /output/update.swt, /output/stats.json
//   mode=init   -> /output/weights.swt
//   mode=eval   /input/weights.swt, /input/shard.sdg -> /output/eval.json
// Natively (train-native) the same paths under the directory $TRAIN_ROOT, with the same
// key=value arguments. Exit codes: 0 done; 2 bad input, nothing written; 1 could not finish.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "formats.h"
#include "mlp.h"

#define MAX_WEIGHTS_BYTES (8 + 4 * (MAX_LAYERS + 1) + 4 * (size_t)MAX_PARAMS)
#define MAX_SHARD_BYTES ((size_t)128 << 20)

_Noreturn void fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("train: ", stderr);
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

// A JSON number with 9 significant digits (%.9g: glibc and wasi-libc both round exactly;
// tests/train.rs holds the native and wasm builds' bytes equal), or null if not finite.
static const char *num(char *buf, size_t cap, double v) {
    if (__builtin_isfinite(v)) snprintf(buf, cap, "%.9g", v);
    else snprintf(buf, cap, "null");
    return buf;
}

static void write_json(const char *rel, const char *text) {
    char *p = at(rel);
    write_file(p, text, strlen(text));
    free(p);
}

static void load(weights *w, shard *s) {
    size_t wl, sl;
    char *wp = at("/input/weights.swt"), *sp = at("/input/shard.sdg");
    uint8_t *wb = read_file(wp, MAX_WEIGHTS_BYTES, &wl);
    weights_parse(wb, wl, "weights.swt", w);
    free(wb);
    const uint8_t *sb = read_file(sp, MAX_SHARD_BYTES, &sl);  // records point into it
    shard_parse(sb, sl, "shard.sdg", s);
    if (s->d != w->dims[0])
        fail(2, "shard.sdg has d = %u, the weights take %u inputs", s->d, w->dims[0]);
    uint32_t classes = w->dims[w->n_layers];
    for (uint32_t r = 0; r < s->n; r++)
        if (s->records[(size_t)r * (s->d + 1) + s->d] >= classes)
            fail(2, "shard.sdg: record %u has a label >= %u classes", r, classes);
    free(wp);
    free(sp);
}

// Fisher-Yates from the top: j = below(i + 1) for i = n - 1 down to 1.
static void shuffle(uint32_t *perm, uint32_t n, uint64_t *rng) {
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = rng_below(rng, (uint64_t)i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static void train(const args *a, weights *w, const shard *s) {
    uint32_t P = w->n_params, rec = s->d + 1;
    mlp m;
    mlp_new(&m, w->n_layers, w->dims);
    float *start = xcalloc(P, sizeof(float)), *grad = xcalloc(P, sizeof(float));
    memcpy(start, w->params, (size_t)P * sizeof(float));
    opt_state o = {a->lr, a->momentum, a->wd, xcalloc(P, sizeof(float)), NULL, 1.0, 1.0};
    if (a->opt == OPT_ADAMW) o.v = xcalloc(P, sizeof(float));
    // Minibatches: a permutation of the shard, shuffled again each time it is used up (the
    // first time before the first sample), so no record repeats within an epoch.
    uint32_t *perm = xcalloc(s->n, sizeof(uint32_t)), pos = s->n, pred;
    for (uint32_t i = 0; i < s->n; i++) perm[i] = i;
    uint64_t rng = a->seed;
    double first = 0.0, last = 0.0, sum = 0.0;
    for (uint32_t step = 0; step < a->steps; step++) {
        memset(grad, 0, (size_t)P * sizeof(float));
        double loss = 0.0;
        for (uint32_t j = 0; j < a->batch; j++) {
            if (pos == s->n) shuffle(perm, s->n, &rng), pos = 0;
            const uint8_t *r = s->records + (size_t)perm[pos++] * rec;
            loss += mlp_sample(&m, w->params, r, a->batch, grad, &pred);
        }
        loss /= (double)a->batch;
        if (step == 0) first = loss;
        last = loss;
        sum += loss;
        if (a->opt == OPT_ADAMW) adamw_step(&o, w->params, grad, P);
        else sgdm_step(&o, w->params, grad, P);
    }
    for (uint32_t k = 0; k < P; k++) start[k] = w->params[k] - start[k];  // the update
    char *up = at("/output/update.swt");
    weights_write(up, w->n_layers, w->dims, start, P);
    char f1[32], f2[32], f3[32], json[256];
    snprintf(json, sizeof json,
             "{\"loss_first\":%s,\"loss_last\":%s,\"loss_mean\":%s,\"steps\":%u,"
             "\"samples\":%u,\"params\":%u}\n",
             num(f1, sizeof f1, first), num(f2, sizeof f2, last),
             num(f3, sizeof f3, sum / (double)a->steps), a->steps, s->n, P);
    write_json("/output/stats.json", json);
}

static void eval(weights *w, const shard *s) {
    mlp m;
    mlp_new(&m, w->n_layers, w->dims);
    double sum = 0.0;
    uint32_t right = 0, pred;
    for (uint32_t r = 0; r < s->n; r++) {
        const uint8_t *rec = s->records + (size_t)r * (s->d + 1);
        sum += mlp_sample(&m, w->params, rec, 1, NULL, &pred);
        right += pred == rec[s->d];
    }
    char f1[32], f2[32], json[160];
    snprintf(json, sizeof json, "{\"loss\":%s,\"accuracy\":%s,\"samples\":%u}\n",
             num(f1, sizeof f1, sum / (double)s->n), num(f2, sizeof f2, (double)right / s->n),
             s->n);
    write_json("/output/eval.json", json);
}

int main(int argc, char **argv) {
    args a;
    args_parse(&a, argc, argv);
    if (a.mode == MODE_INIT) {
        uint32_t P = count_params(a.n_layers, a.dims);
        if (!P) fail(2, "dims= make more than %u parameters", MAX_PARAMS);
        float *w = xcalloc(P, sizeof(float));
        mlp_init(w, a.n_layers, a.dims, a.seed);
        char *p = at("/output/weights.swt");
        weights_write(p, a.n_layers, a.dims, w, P);
        return 0;
    }
    weights w;
    shard s;
    load(&w, &s);
    if (a.mode == MODE_EVAL) eval(&w, &s);
    else train(&a, &w, &s);
    return 0;
}
