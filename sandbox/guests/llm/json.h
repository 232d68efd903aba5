// A small, strict JSON reader (RFC 8259: no trailing commas, no comments, no leading zeros,
// valid UTF-8 only, \uXXXX escapes with surrogate pairs joined and lone surrogates refused,
// nesting at most 32 deep) and a writer of JSON strings that always gives valid UTF-8.
#ifndef LLM_JSON_H
#define LLM_JSON_H
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    int b;              // J_BOOL
    double num;         // J_NUM
    char *s;            // J_STR: the decoded bytes (NUL-terminated, may hold NULs); J_NUM: its text
    size_t len;
    struct jval *items; // J_ARR and J_OBJ
    char **keys;        // J_OBJ (decoded, NUL-terminated)
    int n;
} jval;

// Parses text[0, n) as one JSON value. 0, or -1 with a message in err.
int json_parse(const char *text, size_t n, jval *out, char *err, size_t err_len);
void json_free(jval *v);

// A growing byte buffer.
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;
void sb_put(sbuf *b, const char *s, size_t n);
void sb_printf(sbuf *b, const char *fmt, ...);
// Appends s[0, n) as a JSON string literal: quotes, escapes, control characters as \u00XX, and
// each byte that is not part of valid UTF-8 as U+FFFD.
void sb_json_str(sbuf *b, const char *s, size_t n);
#endif
