#!/usr/bin/env python3
"""An independent reference for the training guest (docs/training.md): the same local steps
written with numpy in float32 (batched matrix products, numpy's exp and log), from the same
weights and the same minibatches, compared with the update and losses the guest wrote.

    reference.py WEIGHTS.swt SHARD.sdg UPDATE.swt STATS.json [key=value ...]

The arguments are the job's (mode=train; steps, batch, lr, momentum, optimizer, wd, seed).
Agreement: max |guest - reference| over the update <= 1e-5 * max |reference update|, and each
loss within 1e-5 relative. numpy sums in other orders than the guest and its exp and log are not
the guest's, so the bits differ; the tolerance is float32's rounding over a few steps.
Exit 0 and "the guest agrees with the reference", or 1 with the largest differences.
"""

import json
import struct
import sys

import numpy as np

from digits import SplitMix64, read_sdg

TOLERANCE = 1e-5
F32 = np.float32


def read_swt(path):
    data = open(path, "rb").read()
    if data[:4] != b"SWT1":
        raise SystemExit(f"{path}: not a weights file")
    (n_layers,) = struct.unpack_from("<I", data, 4)
    dims = struct.unpack_from(f"<{n_layers + 1}I", data, 8)
    flat = np.frombuffer(data, "<f4", offset=8 + 4 * (n_layers + 1)).astype(F32)
    layers, at = [], 0
    for ni, no in zip(dims, dims[1:]):
        w = flat[at : at + no * ni].reshape(no, ni).copy()
        b = flat[at + no * ni : at + no * ni + no].copy()
        layers.append([w, b])
        at += no * ni + no
    if at != flat.size:
        raise SystemExit(f"{path}: its size does not match its dims")
    return layers


def flatten(layers):
    return np.concatenate([p.ravel() for layer in layers for p in layer])


def options(argv):
    o = {"steps": 20, "batch": 32, "lr": 0.1, "momentum": 0.9, "optimizer": "sgdm", "wd": 0.0,
         "seed": 0}
    for arg in argv:
        key, value = arg.split("=", 1)
        if key == "mode":
            assert value == "train", "the reference checks mode=train only"
            continue
        o[key] = value if key == "optimizer" else type(o[key])(value)
    return o


def gradients(layers, x, y, batch):
    """Batch loss (float64 mean of per-sample losses) and the gradient of mean loss."""
    acts = [x]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, F32(0)) if i + 1 < len(layers) else z)
    z = acts[-1]
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, dtype=F32)
    rows = np.arange(len(y))
    loss = np.mean(np.log(s.astype(np.float64)) - shifted[rows, y].astype(np.float64))
    onehot = np.zeros_like(z)
    onehot[rows, y] = 1
    dz = (e / s[:, None] - onehot) / F32(batch)
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        grads[i] = [dz.T @ acts[i], dz.sum(axis=0, dtype=F32)]
        if i:
            dz = (dz @ layers[i][0]) * (acts[i] > 0)
    return loss, grads


def train(layers, records, o):
    x_all = np.array([np.frombuffer(p, np.uint8) for p, _ in records], dtype=F32) / F32(16)
    y_all = np.array([label for _, label in records])
    rng, n = SplitMix64(o["seed"]), len(records)
    perm, pos = list(range(n)), n
    lr, mu, wd = F32(o["lr"]), F32(o["momentum"]), F32(o["wd"])
    state = [[np.zeros_like(p) for p in layer] for layer in layers]
    second = [[np.zeros_like(p) for p in layer] for layer in layers]
    p1 = p2 = 1.0
    losses = []
    for _ in range(o["steps"]):
        idx = []
        for _ in range(o["batch"]):
            if pos == n:
                rng.shuffle(perm)
                pos = 0
            idx.append(perm[pos])
            pos += 1
        loss, grads = gradients(layers, x_all[idx], y_all[idx], o["batch"])
        losses.append(loss)
        p1, p2 = p1 * 0.9, p2 * 0.999
        c1, c2 = F32(1.0 - p1), F32(1.0 - p2)
        for layer, g_layer, m_layer, v_layer in zip(layers, grads, state, second):
            for k in range(2):
                w, g, m, v = layer[k], g_layer[k], m_layer[k], v_layer[k]
                if o["optimizer"] == "sgdm":
                    m[...] = mu * m + (g + wd * w)
                    layer[k] = w - lr * m
                else:
                    m[...] = F32(0.9) * m + F32(0.1) * g
                    v[...] = F32(0.999) * v + F32(0.001) * (g * g)
                    step = (m / c1) / (np.sqrt(v / c2) + F32(1e-8)) + wd * w
                    layer[k] = w - lr * step
    return losses


def main(argv):
    weights, shard, update, stats = argv[:4]
    o = options(argv[4:])
    layers = read_swt(weights)
    start = flatten(layers)
    losses = train(layers, read_sdg(open(shard, "rb").read()), o)
    want = flatten(layers) - start
    got = flatten(read_swt(update))
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got - want).max()) / scale
    print(f"{o['optimizer']}, {o['steps']} steps of {o['batch']}: update max |diff| / max |ref| "
          f"= {err:.3g} (tolerance {TOLERANCE:g}), max |ref| = {scale:.3g}")
    ok = err <= TOLERANCE
    s = json.load(open(stats))
    for key, ref in [("loss_first", losses[0]), ("loss_last", losses[-1]),
                     ("loss_mean", float(np.mean(losses)))]:
        ref = float(ref)
        rel = abs(s[key] - ref) / abs(ref)
        print(f"{key}: guest {s[key]!r}, reference {ref!r}, relative diff {rel:.3g}")
        ok = ok and rel <= TOLERANCE
    if s["steps"] != o["steps"] or s["params"] != start.size:
        print(f"stats say {s['steps']} steps and {s['params']} params")
        ok = False
    print("the guest agrees with the reference" if ok else "the guest DISAGREES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
