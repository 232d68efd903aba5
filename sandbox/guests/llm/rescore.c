// The rescoring mode (docs/ai.md, "Re-scoring a generation"): instead of generating, check a
// generation job's claimed completions against the model with one teacher-forced pass each.
//
// In: the model, the job's prompts and its claimed /output/completions.jsonl (one line per
// request, each with its "tokens"). For each request, in order:
//   1. the stop rule: the claimed tokens are run through the generation loop's own bookkeeping
//      (gen_step), so a completion that goes on past an end token, a stop string or
//      max_tokens, or that ends before one without reaching max_tokens or the context, is
//      wrong (an error line, for a bad request or prompt, must be the one the guest writes);
//   2. one batched prefill over prompt + claimed tokens (chunks of RS_CHUNK positions) gives
//      the logits before each claimed token, and each token's margin:
//      - greedy (temperature 0): the best logit minus the claimed token's;
//      - sampled: 0 if the seeded draw (the same xoshiro256** stream the generation used,
//        seeded from the request's seed or WASI random_get, which the sandbox derives from the
//        job id) picks the claimed token from these logits; else the smallest m for which the
//        draw lies in the claimed token's interval when every token's logit may be off by m
//        (within_margin below);
//      a token whose margin is over the stated one fails;
//   3. the line the guest would write for those tokens must be the claimed line, byte for byte
//      (index, text, counts, finish, tokens).
// Out: a small JSON verdict (pass, margin, worst margin and where, counts, the first failure
// with its completion index, token index and reason). It stops at the first failure.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "mathx.h"
#include "sample.h"

#define RS_CHUNK 32         // positions per batch of the teacher-forced pass
#define MARGIN_CAP 1000.0   // the largest margin measured for a sampled token

typedef struct {
    int failed, completions, worst_index, worst_token, fail_index, fail_token;
    long tokens;
    double worst;
    char reason[384];
} verdict;

static void fail(verdict *v, int index, int token, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    v->failed = 1, v->fail_index = index, v->fail_token = token;
}

// e^x in double from + - * / only (mathx.c), so every build rounds alike.
static double exp_d(double x) { return mx_pow(2.718281828459045, x); }

// The draw of one sampled token, with the weights the sampler left (sample_top_p_u).
typedef struct {
    const float *w;
    const int32_t *idx;
    int n, c, nucleus;  // nucleus: top_p < 1
    double sum, top_p, temperature, nucleus_mass;  // nucleus_mass: of the sampler's nucleus
    float u;
} draw;

// The extremes of a set's probability P when every logit may be off by m: the odds of the set
// against the rest move by a factor rho = e^(2m / T) at most.
static double odds_lo(double p, double rho) { return p <= 0.0 ? 0.0 : p / (p + (1.0 - p) * rho); }
static double odds_hi(double p, double rho) { return p >= 1.0 ? 1.0 : p * rho / (p * rho + (1.0 - p)); }

// Whether the draw could pick token c if every logit may be off by m. With top_p = 1 the order
// is by id: the mass A before c and A + p_c after it are sets' probabilities, bounded by
// odds_lo and odds_hi. With top_p < 1 the order is by weight: the tokens surely ahead of c
// (p > p_c * rho^2) bound the mass before it from below, those possibly ahead (p >= p_c /
// rho^2) from above; c must possibly be in the nucleus (the mass surely ahead can fall below
// top_p), and the nucleus's mass lies within [top_p, odds_hi(the sampler's nucleus mass)]. The
// draw u must lie within the widest interval c can then have.
static int within_margin(const draw *d, double m) {
    double rho = exp_d(2.0 * m / d->temperature), pc = (double)d->w[d->c] / d->sum;
    double lo, hi;
    if (!d->nucleus) {
        double a = 0.0;
        for (int j = 0; j < d->c; j++) a += (double)d->w[j];
        a /= d->sum;
        lo = odds_lo(a, rho), hi = odds_hi(a + pc, rho);
    } else {
        double sure = 0.0, maybe = 0.0;
        for (int j = 0; j < d->n; j++) {
            double p = (double)d->w[j] / d->sum;
            if (j == d->c) continue;
            if (p > pc * rho * rho) sure += p;
            if (p * rho * rho >= pc) maybe += p;
        }
        if (odds_lo(sure, rho) >= d->top_p) return 0;
        lo = odds_lo(sure, rho) / odds_hi(d->nucleus_mass, rho);
        hi = odds_hi(maybe + pc, rho) / d->top_p;
    }
    return lo <= (double)d->u && (double)d->u <= hi;
}

// A sampled token's margin: 0 if the draw picks it, else the smallest m that within_margin
// accepts (to about 1e-6), MARGIN_CAP if none up to it.
static double sampled_margin(engine *e, const request *r, const float *logits, float u, int c) {
    int n = model_vocab(e->m);
    float T = (float)r->temperature, top_p = (float)r->top_p;
    if (sample_top_p_u(logits, n, T, top_p, u, e->work, e->idx) == c) return 0.0;
    draw d = {e->work, e->idx, n, c, top_p < 1.0f, 0.0, top_p, T, 1.0, u};
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum = sum + e->work[i], d.sum += (double)e->work[i];
    if (d.nucleus) {  // the sampler's own nucleus, as sample_top_p_u computes it
        float acc = 0.0f, target = top_p * sum;
        for (int k = 0; k < n;) {
            acc = acc + e->work[e->idx[k++]];
            if (acc >= target) break;
        }
        d.nucleus_mass = (double)acc / (double)sum;
    }
    // rho stays finite: 2m / T <= 700.
    double hi = MARGIN_CAP < 350.0 * d.temperature ? MARGIN_CAP : 350.0 * d.temperature, lo = 0.0;
    if (e->work[c] <= 0.0f || !within_margin(&d, hi)) return MARGIN_CAP;
    while (hi - lo > 1e-6) {
        double mid = (lo + hi) / 2.0;
        if (within_margin(&d, mid)) hi = mid;
        else lo = mid;
    }
    return hi;
}

// The claimed tokens of a completion line: their count, or -1 if the line is not a JSON
// object with a "tokens" array of at most cap token ids.
static int claimed_tokens(const char *s, size_t len, int vocab, int32_t *out, int cap) {
    jval v;
    char err[128];
    if (json_parse(s, len, &v, err, sizeof err)) return -1;
    int k = -1;
    for (int i = 0; v.t == J_OBJ && i < v.n; i++) {
        jval *x = &v.items[i];
        if (strcmp(v.keys[i], "tokens") || x->t != J_ARR || x->n > cap) continue;
        k = x->n;
        for (int j = 0; j < x->n; j++) {
            jval *t = &x->items[j];
            if (t->t != J_NUM || t->num != (int)t->num || t->num < 0 || t->num >= vocab) k = -1;
            else out[j] = (int32_t)t->num;
        }
    }
    json_free(&v);
    return k;
}

// Scores one request's claimed tokens ids[0, k) after its prompt (e->tokens[0, n)).
static int score(engine *e, const request *r, int n, const int32_t *ids, int k, rng *g,
                 float *rows, double margin, int index, verdict *v) {
    int V = model_vocab(e->m);
    if (k == 0) return 0;
    if (model_forward(e->m, e->tokens, n, 0, rows, 0)) return -1;
    for (int t = 0; t < k; t++) {
        int j = (t - 1) % RS_CHUNK;  // row of token t in the current chunk
        if (t > 0 && j == 0) {
            int c = k - t < RS_CHUNK ? k - t : RS_CHUNK;  // tokens t-1 .. t+c-2 fed
            if (model_forward(e->m, ids + t - 1, c, n + t - 1, rows, 1)) return -1;
        }
        const float *l = rows + (size_t)(t == 0 ? 0 : j) * (size_t)V;
        int best = sample_greedy(l, V);
        double m = r->temperature > 0 ? sampled_margin(e, r, l, rng_uniform(g), ids[t])
                                      : (double)l[best] - (double)l[ids[t]];
        if (m > v->worst) v->worst = m, v->worst_index = index, v->worst_token = t;
        if (m > margin) {
            if (r->temperature > 0)
                fail(v, index, t, "token %d (id %d) is not the seeded draw's within the margin: it "
                     "needs %.6g logits (margin %g)", t, (int)ids[t], m, margin);
            else
                fail(v, index, t, "token %d (id %d) is %.6g logits below the best (id %d; margin "
                     "%g)", t, (int)ids[t], m, best, margin);
            return 0;
        }
    }
    return 0;
}

// Checks one request line against its claimed line c[0, cl) (with its newline, if any).
static int check_one(engine *e, const char *s, size_t ll, const char *c, size_t cl, int index,
                     float *rows, double margin, verdict *v) {
    sbuf want = {0};
    sb_printf(&want, "{\"index\":%d", index);
    char err[256];
    jval pv;
    request r;
    int rc = 0, ctx = model_ctx(e->m), n = -1, k = 0, scored = 0;
    int32_t *ids = e->tokens + ctx + 1, *claimed = NULL;
    gen g = {0};
    if (json_parse(s, ll, &pv, err, sizeof err) || parse_request(&pv, &r, err, sizeof err)) {
        sb_printf(&want, ",\"text\":\"\",\"prompt_tokens\":0,\"completion_tokens\":0,"
                         "\"finish\":\"error\",\"error\":");
        sb_json_str(&want, err, strlen(err));
        sb_put(&want, "}\n", 2);
    } else if (!prompt_error(e, (n = build_prompt(e, &r)), &want)) {
        rng draws;
        if (r.temperature > 0) rng_seed(&draws, r.has_seed ? r.seed : seed_from_entropy());
        claimed = malloc((size_t)(ctx + 1) * sizeof *claimed);
        k = claimed_tokens(c, cl, model_vocab(e->m), claimed, ctx);
        if (k < 0) {
            fail(v, index, -1, "completion %d is not a line with its tokens", index);
            goto out;
        }
        gen_start(&g, ids);
        int ended = r.max_tokens == 0, i = 0;
        for (; i < k && !ended; i++) ended = gen_step(e, &r, &g, claimed[i], n + i);
        if (i < k) {
            fail(v, index, i - 1, "the completion runs past its end: token %d ends it (%s) and %d "
                 "more follow", i - 1, g.produced == r.max_tokens ? "max_tokens" : "a stop",
                 k - i);
            goto out;
        }
        if (!ended) {
            fail(v, index, k, "the completion is cut short: after %d tokens it has neither "
                 "stopped nor reached max_tokens (%d)", k, r.max_tokens);
            goto out;
        }
        gen_line(&g, n, 0, &want);
        scored = 1;
        rc = score(e, &r, n, claimed, k, &draws, rows, margin, index, v);
    }
    if (!v->failed && (want.len != cl || memcmp(want.p, c, cl)))
        fail(v, index, -1, "completion %d's line is not the one %s", index,
             scored ? "its tokens give (text, counts or finish)" : "the guest writes for its request");
    if (!v->failed) v->completions++, v->tokens += k;
out:
    json_free(&pv);
    free(want.p);
    free(g.text.p);
    free(claimed);
    return rc;
}

int run_rescore(const char *model_path, const char *prompts_path, const char *claimed_path,
                const char *out_path, double margin, int partial) {
    engine e = {0};
    load(&e, model_path, 1);
    size_t len, clen, cp = 0;
    char *all = read_all(prompts_path, &len), *cl = read_all(claimed_path, &clen);
    float *rows = malloc((size_t)RS_CHUNK * (size_t)model_vocab(e.m) * sizeof(float));
    verdict v = {0, 0, -1, -1, -1, -1, 0, 0.0, ""};
    int index = 0, rc = 0;
    for (size_t p = 0; p < len && rc == 0 && !v.failed;) {
        char *nl = memchr(all + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - all) : len, ll = end - p;
        const char *s = all + p;
        p = end + 1;
        if (ll && s[ll - 1] == '\r') ll--;
        if (strspn(s, " \t\r") >= ll) continue;  // blank lines are skipped, as in generation
        if (cp >= clen) {
            if (!partial) fail(&v, index, -1, "no completion for request %d: the output ends", index);
            break;
        }
        char *cnl = memchr(cl + cp, '\n', clen - cp);
        size_t cend = cnl ? (size_t)(cnl - cl) + 1 : clen;
        if (check_one(&e, s, ll, cl + cp, cend - cp, index, rows, margin, &v)) rc = 3;
        cp = cend;
        index++;
    }
    if (!v.failed && rc == 0 && cp < clen)
        fail(&v, index, -1, "the output has more completions than there are requests");
    sbuf o = {0};
    sb_printf(&o, "{\"pass\":%s,\"margin\":%.9g,\"worst_margin\":%.9g,\"worst\":",
              v.failed || rc ? "false" : "true", margin, v.worst);
    if (v.worst_index >= 0) sb_printf(&o, "{\"index\":%d,\"token\":%d}", v.worst_index, v.worst_token);
    else sb_put(&o, "null", 4);
    sb_printf(&o, ",\"completions\":%d,\"tokens\":%ld,\"failure\":", v.completions, v.tokens);
    if (rc) fail(&v, index - 1, -1, "a matrix product failed");
    if (v.failed) {
        sb_printf(&o, "{\"index\":%d,\"token\":", v.fail_index);
        if (v.fail_token >= 0) sb_printf(&o, "%d", v.fail_token);
        else sb_put(&o, "null", 4);
        sb_put(&o, ",\"reason\":", 10);
        sb_json_str(&o, v.reason, strlen(v.reason));
        sb_put(&o, "}", 1);
    } else {
        sb_put(&o, "null", 4);
    }
    sb_put(&o, "}\n", 2);
    FILE *f = fopen(out_path, "w");
    if (!f) die2(out_path, "cannot create");
    fwrite(o.p, 1, o.len, f);
    fclose(f);
    return rc;
}
