#!/usr/bin/env bash
# The benchmarks behind the provider's performance claims. Runs each benchmark (the provider and
# its reference side by side in one run, so that the machine's drifting speed cancels out) and
# writes the figures, with this command, into BENCHMARKS.md between its results markers.
# About 15 minutes on 2 cores; the first run also generates 1 GiB reports (cached afterwards).
#
# Usage: scripts/bench.sh [--smoke] [--only NAME[,NAME...]] [--no-write]
#   --smoke      tiny sizes: checks that every benchmark runs (what CI does); writes nothing
#                unless --write is given too
#   --only       run some: imports, polling, download, memory, triggers, one_token
#   --no-write   print the figures, leave BENCHMARKS.md alone
#   --write      write BENCHMARKS.md even with --smoke or --only
# Env: CANVAS_BENCH_CACHE (default /tmp/canvas-reports-bench): generated reports, bytecode cache;
#      CANVAS_BENCH_SCRATCH: where outputs land (default /dev/shm when it has room, else the temp
#      dir); CANVAS_BENCH_PYTHON: an interpreter that already has the provider (skips the venv
#      setup). curl and unzip (the references) are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

smoke=0
write=1
write_forced=0
only=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --only) only=$2; shift ;;
        --only=*) only=${1#--only=} ;;
        --no-write) write=0 ;;
        --write) write_forced=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $smoke == 1 || -n $only ]]; then write=0; fi
if [[ $write_forced == 1 ]]; then write=1; fi
all=(imports polling download memory triggers one_token)
if [[ -n $only ]]; then IFS=, read -r -a names <<<"$only"; else names=("${all[@]}"); fi
for name in "${names[@]}"; do
    [[ " ${all[*]} " == *" $name "* ]] || { echo "bench.sh: unknown benchmark '$name'" >&2; exit 2; }
done

# --- the interpreter (as scripts/demo.sh sets it up) ----------------------------------------
if [[ -n "${CANVAS_BENCH_PYTHON:-}" ]]; then
    py=$CANVAS_BENCH_PYTHON
else
    # shellcheck source=scripts/_venv.sh
    source scripts/_venv.sh
    canvas_ensure_venv "$PWD/.venv" requirements/dev.lock >&2
    py=.venv/bin/python
fi

# --- the references: curl and unzip ---------------------------------------------------------
missing=()
for tool in curl unzip; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "==> installing ${missing[*]} (the benchmarks' references)"
    sudo=()
    [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo=(sudo)
    if command -v apt-get >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" ||
            echo "WARNING: could not install ${missing[*]}: their references will be skipped" >&2
    else
        echo "WARNING: no apt-get: install ${missing[*]} by hand; their references will be skipped" >&2
    fi
fi

# --- environment --------------------------------------------------------------------------------
export CANVAS_BENCH_CACHE=${CANVAS_BENCH_CACHE:-${TMPDIR:-/tmp}/canvas-reports-bench}
mkdir -p "$CANVAS_BENCH_CACHE"
# Deployments run from compiled bytecode; keep it (outside the repository) even if the shell
# says not to write any, or every child process would compile Airflow from source.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-$CANVAS_BENCH_CACHE/pycache}
export PYTHONUNBUFFERED=1
unset AIRFLOW_HOME # each benchmark makes its own throwaway one

results=$(mktemp "${TMPDIR:-/tmp}/canvas-bench-results.XXXXXX")
trap 'rm -f "$results"' EXIT
now() { date +%s; }
started=$(now)
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
failed=()
for name in "${names[@]}"; do
    printf '\n==> benchmarks.%s%s\n' "$name" "$([[ $smoke == 1 ]] && echo ' --smoke')"
    t0=$(now)
    args=()
    [[ $smoke == 1 ]] && args+=(--smoke)
    # Airflow's task logs go to stderr/stdout too: keep the benchmark's own lines, drop the rest.
    if "$py" -m "benchmarks.$name" "${args[@]}" 2>&1 | tee >(grep '^BENCH_RESULT ' | sed 's/^BENCH_RESULT //' >>"$results") |
        { grep -v -E '^\S+Z \[(info|debug) *\]' || true; }; then
        echo "    ($(($(now) - t0))s)"
    else
        failed+=("$name")
        echo "FAILED: benchmarks.$name" >&2
    fi
done
sleep 0.2 # the tee'd grep above may still be flushing
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
duration=$(($(now) - started))

command="scripts/bench.sh"
[[ $smoke == 1 ]] && command+=" --smoke"
[[ -n $only ]] && command+=" --only $only"
meta=$(
    "$py" - "$command" "$load_before" "$load_after" "$duration" <<'EOF'
import json, os, platform, subprocess, sys, time
from importlib.metadata import version

def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except Exception:
        return ""

command, load_before, load_after, duration = sys.argv[1:5]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
commit = out("git", "rev-parse", "--short", "HEAD").strip()
if out("git", "status", "--porcelain", "--untracked-files=no", "--", "airflow_provider_canvas_reports", "benchmarks").strip():
    commit += " + uncommitted changes"
print(json.dumps({
    "command": command,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "commit": commit,
    "duration": f"{int(duration) // 60} min {int(duration) % 60} s",
    "machine": f"{os.cpu_count()} cores ({model}), {mem} GiB RAM, {platform.system()} {platform.release()}",
    "load_before": load_before,
    "load_after": load_after,
    "python": platform.python_version(),
    "airflow": version("apache-airflow"),
    "curl": (out("curl", "--version").split() or ["", "absent"])[1],
    "unzip": (out("unzip", "-v").split() or ["", "absent"])[1],
}))
EOF
)
echo
echo "==> done in $((duration / 60)) min $((duration % 60)) s"
if [[ $write == 1 ]]; then
    "$py" -m benchmarks.report "$results" BENCHMARKS.md --meta "$meta"
    echo "    figures written to BENCHMARKS.md"
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
