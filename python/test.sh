#!/usr/bin/env bash
# Tests the Python SDK (python/): makes a virtual environment (python/.venv, ignored by git),
# installs the pinned test requirements (requirements-test.txt) and the package itself from
# this directory (`pip install ./python`, built by hatchling from PyPI), checks the types
# (mypy --strict) and runs pytest: unit tests, then the SDK against a real devnet of
# target/debug/sietch (SIETCH_BIN to use another), which it builds if it is missing.
# Idempotent: the requirements are installed again only when requirements-test.txt changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { echo "python/test.sh: the SDK needs Python 3.10 or later ($python is $("$python" --version))" >&2; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
stamp="$venv/.requirements-test.sha256"
want="$(sha256sum "$here/requirements-test.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "${pip[@]}" install -r "$here/requirements-test.txt"
    echo "$want" >"$stamp"
fi
# The package as a user installs it (a wheel, not an editable checkout).
"${pip[@]}" install --no-deps --force-reinstall "$here"

if [ -z "${SIETCH_BIN:-}" ] && [ ! -x "$root/target/debug/sietch" ]; then
    echo "python/test.sh: building target/debug/sietch (cargo build -p sietch-cli)"
    (cd "$root" && cargo build -p sietch-cli)
fi

cd "$here"
"$venv/bin/mypy"
exec "$venv/bin/python" -m pytest "$@"
