// See tokenizer.h.
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;  // (left << 32 | right) + 1; 0 = empty slot
    int32_t rank, id;
} merge_slot;

struct tokenizer {
    int n_vocab;
    const gguf_str *vocab;
    int32_t *vocab_table;  // open addressing: token id + 1, 0 = empty
    uint32_t vocab_mask;
    merge_slot *merges;
    uint32_t merge_mask;
    int32_t byte_tok[256];     // the token of each byte's symbol, or -1
    int32_t unk;               // stands for a byte whose symbol is not in the vocabulary, or -1
    int16_t unicode_byte[324];  // code point of a byte-level symbol -> byte, or -1
};

static uint32_t hash_bytes(const char *s, size_t n) {  // FNV-1a
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}
static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static int lookup(const tokenizer *t, const char *s, size_t n) {
    for (uint32_t h = hash_bytes(s, n) & t->vocab_mask;; h = (h + 1) & t->vocab_mask) {
        int32_t v = t->vocab_table[h];
        if (!v) return -1;
        const gguf_str *e = &t->vocab[v - 1];
        if (e->len == n && !memcmp(e->s, s, n)) return v - 1;
    }
}

static const merge_slot *merge_find(const tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t h = hash_u64(key) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        if (!t->merges[h].key) return NULL;
        if (t->merges[h].key == key) return &t->merges[h];
    }
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256 + n.
static uint32_t byte_symbol(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) n++;
    return 256u + (uint32_t)n;
}

static int utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63));
        return o[2] = (char)(0x80 | (cp & 63)), 3;
    }
    o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

// Decodes one UTF-8 character at s[0, n); returns its length (1 for an invalid byte, whose
// code point is then reported as 0xFFFD).
static int utf8_get(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 1) return *cp = c, 1;
    if (!len || (size_t)len > n) return *cp = 0xfffd, 1;
    uint32_t v = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return *cp = 0xfffd, 1;
        v = v << 6 | (s[i] & 63);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) return *cp = 0xfffd, 1;
    return *cp = v, len;
}

tokenizer *tok_load(const gguf_file *g, char *err, size_t err_len) {
    const gguf_kv *model = gguf_find(g, "tokenizer.ggml.model");
    const gguf_kv *toks = gguf_find(g, "tokenizer.ggml.tokens");
    const gguf_kv *merges = gguf_find(g, "tokenizer.ggml.merges");
    if (!model || model->type != GGUF_STRING || strcmp(model->str.s, "gpt2")) {
        snprintf(err, err_len, "tokenizer.ggml.model must be \"gpt2\" (byte-level BPE)");
        return NULL;
    }
    if (!toks || toks->type != GGUF_ARRAY || toks->elem_type != GGUF_STRING || !toks->count ||
        !merges || merges->type != GGUF_ARRAY || merges->elem_type != GGUF_STRING) {
        snprintf(err, err_len, "tokenizer.ggml.tokens and .merges must be arrays of strings");
        return NULL;
    }
    tokenizer *t = calloc(1, sizeof *t);
    t->n_vocab = (int)toks->count;
    t->vocab = toks->strs;
    uint32_t cap = 1;
    while (cap < 2 * toks->count) cap <<= 1;
    t->vocab_mask = cap - 1;
    t->vocab_table = calloc(cap, sizeof *t->vocab_table);
    for (int i = 0; i < t->n_vocab; i++) {
        if (lookup(t, t->vocab[i].s, t->vocab[i].len) >= 0) continue;  // first one wins
        uint32_t h = hash_bytes(t->vocab[i].s, t->vocab[i].len) & t->vocab_mask;
        while (t->vocab_table[h]) h = (h + 1) & t->vocab_mask;
        t->vocab_table[h] = i + 1;
    }
    for (int i = 0; i < 324; i++) t->unicode_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        char s[4];
        uint32_t cp = byte_symbol(b);
        t->unicode_byte[cp] = (int16_t)b;
        t->byte_tok[b] = lookup(t, s, (size_t)utf8_put(cp, s));
    }
    // SmolLM2's vocabulary lacks the symbols of a few control bytes (4, 6, 0x13, ...): such a
    // byte becomes the unknown token, as in the Hugging Face tokenizer, or nothing without one.
    const gguf_kv *unk = gguf_find(g, "tokenizer.ggml.unknown_token_id");
    t->unk = unk && unk->type == GGUF_U32 && unk->num.u < toks->count ? (int32_t)unk->num.u : -1;
    cap = 1;
    while (cap < 2 * merges->count + 2) cap <<= 1;
    t->merge_mask = cap - 1;
    t->merges = calloc(cap, sizeof *t->merges);
    char buf[1024];
    for (uint64_t r = 0; r < merges->count; r++) {
        const gguf_str *m = &merges->strs[r];
        const char *sp = memchr(m->s, ' ', m->len);
        if (!sp || m->len >= sizeof buf) {
            snprintf(err, err_len, "merge %llu is not two symbols separated by a space",
                     (unsigned long long)r);
            return NULL;
        }
        size_t la = (size_t)(sp - m->s), lb = m->len - la - 1;
        int a = lookup(t, m->s, la), b = lookup(t, sp + 1, lb);
        memcpy(buf, m->s, la);
        memcpy(buf + la, sp + 1, lb);
        int ab = lookup(t, buf, la + lb);
        if (a < 0 || b < 0 || ab < 0) continue;  // a merge that can never apply
        uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
        uint32_t h = hash_u64(key) & t->merge_mask;
        while (t->merges[h].key && t->merges[h].key != key) h = (h + 1) & t->merge_mask;
        if (t->merges[h].key) continue;  // the first (lowest) rank wins
        t->merges[h] = (merge_slot){key, (int32_t)r, ab};
    }
    return t;
}

int tok_vocab_size(const tokenizer *t) { return t->n_vocab; }
int tok_id(const tokenizer *t, const char *text) { return lookup(t, text, strlen(text)); }

// Character classes of the pre-tokenizer: letters, numbers, white space, other.
enum { C_L, C_N, C_S, C_O };
static int cls(uint32_t c) {
    if (c < 128) {
        if ((c | 32) >= 'a' && (c | 32) <= 'z') return C_L;
        if (c >= '0' && c <= '9') return C_N;
        if (c == ' ' || (c >= 9 && c <= 13)) return C_S;
        return C_O;
    }
    // Outside ASCII, an approximation of Unicode's classes good for European text.
    if (c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
        c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000)
        return C_S;
    if (c == 0xb2 || c == 0xb3 || c == 0xb9 || (c >= 0xbc && c <= 0xbe) ||
        (c >= 0x660 && c <= 0x669) || (c >= 0x6f0 && c <= 0x6f9) || (c >= 0x966 && c <= 0x96f) ||
        (c >= 0x2070 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089) ||
        (c >= 0x2150 && c <= 0x2189) || (c >= 0x2460 && c <= 0x249b) ||
        (c >= 0xff10 && c <= 0xff19))
        return C_N;
    if (c == 0xaa || c == 0xb5 || c == 0xba) return C_L;
    if (c < 0xc0 || c == 0xd7 || c == 0xf7 || (c >= 0x2000 && c <= 0x2bff) ||
        (c >= 0x3000 && c <= 0x303f) || (c >= 0xfe30 && c <= 0xfe4f) ||
        (c >= 0xff00 && c <= 0xff20) || (c >= 0x1f000 && c <= 0x1faff) || c == 0xfffd ||
        (c >= 0x300 && c <= 0x36f))
        return C_O;
    return C_L;
}

// BPE over one piece's bytes.
static int bpe(const tokenizer *t, const uint8_t *s, size_t n, int32_t *out, int cap) {
    if ((size_t)cap < n) {
        // The result may be shorter; work in a buffer of our own.
        int32_t *tmp = malloc(n * sizeof *tmp);
        int k = bpe(t, s, n, tmp, (int)n);
        if (k > cap) k = -1;
        else memcpy(out, tmp, (size_t)k * sizeof *tmp);
        free(tmp);
        return k;
    }
    int len = (int)n;
    for (int i = 0; i < len; i++) out[i] = t->byte_tok[s[i]];
    for (;;) {
        int best = -1;
        const merge_slot *bm = NULL;
        for (int i = 0; i + 1 < len; i++) {
            const merge_slot *m = merge_find(t, out[i], out[i + 1]);
            if (m && (!bm || m->rank < bm->rank)) bm = m, best = i;
        }
        if (!bm) break;
        out[best] = bm->id;
        memmove(out + best + 1, out + best + 2, (size_t)(len - best - 2) * sizeof *out);
        len--;
    }
    int k = 0;  // the bytes outside the vocabulary
    for (int i = 0; i < len; i++)
        if (out[i] >= 0 || t->unk >= 0) out[k++] = out[i] >= 0 ? out[i] : t->unk;
    return k;
}

// The end of the GPT-2 regex's match at cp[i] within a piece cp[i, e):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static int gpt2_match(const uint32_t *cp, int i, int e) {
    if (cp[i] == '\'' && i + 1 < e) {
        uint32_t a = cp[i + 1], b = i + 2 < e ? cp[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    int j = cp[i] == ' ' && i + 1 < e && cls(cp[i + 1]) != C_S ? i + 1 : i;
    int c = cls(cp[j]);
    if (c != C_S) {
        int k = j + 1;
        while (k < e && cls(cp[k]) == c) k++;
        return k;
    }
    int k = i + 1;
    while (k < e && cls(cp[k]) == C_S) k++;
    if (k == e || k - 1 == i) return k;
    return k - 1;  // leave the last white space to the word after it
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int32_t *out, int cap) {
    const uint8_t *s = (const uint8_t *)text;
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    size_t *at = malloc((len + 1) * sizeof *at);  // byte offset of each character
    int n = 0, count = 0;
    for (size_t p = 0; p < len;) {
        at[n] = p;
        p += (size_t)utf8_get(s + p, len - p, &cp[n++]);
    }
    at[n] = len;
    // Digits stand alone (pre-tokenizer Digits(individual_digits)); GPT-2's regex splits the
    // stretches between them.
    for (int i = 0; i < n && count >= 0;) {
        int e = i;
        if (cls(cp[i]) == C_N) e = i + 1;
        else while (e < n && cls(cp[e]) != C_N) e++;
        for (int p = i; p < e && count >= 0;) {
            int q = cls(cp[p]) == C_N ? p + 1 : gpt2_match(cp, p, e);
            int k = bpe(t, s + at[p], at[q] - at[p], out + count, cap - count);
            count = k < 0 ? -1 : count + k;
            p = q;
        }
        i = e;
    }
    free(cp);
    free(at);
    return count;
}

int tok_decode(const tokenizer *t, int32_t id, char *buf, int cap) {
    if (id < 0 || id >= t->n_vocab) return 0;
    const gguf_str *e = &t->vocab[id];
    int n = 0;
    for (size_t p = 0; p < e->len && n < cap;) {
        uint32_t c;
        p += (size_t)utf8_get((const uint8_t *)e->s + p, e->len - p, &c);
        int b = c < 324 ? t->unicode_byte[c] : -1;
        if (b >= 0) buf[n++] = (char)b;
        // (a character outside the byte-level alphabet, never in a gpt2 vocabulary, is dropped)
    }
    return n;
}
