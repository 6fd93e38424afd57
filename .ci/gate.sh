#!/usr/bin/env bash
# Dogfood the regression gate: run a recipe, then `edgekd check` its report against the committed baseline.
#
#   .ci/gate.sh                       # recipes/quickstart.yaml vs .ci/baselines/quickstart.json
#   RECIPE=recipes/gaze/dft_gaze.yaml .ci/gate.sh --max-latency-ratio 1.3
#   REFRESH_BASELINE=1 .ci/gate.sh    # on the CI runner: write the new baseline, then commit it
#
# Extra arguments go to `edgekd check`. Exit codes are the gate's: 0 ok, 1 regression, 2 bad input.
# No baseline yet: the run still has to succeed, the gate is skipped with a message (exit 0), because a baseline
# measured on another machine would compare latency across CPUs (the gate notes that, but it is not a valid gate).
set -euo pipefail
cd "$(dirname "$0")/.."
export COLUMNS="${COLUMNS:-160}"  # rich tables in a CI log are not a terminal: do not squeeze them to 80

RECIPE="${RECIPE:-recipes/quickstart.yaml}"
RUNS_DIR="${RUNS_DIR:-runs}"
EDGEKD="${EDGEKD:-$( [ -x .venv/bin/edgekd ] && echo .venv/bin/edgekd || echo edgekd )}"
NAME="$("$EDGEKD" recipe show "$RECIPE" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])')"
BASELINE="${BASELINE:-.ci/baselines/$NAME.json}"
GATE_DIR="${GATE_DIR:-$RUNS_DIR/$NAME/gate}"
REPORT="$RUNS_DIR/$NAME/report.json"

"$EDGEKD" run "$RECIPE" --runs-dir "$RUNS_DIR"

if [ "${REFRESH_BASELINE:-0}" = "1" ]; then
  mkdir -p "$(dirname "$BASELINE")"
  cp "$REPORT" "$BASELINE"
  echo "baseline refreshed: $BASELINE (measured on $(uname -m), commit it from this runner class only)"
  exit 0
fi

if [ ! -f "$BASELINE" ]; then
  echo "no baseline at $BASELINE: gate skipped. Create it on the CI runner with REFRESH_BASELINE=1 $0" >&2
  exit 0
fi

BUDGET_ARGS=()
if [ -n "${BUDGETS:-}" ]; then BUDGET_ARGS=(--budgets "$BUDGETS"); fi
"$EDGEKD" check "$REPORT" --baseline "$BASELINE" --max-metric-drop "${MAX_METRIC_DROP:-0.5}" \
  --markdown "$GATE_DIR/gate.md" --junit "$GATE_DIR/gate.xml" --json-out "$GATE_DIR/gate.json" \
  "${BUDGET_ARGS[@]}" "$@"
