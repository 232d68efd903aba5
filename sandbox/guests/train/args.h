// The job's arguments, each `key=value` (docs/training.md): parsed the same on every host.
#ifndef TRAIN_ARGS_H
#define TRAIN_ARGS_H

#include <stdint.h>

#include "train.h"

typedef enum { MODE_TRAIN, MODE_INIT, MODE_EVAL } job_mode;
typedef enum { OPT_SGDM, OPT_ADAMW } optimizer;

typedef struct {
    job_mode mode;
    uint32_t steps, batch;
    float lr, momentum, wd;
    optimizer opt;
    uint64_t seed;
    uint32_t n_layers;               // for init: from dims=
    uint32_t dims[MAX_LAYERS + 1];
} args;

// Parses argv[1..argc) into *a (defaults for what is not given); fail(2) on anything else.
void args_parse(args *a, int argc, char **argv);

// [+-]digits[.digits] (at least one digit, at most 15): 1 and the value, or 0. The digits make
// an exact integer m and the value is m / 10^f in IEEE double, so every host gets the same bits.
int parse_decimal(const char *s, double *out);

#endif
