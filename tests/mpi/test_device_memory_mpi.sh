#!/usr/bin/env bash
# The device-memory paths across ranks, without a GPU (see
# tests/cli/test_device_memory.sh for backend cpu_guarded): tensor parallelism
# (the activations' allreduces and the kv group's gradient sums staged through
# the host) and data parallelism (ZeRO-1 on host copies of the gradients and
# weights) give bit-identical weights on cpu and cpu_guarded, as does one
# iteration of srlm run at tp 2 (generation, judging and DPO sharded over two
# ranks; srlm generate has no tp).
# The tp and dp layouts run again with backend.dtype bfloat16 (bf16 activations
# in the allreduces, fp32 master weights gathered over dp), and tp 2 once more
# with the logits in chunks of 3 rows (train.sft.logits_chunk), compared below
# with the unchunked tp 2 run. Each layout runs a third time with
# SRLM_GUARDED_DEVICE_COMM=1: cpu_guarded then offers a device communicator
# (MPI on its guarded pages), so the model and trainer take the paths NCCL
# takes on GPUs (allreduces on the views themselves, ZeRO-1's reduce-scatter
# and in-place gathers on device buffers); the weights must again equal cpu's
# (with tp 2 a bf16 allreduce adds two values once either way).
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/device_memory_mpi"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG
cp "$SRLM_FIXTURES/commands/sft.jsonl" sft.jsonl
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 2}
model: {path: $model, dtype: float32}
backend: {threads: 1}
train: {sft: {data: $work/sft.jsonl, lr: 0.002, batch_size: 4, micro_batch_size: 2, epochs: 2, dropout: 0.1}}
Y
mpi() { $MPIEXEC -np "$1" $MPIEXEC_FLAGS "$bin" "${@:2}"; }
for layout in "tp 2 parallel.tp=2" "dp 2 parallel.dp=2" "tp4 4 parallel.tp=4" \
              "tp_bf16 2 parallel.tp=2 backend.dtype=bfloat16" "dp_bf16 2 parallel.dp=2 backend.dtype=bfloat16" \
              "tp_chunk 2 parallel.tp=2 train.sft.logits_chunk=3"; do
  set -- $layout
  name=$1 np=$2
  shift 2
  for be in cpu cpu_guarded; do
    mpi "$np" sft sft.yaml --quiet run.name=${name}_$be backend.name=$be "$@" > ${name}_$be.log 2>&1 \
      || fail "$name on $be exited $? ($(why ${name}_$be.log))"
  done
  cmp -s runs/${name}_cpu/sft/model/model.safetensors runs/${name}_cpu_guarded/sft/model/model.safetensors \
    && echo "$name: weights identical on cpu and cpu_guarded" || fail "$name: weights differ between cpu and cpu_guarded"
  $MPIEXEC -np "$np" $MPIEXEC_FLAGS env SRLM_GUARDED_DEVICE_COMM=1 "$bin" sft sft.yaml --quiet \
    run.name=${name}_devcomm backend.name=cpu_guarded "$@" > ${name}_devcomm.log 2>&1 \
    || fail "$name on cpu_guarded with device collectives exited $? ($(why ${name}_devcomm.log))"
  cmp -s runs/${name}_cpu/sft/model/model.safetensors runs/${name}_devcomm/sft/model/model.safetensors \
    && echo "$name: weights identical on cpu and with device collectives" \
    || fail "$name: weights differ between cpu and cpu_guarded with device collectives"
done
# one srlm run iteration at tp 2: candidates, judgements and M2 on all three
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
loop_small_config run.yaml "$work/loop" "$model"
for be in cpu cpu_guarded devcomm; do
  name=$be env=""
  [ $be = devcomm ] && be=cpu_guarded env=SRLM_GUARDED_DEVICE_COMM=1
  $MPIEXEC -np 2 $MPIEXEC_FLAGS env $env "$bin" run run.yaml --quiet run.name=$name backend.name=$be parallel.tp=2 \
    > run_$name.log 2>&1 || fail "srlm run at tp 2 on $name exited $? ($(why run_$name.log))"
done
[ "$(cat loop/cpu/iter-1/candidates/*.jsonl 2>/dev/null | wc -l)" -gt 0 ] || fail "srlm run at tp 2 wrote no candidates"
for name in cpu_guarded devcomm; do
  cmp -s loop/cpu/models/M2/model.safetensors loop/$name/models/M2/model.safetensors &&
    cmp -s <(cat loop/cpu/iter-1/candidates/*.jsonl loop/cpu/iter-1/judgements/*.jsonl) \
           <(cat loop/$name/iter-1/candidates/*.jsonl loop/$name/iter-1/judgements/*.jsonl) &&
    echo "srlm run at tp 2: candidates, judgements and M2 identical on cpu and $name" ||
    fail "srlm run at tp 2: $name differs from cpu"
done

# bf16 at dp 2 (fp32 master shards gathered each step) against dp 1: the
# gradients are summed in another order, so compare through log-probs
"$bin" sft sft.yaml --quiet run.name=dp1_bf16 backend.dtype=bfloat16 > dp1_bf16.log 2>&1 \
  || fail "dp 1 bf16 exited $? ($(why dp1_bf16.log))"
lp() { "$bin" score --model "$1" --input sft.jsonl --dtype bfloat16 | sed 's/.*"logp": \([^,]*\),.*/\1/'; }
paste -d' ' <(lp runs/dp1_bf16/sft/model) <(lp runs/dp_bf16_cpu/sft/model) <(lp "$model") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; m = $1 - $3; if (m < 0) m = -m; if (d > dmax) dmax = d; mv += m; n++ }
       END { printf "bf16: dp 2 vs dp 1: max |logp difference| %.2e, mean change from the start %.1f\n", dmax, mv / n;
             exit !(dmax < 1e-2 && mv / n > 1) }' || fail "bf16 training at dp 2 differs from dp 1"
lp32() { "$bin" score --model "$1" --input sft.jsonl | sed 's/.*"logp": \([^,]*\),.*/\1/'; }
paste -d' ' <(lp32 runs/tp_cpu/sft/model) <(lp32 runs/tp_chunk_cpu/sft/model) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > dmax) dmax = d }
       END { printf "tp 2, logits in chunks of 3: max |logp difference| %.2e from one chunk\n", dmax; exit !(dmax < 1e-3) }' \
  || fail "chunked logits under tp 2 differ from unchunked"
[ $fails = 0 ] && echo "device memory under mpirun: all checks passed"
exit $((fails > 0))
