#!/usr/bin/env bash
# The one-command local demo: `sietch devnet`. Installs what it needs first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
cargo build -q -p sietch-cli
# The explorer is served only from the directory named here (never looked for elsewhere).
exec "$root/target/debug/sietch" devnet --explorer-dir "$root/explorer/dist" "$@"
