#!/usr/bin/env bash
# SFT on examples of uneven length (Open Assistant prompts and replies, the
# Llama-2 tokenizer) with the 24M-parameter benchmark model, two ways with the
# same activation memory bound (one example of max_seq_len tokens):
#   A  micro_batch_size 1                           one example a forward pass
#   B  micro_batch_size 16, micro_batch_tokens 1024 as many as fit in 1024 tokens
# The gradients are the same (tests/cli/test_train.sh); B runs fewer, larger
# GEMMs. Prints wall time, tokens/s and peak RSS of each, run in turns.
#
#   bash benchmarks/bench_micro_tokens.sh [WORKDIR] [ROUNDS]
# Needs build/ (scripts/build.sh), mpirun (the model is written by
# bench_train_parallel) and ../shared/data (the tokenizer and the OASST sample).
set -u -o pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-/tmp/srlm-bench-micro-tokens}
rounds=${2:-2}
bin=$root/build/srlm
tok=$root/../shared/data/llama2/tokenizer.model
trees=$root/../shared/data/oasst/oasst1_en_50_trees.jsonl
for f in "$bin" "$root/build/benchmarks/bench_train_parallel" "$tok" "$trees"; do
    [ -e "$f" ] || { echo "bench_micro_tokens: $f is missing" >&2; exit 2; }
done
mkdir -p "$work" || exit 2
mpirun=(mpirun -np 1)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)

# the model (and its tokenizer) through bench_train_parallel's set-up: one step
if [ ! -f "$work/model/tokenizer.model" ]; then
    "${mpirun[@]}" "$root/build/benchmarks/bench_train_parallel" "$work" 1 1 1 "$tok" > "$work/setup.log" 2>&1 ||
        { echo "bench_micro_tokens: model set-up failed: $(tail -3 "$work/setup.log")" >&2; exit 1; }
fi
# the data: every ranked first-turn reply of the sample as an SFT example
if [ ! -f "$work/sft.jsonl" ]; then
    "$bin" data oasst --out "$work/oasst" "$trees" 2> "$work/oasst.log" || { cat "$work/oasst.log" >&2; exit 1; }
    python3 - "$work/oasst/eft_groups.jsonl" "$work/sft.jsonl" <<'PY' || exit 1
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        g = json.loads(line)
        for r in g["replies"]:
            out.write(json.dumps({"prompt": g["prompt"], "response": r["text"]}) + "\n")
PY
fi

run() { # NAME overrides...
    local name=$1; shift
    rm -rf "$work/runs/$name"
    cat > "$work/$name.yaml" <<Y
run: {name: $name, out_dir: $work/runs}
model: {path: $work/model, dtype: float32}
backend: {threads: $(nproc)}
train:
  sft: {data: $work/sft.jsonl, batch_size: 16, epochs: 1, dropout: 0.0, max_seq_len: 1024,
        checkpoint_every: 100000, lr: 0.0001}
Y
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/$name.rss" "$bin" sft "$work/$name.yaml" --quiet "$@" 2> "$work/$name.log" ||
        { echo "bench_micro_tokens: $name failed: $(tail -2 "$work/$name.log")" >&2; exit 1; }
    t1=$(date +%s.%N)
    local tokens
    tokens=$(awk -F'"tokens": ' '{ split($2, a, ","); s += a[1] } END { print s }' "$work/runs/$name/sft/metrics.jsonl")
    awk -v n="$name" -v a="$t0" -v b="$t1" -v t="$tokens" -v r="$(cat "$work/$name.rss")" \
        'BEGIN { printf "%-4s %8.1f s %8.0f tokens/s %7.0f MB peak RSS\n", n, b - a, t / (b - a), r / 1024 }'
}
[ -x /usr/bin/time ] || { echo "bench_micro_tokens: needs GNU time (apt-get install time)" >&2; exit 2; }
for r in $(seq 1 "$rounds"); do
    run A train.sft.micro_batch_size=1
    run B train.sft.micro_batch_size=16 train.sft.micro_batch_tokens=1024
done
grep -h "sft: .* records" "$work/A.log" | head -1
grep -h "micro-batches" "$work/A.log" "$work/B.log"
