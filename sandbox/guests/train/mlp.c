// See mlp.h. Float arithmetic (f32) with every sum in ascending index order and samples added
// in batch order; exp and log from ../llm/mathx.c (basic IEEE operations only, no libm);
// -ffp-contract=off so no multiply-add is fused. Loops without a sum may be vectorized: each
// lane does the same IEEE operation as the scalar code.
#include "mlp.h"

#include "../llm/mathx.h"

void mlp_new(mlp *m, uint32_t n_layers, const uint32_t *dims) {
    uint32_t w = 0, a = 0, widest = 0;
    m->n_layers = n_layers;
    m->dims = dims;
    for (uint32_t l = 0; l <= n_layers; l++) {
        m->act_off[l] = a;
        a += dims[l];
        if (dims[l] > widest) widest = dims[l];
        if (l == n_layers) break;
        m->w_off[l] = w;
        w += dims[l + 1] * dims[l] + dims[l + 1];
    }
    m->n_params = w;
    m->act = xcalloc(a, sizeof(float));
    m->delta = xcalloc(widest, sizeof(float));
    m->delta_prev = xcalloc(widest, sizeof(float));
}

// Activations of every layer for one sample: a_0 = pixel / 16, then
// z = (sum_i W[o][i] a[i]) + b[o], ReLU but on the logits.
static void forward(mlp *m, const float *w, const uint8_t *px) {
    float *a0 = m->act;
    for (uint32_t i = 0; i < m->dims[0]; i++) a0[i] = (float)px[i] / 16.0f;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t ni = m->dims[l], no = m->dims[l + 1];
        const float *W = w + m->w_off[l], *b = W + (uint64_t)no * ni;
        const float *in = m->act + m->act_off[l];
        float *out = m->act + m->act_off[l + 1];
        int relu = l + 1 < m->n_layers;
        for (uint32_t o = 0; o < no; o++) {
            const float *row = W + (uint64_t)o * ni;
            float acc = 0.0f;
            for (uint32_t i = 0; i < ni; i++) acc += row[i] * in[i];
            acc += b[o];
            out[o] = relu && !(acc > 0.0f) ? 0.0f : acc;
        }
    }
}

double mlp_sample(mlp *m, const float *w, const uint8_t *record, uint32_t batch, float *grad,
                  uint32_t *pred) {
    uint32_t L = m->n_layers, d = m->dims[0], k_out = m->dims[L], y = record[d];
    forward(m, w, record);
    const float *z = m->act + m->act_off[L];
    float zmax = z[0];
    uint32_t arg = 0;
    for (uint32_t k = 1; k < k_out; k++)
        if (z[k] > zmax) zmax = z[k], arg = k;
    *pred = arg;
    // Softmax: e_k = exp(z_k - max), s = sum e_k; loss = ln s - (z_y - max).
    float *e = m->delta, s = 0.0f;
    for (uint32_t k = 0; k < k_out; k++) {
        e[k] = mx_exp(z[k] - zmax);
        s += e[k];
    }
    double loss = mx_log((double)s) - (double)(z[y] - zmax);
    if (!grad) return loss;
    // dL/dz_k = (e_k / s - [k == y]) / batch, then back through the layers.
    float *dz = m->delta, *dprev = m->delta_prev, fb = (float)batch;
    for (uint32_t k = 0; k < k_out; k++) dz[k] = (e[k] / s - (k == y ? 1.0f : 0.0f)) / fb;
    for (uint32_t l = L; l-- > 0;) {
        uint32_t ni = m->dims[l], no = m->dims[l + 1];
        const float *W = w + m->w_off[l], *in = m->act + m->act_off[l];
        float *gW = grad + m->w_off[l], *gb = gW + (uint64_t)no * ni;
        for (uint32_t o = 0; o < no; o++) {
            float *grow = gW + (uint64_t)o * ni, dzo = dz[o];
            for (uint32_t i = 0; i < ni; i++) grow[i] += dzo * in[i];
            gb[o] += dzo;
        }
        if (l == 0) break;
        // dL/da_i = sum_o W[o][i] dz_o, through ReLU: zero where the activation was not > 0.
        for (uint32_t i = 0; i < ni; i++) {
            float acc = 0.0f;
            for (uint32_t o = 0; o < no; o++) acc += W[(uint64_t)o * ni + i] * dz[o];
            dprev[i] = in[i] > 0.0f ? acc : 0.0f;
        }
        float *t = dz;
        dz = dprev;
        dprev = t;
    }
    return loss;
}

void mlp_init(float *w, uint32_t n_layers, const uint32_t *dims, uint64_t seed) {
    uint64_t s = seed;
    for (uint32_t l = 0; l < n_layers; l++) {
        uint32_t ni = dims[l], no = dims[l + 1];
        // He (before a ReLU): sqrt(6 / in); Glorot (the logits): sqrt(6 / (in + out)).
        double limit = __builtin_sqrt(6.0 / (double)(l + 1 < n_layers ? ni : ni + no));
        for (uint64_t k = 0; k < (uint64_t)no * ni; k++) {
            double u = (double)(rng_next(&s) >> 11) * 0x1p-53;  // [0, 1), 53 bits
            *w++ = (float)((2.0 * u - 1.0) * limit);
        }
        for (uint32_t o = 0; o < no; o++) *w++ = 0.0f;
    }
}

// PyTorch's SGD with momentum and weight decay: g += wd w; m = mu m + g; w -= lr m.
void sgdm_step(opt_state *o, float *w, const float *g, uint32_t n) {
    float lr = o->lr, mu = o->momentum, wd = o->wd, *m = o->m;
    for (uint32_t k = 0; k < n; k++) {
        float gk = g[k] + wd * w[k];
        m[k] = mu * m[k] + gk;
        w[k] = w[k] - lr * m[k];
    }
}

// AdamW (Loshchilov and Hutter), beta1 0.9, beta2 0.999, eps 1e-8, decoupled weight decay:
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr (m / c1 / (sqrt(v / c2) + eps) + wd w)
// with c1 = 1 - b1^t and c2 = 1 - b2^t (the powers in double, rounded to f32 once).
void adamw_step(opt_state *o, float *w, const float *g, uint32_t n) {
    o->p1 *= 0.9;
    o->p2 *= 0.999;
    float c1 = (float)(1.0 - o->p1), c2 = (float)(1.0 - o->p2), lr = o->lr, wd = o->wd;
    float *m = o->m, *v = o->v;
    for (uint32_t k = 0; k < n; k++) {
        float gk = g[k];
        m[k] = 0.9f * m[k] + 0.1f * gk;
        v[k] = 0.999f * v[k] + 0.001f * (gk * gk);
        float mh = m[k] / c1, vh = v[k] / c2;
        w[k] = w[k] - lr * (mh / (mx_sqrt(vh) + 1e-8f) + wd * w[k]);
    }
}
