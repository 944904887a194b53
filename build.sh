#!/usr/bin/env bash
# r2mae — the one entry point.
#
#   ./build.sh                      setup (if needed) + data + every notebook at `quick` + report
#   ./build.sh test                 setup (if needed) + data + the whole test suite (unit, notebooks via nbval)
#   ./build.sh setup                create .venv from environment.yml (skipped when up to date)
#   ./build.sh data [NAME ...]      install the dataset packages (apt/npm) and prepare data/
#   ./build.sh run [--profile smoke|quick|full] [NN_slug ...]
#                                   execute notebooks with papermill into results/<profile>/
#   ./build.sh report [--profile P] [--no-input]
#                                   results/<profile>/CLAIMS.md and index.html (--no-input: no code cells in the HTML)
#   ./build.sh pair [--seeds N] [NN_slug ...]
#                                   smoke references (N seeds) + re-execute the committed notebooks/*.ipynb
#   ./build.sh bench                the benchmarks under tests/benchmarks/ (not part of `test`)
#   ./build.sh gpu next|status|estimate|pack|rehearse|run|unpack ...
#                                   the GPU route (r2mae_core.campaign): the next shard, the ledger's state, each
#                                   shard's estimated H200 minutes, what a shard's GPU command carries, its dry run
#                                   as the GPU machine would run it (carried data only, the image's packages only),
#                                   run a shard into an archive (--dry-run: on this CPU, small), take archives into
#                                   the ledger
#   ./build.sh sweep NN_slug [--profile P] [--shard i/n] [--group-size K] [--workers W] [--compile]
#                                   train and evaluate (a shard of) a section's plan into R2MAE_CACHE_DIR
#                                   (r2mae_core.sweep): several machines sharing one cache fill one sweep; on
#                                   several GPUs: torchrun --nproc_per_node N -m r2mae_core.sweep NN_slug ...
#   ./build.sh lab [JUPYTER LAB FLAGS]
#                                   JupyterLab on notebooks/ (flags go to `jupyter lab`, e.g. --no-browser; as root
#                                   --allow-root is added)
#   ./build.sh numerics             the CPU code paths and thread counts every command runs with (pinned)
#
# With a conda env named r2mae active (conda env create -f environment.yml), that env is used instead
# of .venv.
#
# Environment variables (all optional):
#   R2MAE_DATA_DIR      prepared datasets (default data/)
#   R2MAE_SOURCES_DIR   unpacked dataset packages (default data/sources/)
#   R2MAE_RESULTS_DIR   notebook outputs, figures, tables (default results/)
#   R2MAE_CACHE_DIR     cached runs and checkpoints (default results/cache/)
#   R2MAE_LEDGER_DIR    GPU results taken in by `gpu unpack` (default results/full/runs/)
#   R2MAE_NO_CACHE=1    recompute every cached result (and overwrite it)
#   R2MAE_REPLAY=1|0    full profile: 1 refuses to train a run missing from the ledger (the default without CUDA)
#   R2MAE_NUMERICS=native
#                       the processor's own kernels and thread counts instead of the pinned ones
#   R2MAE_PROGRESS_FILE set by `run` for each notebook: the run engine's progress, shown in the terminal
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP_NAME=".r2mae-setup"

die() { echo "build.sh: $*" >&2; exit 2; }
log() { echo "==> $*"; }

env_hash() { cat environment.yml pyproject.toml | sha256sum | cut -c1-16; }

# The `pip:` list of environment.yml, one requirement per line.
pip_requirements() {
  awk '/^[[:space:]]*- pip:[[:space:]]*$/ {inpip=1; next}
       inpip && /^[[:space:]]*- / {sub(/^[[:space:]]*- /, ""); sub(/[[:space:]]+#.*$/, ""); print; next}
       inpip && /^[^[:space:]]/ {inpip=0}' environment.yml
}

use_env() {
  if [[ "${CONDA_DEFAULT_ENV:-}" == "r2mae" && -n "${CONDA_PREFIX:-}" ]]; then
    PY="$CONDA_PREFIX/bin/python"; PREFIX="$CONDA_PREFIX"
  else
    PY="$VENV/bin/python"; PREFIX="$VENV"
  fi
  export PATH="$PREFIX/bin:$PATH"
  export PYTHONHASHSEED=0
}

# Pinned CPU numerics (r2mae_core/numerics.py): the same kernels and thread counts on every AVX2 processor, so
# the same seed gives the same numbers everywhere. Exported here, inherited by every kernel and worker process.
# R2MAE_NUMERICS=native switches it off.
pin_numerics() {
  local lines line
  lines="$("$PY" -m r2mae_core.numerics exports)" || die "numerics: see the line above"
  while IFS= read -r line; do [[ -n "$line" ]] && export "$line"; done <<< "$lines"
  return 0
}

# JupyterLab opens the paired notebooks/*.py as notebooks (jupytext's viewer) on a double click: the
# environment-wide settings overrides (lab/overrides.json).
lab_settings() {
  mkdir -p "$PREFIX/share/jupyter/lab/settings"
  cp "$ROOT/lab/overrides.json" "$PREFIX/share/jupyter/lab/settings/overrides.json"
}

cmd_setup() {
  use_env
  local want; want="$(env_hash)"
  if [[ -x "$PY" && -f "$PREFIX/$STAMP_NAME" && "$(cat "$PREFIX/$STAMP_NAME")" == "$want" ]]; then
    log "setup: environment up to date ($PREFIX)"; lab_settings; pin_numerics; return 0
  fi
  if [[ "$PREFIX" == "$VENV" ]]; then
    local base="${PYTHON:-python3.11}"
    command -v "$base" >/dev/null 2>&1 || base=python3
    "$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
      || die "setup needs Python 3.11 (found $("$base" --version 2>&1)); set PYTHON=/path/to/python3.11"
    [[ -x "$PY" ]] || { log "setup: creating $VENV"; "$base" -m venv "$VENV"; }
  fi
  local req; req="$(mktemp)"; pip_requirements > "$req"
  grep -qx 'torch==2.13.0' "$req" || die "environment.yml must pin torch==2.13.0 in its pip list"
  log "setup: installing $(wc -l < "$req") requirements from environment.yml (one pip call, torch pinned)"
  # One call: torch==2.13.0 is resolved together with everything that depends on it. Which build (CPU or CUDA)
  # depends on the index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu gives the CPU one (README).
  local pip_log="$PREFIX/pip-install.log" rc=0
  "$PY" -m pip install --disable-pip-version-check -q -r "$req" > "$pip_log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither" "$pip_log" || true
  rm -f "$req"
  [[ $rc -eq 0 ]] || die "setup: pip install failed (exit $rc; log: $pip_log)"
  "$PY" -c 'import torch, r2mae_core' || die "setup: torch or r2mae_core does not import after install"
  "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (r2mae)" >/dev/null
  lab_settings
  echo "$want" > "$PREFIX/$STAMP_NAME"
  log "setup: done ($(du -sh "$PREFIX" | cut -f1) in $PREFIX)"
  pin_numerics
}

cmd_data() {
  cmd_setup
  log "data: installing dataset packages and preparing data/"
  "$PY" -m r2mae_core.data install "$@"
  "$PY" -m r2mae_core.data prepare "$@"
}

cmd_run() {
  cmd_setup
  "$PY" -m r2mae_core.pipeline run "$@"
}

cmd_report() {
  cmd_setup
  "$PY" -m r2mae_core.report "$@"
}

cmd_test() {
  cmd_data
  log "test: pytest (unit, property, theory-vs-simulation, notebook conventions) + nbval (notebooks, smoke)"
  local rc=0
  "$PY" -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider "$@" || rc=$?
  if [[ $rc -eq 5 ]]; then
    echo "build.sh test: pytest collected no tests: the suite is missing, which is a failure" >&2; exit 1
  fi
  exit $rc
}

cmd_default() {
  cmd_data
  local rc=0
  "$PY" -m r2mae_core.pipeline run --profile quick || rc=$?
  "$PY" -m r2mae_core.report --profile quick || rc=$?
  exit $rc
}

main() {
  local sub="${1:-}"; [[ $# -gt 0 ]] && shift
  case "$sub" in
    "")      cmd_default ;;
    setup)   cmd_setup ;;
    data)    cmd_data "$@" ;;
    run)     cmd_run "$@" ;;
    report)  cmd_report "$@" ;;
    test)    cmd_test "$@" ;;
    pair)    cmd_setup; "$PY" -m r2mae_core.pipeline pair "$@" ;;
    bench)   cmd_setup; "$PY" -m pytest tests/benchmarks -p no:cacheprovider --benchmark-only \
               -o python_files='bench_*.py' "$@" ;;
    numerics) cmd_setup >/dev/null; "$PY" -m r2mae_core.numerics describe ;;
    gpu)     cmd_setup; "$PY" -m r2mae_core.campaign "$@" ;;
    sweep)   cmd_setup; "$PY" -m r2mae_core.sweep "$@" ;;
    lab)     cmd_setup
             # jupyter refuses to run as root without --allow-root (a container's usual user): pass it there
             if [[ $EUID -eq 0 && " $* " != *" --allow-root "* ]]; then set -- --allow-root "$@"; fi
             exec "$PY" -m jupyter lab --notebook-dir="$ROOT/notebooks" "$@" ;;
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
    *)       die "unknown command '$sub': use setup | data | run | report | test | pair | bench | gpu | sweep | lab | numerics (see ./build.sh help)" ;;
  esac
}

main "$@"
