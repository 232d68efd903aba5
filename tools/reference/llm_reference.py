#!/usr/bin/env python3
"""An independent reference for the inference guest (sandbox/guests/llm, docs/ai.md).

Reads the GGUF itself, dequantizes Q4_1 and Q8_0 itself, and runs the llama forward pass in
float32 with numpy's ordinary float math (activations are NOT quantized, unlike the guest's
kernels). It then compares the guest's logits, as `llm-native --logits N MODEL PROMPT OUT.bin`
writes them, position by position:

  * the guest must have tokenized PROMPT into the pinned ids (checked by hand against the
    Hugging Face `tokenizers` library built from the same vocabulary and merges);
  * at every position the guest's top-1 token must be the reference's, unless the reference's
    own margin between its first and second token is below the measured error; and
  * max |guest - reference| must stay under TOLERANCE times the spread (max - min) of the
    reference's logits at that position.

Two builds are checked. `llm-native` (the kernels' arithmetic, kernels_ref.c) with TOLERANCE; and
`llm-native-float`, built with -DLLM_FLOAT_MATMUL, whose matrix products use the dequantized
weights and unquantized activations: it must agree to FLOAT_TOLERANCE, which checks every other
part of the forward pass (embeddings, norms, RoPE, attention, SwiGLU) to float precision.

Why TOLERANCE: the guest multiplies quantized weights by activations rounded to 16 bits per
block of 32, an error of up to 1/65534 of each block's largest value per element. Through 30
layers this moves logits by about 0.01% of their spread (measured: see docs/ai.md); a broken
forward pass (a wrong RoPE pairing, head mapping or norm) moves them by tens of percent and
changes the top tokens. (With 8-bit activations, as llama.cpp's CPU path rounds them, the error
was 1 to 6% of the spread, enough to change SmolLM2's answer to the bare Paris question.)

Usage: llm_reference.py MODEL NATIVE_BINARY quantized|float   (exit 0 if the guest agrees)
"""
import struct
import subprocess
import sys
import tempfile

import numpy as np

PROMPT = "The capital of France is Paris. The capital of Germany is"
PROMPT_IDS = [504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314]
TOLERANCE = 0.002  # measured: at most 0.014% of the spread on this prompt
FLOAT_TOLERANCE = 1e-4  # measured: below 3e-6


def read_gguf(path):
    f = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, f, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = f[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalars:
            return take(scalars[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError(f"unknown metadata type {t}")

    assert f[:4] == b"GGUF", "not a GGUF file"
    pos = 4
    assert take("I") == 3, "not GGUF version 3"
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        tensors[name] = (dims, take("I"), take("Q"))
    align = meta.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    return meta, tensors, f, start


def half(b):
    return b.view(np.float16).astype(np.float32)


def dequantize(f, start, dims, ttype, offset):
    """The tensor as float32 of shape (rows, cols) (GGUF dims are [cols, rows])."""
    cols = dims[0]
    rows = int(np.prod(dims[1:])) if len(dims) > 1 else 1
    n = rows * cols
    at = start + offset
    if ttype == 0:
        return np.frombuffer(f, dtype="<f4", count=n, offset=at).reshape(rows, cols)
    if ttype == 8:  # Q8_0: f16 d, 32 x int8
        blocks = np.frombuffer(f, dtype=np.uint8, count=n // 32 * 34, offset=at).reshape(-1, 34)
        d = half(blocks[:, :2].copy())
        q = blocks[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(rows, cols)
    if ttype == 3:  # Q4_1: f16 d, f16 m, 16 bytes: low nibbles are elements 0-15, high 16-31
        blocks = np.frombuffer(f, dtype=np.uint8, count=n // 32 * 20, offset=at).reshape(-1, 20)
        d = half(blocks[:, 0:2].copy())
        m = half(blocks[:, 2:4].copy())
        nib = blocks[:, 4:]
        q = np.concatenate([nib & 15, nib >> 4], axis=1).astype(np.float32)
        return (d * q + m).reshape(rows, cols)
    raise ValueError(f"tensor type {ttype} not supported by the reference")


def forward(path, ids):
    meta, tensors, f, start = read_gguf(path)

    def w(name):
        dims, t, off = tensors[name]
        return dequantize(f, start, dims, t, off)

    n_layers = meta["llama.block_count"]
    dim = meta["llama.embedding_length"]
    n_heads = meta["llama.attention.head_count"]
    n_kv = meta["llama.attention.head_count_kv"]
    eps = np.float32(meta["llama.attention.layer_norm_rms_epsilon"])
    base = meta["llama.rope.freq_base"]
    hd = dim // n_heads
    T = len(ids)

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    # RoPE as llama.cpp's "normal" mode: adjacent pairs (2i, 2i+1), theta_i = base^(-2i/hd).
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

    def rope(x):  # x: (T, heads, hd)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos[:, None, :] - b * sin[:, None, :]
        out[..., 1::2] = a * sin[:, None, :] + b * cos[:, None, :]
        return out

    emb = w("token_embd.weight")
    x = emb[ids].astype(np.float32)
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for l in range(n_layers):
        p = f"blk.{l}."
        h = rmsnorm(x, w(p + "attn_norm.weight")[0])
        q = rope((h @ w(p + "attn_q.weight").T).reshape(T, n_heads, hd))
        k = rope((h @ w(p + "attn_k.weight").T).reshape(T, n_kv, hd))
        v = (h @ w(p + "attn_v.weight").T).reshape(T, n_kv, hd)
        rep = n_heads // n_kv  # query head i uses key-value head i // rep
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.float32(np.sqrt(hd)) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s = s / s.sum(axis=-1, keepdims=True)
        att = np.einsum("hts,shd->thd", s, v).reshape(T, dim)
        x = x + att @ w(p + "attn_output.weight").T
        h = rmsnorm(x, w(p + "ffn_norm.weight")[0])
        g = h @ w(p + "ffn_gate.weight").T
        u = h @ w(p + "ffn_up.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w(p + "ffn_down.weight").T
    x = rmsnorm(x, w("output_norm.weight")[0])
    out = w("output.weight") if "output.weight" in tensors else emb
    return (x @ out.T).astype(np.float32)


def main():
    model, native = sys.argv[1], sys.argv[2]
    mode = sys.argv[3]
    assert mode in ("quantized", "float"), "the third argument is quantized or float"
    tol = TOLERANCE if mode == "quantized" else FLOAT_TOLERANCE
    n = len(PROMPT_IDS)
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        subprocess.run([native, "--logits", str(n), model, PROMPT, tmp.name], check=True,
                       stdout=subprocess.DEVNULL)
        raw = open(tmp.name, "rb").read()
    got_n, vocab = struct.unpack_from("<II", raw, 0)
    ids = list(struct.unpack_from(f"<{got_n}i", raw, 8))
    guest = np.frombuffer(raw, dtype="<f4", offset=8 + 4 * got_n).reshape(got_n, vocab)
    ok = True
    if ids != PROMPT_IDS[:n]:
        print(f"FAIL tokens: the guest gives {ids}, pinned {PROMPT_IDS[:n]}")
        return 1
    ref = forward(model, ids)
    for t in range(got_n):
        r, g = ref[t], guest[t]
        spread = float(r.max() - r.min())
        err = float(np.abs(r - g).max())
        top2 = np.argsort(-r)[:2]
        margin = float(r[top2[0]] - r[top2[1]])
        same = int(np.argmax(g)) == int(top2[0])
        good = err <= tol * spread and (same or (mode == "quantized" and margin < 2 * err))
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} position {t}: token {ids[t]}, top-1 guest "
              f"{int(np.argmax(g))} reference {int(top2[0])} (margin {margin:.3f}), "
              f"max |diff| {err:.5f} = {err / spread:.4%} of the spread {spread:.2f}")
    print("the guest agrees with the reference" if ok else "the guest does NOT agree")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
