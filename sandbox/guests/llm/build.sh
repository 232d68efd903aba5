#!/usr/bin/env bash
# Builds the inference guest (README.md) into OUT_DIR (default: build/ next to this script):
#   llm.wasm                 matrix products by the host's sietch_kernels.matmul
#   llm-guest-kernels.wasm   matrix products in the guest (kernels_ref.c), weights in guest memory
#   llm-gpu.wasm             -DSK_GPU: matrix products on a CUDA device through sietch_gpu (gpu.c),
#                            the same bits; the host kernels where the job sees no device
#   llm-native               the same C natively, with kernels_ref.c: the reference for both
#   llm-native-float         natively, float matrix products (tools/reference/llm_reference.py)
# -ffp-contract=off everywhere: no fused multiply-add, so every build rounds alike.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out"
cc="${CC:-clang}"
src=(main.c rescore.c gguf.c tokenizer.c model.c mathx.c sample.c json.c)
common=(-O2 -ffp-contract=off -std=gnu11 -Wall -Wextra -Werror)
wasm=(--target=wasm32-wasi -msimd128 -Wl,-z,stack-size=1048576)
cd "$here"
"$cc" "${common[@]}" "${wasm[@]}" "${src[@]}" -o "$out/llm.wasm"
"$cc" "${common[@]}" "${wasm[@]}" -DSK_GUEST_KERNELS "${src[@]}" kernels_ref.c \
  -o "$out/llm-guest-kernels.wasm"
"$cc" "${common[@]}" "${wasm[@]}" -DSK_GPU "${src[@]}" gpu.c -o "$out/llm-gpu.wasm"
"$cc" "${common[@]}" "${src[@]}" kernels_ref.c -o "$out/llm-native" -lm  # (sqrtf and rintf: exact in IEEE)
# For the reference check only: matrix products in float on dequantized weights (never a job).
"$cc" "${common[@]}" -DLLM_FLOAT_MATMUL "${src[@]}" kernels_ref.c -o "$out/llm-native-float" -lm
