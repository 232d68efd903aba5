#!/usr/bin/env bash
# Exports the ABI and bytecode the Rust bindings are generated from (contracts/artifacts/, and
# the testkit's test tokens in testkit/artifacts/), or, with --check, fails when a fresh
# `forge build` differs from the committed artifacts.
# Run from contracts/ after `forge build`.
set -euo pipefail
mode="${1:-write}"
status=0
# export NAME SOURCE_FILE COMMITTED_PATH
export_one() {
  local name="$1" source="$2" committed="$3" fresh
  fresh="$(jq -S '{abi: .abi, bytecode: {object: .bytecode.object}, deployedBytecode: {object: .deployedBytecode.object}}' \
    "out/$source/$name.json")"
  if [[ "$mode" == "--check" ]]; then
    if ! diff -q <(printf '%s\n' "$fresh") "$committed" >/dev/null 2>&1; then
      echo "artifact drift: $committed differs from a fresh forge build." >&2
      echo "  If the contract change is intended: bash contracts/script/artifacts.sh (from contracts/) and commit." >&2
      status=1
    fi
  else
    printf '%s\n' "$fresh" > "$committed"
    echo "wrote $committed"
  fi
}
for name in SietchEscrow MockToken; do
  export_one "$name" "$name.sol" "artifacts/$name.json"
done
# Tokens of other decimals for the devnet and tests (testkit/src/tokens.rs).
export_one TestToken TestTokens.sol ../testkit/artifacts/TestToken.json
exit "$status"
