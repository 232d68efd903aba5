// The guest's files (docs/training.md), all integers little-endian:
//   weights / update (.swt): "SWT1", u32 n_layers, u32 dims[n_layers + 1], then f32 parameters
//                            layer by layer: W (out x in, row-major), then b (out)
//   data shard (.sdg):       "SDG1", u32 n, u32 d, then n records of d u8 pixels and a u8 label
#ifndef TRAIN_FORMATS_H
#define TRAIN_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"

typedef struct {
    uint32_t n_layers;
    uint32_t dims[MAX_LAYERS + 1];
    uint32_t n_params;
    float *params;
} weights;

typedef struct {
    uint32_t n, d;
    const uint8_t *records;  // n * (d + 1) bytes
} shard;

// The whole file at `path`, at most `max` bytes; fail(2) if missing, unreadable or larger.
uint8_t *read_file(const char *path, size_t max, size_t *len);
// Writes `len` bytes to `path`; fail(1) if it cannot.
void write_file(const char *path, const void *data, size_t len);

// Parameters of dense layers dims[0] -> ... -> dims[n_layers], or 0 over MAX_PARAMS.
uint32_t count_params(uint32_t n_layers, const uint32_t *dims);

// Parse and check; fail(2) with `what` (the file's name) on any mismatch.
void weights_parse(const uint8_t *buf, size_t len, const char *what, weights *w);
void shard_parse(const uint8_t *buf, size_t len, const char *what, shard *s);

// Encodes the header of dims and `params` to `path`.
void weights_write(const char *path, uint32_t n_layers, const uint32_t *dims,
                   const float *params, uint32_t n_params);

#endif
