#!/usr/bin/env bash
# The whole test suite: set up .venv with the test extras, lint, then run pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k surrogate`.
source "$(dirname "$0")/_venv.sh" test
ruff check src tests benchmarks examples docs
ruff format --check src tests benchmarks examples docs
exec python -m pytest -n 2 -q "$@"
