#!/usr/bin/env bash
# The device-memory paths, without a GPU: backend cpu_guarded runs the CPU
# backend's ops on memory the host cannot touch (a host read or write of a
# weight, gradient, activation or logit dies with SIGSEGV) and says
# host_memory = 0, as the CUDA backend does. So srlm sft, dpo, generate and
# score and srlm run take exactly the paths a GPU run takes (the optimizer through
# the ops, the next tokens sampled where the logits are by the backend's sample
# op where cpu downloads them and samples on the host, checkpoints through
# download), and since the arithmetic is the CPU backend's, every output must be
# bit-identical to backend cpu.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/device_memory_sh"
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG
same() { # same FILE_A FILE_B WHAT: bit-identical, else a failure naming WHAT
  cmp -s "$1" "$2" && echo "$3: identical on cpu and cpu_guarded" || fail "$3 differs between cpu and cpu_guarded"
}
strip_time() { sed 's/"time_s": [^,}]*//; s/"tokens_per_s": [^,}]*//' "$1"; }

cp "$SRLM_FIXTURES/commands/sft.jsonl" sft.jsonl
cp "$SRLM_FIXTURES/commands/pairs.jsonl" pairs.jsonl
cat > train.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 3}
model: {path: $model, dtype: float32}
backend: {threads: 1}
train:
  sft: {data: $work/sft.jsonl, lr: 0.003, batch_size: 2, micro_batch_size: 1, epochs: 3, dropout: 0.1,
        checkpoint_every: 2, warmup_steps: 1}
  dpo: {data: $work/pairs.jsonl, lr: 0.001, batch_size: 2, micro_batch_size: 1, epochs: 2, beta: 0.1}
Y

for be in cpu cpu_guarded; do
  "$bin" sft train.yaml --quiet run.name=$be backend.name=$be 2> sft_$be.log \
    || fail "sft on $be exited $? ($(why sft_$be.log))"
  "$bin" dpo train.yaml --quiet run.name=$be backend.name=$be model.path=runs/$be/sft/model 2> dpo_$be.log \
    || fail "dpo on $be exited $? ($(why dpo_$be.log))"
done
same runs/cpu/sft/model/model.safetensors runs/cpu_guarded/sft/model/model.safetensors "sft weights"
same <(strip_time runs/cpu/sft/metrics.jsonl) <(strip_time runs/cpu_guarded/sft/metrics.jsonl) "sft metrics"
same runs/cpu/dpo/model/model.safetensors runs/cpu_guarded/dpo/model/model.safetensors "dpo weights"
same runs/cpu/dpo/reference_logps.jsonl runs/cpu_guarded/dpo/reference_logps.jsonl "dpo reference log-probs"

# resume on cpu_guarded: stop after 3 steps, rerun: the weights of one go
"$bin" sft train.yaml --quiet run.name=resumed backend.name=cpu_guarded --stop-after 3 2>/dev/null
rc=$?; [ $rc = 75 ] || fail "--stop-after on cpu_guarded should exit 75, got $rc"
"$bin" sft train.yaml --quiet run.name=resumed backend.name=cpu_guarded 2>/dev/null || fail "resumed sft failed"
same runs/cpu/sft/model/model.safetensors runs/resumed/sft/model/model.safetensors "resumed sft weights"

cat > prompts.jsonl <<'D'
{"prompt": "Count to three."}
{"prompt": "Name a color."}
D
for be in cpu cpu_guarded; do
  "$bin" generate --backend $be --model runs/cpu/dpo/model --input prompts.jsonl --output gen_$be.jsonl \
    --samples 3 --temperature 0.8 --top-p 0.9 --max-new-tokens 12 --seed 5 --batch 4 --threads 1 2> gen_$be.log \
    || fail "generate on $be exited $? ($(why gen_$be.log))"
  "$bin" score --backend $be --model runs/cpu/dpo/model --input sft.jsonl --output score_$be.jsonl --threads 1 \
    2> score_$be.log || fail "score on $be exited $? ($(why score_$be.log))"
done
[ "$(wc -l < gen_cpu.jsonl)" = 6 ] || fail "generate should write 6 candidates, wrote $(wc -l < gen_cpu.jsonl)"
same gen_cpu.jsonl gen_cpu_guarded.jsonl "generated candidates"
# cpu_guarded records decode steps (a tape of its ops, as CUDA records graphs)
# and replays them; the plain CPU backend runs every step op by op
grep -Eq " [1-9][0-9]* decode steps replayed" gen_cpu_guarded.log ||
  fail "generate on cpu_guarded replayed no recorded decode step ($(grep 'decode steps' gen_cpu_guarded.log))"
grep -q " 0 decode steps replayed (0 recordings)" gen_cpu.log || fail "generate on cpu claims recorded steps"
same score_cpu.jsonl score_cpu_guarded.jsonl "scores"

# one iteration of the loop (generation, judging, DPO, evaluation) through srlm run
loop_small_config run.yaml "$work/loop" "$model"
for be in cpu cpu_guarded; do
  "$bin" run run.yaml --quiet run.name=$be backend.name=$be > run_$be.log 2>&1 \
    || fail "srlm run on $be exited $? ($(why run_$be.log))"
done
same loop/cpu/models/M2/model.safetensors loop/cpu_guarded/models/M2/model.safetensors "srlm run's M2"
same <(cat loop/cpu/iter-1/judgements/*.jsonl) <(cat loop/cpu_guarded/iter-1/judgements/*.jsonl) "srlm run's judgements"

# the same loop with backend.dtype bfloat16 (generation, judging and DPO on a bf16 model)
for be in cpu cpu_guarded; do
  "$bin" run run.yaml --quiet run.name=${be}_bf16 backend.name=$be backend.dtype=bfloat16 > run_${be}_bf16.log 2>&1 \
    || fail "bf16 srlm run on $be exited $? ($(why run_${be}_bf16.log))"
done
same loop/cpu_bf16/models/M2/model.safetensors loop/cpu_guarded_bf16/models/M2/model.safetensors "bf16 srlm run's M2"
same <(cat loop/cpu_bf16/iter-1/candidates/*.jsonl) <(cat loop/cpu_guarded_bf16/iter-1/candidates/*.jsonl) \
  "bf16 srlm run's candidates"
[ "$(cat loop/cpu_bf16/iter-1/candidates/*.jsonl 2>/dev/null | wc -l)" -gt 0 ] \
  || fail "the bf16 srlm run wrote no candidates (nothing was compared)"

"$bin" generate --backend gpu --model "$model" --prompt hi 2> bad.log; rc=$?
[ $rc = 2 ] && grep -q 'backend "gpu": expected cpu, cuda or cpu_guarded' bad.log \
  || fail "an unknown --backend should exit 2 naming the choices (rc $rc: $(cat bad.log))"

[ $fails = 0 ] && echo "device memory: all checks passed"
exit $((fails > 0))
