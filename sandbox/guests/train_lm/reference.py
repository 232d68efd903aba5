#!/usr/bin/env python3
"""An independent reference for the language-model training guest (docs/training.md, "A second
model"): one batch's loss and gradient written with numpy in float32 (batched matrix products
over all the batch's sequences at once, numpy's exp and log, its own backward pass), from the
same weights and the same windows of the corpus, compared with what the guest's `mode=grad`
wrote.

    reference.py WEIGHTS.lmw CORPUS GRAD.lmw STATS.json [key=value ...]

The arguments are the job's (mode=grad; batch, seed, from, to). Agreement: for every tensor,
max |guest - reference| <= 1e-5 * max |reference| of that tensor (plus 1e-12, for a tensor whose
gradient is zero), and the loss within 1e-5 relative. numpy sums in other orders than the guest
and its exp and log are not the guest's, so the bits differ; the tolerance is float32's rounding
through the layers. Exit 0 and "the guest agrees with the reference", or 1 with the worst tensors.
"""

import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from digits import SplitMix64  # noqa: E402  (the guest's PRNG)

GRAD_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5
F32 = np.float32


def layout(cfg):
    """(name, shape) of every tensor, in the file's order (lm.h)."""
    V, T, D, L, H, F = cfg
    names = [("wte", (V, D)), ("wpe", (T, D))]
    for l in range(L):
        names += [(f"{l}.ln1_g", (D,)), (f"{l}.ln1_b", (D,)), (f"{l}.wqkv", (3 * D, D)),
                  (f"{l}.bqkv", (3 * D,)), (f"{l}.wo", (D, D)), (f"{l}.bo", (D,)),
                  (f"{l}.ln2_g", (D,)), (f"{l}.ln2_b", (D,)), (f"{l}.w1", (F, D)),
                  (f"{l}.b1", (F,)), (f"{l}.w2", (D, F)), (f"{l}.b2", (D,))]
    return names + [("lnf_g", (D,)), ("lnf_b", (D,)), ("wout", (V, D)), ("bout", (V,))]


def read_lmw(path):
    data = open(path, "rb").read()
    if data[:4] != b"LMW1":
        raise SystemExit(f"{path}: not a language model's weights")
    cfg = struct.unpack_from("<6I", data, 4)
    flat = np.frombuffer(data, "<f4", offset=28).astype(F32)
    tensors, at = {}, 0
    for name, shape in layout(cfg):
        size = int(np.prod(shape))
        tensors[name] = flat[at : at + size].reshape(shape).copy()
        at += size
    if at != flat.size:
        raise SystemExit(f"{path}: its size does not match its config")
    return cfg, tensors


def layernorm(x, g, b):
    mean = x.mean(axis=-1, keepdims=True, dtype=F32)
    xc = x - mean
    rs = F32(1) / np.sqrt((xc * xc).mean(axis=-1, keepdims=True, dtype=F32) + F32(1e-5))
    xh = xc * rs
    return xh * g + b, (xh, rs)


def layernorm_back(dy, cache, g, grads, gname, bname):
    xh, rs = cache
    grads[gname] += (dy * xh).sum(axis=(0, 1), dtype=F32)
    grads[bname] += dy.sum(axis=(0, 1), dtype=F32)
    dxh = dy * g
    m1 = dxh.mean(axis=-1, keepdims=True, dtype=F32)
    m2 = (dxh * xh).mean(axis=-1, keepdims=True, dtype=F32)
    return rs * ((dxh - m1) - xh * m2)


def loss_and_grads(cfg, w, X, Y):
    """Mean loss over the B x T predictions (float64 sum of float64 per-position losses) and
    the gradient of the mean, every tensor float32."""
    V, T, D, L, H, F = cfg
    B, hd = X.shape[0], D // H
    scale = F32(1) / np.sqrt(F32(hd))
    mask = np.triu(np.ones((T, T), bool), 1)
    heads = lambda a: a.reshape(B, T, H, hd).transpose(0, 2, 1, 3)  # noqa: E731
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(B, T, D)  # noqa: E731
    h = w["wte"][X] + w["wpe"][None, :T]
    caches = []
    for l in range(L):
        p = lambda n: w[f"{l}.{n}"]  # noqa: E731
        a1, ln1 = layernorm(h, p("ln1_g"), p("ln1_b"))
        qkv = a1 @ p("wqkv").T + p("bqkv")
        q, k, v = (heads(qkv[..., i * D : (i + 1) * D]) for i in range(3))
        s = (q @ k.transpose(0, 1, 3, 2)) * scale
        s[:, :, mask] = -np.inf
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        prob = e / e.sum(axis=-1, keepdims=True, dtype=F32)
        att = merge(prob @ v)
        hm = h + (att @ p("wo").T + p("bo"))
        a2, ln2 = layernorm(hm, p("ln2_g"), p("ln2_b"))
        f = a2 @ p("w1").T + p("b1")
        r = np.maximum(f, F32(0))
        caches.append((h, a1, ln1, q, k, v, prob, att, hm, a2, ln2, f, r))
        h = hm + (r @ p("w2").T + p("b2"))
    af, lnf = layernorm(h, w["lnf_g"], w["lnf_b"])
    z = af @ w["wout"].T + w["bout"]
    zs = z - z.max(axis=-1, keepdims=True)
    e = np.exp(zs)
    s = e.sum(axis=-1, dtype=F32)
    picked = np.take_along_axis(zs, Y[..., None], axis=-1)[..., 0]
    loss = float(np.sum(np.log(s.astype(np.float64)) - picked.astype(np.float64))) / (B * T)
    onehot = np.zeros_like(z)
    np.put_along_axis(onehot, Y[..., None], F32(1), axis=-1)
    dz = (e / s[..., None] - onehot) * (F32(1) / F32(B * T))

    g = {name: np.zeros(shape, F32) for name, shape in layout(cfg)}
    flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    g["wout"] += flat(dz).T @ flat(af)
    g["bout"] += flat(dz).sum(axis=0, dtype=F32)
    dh = layernorm_back(dz @ w["wout"], lnf, w["lnf_g"], g, "lnf_g", "lnf_b")
    for l in range(L - 1, -1, -1):
        p = lambda n: w[f"{l}.{n}"]  # noqa: E731
        h0, a1, ln1, q, k, v, prob, att, hm, a2, ln2, f, r = caches[l]
        g[f"{l}.w2"] += flat(dh).T @ flat(r)
        g[f"{l}.b2"] += flat(dh).sum(axis=0, dtype=F32)
        dr = (dh @ p("w2")) * (f > 0)
        g[f"{l}.w1"] += flat(dr).T @ flat(a2)
        g[f"{l}.b1"] += flat(dr).sum(axis=0, dtype=F32)
        dh = dh + layernorm_back(dr @ p("w1"), ln2, p("ln2_g"), g, f"{l}.ln2_g", f"{l}.ln2_b")
        g[f"{l}.wo"] += flat(dh).T @ flat(att)
        g[f"{l}.bo"] += flat(dh).sum(axis=0, dtype=F32)
        datt = heads(dh @ p("wo"))
        dprob = datt @ v.transpose(0, 1, 3, 2)
        dv = prob.transpose(0, 1, 3, 2) @ datt
        ds = prob * (dprob - (prob * dprob).sum(axis=-1, keepdims=True, dtype=F32)) * scale
        dq, dk = ds @ k, ds.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1)
        g[f"{l}.wqkv"] += flat(dqkv).T @ flat(a1)
        g[f"{l}.bqkv"] += flat(dqkv).sum(axis=0, dtype=F32)
        dh = dh + layernorm_back(dqkv @ p("wqkv"), ln1, p("ln1_g"), g, f"{l}.ln1_g", f"{l}.ln1_b")
    np.add.at(g["wte"], X.ravel(), flat(dh))
    g["wpe"] += dh.sum(axis=0, dtype=F32)
    return loss, g


def options(argv):
    o = {"batch": 8, "seed": 0, "from": 0, "to": 0}
    for arg in argv:
        key, value = arg.split("=", 1)
        if key == "mode":
            assert value == "grad", "the reference checks mode=grad only"
            continue
        o[key] = int(value)
    return o


def main(argv):
    weights, corpus, grad, stats = argv[:4]
    o = options(argv[4:])
    cfg, w = read_lmw(weights)
    text = np.frombuffer(open(corpus, "rb").read(), np.uint8)
    T, lo = cfg[1], o["from"]
    hi = o["to"] or len(text)
    rng = SplitMix64(o["seed"])
    starts = [lo + rng.below(hi - lo - T) for _ in range(o["batch"])]
    X = np.array([text[s : s + T] for s in starts], dtype=np.int64)
    Y = np.array([text[s + 1 : s + T + 1] for s in starts], dtype=np.int64)
    loss, want = loss_and_grads(cfg, w, X, Y)
    _, got = read_lmw(grad)
    ok, worst = True, []
    for name, _ in layout(cfg):
        scale = float(np.abs(want[name]).max())
        err = float(np.abs(got[name] - want[name]).max()) / (scale + 1e-12)
        worst.append((err, name, scale))
        ok = ok and err <= GRAD_TOLERANCE
    worst.sort(reverse=True)
    for err, name, scale in worst[:4]:
        print(f"{name}: max |diff| / max |ref| = {err:.3g} (max |ref| = {scale:.3g})")
    print(f"every tensor of {len(worst)} within {GRAD_TOLERANCE:g} of its largest gradient: {ok}")
    s = json.load(open(stats))
    rel = abs(s["loss"] - loss) / loss
    print(f"loss: guest {s['loss']!r}, reference {loss!r}, relative diff {rel:.3g}")
    ok = ok and rel <= LOSS_TOLERANCE
    print("the guest agrees with the reference" if ok else "the guest DISAGREES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
