// See formats.h. Every length and count is checked against the file's size before use.
#include "formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint8_t *read_file(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail(2, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) fail(1, "out of memory reading %s", path);
    for (;;) {
        if (n == cap) {
            if (cap > max) fail(2, "%s: larger than %zu bytes", path, max);
            cap *= 2;
            uint8_t *more = realloc(buf, cap);
            if (!more) fail(1, "out of memory reading %s", path);
            buf = more;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) fail(2, "%s: read error", path);
    fclose(f);
    if (n > max) fail(2, "%s: larger than %zu bytes", path, max);
    *len = n;
    return buf;
}

void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail(1, "%s: cannot create", path);
    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) fail(1, "%s: cannot write", path);
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t count_params(uint32_t n_layers, const uint32_t *dims) {
    uint64_t p = 0;
    for (uint32_t l = 0; l < n_layers; l++)
        p += (uint64_t)dims[l + 1] * dims[l] + dims[l + 1];  // < 2^25 each: no overflow
    return p > MAX_PARAMS ? 0 : (uint32_t)p;
}

void weights_parse(const uint8_t *buf, size_t len, const char *what, weights *w) {
    if (len < 8 || memcmp(buf, "SWT1", 4)) fail(2, "%s: not a weights file (magic SWT1)", what);
    w->n_layers = rd32(buf + 4);
    if (w->n_layers < 1 || w->n_layers > MAX_LAYERS)
        fail(2, "%s: %u layers, want 1..%d", what, w->n_layers, MAX_LAYERS);
    size_t head = 8 + 4 * ((size_t)w->n_layers + 1);
    if (len < head) fail(2, "%s: truncated in its dims", what);
    for (uint32_t i = 0; i <= w->n_layers; i++) {
        w->dims[i] = rd32(buf + 8 + 4 * i);
        if (w->dims[i] < 1 || w->dims[i] > MAX_DIM)
            fail(2, "%s: a width of %u, want 1..%d", what, w->dims[i], MAX_DIM);
    }
    w->n_params = count_params(w->n_layers, w->dims);
    if (!w->n_params) fail(2, "%s: more than %u parameters", what, MAX_PARAMS);
    size_t want = head + 4 * (size_t)w->n_params;
    if (len != want)
        fail(2, "%s: %zu bytes, its dims make %zu (%s)", what, len, want,
             len < want ? "truncated" : "trailing bytes");
    w->params = xcalloc(w->n_params, sizeof(float));
    for (uint32_t k = 0; k < w->n_params; k++) {
        uint32_t bits = rd32(buf + head + 4 * (size_t)k);
        memcpy(&w->params[k], &bits, 4);
    }
}

void shard_parse(const uint8_t *buf, size_t len, const char *what, shard *s) {
    if (len < 12 || memcmp(buf, "SDG1", 4)) fail(2, "%s: not a data shard (magic SDG1)", what);
    s->n = rd32(buf + 4);
    s->d = rd32(buf + 8);
    if (s->n < 1 || s->n > MAX_RECORDS) fail(2, "%s: %u records, want 1..%u", what, s->n, MAX_RECORDS);
    if (s->d < 1 || s->d > MAX_DIM) fail(2, "%s: d = %u, want 1..%d", what, s->d, MAX_DIM);
    size_t want = 12 + (size_t)s->n * (s->d + 1);
    if (len != want)
        fail(2, "%s: %zu bytes, n and d make %zu (%s)", what, len, want,
             len < want ? "truncated" : "trailing bytes");
    s->records = buf + 12;
    for (uint32_t r = 0; r < s->n; r++)
        for (uint32_t i = 0; i < s->d; i++)
            if (s->records[(size_t)r * (s->d + 1) + i] > MAX_PIXEL)
                fail(2, "%s: record %u has a pixel over %d", what, r, MAX_PIXEL);
}

void weights_write(const char *path, uint32_t n_layers, const uint32_t *dims,
                   const float *params, uint32_t n_params) {
    size_t head = 8 + 4 * ((size_t)n_layers + 1), len = head + 4 * (size_t)n_params;
    uint8_t *buf = xcalloc(len, 1);
    memcpy(buf, "SWT1", 4);
    wr32(buf + 4, n_layers);
    for (uint32_t i = 0; i <= n_layers; i++) wr32(buf + 8 + 4 * i, dims[i]);
    for (uint32_t k = 0; k < n_params; k++) {
        uint32_t bits;
        memcpy(&bits, &params[k], 4);
        wr32(buf + head + 4 * (size_t)k, bits);
    }
    write_file(path, buf, len);
    free(buf);
}
