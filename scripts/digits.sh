#!/usr/bin/env bash
# Fetches the handwritten-digits data set the training guest is tested and demonstrated on
# (docs/training.md): sklearn/datasets/data/digits.csv.gz (1,797 8x8 images, 64 pixel columns
# 0-16 then the label) from the PyPI wheel scikit-learn==1.5.2 for CPython 3.11 on manylinux
# x86_64 (pip download, no dependencies; the platform is named, so every machine fetches the
# same wheel), checks both the wheel's and the file's sha256, and keeps the file beside the
# language model, outside git. Nothing is downloaded at test or run time. Prints the file's
# path. Idempotent: a cached, checked file is reused without touching the network.
#
#   SIETCH_MODEL_DIR   where it is kept (default ~/.cache/sietch/models), as scripts/model.sh
set -euo pipefail

dir="${SIETCH_MODEL_DIR:-$HOME/.cache/sietch/models}"
name="digits.csv.gz"
wheel="scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
wheel_sha="f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1"
data_sha="09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
log() { printf '\033[1mdigits:\033[0m %s\n' "$*" >&2; }

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$dir"
if ! check "$dir/$name" "$data_sha"; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $name (57 kB, in a 13 MB wheel) from PyPI: scikit-learn==1.5.2"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --platform manylinux2014_x86_64 \
    "scikit-learn==1.5.2" -d "$tmp"
  check "$tmp/$wheel" "$wheel_sha" || { echo "digits: $wheel does not have the pinned sha256" >&2; exit 1; }
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$tmp/$wheel" "sklearn/datasets/data/$name" "$tmp"
  check "$tmp/sklearn/datasets/data/$name" "$data_sha" || { echo "digits: $name does not have the pinned sha256" >&2; exit 1; }
  mv "$tmp/sklearn/datasets/data/$name" "$dir/$name.part"
  mv "$dir/$name.part" "$dir/$name"
fi
echo "$dir/$name"
