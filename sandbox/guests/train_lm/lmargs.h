// The language-model guest's arguments, each `key=value` (docs/training.md, "A second model"),
// and its weights file. Every value is checked here, so the rest of the guest trusts them.
#ifndef TRAIN_LM_ARGS_H
#define TRAIN_LM_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "lm.h"

typedef enum { LM_TRAIN, LM_INIT, LM_EVAL, LM_GRAD, LM_SAMPLE } lm_mode;

typedef struct {
    lm_mode mode;
    uint32_t steps, batch, tokens;  // tokens: how many mode=sample generates
    float lr, wd;
    uint64_t seed;
    uint32_t from, to;  // the shard: bytes [from, to) of the corpus; to = 0: its end
    lm_config config;   // for mode=init
} lm_args;

// Parses argv[1..argc) into *a (defaults for what is not given); fail(2) on anything else.
void lm_args_parse(lm_args *a, int argc, char **argv);

// The weights (and update, and gradient) file: "LMW1", then u32 vocab, ctx, d, layers, heads,
// ff (little-endian), then the f32 parameters in lm.h's order, little-endian.
#define LMW_HEADER 28
// Parses and checks `len` bytes: the layout and a fresh copy of the parameters; fail(2) with
// `what` (the file's name) on any mismatch.
float *lmw_parse(const uint8_t *buf, size_t len, const char *what, lm_layout *lay);
// Writes the header of lay's config and `params` to `path`; fail(1) if it cannot.
void lmw_write(const char *path, const lm_layout *lay, const float *params);

#endif
