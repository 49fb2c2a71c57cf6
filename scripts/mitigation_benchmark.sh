#!/usr/bin/env bash
# Measures zeren's threshold and exponentiated-gradient mitigation on Adult (official split, sex
# as the sensitive column) and prints a Markdown table for BENCHMARKS.md.
#
#   scripts/mitigation_benchmark.sh
#
# Every run gives the model the sex column as an input (--sensitive-as-features). Logistic
# regression trains with Adam at learning rate 0.003, because at the default 0.001 it is still
# improving after 30 epochs.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p zeren-cli
zeren=target/release/zeren
if [ -n "${CARGO_TARGET_DIR:-}" ]; then zeren="$CARGO_TARGET_DIR/release/zeren"; fi

common=(--dataset adult --sensitive sex --sensitive-as-features --bootstrap 0 --quiet)
logistic=(--model logistic --learning-rate 0.003)

# Prints one table row: the setting, test accuracy, demographic parity and equalized odds
# differences on sex, seconds of the whole run and of the reduction.
row() {
    local name=$1
    shift
    local out="$work/run-$RANDOM"
    "$zeren" train "${common[@]}" "$@" --out "$out" > /dev/null
    python3 - "$name" "$out/report.json" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
report = json.load(open(path))
sex = report["fairness"]["sex"]
reduction = (report.get("mitigation") or {}).get("reduction") or {}
seconds = f"{reduction['seconds']:.1f}" if reduction else "-"
print(f"| {name} | {report['metrics']['test']['accuracy']:.4f} | {sex['demographic_parity_difference']:.4f} "
      f"| {sex['equalized_odds_difference']:.4f} | {report['run']['seconds']:.1f} | {seconds} |")
EOF
}

echo "| setting | accuracy | DP difference | EO difference | run seconds | reduction seconds |"
echo "|---|---|---|---|---|---|"
row "logistic regression" "${logistic[@]}"
row "MLP (64 hidden)"
row "logistic + threshold (DP), validation split" "${logistic[@]}" --mitigation threshold
row "logistic + threshold (DP), training split" "${logistic[@]}" --mitigation threshold --threshold-split train
row "logistic + threshold (EO), validation split" "${logistic[@]}" --mitigation threshold \
    --constraint equalized-odds
row "logistic + threshold (EO), training split" "${logistic[@]}" --mitigation threshold \
    --constraint equalized-odds --threshold-split train
row "logistic + exponentiated gradient (DP, eps 0.01)" "${logistic[@]}" --mitigation exponentiated-gradient
row "logistic + exponentiated gradient (EO, eps 0.01)" "${logistic[@]}" --mitigation exponentiated-gradient \
    --constraint equalized-odds
row "MLP + exponentiated gradient (DP, eps 0.01)" --mitigation exponentiated-gradient
