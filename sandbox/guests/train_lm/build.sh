#!/usr/bin/env bash
# Builds the language-model training guest (README.md, docs/training.md "A second model") into
# OUT_DIR (default: build/ next to this script):
#   train_lm.wasm     the job module (the same flags as guests/build.rs, which builds TRAIN_LM)
#   train_lm-native   the same C natively: /input and /output under $TRAIN_ROOT, the same bytes
# -ffp-contract=off everywhere: no fused multiply-add, so every build rounds alike. exp and log
# come from ../llm/mathx.c; the file reading, decimal parser and AdamW from ../train (compiled in).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out"
cc="${CC:-clang}"
src=(main.c lmargs.c model.c backward.c ../train/args.c ../train/formats.c ../train/mlp.c
  ../llm/mathx.c)
common=(-O2 -ffp-contract=off -std=gnu11 -Wall -Wextra -Werror)
wasm=(--target=wasm32-wasi -msimd128 -Wl,--strip-debug)  # wasi-libc's debug info: 170 kB
cd "$here"
"$cc" "${common[@]}" "${wasm[@]}" "${src[@]}" -o "$out/train_lm.wasm"
"$cc" "${common[@]}" "${src[@]}" -o "$out/train_lm-native" -lm  # (sqrtf: exact in IEEE)
