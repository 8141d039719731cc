#!/usr/bin/env bash
# MPI_RANKS: 4
# A failure on a non-zero rank ends the whole job promptly with that rank's
# message: rank 2 fails while loading (an injected fault), the other three
# would otherwise wait in a collective forever. Also a failure at a later step.
set -u
bin="$SRLM_BIN"
work="$SRLM_TMP/no_hang"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
printf '{"prompt": "a", "response": "b c"}\n{"prompt": "d", "response": "e f"}\n' > sft.jsonl
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs}
model: {path: $SRLM_FIXTURES/llama/tiny-gqa}
parallel: {tp: 2}
backend: {threads: 1}
train: {sft: {data: $work/sft.jsonl, batch_size: 2, epochs: 50, dropout: 0.0}}
Y
for point in "sft:0:2:load" "sft:3:1:step"; do
  start=$(date +%s)
  out=$(SRLM_FAULT=$point timeout 120 $MPIEXEC -np 4 $MPIEXEC_FLAGS "$bin" sft sft.yaml --quiet 2>&1); rc=$?
  took=$(( $(date +%s) - start ))
  rank=$(cut -d: -f3 <<< "$point")
  echo "fault $point: exit $rc after ${took}s"
  [ $rc = 124 ] && fail "fault $point: the job hung (killed by timeout)"
  [ $rc = 0 ] && fail "fault $point: the job reported success"
  grep -q "\[rank $rank\] srlm sft: error: injected fault at $point" <<< "$out" \
    || fail "fault $point: rank $rank's message is missing: $out"
  [ $took -le 60 ] || fail "fault $point: took ${took}s to exit"
done
# a rank that hangs (SIGSTOP-like: it just stops making progress) is ended by its
# watchdog within run.watchdog_s; the others, waiting in a collective, too
start=$(date +%s)
out=$(SRLM_FAULT=sft:2:1:step:hang timeout 120 $MPIEXEC -np 4 $MPIEXEC_FLAGS "$bin" sft sft.yaml run.watchdog_s=3 \
        --quiet 2>&1); rc=$?
took=$(( $(date +%s) - start ))
echo "hang on rank 1 at step 2: exit $rc after ${took}s"
[ $rc = 124 ] && fail "the hung job was not ended by the watchdog"
[ $rc = 0 ] && fail "the hung job reported success"
grep -q "\[rank 1\] srlm: watchdog: no progress for" <<< "$out" || fail "rank 1's watchdog message is missing: $out"
[ $took -le 60 ] || fail "the watchdog took ${took}s"
[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
