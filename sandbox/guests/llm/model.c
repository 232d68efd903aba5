// See model.h. Float operations happen in the order written (-ffp-contract=off, no
// reassociation), so a build on any host gives the same bits.
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mathx.h"
#ifdef SK_GPU
#include "gpu.h"
#endif

#ifndef CHUNK
#define CHUNK 32  // positions per batch of the prompt (the matrix products take n vectors)
#endif

typedef struct {
    uint32_t type;
    int32_t rows, cols;
    uint64_t offset;     // in the file
    const uint8_t *data; // in memory (native and guest-kernel builds)
    int32_t gpu;         // its device buffer (-DSK_GPU, once uploaded), else 0
} mat;

typedef struct {
    float *attn_norm, *ffn_norm;
    mat q, k, v, o, gate, up, down;
} layer;

struct model {
    int fd, dim, n_layers, n_heads, n_kv, head_dim, kv_dim, ffn, vocab, ctx;
    float eps;
    double inv_freq[128];  // RoPE: base^(-2i / head_dim)
    layer *layers;
    mat embd, out;
    float *out_norm;
    uint8_t *weights;      // the tensor data, when held in memory
    float *k_cache, *v_cache;  // [layer][pos][kv_dim]
    float *x, *xn, *q, *k, *v, *att, *hb, *hb2, *scores, *rope;
};

#if defined(__wasm__) && !defined(SK_GUEST_KERNELS)
#define WEIGHTS_IN_MEMORY 0
#else
#define WEIGHTS_IN_MEMORY 1
#endif

static float half(const uint8_t *p);

// y[j] = W x[j] for n vectors: the one place where matrix products happen.
static int mm(const model *m, const mat *w, const float *x, int n, float *y) {
#ifdef LLM_FLOAT_MATMUL
    // For the reference check only (never a job): the weights dequantized, x NOT quantized, so
    // that the rest of the forward pass can be compared with numpy's to float precision.
    (void)m;
    float *row = malloc((size_t)w->cols * sizeof *row);
    size_t rb = w->type == 0 ? (size_t)w->cols * 4 : (size_t)w->cols / 32 * (w->type == 3 ? 20 : 34);
    for (int r = 0; r < w->rows; r++) {
        const uint8_t *p = w->data + (size_t)r * rb;
        for (int b = 0; b < w->cols / 32; b++) {
            const uint8_t *blk = p + (size_t)b * (w->type == 3 ? 20 : 34);
            for (int i = 0; i < 32; i++)
                row[b * 32 + i] = w->type == 0 ? ((const float *)(const void *)p)[b * 32 + i]
                                : w->type == 8 ? half(blk) * (float)(int8_t)blk[2 + i]
                                : half(blk) * (float)(i < 16 ? blk[4 + i] & 15 : blk[4 + i - 16] >> 4) + half(blk + 2);
        }
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int i = 0; i < w->cols; i++) acc = acc + row[i] * x[(size_t)j * w->cols + i];
            y[(size_t)j * w->rows + r] = acc;
        }
    }
    free(row);
    int rc = 0;
#elif WEIGHTS_IN_MEMORY
    (void)m;
    int rc = sk_matmul_ref(w->data, (int32_t)w->type, w->rows, w->cols, x, n, y);
#else
    int rc = -1;
#ifdef SK_GPU
    // On the GPU when the weights were uploaded (gpu_weights): the same bits as the host's.
    if (w->gpu > 0 &&
        (rc = gpu_matmul(w->gpu, (int32_t)w->type, w->rows, w->cols, x, n, y)) != 0)
        fprintf(stderr, "llm: GPU matrix product %dx%d failed: %d; by the host kernels\n",
                w->rows, w->cols, rc);
    if (rc)
#endif
        rc = sk_matmul_host(m->fd, (int64_t)w->offset, (int32_t)w->type, w->rows, w->cols, x, n, y);
#endif
    if (rc) fprintf(stderr, "llm: matrix product %dx%d (type %u) failed: %d\n", w->rows, w->cols,
                    w->type, rc);
    return rc ? -1 : 0;
}

static float half(const uint8_t *p) {  // IEEE half to float, exactly
    uint32_t h = (uint32_t)p[0] | (uint32_t)p[1] << 8, sign = (h & 0x8000u) << 16;
    uint32_t e = h >> 10 & 31, man = h & 0x3ff, bits;
    if (e == 0 && man == 0) bits = sign;
    else if (e == 0) {
        int s = 0;
        while (!(man & 0x400)) man <<= 1, s++;
        bits = sign | (uint32_t)(113 - s) << 23 | (man & 0x3ff) << 13;
    } else if (e == 31) bits = sign | 0x7f800000u | man << 13;
    else bits = sign | (e + 112) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int get_u32(const gguf_file *g, const char *key, int *out, int lo, int hi, char *err,
                   int err_len) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || (kv->type != GGUF_U32 && kv->type != GGUF_I32 && kv->type != GGUF_U64) ||
        kv->num.i < lo || kv->num.i > hi) {
        snprintf(err, (size_t)err_len, "metadata %s is missing or not an integer in [%d, %d]", key,
                 lo, hi);
        return -1;
    }
    *out = (int)kv->num.i;
    return 0;
}

static int get_mat(model *m, const gguf_file *g, const char *name, int cols, int rows, mat *w,
                   char *err, int err_len) {
    const gguf_tensor *t = gguf_tensor_find(g, name);
    if (!t || t->n_dims != 2 || t->dims[0] != (uint64_t)cols || t->dims[1] != (uint64_t)rows) {
        snprintf(err, (size_t)err_len, "tensor %s is missing or not of dims [%d, %d]", name, cols,
                 rows);
        return -1;
    }
    *w = (mat){t->type, rows, cols, t->offset, NULL, 0};
    if (m->weights) w->data = m->weights + (t->offset - g->data_start);
    return 0;
}

static float *get_vec(const gguf_file *g, const char *name, int n, char *err, int err_len) {
    const gguf_tensor *t = gguf_tensor_find(g, name);
    float *v = malloc((size_t)n * sizeof *v);
    if (!t || t->type != 0 || t->n_dims != 1 || t->dims[0] != (uint64_t)n) {
        snprintf(err, (size_t)err_len, "tensor %s is missing or not F32 of dims [%d]", name, n);
        return NULL;
    }
    if (gguf_read_at(g->fd, t->offset, v, (size_t)n * 4)) {
        snprintf(err, (size_t)err_len, "cannot read tensor %s", name);
        return NULL;
    }
    return v;  // (the file is little-endian, as wasm32, x86-64 and aarch64 are)
}

#ifdef SK_GPU
// The GPU path's start: with a device, every Q4_1 and Q8_0 matrix that mm uses is uploaded
// once, here; without one (or if anything fails) every product stays with the host kernels,
// which give the same bits. Either way the choice is said on stderr.
static void gpu_weights(model *m) {
    if (gpu_init()) return;
    int n = 0;
    uint64_t total = 0;
    for (int l = -1; l < m->n_layers; l++) {
        mat *all[7] = {&m->out};  // (l == -1: the output matrix, tied or not)
        int k = 1;
        if (l >= 0) {
            layer *L = &m->layers[l];
            mat *ws[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
            memcpy(all, ws, sizeof ws);
            k = 7;
        }
        for (int i = 0; i < k; i++) {
            mat *w = all[i];
            if ((w->type != 3 && w->type != 8) || w->cols % 32) continue;  // F32: the host's
            uint64_t bytes = (uint64_t)w->rows * (uint64_t)(w->cols / 32) * (w->type == 3 ? 20 : 34);
            if (gpu_upload_tensor(m->fd, w->offset, bytes, &w->gpu)) {
                fprintf(stderr, "llm: GPU path off (uploading the weights failed): matrix "
                                "products by the host kernels\n");
                gpu_release();
                for (int l2 = 0; l2 < m->n_layers; l2++) {
                    layer *M = &m->layers[l2];
                    M->q.gpu = M->k.gpu = M->v.gpu = M->o.gpu = 0;
                    M->gate.gpu = M->up.gpu = M->down.gpu = 0;
                }
                m->out.gpu = 0;
                return;
            }
            n++, total += bytes;
        }
    }
    fprintf(stderr, "llm: GPU path on: %d matrices, %llu bytes of weights uploaded once\n", n,
            (unsigned long long)total);
}
#endif

model *model_load(gguf_file *g, int n_vocab, char *err, int err_len) {
    model *m = calloc(1, sizeof *m);
    const gguf_kv *arch = gguf_find(g, "general.architecture");
    if (!arch || arch->type != GGUF_STRING || strcmp(arch->str.s, "llama")) {
        snprintf(err, (size_t)err_len, "general.architecture must be \"llama\"");
        return NULL;
    }
    if (get_u32(g, "llama.block_count", &m->n_layers, 1, 256, err, err_len) ||
        get_u32(g, "llama.embedding_length", &m->dim, 32, 16384, err, err_len) ||
        get_u32(g, "llama.feed_forward_length", &m->ffn, 32, 65536, err, err_len) ||
        get_u32(g, "llama.attention.head_count", &m->n_heads, 1, 256, err, err_len) ||
        get_u32(g, "llama.attention.head_count_kv", &m->n_kv, 1, 256, err, err_len))
        return NULL;
    m->head_dim = m->dim / m->n_heads;
    m->kv_dim = m->head_dim * m->n_kv;
    if (m->dim % m->n_heads || m->n_heads % m->n_kv || m->head_dim % 2 || m->head_dim > 256) {
        snprintf(err, (size_t)err_len, "unsupported head layout: dim %d, %d heads, %d kv heads",
                 m->dim, m->n_heads, m->n_kv);
        return NULL;
    }
    int rope_dims = m->head_dim;
    if (gguf_find(g, "llama.rope.dimension_count") &&
        (get_u32(g, "llama.rope.dimension_count", &rope_dims, 2, 256, err, err_len) ||
         rope_dims != m->head_dim)) {
        snprintf(err, (size_t)err_len, "llama.rope.dimension_count must be the head size %d",
                 m->head_dim);
        return NULL;
    }
    const gguf_kv *eps = gguf_find(g, "llama.attention.layer_norm_rms_epsilon");
    const gguf_kv *base = gguf_find(g, "llama.rope.freq_base");
    m->eps = eps && eps->type == GGUF_F32 ? (float)eps->num.f : 1e-5f;
    double b = base && base->type == GGUF_F32 ? base->num.f : 10000.0;
    if (!(m->eps > 0 && m->eps < 1) || !(b > 1 && b < 1e12)) {
        snprintf(err, (size_t)err_len, "rms epsilon or rope frequency base out of range");
        return NULL;
    }
    for (int i = 0; i < m->head_dim / 2; i++)
        m->inv_freq[i] = mx_pow(b, -(double)(2 * i) / (double)m->head_dim);
    m->vocab = n_vocab;
    m->ctx = LLM_CTX;
    m->fd = g->fd;
#if WEIGHTS_IN_MEMORY
    m->weights = malloc(g->file_size - g->data_start + 1);
    if (!m->weights || gguf_read_at(g->fd, g->data_start, m->weights, g->file_size - g->data_start)) {
        snprintf(err, (size_t)err_len, "cannot load the %llu bytes of weights into memory",
                 (unsigned long long)(g->file_size - g->data_start));
        return NULL;
    }
#endif
    if (get_mat(m, g, "token_embd.weight", m->dim, n_vocab, &m->embd, err, err_len)) return NULL;
    if (gguf_tensor_find(g, "output.weight")) {
        if (get_mat(m, g, "output.weight", m->dim, n_vocab, &m->out, err, err_len)) return NULL;
    } else {
        m->out = m->embd;  // tied
    }
    if (!(m->out_norm = get_vec(g, "output_norm.weight", m->dim, err, err_len))) return NULL;
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    for (int l = 0; l < m->n_layers; l++) {
        layer *L = &m->layers[l];
        char name[64];
#define MAT(field, suffix, c, r)                                                   \
    snprintf(name, sizeof name, "blk.%d." suffix ".weight", l);                    \
    if (get_mat(m, g, name, c, r, &L->field, err, err_len)) return NULL;
        MAT(q, "attn_q", m->dim, m->dim)
        MAT(k, "attn_k", m->dim, m->kv_dim)
        MAT(v, "attn_v", m->dim, m->kv_dim)
        MAT(o, "attn_output", m->dim, m->dim)
        MAT(gate, "ffn_gate", m->dim, m->ffn)
        MAT(up, "ffn_up", m->dim, m->ffn)
        MAT(down, "ffn_down", m->ffn, m->dim)
#undef MAT
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if (!(L->attn_norm = get_vec(g, name, m->dim, err, err_len))) return NULL;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if (!(L->ffn_norm = get_vec(g, name, m->dim, err, err_len))) return NULL;
    }
    size_t cache = (size_t)m->n_layers * (size_t)m->ctx * (size_t)m->kv_dim;
    m->k_cache = malloc(cache * sizeof(float));
    m->v_cache = malloc(cache * sizeof(float));
    size_t d = (size_t)CHUNK * (size_t)m->dim, f = (size_t)CHUNK * (size_t)m->ffn;
    m->x = malloc(d * 4), m->xn = malloc(d * 4), m->q = malloc(d * 4), m->att = malloc(d * 4);
    m->k = malloc((size_t)CHUNK * (size_t)m->kv_dim * 4);
    m->v = malloc((size_t)CHUNK * (size_t)m->kv_dim * 4);
    m->hb = malloc(f * 4), m->hb2 = malloc(f * 4);
    m->scores = malloc((size_t)m->ctx * 4);
    m->rope = malloc((size_t)CHUNK * (size_t)m->head_dim * 4);
    if (!m->k_cache || !m->v_cache || !m->x || !m->xn || !m->q || !m->att || !m->k || !m->v ||
        !m->hb || !m->hb2 || !m->scores || !m->rope) {
        snprintf(err, (size_t)err_len, "out of memory for the KV cache and buffers");
        return NULL;
    }
#ifdef SK_GPU
    gpu_weights(m);
#endif
    return m;
}

int model_ctx(const model *m) { return m->ctx; }
int model_vocab(const model *m) { return m->vocab; }

// The embedding of a token, dequantized as GGML does: Q8_0 d * q, Q4_1 d * q + m.
static int embed(const model *m, int32_t tok, float *out) {
    const mat *e = &m->embd;
    size_t row_bytes = e->type == 0 ? (size_t)e->cols * 4
                     : (size_t)e->cols / 32 * (e->type == 3 ? 20 : 34);
    uint8_t *buf = NULL;
    const uint8_t *row;
    if (e->data) {
        row = e->data + (size_t)tok * row_bytes;
    } else {
        row = buf = malloc(row_bytes);
        if (!buf || gguf_read_at(m->fd, e->offset + (uint64_t)tok * row_bytes, buf, row_bytes))
            return free(buf), fprintf(stderr, "llm: cannot read an embedding\n"), -1;
    }
    for (int b = 0; b < e->cols / 32 || (e->type == 0 && b == 0); b++) {
        if (e->type == 0) {
            memcpy(out, row, (size_t)e->cols * 4);
        } else if (e->type == 8) {
            const uint8_t *blk = row + (size_t)b * 34;
            float d = half(blk);
            for (int i = 0; i < 32; i++) out[b * 32 + i] = d * (float)(int8_t)blk[2 + i];
        } else {
            const uint8_t *blk = row + (size_t)b * 20;
            float d = half(blk), mn = half(blk + 2);
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)(blk[4 + i] & 15) + mn;
                out[b * 32 + i + 16] = d * (float)(blk[4 + i] >> 4) + mn;
            }
        }
    }
    free(buf);
    return 0;
}

static void rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss = ss + x[i] * x[i];
    float scale = 1.0f / mx_sqrt(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

// RoPE, GGML's "normal" mode: adjacent pairs (x[2i], x[2i+1]) turn by pos * base^(-2i/d).
static void rope(float *x, const float *cs, int half_dim) {
    for (int i = 0; i < half_dim; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1], a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

static int forward_chunk(model *m, const int32_t *tokens, int n, int pos0, float *logits, int all) {
    int D = m->dim, KV = m->kv_dim, HD = m->head_dim, F = m->ffn;
    float scale = 1.0f / mx_sqrt((float)HD);
    for (int j = 0; j < n; j++) {
        if (tokens[j] < 0 || tokens[j] >= m->vocab) return fprintf(stderr, "llm: bad token\n"), -1;
        if (embed(m, tokens[j], m->x + (size_t)j * D)) return -1;
        for (int i = 0; i < HD / 2; i++)
            mx_sincos((double)(pos0 + j) * m->inv_freq[i], &m->rope[j * HD + 2 * i + 1],
                      &m->rope[j * HD + 2 * i]);
    }
    for (int l = 0; l < m->n_layers; l++) {
        layer *L = &m->layers[l];
        float *kc = m->k_cache + (size_t)l * m->ctx * KV, *vc = m->v_cache + (size_t)l * m->ctx * KV;
        for (int j = 0; j < n; j++) rmsnorm(m->x + j * D, L->attn_norm, D, m->eps, m->xn + j * D);
        if (mm(m, &L->q, m->xn, n, m->q) || mm(m, &L->k, m->xn, n, m->k) ||
            mm(m, &L->v, m->xn, n, m->v))
            return -1;
        for (int j = 0; j < n; j++) {
            for (int h = 0; h < m->n_heads; h++) rope(m->q + j * D + h * HD, m->rope + j * HD, HD / 2);
            for (int h = 0; h < m->n_kv; h++) rope(m->k + j * KV + h * HD, m->rope + j * HD, HD / 2);
            memcpy(kc + (size_t)(pos0 + j) * KV, m->k + j * KV, (size_t)KV * 4);
            memcpy(vc + (size_t)(pos0 + j) * KV, m->v + j * KV, (size_t)KV * 4);
        }
        for (int j = 0; j < n; j++) {
            int len = pos0 + j + 1;  // causal: position p sees 0..p
            for (int h = 0; h < m->n_heads; h++) {
                const float *q = m->q + j * D + h * HD;
                int kvh = h / (m->n_heads / m->n_kv);
                float mx = -__builtin_inff();
                for (int t = 0; t < len; t++) {
                    const float *k = kc + (size_t)t * KV + kvh * HD;
                    float s = 0.0f;
                    for (int i = 0; i < HD; i++) s = s + q[i] * k[i];
                    s = s * scale;
                    m->scores[t] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                for (int t = 0; t < len; t++) {
                    m->scores[t] = mx_exp(m->scores[t] - mx);
                    sum = sum + m->scores[t];
                }
                float *o = m->att + j * D + h * HD;
                for (int i = 0; i < HD; i++) o[i] = 0.0f;
                for (int t = 0; t < len; t++) {
                    float p = m->scores[t] / sum;
                    const float *v = vc + (size_t)t * KV + kvh * HD;
                    for (int i = 0; i < HD; i++) o[i] = o[i] + p * v[i];
                }
            }
        }
        if (mm(m, &L->o, m->att, n, m->xn)) return -1;
        for (int i = 0; i < n * D; i++) m->x[i] = m->x[i] + m->xn[i];
        for (int j = 0; j < n; j++) rmsnorm(m->x + j * D, L->ffn_norm, D, m->eps, m->xn + j * D);
        if (mm(m, &L->gate, m->xn, n, m->hb) || mm(m, &L->up, m->xn, n, m->hb2)) return -1;
        for (int i = 0; i < n * F; i++) {
            float g = m->hb[i];
            m->hb[i] = g / (1.0f + mx_exp(-g)) * m->hb2[i];  // SiLU(gate) * up
        }
        if (mm(m, &L->down, m->hb, n, m->xn)) return -1;
        for (int i = 0; i < n * D; i++) m->x[i] = m->x[i] + m->xn[i];
    }
    if (!logits) return 0;
    int first = all ? 0 : n - 1;
    for (int j = first; j < n; j++) rmsnorm(m->x + j * D, m->out_norm, D, m->eps, m->xn + j * D);
    return mm(m, &m->out, m->xn + first * D, n - first, logits);
}

int model_forward(model *m, const int32_t *tokens, int n, int pos0, float *logits, int all) {
    if (n < 1 || pos0 < 0 || pos0 + n > m->ctx) return fprintf(stderr, "llm: past the context\n"), -1;
    for (int done = 0; done < n;) {
        int c = n - done < CHUNK ? n - done : CHUNK;
        // Logits of the last position only (or of every position if all is set).
        float *out = all ? logits + (size_t)done * m->vocab : done + c == n ? logits : NULL;
        if (forward_chunk(m, tokens + done, c, pos0 + done, out, all)) return -1;
        done += c;
    }
    return 0;
}
