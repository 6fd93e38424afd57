#!/usr/bin/env bash
# Dogfood the regression gate: run a recipe, then `edgekd check` its report against the committed baseline.
#
#   .ci/gate.sh                       # recipes/quickstart.yaml vs .ci/baselines/quickstart.<this cpu>.json
#   RECIPE=recipes/gaze/dft_gaze.yaml .ci/gate.sh --max-latency-ratio 1.3
#   REFRESH_BASELINE=1 .ci/gate.sh    # on the CI runner: write this CPU's baseline (<name>.<cpu>.json), commit it
#
# Extra arguments go to `edgekd check`. Exit codes are the gate's: 0 ok, 1 regression, 2 bad input, 3 internal error.
# No baseline yet: the run still has to succeed, the gate is skipped with a message (exit 0). Another CPU's
# baseline gates metrics, statuses and sizes but not latency (a latency ratio across CPUs is not a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
export COLUMNS="${COLUMNS:-160}"  # rich tables in a CI log are not a terminal: do not squeeze them to 80

RECIPE="${RECIPE:-recipes/quickstart.yaml}"
RUNS_DIR="${RUNS_DIR:-runs}"
EDGEKD="${EDGEKD:-$( [ -x .venv/bin/edgekd ] && echo .venv/bin/edgekd || echo edgekd )}"
NAME="$("$EDGEKD" recipe show "$RECIPE" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])')"
GATE_DIR="${GATE_DIR:-$RUNS_DIR/$NAME/gate}"
REPORT="$RUNS_DIR/$NAME/report.json"

"$EDGEKD" run "$RECIPE" --runs-dir "$RUNS_DIR"

# Latency is only a regression test on the CPU the baseline was measured on, and the CPU model of this project's
# machines changes between sessions (AMD EPYC, Intel Xeon): each CPU model gets its own baseline,
# .ci/baselines/<name>.<cpu>.json, taken before the CPU-less <name>.json.
cpu_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["environment"].get("cpu", ""))' "$1"; }
CPU="$(cpu_of "$REPORT")"
SLUG="$(printf '%s' "$CPU" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9' '-' | tr -s '-' | sed 's/^-//; s/-$//')"
SLUG="${SLUG:-unknown-cpu}"
if [ -z "${BASELINE:-}" ]; then
  BASELINE=".ci/baselines/$NAME.json"
  if [ -f ".ci/baselines/$NAME.$SLUG.json" ] || [ "${REFRESH_BASELINE:-0}" = "1" ]; then
    BASELINE=".ci/baselines/$NAME.$SLUG.json"
  fi
fi

if [ "${REFRESH_BASELINE:-0}" = "1" ]; then
  mkdir -p "$(dirname "$BASELINE")"
  cp "$REPORT" "$BASELINE"
  echo "baseline refreshed: $BASELINE (measured on $CPU, $(uname -m)); commit it"
  exit 0
fi

if [ ! -f "$BASELINE" ]; then
  echo "no baseline at $BASELINE: gate skipped. Create it on this machine with REFRESH_BASELINE=1 $0" >&2
  exit 0
fi

# Another CPU's baseline still gates metrics, statuses and sizes; its latency rows are shown, not gated.
LATENCY_ARGS=()
BASE_CPU="$(cpu_of "$BASELINE")"
if [ -z "$CPU" ] || [ "$BASE_CPU" != "$CPU" ]; then  # an unrecorded CPU is not known to be the same one
  echo "note: $BASELINE was measured on ${BASE_CPU:-an unrecorded CPU}, this is ${CPU:-an unrecorded CPU}:" \
       "latency is not gated (per-rule latency budgets in BUDGETS still apply)" \
       "- REFRESH_BASELINE=1 $0 records a baseline for this CPU" >&2
  LATENCY_ARGS=(--max-latency-ratio 1000000)
fi

BUDGET_ARGS=()
if [ -n "${BUDGETS:-}" ]; then BUDGET_ARGS=(--budgets "$BUDGETS"); fi
"$EDGEKD" check "$REPORT" --baseline "$BASELINE" --max-metric-drop "${MAX_METRIC_DROP:-0.5}" \
  --markdown "$GATE_DIR/gate.md" --junit "$GATE_DIR/gate.xml" --json-out "$GATE_DIR/gate.json" \
  ${BUDGET_ARGS[@]+"${BUDGET_ARGS[@]}"} "$@" ${LATENCY_ARGS[@]+"${LATENCY_ARGS[@]}"}
