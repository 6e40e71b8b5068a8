# Sourced by scripts/main.sh and scripts/test.sh: create .venv if needed and install the
# project with the given extras. Nothing is taken from the machine but a python3 >= 3.10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]"
export PATH="$PWD/.venv/bin:$PATH"
