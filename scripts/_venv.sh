# shellcheck shell=bash
# Sourced, not run: the project's venv setup, shared by scripts/test.sh and scripts/demo.sh.
#   source scripts/_venv.sh
#   canvas_install_uv                         # -> CANVAS_UV=(uv ...), installed into .venv-uv if missing
#   canvas_ensure_venv DIR LOCK [resync]      # DIR synced exactly to LOCK, provider editable
# A venv is reused while its stamp (lock, pyproject, interpreter, these steps) matches.

_canvas_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PYTHON:=python3}"
# Trust the OS certificate store, as curl and git do: uv's built-in roots fail behind a
# TLS-intercepting proxy whose CA only the system knows. (Older uv ignores the variable.)
export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1}
CANVAS_UV=()

_canvas_find_uv() {
    if command -v uv >/dev/null 2>&1; then
        CANVAS_UV=(uv)
    elif [[ -x "$_canvas_root/.venv-uv/bin/uv" ]]; then
        CANVAS_UV=("$_canvas_root/.venv-uv/bin/uv")
    elif "$PYTHON" -m uv --version >/dev/null 2>&1; then
        CANVAS_UV=("$PYTHON" -m uv)
    else
        return 1
    fi
}

canvas_install_uv() {
    if _canvas_find_uv; then
        echo "using $("${CANVAS_UV[@]}" --version) (${CANVAS_UV[*]})"
        return 0
    fi
    # A bootstrap venv works as root and non-root, and on distributions whose system Python
    # refuses `pip install` (PEP 668). Fall back to --user where the venv module is missing.
    echo "uv not found; installing it into .venv-uv"
    if "$PYTHON" -m venv "$_canvas_root/.venv-uv" && "$_canvas_root/.venv-uv/bin/python" -m pip install -q uv; then
        CANVAS_UV=("$_canvas_root/.venv-uv/bin/uv")
    else
        rm -rf "$_canvas_root/.venv-uv"
        echo "venv bootstrap failed; trying: $PYTHON -m pip install --user uv"
        "$PYTHON" -m pip install -q --user uv ||
            "$PYTHON" -m pip install -q --user --break-system-packages uv || return 1
        CANVAS_UV=("$PYTHON" -m uv)
    fi
    echo "using $("${CANVAS_UV[@]}" --version)"
}

_canvas_stamp() {
    local lock=$1
    (
        cd "$_canvas_root" || exit 1
        {
            echo "install-steps v2"
            "$PYTHON" -c 'import sys; print(sys.version)'
            cat "$lock" pyproject.toml
        } | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )
}

_canvas_py_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none; }

# canvas_ensure_venv DIR LOCK [resync]. Called as an `if` condition by test.sh, where set -e is
# off: hence every `|| return`.
canvas_ensure_venv() {
    local dir=$1 lock=$2 resync=${3:-0} want
    want=$(_canvas_stamp "$lock") || return 1
    if [[ $resync == 0 && -x "$dir/bin/python" ]] && "$dir/bin/python" -c '' 2>/dev/null &&
        [[ "$(cat "$dir/.canvas-stamp" 2>/dev/null)" == "$want" ]]; then
        echo "$dir is up to date with $lock (stamp matches); reusing it"
        return 0
    fi
    echo "Setting up $dir (pinned from $lock; the first run downloads the packages)"
    [[ ${#CANVAS_UV[@]} -gt 0 ]] || canvas_install_uv || return 1
    # Recreate a venv that is broken or made from another Python minor; otherwise sync in place.
    if [[ "$(_canvas_py_minor "$dir/bin/python")" != "$(_canvas_py_minor "$PYTHON")" ]]; then
        rm -rf "$dir"
        "${CANVAS_UV[@]}" venv --quiet --python "$PYTHON" "$dir" || return 1
    fi
    rm -f "$dir/.canvas-stamp"
    # sync = exactly the lock, so runs are reproducible. Bytecode is compiled once here: where
    # PYTHONDONTWRITEBYTECODE is set, every process (each Airflow CLI call, each test
    # subprocess) would otherwise recompile Airflow on import, seconds each time.
    (cd "$_canvas_root" && "${CANVAS_UV[@]}" pip sync --quiet --compile-bytecode --python "$dir/bin/python" "$lock") ||
        return 1
    # The provider itself, editable (code changes need no reinstall); deps are all in the lock.
    (cd "$_canvas_root" && "${CANVAS_UV[@]}" pip install --quiet --python "$dir/bin/python" --no-deps -e .) || return 1
    echo "$want" >"$dir/.canvas-stamp"
}
