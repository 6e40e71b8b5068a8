#!/usr/bin/env bash
# The documentation site: set up .venv with the docs extras, then build it into site/.
# --strict: a broken link, reference or docstring, or a tutorial that fails, fails the build.
# The tutorials (docs/tutorials/*.py) are executed during the build (about 1-2 minutes).
# Extra arguments go to mkdocs, e.g. `bash scripts/docs.sh --site-dir /tmp/site`.
source "$(dirname "$0")/_venv.sh" "train,docs"
export DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1
exec mkdocs build --strict "$@"
