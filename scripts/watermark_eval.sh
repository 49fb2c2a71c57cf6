#!/usr/bin/env bash
# Evaluates the text watermark on the Chinese and the English corpus and prints one Markdown
# table per corpus (see crates/zeren-cli/examples/watermark_eval.rs for what is measured).
# Usage: ZEREN_DATASETS=DIR scripts/watermark_eval.sh [TRAIN_SECONDS] [TEXTS] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ZEREN_DATASETS:?set ZEREN_DATASETS to the directory holding text/zh/quantangshi.txt.gz and text/en/shakespeare.txt.gz}"
train_seconds=${1:-180}
texts=${2:-500}
tokens=${3:-200}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$ZEREN_DATASETS/text/zh/quantangshi.txt.gz" > "$work/quantangshi.txt"
gzip -dc "$ZEREN_DATASETS/text/en/shakespeare.txt.gz" > "$work/shakespeare.txt"

cargo build --release --locked -p zeren-cli --example watermark_eval
for corpus in quantangshi shakespeare; do
    cargo run --release --locked -q -p zeren-cli --example watermark_eval -- \
        "$work/$corpus.txt" char "$train_seconds" "$texts" "$tokens"
    echo
done
