#!/usr/bin/env bash
# Measures zeren beside its peers on this machine and prints a Markdown table for BENCHMARKS.md.
#
#   ZEREN_PEERS=DIR ZEREN_PEERS_PYTHON=PYTHON ZEREN_DATASETS=DIR scripts/benchmark.sh
#
# ZEREN_PEERS is the directory of the peer scripts (opacus_mlp.py, fairlearn_audit.py) and
# ZEREN_PEERS_PYTHON a Python with PyTorch 2.15 and Fairlearn 0.15 installed. ZEREN_DATASETS contains
# tabular/adult (adult.data, adult.test) for the PyTorch peer. Without the peers, only zeren's
# own figures are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=20
rows=1000000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p zeren-cli
cargo build --release --quiet -p zeren-fairness --example audit_throughput
zeren=target/release/zeren
if [ -n "${CARGO_TARGET_DIR:-}" ]; then zeren="$CARGO_TARGET_DIR/release/zeren"; fi
audit_example=$(dirname "$zeren")/examples/audit_throughput

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Training: the Adult MLP (64 hidden, ReLU, Adam 0.001, batch 256, BCE), all training rows,
# no early stopping, one thread and the default thread count.
zeren_epoch() {
    local out="$work/adult-$1"
    RAYON_NUM_THREADS=$1 "$zeren" train --dataset adult --epochs $epochs --validation-fraction 0 \
        --bootstrap 0 --quiet --out "$out" > /dev/null
    json "sorted(e['seconds'] for e in d['training']['history'])[len(d['training']['history'])//2], d['metrics']['test']['accuracy']" \
        < "$out/report.json"
}
read -r zeren_1 zeren_1_accuracy <<< "$(zeren_epoch 1 | tr -d '(),')"
read -r zeren_2 zeren_2_accuracy <<< "$(zeren_epoch "$(nproc)" | tr -d '(),')"

# DP-SGD on the same model, C = 1, at epsilon 1 and 3 (delta 1e-5), default thread count; zeren
# draws the noise on one extra thread.
zeren_private() {
    local out="$work/adult-dp-$1"
    "$zeren" train --dataset adult --epochs $epochs --validation-fraction 0 --bootstrap 0 --quiet \
        --dp-epsilon "$1" --dp-delta 1e-5 --max-grad-norm 1 --out "$out" > /dev/null
    json "sorted(e['seconds'] for e in d['training']['history'])[len(d['training']['history'])//2], d['metrics']['test']['accuracy']" \
        < "$out/report.json"
}
read -r zeren_dp1 zeren_dp1_accuracy <<< "$(zeren_private 1 | tr -d '(),')"
read -r zeren_dp3 zeren_dp3_accuracy <<< "$(zeren_private 3 | tr -d '(),')"

# Fairness audit of a million synthetic rows with 5 groups.
zeren_audit=$("$audit_example" $rows 5 0 | json "d['seconds']")
zeren_audit_bootstrap=$("$audit_example" $rows 5 200 | json "d['seconds']")

torch_1=""; torch_accuracy=""; torch_n=""; fairlearn=""; opacus1=""; opacus1_accuracy=""; opacus3=""; opacus3_accuracy=""
if [ -n "${ZEREN_PEERS:-}" ] && [ -n "${ZEREN_PEERS_PYTHON:-}" ]; then
    adult="${ZEREN_DATASETS:?set ZEREN_DATASETS}/tabular/adult"
    read -r torch_1 torch_accuracy <<< "$("$ZEREN_PEERS_PYTHON" "$ZEREN_PEERS/opacus_mlp.py" --data "$adult" \
        --epochs $epochs --threads 1 --json 2>/dev/null | json "d['median_epoch_seconds'], d['test_accuracy']" | tr -d '(),')"
    torch_n=$("$ZEREN_PEERS_PYTHON" "$ZEREN_PEERS/opacus_mlp.py" --data "$adult" --epochs $epochs \
        --threads "$(nproc)" --json 2>/dev/null | json "d['median_epoch_seconds']")
    read -r opacus1 opacus1_accuracy <<< "$("$ZEREN_PEERS_PYTHON" "$ZEREN_PEERS/opacus_mlp.py" --data "$adult" \
        --epochs $epochs --threads "$(nproc)" --dp --epsilon 1 --delta 1e-5 --max-grad-norm 1 --json 2>/dev/null \
        | json "d['median_epoch_seconds'], d['test_accuracy']" | tr -d '(),')"
    read -r opacus3 opacus3_accuracy <<< "$("$ZEREN_PEERS_PYTHON" "$ZEREN_PEERS/opacus_mlp.py" --data "$adult" \
        --epochs $epochs --threads "$(nproc)" --dp --epsilon 3 --delta 1e-5 --max-grad-norm 1 --json 2>/dev/null \
        | json "d['median_epoch_seconds'], d['test_accuracy']" | tr -d '(),')"
    fairlearn=$("$ZEREN_PEERS_PYTHON" "$ZEREN_PEERS/fairlearn_audit.py" --synthetic-rows $rows --groups 5 \
        2>/dev/null | json "d['seconds']")
fi

ratio() { [ -n "$2" ] && python3 -c "print(f'{$2 / $1:.1f}x')" || echo "n/a"; }

echo "| measurement | zeren | peer | peer / zeren |"
echo "|---|---|---|---|"
echo "| Adult MLP, median seconds per epoch, 1 thread | $zeren_1 (accuracy $zeren_1_accuracy) | PyTorch ${torch_1:-n/a} (accuracy ${torch_accuracy:-n/a}) | $(ratio "$zeren_1" "$torch_1") |"
echo "| Adult MLP, median seconds per epoch, $(nproc) threads | $zeren_2 (accuracy $zeren_2_accuracy) | PyTorch ${torch_n:-n/a} | $(ratio "$zeren_2" "$torch_n") |"
echo "| Adult MLP, DP-SGD at ε = 1, median seconds per epoch | $zeren_dp1 | Opacus ${opacus1:-n/a} | $(ratio "$zeren_dp1" "$opacus1") |"
echo "| DP-SGD epoch / non-private epoch, $(nproc) threads | $(ratio "$zeren_2" "$zeren_dp1") | Opacus / PyTorch $(ratio "${torch_n:-1}" "${opacus1:-}") | |"
echo "| Adult test accuracy at ε = 1 (δ = 1e-5, C = 1, $epochs epochs) | $zeren_dp1_accuracy | Opacus ${opacus1_accuracy:-n/a} | |"
echo "| Adult test accuracy at ε = 3 | $zeren_dp3_accuracy | Opacus ${opacus3_accuracy:-n/a} | |"
echo "| fairness audit, $rows rows, 5 groups, seconds | $zeren_audit | Fairlearn ${fairlearn:-n/a} | $(ratio "$zeren_audit" "$fairlearn") |"
echo "| the same with 200 bootstrap resamples, seconds | $zeren_audit_bootstrap | | |"
