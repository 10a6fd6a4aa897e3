# shellcheck shell=bash
# Sourced, not run: the project's venv bootstrap for scripts that need .venv (scripts/demo.sh).
#   source scripts/_venv.sh && canvas_venv   # -> .venv ready; CANVAS_PY=.venv/bin/python
# Mirrors scripts/test.sh's setup (uv, installed into .venv-uv when missing; .venv synced exactly
# to requirements/dev.lock; the provider installed editable) with the same stamp recipe, so both
# reuse one .venv and an up-to-date venv costs nothing. Keep the two in step (or make test.sh
# source this file).

_canvas_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PYTHON:=python3}"
# Trust the OS certificate store, as curl and git do (TLS-intercepting proxies).
export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1}

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

_canvas_install_uv() {
    _canvas_find_uv && return 0
    echo "uv not found; installing it into .venv-uv"
    if "$PYTHON" -m venv "$_canvas_root/.venv-uv" && "$_canvas_root/.venv-uv/bin/python" -m pip install -q uv; then
        CANVAS_UV=("$_canvas_root/.venv-uv/bin/uv")
    else
        rm -rf "$_canvas_root/.venv-uv"
        "$PYTHON" -m pip install -q --user uv ||
            "$PYTHON" -m pip install -q --user --break-system-packages uv || return 1
        CANVAS_UV=("$PYTHON" -m uv)
    fi
}

_canvas_stamp() {
    (
        cd "$_canvas_root" || exit 1
        {
            echo "install-steps v1"
            "$PYTHON" -c 'import sys; print(sys.version)'
            cat requirements/dev.lock pyproject.toml
        } | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )
}

_canvas_py_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none; }

# canvas_venv: make .venv match requirements/dev.lock (reused when its stamp matches).
canvas_venv() {
    local dir=$_canvas_root/.venv want
    want=$(_canvas_stamp) || return 1
    CANVAS_PY=$dir/bin/python
    if [[ -x "$CANVAS_PY" ]] && "$CANVAS_PY" -c '' 2>/dev/null &&
        [[ "$(cat "$dir/.canvas-stamp" 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    echo "Setting up $dir (pinned from requirements/dev.lock; first run takes a few minutes)"
    _canvas_install_uv || return 1
    # Recreate a venv that is broken or made from another Python minor; otherwise sync in place.
    if [[ "$(_canvas_py_minor "$CANVAS_PY")" != "$(_canvas_py_minor "$PYTHON")" ]]; then
        rm -rf "$dir"
        "${CANVAS_UV[@]}" venv --quiet --python "$PYTHON" "$dir" || return 1
    fi
    rm -f "$dir/.canvas-stamp"
    (cd "$_canvas_root" && "${CANVAS_UV[@]}" pip sync --quiet --python "$CANVAS_PY" requirements/dev.lock) || return 1
    (cd "$_canvas_root" && "${CANVAS_UV[@]}" pip install --quiet --python "$CANVAS_PY" --no-deps -e .) || return 1
    echo "$want" >"$dir/.canvas-stamp"
}
