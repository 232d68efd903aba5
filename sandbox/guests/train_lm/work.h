// One sequence's activations, kept by the forward pass for the backward pass (model.c,
// backward.c), and the backward pass's scratch. Every array is sized for the context T.
#ifndef TRAIN_LM_WORK_H
#define TRAIN_LM_WORK_H

#include "lm.h"

typedef struct {
    float *xhat, *y, *rstd;  // [T][D] normalized input, [T][D] output, [T] 1 / sigma
} ln_cache;

typedef struct {
    ln_cache ln1, ln2;
    float *qkv;  // [T][3D]
    float *p;    // [H][T][T] attention probabilities (row t: positions 0..t)
    float *att;  // [T][D] the heads' outputs side by side
    float *f;    // [T][F] the MLP's hidden layer before ReLU
    float *r;    // [T][F] after ReLU
} block_cache;

struct lm_work {
    float *h;  // [L + 1][T][D] the residual stream into block l (h[L]: into the final LN)
    float *hm; // [L][T][D] block l's stream after its attention is added
    block_cache b[LM_MAX_LAYERS];
    ln_cache lnf;
    float *logits;   // [T][V]
    float *dlogits;  // [T][V]
    float *dh, *dy, *datt, *tmp;  // [T][D] each
    float *dqkv;     // [T][3D]
    float *dr;       // [T][F]
    float *dp;       // [T]
    float *e;        // [V]
};

// Softmax cross-entropy of one position's logits z[0..V) with target y: ln s - (z_y - max)
// with e_k = exp(z_k - max), s = sum e_k in ascending k (e left in e). With dz, writes
// dz_k = (e_k / s - [k == y]) * scale.
double lm_xent(const float *z, uint32_t V, uint32_t y, float *e, float *dz, float scale);

// The backward pass of the sequence lm_sequence just ran forward (x, n tokens; the targets and
// the scale are in w->dlogits, from lm_xent): adds the gradient of (its summed loss * scale) to
// grad.
void lm_backward(lm_work *w, const lm_layout *lay, const float *p, const uint8_t *x, uint32_t n,
                 float *grad);

#endif
