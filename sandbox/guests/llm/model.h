// The llama forward pass: token embeddings, per layer RMSNorm, attention with RoPE and grouped
// key-value heads over a KV cache, RMSNorm, SwiGLU feed-forward; a final RMSNorm and the output
// matrix (tied to the embeddings when the GGUF has no output.weight).
//
// Every matrix product goes through one function (mm in model.c): the host's
// sietch_kernels.matmul in the wasm build, sk_matmul_ref (kernels_ref.c) natively and in the
// wasm build made with -DSK_GUEST_KERNELS, which keeps the weights in guest memory. Both give
// the same bits, so the three builds give the same tokens.
#ifndef LLM_MODEL_H
#define LLM_MODEL_H
#include <stdint.h>

#include "gguf.h"

#ifndef LLM_CTX
#define LLM_CTX 1024  // context, in tokens: the KV cache holds this many positions
#endif

typedef struct model model;

// Checks the hyperparameters and every tensor's shape and type, and loads what the build keeps
// in memory. NULL with a message in err on failure.
model *model_load(gguf_file *g, int n_vocab, char *err, int err_len);
int model_ctx(const model *m);
int model_vocab(const model *m);
// Runs tokens[0, n) at positions pos0, pos0 + 1, ... (pos0 + n <= model_ctx), filling the KV
// cache. Writes the logits of the last position to logits, or of every position (n rows) if
// all is set. Returns 0, or -1 if a matrix product failed (message on stderr).
int model_forward(model *m, const int32_t *tokens, int n, int pos0, float *logits, int all);
#endif
