# Sourced by the scripts: puts the pinned tools first on PATH.
SIETCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SIETCH_ROOT
export PATH="$SIETCH_ROOT/tools/bin:$SIETCH_ROOT/tools/venv/bin:$PATH"
