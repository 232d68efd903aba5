// The multilayer perceptron: dense layers, ReLU between them, softmax cross-entropy on the
// last; its forward and backward passes, initialisation and the two optimizers. Every sum runs
// in one fixed order (docs/training.md, "Determinism"), so each host computes the same bits.
#ifndef TRAIN_MLP_H
#define TRAIN_MLP_H

#include <stdint.h>

#include "formats.h"

typedef struct {
    uint32_t n_layers;
    const uint32_t *dims;
    uint32_t n_params;
    uint32_t w_off[MAX_LAYERS];        // where layer l's W starts in the parameters
    uint32_t act_off[MAX_LAYERS + 1];  // where layer l's input (l = n_layers: the logits) starts
    float *act;                        // one sample's activations, input to logits
    float *delta, *delta_prev;         // one layer's gradient with respect to its output
} mlp;

void mlp_new(mlp *m, uint32_t n_layers, const uint32_t *dims);

// One record (d pixels, then the label): its loss, in double. With `grad`, adds the
// gradient of loss / batch to it. `*pred`: the class of the highest logit (the first on a tie).
double mlp_sample(mlp *m, const float *w, const uint8_t *record, uint32_t batch, float *grad,
                  uint32_t *pred);

// He uniform for layers followed by ReLU, Glorot uniform for the last; biases zero.
void mlp_init(float *w, uint32_t n_layers, const uint32_t *dims, uint64_t seed);

typedef struct {
    float lr, momentum, wd;
    float *m, *v;    // momentum buffer (sgdm); first and second moments (adamw): zero at start
    double p1, p2;   // adamw: beta1^t, beta2^t
} opt_state;

void sgdm_step(opt_state *o, float *w, const float *g, uint32_t n);
void adamw_step(opt_state *o, float *w, const float *g, uint32_t n);

#endif
