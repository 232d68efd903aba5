#!/usr/bin/env bash
# Runs Slither on src/ only. The full project mixes the test and src compilation units in one
# build-info, which Slither 0.11 cannot parse, so this builds src/ alone in a temporary Foundry
# project (same compiler wrapper, same remapping) and fails on any medium or high finding.
# Needs `slither` on PATH (pip install slither-analyzer); see contracts/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
command -v slither >/dev/null || { echo "slither not found: pip install slither-analyzer" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/src" "$work/src"
cat > "$work/foundry.toml" <<TOML
[profile.default]
src = "src"
test = "test"
out = "out"
libs = ["$root/tools/node_modules"]
remappings = ["@openzeppelin/=$root/tools/node_modules/@openzeppelin/"]
solc = "$root/tools/solc-js"
offline = true
optimizer = true
evm_version = "cancun"
TOML
cd "$work"
slither . --filter-paths "node_modules" --exclude-informational --exclude-low --fail-medium
