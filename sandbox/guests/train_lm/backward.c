// See work.h: the backward pass of one sequence, in the reverse order of model.c's forward
// pass, gradients added to grad in a fixed order (positions ascending, then as written).
#include "../llm/mathx.h"
#include "vec.h"
#include "work.h"

// For out[t] = W in[t] + b, t < n: gW[o] += dout[t][o] in[t] and gb[o] += dout[t][o] for t
// ascending; din[t] = sum_o dout[t][o] W[o], o ascending (din may be NULL).
static void linear_back(float *din, const float *dout, const float *in, const float *W,
                        float *gW, float *gb, uint32_t n, uint32_t ni, uint32_t no) {
    for (uint32_t t = 0; t < n; t++) {
        const float *dt = dout + (size_t)t * no, *xt = in + (size_t)t * ni;
        for (uint32_t o = 0; o < no; o++) {
            axpy(gW + (size_t)o * ni, dt[o], xt, ni);
            gb[o] += dt[o];
        }
        if (!din) continue;
        float *d = din + (size_t)t * ni;
        for (uint32_t i = 0; i < ni; i++) d[i] = 0.0f;
        for (uint32_t o = 0; o < no; o++) axpy(d, dt[o], W + (size_t)o * ni, ni);
    }
}

// For y = xhat g + b: gg += dy xhat, gb += dy; with dxh = dy g, adds to dx
// rstd ((dxh - mean dxh) - xhat mean(dxh xhat)), the means over the D features.
static void ln_back(float *dx, const float *dy, const ln_cache *c, const float *g, float *gg,
                    float *gb, float *dxh, uint32_t n, uint32_t D) {
    for (uint32_t t = 0; t < n; t++) {
        const float *dyt = dy + (size_t)t * D, *xh = c->xhat + (size_t)t * D;
        float *dxt = dx + (size_t)t * D, rs = c->rstd[t];
        for (uint32_t i = 0; i < D; i++) {
            gg[i] += dyt[i] * xh[i];
            gb[i] += dyt[i];
            dxh[i] = dyt[i] * g[i];
        }
        float m1 = vsum(dxh, D) / (float)D, m2 = dot(dxh, xh, D) / (float)D;
        for (uint32_t i = 0; i < D; i++) dxt[i] += rs * ((dxh[i] - m1) - xh[i] * m2);
    }
}

// Attention's backward pass, head by head, position t ascending: dp_u = dot(dout_t, v_u) and
// dv_u += p_u dout_t for u <= t; a = sum_u p_u dp_u; ds_u = p_u (dp_u - a) scale, then
// dq_t += ds_u k_u and dk_u += ds_u q_t, u ascending. dqkv is zeroed first.
static void attention_back(lm_work *w, const block_cache *b, const lm_config *c, uint32_t n) {
    uint32_t D = c->d, T = c->ctx, hd = D / c->heads;
    size_t row = 3 * (size_t)D;
    float scale = 1.0f / mx_sqrt((float)hd), *dqkv = w->dqkv, *dp = w->dp;
    for (size_t i = 0; i < n * row; i++) dqkv[i] = 0.0f;
    for (uint32_t hh = 0; hh < c->heads; hh++) {
        size_t q_at = hh * hd, k_at = D + q_at, v_at = 2 * (size_t)D + q_at;
        for (uint32_t t = 0; t < n; t++) {
            const float *pr = b->p + ((size_t)hh * T + t) * T;
            const float *dout = w->datt + (size_t)t * D + q_at, *q = b->qkv + t * row + q_at;
            float a = 0.0f;
            for (uint32_t u = 0; u <= t; u++) {
                dp[u] = dot(dout, b->qkv + u * row + v_at, hd);
                axpy(dqkv + u * row + v_at, pr[u], dout, hd);
            }
            for (uint32_t u = 0; u <= t; u++) a += pr[u] * dp[u];
            for (uint32_t u = 0; u <= t; u++) {
                float ds = pr[u] * (dp[u] - a) * scale;
                axpy(dqkv + t * row + q_at, ds, b->qkv + u * row + k_at, hd);
                axpy(dqkv + u * row + k_at, ds, q, hd);
            }
        }
    }
}

void lm_backward(lm_work *w, const lm_layout *lay, const float *p, const uint8_t *x, uint32_t n,
                 float *grad) {
    const lm_config *c = &lay->c;
    uint32_t D = c->d, F = c->ff, V = c->vocab;
    float *dh = w->dh, *dy = w->dy, *dxh = w->tmp;
    linear_back(dy, w->dlogits, w->lnf.y, p + lay->wout, grad + lay->wout, grad + lay->bout, n,
                D, V);
    for (size_t i = 0; i < (size_t)n * D; i++) dh[i] = 0.0f;
    ln_back(dh, dy, &w->lnf, p + lay->lnf_g, grad + lay->lnf_g, grad + lay->lnf_b, dxh, n, D);
    for (uint32_t l = c->layers; l-- > 0;) {
        const lm_block *k = &lay->block[l];
        const block_cache *b = &w->b[l];
        // The MLP: h[l + 1] = hm + w2 relu(w1 ln2(hm) + b1) + b2.
        linear_back(w->dr, dh, b->r, p + k->w2, grad + k->w2, grad + k->b2, n, F, D);
        for (size_t i = 0; i < (size_t)n * F; i++)
            if (!(b->f[i] > 0.0f)) w->dr[i] = 0.0f;
        linear_back(dy, w->dr, b->ln2.y, p + k->w1, grad + k->w1, grad + k->b1, n, D, F);
        ln_back(dh, dy, &b->ln2, p + k->ln2_g, grad + k->ln2_g, grad + k->ln2_b, dxh, n, D);
        // Attention: hm = h[l] + wo att(wqkv ln1(h[l]) + bqkv) + bo.
        linear_back(w->datt, dh, b->att, p + k->wo, grad + k->wo, grad + k->bo, n, D, D);
        attention_back(w, b, c, n);
        linear_back(dy, w->dqkv, b->ln1.y, p + k->wqkv, grad + k->wqkv, grad + k->bqkv, n, D,
                    3 * D);
        ln_back(dh, dy, &b->ln1, p + k->ln1_g, grad + k->ln1_g, grad + k->ln1_b, dxh, n, D);
    }
    for (uint32_t t = 0; t < n; t++) {
        const float *d = dh + (size_t)t * D;
        axpy(grad + lay->wte + (size_t)x[t] * D, 1.0f, d, D);
        axpy(grad + lay->wpe + (size_t)t * D, 1.0f, d, D);
    }
}
