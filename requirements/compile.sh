#!/usr/bin/env bash
# Regenerates the pinned dev installs from pyproject.toml (the provider's deps and extras) and
# dev.in. uv keeps the pins already in a lock unless asked to move them, so:
#   requirements/compile.sh                 # after editing dev.in / pyproject deps
#   requirements/compile.sh --upgrade       # move everything to the newest allowed
#   requirements/compile.sh --upgrade-package ruff
set -euo pipefail
cd "$(dirname "$0")/.."

common=(
    pyproject.toml requirements/dev.in
    --extra s3 --extra openlineage --extra sql
    # One lock for Linux and macOS developers alike, and for every Python the project supports
    # (3.10 up: the lowest is what --python-version names in a universal lock); CI runs 3.11.
    --universal --python-version 3.10
    --custom-compile-command "requirements/compile.sh"
)
uv pip compile "${common[@]}" -o requirements/dev.lock "$@"
for minor in 3.1 3.2; do
    uv pip compile "${common[@]}" --override "requirements/airflow-$minor.overrides.txt" \
        -o "requirements/airflow-$minor.lock" "$@"
done
