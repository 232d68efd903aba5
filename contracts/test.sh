#!/usr/bin/env bash
# Everything contract-side that CI runs. Exits non-zero on any failure.
#   bash contracts/test.sh            build, unit + fuzz + invariant tests, gas snapshot, artifact drift
#   FOUNDRY_PROFILE=deep bash contracts/test.sh   the same with long fuzz/invariant runs
#   SIETCH_SLITHER=1 bash contracts/test.sh       also run Slither if it is installed (see README)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ../scripts/env.sh
for tool in forge node jq; do
  command -v "$tool" >/dev/null || { echo "contracts/test.sh: $tool not found; run scripts/setup.sh" >&2; exit 1; }
done

echo "== forge build (solc-js, offline)"
forge build

echo "== forge test (unit, fuzz, invariant; profile ${FOUNDRY_PROFILE:-default})"
forge test

echo "== gas snapshot check (unit and gas tests; fuzz, invariant and vector tests are excluded)"
FOUNDRY_PROFILE=default forge snapshot --check .gas-snapshot --no-match-contract 'InvariantTest|FuzzTest|Eip712VectorsTest'

echo "== artifact drift (contracts/artifacts vs fresh build)"
bash script/artifacts.sh --check

if [[ "${SIETCH_SLITHER:-0}" == "1" ]]; then
  echo "== slither"
  bash script/slither.sh
fi
echo "contracts: all checks passed"
