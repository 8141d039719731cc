#!/usr/bin/env bash
# Checkpoint manifests across ranks (dp = 2): both ranks hash their share of
# the files when a checkpoint is saved and when a run resumes, and reach one
# verdict. A flipped byte in rank 0's optimizer state file of the newest
# checkpoint (the 4th of the 5 sorted files: rank 1 hashes it, so rank 0 learns
# of it only through the collective verdict): the rerun warns once (rank 0),
# both ranks fall back to the older checkpoint, and the final weights equal an
# uninterrupted dp = 2 run's, bitwise.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/train_ckpt_integrity"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cp "$SRLM_FIXTURES/commands/sft.jsonl" sft.jsonl
cat > sft.yaml <<Y
run: {name: ref, out_dir: $work/runs, seed: 2, watchdog_s: 0}
model: {path: $model, dtype: float32}
backend: {threads: 1}
parallel: {dp: 2}
train: {sft: {data: $work/sft.jsonl, lr: 0.002, lr_min: 0.0002, batch_size: 4, epochs: 8, dropout: 0.0,
              checkpoint_every: 3}}
Y
mpi() { $MPIEXEC -np 2 $MPIEXEC_FLAGS "$bin" "$@"; }
mpi sft sft.yaml --quiet > ref.log 2>&1 || fail "the uninterrupted dp=2 run failed: $(tail -2 ref.log)"
mpi sft sft.yaml run.name=k --quiet --stop-after 5 > k1.log 2>&1
[ $? = 75 ] || fail "--stop-after 5 did not exit 75: $(tail -2 k1.log)"
t=runs/k/sft/train
[ "$(ls $t | tr '\n' ' ')" = "step-00000003 step-00000005 " ] || fail "want checkpoints 3 and 5: $(ls $t)"
grep -q '"path": "trainer-state-rank-1.safetensors"' $t/step-00000005/manifest.json \
  || fail "the manifest does not list rank 1's state file"
f=$t/step-00000005/trainer-state-rank-0.safetensors
off=$(($(stat -c %s $f) - 5))
b=$(od -An -tu1 -j $off -N1 $f | tr -d ' ')
printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of=$f bs=1 seek=$off conv=notrunc status=none
mpi sft sft.yaml run.name=k --quiet > k2.log 2>&1 || fail "the rerun failed: $(tail -2 k2.log)"
n=$(grep -c "step-00000005 is not used: trainer-state-rank-0.safetensors: sha256" k2.log)
[ "$n" = 1 ] || fail "want the warning once (rank 0), found $n: $(grep warning k2.log)"
grep -q "resuming from step 3 of 8" k2.log || fail "did not resume from step 3: $(grep -m1 resum k2.log)"
cmp -s runs/ref/sft/model/model.safetensors runs/k/sft/model/model.safetensors \
  && echo "dp=2: fell back to step 3; final weights equal the uninterrupted run's" \
  || fail "the final weights differ from the uninterrupted dp=2 run's"
[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
