#!/usr/bin/env bash
# The default policy (or RULES_DIR) against attackers who adapt to it:
# simulates the adaptive attack classes with noisy honest sellers, and the
# 2018 campaign with the ordinary ones, for three seeds each; evaluates every
# history closed loop (docs/evaluate.md); prints, per attack class and
# overall, the median and the spread (min to max) over the seeds of the
# stolen value stopped and of the honest cost per cause, as Markdown tables
# ready for BENCHMARKS.md. Usage:
#
#   scripts/adaptive-eval.sh                 # the built-in default rules
#   scripts/adaptive-eval.sh my-rules/       # a rules directory
#   SELLERS=1000 DAYS=90 SEEDS="1 2 3" scripts/adaptive-eval.sh
#
# Settings (environment): SELLERS (3000), DAYS (180), SEEDS ("1 2 3"),
# SCENARIO (adaptive) and HONEST (noisy) for the adaptive histories,
# BASELINE (seller-phishing-2018, empty for none), CUSTOS (the binary;
# default: built here with `cargo build --release -p custos`), OUT (where
# the histories and reports go; default: a temporary directory, removed).
#
# A scenario or honest-seller name the simulator does not know stops the
# script with the simulator's own error. The one exception: when SCENARIO
# and HONEST are left at their defaults and the simulator predates the
# adaptive classes, the script says so loudly and runs `--scenario all`
# with the ordinary honest sellers, and the tables say which ran.
set -euo pipefail
cd "$(dirname "$0")/.."

rules_dir="${1:-}"
sellers="${SELLERS:-3000}"
days="${DAYS:-180}"
seeds="${SEEDS:-1 2 3}"
scenario="${SCENARIO:-adaptive}"
honest="${HONEST:-noisy}"
baseline="${BASELINE-seller-phishing-2018}"

if [ -n "$rules_dir" ] && [ ! -d "$rules_dir" ]; then
  echo "adaptive-eval: $rules_dir is not a directory" >&2
  exit 2
fi

if [ -n "${CUSTOS:-}" ]; then
  custos="$CUSTOS"
else
  cargo build --release -p custos >&2
  target="${CARGO_TARGET_DIR:-target}"
  custos="$target/release/custos"
fi
if [ ! -x "$custos" ]; then
  echo "adaptive-eval: no custos binary at $custos" >&2
  exit 2
fi

if [ -n "${OUT:-}" ]; then
  out="$OUT"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

# The adaptive histories' simulate arguments, checked on a tiny world first
# so that an unknown name fails before minutes of work.
adaptive_args=(--scenario "$scenario" --honest "$honest")
if ! "$custos" simulate --sellers 2 --days 1 "${adaptive_args[@]}" \
  -o "$out/probe.ndjson" 2>"$out/probe.err"; then
  if [ -z "${SCENARIO:-}" ] && [ -z "${HONEST:-}" ]; then
    {
      echo "adaptive-eval: WARNING: this simulator does not know --scenario adaptive --honest noisy:"
      sed 's/^/  /' "$out/probe.err"
      echo "adaptive-eval: WARNING: falling back to --scenario all with ordinary honest sellers"
    } >&2
    scenario="all"
    adaptive_args=(--scenario all)
    honest="ordinary"
  else
    echo "adaptive-eval: the simulator refused $scenario / $honest:" >&2
    cat "$out/probe.err" >&2
    exit 2
  fi
fi
rm -f "$out/probe.ndjson" "$out/probe.err"

evaluate_args=()
if [ -n "$rules_dir" ]; then
  evaluate_args=(--rules "$rules_dir")
fi

run() {
  local name="$1" seed="$2"
  shift 2
  local history="$out/$name-$seed.ndjson"
  echo "adaptive-eval: simulating $name, seed $seed ($sellers sellers, $days days)" >&2
  "$custos" simulate --sellers "$sellers" --days "$days" --seed "$seed" "$@" -o "$history"
  echo "adaptive-eval: evaluating $name, seed $seed" >&2
  "$custos" evaluate "$history" "${evaluate_args[@]}" \
    --json "$out/$name-$seed.report.json" --html "$out/$name-$seed.report.html" >/dev/null
  rm -f "$history"
}

for seed in $seeds; do
  run adaptive "$seed" "${adaptive_args[@]}"
  if [ -n "$baseline" ]; then
    run baseline "$seed" --scenario "$baseline"
  fi
done

python3 - "$out" "$scenario" "$honest" "$baseline" "${rules_dir:-built-in default rules}" \
  "$sellers" "$days" "$seeds" <<'PY'
import json, statistics, sys
from pathlib import Path

out, scenario, honest, baseline, rules, sellers, days, seeds = sys.argv[1:9]
seeds = seeds.split()

def reports(name):
    return [json.loads((Path(out) / f"{name}-{s}.report.json").read_text()) for s in seeds]

def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    median = statistics.median(values)
    if min(values) == max(values):
        return fmt(median)
    return f"{fmt(median)} ({fmt(min(values))}–{fmt(max(values))})"

pct = lambda v: f"{v * 100:.1f}%"
pct2 = lambda v: f"{v * 100:.2f}%"
num = lambda v: f"{v:g}"

def money_table(name, runs):
    classes = sorted({c for r in runs for c in r["stolen_by_class"]})
    print(f"| {name}: attack class | stolen payouts | value stopped | of it, prevented by a step-up | campaign victims | linked at victim |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in classes:
        per = [r["stolen_by_class"].get(c) for r in runs]
        attempted = [sum(m["attempted"]["count"] for m in p["currencies"].values()) if p else 0 for p in per]
        stopped = [p["share_stopped"] if p else None for p in per]
        prevented = [p["share_prevented_by_step_up"] if p else None for p in per]
        # Per seed: the victims of the class's campaigns (an attacker who
        # failed his step-up took nothing over), and the worst victim at
        # which one of them was linked, or None when one was never linked.
        victims, detection = [], []
        for r in runs:
            mine = [k for k in r["campaigns"] if k["scenario"] == c]
            if not mine:
                continue
            victims.append(max(k["victims"] for k in mine))
            if any(k["victims_at_detection"] is None for k in mine):
                detection.append(None)
            else:
                detection.append(max(k["victims_at_detection"] for k in mine))
        missed = sum(1 for d in detection if d is None)
        linked = spread([d for d in detection if d is not None], num)
        if missed:
            linked = f"never in {missed} of {len(detection)} seeds" + ("" if linked == "-" else f"; {linked}")
        print(f"| `{c}` | {spread(attempted, num)} | {spread(stopped, pct)} | {spread(prevented, pct)} "
              f"| {spread(victims, num)} | {linked if detection else '-'} |")
    overall = [r["headline"]["share_stolen_stopped"] for r in runs]
    attempted = [sum(s["attempted"]["count"] for s in r["stolen"].values()) for r in runs]
    prevented = []
    for r in runs:
        total = sum(s["attempted"]["value"] for s in r["stolen"].values())
        step_up = sum(s.get("prevented_by_step_up", {}).get("value", 0) for s in r["stolen"].values())
        prevented.append(step_up / total if total else None)
    print(f"| **overall** | {spread(attempted, num)} | {spread(overall, pct)} | {spread(prevented, pct)} | | |")
    print()

def cost_table(name, runs):
    print(f"| {name}: honest cost | share | count | causes (median count) |")
    print("|---|---:|---:|---|")
    for key, label in [
        ("payouts_held", "payouts held"),
        ("destination_changes_held", "destination changes held or reviewed"),
        ("destination_changes_challenged", "destination changes challenged or more"),
        ("logins_challenged", "logins challenged"),
    ]:
        tallies = [r["honest_cost"].get(key) for r in runs]
        if any(t is None for t in tallies):
            continue  # a report from a build that did not count it
        causes = sorted({c for t in tallies for c in t["by_cause"]})
        medians = {c: statistics.median([t["by_cause"].get(c, 0) for t in tallies]) for c in causes}
        listed = ", ".join(f"`{c}` {medians[c]:g}" for c in sorted(causes, key=lambda c: -medians[c])
                           if medians[c] > 0)
        counts = spread([t["hit"] for t in tallies], num) + " of " + spread([t["total"] for t in tallies], num)
        print(f"| {label} | {spread([t['share'] for t in tallies], pct2)} | {counts} | {listed or '-'} |")
    print()

print(f"Rules: {rules}. {sellers} sellers, {days} days, seeds {', '.join(seeds)}; "
      "median over the seeds, (min–max) when they differ; closed loop (docs/evaluate.md).")
print()
adaptive = reports("adaptive")
title = f"`--scenario {scenario}`" + (f" `--honest {honest}`" if honest != "ordinary" else "")
print(f"### {title}")
print()
if honest == "ordinary":
    print("Fallback: this simulator does not know the adaptive classes; these are the classic ones.")
    print()
money_table("adaptive", adaptive)
cost_table("adaptive", adaptive)
if baseline:
    print(f"### `--scenario {baseline}`")
    print()
    base = reports("baseline")
    money_table("baseline", base)
    cost_table("baseline", base)
PY
