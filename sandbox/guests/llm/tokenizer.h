// GPT-2 byte-level BPE, as SmolLM2's tokenizer (GGUF tokenizer.ggml.model "gpt2", pre-tokenizer
// "smollm"): text is split into pieces (each digit alone, then GPT-2's regex), each piece's
// bytes become the byte-level alphabet's symbols, and the merges are applied lowest rank first.
#ifndef LLM_TOKENIZER_H
#define LLM_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tokenizer tokenizer;

// Builds the tokenizer from the GGUF's tokenizer.ggml.tokens and .merges. NULL with a message
// in *err on failure.
tokenizer *tok_load(const gguf_file *g, char *err, size_t err_len);
int tok_vocab_size(const tokenizer *t);
// Id of a token by its exact text (for special tokens), or -1.
int tok_id(const tokenizer *t, const char *text);
// Appends the tokens of text[0, len) to out (capacity cap); returns the count appended, or -1
// if more than cap. Special tokens' texts are ordinary text here.
int tok_encode(const tokenizer *t, const char *text, size_t len, int32_t *out, int cap);
// The bytes of one token (not NUL-terminated, possibly part of a UTF-8 character); returns the
// count written to buf (at most cap).
int tok_decode(const tokenizer *t, int32_t id, char *buf, int cap);
#endif
