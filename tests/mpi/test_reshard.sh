#!/usr/bin/env bash
# Resuming a run with another dp reshards the ZeRO-1 optimizer state: 3 steps at
# dp = 2, stop, resume at dp = 1 (and the other way round); the result matches
# an uninterrupted dp = 1 run (compared through the models' log-probs on the
# data: not bitwise, since the batch splits differ, but far closer than either
# is to the starting model). Run c does the first with backend.dtype bfloat16.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/reshard"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cp "$SRLM_FIXTURES/commands/sft.jsonl" sft.jsonl
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 2}
model: {path: $model, dtype: float32}
backend: {threads: 1}
train: {sft: {data: $work/sft.jsonl, lr: 0.002, lr_min: 0.0002, batch_size: 4, epochs: 8, dropout: 0.0,
              checkpoint_every: 100}}
Y
mpi() { $MPIEXEC -np "$1" $MPIEXEC_FLAGS "$bin" "${@:2}"; }
"$bin" sft sft.yaml run.name=ref --quiet 2>/dev/null || fail "reference run failed"
mpi 2 sft sft.yaml run.name=a parallel.dp=2 --quiet --stop-after 3 >/dev/null 2>&1; rc=$?
[ $rc = 75 ] || fail "dp=2 --stop-after 3 exited $rc"
out=$("$bin" sft sft.yaml run.name=a parallel.dp=1 --quiet 2>&1) || fail "resume at dp=1 failed: $out"
grep -q "resharded from dp=2 to dp=1" <<< "$out" || fail "no reshard message: $out"
"$bin" sft sft.yaml run.name=b parallel.dp=1 --quiet --stop-after 3 >/dev/null 2>&1
mpi 2 sft sft.yaml run.name=b parallel.dp=2 --quiet >/dev/null 2>&1 || fail "resume at dp=2 failed"
# the same with backend.dtype bfloat16: the fp32 master weights are sharded like
# the moments, and a checkpoint holds them gathered
"$bin" sft sft.yaml run.name=ref16 backend.dtype=bfloat16 --quiet 2>/dev/null || fail "bf16 reference run failed"
mpi 2 sft sft.yaml run.name=c parallel.dp=2 backend.dtype=bfloat16 --quiet --stop-after 3 >/dev/null 2>&1; rc=$?
[ $rc = 75 ] || fail "bf16 dp=2 --stop-after 3 exited $rc"
"$bin" sft sft.yaml run.name=c parallel.dp=1 backend.dtype=bfloat16 --quiet 2>/dev/null || fail "bf16 resume at dp=1 failed"
logps() { "$bin" score --model "$1" --input sft.jsonl | sed 's/.*"logp": \([^,]*\),.*/\1/'; }
for r in a b c; do
  ref=ref; [ $r = c ] && ref=ref16
  paste -d' ' <(logps runs/$r/sft/model) <(logps runs/$ref/sft/model) <(logps "$model") |
    awk -v r=$r '{ d = $1 - $2; if (d < 0) d = -d; m = $2 - $3; if (m < 0) m = -m; if (d > dmax) dmax = d; mv += m; n++ }
         END { printf "run %s: max |logp - logp(ref)| %.2e, mean change from start %.2f\n", r, dmax, mv / n;
               exit !(dmax < 1e-2 && mv / n > 1) }' || fail "run $r after resharding differs from the dp=1 run"
done
[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
