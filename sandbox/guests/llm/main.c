// The inference guest's I/O (README.md): a model and a batch of JSONL requests in, one JSONL
// completion per request out, each written and flushed as soon as it is done.
//
//   wasm:    /input/model.gguf, /input/prompts.jsonl -> /output/completions.jsonl
//   native:  llm-native MODEL PROMPTS.jsonl OUT.jsonl
//            llm-native --logits N MODEL PROMPT OUT.bin   (raw prompt, or "ids:1,2,3"; writes
//                                u32 n, u32 vocab, n i32 token ids, n * vocab f32 logits)
//            llm-native --tokenize MODEL TEXT              (ids; exit 1 unless decode gives TEXT)
//            llm-native --rescore MARGIN MODEL PROMPTS CLAIMED OUT.json [partial]   (rescore.c)
//   wasm, args mode=rescore [margin=X] [partial=1]: /input/claimed.jsonl -> /output/verdict.json
// Exit codes: 0 the batch ran (some lines may be errors), 1 usage, 2 bad model or unreadable
// input (nothing written), 3 a matrix product failed mid-batch.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llm.h"
#include "sample.h"

#define MAX_PROMPTS_BYTES (64u << 20)
static const char DEFAULT_SYSTEM[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void die2(const char *what, const char *why) {
    fprintf(stderr, "llm: %s: %s\n", what, why);
    exit(2);
}

void load(engine *e, const char *path, int with_model) {
    char err[256] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0) die2(path, "cannot open the model");
    if (gguf_open(&e->g, fd)) die2(path, gguf_error);
    if (!(e->tok = tok_load(&e->g, err, sizeof err))) die2(path, err);
    e->im_start = tok_id(e->tok, "<|im_start|>");
    e->im_end = tok_id(e->tok, "<|im_end|>");
    e->endoftext = tok_id(e->tok, "<|endoftext|>");
    const gguf_kv *eos = gguf_find(&e->g, "tokenizer.ggml.eos_token_id");
    e->eos = eos && eos->type == GGUF_U32 && eos->num.u < (uint64_t)tok_vocab_size(e->tok)
                 ? (int)eos->num.u : e->im_end;
    if (e->im_start < 0 || e->im_end < 0) die2(path, "the vocabulary lacks <|im_start|> or <|im_end|>");
    if (!with_model) return;
    if (!(e->m = model_load(&e->g, tok_vocab_size(e->tok), err, sizeof err))) die2(path, err);
    int n = tok_vocab_size(e->tok), ctx = model_ctx(e->m);
    e->logits = malloc((size_t)n * sizeof(float));
    e->work = malloc((size_t)n * sizeof(float));
    e->idx = malloc((size_t)n * sizeof(int32_t));
    e->tokens = malloc((size_t)(ctx + 1) * 2 * sizeof(int32_t));  // a prompt, then a completion
}

// Appends text's tokens; -1 once the context's capacity is passed.
static int add_text(engine *e, int *n, const char *s, size_t len) {
    int cap = model_ctx(e->m) + 1 - *n;
    int k = *n < 0 || cap <= 0 ? -1 : tok_encode(e->tok, s, len, e->tokens + *n, cap);
    *n = k < 0 ? -1 : *n + k;
    return *n;
}
static void add_tok(engine *e, int *n, int id) {
    if (*n >= 0 && *n <= model_ctx(e->m)) e->tokens[(*n)++] = id;
    else *n = -1;
}

// The prompt's tokens in ChatML (or raw); -1 if more than the context.
int build_prompt(engine *e, const request *r) {
    int n = 0;
    if (r->raw) return add_text(e, &n, r->prompt, r->prompt_len);
    static const char nl[] = "\n";
    add_tok(e, &n, e->im_start);
    add_text(e, &n, "system\n", 7);
    add_text(e, &n, r->system, r->system_len);
    add_tok(e, &n, e->im_end);
    add_text(e, &n, nl, 1);
    add_tok(e, &n, e->im_start);
    add_text(e, &n, "user\n", 5);
    add_text(e, &n, r->prompt, r->prompt_len);
    add_tok(e, &n, e->im_end);
    add_text(e, &n, nl, 1);
    add_tok(e, &n, e->im_start);
    return add_text(e, &n, "assistant\n", 10);
}

// Reads one request line into r; 0, or -1 with a message in err.
int parse_request(jval *v, request *r, char *err, size_t err_len) {
    memset(r, 0, sizeof *r);
    r->system = DEFAULT_SYSTEM;
    r->system_len = sizeof DEFAULT_SYSTEM - 1;
    r->max_tokens = 64;
    r->top_p = 1.0;
    if (v->t != J_OBJ) return snprintf(err, err_len, "a request must be a JSON object"), -1;
    for (int i = 0; i < v->n; i++) {
        const char *k = v->keys[i];
        jval *x = &v->items[i];
        for (int j = 0; j < i; j++)
            if (!strcmp(v->keys[j], k)) return snprintf(err, err_len, "field %s appears twice", k), -1;
        if (!strcmp(k, "prompt") || !strcmp(k, "system")) {
            if (x->t != J_STR) return snprintf(err, err_len, "%s must be a string", k), -1;
            if (k[0] == 'p') r->prompt = x->s, r->prompt_len = x->len;
            else r->system = x->s, r->system_len = x->len;
        } else if (!strcmp(k, "raw")) {
            if (x->t != J_BOOL) return snprintf(err, err_len, "raw must be true or false"), -1;
            r->raw = x->b;
        } else if (!strcmp(k, "max_tokens")) {
            if (x->t != J_NUM || x->num != (int)x->num || x->num < 0 || x->num > LLM_CTX)
                return snprintf(err, err_len, "max_tokens must be an integer from 0 to %d", LLM_CTX), -1;
            r->max_tokens = (int)x->num;
        } else if (!strcmp(k, "temperature")) {
            if (x->t != J_NUM || !(x->num >= 0 && x->num <= 100))
                return snprintf(err, err_len, "temperature must be a number from 0 to 100"), -1;
            r->temperature = x->num;
        } else if (!strcmp(k, "top_p")) {
            if (x->t != J_NUM || !(x->num > 0 && x->num <= 1))
                return snprintf(err, err_len, "top_p must be a number in (0, 1]"), -1;
            r->top_p = x->num;
        } else if (!strcmp(k, "seed")) {
            char *end;
            if (x->t != J_NUM || x->s[0] == '-' || strspn(x->s, "0123456789") != x->len ||
                x->len > 20 || (r->seed = strtoull(x->s, &end, 10), *end) ||
                (x->len == 20 && strcmp(x->s, "18446744073709551615") > 0))
                return snprintf(err, err_len, "seed must be an integer from 0 to 2^64 - 1"), -1;
            r->has_seed = 1;
        } else if (!strcmp(k, "stop")) {
            if (x->t != J_ARR || x->n > MAX_STOPS)
                return snprintf(err, err_len, "stop must be an array of at most %d strings", MAX_STOPS), -1;
            for (int j = 0; j < x->n; j++) {
                if (x->items[j].t != J_STR || x->items[j].len == 0 || x->items[j].len > 256)
                    return snprintf(err, err_len, "each stop must be a string of 1 to 256 bytes"), -1;
                r->stops[j] = x->items[j].s;
                r->stop_lens[j] = x->items[j].len;
            }
            r->n_stops = x->n;
        } else {
            return snprintf(err, err_len, "unknown field \"%.64s\"", k), -1;
        }
    }
    if (!r->prompt) return snprintf(err, err_len, "prompt is required"), -1;
    return 0;
}

// The earliest occurrence of a stop string in text that ends at or after `from`, or -1.
static long find_stop(const request *r, const char *text, size_t len, size_t from) {
    long best = -1;
    for (int s = 0; s < r->n_stops; s++) {
        size_t sl = r->stop_lens[s], i = from >= sl ? from - sl + 1 : 0;
        for (; i + sl <= len; i++)
            if (!memcmp(text + i, r->stops[s], sl)) {
                if (best < 0 || (long)i < best) best = (long)i;
                break;
            }
    }
    return best;
}

typedef struct {
    double prefill_s, gen_s;
    long prefill_tokens, gen_tokens;
} stats;

int prompt_error(engine *e, int n, sbuf *line) {
    int ctx = model_ctx(e->m);
    if (n < 0 || n >= ctx) {
        // (prompt_tokens is 0 when the count stopped at the context's size)
        sb_printf(line, ",\"text\":\"\",\"prompt_tokens\":%d,\"completion_tokens\":0,"
                  "\"finish\":\"error\",\"error\":\"the prompt is %s%d tokens and the context "
                  "holds %d (one position must be left to generate)\"}\n",
                  n < 0 ? 0 : n, n < 0 ? "more than " : "", n < 0 ? ctx : n, ctx);
        return 1;
    }
    if (n == 0) {
        sb_printf(line, ",\"text\":\"\",\"prompt_tokens\":0,\"completion_tokens\":0,"
                  "\"finish\":\"error\",\"error\":\"the prompt is empty\"}\n");
        return 1;
    }
    return 0;
}

void gen_start(gen *g, int32_t *ids) {
    memset(g, 0, sizeof *g);
    sb_put(&g->text, "", 0);
    g->ids = ids;
    g->finish = "length";
}

int gen_step(engine *e, const request *r, gen *g, int next, int pos) {
    g->ids[g->produced++] = next;
    if (next == e->eos || next == e->im_end || next == e->endoftext) {
        g->finish = "stop";
        return 1;
    }
    char buf[256];
    size_t before = g->text.len;
    sb_put(&g->text, buf, (size_t)tok_decode(e->tok, next, buf, sizeof buf));
    long at = find_stop(r, g->text.p, g->text.len, before);
    if (at >= 0) {
        g->text.len = (size_t)at;
        g->finish = "stop";
        return 1;
    }
    // "length": no more tokens or no room
    return g->produced == r->max_tokens || pos >= model_ctx(e->m);
}

void gen_line(const gen *g, int prompt_tokens, int failed, sbuf *line) {
    sb_put(line, ",\"text\":", 8);
    sb_json_str(line, g->text.p, g->text.len);
    sb_printf(line, ",\"prompt_tokens\":%d,\"completion_tokens\":%d,\"finish\":\"%s\"",
              prompt_tokens, g->produced, failed ? "error" : g->finish);
    if (failed) sb_printf(line, ",\"error\":\"a matrix product failed\"");
    sb_put(line, ",\"tokens\":[", 11);
    for (int i = 0; i < g->produced; i++) sb_printf(line, i ? ",%d" : "%d", (int)g->ids[i]);
    sb_put(line, "]}\n", 3);
}

// Runs one request; appends its JSON line's fields after "index" to line. -1 on a failed
// matrix product.
static int complete(engine *e, const request *r, sbuf *line, stats *st) {
    int n = build_prompt(e, r), rc = 0;
    if (prompt_error(e, n, line)) return 0;
    rng g;
    if (r->temperature > 0) rng_seed(&g, r->has_seed ? r->seed : seed_from_entropy());
    gen c;
    gen_start(&c, e->tokens + model_ctx(e->m) + 1);
    int pos = 0;
    double t0 = now();
    if (model_forward(e->m, e->tokens, n, 0, e->logits, 0)) return -1;
    pos = n;
    st->prefill_s += now() - t0;
    st->prefill_tokens += n;
    t0 = now();
    while (c.produced < r->max_tokens) {
        int next = r->temperature > 0
                       ? sample_top_p(e->logits, model_vocab(e->m), (float)r->temperature,
                                      (float)r->top_p, &g, e->work, e->idx)
                       : sample_greedy(e->logits, model_vocab(e->m));
        if (gen_step(e, r, &c, next, pos)) break;
        if (model_forward(e->m, &next, 1, pos++, e->logits, 0)) {
            rc = -1;
            break;
        }
    }
    st->gen_s += now() - t0;
    st->gen_tokens += c.produced;
    gen_line(&c, n, rc, line);
    free(c.text.p);
    return rc;
}

char *read_all(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die2(path, "cannot open");
    sbuf b = {0};
    char buf[65536];
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0) {
        sb_put(&b, buf, (size_t)k);
        if (b.len > MAX_PROMPTS_BYTES) die2(path, "more than 64 MiB of prompts");
    }
    if (k < 0) die2(path, "read error");
    close(fd);
    *len = b.len;
    return b.p ? b.p : calloc(1, 1);
}

static int run_batch(const char *model_path, const char *prompts_path, const char *out_path) {
    engine e = {0};
    load(&e, model_path, 1);
    size_t len;
    char *all = read_all(prompts_path, &len);
    FILE *out = fopen(out_path, "w");
    if (!out) die2(out_path, "cannot create");
    stats st = {0};
    int index = 0, rc = 0;
    for (size_t p = 0; p < len && rc == 0;) {
        char *nl = memchr(all + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - all) : len, ll = end - p;
        const char *s = all + p;
        p = end + 1;
        if (ll && s[ll - 1] == '\r') ll--;
        if (strspn(s, " \t\r") >= ll) continue;  // blank lines are skipped
        sbuf line = {0};
        sb_printf(&line, "{\"index\":%d", index++);
        char err[256];
        jval v;
        request r;
        if (json_parse(s, ll, &v, err, sizeof err) || parse_request(&v, &r, err, sizeof err)) {
            sb_printf(&line, ",\"text\":\"\",\"prompt_tokens\":0,\"completion_tokens\":0,"
                             "\"finish\":\"error\",\"error\":");
            sb_json_str(&line, err, strlen(err));
            sb_put(&line, "}\n", 2);
        } else if (complete(&e, &r, &line, &st)) {
            rc = 3;
        }
        json_free(&v);
        fwrite(line.p, 1, line.len, out);
        fflush(out);  // kept even if the job runs out of fuel on a later request
        free(line.p);
    }
    fclose(out);
#ifndef __wasm__  // (the sandbox's clock is virtual: no timings there)
    fprintf(stderr, "llm: prefill %ld tokens in %.3f s (%.1f tokens/s), generation %ld tokens in "
            "%.3f s (%.1f tokens/s)\n", st.prefill_tokens, st.prefill_s,
            st.prefill_tokens / (st.prefill_s > 0 ? st.prefill_s : 1), st.gen_tokens, st.gen_s,
            st.gen_tokens / (st.gen_s > 0 ? st.gen_s : 1));
#endif
    return rc;
}

int main(int argc, char **argv) {
#ifdef __wasm__
    // mode=rescore [margin=X] [partial=1] re-scores /input/claimed.jsonl (rescore.c), and
    // refuses any other argument; without it the guest generates and ignores its args.
    int rescore = 0, partial = 0;
    double margin = LLM_RESCORE_MARGIN;
    for (int i = 1; i < argc; i++) rescore |= !strcmp(argv[i], "mode=rescore");
    for (int i = 1; i < argc && rescore; i++) {
        char *end;
        if (!strcmp(argv[i], "mode=rescore")) continue;
        if (!strcmp(argv[i], "partial=1")) partial = 1;
        else if (strncmp(argv[i], "margin=", 7) || (margin = strtod(argv[i] + 7, &end), *end) || end == argv[i] + 7 ||
                 !(margin >= 0 && margin <= 1000))
            return fprintf(stderr, "llm: bad argument %s (mode=rescore takes margin=0..1000 "
                           "and partial=1)\n", argv[i]), 1;
    }
    if (rescore)
        return run_rescore("/input/model.gguf", "/input/prompts.jsonl", "/input/claimed.jsonl",
                           "/output/verdict.json", margin, partial);
    return run_batch("/input/model.gguf", "/input/prompts.jsonl", "/output/completions.jsonl");
#else
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "--rescore")) {
        // --rescore MARGIN MODEL PROMPTS CLAIMED OUT.json [partial]
        char *end;
        double margin = strtod(argv[2], &end);
        if (*end || !(margin >= 0 && margin <= 1000)) die2(argv[2], "not a margin");
        return run_rescore(argv[3], argv[4], argv[5], argv[6], margin,
                           argc == 8 && !strcmp(argv[7], "partial"));
    }
    if (argc == 4 && strcmp(argv[1], "--tokenize") != 0)
        return run_batch(argv[1], argv[2], argv[3]);
    engine e = {0};
    if (argc == 4) {  // --tokenize MODEL TEXT
        load(&e, argv[2], 0);
        size_t n = strlen(argv[3]);
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        int k = tok_encode(e.tok, argv[3], n, ids, (int)n + 1);
        sbuf back = {0};
        sb_put(&back, "", 0);
        for (int i = 0; i < k; i++) {
            char buf[256];
            printf("%s%d", i ? " " : "", ids[i]);
            sb_put(&back, buf, (size_t)tok_decode(e.tok, ids[i], buf, sizeof buf));
        }
        printf("\n");
        return back.len == n && !memcmp(back.p, argv[3], n) ? 0 : 1;
    }
    if (argc == 6 && !strcmp(argv[1], "--logits")) {  // --logits N MODEL PROMPT OUT.bin
        load(&e, argv[3], 1);
        int want = atoi(argv[2]), vocab = model_vocab(e.m);
        size_t len = strlen(argv[4]);
        int32_t *ids = malloc((len + 1) * sizeof *ids);
        int n = 0;
        if (!strncmp(argv[4], "ids:", 4)) {  // token ids given, e.g. "ids:1,9690,198"
            for (char *p = argv[4] + 4; *p && n <= (int)len; p += *p == ',')
                ids[n++] = (int32_t)strtol(p, &p, 10);
        } else {
            n = tok_encode(e.tok, argv[4], len, ids, (int)len + 1);
        }
        if (n > want) n = want;
        if (n < 1 || n > model_ctx(e.m)) die2(argv[4], "no tokens or more than the context");
        float *logits = malloc((size_t)n * (size_t)vocab * sizeof(float));
        if (model_forward(e.m, ids, n, 0, logits, 1)) return 3;
        FILE *f = fopen(argv[5], "wb");
        if (!f) die2(argv[5], "cannot create");
        uint32_t head[2] = {(uint32_t)n, (uint32_t)vocab};
        fwrite(head, 4, 2, f);
        fwrite(ids, 4, (size_t)n, f);
        fwrite(logits, 4, (size_t)n * (size_t)vocab, f);
        fclose(f);
        for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        return 0;
    }
    fprintf(stderr, "usage: %s MODEL PROMPTS.jsonl OUT.jsonl\n"
                    "       %s --logits N MODEL PROMPT OUT.bin\n"
                    "       %s --tokenize MODEL TEXT\n"
                    "       %s --rescore MARGIN MODEL PROMPTS.jsonl CLAIMED.jsonl OUT.json [partial]\n",
            argv[0], argv[0], argv[0], argv[0]);
    return 1;
#endif
}
