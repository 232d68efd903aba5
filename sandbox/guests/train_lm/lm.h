// The language-model training guest's model (docs/training.md, "A second model"): a byte-level
// decoder-only transformer. Tokens are bytes below V; learned token and position embeddings;
// L blocks of pre-LayerNorm causal self-attention (H heads) and a ReLU MLP (width F), each
// added to the residual stream; a final LayerNorm and an untied output layer; softmax
// cross-entropy on the next byte. Every sum runs in one fixed order (see model.c).
#ifndef TRAIN_LM_H
#define TRAIN_LM_H

#include <stdint.h>

#include "../train/train.h"

#define LM_MAX_VOCAB 256
#define LM_MAX_CTX 1024
#define LM_MAX_D 1024
#define LM_MAX_LAYERS 8
#define LM_MAX_FF 4096

typedef struct {
    uint32_t vocab, ctx, d, layers, heads, ff;  // V, T, D, L, H, F
} lm_config;

// Where each tensor starts in the flat parameters, in file order: wte [V][D], wpe [T][D], then
// per block ln1 g, b [D]; wqkv [3D][D] (q rows, then k, then v); bqkv [3D]; wo [D][D]; bo [D];
// ln2 g, b [D]; w1 [F][D]; b1 [F]; w2 [D][F]; b2 [D]; then lnf g, b [D]; wout [V][D]; bout [V].
// A weight matrix [out][in] is row-major: y = W x + b.
typedef struct {
    uint32_t ln1_g, ln1_b, wqkv, bqkv, wo, bo, ln2_g, ln2_b, w1, b1, w2, b2;
} lm_block;

typedef struct {
    lm_config c;
    uint32_t wte, wpe, lnf_g, lnf_b, wout, bout, n_params;
    lm_block block[LM_MAX_LAYERS];
} lm_layout;

// Checks the config's bounds (each dimension, heads dividing d, at most MAX_PARAMS
// parameters, at most 2^25 floats of one window's activations) and lays it out: NULL, or what
// is wrong with it.
const char *lm_layout_new(lm_layout *lay, const lm_config *c);

// One sequence's activations and the scratch of its backward pass.
typedef struct lm_work lm_work;
lm_work *lm_work_new(const lm_layout *lay);

// Forward over tokens x[0..n) (n <= T, each < V). With y (n targets), returns the sum of the
// n positions' losses (ln s - (z_y - max), in double) and, with grad, adds the gradient of
// (that sum * scale) to it. With y NULL: returns 0 and leaves the logits of the last
// position in *last_logits (V floats, owned by w).
double lm_sequence(lm_work *w, const lm_layout *lay, const float *p, const uint8_t *x,
                   const uint8_t *y, uint32_t n, float scale, float *grad,
                   const float **last_logits);

// Uniform in [-a, a] with a = 0.02 sqrt 3 (a standard deviation of 0.02) for the embeddings
// and weight matrices, divided by sqrt(2 L) for each block's wo and w2; LayerNorm gains 1;
// biases and LayerNorm shifts 0. splitmix64 from seed, tensors in file order.
void lm_init(float *p, const lm_layout *lay, uint64_t seed);

#endif
