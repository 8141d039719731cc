#!/usr/bin/env bash
# Scaling benchmarks, end to end (benchmarks/scaling/README.md):
#
#   bash benchmarks/scaling/run.sh [--build DIR] [--out DIR] [--repeats N] [--dpo] [--quick]
#
# Builds what it needs in DIR (default build/; configured Release if missing),
# then on this machine: training-step and generation-phase strong and weak
# scaling at 1, 2 and 4 MPI ranks (1 thread per rank; 1 rank x nproc threads as
# a reference), the collectives sweep at 2 and 4 ranks, the calibration of
# srlm plan's cluster.* keys, measured-vs-modelled tables, the Llama-2-70B
# extrapolation and two SVG plots, all in OUT (default
# benchmarks/scaling/results). About 5 minutes on a quiet 2-core machine (< 10).
# --dpo: the training step is a DPO step (pairs of 2 x 256 tokens) instead of SFT.
# --quick: tiny sizes, 1 repeat, OUT defaults to BUILD/scaling-work/results-quick
# (a smoke test of the whole chain in about a minute; its numbers mean nothing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
OUT=""
REPEATS=3
QUICK=0
KIND=sft
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2"); shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --dpo) KIND=dpo; shift ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
WORK=$BUILD/scaling-work
if [ -z "$OUT" ]; then
    if [ $QUICK = 1 ]; then OUT=$WORK/results-quick; else OUT=$ROOT/benchmarks/scaling/results; fi
fi
TOKENIZER=$ROOT/tests/fixtures/llama/tiny-gqa/tokenizer.model
NPROC=$(nproc)

# ---- sizes ----
if [ $QUICK = 1 ]; then
    REPEATS=1
    STEPS=3; TRAIN_BATCH=4; TRAIN_WEAK_PER_RANK=2
    GEN_PROMPTS=8; GEN_WEAK_PER_RANK=2; GEN_SAMPLES=2; GEN_NEW=8; GEN_PER_ITEM=1
    COMM_MAX=65536
else
    STEPS=6; TRAIN_BATCH=8; TRAIN_WEAK_PER_RANK=4                 # sequences of 256 tokens
    GEN_PROMPTS=32; GEN_WEAK_PER_RANK=16; GEN_SAMPLES=4; GEN_NEW=48; GEN_PER_ITEM=2
    COMM_MAX=16777216
fi

# ---- build ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSRLM_CUDA=OFF >/dev/null
fi
if ! cmake --build "$BUILD" -j"$NPROC" --target srlm scaling_train scaling_gen scaling_comm scaling_report \
        > "$BUILD/scaling-build.log" 2>&1; then
    tail -30 "$BUILD/scaling-build.log" >&2
    echo "run.sh: the build failed (log: $BUILD/scaling-build.log)" >&2
    exit 1
fi
B=$BUILD/benchmarks
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" | head -1)
if [ "$BUILD_TYPE" != Release ]; then
    echo "run.sh: warning: $BUILD is a '$BUILD_TYPE' build, not Release: the times will not be representative" >&2
fi
mkdir -p "$WORK/logs" "$OUT"
rm -f "$WORK"/logs/*.log

MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
MEAS=$OUT/measurements.jsonl
: > "$MEAS"

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
load1() { cut -d' ' -f1 /proc/loadavg; }

LOAD_BEFORE=$(load1)
if awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 0.5) }'; then
    echo "run.sh: warning: load average $LOAD_BEFORE before starting: the machine is not quiet," \
        "the numbers will be noisy" >&2
fi
T0=$(date +%s)

# run LOG NP THREADS PROGRAM ARGS...: one mpirun, its JSON lines appended to measurements.jsonl
run() {
    local log=$1 np=$2 threads=$3; shift 3
    local t
    t=$(date +%s.%N)
    if ! "${MPIRUN[@]}" -np "$np" -x OMP_NUM_THREADS="$threads" -x OPENBLAS_NUM_THREADS="$threads" "$@" \
            > "$WORK/logs/$log.out" 2> "$WORK/logs/$log.log"; then
        echo "run.sh: $log failed; its output:" >&2
        tail -20 "$WORK/logs/$log.log" >&2
        exit 1
    fi
    grep '^{' "$WORK/logs/$log.out" >> "$MEAS"
    awk -v name="$log" -v t0="$t" -v t1="$(date +%s.%N)" 'BEGIN { printf "  %-28s %6.1f s\n", name, t1 - t0 }'
}

echo "scaling benchmarks: $NPROC cores, repeats $REPEATS, results in $OUT (logs in $WORK/logs)"
for rep in $(seq 1 "$REPEATS"); do
    echo "repeat $rep/$REPEATS"
    for n in 1 2 4; do
        run "train-strong-n$n-r$rep" "$n" 1 "$B/scaling_train" "$WORK" "$TOKENIZER" strong "$TRAIN_BATCH" \
            "$STEPS" 1 "$KIND"
        run "train-weak-n$n-r$rep" "$n" 1 "$B/scaling_train" "$WORK" "$TOKENIZER" weak \
            $((TRAIN_WEAK_PER_RANK * n)) "$STEPS" 1 "$KIND"
        run "gen-strong-n$n-r$rep" "$n" 1 "$B/scaling_gen" "$WORK" "$TOKENIZER" strong "$GEN_PROMPTS" \
            "$GEN_SAMPLES" "$GEN_NEW" "$GEN_PER_ITEM" 1
        run "gen-weak-n$n-r$rep" "$n" 1 "$B/scaling_gen" "$WORK" "$TOKENIZER" weak $((GEN_WEAK_PER_RANK * n)) \
            "$GEN_SAMPLES" "$GEN_NEW" "$GEN_PER_ITEM" 1
    done
    # threads instead of ranks: the strong-scaling work on 1 rank x all cores
    run "train-threads-r$rep" 1 "$NPROC" "$B/scaling_train" "$WORK" "$TOKENIZER" threads "$TRAIN_BATCH" "$STEPS" \
        "$NPROC" "$KIND"
    run "gen-threads-r$rep" 1 "$NPROC" "$B/scaling_gen" "$WORK" "$TOKENIZER" threads "$GEN_PROMPTS" \
        "$GEN_SAMPLES" "$GEN_NEW" "$GEN_PER_ITEM" "$NPROC"
done
for n in 2 4; do
    run "comm-n$n" "$n" 1 "$B/scaling_comm" "$COMM_MAX" "$WORK/model"
done
LOAD_AFTER=$(load1)

# ---- the machine: every number is labelled with it ----
HOST=$(hostname -s 2>/dev/null || hostname)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
[ -n "$CPU" ] || CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
MEM_GIB=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
MPI_VERSION=$(mpirun --version 2>&1 | head -1)
CC_VERSION=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" | head -1)
CC_VERSION=$("${CC_VERSION:-cc}" --version 2>/dev/null | head -1 || true)
BLAS=$(ldd "$B/scaling_train" 2>/dev/null | grep -o 'lib[a-z]*blas[^ ]*' | head -1 || true)
GIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet 2>/dev/null || GIT="$GIT+uncommitted"
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
{
    printf '{"host": %s, "cpu": %s, "nproc": %d, "mem_gib": %s, "date": %s, ' "$(json_str "$HOST")" \
        "$(json_str "$CPU")" "$NPROC" "$MEM_GIB" "$(json_str "$DATE")"
    printf '"kernel": %s, "mpi": %s, "compiler": %s, "blas": %s, "git": %s, ' "$(json_str "$(uname -r)")" \
        "$(json_str "$MPI_VERSION")" "$(json_str "$CC_VERSION")" "$(json_str "$BLAS")" "$(json_str "$GIT")"
    printf '"build_type": %s, "mpirun": %s, "threads_per_rank": 1, "load_before": %s, "load_after": %s, "repeats": %d, ' \
        "$(json_str "$BUILD_TYPE")" "$(json_str "${MPIRUN[*]}")" "$LOAD_BEFORE" "$LOAD_AFTER" "$REPEATS"
    printf '"quick": %s, "seconds": %d}\n' "$([ $QUICK = 1 ] && echo true || echo false)" $(($(date +%s) - T0))
} > "$OUT/machine.json"

# ---- calibration, model, plots ----
"$B/scaling_report" "$OUT" "$WORK/model" "$ROOT/configs/llama2-70b.yaml" > "$WORK/logs/report.out"
CAL=$OUT/calibrated-$HOST.yaml
# the same calibration through the command line: srlm plan on the 2-rank benchmark
"$BUILD/srlm" plan "$CAL" "model.path=$WORK/model" train.$KIND.batch_size="$TRAIN_BATCH" \
    train.$KIND.micro_batch_size=2 train.$KIND.max_seq_len=256 train.$KIND.recompute=false train.$KIND.dropout=0 \
    generate.samples="$GEN_SAMPLES" generate.max_new_tokens="$GEN_NEW" \
    self_instruct.prompts_per_iteration="$GEN_PROMPTS" loop.prompts_per_item="$GEN_PER_ITEM" \
    --prompt-tokens 32 --nodes 1 --gpus-per-node 2 --gpu-mem 1024 > "$OUT/plan-calibrated-2ranks.txt"
echo
cat "$OUT/scaling.md"
echo
echo "done in $(($(date +%s) - T0)) s (load average $LOAD_BEFORE before, $LOAD_AFTER after): $OUT"
