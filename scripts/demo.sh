#!/usr/bin/env bash
# The demo: a simulated Canvas with a realistic institution -> the nightly provisioning export DAG
# -> one file per table in .demo/lake/ -> the warehouse load DAG -> .demo/warehouse.db.
# Needs only python3 (3.10+) with pip: it sets up .venv on first use (as scripts/test.sh does).
# Everything runs on this machine (Airflow's embedded default: SQLite metadata DB, dag.test());
# the simulator it starts is stopped on exit, also on Ctrl-C or failure.
#
# Usage: scripts/demo.sh
# Env: CANVAS_DEMO_USERS (default 50000: ~250k enrollments), CANVAS_DEMO_DIR (default .demo),
#      CANVAS_DEMO_PYTHON (an interpreter that already has the provider; skips the venv setup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n "${CANVAS_DEMO_PYTHON:-}" ]]; then
    py=$CANVAS_DEMO_PYTHON
else
    # shellcheck source=scripts/_venv.sh
    source scripts/_venv.sh
    canvas_ensure_venv "$PWD/.venv" requirements/dev.lock >&2
    py=.venv/bin/python
fi
exec "$py" scripts/demo.py "$@"
