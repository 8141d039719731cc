#!/usr/bin/env bash
# backend.name: cuda in a config: where there is no CUDA backend to be had, srlm
# sft, dpo and run refuse cleanly (exit 2, one "backend.name: cuda: ..."
# message, no crash), for either reason: a build without the CUDA backend, or no
# GPU. run starts with generation (loop.skip_sft), so its refusal comes from the
# model session the loop opens, before anything is generated on the CPU. On a
# machine with a GPU (nvidia-smi lists one) and a CUDA build, all three must
# simply succeed.
set -u
: "${SRLM_BIN:?}" "${SRLM_FIXTURES:?}" "${SRLM_TMP:?}" "${SRLM_SOURCE_DIR:?}"
W="$SRLM_TMP/backend_cuda"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
M="$SRLM_FIXTURES/llama/tiny-gqa"
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

printf '{"prompt": "a", "response": "b"}\n' > sft.jsonl
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n' > dpo.jsonl
cat > train.yaml <<Y
run: {name: t, out_dir: $W/runs, seed: 3, watchdog_s: 0}
model: {path: $M, dtype: float32}
backend: {name: cuda, threads: 1}
train:
  sft: {data: $W/sft.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 1, micro_batch_size: 1, epochs: 1, max_seq_len: 64}
  dpo: {data: $W/dpo.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 1, micro_batch_size: 1, epochs: 1, max_seq_len: 64}
Y
loop_small_config run.yaml "$W/runs" "$M" cuda

for cmd in sft dpo run; do
  config=train.yaml
  [ $cmd = run ] && config=run.yaml
  timeout 120 "$SRLM_BIN" $cmd $config run.name=$cmd --quiet > $cmd.out 2> $cmd.err
  rc=$?
  msg=$(sed -n 's/^srlm [a-z -]*: error: //p' $cmd.err | head -1)
  echo "srlm $cmd with backend.name: cuda -> exit $rc: $msg"
  if [ "$rc" -eq 0 ] && nvidia-smi -L > /dev/null 2>&1; then continue; fi # ran on the GPU
  if [ "$rc" -ge 128 ] || grep -qE 'Sanitizer|Segmentation|core dumped|Assertion|Aborted' $cmd.err; then
    fail "srlm $cmd crashed (exit $rc): $(cat $cmd.err)"
  elif [ "$rc" -ne 2 ]; then
    fail "srlm $cmd exited $rc, expected 2; stderr: $(cat $cmd.err)"
  fi
  case "$msg" in
    "backend.name: cuda: this srlm was built without the CUDA backend"*) ;;
    "backend.name: cuda: no CUDA device"*) ;;
    *) fail "srlm $cmd: unexpected message '$msg'; stderr: $(cat $cmd.err)" ;;
  esac
  # a checkpoint or a generated model would mean it ran anyway
  if [ -n "$(find runs -name 'step-*' -o -name 'models' 2> /dev/null)" ]; then fail "srlm $cmd ran anyway"; fi
done

# backend.name: cpu (the default) still trains
timeout 300 "$SRLM_BIN" sft train.yaml run.name=cpu backend.name=cpu > cpu.out 2> cpu.err
rc=$?
[ "$rc" -eq 0 ] || fail "srlm sft with backend.name: cpu exited $rc: $(tail -5 cpu.err)"

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all checks passed"
