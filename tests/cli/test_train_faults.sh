#!/usr/bin/env bash
# srlm sft under damaged checkpoints and loss spikes, on the tiny-gqa fixture model:
#  - checkpoint integrity (train/step-N/manifest.json: size + sha256 of every file):
#    a flipped byte in the newest checkpoint's model.safetensors, a truncated
#    optimizer state file, a deleted manifest, and every checkpoint damaged: each
#    rerun warns naming the file and what differs, falls back to the next older
#    checkpoint (or the start), and ends with the weights and metrics of an
#    uninterrupted run, bitwise;
#  - loss spikes (train.sft.loss_spike_factor): after 12 good steps the data file
#    is swapped for nonsense of the same shape, so the next steps' loss is far
#    above the running mean of the last 4 good steps: a warning names the step,
#    the loss and the threshold; the spiking step changes neither the weights nor
#    the Adam moments; the running mean and the count of bad steps survive a
#    resume; after max_bad_steps (3) bad steps in a row the run stops (exit 1)
#    with the last good checkpoint the newest.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/train_faults"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG

cat > good.jsonl <<'D'
{"prompt": "Count to three.", "response": "one two three"}
{"prompt": "Say the first letters.", "response": "a b c d"}
{"prompt": "Name a color.", "response": "blue"}
{"prompt": "Capital of France?", "response": "Paris"}
{"prompt": "What do cats say?", "response": "meow"}
{"prompt": "Two plus two?", "response": "four"}
D
cp good.jsonl sft.jsonl
cat > sft.yaml <<Y
run: {name: ref, out_dir: $work/runs, seed: 3, watchdog_s: 0}
model: {path: $model, dtype: float32}
backend: {threads: 1}
train:
  sft: {data: $work/sft.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 4, micro_batch_size: 2,
        epochs: 10, dropout: 0.1, checkpoint_every: 4, keep_last_n: 3, warmup_steps: 2}
Y
# 15 steps; checkpoints every 4 steps, 3 kept
"$bin" sft sft.yaml --quiet 2> ref.log || fail "the uninterrupted run exited $? ($(why ref.log))"
ref=runs/ref/sft
m=$ref/train/step-00000015/manifest.json
[ -f "$m" ] || fail "no manifest.json in the final checkpoint"
for f in model/model.safetensors model/config.json trainer-state-rank-0.safetensors; do
  sum=$(sha256sum "$ref/train/step-00000015/$f" | cut -d' ' -f1)
  grep -q "\"path\": \"$f\", \"bytes\": $(stat -c %s "$ref/train/step-00000015/$f"), \"sha256\": \"$sum\"" "$m" \
    || fail "the manifest's entry of $f disagrees with sha256sum/stat: $(grep "$f" "$m")"
done

same_as_ref() { # NAME WHAT
  cmp -s "$ref/model/model.safetensors" "runs/$1/sft/model/model.safetensors" \
    || fail "$2: the final weights differ from the uninterrupted run's"
  diff <(sed 's/"time_s": [^,}]*//' "$ref/metrics.jsonl") <(sed 's/"time_s": [^,}]*//' "runs/$1/sft/metrics.jsonl") \
    > /dev/null || fail "$2: metrics.jsonl differs from the uninterrupted run's"
}
# damaged NAME WHAT WANT_RESUME NEEDLE... -- damage commands run in runs/NAME/sft/train
damaged() {
  local name=$1 what=$2 resume=$3; shift 3
  local needles=()
  while [ "$1" != -- ]; do needles+=("$1"); shift; done
  shift
  "$bin" sft sft.yaml run.name="$name" --quiet --stop-after 9 2>/dev/null
  [ $? = 75 ] || fail "$what: --stop-after 9 did not exit 75"
  [ "$(ls "runs/$name/sft/train" | tr '\n' ' ')" = "step-00000004 step-00000008 step-00000009 " ] \
    || fail "$what: want checkpoints 4, 8, 9: $(ls "runs/$name/sft/train")"
  (cd "runs/$name/sft/train" && eval "$*")
  "$bin" sft sft.yaml run.name="$name" --quiet > "$name.log" 2>&1 || fail "$what: the rerun exited $? ($(why "$name.log"))"
  for n in "${needles[@]}"; do
    grep -qF -- "$n" "$name.log" || fail "$what: the log lacks '$n': $(grep warning "$name.log")"
  done
  if [ "$resume" = start ]; then
    grep -q "resuming from" "$name.log" && fail "$what: resumed although no checkpoint is good"
  else
    grep -q "resuming from step $resume of 15" "$name.log" || fail "$what: did not resume from step $resume: $(grep -m1 resum "$name.log")"
  fi
  same_as_ref "$name" "$what"
  echo "$what: $(grep -m1 warning "$name.log" | sed 's/.*is not used: //')"
}

# 1. one byte of the newest checkpoint's weights changed (the same size)
damaged flip "a flipped byte in model.safetensors" 8 \
  "checkpoint $work/runs/flip/sft/train/step-00000009 is not used: model/model.safetensors: sha256" \
  "the file was changed or corrupted" "trying the next older checkpoint, step 8" -- \
  'b=$(od -An -tu1 -j 300000 -N1 step-00000009/model/model.safetensors | tr -d " ");
   printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of=step-00000009/model/model.safetensors bs=1 seek=300000 conv=notrunc status=none'
# 2. the optimizer state file of the newest checkpoint cut short
damaged trunc "a truncated trainer-state file" 8 \
  "step-00000009 is not used: trainer-state-rank-0.safetensors has" "the manifest says" "(truncated or overwritten)" -- \
  'truncate -s -1000 step-00000009/trainer-state-rank-0.safetensors'
# 3. the newest checkpoint's manifest deleted (as if the save died just before writing it)
damaged nomanifest "a deleted manifest" 8 \
  "step-00000009 is not used: manifest.json is missing" -- 'rm step-00000009/manifest.json'
# 4. every checkpoint damaged: start from the beginning
damaged none "every checkpoint damaged" start \
  "step-00000004 is not used: model/config.json is missing" "no usable checkpoint left: starting from the beginning" -- \
  'rm step-00000009/manifest.json; echo x >> step-00000008/model/config.json; rm step-00000004/model/config.json'
ls runs/none/sft/train | grep -q 'step-00000004\|step-00000009' && fail "rejected checkpoints were kept"

# ---- loss spikes ----
cat > nonsense.jsonl <<'D'
{"prompt": "Count to three.", "response": "zq xv jk wq pz xj qk vz jw kx qz vj xw zk qj wx"}
{"prompt": "Say the first letters.", "response": "xq zj vk qw jz kv wx zq jx vq kz xj wv qk zx jq"}
{"prompt": "Name a color.", "response": "jv qx zw kj xz vq jw qz kx wj zv xk qj vw jz xq"}
{"prompt": "Capital of France?", "response": "wz kq jx vz qw xj kz vw jq zx wk qv xz jk wv zq"}
{"prompt": "What do cats say?", "response": "kx wj qz vx zj kq wx jv qx zw kj xv qw jz vk xq"}
{"prompt": "Two plus two?", "response": "vj zk xq wz jx qv kw zj xk vq jw zx qk wv xj kz"}
D
spike=(run.name=spike train.sft.epochs=16 train.sft.loss_spike_factor=2 train.sft.loss_spike_window=4 --quiet)
cp good.jsonl sft.jsonl
"$bin" sft sft.yaml "${spike[@]}" --stop-after 12 > spike1.log 2>&1
[ $? = 75 ] || fail "spikes: the first 12 steps did not stop with 75: $(why spike1.log)"
grep -q "loss spike" spike1.log && fail "spikes: a spike was found in normal training: $(grep spike spike1.log)"
cp nonsense.jsonl sft.jsonl # same prompts, count and order; nonsense responses
"$bin" sft sft.yaml "${spike[@]}" --stop-after 1 > spike2.log 2>&1
[ $? = 75 ] || fail "spikes: step 13 did not stop with 75: $(why spike2.log)"
grep -q "sft step 13: loss spike: loss [0-9.]* is above the threshold [0-9.]* (train.sft.loss_spike_factor 2 x [0-9.]*, the mean loss of the last 4 good steps): step skipped, weights unchanged (1 bad in a row, limit 3)" spike2.log \
  || fail "spikes: no warning for step 13: $(cat spike2.log)"
grep -q '"step": 13, .*"skipped": true.*"loss_spike": true' runs/spike/sft/metrics.jsonl \
  || fail "spikes: metrics.jsonl does not mark step 13 as a skipped loss spike"
t=runs/spike/sft/train
cmp -s $t/step-00000012/model/model.safetensors $t/step-00000013/model/model.safetensors \
  || fail "spikes: the spiking step 13 changed the weights"
moments() { # the data area of a trainer-state file (after its 8-byte length and JSON header)
  local hl; hl=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  tail -c +$((9 + hl)) "$1"
}
cmp -s <(moments $t/step-00000012/trainer-state-rank-0.safetensors) <(moments $t/step-00000013/trainer-state-rank-0.safetensors) \
  || fail "spikes: the spiking step 13 changed the Adam moments"
"$bin" sft sft.yaml "${spike[@]}" > spike3.log 2>&1; rc=$?
[ $rc = 1 ] || fail "spikes: the run should stop with exit 1 after 3 bad steps, got $rc"
grep -q "sft step 15: loss spike.*(3 bad in a row, limit 3)" spike3.log || fail "spikes: the bad-step count did not survive the resume: $(grep warning spike3.log)"
grep -q "3 bad (non-finite or loss spike) steps in a row (limit train.sft.max_bad_steps = 3); stopped; the last good checkpoint is the newest" spike3.log \
  || fail "spikes: no stop message: $(why spike3.log)"
[ "$(ls $t | tr '\n' ' ')" = "step-00000008 step-00000012 step-00000013 " ] \
  || fail "spikes: want checkpoints 8, 12, 13 (13 = 12's weights) after the stop: $(ls $t)"
[ -e runs/spike/sft/model ] && fail "spikes: a stopped run wrote a final model"
echo "spikes: $(grep -m1 'loss spike' spike2.log | sed 's/.*: loss spike: //')"
cp good.jsonl sft.jsonl

[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
