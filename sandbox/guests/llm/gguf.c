// See gguf.h. Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, the key-values, the tensor
// infos (name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset), padding to the alignment,
// then the tensor data. All little-endian.
#include "gguf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char gguf_error[256];

#define MAX_TENSORS 4096  // duplicates are looked for in O(n^2)
#define MAX_KV 4096
#define MAX_STRING (1u << 24)      // one string
#define MAX_ARRAY (1u << 24)       // elements of one array
#define MAX_DIM (1ull << 32)

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gguf_error, sizeof gguf_error, fmt, ap);
    va_end(ap);
    return -1;
}

int gguf_read_at(int fd, uint64_t off, void *buf, size_t n) {
    if (lseek(fd, (off_t)off, SEEK_SET) != (off_t)off) return -1;
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n > (1u << 24) ? (1u << 24) : n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

// A buffered sequential reader over the header.
typedef struct {
    int fd;
    uint64_t pos, size;  // position in the file, file size
    uint8_t buf[65536];
    size_t len, at;
    int err;
} reader;

static int rd(reader *r, void *out, size_t n) {
    if (r->err) return -1;
    if (n > r->size - r->pos) {
        r->err = 1;
        return fail("the file ends at byte %llu, inside the header (truncated?)",
                    (unsigned long long)r->size);
    }
    uint8_t *o = out;
    while (n > 0) {
        if (r->at == r->len) {
            ssize_t got = read(r->fd, r->buf, sizeof r->buf);
            if (got <= 0) {
                r->err = 1;
                return fail("read error in the header");
            }
            r->len = (size_t)got;
            r->at = 0;
        }
        size_t k = r->len - r->at < n ? r->len - r->at : n;
        if (o) memcpy(o, r->buf + r->at, k), o += k;
        r->at += k;
        r->pos += k;
        n -= k;
    }
    return 0;
}

static uint64_t u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static int rd_u32(reader *r, uint32_t *v) {
    uint8_t b[4];
    if (rd(r, b, 4)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}
static int rd_u64(reader *r, uint64_t *v) {
    uint8_t b[8];
    if (rd(r, b, 8)) return -1;
    *v = u64le(b);
    return 0;
}

// A string: u64 length and bytes. NUL-terminated copy in *out.
static int rd_str(reader *r, gguf_str *out, const char *what) {
    uint64_t n;
    if (rd_u64(r, &n)) return -1;
    if (n > MAX_STRING) return fail("%s: string of %llu bytes is too long", what, (unsigned long long)n);
    if (n > r->size - r->pos) return rd(r, NULL, n);  // the file ends inside the header
    char *s = malloc(n + 1);
    if (!s) return fail("out of memory");
    if (rd(r, s, n)) return free(s), -1;
    s[n] = 0;
    out->s = s;
    out->len = (uint32_t)n;
    return 0;
}

static int scalar_size(uint32_t t) {
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t <= GGUF_F64 ? sz[t] : 0;
}

static int rd_scalar(reader *r, uint32_t t, gguf_kv *kv) {
    uint8_t b[8] = {0};
    int n = scalar_size(t);
    if (rd(r, b, (size_t)n)) return -1;
    uint64_t u = u64le(b);
    switch (t) {
    case GGUF_I8: kv->num.i = (int8_t)u; break;
    case GGUF_I16: kv->num.i = (int16_t)u; break;
    case GGUF_I32: kv->num.i = (int32_t)u; break;
    case GGUF_I64: kv->num.i = (int64_t)u; break;
    case GGUF_F32: { uint32_t w = (uint32_t)u; float f; memcpy(&f, &w, 4); kv->num.f = f; break; }
    case GGUF_F64: memcpy(&kv->num.f, &u, 8); break;
    case GGUF_BOOL:
        if (u > 1) return fail("key %s: bool value %llu", kv->key, (unsigned long long)u);
        /* fall through */
    default: kv->num.u = u;
    }
    return 0;
}

static int rd_kv(reader *r, gguf_kv *kv) {
    gguf_str key;
    if (rd_str(r, &key, "metadata key")) return -1;
    kv->key = (char *)key.s;
    if (rd_u32(r, &kv->type)) return -1;
    if (kv->type == GGUF_STRING) return rd_str(r, &kv->str, kv->key);
    if (kv->type != GGUF_ARRAY) {
        if (!scalar_size(kv->type)) return fail("key %s: unknown value type %u", kv->key, kv->type);
        return rd_scalar(r, kv->type, kv);
    }
    if (rd_u32(r, &kv->elem_type) || rd_u64(r, &kv->count)) return -1;
    // Every element takes at least one byte of the file, which bounds the count too.
    if (kv->count > MAX_ARRAY || kv->count > r->size - r->pos)
        return fail("key %s: array of %llu elements is too long", kv->key,
                    (unsigned long long)kv->count);
    if (kv->elem_type == GGUF_STRING) {
        kv->strs = calloc(kv->count ? kv->count : 1, sizeof *kv->strs);
        if (!kv->strs) return fail("out of memory");
        for (uint64_t i = 0; i < kv->count; i++)
            if (rd_str(r, &kv->strs[i], kv->key)) return -1;
        return 0;
    }
    int es = scalar_size(kv->elem_type);
    if (!es) return fail("key %s: arrays of type %u are not supported", kv->key, kv->elem_type);
    kv->data = malloc(kv->count * (uint64_t)es + 1);
    if (!kv->data) return fail("out of memory");
    return rd(r, kv->data, kv->count * (uint64_t)es);
}

// Bytes of a tensor of type t with n elements whose rows have ne0 elements; 0 if invalid.
static uint64_t tensor_bytes(uint32_t t, uint64_t ne0, uint64_t n) {
    if (t == 0) return n * 4;
    if (ne0 % 32) return 0;
    if (t == 3) return n / 32 * 20;
    if (t == 8) return n / 32 * 34;
    return 0;
}

static int rd_tensor(reader *r, gguf_tensor *t) {
    gguf_str name;
    if (rd_str(r, &name, "tensor name")) return -1;
    t->name = (char *)name.s;
    if (rd_u32(r, &t->n_dims)) return -1;
    if (t->n_dims < 1 || t->n_dims > 4)
        return fail("tensor %s: %u dimensions (1 to 4 allowed)", t->name, t->n_dims);
    uint64_t n = 1;
    for (uint32_t i = 0; i < 4; i++) t->dims[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (rd_u64(r, &t->dims[i])) return -1;
        if (t->dims[i] == 0 || t->dims[i] > MAX_DIM || n > (1ull << 40) / t->dims[i])
            return fail("tensor %s: dimension %u is %llu", t->name, i,
                        (unsigned long long)t->dims[i]);
        n *= t->dims[i];
    }
    if (rd_u32(r, &t->type) || rd_u64(r, &t->offset)) return -1;
    if (t->type != 0 && t->type != 3 && t->type != 8)
        return fail("tensor %s: unknown or unsupported tensor type %u (F32 = 0, Q4_1 = 3 and "
                    "Q8_0 = 8 are supported)", t->name, t->type);
    t->bytes = tensor_bytes(t->type, t->dims[0], n);
    if (!t->bytes) return fail("tensor %s: row of %llu elements is not whole blocks", t->name,
                               (unsigned long long)t->dims[0]);
    return 0;
}

int gguf_open(gguf_file *g, int fd) {
    memset(g, 0, sizeof *g);
    g->fd = fd;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0 || lseek(fd, 0, SEEK_SET) != 0) return fail("cannot seek in the model file");
    reader *r = calloc(1, sizeof *r);
    if (!r) return fail("out of memory");
    r->fd = fd;
    r->size = g->file_size = (uint64_t)end;
    int rc = -1;
    uint8_t magic[4];
    uint32_t version;
    uint64_t nt, nkv;
    if (rd(r, magic, 4)) goto out;
    if (memcmp(magic, "GGUF", 4)) {
        fail("not a GGUF file (bad magic %02x %02x %02x %02x)", magic[0], magic[1], magic[2],
             magic[3]);
        goto out;
    }
    if (rd_u32(r, &version) || rd_u64(r, &nt) || rd_u64(r, &nkv)) goto out;
    if (version != 3) {
        fail("GGUF version %u (only version 3 is supported)", version);
        goto out;
    }
    if (nt > MAX_TENSORS || nkv > MAX_KV) {
        fail("%llu tensors and %llu metadata keys: too many", (unsigned long long)nt,
             (unsigned long long)nkv);
        goto out;
    }
    g->n_tensors = (uint32_t)nt;
    g->n_kv = (uint32_t)nkv;
    g->kv = calloc(nkv + 1, sizeof *g->kv);
    g->tensors = calloc(nt + 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        fail("out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < g->n_kv; i++) {
        if (rd_kv(r, &g->kv[i])) goto out;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, g->kv[i].key)) {
                fail("metadata key %s appears twice", g->kv[i].key);
                goto out;
            }
    }
    uint64_t align = 32;
    const gguf_kv *a = gguf_find(g, "general.alignment");
    if (a) {
        if (a->type != GGUF_U32 || a->num.u == 0 || (a->num.u & (a->num.u - 1)) || a->num.u > 65536) {
            fail("general.alignment must be a power of two (u32), not %llu",
                 (unsigned long long)a->num.u);
            goto out;
        }
        align = a->num.u;
    }
    for (uint32_t i = 0; i < g->n_tensors; i++)
        if (rd_tensor(r, &g->tensors[i])) goto out;
    g->data_start = (r->pos + align - 1) / align * align;
    for (uint32_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset % align) {
            fail("tensor %s: offset %llu is not aligned to %llu", t->name,
                 (unsigned long long)t->offset, (unsigned long long)align);
            goto out;
        }
        if (g->data_start > g->file_size || t->offset > g->file_size - g->data_start ||
            t->bytes > g->file_size - g->data_start - t->offset) {
            fail("tensor %s (%llu bytes at %llu) reaches past the end of the file (%llu bytes): "
                 "truncated?", t->name, (unsigned long long)t->bytes,
                 (unsigned long long)(g->data_start + t->offset),
                 (unsigned long long)g->file_size);
            goto out;
        }
        t->offset += g->data_start;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, t->name)) {
                fail("tensor %s appears twice", t->name);
                goto out;
            }
    }
    rc = 0;
out:
    free(r);
    return rc;  // on failure the partly read header is left to the process's exit
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint32_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name) {
    for (uint32_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}
