// What main.c (generation) and rescore.c (the teacher-forced check of claimed completions)
// share: the loaded model, a request, and the generation loop's bookkeeping, so that both
// write a completion's line with the same code.
#ifndef LLM_LLM_H
#define LLM_LLM_H
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "json.h"
#include "model.h"
#include "tokenizer.h"

#define MAX_STOPS 16
#ifndef LLM_RESCORE_MARGIN
#define LLM_RESCORE_MARGIN 0.1  // logits: the rescoring's default margin (docs/ai.md)
#endif

typedef struct {
    gguf_file g;
    tokenizer *tok;
    model *m;
    int im_start, im_end, endoftext, eos;
    float *logits, *work;
    int32_t *idx, *tokens;
} engine;

typedef struct {
    const char *prompt, *system;
    size_t prompt_len, system_len;
    int raw, max_tokens, has_seed, n_stops;
    double temperature, top_p;
    unsigned long long seed;
    const char *stops[MAX_STOPS];
    size_t stop_lens[MAX_STOPS];
} request;

// One completion as it is generated: its text so far, the tokens chosen (every one, the
// ending one included) and how it finished.
typedef struct {
    sbuf text;
    int32_t *ids;  // LLM_CTX + 1 entries
    int produced;
    const char *finish;
} gen;

// Exits 2 with a message (bad model or unreadable input).
void die2(const char *what, const char *why);
// Opens the model (and, with with_model, loads the weights and the buffers).
void load(engine *e, const char *path, int with_model);
// Reads a whole file (at most 64 MiB).
char *read_all(const char *path, size_t *len);
// Reads one request line into r; 0, or -1 with a message in err.
int parse_request(jval *v, request *r, char *err, size_t err_len);
// The prompt's tokens in e->tokens; -1 if more than the context.
int build_prompt(engine *e, const request *r);
// For a prompt of n tokens that cannot run (empty, or no room to generate), appends the
// error line's fields after "index" and returns 1; else 0.
int prompt_error(engine *e, int n, sbuf *line);
// Starts a completion (ids: LLM_CTX + 1 entries).
void gen_start(gen *g, int32_t *ids);
// Takes `next` as the completion's next token, chosen while the KV cache holds pos positions.
// 1 if the completion ends with it (g->finish says how), 0 if it goes on.
int gen_step(engine *e, const request *r, gen *g, int next, int pos);
// Appends the completion's fields after "index" (failed: a matrix product failed).
void gen_line(const gen *g, int prompt_tokens, int failed, sbuf *line);

// The rescoring mode (rescore.c): exit code 0 (the verdict was written), 2 or 3.
int run_rescore(const char *model_path, const char *prompts_path, const char *claimed_path,
                const char *out_path, double margin, int partial);
#endif
