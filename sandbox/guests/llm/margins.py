#!/usr/bin/env python3
"""The figures behind the rescoring margin (docs/ai.md, "Re-scoring a generation").

Builds the native guest three more ways: the blocks of each row summed in 8 interleaved
partial sums and a tree (a GPU reduction's order), with fused multiply-adds throughout
(-ffp-contract=fast -march=native), and with float products (build.sh's llm-native-float).
For chat prompts it prints how far each build's logits lie from the reference build's at the
positions of a greedy generation, whether the claimed tokens stay the best, the gap between
the best and second-best logits, and the rescoring verdict (by the reference build) of
generations, greedy and sampled, made by the reordered and the FMA builds.

    tools/venv/bin/python sandbox/guests/llm/margins.py [MODEL]   (a few minutes on 2 cores)
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/sietch/models/SmolLM2-135M-Instruct.Q4_1.gguf")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTIONS = [
    "What is the capital of France?", "Explain photosynthesis in one sentence.",
    "Write a Python function that adds two numbers.", "What is 17 times 23?",
    "Give me three tips for sleeping better.", "Translate 'good morning' into Spanish.",
]
MORE = ["Tell me a short story about a robot.", "Why is the sky blue?", "List four fruits.",
        "What does a CPU do?", "Write a limerick about cats.", "How do airplanes fly?"]
SOURCES = ["main.c", "rescore.c", "gguf.c", "tokenizer.c", "model.c", "mathx.c", "sample.c",
           "json.c", "kernels_ref.c"]


def build(out):
    subprocess.run(["bash", os.path.join(HERE, "build.sh"), out], check=True)
    alt = os.path.join(out, "alt")
    os.makedirs(alt)
    for f in os.listdir(HERE):
        if f.endswith((".c", ".h")):
            shutil.copy(os.path.join(HERE, f), alt)
    k = open(os.path.join(alt, "kernels_ref.c")).read()
    k = k.replace("""            float acc = 0.0f;
            for (int32_t b = 0; b < nb; b++) {
                if (wtype == SK_Q8_0) {""", """            float part[8] = {0};
            for (int32_t b = 0; b < nb; b++) {
                float acc = 0.0f;
                if (wtype == SK_Q8_0) {""")
    k = k.replace("""                }
            }
            y[(size_t)j * rows + r] = acc;""", """                }
                part[b % 8] += acc;
            }
            for (int h = 4; h > 0; h /= 2)
                for (int i = 0; i < h; i++) part[i] += part[i + h];
            y[(size_t)j * rows + r] = part[0];""")
    assert "part[b % 8]" in k, "kernels_ref.c changed: update the reordering"
    open(os.path.join(alt, "kernels_ref.c"), "w").write(k)
    src = [os.path.join(alt, s) for s in SOURCES]
    cc = ["clang", "-O2", "-std=gnu11"]
    subprocess.run(cc + ["-ffp-contract=off"] + src + ["-o", os.path.join(out, "alt-native"), "-lm"],
                   check=True)
    subprocess.run(cc + ["-ffp-contract=fast", "-march=native"] + src +
                   ["-o", os.path.join(out, "fma-native"), "-lm"], check=True)


def main():
    out = tempfile.mkdtemp()
    build(out)
    ref = os.path.join(out, "llm-native")
    others = {"reordered sums": os.path.join(out, "alt-native"),
              "FMA": os.path.join(out, "fma-native"),
              "float products": os.path.join(out, "llm-native-float")}

    def tok(text):
        r = subprocess.run([ref, "--tokenize", MODEL, text], capture_output=True, text=True)
        return [int(x) for x in r.stdout.split()]

    def logits(binary, ids):
        path = os.path.join(out, "l.bin")
        subprocess.run([binary, "--logits", str(len(ids)), MODEL, "ids:" + ",".join(map(str, ids)),
                        path], check=True, capture_output=True)
        b = open(path, "rb").read()
        n, v = struct.unpack("<II", b[:8])
        return np.frombuffer(b[8 + 4 * n:], dtype="<f4").reshape(n, v)

    prompts = os.path.join(out, "p.jsonl")
    with open(prompts, "w") as f:
        for q in QUESTIONS:
            f.write(json.dumps({"prompt": q, "max_tokens": 48}) + "\n")
    completions = os.path.join(out, "c.jsonl")
    subprocess.run([ref, MODEL, prompts, completions], check=True, capture_output=True)
    diffs = {k: [] for k in others}
    margins = {k: [] for k in others}
    gaps = []
    for q, line in zip(QUESTIONS, open(completions)):
        claimed = json.loads(line)["tokens"]
        ids = ([1] + tok("system\n") + tok(SYSTEM) + [2] + tok("\n") + [1] + tok("user\n") + tok(q)
               + [2] + tok("\n") + [1] + tok("assistant\n"))
        full, n = ids + claimed[:-1], len(ids)
        r = logits(ref, full)[n - 1:]
        s = np.sort(r, axis=1)
        gaps += list(s[:, -1] - s[:, -2])
        for k, b in others.items():
            x = logits(b, full)[n - 1:]
            diffs[k] += list(np.abs(x - r).max(axis=1))
            margins[k] += list(x.max(axis=1) - x[np.arange(len(claimed)), claimed])
    for k in others:
        d, m = np.array(diffs[k]), np.array(margins[k])
        print(f"{k}: largest logit difference per position: median {np.median(d):.2g}, "
              f"p99 {np.percentile(d, 99):.2g}, max {d.max():.2g}; claimed token still the best at "
              f"{np.sum(m <= 0)} of {len(m)}")
    g = np.array(gaps)
    print(f"best - second best over {len(g)} positions: median {np.median(g):.2g}, p10 "
          f"{np.percentile(g, 10):.2g}, p1 {np.percentile(g, 1):.2g}, min {g.min():.2g}; "
          f"below 0.1 at {np.sum(g < 0.1)}")

    # Generations by the other arithmetic, re-scored by the reference build.
    mixed = os.path.join(out, "m.jsonl")
    with open(mixed, "w") as f:
        for i, q in enumerate(QUESTIONS + MORE):
            f.write(json.dumps({"prompt": q, "max_tokens": 48}) + "\n")
            f.write(json.dumps({"prompt": q, "max_tokens": 48, "temperature": 0.7, "top_p": 0.9,
                                "seed": 100 + i}) + "\n")
            f.write(json.dumps({"prompt": q, "max_tokens": 48, "temperature": 1.0,
                                "seed": 200 + i}) + "\n")
    for k in ["reordered sums", "FMA"]:
        gen, verdict = os.path.join(out, "g.jsonl"), os.path.join(out, "v.json")
        subprocess.run([others[k], MODEL, mixed, gen], check=True, capture_output=True)
        subprocess.run([ref, "--rescore", "0.1", MODEL, mixed, gen, verdict], check=True)
        print(f"{k}: generation re-scored by the reference: {open(verdict).read().strip()}")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
