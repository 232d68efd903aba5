// See json.h.
#include "json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *s;
    size_t n, i;
    char *err;
    size_t err_len;
} parser;

static int perr(parser *p, const char *what) {
    snprintf(p->err, p->err_len, "invalid JSON at byte %zu: %s", p->i, what);
    return -1;
}

static void ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static void sb_grow(sbuf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) abort();
    b->p = q;
    b->cap = cap;
}

void sb_put(sbuf *b, const char *s, size_t n) {
    sb_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, k < 0 ? 0 : (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void put_utf8(sbuf *b, uint32_t c) {
    char o[4];
    size_t k;
    if (c < 0x80) o[0] = (char)c, k = 1;
    else if (c < 0x800) o[0] = (char)(0xc0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), k = 2;
    else if (c < 0x10000)
        o[0] = (char)(0xe0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 63)),
        o[2] = (char)(0x80 | (c & 63)), k = 3;
    else
        o[0] = (char)(0xf0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 63)),
        o[2] = (char)(0x80 | (c >> 6 & 63)), o[3] = (char)(0x80 | (c & 63)), k = 4;
    sb_put(b, o, k);
}

// Length of the valid UTF-8 character at s[0, n), or 0 if the bytes there are not one.
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len <= 1 || len > n) return len == 1 ? 1 : 0;
    uint32_t v = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 63);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) return 0;
    return len;
}

static int hex4(parser *p, uint32_t *v) {
    if (p->n - p->i < 4) return perr(p, "short \\u escape");
    *v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = p->s[p->i++];
        int d = c >= '0' && c <= '9' ? (int)c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (int)(c | 32) - 'a' + 10 : -1;
        if (d < 0) return perr(p, "bad hex digit in \\u escape");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static int pstring(parser *p, sbuf *b) {
    p->i++;  // the opening quote
    for (;;) {
        if (p->i >= p->n) return perr(p, "unterminated string");
        unsigned c = p->s[p->i];
        if (c == '"') return p->i++, 0;
        if (c < 0x20) return perr(p, "control character in a string");
        if (c != '\\') {
            size_t k = utf8_len(p->s + p->i, p->n - p->i);
            if (!k) return perr(p, "invalid UTF-8");
            sb_put(b, (const char *)p->s + p->i, k);
            p->i += k;
            continue;
        }
        if (++p->i >= p->n) return perr(p, "unterminated escape");
        c = p->s[p->i++];
        const char *simple = strchr("\"\\/bfnrt", (int)c);
        if (c && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            sb_put(b, &out[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        if (c != 'u') return perr(p, "unknown escape");
        uint32_t u, lo;
        if (hex4(p, &u)) return -1;
        if (u >= 0xdc00 && u < 0xe000) return perr(p, "lone low surrogate");
        if (u >= 0xd800 && u < 0xdc00) {
            if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                return perr(p, "high surrogate without a low one");
            p->i += 2;
            if (hex4(p, &lo)) return -1;
            if (lo < 0xdc00 || lo >= 0xe000) return perr(p, "high surrogate without a low one");
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        put_utf8(b, u);
    }
}

static int pvalue(parser *p, jval *v, int depth);

static int pnumber(parser *p, jval *v) {
    size_t st = p->i;
    const unsigned char *s = p->s;
#define DIGIT(k) ((k) < p->n && s[k] >= '0' && s[k] <= '9')
    if (p->i < p->n && s[p->i] == '-') p->i++;
    if (!DIGIT(p->i)) return perr(p, "bad number");
    if (s[p->i] == '0') p->i++;
    else while (DIGIT(p->i)) p->i++;
    if (p->i < p->n && s[p->i] == '.') {
        if (!DIGIT(p->i + 1)) return perr(p, "bad fraction");
        for (p->i++; DIGIT(p->i);) p->i++;
    }
    if (p->i < p->n && (s[p->i] | 32) == 'e') {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
        if (!DIGIT(p->i)) return perr(p, "bad exponent");
        while (DIGIT(p->i)) p->i++;
    }
#undef DIGIT
    v->t = J_NUM;
    v->len = p->i - st;
    v->s = malloc(v->len + 1);
    memcpy(v->s, s + st, v->len);
    v->s[v->len] = 0;
    v->num = strtod(v->s, NULL);  // correctly rounded in glibc and wasi-libc (musl)
    return 0;
}

static int pvalue(parser *p, jval *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > 32) return perr(p, "nested too deep");
    ws(p);
    if (p->i >= p->n) return perr(p, "value expected");
    unsigned c = p->s[p->i];
    static const char *const words[3] = {"null", "true", "false"};
    for (int w = 0; w < 3; w++) {
        size_t k = strlen(words[w]);
        if (p->n - p->i >= k && !memcmp(p->s + p->i, words[w], k)) {
            p->i += k;
            v->t = w ? J_BOOL : J_NULL;
            v->b = w == 1;
            return 0;
        }
    }
    if (c == '"') {
        sbuf b = {0};
        sb_put(&b, "", 0);
        v->t = J_STR;
        int rc = pstring(p, &b);
        v->s = b.p;
        v->len = b.len;
        return rc;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return pnumber(p, v);
    if (c != '[' && c != '{') return perr(p, "unexpected character");
    int obj = c == '{';
    v->t = obj ? J_OBJ : J_ARR;
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) return p->i++, 0;
    for (;;) {
        if (v->n % 8 == 0) {  // room for 8 more, zeroed so that json_free can run any time
            v->items = realloc(v->items, (size_t)(v->n + 8) * sizeof *v->items);
            memset(v->items + v->n, 0, 8 * sizeof *v->items);
            if (obj) {
                v->keys = realloc(v->keys, (size_t)(v->n + 8) * sizeof *v->keys);
                memset(v->keys + v->n, 0, 8 * sizeof *v->keys);
            }
        }
        if (obj) {
            ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "key expected");
            sbuf k = {0};
            sb_put(&k, "", 0);
            int rc = pstring(p, &k);
            v->keys[v->n] = k.p;
            if (rc) return v->n++, -1;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return v->n++, perr(p, "':' expected");
            p->i++;
        }
        int rc = pvalue(p, &v->items[v->n], depth + 1);
        v->n++;
        if (rc) return -1;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) return p->i++, 0;
        return perr(p, obj ? "',' or '}' expected" : "',' or ']' expected");
    }
}

int json_parse(const char *text, size_t n, jval *out, char *err, size_t err_len) {
    parser p = {(const unsigned char *)text, n, 0, err, err_len};
    if (pvalue(&p, out, 0)) return -1;
    ws(&p);
    if (p.i != n) return perr(&p, "trailing characters after the value");
    return 0;
}

void json_free(jval *v) {
    for (int i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    memset(v, 0, sizeof *v);
}

void sb_json_str(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') sb_put(b, c == '"' ? "\\\"" : "\\\\", 2), i++;
        else if (c == '\n') sb_put(b, "\\n", 2), i++;
        else if (c == '\t') sb_put(b, "\\t", 2), i++;
        else if (c == '\r') sb_put(b, "\\r", 2), i++;
        else if (c < 0x20 || c == 0x7f) sb_printf(b, "\\u%04x", c), i++;
        else {
            size_t k = utf8_len(u + i, n - i);
            if (k) sb_put(b, s + i, k), i += k;
            else sb_put(b, "\xef\xbf\xbd", 3), i++;  // U+FFFD
        }
    }
    sb_put(b, "\"", 1);
}
