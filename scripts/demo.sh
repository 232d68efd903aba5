#!/usr/bin/env bash
# The one-command local demo: `sietch devnet`. Installs what the demo needs first (only that:
# `scripts/setup.sh demo`), builds the `sietch` binary showing its progress, then starts it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }
say "setting up (Debian packages, anvil, the explorer, the language model; skipped when present)"
bash "$root/scripts/setup.sh" demo
source "$root/scripts/env.sh"
cd "$root"
# Its own profile (Cargo.toml, `[profile.demo]`: dependencies built at opt-level 1) and no
# QUIC (`--no-default-features`: the devnet's nodes talk over loopback TCP), which cut a
# first build's wait (docs/benchmarks.md, "A first run"). The tests build theirs apart
# (target/debug, every feature); `cargo build -p sietch-cli` makes the full binary.
bin="$root/target/demo/sietch"
if [ -x "$bin" ]; then
  say "building sietch (up to date in seconds; a minute or two after a change)"
else
  say "building sietch for the first time: about 580 crates, 11 minutes on an idle 2-core machine (docs/benchmarks.md, "A first run"); later runs take seconds"
fi
start=$SECONDS
# cargo draws its own progress bar on a terminal ("Building [====>  ] 310/521: crate");
# elsewhere it prints one "Compiling" line per crate, which is progress too.
cargo build -p sietch-cli --profile demo --no-default-features
say "built in $((SECONDS - start)) s; starting the devnet"
# The explorer is served only from the directory named here (never looked for elsewhere).
exec "$bin" devnet --explorer-dir "$root/explorer/dist" "$@"
