#!/usr/bin/env bash
# backend.dtype bfloat16 end to end on the CPU backend (the CUDA backend's twin)
# and the tiny-gqa fixture model:
#  - srlm sft learns in bf16, and its first step's loss is within bf16 error of
#    the float32 run's (the same batch: 1e-2 relative, where bf16 rounds at 4e-3);
#  - k steps + stop + resume + the rest give bitwise the weights of one run: the
#    checkpoints hold the fp32 master weights, not their bf16 rounding;
#  - the same run on cpu_guarded (the device-memory paths) gives the same bits;
#  - srlm dpo in bf16 raises the held-out margin;
#  - srlm score --dtype bfloat16 agrees with float32 within bf16 error, and
#    srlm generate --dtype bfloat16 runs;
#  - a bad backend.dtype or --dtype exits 2 naming the choices.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/train_bf16"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG
loss_of() { sed -n "${2}p" "$1" | sed 's/.*"loss": \([^,]*\),.*/\1/'; }

cp "$SRLM_FIXTURES/commands/sft.jsonl" sft.jsonl
cp "$SRLM_FIXTURES/commands/pairs.jsonl" pairs.jsonl
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 3}
model: {path: $model, dtype: float32}
backend: {threads: 2, dtype: bfloat16}
train:
  sft: {data: $work/sft.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 2, micro_batch_size: 2, epochs: 12,
        dropout: 0.1, checkpoint_every: 3, warmup_steps: 2}
  dpo: {data: $work/pairs.jsonl, lr: 0.001, batch_size: 2, micro_batch_size: 2, epochs: 4, beta: 0.1}
Y

# ---- learns, and starts where float32 starts ----
"$bin" sft sft.yaml --quiet 2> sft.log || fail "bf16 sft exited $? ($(why sft.log))"
"$bin" sft sft.yaml --quiet run.name=f32 backend.dtype=float32 train.sft.epochs=1 2> f32.log \
  || fail "float32 sft exited $? ($(why f32.log))"
first=$(loss_of runs/t/sft/metrics.jsonl 1) first32=$(loss_of runs/f32/sft/metrics.jsonl 1)
last=$(tail -1 runs/t/sft/metrics.jsonl | sed 's/.*"loss": \([^,]*\),.*/\1/')
echo "bf16 sft: loss $first -> $last (float32 first step $first32)"
awk -v a="$first" -v b="$first32" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-2 * b && d > 0) }' \
  || fail "first-step loss in bf16 ($first) is not within 1e-2 relative of float32's ($first32), or equal to it"
awk -v a="$last" -v b="$first" 'BEGIN { exit !(a < b / 3) }' || fail "bf16 sft did not learn: $first -> $last"
grep -Eq '"torch_dtype":[[:space:]]*"float32"' runs/t/sft/model/config.json || fail "the final model is not saved as model.dtype"

# ---- resume: bitwise the weights of one go ----
mv runs/t/sft full
"$bin" sft sft.yaml --quiet --stop-after 4 2>/dev/null; rc=$?
[ $rc = 75 ] || fail "--stop-after 4 should exit 75, got $rc"
"$bin" sft sft.yaml --quiet 2>/dev/null || fail "resumed bf16 sft failed"
cmp -s full/model/model.safetensors runs/t/sft/model/model.safetensors \
  && echo "resume: bitwise identical weights" || fail "resumed bf16 weights differ from an uninterrupted run"

# ---- device-memory paths: the same bits ----
"$bin" sft sft.yaml --quiet run.name=g backend.name=cpu_guarded 2> g.log || fail "cpu_guarded bf16 sft exited $?"
cmp -s full/model/model.safetensors runs/g/sft/model/model.safetensors \
  && echo "cpu_guarded: bitwise identical weights" || fail "bf16 weights differ between cpu and cpu_guarded"

# ---- DPO in bf16 raises the margin of the chosen responses ----
sed 's/"chosen": \("[^"]*"\), "rejected": "[^"]*"/"response": \1/' pairs.jsonl > chosen.jsonl
sed 's/"chosen": "[^"]*", "rejected": \("[^"]*"\)/"response": \1/' pairs.jsonl > rejected.jsonl
margin() {
  paste -d' ' <("$bin" score --model "$1" --input chosen.jsonl --dtype bfloat16 | sed 's/.*"logp": \([^,]*\),.*/\1/') \
              <("$bin" score --model "$1" --input rejected.jsonl --dtype bfloat16 | sed 's/.*"logp": \([^,]*\),.*/\1/') |
    awk '{ s += $1 - $2; n++ } END { printf "%.4f", s / n }'
}
"$bin" dpo sft.yaml --quiet model.path=full/model 2> dpo.log || fail "bf16 dpo exited $? ($(why dpo.log))"
before=$(margin full/model) after=$(margin runs/t/dpo/model)
echo "bf16 dpo: margin $before -> $after"
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b > a + 0.5) }' || fail "bf16 DPO did not raise the margin ($before -> $after)"

# ---- score and generate in bf16 ----
# bf16 logits of magnitude 8..16 are 2^-4 apart: a token's log-prob may move by
# about half that, so the bound is 0.03 nats per response token
lp() { sed 's/.*"logp": \([^,]*\), "n_tokens": \([0-9]*\),.*/\1 \2/'; }
paste -d' ' <("$bin" score --model full/model --input sft.jsonl --dtype bfloat16 | lp) \
            <("$bin" score --model full/model --input sft.jsonl | lp) |
  awk '{ d = $1 - $3; if (d < 0) d = -d; r = d / $2; if (r > m) m = r; if (d > 0) nz++ }
       END { printf "score: bf16 vs float32 at most %.2e nats per token\n", m; exit !(m < 3e-2 && nz > 0) }' \
  || fail "score --dtype bfloat16 is not within bf16 error of float32 (or identical to it)"
"$bin" generate --model full/model --input sft.jsonl --output gen.jsonl --dtype bfloat16 --max-new-tokens 8 \
  2> gen.log || fail "generate --dtype bfloat16 exited $? ($(why gen.log))"
[ "$(wc -l < gen.jsonl)" = "$(wc -l < sft.jsonl)" ] || fail "generate --dtype bfloat16 wrote $(wc -l < gen.jsonl) lines"

# ---- bad values ----
expect() { # expect CODE NEEDLE -- command...
  local code=$1 needle=$2; shift 3
  local out; out=$("$@" 2>&1); local rc=$?
  [ $rc = "$code" ] || fail "$*: exit $rc, want $code ($out)"
  grep -qF -- "$needle" <<< "$out" || fail "$*: message lacks '$needle': $out"
}
expect 2 "backend.dtype" -- "$bin" sft sft.yaml backend.dtype=float16 run.name=bad1
expect 2 "--dtype: dtype \"fp8\": expected float32 or bfloat16" -- "$bin" score --model full/model --input sft.jsonl --dtype fp8

[ $fails = 0 ] && echo "bf16 training: all checks passed"
exit $((fails > 0))
